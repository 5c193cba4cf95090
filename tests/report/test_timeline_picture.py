"""The timeline picture shows what failed and why: a backup target's outage, Error backups piled up
past retain, a legend of exactly the marks drawn, and labels that fit and cover no marker."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from matplotlib import colors, dates, image
from matplotlib.axes import Axes
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.transforms import Bbox

from lhsoak import ledger, timestamps, verdict
from lhsoak.ledger_synth import Builder, job_spec
from lhsoak.report import ticks, timeline

START_S = timestamps.parse_rfc3339("2026-11-27T07:00:00Z")
END_S = START_S + 1800.0
VOLUMES = ("v1", "v2")
TARGET_DOWN_S, TARGET_UP_S = START_S + 590.0, START_S + 970.0


def _x(epoch_s: float) -> float:
    return float(dates.date2num(dt.datetime.fromtimestamp(epoch_s, tz=dt.UTC)))


def _builder(*, backup_retain: int = 1) -> Builder:
    return Builder(
        start_s=START_S,
        jobs=[job_spec("snap", task="snapshot"), job_spec("bak", task="backup", retain=backup_retain)],
        volumes=list(VOLUMES),
    )


def _target_note(b: Builder, *, ts_s: float, healthy: bool) -> None:
    """The note `lhsoak.recorder` writes when the BackupTarget's availability changes."""
    state, reason = ("available", "") if healthy else ("unavailable", "Unavailable: connection refused")
    b.add(
        ts_s,
        {
            "type": "note",
            "level": "info" if healthy else "warn",
            "text": f"BackupTarget/default: {state}" + (f" ({reason})" if reason else ""),
            "data": {"kind": "BackupTarget", "name": "default", "healthy": healthy, "reason": reason},
        },
    )


def _target_down_run(*, comes_back: bool = True) -> ledger.Ledger:
    """Backups end in Error while the target is unavailable (00:09:50-00:16:10, or to the end)."""
    b = _builder()
    down_until_s = TARGET_UP_S if comes_back else END_S
    in_outage = lambda tick, _volume: TARGET_DOWN_S <= tick < down_until_s  # noqa: E731
    b.regular_fires(job="snap", volumes=VOLUMES, until_s=END_S)
    b.regular_fires(job="bak", volumes=VOLUMES, until_s=END_S, skip=in_outage)
    for tick in (START_S + 120.0 * k for k in range(15)):
        if in_outage(tick, None):
            for volume in VOLUMES:
                b.fire(
                    job="bak", volume=volume, started_s=tick + 3, done_s=None, state="Error", ts_s=tick + 8
                )
    _target_note(b, ts_s=TARGET_DOWN_S, healthy=False)
    if comes_back:
        _target_note(b, ts_s=TARGET_UP_S, healthy=True)
    b.end(ts_s=END_S)
    return b.ledger()


def _excused_error_run() -> ledger.Ledger:
    """node-1 reboots 00:05-00:07; the backup of the 00:06 tick ends in Error: excused, within retain."""
    b = _builder()
    b.reboot_cycle(node="node-1", start_s=START_S + 300, ready_s=START_S + 420)
    in_outage = lambda tick, _volume: START_S + 300 <= tick <= START_S + 480  # noqa: E731
    b.regular_fires(job="snap", volumes=VOLUMES, until_s=END_S, skip=in_outage)
    b.regular_fires(job="bak", volumes=VOLUMES, until_s=END_S, skip=in_outage)
    b.fire(job="bak", volume="v1", started_s=START_S + 363, done_s=None, state="Error", ts_s=START_S + 380)
    b.end(ts_s=END_S)
    return b.ledger()


def _piled_up_run() -> ledger.Ledger:
    """Every backup tick fires on time, but a retry per tick ends in Error and is never deleted; a
    reboot at 00:10:20 cuts one of them off."""
    b = _builder()
    b.regular_fires(job="snap", volumes=VOLUMES, until_s=END_S)
    b.regular_fires(job="bak", volumes=VOLUMES, until_s=END_S)
    for k in range(10):
        tick = START_S + 120.0 * k
        b.fire(job="bak", volume="v2", started_s=tick + 5, done_s=None, state="Error", ts_s=tick + 40)
    b.reboot_cycle(node="node-1", start_s=START_S + 620, ready_s=START_S + 700)
    b.end(ts_s=END_S)
    return b.ledger()


def _crowded_notes_run() -> ledger.Ledger:
    """A diagnosis at 00:15 followed by error notes, one 10 s before the end, a node never back."""
    b = _builder()
    b.regular_fires(job="snap", volumes=VOLUMES, until_s=END_S)
    b.regular_fires(job="bak", volumes=VOLUMES, until_s=START_S + 900)
    category_note = {"type": "note", "level": "error", "text": "stalled"}
    b.add(START_S + 900, {**category_note, "data": {"category": "stuck-pending-job", "job": "bak"}})
    for offset_s in (905, 930, 960, 1000):
        b.note(ts_s=START_S + offset_s, level="error", text="Job/bak-1: BackoffLimitExceeded")
    b.add(END_S - 10, {**category_note, "data": {"category": "backup-target-unavailable", "job": None}})
    b.reboot_cycle(node="node-2", start_s=END_S - 60, ready_s=None)
    b.end(ts_s=END_S)
    return b.ledger()


def _picture(led: ledger.Ledger) -> tuple[Figure, verdict.Verdict]:
    result = verdict.analyse(led)
    figure = timeline.timeline(led, result, ticks.rows(led, result))
    figure.draw_without_rendering()
    return figure, result


def _target_patches(ax: Axes) -> list[Rectangle]:
    teal = colors.to_rgb(timeline.TARGET_COLOR)
    return [
        patch
        for patch in ax.patches
        if isinstance(patch, Rectangle)
        and patch.get_hatch() == timeline.TARGET_HATCH
        and colors.to_rgb(patch.get_edgecolor()) == teal
    ]


def _marker_points(ax: Axes, marker: str, color: str) -> list[tuple[float, float]]:
    """Data points of every `marker` drawn in `color` (its face colour) in `ax`."""
    points: list[tuple[float, float]] = []
    for line in ax.get_lines():
        if line.get_marker() == marker and colors.to_hex(line.get_markerfacecolor()) == color:
            points += list(zip(line.get_xdata(), line.get_ydata(), strict=True))  # type: ignore[arg-type]
    return points


def test_a_backup_target_outage_is_hatched_over_the_backup_lanes_and_drawn_on_its_own_lane() -> None:
    figure, result = _picture(_target_down_run())
    lanes_ax, lower_ax = figure.axes[:2]
    assert not result.passed
    shading = _target_patches(lanes_ax)
    assert len(shading) == 1, "one hatch over the two adjacent backup lanes"
    (patch,) = shading
    assert patch.get_x() == pytest.approx(_x(TARGET_DOWN_S))
    assert patch.get_x() + patch.get_width() == pytest.approx(_x(TARGET_UP_S))
    # Lanes top down: snap·v1, snap·v2, bak·v1, bak·v2: the hatch covers the last two only.
    assert (patch.get_y(), patch.get_height()) == (1.5, 2.0)
    errors = _marker_points(lanes_ax, "D", timeline.MISSED_COLOR)
    assert len(errors) == 8, "four Error ticks (00:10 to 00:16) on each backup lane"
    assert all(_x(TARGET_DOWN_S) <= x <= _x(TARGET_UP_S) and y in (2, 3) for x, y in errors)
    labels = [label.get_text() for label in lower_ax.get_yticklabels()]
    assert "backup target default" in labels
    (lane_bar,) = _target_patches(lower_ax)
    assert lane_bar.get_y() + lane_bar.get_height() / 2 == labels.index("backup target default")
    assert "unavailable 6 min" in [text.get_text() for text in lower_ax.texts]
    legend = [text.get_text() for text in figure.legends[0].get_texts()]
    assert "backup target unavailable" in legend


def test_a_backup_target_that_never_comes_back_is_unavailable_to_the_end() -> None:
    figure, _ = _picture(_target_down_run(comes_back=False))
    lanes_ax, lower_ax = figure.axes[:2]
    (patch,) = _target_patches(lanes_ax)
    assert patch.get_x() + patch.get_width() == pytest.approx(_x(END_S))
    assert "unavailable 20 min, to the end" in [text.get_text() for text in lower_ax.texts]


def test_the_target_windows_pair_unavailable_with_available_per_target() -> None:
    windows = timeline.target_outages(_target_down_run())
    assert windows == [
        timeline.TargetOutage("default", TARGET_DOWN_S, TARGET_UP_S, "Unavailable: connection refused")
    ]
    assert timeline.target_outages(_excused_error_run()) == []


def test_error_backups_piled_up_past_retain_are_red_and_the_one_a_reboot_cut_off_is_grey(
    tmp_path: Path,
) -> None:
    led = _piled_up_run()
    figure, result = _picture(led)
    lanes_ax = figure.axes[0]
    assert [failure.volume for failure in result.failures] == ["v2"]
    assert result.failures[0].reason.startswith("9 Error"), result.failures[0].reason
    red = _marker_points(lanes_ax, "s", timeline.MISSED_COLOR)
    grey = _marker_points(lanes_ax, "s", "#9e9e9e")
    assert len(red) == 9
    assert len(grey) == 1
    assert grey[0][0] == pytest.approx(_x(START_S + 600 + 40)), "the retry running when the reboot began"
    v2_label = lanes_ax.get_yticklabels()[3]
    assert v2_label.get_text() == "bak · v2\n9 left in Error > retain 1"
    assert colors.to_hex(v2_label.get_color()) == timeline.MISSED_COLOR
    assert colors.to_hex(lanes_ax.get_yticklabels()[2].get_color()) != timeline.MISSED_COLOR
    png, _ = timeline.save(figure, tmp_path / "timeline")
    assert _red_pixels(png, within=lanes_ax) > 150, "every tick fired on time: only the pile is red"


def _red_pixels(png: Path, *, within: Axes) -> int:
    """Pixels of the miss red (#d62728) inside `within`, give or take anti-aliasing."""
    pixels = image.imread(str(png))[..., :3] * 255.0
    box = within.get_window_extent()
    height = pixels.shape[0]
    pixels = pixels[int(height - box.y1) : int(height - box.y0), int(box.x0) : int(box.x1)]
    return int((np.abs(pixels - np.array([0xD6, 0x27, 0x28])).max(axis=-1) < 18).sum())


def _signature(line: Line2D) -> tuple[str, str]:
    """A marker as a reader tells it apart: its shape and its colour (the edge when hollow; a
    fire's done dot takes any colour of the lag scale)."""
    face = line.get_markerfacecolor()
    if line.get_marker() == "o" and face != "none":
        return "o", "lag colour"
    shown = line.get_markeredgecolor() if face == "none" else face
    return str(line.get_marker()), colors.to_hex(shown)


def _drawn_markers(figure: Figure) -> set[tuple[str, str]]:
    return {
        _signature(line)
        for ax in figure.axes
        for line in ax.get_lines()
        if line.get_marker() not in ("None", "", None) and len(line.get_xdata()) > 0  # type: ignore[arg-type]
    }


RUNS: dict[str, Callable[[], ledger.Ledger]] = {
    "target down": _target_down_run,
    "excused Error": _excused_error_run,
    "piled up": _piled_up_run,
    "crowded notes": _crowded_notes_run,
}


@pytest.mark.parametrize("run", RUNS.values(), ids=RUNS.keys())
def test_the_legend_names_every_marker_drawn_and_nothing_else(run: Callable[[], ledger.Ledger]) -> None:
    figure, _ = _picture(run())
    (legend,) = figure.legends
    handles = [handle for handle in legend.legend_handles if isinstance(handle, Line2D)]
    in_legend = {_signature(handle) for handle in handles if handle.get_marker() != "|"}
    assert _drawn_markers(figure) == in_legend
    tick_marks = any(isinstance(c, LineCollection) for c in figure.axes[0].collections)
    assert tick_marks == any(handle.get_marker() == "|" for handle in handles)


def test_the_legend_shows_an_excused_error_and_no_mark_that_is_not_there() -> None:
    figure, result = _picture(_excused_error_run())
    assert result.passed
    legend = {text.get_text() for text in figure.legends[0].get_texts()}
    assert {
        "fire in Error, excused by an outage",
        "node-1 down (start → Ready)",
        "settle (still excused)",
    } <= legend
    for absent in (
        "missed tick (no fire)",
        "fire: tick → Error",
        "recorder blind",
        "backup target unavailable",
    ):
        assert absent not in legend


def _inside(inner: Bbox, outer: Bbox, *, slack_px: float = 1.0) -> bool:
    return (
        inner.x0 >= outer.x0 - slack_px
        and inner.x1 <= outer.x1 + slack_px
        and inner.y0 >= outer.y0 - slack_px
        and inner.y1 <= outer.y1 + slack_px
    )


def test_labels_stay_inside_the_picture_and_the_time_axis() -> None:
    figure, _ = _picture(_crowded_notes_run())
    for ax in figure.axes[:2]:
        for text in ax.texts:
            box = text.get_window_extent()
            assert _inside(box, figure.bbox), f"{text.get_text()!r} leaves the picture"
            assert box.x0 >= ax.bbox.x0 - 1, f"{text.get_text()!r} starts left of the axis"
            assert box.x1 <= ax.bbox.x1 + 1, f"{text.get_text()!r} runs past the axis"
        for label in ax.get_yticklabels():
            assert _inside(label.get_window_extent(), figure.bbox), label.get_text()
    lower_ax = figure.axes[1]
    shown = {text.get_text() for text in lower_ax.texts}
    assert {"stuck-pending-job", "backup-target-unavailable", "never Ready"} <= shown


def test_no_label_covers_a_marker() -> None:
    figure, _ = _picture(_crowded_notes_run())
    for ax in figure.axes[:2]:
        for line in ax.get_lines():
            if line.get_marker() in ("None", "", None):
                continue
            radius_px = line.get_markersize() / 2 * figure.dpi / 72.0
            for x, y in ax.transData.transform(line.get_xydata()):  # type: ignore[arg-type]
                for text in ax.texts:
                    box = text.get_window_extent().padded(radius_px)
                    assert not box.contains(x, y), f"{text.get_text()!r} covers a marker"


def test_the_title_gives_a_short_run_in_seconds() -> None:
    b = _builder()
    b.regular_fires(job="snap", volumes=VOLUMES, until_s=START_S + 45)
    b.end(ts_s=START_S + 45)
    figure, _ = _picture(b.ledger())
    assert figure.axes[0].get_title(loc="left").endswith("for 45 s")
