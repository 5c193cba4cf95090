"""The run as pictures (matplotlib, no pyplot: no global state, safe in any thread).

`timeline` draws one lane per job × volume: a grey mark at every cron tick, each fire as a bar from
its tick to its done time coloured by lag, misses as red crosses (grey when an outage excused
them), Error fires as red diamonds; every node's outage is shaded across the lanes, and a lane per
node below shows each reboot (start → Ready solid, the settle time hatched, down/up proofs as
markers) with the diagnosis notes on top. `lag_chart` plots each job's lag per tick against the
lag bound. Both come back as `Figure`s; `save` writes a PNG and an SVG of one.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from matplotlib import colors, dates
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from lhsoak import ledger, verdict
from lhsoak.report import ticks as tick_rows

__all__ = ["LAG_COLORMAP", "MISSED_COLOR", "lag_chart", "save", "timeline"]

MISSED_COLOR = "#d62728"
"""Missed ticks and Error fires: the one red in the pictures."""
EXCUSED_COLOR = "#9e9e9e"
TICK_COLOR = "#c8c8c8"
PENDING_COLOR = "#6d6d6d"
BLIND_COLOR = "#555555"
BLIND_HATCH = "xxxx"
LAG_COLORMAP = colors.LinearSegmentedColormap.from_list(
    "lhsoak-lag", ["#1a9850", "#a6d96a", "#fdae61", "#f46d43"]
)
"""Lag from 0 (green) to the lag bound (orange); anything past the bound is a miss (red)."""
# Node colours avoid the lag colours and the miss red, so an outage never reads as a fire or a miss.
_NODE_COLORS = ("#1f77b4", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
_NOTE_COLORS: Mapping[str, str] = {"error": MISSED_COLOR, "warn": "#ff9900"}
_LANE_HALF = 0.32
_MISSED_ROW = 1.09
"""Where the lag chart puts ticks missed without a lag, as a multiple of the lag bound."""
_DPI = 110


def _x(epoch_s: float) -> float:
    """Matplotlib's date number for an epoch time (days since its epoch)."""
    return float(dates.date2num(dt.datetime.fromtimestamp(epoch_s, tz=dt.UTC)))  # type: ignore[no-untyped-call]


def _width(seconds: float) -> float:
    return seconds / 86_400.0


def _node_colors(nodes: Iterable[str]) -> dict[str, str]:
    return {node: _NODE_COLORS[i % len(_NODE_COLORS)] for i, node in enumerate(sorted(set(nodes)))}


def _nodes(led: ledger.Ledger, result: verdict.Verdict) -> list[str]:
    known = led.run.target.get("nodes")
    names = set(known) if isinstance(known, Mapping | list) else set()
    return sorted(names | {reboot.node for reboot in result.reboots})


def _time_axis(ax: Axes) -> None:
    locator = dates.AutoDateLocator(tz=dt.UTC)  # type: ignore[no-untyped-call]
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(dates.ConciseDateFormatter(locator, tz=dt.UTC))  # type: ignore[no-untyped-call]


def _outage_end_s(outage: verdict.Outage, window_end_s: float) -> float:
    return window_end_s if math.isinf(outage.end_s) else outage.end_s


def _shade_outages(ax: Axes, result: verdict.Verdict, node_colors: Mapping[str, str]) -> None:
    for reboot in result.reboots:
        color = node_colors[reboot.node]
        ready_s = reboot.ready_s if reboot.ready_s is not None else result.window_end_s
        ax.axvspan(_x(reboot.start_s), _x(ready_s), color=color, alpha=0.13, lw=0)
        settle_end_s = min(reboot.outage_end_s, result.window_end_s)
        if settle_end_s > ready_s:
            ax.axvspan(_x(ready_s), _x(settle_end_s), color=color, alpha=0.06, lw=0)


def _shade_blind(ax: Axes, result: verdict.Verdict) -> None:
    for blind in result.blinds:
        ax.axvspan(
            _x(blind.from_s), _x(max(blind.to_s, blind.from_s + 1.0)),
            facecolor="none", edgecolor=BLIND_COLOR, hatch=BLIND_HATCH, lw=0, alpha=0.5,
        )  # fmt: skip


def _lanes(rows: Sequence[tick_rows.TickRow], result: verdict.Verdict) -> list[tuple[str, str]]:
    lanes = [(job.name, volume.volume) for job in result.jobs for volume in job.volumes]
    seen = set(lanes)
    lanes += sorted({(row.job, row.volume) for row in rows} - seen)
    return lanes


def _draw_lane(
    ax: Axes, y: float, rows: Sequence[tick_rows.TickRow], *, norm: colors.Normalize, end_s: float
) -> None:
    if not rows:
        return
    ax.vlines([_x(r.tick_s) for r in rows], y - _LANE_HALF, y + _LANE_HALF, colors=TICK_COLOR, lw=0.8)
    for row in rows:
        miss_color = EXCUSED_COLOR if row.excused else MISSED_COLOR
        if row.outcome == "fired" and row.lag_s is not None:
            lag_color = LAG_COLORMAP(norm(row.lag_s))
            _fire_bar(ax, y, row.tick_s, row.tick_s + row.lag_s, color=lag_color)
            ax.plot(_x(row.tick_s + row.lag_s), y, "o", ms=4.5, color=lag_color, mec="none")
        elif row.outcome == "pending":
            ax.plot(_x(row.tick_s), y, "o", ms=5, mfc="none", mec=PENDING_COLOR, mew=1.0)
        elif row.cause == "error":
            ax.plot(_x(row.tick_s), y, "D", ms=5, color=miss_color, mec="none")
        else:
            if row.cause == "late":
                done_s = row.done_s if row.done_s is not None else end_s
                _fire_bar(ax, y, row.tick_s, done_s, color=miss_color)
            ax.plot(_x(row.tick_s), y, "x", ms=6.5, mew=1.8, color=miss_color)


def _fire_bar(ax: Axes, y: float, start_s: float, end_s: float, *, color: object) -> None:
    ax.plot([_x(start_s), _x(end_s)], [y, y], "-", lw=2.2, color=color, solid_capstyle="butt")


def _node_lane(
    ax: Axes,
    y: float,
    reboot: verdict.RebootVerdict,
    *,
    result: verdict.Verdict,
    color: str,
    phases: Sequence[ledger.Reboot],
) -> None:
    ready_s = reboot.ready_s if reboot.ready_s is not None else result.window_end_s
    down_color = color if reboot.ready_s is not None else MISSED_COLOR
    ax.broken_barh(
        [(_x(reboot.start_s), _width(ready_s - reboot.start_s))],
        (y - _LANE_HALF, 2 * _LANE_HALF), facecolors=down_color, alpha=0.75, edgecolor="none",
    )  # fmt: skip
    settle_end_s = min(reboot.outage_end_s, result.window_end_s)
    if reboot.ready_s is not None and settle_end_s > ready_s:
        ax.broken_barh(
            [(_x(ready_s), _width(settle_end_s - ready_s))],
            (y - _LANE_HALF, 2 * _LANE_HALF),
            facecolors="none", edgecolor=color, hatch="////", lw=0.6, alpha=0.8,
        )  # fmt: skip
    for phase in phases:
        if reboot.start_s <= phase.ts_s <= ready_s and phase.phase in ("down", "up"):
            marker = "v" if phase.phase == "down" else "^"
            ax.plot(_x(phase.ts_s), y, marker, ms=5, color="white", mec="black", mew=0.6)
    label = f"down {reboot.downtime_s:.0f} s" if reboot.ready_s is not None else "never Ready"
    if reboot.failed:
        label += " (failed)"
    ax.annotate(
        label, (_x(max(settle_end_s, ready_s)), y), xytext=(3, 0), textcoords="offset points",
        fontsize=7, va="center", color="black" if reboot.ready_s is not None else MISSED_COLOR,
    )  # fmt: skip


def _draw_nodes(
    ax: Axes, led: ledger.Ledger, result: verdict.Verdict, node_colors: Mapping[str, str]
) -> list[str]:
    nodes = _nodes(led, result)
    notes = [note for note in led.notes if note.level in _NOTE_COLORS]
    labels = [*nodes, "diagnosis"] if notes else list(nodes)
    for index, node in enumerate(nodes):
        phases = [r for r in led.reboots if r.node == node]
        for reboot in result.reboots:
            if reboot.node == node:
                _node_lane(ax, index, reboot, result=result, color=node_colors[node], phases=phases)
    if notes:
        y = len(nodes)
        for level, color in _NOTE_COLORS.items():
            xs = [_x(note.ts_s) for note in notes if note.level == level]
            ax.plot(xs, [y] * len(xs), "v", ms=6, color=color, mec="black", mew=0.4, ls="none")
        for note in notes:
            category = note.data.get("category")
            if isinstance(category, str) and note.level == "error":
                ax.annotate(
                    category, (_x(note.ts_s), y), xytext=(5, 0), textcoords="offset points",
                    fontsize=7, va="center", color=MISSED_COLOR,
                )  # fmt: skip
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_ylim(len(labels) - 0.5, -0.5)
    ax.grid(axis="x", color="#eeeeee", lw=0.6)
    ax.set_axisbelow(True)
    return labels


def _legend_handles(result: verdict.Verdict, node_colors: Mapping[str, str]) -> list[Line2D | Patch]:
    handles: list[Line2D | Patch] = [
        Line2D([], [], color=TICK_COLOR, marker="|", ls="none", ms=9, label="cron tick"),
        Line2D([], [], color=LAG_COLORMAP(0.2), marker="o", lw=2, ms=4.5, label="fire: tick → done (lag)"),
        Line2D([], [], color=MISSED_COLOR, marker="x", ls="none", ms=7, mew=1.8, label="missed tick"),
        Line2D([], [], color=EXCUSED_COLOR, marker="x", ls="none", ms=7, mew=1.8, label="missed, excused"),
        Line2D([], [], color=MISSED_COLOR, marker="D", ls="none", ms=5, label="fire in Error"),
        Line2D([], [], color=PENDING_COLOR, marker="o", mfc="none", ls="none", ms=5, label="pending"),
    ]
    handles += [
        Patch(facecolor=color, alpha=0.6, label=f"{node} down (start → Ready)")
        for node, color in node_colors.items()
        if any(reboot.node == node for reboot in result.reboots)
    ]
    if result.reboots:
        handles.append(Patch(facecolor="none", edgecolor="#555555", hatch="////", label="settle"))
    if result.blinds:
        handles.append(
            Patch(facecolor="none", edgecolor=BLIND_COLOR, hatch=BLIND_HATCH, label="recorder blind")
        )
    return handles


def _title(result: verdict.Verdict, what: str) -> str:
    state = "PASSED" if result.passed else f"FAILED ({len(result.failures)} failures)"
    start = dt.datetime.fromtimestamp(result.window_start_s, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    minutes = (result.window_end_s - result.window_start_s) / 60.0
    return f"{result.run_id} — {what} — {state}; from {start} UTC for {minutes:.0f} min"


def timeline(led: ledger.Ledger, result: verdict.Verdict, rows: Sequence[tick_rows.TickRow]) -> Figure:
    """One lane per job × volume, the node outages below; see the module docstring."""
    lanes = _lanes(rows, result)
    node_count = len(_nodes(led, result)) + (1 if any(n.level in _NOTE_COLORS for n in led.notes) else 0)
    by_lane: dict[tuple[str, str], list[tick_rows.TickRow]] = {lane: [] for lane in lanes}
    for row in rows:
        by_lane[row.job, row.volume].append(row)
    height = 1.9 + 0.42 * max(len(lanes), 1) + 0.34 * max(node_count, 1)
    fig = Figure(figsize=(14, height), dpi=_DPI, layout="constrained")
    lanes_ax, nodes_ax = fig.subplots(
        2, 1, sharex=True, height_ratios=[max(len(lanes), 1), max(node_count, 1) * 0.8 + 0.4]
    )
    node_colors = _node_colors(_nodes(led, result))
    norm = colors.Normalize(vmin=0.0, vmax=max(result.lag_bound_s, 1.0))
    _shade_outages(lanes_ax, result, node_colors)
    _shade_blind(lanes_ax, result)
    for y, lane in enumerate(lanes):
        _draw_lane(lanes_ax, y, by_lane[lane], norm=norm, end_s=result.window_end_s)
        if y and lane[0] != lanes[y - 1][0]:
            lanes_ax.axhline(y - 0.5, color="#888888", lw=0.8)
    lanes_ax.set_yticks(range(len(lanes)), [f"{job} · {volume}" for job, volume in lanes], fontsize=8)
    lanes_ax.set_ylim(len(lanes) - 0.5, -0.5)
    lanes_ax.set_xlim(_x(result.window_start_s), _x(result.window_end_s))
    lanes_ax.set_title(_title(result, "ticks and fires"), fontsize=10, loc="left")
    _draw_nodes(nodes_ax, led, result, node_colors)
    _shade_outages(nodes_ax, result, node_colors)
    nodes_ax.set_xlabel("time (UTC)")
    _time_axis(nodes_ax)
    fig.colorbar(
        ScalarMappable(norm=norm, cmap=LAG_COLORMAP), ax=[lanes_ax, nodes_ax],
        label=f"lag: done − tick (s); bound {result.lag_bound_s:g} s", shrink=0.9, pad=0.01,
    )  # fmt: skip
    fig.legend(
        handles=_legend_handles(result, node_colors), loc="outside lower center", ncols=5, fontsize=8,
        frameon=False,
    )  # fmt: skip
    return fig


def lag_chart(result: verdict.Verdict, rows: Sequence[tick_rows.TickRow]) -> Figure:
    """Lag per tick, one panel per job, one line per volume, against the lag bound."""
    jobs = [job.name for job in result.jobs] or sorted({row.job for row in rows})
    fig = Figure(figsize=(14, 1.2 + 2.4 * max(len(jobs), 1)), dpi=_DPI, layout="constrained")
    axes = fig.subplots(max(len(jobs), 1), 1, sharex=True, squeeze=False)[:, 0]
    node_colors = _node_colors(reboot.node for reboot in result.reboots)
    bound = result.lag_bound_s
    lags = [row.lag_s for row in rows if row.lag_s is not None]
    top = max(bound * (_MISSED_ROW + 0.1), max(lags, default=0.0) * 1.05, 1.0)
    for ax, job in zip(axes, jobs, strict=False):
        _shade_outages(ax, result, node_colors)
        job_rows = [row for row in rows if row.job == job]
        for volume in sorted({row.volume for row in job_rows}):
            _lag_line(ax, [row for row in job_rows if row.volume == volume], volume=volume, bound=bound)
        ax.axhline(bound, color=MISSED_COLOR, ls="--", lw=1.0)
        ax.annotate(
            f"lag bound {bound:g} s", (0.0, bound), xycoords=("axes fraction", "data"),
            xytext=(3, -2), textcoords="offset points", fontsize=7, va="top", color=MISSED_COLOR,
        )  # fmt: skip
        ax.annotate(
            "missed", (0.0, bound * _MISSED_ROW), xycoords=("axes fraction", "data"), xytext=(3, 0),
            textcoords="offset points", fontsize=7, va="center", color=MISSED_COLOR,
        )  # fmt: skip
        ax.set_ylim(0.0, top)
        ax.set_ylabel("lag (s)")
        ax.set_title(f"{job}: done − tick per tick (× = missed)", fontsize=9, loc="left")
        ax.grid(color="#eeeeee", lw=0.6)
        ax.set_axisbelow(True)
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), title="volume", title_fontsize=7)
    axes[0].set_xlim(_x(result.window_start_s), _x(result.window_end_s))
    axes[0].figure.suptitle(_title(result, "lag per tick"), fontsize=10, x=0.01, ha="left")
    axes[-1].set_xlabel("tick (UTC)")
    _time_axis(axes[-1])
    return fig


def _lag_or_nan(row: tick_rows.TickRow) -> float:
    return math.nan if row.lag_s is None else row.lag_s


def _lag_line(ax: Axes, rows: Sequence[tick_rows.TickRow], *, volume: str, bound: float) -> None:
    # NaN for a tick without a lag breaks the line there, so a gap never reads as a trend.
    ax.plot(
        [_x(row.tick_s) for row in rows], [_lag_or_nan(row) for row in rows],
        "-o", ms=3, lw=1.0, label=volume,
    )  # fmt: skip
    unmeasured = [row for row in rows if row.outcome == "missed" and row.lag_s is None]
    for excused, color in ((False, MISSED_COLOR), (True, EXCUSED_COLOR)):
        xs = [_x(row.tick_s) for row in unmeasured if row.excused == excused]
        ax.plot(xs, [bound * _MISSED_ROW] * len(xs), "x", ms=6, mew=1.6, color=color, ls="none")
    late = [row for row in rows if row.outcome == "missed" and row.lag_s is not None]
    ax.plot(
        [_x(row.tick_s) for row in late], [_lag_or_nan(row) for row in late], "o", ms=6, mfc="none",
        mec=MISSED_COLOR, mew=1.4, ls="none",
    )  # fmt: skip


def save(fig: Figure, base: Path) -> tuple[Path, Path]:
    """Write `base`.png and `base`.svg; returns their paths."""
    base.parent.mkdir(parents=True, exist_ok=True)
    png, svg = base.with_suffix(".png"), base.with_suffix(".svg")
    fig.savefig(png, format="png", dpi=_DPI, metadata={"Software": None})
    # No date in the SVG, so the same run gives the same file.
    fig.savefig(svg, format="svg", metadata={"Date": None})
    return png, svg
