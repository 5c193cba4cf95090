"""The run as pictures (matplotlib, no pyplot: no global state, safe in any thread).

`timeline` draws one lane per job × volume: a grey mark at every cron tick, each fire as a bar from
its tick to its done time coloured by lag, misses as red crosses (grey when an outage excused them),
a fire that ended in Error as a thin line from its tick to a diamond where it was seen in Error, and,
below the lane's centre line, a square for every artifact still in Error at the end: red when the
lane's pile of them is past retain (the retain cleanup skips Error backups, longhorn#7854: that
fails the job), grey when a reboot cut it off or the pile is within retain. A failing lane's name is
red. Every node's outage is shaded across the lanes, and every window in which a backup target was
unavailable (from the recorder's availability notes) is hatched across the backup lanes. Below, a
lane per node shows each reboot (start → Ready solid, the settle time hatched, down/up proofs as
markers), a lane per backup target its unavailable windows, and a last lane the diagnosis notes with
their categories. The legend shows exactly what was drawn. `lag_chart` plots each job's lag per tick
against the lag bound. Both come back as `Figure`s; `save` writes a PNG and an SVG of one.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Literal, NamedTuple

from matplotlib import colors, dates
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch, Rectangle

from lhsoak import ledger, verdict
from lhsoak.report import ticks as tick_rows

__all__ = [
    "LAG_COLORMAP",
    "MISSED_COLOR",
    "TARGET_COLOR",
    "TargetOutage",
    "lag_chart",
    "save",
    "target_outages",
    "timeline",
]

MISSED_COLOR = "#d62728"
"""Missed ticks, Error fires and Error artifacts that fail a job: the one red in the pictures."""
EXCUSED_COLOR = "#9e9e9e"
TICK_COLOR = "#c8c8c8"
PENDING_COLOR = "#6d6d6d"
BLIND_COLOR = "#555555"
BLIND_HATCH = "xxxx"
TARGET_COLOR = "#00796b"
"""A backup target's unavailable window: teal, apart from the lag, miss and node colours."""
TARGET_HATCH = "\\\\\\\\"
LAG_COLORMAP = colors.LinearSegmentedColormap.from_list(
    "lhsoak-lag", ["#1a9850", "#a6d96a", "#fdae61", "#f46d43"]
)
"""Lag from 0 (green) to the lag bound (orange); anything past the bound is a miss (red)."""
# Node colours avoid the lag colours and the miss red, so an outage never reads as a fire or a miss.
_NODE_COLORS = ("#1f77b4", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f")
_NOTE_COLORS: Mapping[str, str] = {"error": MISSED_COLOR, "warn": "#ff9900"}
# The warn orange is a fill colour; as text on white it needs to be darker to be read.
_NOTE_TEXT_COLORS: Mapping[str, str] = {"error": MISSED_COLOR, "warn": "#a65c00"}
_LANE_HALF = 0.32
_ERROR_LEFT_ROW = 0.2
"""Where a lane puts its Error-left squares: this far below its centre line (lane units)."""
_CATEGORY_ROW = 0.4
"""How far above (then below) the diagnosis markers their category labels sit (lane units)."""
_MISSED_ROW = 1.09
"""Where the lag chart puts ticks missed without a lag, as a multiple of the lag bound."""
_DPI = 110
_FIGURE_WIDTH_IN = 14.0
_AXES_WIDTH_IN = 9.0
"""A lower bound of the time axis' width in the timeline, to judge whether a label fits beside a mark."""

_Key = Literal[
    "tick",
    "fired",
    "missed",
    "late",
    "missed_excused",
    "error",
    "error_excused",
    "pending",
    "error_left_counts",
    "error_left_allowed",
    "settle",
    "never_ready",
    "down_seen",
    "up_seen",
    "target",
    "blind",
    "note_error",
    "note_warn",
]


@dataclasses.dataclass(frozen=True)
class TargetOutage:
    """A window in which a backup target was unavailable, as the recorder's notes tell it."""

    name: str
    """The BackupTarget's name."""
    start_s: float
    """When the recorder saw it become unavailable (epoch s)."""
    end_s: float | None
    """When it saw it available again (epoch s); None when it never was before the run ended."""
    reason: str
    """The condition's reason as noted (may be empty)."""


def target_outages(led: ledger.Ledger) -> list[TargetOutage]:
    """The backup targets' unavailable windows, from the notes `lhsoak.recorder` writes when a
    BackupTarget's availability changes (`data`: kind BackupTarget, name, healthy, reason).

    The recorder notes changes only: a target already unavailable when it first saw it has no note,
    so no window here.
    """
    opened: dict[str, tuple[float, str]] = {}
    windows: list[TargetOutage] = []
    for note in sorted(led.notes, key=lambda n: (n.ts_s, n.line)):
        if not _is_target_note(note):
            continue
        name = str(note.data.get("name") or "?")
        if not note.data["healthy"]:
            opened.setdefault(name, (note.ts_s, str(note.data.get("reason") or "")))
        elif name in opened:
            start_s, reason = opened.pop(name)
            windows.append(TargetOutage(name, start_s, note.ts_s, reason))
    windows += [TargetOutage(name, start_s, None, reason) for name, (start_s, reason) in opened.items()]
    return sorted(windows, key=lambda window: (window.start_s, window.name))


def _is_target_note(note: ledger.Note) -> bool:
    return note.data.get("kind") == "BackupTarget" and isinstance(note.data.get("healthy"), bool)


class _ErrorLeft(NamedTuple):
    """An artifact still in Error at the end of the run."""

    error_s: float
    """When it was recorded in Error (epoch s)."""
    counts: bool
    """It is in a pile past retain: it fails its job."""


def _errors_left(led: ledger.Ledger, result: verdict.Verdict) -> dict[tuple[str, str], list[_ErrorLeft]]:
    """Per job × volume, the Error artifacts never deleted, by the verdict's retain rule (see
    `lhsoak.verdict`): those no reboot cut off pile up, and more than retain of them fail the job."""
    retain = {job.name: job.retain for job in result.jobs}
    gone = {record.object for record in led.gones}
    by_lane: dict[tuple[str, str], list[ledger.Fire]] = defaultdict(list)
    for fire in led.latest_fires():
        if fire.state == "Error" and fire.object not in gone and fire.job in retain:
            by_lane[fire.job, fire.volume].append(fire)
    marked: dict[tuple[str, str], list[_ErrorLeft]] = {}
    for (job, volume), fires in by_lane.items():
        piled = {fire.object for fire in fires if not _cut_off(fire, result.outages)}
        past_retain = len(piled) > retain[job]
        marked[job, volume] = [
            _ErrorLeft(fire.ts_s, counts=past_retain and fire.object in piled) for fire in fires
        ]
    return marked


def _cut_off(fire: ledger.Fire, outages: Iterable[verdict.Outage]) -> bool:
    """A reboot began while it ran: one such Error per reboot is normal on a healthy cluster."""
    return any(fire.started_s < outage.start_s <= fire.ts_s for outage in outages)


def _x(epoch_s: float) -> float:
    """Matplotlib's date number for an epoch time (days since its epoch)."""
    return float(dates.date2num(dt.datetime.fromtimestamp(epoch_s, tz=dt.UTC)))  # type: ignore[no-untyped-call]


def _width(seconds: float) -> float:
    return seconds / 86_400.0


def _duration_text(seconds: float) -> str:
    if seconds < 120.0:
        return f"{seconds:.0f} s"
    if seconds < 7200.0:
        return f"{seconds / 60.0:.0f} min"
    return f"{seconds / 3600.0:.1f} h"


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


class _Window(NamedTuple):
    """The run's window, to place labels so they stay inside the time axis."""

    start_s: float
    end_s: float

    def room_right(self, t_s: float) -> float:
        """The time axis' share right of `t_s`."""
        return (self.end_s - t_s) / max(self.end_s - self.start_s, 1e-9)

    def room_left(self, t_s: float) -> float:
        return (t_s - self.start_s) / max(self.end_s - self.start_s, 1e-9)


def _text_share(text: str, fontsize: float) -> float:
    """A generous estimate of the time axis' share a one-line label takes (DejaVu Sans)."""
    width_pt = len(text) * fontsize * 0.62 + 6.0
    return width_pt / (_AXES_WIDTH_IN * 72.0)


def _label(
    ax: Axes,
    text: str,
    *,
    y: float,
    after_s: float,
    before_s: float,
    window: _Window,
    color: str,
    fontsize: float = 7,
) -> None:
    """`text` on row `y` right of `after_s`, or left of `before_s` when it would run past the
    window's end, or from `before_s` rightwards when there is no room either side."""
    share = _text_share(text, fontsize)
    if window.room_right(after_s) >= share:
        anchor_s, dx, ha = after_s, 3, "left"
    elif window.room_left(before_s) >= share:
        anchor_s, dx, ha = before_s, -3, "right"
    else:
        anchor_s, dx, ha = before_s, 3, "left"
    ax.annotate(
        text, (_x(anchor_s), y), xytext=(dx, 0), textcoords="offset points", fontsize=fontsize,
        va="center", ha=ha, color=color,
    )  # fmt: skip


@dataclasses.dataclass
class _Drawn:
    """What the picture holds, so that the legend shows exactly that."""

    keys: set[_Key] = dataclasses.field(default_factory=set)
    nodes: set[str] = dataclasses.field(default_factory=set)
    error_nouns: set[str] = dataclasses.field(default_factory=set)


def _shade_outages(ax: Axes, result: verdict.Verdict, node_colors: Mapping[str, str]) -> None:
    for reboot in result.reboots:
        color = node_colors[reboot.node]
        ready_s = reboot.ready_s if reboot.ready_s is not None else result.window_end_s
        ax.axvspan(_x(reboot.start_s), _x(ready_s), color=color, alpha=0.13, lw=0)
        settle_end_s = min(reboot.outage_end_s, result.window_end_s)
        if settle_end_s > ready_s:
            ax.axvspan(_x(ready_s), _x(settle_end_s), color=color, alpha=0.06, lw=0)


def _shade_blind(ax: Axes, result: verdict.Verdict, drawn: _Drawn) -> None:
    for blind in result.blinds:
        ax.axvspan(
            _x(blind.from_s), _x(max(blind.to_s, blind.from_s + 1.0)),
            facecolor="none", edgecolor=BLIND_COLOR, hatch=BLIND_HATCH, lw=0, alpha=0.5,
        )  # fmt: skip
        drawn.keys.add("blind")


def _target_patch(x0: float, y0: float, width: float, height: float, *, fill_alpha: float) -> Rectangle:
    # Hatch lines take the edge colour; lw=0 keeps the outline off.
    return Rectangle(
        (x0, y0), width, height, facecolor=colors.to_rgba(TARGET_COLOR, fill_alpha),
        edgecolor=colors.to_rgba(TARGET_COLOR, 0.6), hatch=TARGET_HATCH, lw=0,
    )  # fmt: skip


def _runs(indices: Sequence[int]) -> list[tuple[int, int]]:
    """Consecutive runs of sorted lane indices as (first, last)."""
    runs: list[tuple[int, int]] = []
    for index in indices:
        if runs and runs[-1][1] == index - 1:
            runs[-1] = (runs[-1][0], index)
        else:
            runs.append((index, index))
    return runs


def _shade_target_outages(
    ax: Axes, windows: Sequence[TargetOutage], *, backup_lanes: Sequence[int], end_s: float
) -> None:
    for window in windows:
        start, stop = _x(window.start_s), _x(window.end_s if window.end_s is not None else end_s)
        for first, last in _runs(backup_lanes):
            ax.add_patch(_target_patch(start, first - 0.5, stop - start, last - first + 1, fill_alpha=0.1))


def _lanes(rows: Sequence[tick_rows.TickRow], result: verdict.Verdict) -> list[tuple[str, str]]:
    lanes = [(job.name, volume.volume) for job in result.jobs for volume in job.volumes]
    seen = set(lanes)
    lanes += sorted({(row.job, row.volume) for row in rows} - seen)
    return lanes


def _draw_lane(
    ax: Axes,
    y: float,
    rows: Sequence[tick_rows.TickRow],
    *,
    norm: colors.Normalize,
    end_s: float,
    error_at: Mapping[str, float],
    drawn: _Drawn,
) -> None:
    if not rows:
        return
    ax.vlines([_x(r.tick_s) for r in rows], y - _LANE_HALF, y + _LANE_HALF, colors=TICK_COLOR, lw=0.8)
    drawn.keys.add("tick")
    for row in rows:
        if row.outcome == "fired" and row.lag_s is not None:
            lag_color = LAG_COLORMAP(norm(row.lag_s))
            _fire_bar(ax, y, row.tick_s, row.tick_s + row.lag_s, color=lag_color)
            ax.plot(_x(row.tick_s + row.lag_s), y, "o", ms=4.5, color=lag_color, mec="none", clip_on=False)
            drawn.keys.add("fired")
        elif row.outcome == "pending":
            ax.plot(_x(row.tick_s), y, "o", ms=5, mfc="none", mec=PENDING_COLOR, mew=1.0, clip_on=False)
            drawn.keys.add("pending")
        elif row.cause == "error":
            _error_fire(ax, y, row, error_s=error_at.get(row.fire_object or "", row.tick_s), drawn=drawn)
        else:
            _missed(ax, y, row, end_s=end_s, drawn=drawn)


def _error_fire(ax: Axes, y: float, row: tick_rows.TickRow, *, error_s: float, drawn: _Drawn) -> None:
    color = EXCUSED_COLOR if row.excused else MISSED_COLOR
    ax.plot([_x(row.tick_s), _x(error_s)], [y, y], "-", lw=1.0, color=color, solid_capstyle="butt")
    ax.plot(_x(error_s), y, "D", ms=5, color=color, mec="none", clip_on=False)
    drawn.keys.add("error_excused" if row.excused else "error")


def _missed(ax: Axes, y: float, row: tick_rows.TickRow, *, end_s: float, drawn: _Drawn) -> None:
    color = EXCUSED_COLOR if row.excused else MISSED_COLOR
    if row.cause == "late":
        _fire_bar(ax, y, row.tick_s, row.done_s if row.done_s is not None else end_s, color=color)
    ax.plot(_x(row.tick_s), y, "x", ms=6.5, mew=1.8, color=color, clip_on=False)
    drawn.keys.add("missed_excused" if row.excused else "late" if row.cause == "late" else "missed")


def _fire_bar(ax: Axes, y: float, start_s: float, end_s: float, *, color: object) -> None:
    ax.plot([_x(start_s), _x(end_s)], [y, y], "-", lw=2.2, color=color, solid_capstyle="butt")


def _draw_errors_left(ax: Axes, y: float, errors: Sequence[_ErrorLeft], *, noun: str, drawn: _Drawn) -> None:
    for counts, color in ((False, EXCUSED_COLOR), (True, MISSED_COLOR)):
        xs = [_x(error.error_s) for error in errors if error.counts == counts]
        if xs:
            ax.plot(
                xs, [y + _ERROR_LEFT_ROW] * len(xs), "s", ms=3.8, color=color, mec="white", mew=0.4,
                ls="none", clip_on=False,
            )  # fmt: skip
            drawn.keys.add("error_left_counts" if counts else "error_left_allowed")
            drawn.error_nouns.add(noun)


def _singular_noun(task: str) -> str:
    for kind in ("backup", "snapshot"):
        if task.startswith(kind):
            return kind
    return "artifact"


def _lane_label(job: str, volume: str, errors: Sequence[_ErrorLeft], *, retain: int | None) -> str:
    label = f"{job} · {volume}"
    piled = sum(error.counts for error in errors)
    if piled and retain is not None:
        label += f"\n{piled} left in Error > retain {retain}"
    return label


def _draw_lanes(
    ax: Axes,
    led: ledger.Ledger,
    result: verdict.Verdict,
    rows: Sequence[tick_rows.TickRow],
    *,
    drawn: _Drawn,
) -> list[tuple[str, str]]:
    lanes = _lanes(rows, result)
    by_lane: dict[tuple[str, str], list[tick_rows.TickRow]] = {lane: [] for lane in lanes}
    for row in rows:
        by_lane[row.job, row.volume].append(row)
    norm = colors.Normalize(vmin=0.0, vmax=max(result.lag_bound_s, 1.0))
    error_at = {fire.object: fire.ts_s for fire in led.latest_fires() if fire.state == "Error"}
    errors = _errors_left(led, result)
    jobs = {job.name: job for job in result.jobs}
    failing = {(job.name, row.volume) for job in result.jobs for row in job.volumes if not row.passed}
    labels = []
    for y, lane in enumerate(lanes):
        _draw_lane(ax, y, by_lane[lane], norm=norm, end_s=result.window_end_s, error_at=error_at, drawn=drawn)
        job = jobs.get(lane[0])
        noun = _singular_noun(job.task) if job is not None else "artifact"
        _draw_errors_left(ax, y, errors.get(lane, []), noun=noun, drawn=drawn)
        labels.append(_lane_label(*lane, errors.get(lane, []), retain=job.retain if job else None))
        if y and lane[0] != lanes[y - 1][0]:
            ax.axhline(y - 0.5, color="#888888", lw=0.8)
    ax.set_yticks(range(len(lanes)), labels, fontsize=8)
    for tick_label, lane in zip(ax.get_yticklabels(), lanes, strict=True):
        if lane in failing:
            tick_label.set_color(MISSED_COLOR)
    ax.set_ylim(len(lanes) - 0.5, -0.5)
    return lanes


def _node_lane(
    ax: Axes,
    y: float,
    reboot: verdict.RebootVerdict,
    *,
    result: verdict.Verdict,
    color: str,
    phases: Sequence[ledger.Reboot],
    drawn: _Drawn,
) -> None:
    ready_s = reboot.ready_s if reboot.ready_s is not None else result.window_end_s
    down_color = color if reboot.ready_s is not None else MISSED_COLOR
    ax.broken_barh(
        [(_x(reboot.start_s), _width(ready_s - reboot.start_s))],
        (y - _LANE_HALF, 2 * _LANE_HALF), facecolors=down_color, alpha=0.75, edgecolor="none",
    )  # fmt: skip
    # The node's colour shades the lanes above even when its bar here is the never-Ready red.
    drawn.nodes.add(reboot.node)
    if reboot.ready_s is None:
        drawn.keys.add("never_ready")
    settle_end_s = min(reboot.outage_end_s, result.window_end_s)
    if reboot.ready_s is not None and settle_end_s > ready_s:
        ax.broken_barh(
            [(_x(ready_s), _width(settle_end_s - ready_s))],
            (y - _LANE_HALF, 2 * _LANE_HALF),
            facecolors="none", edgecolor=color, hatch="////", lw=0.6, alpha=0.8,
        )  # fmt: skip
        drawn.keys.add("settle")
    for phase in phases:
        if reboot.start_s <= phase.ts_s <= ready_s and phase.phase in ("down", "up"):
            marker = "v" if phase.phase == "down" else "^"
            ax.plot(_x(phase.ts_s), y, marker, ms=5, color="white", mec="black", mew=0.6, clip_on=False)
            drawn.keys.add("down_seen" if phase.phase == "down" else "up_seen")
    label = f"down {reboot.downtime_s:.0f} s" if reboot.ready_s is not None else "never Ready"
    if reboot.failed:
        label += " (failed)"
    _label(
        ax, label, y=y, after_s=max(settle_end_s, ready_s), before_s=reboot.start_s,
        window=_Window(result.window_start_s, result.window_end_s),
        color="black" if reboot.ready_s is not None else MISSED_COLOR,
    )  # fmt: skip


def _target_lane(
    ax: Axes, y: float, windows: Sequence[TargetOutage], *, window: _Window, drawn: _Drawn
) -> None:
    for outage in windows:
        stop_s = outage.end_s if outage.end_s is not None else window.end_s
        start = _x(outage.start_s)
        ax.add_patch(
            _target_patch(start, y - _LANE_HALF, _x(stop_s) - start, 2 * _LANE_HALF, fill_alpha=0.45)
        )
        drawn.keys.add("target")
        text = f"unavailable {_duration_text(stop_s - outage.start_s)}"
        if outage.end_s is None:
            text += ", to the end"
        _label(
            ax, text, y=y, after_s=stop_s, before_s=outage.start_s, window=window, color=TARGET_COLOR
        )  # fmt: skip


def _diagnosis_notes(led: ledger.Ledger) -> list[ledger.Note]:
    """Notes drawn on the diagnosis lane: warnings and errors, but not the backup targets'
    availability changes (their own lanes show those)."""
    return [note for note in led.notes if note.level in _NOTE_COLORS and not _is_target_note(note)]


def _draw_notes(ax: Axes, y: float, notes: Sequence[ledger.Note], *, window: _Window, drawn: _Drawn) -> None:
    for level, color in _NOTE_COLORS.items():
        xs = [_x(note.ts_s) for note in notes if note.level == level]
        if xs:
            ax.plot(xs, [y] * len(xs), "v", ms=6, color=color, mec="black", mew=0.4, ls="none", clip_on=False)
            drawn.keys.add("note_error" if level == "error" else "note_warn")
    # One label per category, off the markers' row (above, then below, alternately), so no label
    # covers a marker; a label that would run past the window's end ends at its note instead.
    first: dict[str, ledger.Note] = {}
    for note in notes:
        category = note.data.get("category")
        if isinstance(category, str):
            first.setdefault(category, note)
    for index, (category, note) in enumerate(first.items()):
        row = y - _CATEGORY_ROW if index % 2 == 0 else y + _CATEGORY_ROW
        _label(
            ax, category, y=row, after_s=note.ts_s, before_s=note.ts_s, window=window,
            color=_NOTE_TEXT_COLORS[note.level],
        )  # fmt: skip


def _lower_lanes(led: ledger.Ledger, result: verdict.Verdict) -> list[str]:
    """The lower panel's lanes, top down: nodes, backup targets, the diagnosis notes."""
    targets = sorted({window.name for window in target_outages(led)})
    notes = ["diagnosis"] if _diagnosis_notes(led) else []
    return [*_nodes(led, result), *(f"backup target {name}" for name in targets), *notes]


def _draw_nodes(
    ax: Axes,
    led: ledger.Ledger,
    result: verdict.Verdict,
    node_colors: Mapping[str, str],
    *,
    drawn: _Drawn,
) -> list[str]:
    window = _Window(result.window_start_s, result.window_end_s)
    nodes = _nodes(led, result)
    for index, node in enumerate(nodes):
        phases = [r for r in led.reboots if r.node == node]
        for reboot in result.reboots:
            if reboot.node == node:
                _node_lane(
                    ax, index, reboot, result=result, color=node_colors[node], phases=phases, drawn=drawn
                )
    windows = target_outages(led)
    names = sorted({outage.name for outage in windows})
    for index, name in enumerate(names, start=len(nodes)):
        _target_lane(ax, index, [w for w in windows if w.name == name], window=window, drawn=drawn)
    notes = _diagnosis_notes(led)
    if notes:
        _draw_notes(ax, len(nodes) + len(names), notes, window=window, drawn=drawn)
    labels = _lower_lanes(led, result)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    # Room under the last lane for a category label placed below the diagnosis markers.
    ax.set_ylim(max(len(labels), 1) - 0.5 + (0.2 if notes else 0.0), -0.5)
    ax.grid(axis="x", color="#eeeeee", lw=0.6)
    ax.set_axisbelow(True)
    return labels


def _marker(
    label: str,
    color: str,
    marker: str,
    *,
    ms: float,
    mew: float | None = None,
    mec: str | None = None,
    mfc: str | None = None,
) -> Line2D:
    """A legend handle for a marker drawn without a line."""
    return Line2D(
        [], [], color=color, marker=marker, ls="none", label=label, ms=ms, mew=mew, mec=mec, mfc=mfc
    )


def _error_noun(drawn: _Drawn) -> str:
    return next(iter(drawn.error_nouns)) if len(drawn.error_nouns) == 1 else "artifact"


def _lane_handles(drawn: _Drawn) -> dict[_Key, Line2D]:
    noun = _error_noun(drawn)
    lag = LAG_COLORMAP(0.2)
    return {
        "tick": _marker("cron tick", TICK_COLOR, "|", ms=9),
        "fired": Line2D([], [], color=lag, marker="o", lw=2, ms=4.5, label="fire: tick → done (lag)"),
        "missed": _marker("missed tick (no fire)", MISSED_COLOR, "x", ms=7, mew=1.8),
        "late": Line2D(
            [], [], color=MISSED_COLOR, marker="x", lw=2, ms=7, mew=1.8, label="missed: tick → done too late"
        ),
        "missed_excused": _marker("missed, excused by an outage", EXCUSED_COLOR, "x", ms=7, mew=1.8),
        "error": Line2D([], [], color=MISSED_COLOR, marker="D", lw=1, ms=5, label="fire: tick → Error"),
        "error_excused": Line2D(
            [], [], color=EXCUSED_COLOR, marker="D", lw=1, ms=5, label="fire in Error, excused by an outage"
        ),
        "pending": _marker("pending (too near the end)", PENDING_COLOR, "o", mfc="none", ms=5),
        "error_left_counts": _marker(
            f"{noun} left in Error, piled up past retain", MISSED_COLOR, "s", ms=5, mec="white"
        ),
        "error_left_allowed": _marker(
            f"{noun} left in Error, cut off by a reboot or within retain", EXCUSED_COLOR, "s", ms=5,
            mec="white",
        ),
    }  # fmt: skip


def _other_handles() -> dict[_Key, Line2D | Patch]:
    return {
        "settle": Patch(facecolor="none", edgecolor="#555555", hatch="////", label="settle (still excused)"),
        "never_ready": Patch(facecolor=MISSED_COLOR, alpha=0.75, label="node never Ready"),
        "down_seen": _marker("node seen down", "white", "v", ms=5, mec="black", mew=0.6),
        "up_seen": _marker("node seen up", "white", "^", ms=5, mec="black", mew=0.6),
        "target": Patch(
            facecolor=colors.to_rgba(TARGET_COLOR, 0.45), edgecolor=colors.to_rgba(TARGET_COLOR, 0.6),
            hatch=TARGET_HATCH, lw=0, label="backup target unavailable",
        ),
        "blind": Patch(facecolor="none", edgecolor=BLIND_COLOR, hatch=BLIND_HATCH, label="recorder blind"),
        "note_error": _marker("note: error", _NOTE_COLORS["error"], "v", ms=6, mec="black", mew=0.4),
        "note_warn": _marker("note: warning", _NOTE_COLORS["warn"], "v", ms=6, mec="black", mew=0.4),
    }  # fmt: skip


def _legend_handles(drawn: _Drawn, node_colors: Mapping[str, str]) -> list[Line2D | Patch]:
    """A handle for every kind of mark drawn, none for any other."""
    handles: list[Line2D | Patch] = [h for key, h in _lane_handles(drawn).items() if key in drawn.keys]
    handles += [
        Patch(facecolor=color, alpha=0.6, label=f"{node} down (start → Ready)")
        for node, color in node_colors.items()
        if node in drawn.nodes
    ]
    handles += [h for key, h in _other_handles().items() if key in drawn.keys]
    return handles


def _failed_jobs_text(result: verdict.Verdict) -> str:
    """`soak-backup (12 missed ticks)`, per failed job: what the lanes below show of its failure."""
    parts = []
    for job in result.jobs:
        if job.passed:
            continue
        missed = sum(row.missed for row in job.volumes)
        ways = [f"{missed} missed tick{'' if missed == 1 else 's'}"] if missed else []
        if any(row.errors_piled_up > job.retain for row in job.volumes):
            ways.append(f"Error {job.artifact_noun} beyond retain {job.retain}")
        if not ways:
            ways.append("no fire after the last outage" if job.volumes else "fired on no volume")
        parts.append(f"{job.name} ({', '.join(ways)})")
    return "; ".join(parts) or "a job failed"


def _title(result: verdict.Verdict, what: str) -> str:
    state = {
        "passed": "PASSED",
        "failed": f"FAILED: {_failed_jobs_text(result)}",
        "interrupted": "INTERRUPTED before its verdict",
    }[result.outcome]
    start = dt.datetime.fromtimestamp(result.window_start_s, tz=dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    duration = _duration_text(result.window_end_s - result.window_start_s)
    return f"{result.run_id} — {what} — {state}; from {start} UTC for {duration}"


def timeline(led: ledger.Ledger, result: verdict.Verdict, rows: Sequence[tick_rows.TickRow]) -> Figure:
    """One lane per job × volume, the node outages below; see the module docstring."""
    lane_count = max(len(_lanes(rows, result)), 1)
    lower_count = max(len(_lower_lanes(led, result)), 1)
    height = 2.1 + 0.42 * lane_count + 0.34 * lower_count
    fig = Figure(figsize=(_FIGURE_WIDTH_IN, height), dpi=_DPI, layout="constrained")
    lanes_ax, nodes_ax = fig.subplots(2, 1, sharex=True, height_ratios=[lane_count, lower_count * 0.8 + 0.4])
    node_colors = _node_colors(_nodes(led, result))
    drawn = _Drawn()
    _shade_outages(lanes_ax, result, node_colors)
    _shade_blind(lanes_ax, result, drawn)
    lanes = _draw_lanes(lanes_ax, led, result, rows, drawn=drawn)
    tasks = {job.name: job.task for job in result.jobs}
    backup_lanes = [y for y, (job, _) in enumerate(lanes) if tasks.get(job, "").startswith("backup")]
    _shade_target_outages(lanes_ax, target_outages(led), backup_lanes=backup_lanes, end_s=result.window_end_s)
    lanes_ax.set_xlim(_x(result.window_start_s), _x(result.window_end_s))
    lanes_ax.set_title(_title(result, "ticks and fires"), fontsize=10, loc="left")
    _draw_nodes(nodes_ax, led, result, node_colors, drawn=drawn)
    _shade_outages(nodes_ax, result, node_colors)
    nodes_ax.set_xlabel("time (UTC)")
    _time_axis(nodes_ax)
    fig.colorbar(
        ScalarMappable(norm=colors.Normalize(vmin=0.0, vmax=max(result.lag_bound_s, 1.0)), cmap=LAG_COLORMAP),
        ax=[lanes_ax, nodes_ax], label=f"lag: done − tick (s); bound {result.lag_bound_s:g} s",
        shrink=0.9, pad=0.01,
    )  # fmt: skip
    fig.legend(
        handles=_legend_handles(drawn, node_colors), loc="outside lower center", ncols=4, fontsize=8,
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
        if ax.get_legend_handles_labels()[0]:  # an interrupted run may have no lag line to name
            ax.legend(
                fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0), title="volume", title_fontsize=7
            )
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
