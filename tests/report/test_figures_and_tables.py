"""The pictures and the per-tick table show the run: lanes, misses in red, every node's outage, every tick."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from matplotlib import image
from matplotlib.axes import Axes

from lhsoak import ledger, timestamps, verdict
from lhsoak.ledger_synth import Builder, job_spec
from lhsoak.report import tables, ticks, timeline

START_S = timestamps.parse_rfc3339("2026-11-27T07:00:00Z")


def _red_pixels(png: Path, within: Axes | None = None) -> int:
    """Pixels of the miss red (#d62728), give or take anti-aliasing; only inside `within` if given."""
    pixels = image.imread(str(png))[..., :3] * 255.0
    if within is not None:
        # Axes extents are in display pixels from the bottom left; image rows count from the top.
        box = within.get_window_extent()
        height = pixels.shape[0]
        pixels = pixels[int(height - box.y1) : int(height - box.y0), int(box.x0) : int(box.x1)]
    target = np.array([0xD6, 0x27, 0x28])
    return int((np.abs(pixels - target).max(axis=-1) < 18).sum())


def _healthy_run() -> ledger.Ledger:
    b = Builder(
        start_s=START_S,
        jobs=[job_spec("snap", task="snapshot"), job_spec("bak", task="backup")],
        volumes=["v1", "v2"],
    )
    b.reboot_cycle(node="node-1", start_s=START_S + 300, ready_s=START_S + 420)
    skip_outage = lambda tick, _volume: START_S + 300 <= tick <= START_S + 480  # noqa: E731
    for job in ("snap", "bak"):
        b.regular_fires(job=job, volumes=["v1", "v2"], until_s=START_S + 1800, skip=skip_outage)
    b.end(ts_s=START_S + 1800)
    return b.ledger()


def test_the_timeline_shows_the_stalled_job_in_red(
    tmp_path: Path, stalled_ledger: ledger.Ledger, stalled_verdict: verdict.Verdict
) -> None:
    rows = ticks.rows(stalled_ledger, stalled_verdict)
    figure = timeline.timeline(stalled_ledger, stalled_verdict, rows)
    png, svg = timeline.save(figure, tmp_path / "timeline")
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    height, width = image.imread(str(png)).shape[:2]
    assert width > 1200
    assert height > 400
    assert _red_pixels(png, within=figure.axes[0]) > 500, "24 missed ticks are drawn as red crosses"
    text = svg.read_text()
    for lane in ("soak-snap · vol-a", "soak-snap · vol-b", "soak-backup · vol-a", "soak-backup · vol-b"):
        assert lane in text
    for label in ("node-1", "node-2", "node-3", "down 270 s", "stuck-pending-job", "recorder blind"):
        assert label in text, label


def test_a_run_without_misses_has_no_red_and_shades_its_outage(tmp_path: Path) -> None:
    led = _healthy_run()
    result = verdict.analyse(led)
    assert result.passed
    rows = ticks.rows(led, result)
    figure = timeline.timeline(led, result, rows)
    png, svg = timeline.save(figure, tmp_path / "timeline")
    assert _red_pixels(png, within=figure.axes[0]) == 0
    assert _red_pixels(png) == 0, "no red anywhere: the legend shows only what was drawn"
    assert "node-1 down (start → Ready)" in svg.read_text()


def test_a_node_that_never_came_back_is_marked(tmp_path: Path) -> None:
    b = Builder(start_s=START_S, jobs=[job_spec("snap", task="snapshot")], volumes=["v"])
    b.regular_fires(job="snap", volumes=["v"], until_s=START_S + 300)
    b.reboot_cycle(node="node-2", start_s=START_S + 330, ready_s=None)
    b.end(ts_s=START_S + 900)
    led = b.ledger()
    result = verdict.analyse(led)
    _, svg = timeline.save(timeline.timeline(led, result, ticks.rows(led, result)), tmp_path / "t")
    assert "never Ready" in svg.read_text()


def test_the_lag_chart_has_a_panel_per_job(
    tmp_path: Path, stalled_ledger: ledger.Ledger, stalled_verdict: verdict.Verdict
) -> None:
    rows = ticks.rows(stalled_ledger, stalled_verdict)
    figure = timeline.lag_chart(stalled_verdict, rows)
    titles = [ax.get_title(loc="left") for ax in figure.axes]
    assert titles == [
        "soak-snap: done − tick per tick (× = missed)",
        "soak-backup: done − tick per tick (× = missed)",
    ]
    png, _ = timeline.save(figure, tmp_path / "lag")
    snap_panel, backup_panel = figure.axes
    # Both panels draw the lag bound as a red dashed line; only the stalled job has red crosses.
    assert _red_pixels(png, within=backup_panel) > _red_pixels(png, within=snap_panel) + 300


def test_the_csv_has_one_row_per_tick(
    stalled_ledger: ledger.Ledger, stalled_verdict: verdict.Verdict
) -> None:
    rows = ticks.rows(stalled_ledger, stalled_verdict)
    table = list(csv.DictReader(io.StringIO(tables.csv_text(rows))))
    assert len(table) == sum(v.ticks for job in stalled_verdict.jobs for v in job.volumes) == 120
    assert tuple(table[0]) == tables.COLUMNS
    first_miss = next(
        r for r in table if r["job"] == "soak-backup" and r["outcome"] == "missed" and not r["excused_by"]
    )
    assert first_miss["tick"] == "2026-11-27T00:30:00.000000Z"
    assert first_miss["cause"] == "no_fire"
    assert first_miss["lag_s"] == ""
    assert first_miss["object"] == ""
    excused = [r for r in table if r["excused_by"]]
    assert {"node-1 node-2 node-3"} <= {r["excused_by"] for r in excused}
    fired = next(r for r in table if r["outcome"] == "fired")
    assert float(fired["lag_s"]) > 0
    assert fired["state"] == "Completed"


def test_the_html_table_marks_misses_and_escapes_names(
    stalled_ledger: ledger.Ledger, stalled_verdict: verdict.Verdict
) -> None:
    rows = ticks.rows(stalled_ledger, stalled_verdict)
    page = tables.html_page(rows, stalled_verdict)
    assert page.startswith("<!DOCTYPE html>")
    assert page.count('<tr class="missed') == sum(r.outcome == "missed" for r in rows)
    assert page.count('<tr class="missed excused') == sum(r.outcome == "missed" and r.excused for r in rows)
    assert '<span class="bad">24 missed outside outages</span>' in page
    odd = [
        ticks.TickRow(
            "a<b", "v&1", START_S, "fired", None, (), "o", "Completed", START_S, START_S + 1, 1.0, 1
        )
    ]
    assert "a&lt;b" in tables.html_page(odd, stalled_verdict)
    assert "v&amp;1" in tables.html_page(odd, stalled_verdict)


def test_the_timeline_title_names_the_failed_job_and_its_missed_ticks(
    stalled_ledger: ledger.Ledger, stalled_verdict: verdict.Verdict
) -> None:
    rows = ticks.rows(stalled_ledger, stalled_verdict)
    title = timeline.timeline(stalled_ledger, stalled_verdict, rows).axes[0].get_title(loc="left")
    (backup,) = [job for job in stalled_verdict.jobs if not job.passed]
    missed = sum(row.missed for row in backup.volumes)
    assert f"FAILED: {backup.name} ({missed} missed tick" in title, title
    assert "soak-snap" not in title, title
