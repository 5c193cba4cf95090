"""The per-tick table: CSV for spreadsheets and scripts, a self-contained HTML page for the report.

One row per tick of each job on each volume (`lhsoak.report.ticks.TickRow`): when it was due, what
became of it, the artifact that served it and its lag. Times are RFC 3339 UTC; durations in seconds.
"""

from __future__ import annotations

import csv
import html
import io
from collections import Counter
from collections.abc import Sequence

from lhsoak import verdict
from lhsoak.report import ticks as tick_rows
from lhsoak.timestamps import to_rfc3339

__all__ = ["COLUMNS", "csv_text", "html_page"]

COLUMNS = (
    "job",
    "volume",
    "tick",
    "outcome",
    "cause",
    "excused_by",
    "lag_s",
    "object",
    "state",
    "started",
    "done",
    "fires_in_window",
)
"""The CSV header, in order."""

_CAUSE_TEXT = {"no_fire": "no fire", "late": "not done in time", "error": "Error"}


def _cells(row: tick_rows.TickRow) -> tuple[str, ...]:
    return (
        row.job,
        row.volume,
        to_rfc3339(row.tick_s),
        row.outcome,
        row.cause or "",
        " ".join(row.excused_by),
        "" if row.lag_s is None else f"{row.lag_s:.3f}",
        row.fire_object or "",
        row.fire_state or "",
        "" if row.started_s is None else to_rfc3339(row.started_s),
        "" if row.done_s is None else to_rfc3339(row.done_s),
        str(row.window_fires),
    )


def csv_text(rows: Sequence[tick_rows.TickRow]) -> str:
    """The table as CSV (RFC 4180, header first)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(_cells(row) for row in rows)
    return out.getvalue()


_STYLE = """
body { font: 13px system-ui, sans-serif; margin: 1em; color: #222; }
table { border-collapse: collapse; }
th, td { padding: 2px 8px; border-bottom: 1px solid #e4e4e4; text-align: left; white-space: nowrap; }
th { position: sticky; top: 0; background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.missed td { background: #fde2e1; }
tr.missed.excused td { background: #f1f1f1; color: #777; }
tr.pending td { color: #777; font-style: italic; }
tr.job-start td { border-top: 2px solid #999; }
.summary span { margin-right: 1.5em; }
.bad { color: #b00020; font-weight: 600; }
"""


def _summary(rows: Sequence[tick_rows.TickRow], result: verdict.Verdict) -> str:
    counts = Counter(row.outcome for row in rows)
    counted = sum(row.counts for row in rows)
    state = result.outcome.upper()
    parts = [
        f'<span class="{"" if result.outcome == "passed" else "bad"}">{state}</span>',
        f"<span>{len(rows)} ticks</span>",
        f"<span>{counts['fired']} fired</span>",
        f'<span class="{"bad" if counted else ""}">{counted} missed outside outages</span>',
        f"<span>{counts['missed'] - counted} missed in outages</span>",
        f"<span>{counts['pending']} pending</span>",
        f"<span>lag bound {result.lag_bound_s:g} s, settle {result.settle_s:g} s</span>",
    ]
    return f'<p class="summary">{"".join(parts)}</p>'


def _row_html(row: tick_rows.TickRow, *, first_of_lane: bool) -> str:
    classes: list[str] = [row.outcome]
    if row.excused:
        classes.append("excused")
    if first_of_lane:
        classes.append("job-start")
    cells = _cells(row)
    shown = list(cells)
    shown[4] = _CAUSE_TEXT.get(row.cause or "", "")
    numeric = {COLUMNS.index("lag_s"), COLUMNS.index("fires_in_window")}
    tds = "".join(
        f'<td class="num">{html.escape(cell)}</td>' if index in numeric else f"<td>{html.escape(cell)}</td>"
        for index, cell in enumerate(shown)
    )
    return f'<tr class="{" ".join(classes)}">{tds}</tr>'


def html_page(rows: Sequence[tick_rows.TickRow], result: verdict.Verdict) -> str:
    """A standalone HTML page (inline CSS, no scripts): a summary line and the table."""
    header = "".join(f"<th>{html.escape(name)}</th>" for name in COLUMNS)
    body = []
    previous: tuple[str, str] | None = None
    for row in rows:
        lane = (row.job, row.volume)
        body.append(_row_html(row, first_of_lane=previous is not None and lane != previous))
        previous = lane
    title = f"{html.escape(result.run_id)}: every tick"
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{title}</title>'
        f"<style>{_STYLE}</style></head><body>"
        f"<h3>{title}</h3>{_summary(rows, result)}"
        f"<table><thead><tr>{header}</tr></thead><tbody>\n"
        + "\n".join(body)
        + "\n</tbody></table></body></html>\n"
    )
