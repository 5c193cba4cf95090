"""ticks.html fits a 1600 px window: names wrap, times are times of day, nothing overflows its cell.

The run is shaped like the lab's error-backups profile, with real-looking names: volumes are
pvc-<uuid> (40 characters without a space) and artifacts longer still, and a four-node outage
excuses ticks, so the "excused by" cell lists four nodes. Chromium (Debian's) measures the page;
without it the layout check is skipped here and fails in CI (CI=true), which has it.
"""

from __future__ import annotations

import html.parser
import json
import os
import re
import subprocess
import uuid
from pathlib import Path

import pytest

from lhsoak import ledger, timestamps, verdict
from lhsoak.ledger_synth import Builder, job_spec
from lhsoak.report import tables, ticks

START_S = timestamps.parse_rfc3339("2026-11-27T12:00:00Z")
VOLUMES = tuple(f"pvc-{uuid.UUID(int=n + 1)}" for n in range(2))
NODES = ("cp-1", "worker-1", "worker-2", "worker-3")
CHROMIUM = Path("/usr/bin/chromium")
WINDOW = (1600, 1000)


def _error_backups_run() -> tuple[ledger.Ledger, verdict.Verdict]:
    b = Builder(
        start_s=START_S,
        jobs=[job_spec("soak-snap", task="snapshot"), job_spec("soak-backup", task="backup")],
        volumes=list(VOLUMES),
        run_id="soak-20261127-120000-f3cd",
    )
    b.regular_fires(job="soak-snap", volumes=list(VOLUMES), until_s=START_S + 1800)
    for offset in range(0, 1800, 120):
        for volume in VOLUMES:
            state = "Error" if 600 <= offset < 1200 else "Completed"
            done = None if state == "Error" else START_S + offset + 31.7
            b.fire(
                job="soak-backup", volume=volume, started_s=START_S + offset + 2.4, done_s=done, state=state
            )
    for node in NODES:
        b.reboot_cycle(node=node, start_s=START_S + 590, ready_s=START_S + 700)
    b.end(ts_s=START_S + 1800)
    led = b.ledger()
    return led, verdict.analyse(led)


class _Cells(html.parser.HTMLParser):
    """Each table cell as (tag, attributes, text)."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[tuple[str, dict[str, str | None], str]] = []
        self._open: tuple[str, dict[str, str | None], list[str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("td", "th"):
            self._open = (tag, dict(attrs), [])

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._open[2].append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._open is not None:
            name, attrs, texts = self._open
            self.cells.append((name, attrs, "".join(texts)))
            self._open = None


def _page() -> tuple[str, list[ticks.TickRow]]:
    led, result = _error_backups_run()
    rows = ticks.rows(led, result)
    return tables.html_page(rows, result), rows


def test_long_names_may_wrap_and_times_are_short_with_the_full_time_on_hover() -> None:
    page, rows = _page()
    parser = _Cells()
    parser.feed(page)
    header = [text for tag, _attrs, text in parser.cells if tag == "th"]
    body = [(attrs, text) for tag, attrs, text in parser.cells if tag == "td"]
    assert len(body) == len(rows) * len(header)
    # Only a cell that may break anywhere holds a word longer than a time of day.
    unbreakable = {
        (attrs.get("class"), word) for attrs, text in body for word in text.split() if len(word) > 12
    }
    assert unbreakable, "the run should have long names to wrap"
    assert {css for css, _word in unbreakable} == {"name"}
    assert re.search(r"td\.name \{[^}]*overflow-wrap: anywhere", page)
    assert re.search(r"table \{[^}]*width: 100%", page)
    times = [(attrs, text) for attrs, text in body if attrs.get("class") == "time" and text]
    assert times
    for attrs, text in times:
        assert re.fullmatch(r"\d\d:\d\d:\d\d(\.\d)?", text), text
        full = attrs.get("title") or ""
        assert re.fullmatch(r"2026-11-27T[0-9:.]+Z", full), full
        assert abs(timestamps.parse_rfc3339(full) - timestamps.parse_rfc3339(f"2026-11-27T{text}Z")) < 0.1


def test_a_run_longer_than_a_day_shows_the_date_in_each_time() -> None:
    b = Builder(start_s=START_S, jobs=[job_spec("snap", task="snapshot", cron="0 */6 * * *")], volumes=["v"])
    b.regular_fires(job="snap", volumes=["v"], until_s=START_S + 2 * 86_400)
    b.end(ts_s=START_S + 2 * 86_400)
    led = b.ledger()
    result = verdict.analyse(led)
    page = tables.html_page(ticks.rows(led, result), result)
    assert re.search(r'<td class="time" title="2026-11-28T18:00:00\.000000Z">11-28 18:00:00</td>', page)


def _require_chromium() -> None:
    if CHROMIUM.is_file():
        return
    reason = "the layout check needs chromium (apt-get install chromium)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason}: CI must install it")
    pytest.skip(reason)


# Run in the page after layout: the page's width against the window's, and the cells whose content
# sticks out of them.
_MEASURE = """<script>
const root = document.documentElement;
const over = [...document.querySelectorAll("td, th")]
  .filter((cell) => cell.scrollWidth > cell.clientWidth + 1)
  .map((cell) => cell.textContent);
document.body.dataset.fit = JSON.stringify({page: root.scrollWidth, window: root.clientWidth, over});
</script>"""


def _measure(page: str, tmp_path: Path) -> dict[str, object]:
    probe = tmp_path / "ticks.html"
    probe.write_text(page.replace("</body>", f"{_MEASURE}</body>"), encoding="utf-8")
    done = subprocess.run(
        [
            str(CHROMIUM),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--no-first-run",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
            "--dump-dom",
            probe.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    found = re.search(r'data-fit="([^"]*)"', done.stdout)
    assert found, f"chromium exited {done.returncode} without measuring the page: {done.stderr[-2000:]}"
    measured: dict[str, object] = json.loads(html.unescape(found.group(1)))
    return measured


@pytest.mark.timeout(120)
def test_the_page_fits_a_1600_px_window_in_chromium(tmp_path: Path) -> None:
    _require_chromium()
    page, _rows = _page()
    fit = _measure(page, tmp_path)
    assert fit["over"] == [], "cells whose content overflows them"
    assert isinstance(fit["page"], int)
    assert isinstance(fit["window"], int)
    assert fit["page"] <= fit["window"] <= WINDOW[0], fit
