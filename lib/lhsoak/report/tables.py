"""The per-tick table: CSV for spreadsheets and scripts, a self-contained HTML page for the report.

One row per tick of each job on each volume (`lhsoak.report.ticks.TickRow`): when it was due, what
became of it, the artifact that served it and its lag. Durations are in seconds; the CSV's times are
RFC 3339 UTC, the page's are times of day in UTC (the full time in each one's tooltip), so that the
table fits a 1600 px window.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import html
import io
from collections import Counter
from collections.abc import Sequence
from typing import Literal

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


# The page must fit a 1600 px window (Allure shows it in a frame narrower still): the table takes the
# window's width, and names without spaces (pvc-<uuid>, artifacts) may break anywhere, which also
# lets the browser's automatic layout shrink their columns; times and figures stay on one line.
_STYLE = """
body { font: 13px system-ui, sans-serif; margin: 1em; color: #222; }
table { border-collapse: collapse; width: 100%; }
th, td { padding: 2px 6px; border-bottom: 1px solid #e4e4e4; text-align: left; vertical-align: top; }
td.name { overflow-wrap: anywhere; }
td.num, td.time { white-space: nowrap; font-variant-numeric: tabular-nums; }
td.num, th.num { text-align: right; }
span.node { white-space: nowrap; }
th { position: sticky; top: 0; background: #f4f4f4; white-space: nowrap; }
th[title] { text-decoration: underline dotted; }
tr.missed td { background: #fde2e1; }
tr.missed.excused td { background: #f1f1f1; color: #777; }
tr.pending td { color: #777; font-style: italic; }
tr.job-start td { border-top: 2px solid #999; }
.summary span { margin-right: 1.5em; white-space: nowrap; }
.bad { color: #b00020; font-weight: 600; }
"""


@dataclasses.dataclass(frozen=True)
class _HtmlColumn:
    """One column of the HTML table."""

    label: str
    """Its header."""
    kind: Literal["name", "word", "num", "time"]
    """Names wrap anywhere, words between words; figures (right-aligned) and times stay on one line."""
    hint: str = ""
    """The header's tooltip; empty for none."""


_HTML_COLUMNS = (
    _HtmlColumn("job", "name"),
    _HtmlColumn("volume", "name"),
    _HtmlColumn("tick", "time", "when the tick was due"),
    _HtmlColumn("outcome", "word"),
    _HtmlColumn("cause", "word", "why a missed tick was missed"),
    _HtmlColumn("excused by", "word", "the nodes whose outage overlaps the tick: its miss does not count"),
    _HtmlColumn("lag s", "num", "done − tick"),
    _HtmlColumn("artifact", "name", "the first snapshot or backup started in the tick's window"),
    _HtmlColumn("state", "word"),
    _HtmlColumn("started", "time"),
    _HtmlColumn("done", "time"),
    _HtmlColumn("fires", "num", "fires started in [tick, next tick): 2 or more hint at a late fire"),
)


def _clock_format(result: verdict.Verdict) -> str:
    # The date is in the summary line; a run longer than a day needs it in every time.
    one_day = result.window_end_s - result.window_start_s < 86_400.0
    return "%H:%M:%S" if one_day else "%m-%d %H:%M:%S"


def _clock(epoch_s: float | None, fmt: str, *, tenths: bool = False) -> str:
    if epoch_s is None:
        return ""
    moment = dt.datetime.fromtimestamp(epoch_s, tz=dt.UTC)
    shown = moment.strftime(fmt)
    return f"{shown}.{moment.microsecond // 100_000}" if tenths else shown


def _summary(rows: Sequence[tick_rows.TickRow], result: verdict.Verdict) -> str:
    counts = Counter(row.outcome for row in rows)
    counted = sum(row.counts for row in rows)
    state = result.outcome.upper()
    start = dt.datetime.fromtimestamp(result.window_start_s, tz=dt.UTC).strftime("%Y-%m-%d")
    parts = [
        f'<span class="{"" if result.outcome == "passed" else "bad"}">{state}</span>',
        f"<span>{len(rows)} ticks</span>",
        f"<span>{counts['fired']} fired</span>",
        f'<span class="{"bad" if counted else ""}">{counted} missed outside outages</span>',
        f"<span>{counts['missed'] - counted} missed in outages</span>",
        f"<span>{counts['pending']} pending</span>",
        f"<span>lag bound {result.lag_bound_s:g} s, settle {result.settle_s:g} s</span>",
        f"<span>times UTC from {start} (hover for the full time)</span>",
    ]
    return f'<p class="summary">{" ".join(parts)}</p>'


def _html_cells(row: tick_rows.TickRow, fmt: str) -> tuple[tuple[str, str], ...]:
    """Per column, the cell's HTML and its tooltip (the full RFC 3339 time of a time cell)."""

    def full(epoch_s: float | None) -> str:
        return "" if epoch_s is None else to_rfc3339(epoch_s)

    # A line may break between node names but not at the hyphen inside one (worker-3).
    nodes = " ".join(f'<span class="node">{html.escape(node)}</span>' for node in row.excused_by)
    texts = (
        (row.job, ""),
        (row.volume, ""),
        (_clock(row.tick_s, fmt), full(row.tick_s)),
        (row.outcome, ""),
        (_CAUSE_TEXT.get(row.cause or "", ""), ""),
        (None, ""),
        ("" if row.lag_s is None else f"{row.lag_s:.1f}", ""),
        (row.fire_object or "", ""),
        (row.fire_state or "", ""),
        (_clock(row.started_s, fmt, tenths=True), full(row.started_s)),
        (_clock(row.done_s, fmt, tenths=True), full(row.done_s)),
        (str(row.window_fires), ""),
    )
    return tuple((nodes if text is None else html.escape(text), tooltip) for text, tooltip in texts)


def _td(content: str, tooltip: str, column: _HtmlColumn) -> str:
    css = f' class="{column.kind}"' if column.kind != "word" else ""
    title = f' title="{html.escape(tooltip)}"' if tooltip else ""
    return f"<td{css}{title}>{content}</td>"


def _row_html(row: tick_rows.TickRow, *, first_of_lane: bool, fmt: str) -> str:
    classes: list[str] = [row.outcome]
    if row.excused:
        classes.append("excused")
    if first_of_lane:
        classes.append("job-start")
    tds = "".join(
        _td(content, tooltip, column)
        for (content, tooltip), column in zip(_html_cells(row, fmt), _HTML_COLUMNS, strict=True)
    )
    return f'<tr class="{" ".join(classes)}">{tds}</tr>'


def _th(column: _HtmlColumn) -> str:
    css = ' class="num"' if column.kind == "num" else ""
    title = f' title="{html.escape(column.hint)}"' if column.hint else ""
    return f"<th{css}{title}>{html.escape(column.label)}</th>"


def _head_html() -> str:
    return f"<thead><tr>{''.join(_th(column) for column in _HTML_COLUMNS)}</tr></thead>"


def html_page(rows: Sequence[tick_rows.TickRow], result: verdict.Verdict) -> str:
    """A standalone HTML page (inline CSS, no scripts): a summary line and the table.

    It fits the width of its window: long names wrap, times are times of day (the full RFC 3339
    time in each one's tooltip; ticks.csv has them in full).
    """
    fmt = _clock_format(result)
    body = []
    previous: tuple[str, str] | None = None
    for row in rows:
        lane = (row.job, row.volume)
        body.append(_row_html(row, first_of_lane=previous is not None and lane != previous, fmt=fmt))
        previous = lane
    title = f"{html.escape(result.run_id)}: every tick"
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title>"
        f"<style>{_STYLE}</style></head><body>"
        f"<h3>{title}</h3>{_summary(rows, result)}"
        f"<table>{_head_html()}<tbody>\n" + "\n".join(body) + "\n</tbody></table></body></html>\n"
    )
