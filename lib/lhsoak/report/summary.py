"""The run in plain text: a short table per job for the end of the pytest run, and failure messages.

`summary_text` is what the terminal shows after the tests (printed by the verdict test too, so it lands
in JUnit's system-out and Allure's stdout attachment): per job its volumes' figures, the missed ticks
with how late each was, the reboots with how long each node was down. `failure_text` (the verdict)
and `step_failure_text` (a chaos step) are the failure messages: short, with the category markers
Allure sorts by and one line per cause.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from lhsoak import diagnosis, ledger, verdict
from lhsoak.report import categories
from lhsoak.report import ticks as tick_rows
from lhsoak.timestamps import to_rfc3339

if TYPE_CHECKING:
    from lhsoak import reboot

__all__ = ["failure_text", "headline", "step_failure_text", "summary_text"]

_MISSED_SHOWN = 6
_COLUMN_KEY = (
    "in outage: ticks due while an outage ran (excused, whatever became of them); missed: missed ticks",
    "outside outages (they fail a job); missed in outage: missed ticks excused by an outage; Errors left:",
    "every Error artifact never deleted; piled up: those no reboot cut off (more than retain fail a job)",
)
_CAUSE_TEXT = {"no_fire": "no fire", "error": "Error"}


def _clock_format(result: verdict.Verdict) -> str:
    one_day = result.window_end_s - result.window_start_s < 86_400.0
    return "%H:%M:%S" if one_day else "%m-%d %H:%M:%S"


def _clock(epoch_s: float, fmt: str) -> str:
    return dt.datetime.fromtimestamp(epoch_s, tz=dt.UTC).strftime(fmt)


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return "never" if math.isinf(value) else f"{value:.1f}"


def _table(header: Sequence[str], body: Sequence[Sequence[str]], *, indent: str = "  ") -> list[str]:
    widths = [max(len(cell) for cell in column) for column in zip(header, *body, strict=True)]

    def line(cells: Sequence[str]) -> str:
        # Text left, figures right, as a reader scans them.
        padded = [
            cell.ljust(width) if index < 1 else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return (indent + "  ".join(padded)).rstrip()

    return [line(header), *(line(row) for row in body)]


def _miss_text(row: tick_rows.TickRow, fmt: str, lag_bound_s: float) -> str:
    when = _clock(row.tick_s, fmt)
    if row.cause == "late":
        late = "never done" if row.lag_s is None else f"done after {row.lag_s:.0f} s > {lag_bound_s:g} s"
        return f"{when} ({late})"
    return f"{when} ({_CAUSE_TEXT.get(row.cause or '', row.cause or '?')})"


def _job_block(
    job: verdict.JobVerdict, result: verdict.Verdict, rows: Sequence[tick_rows.TickRow], fmt: str
) -> list[str]:
    state = "passed" if job.passed else "FAILED"
    lines = [f"{job.name} ({job.task}, {job.cron!r}, retain {job.retain}): {state}"]
    # The columns and their order are those of `lhsoak analyze` (verdict.render_table), in lower case.
    header = ("volume", "ticks", "in outage", "fired", "missed", "missed in outage", "pending",
              "lag p50/p95/max s", "stalest s", "Errors left", "piled up")  # fmt: skip
    body = [
        (
            row.volume,
            str(row.ticks),
            str(row.excused),
            str(row.fired),
            str(row.missed),
            str(row.excused_missed),
            str(row.pending),
            "/".join(_seconds(v) for v in (row.lag_p50_s, row.lag_p95_s, row.lag_max_s)),
            _seconds(row.max_staleness_s),
            str(row.errors_left),
            str(row.errors_piled_up),
        )
        for row in job.volumes
    ]
    lines += _table(header, body) if body else ["  (no volume fired)"]
    for volume in job.volumes:
        missed = [r for r in rows if r.job == job.name and r.volume == volume.volume and r.counts]
        if not missed:
            continue
        shown = ", ".join(_miss_text(r, fmt, result.lag_bound_s) for r in missed[:_MISSED_SHOWN])
        more = f", … {len(missed) - _MISSED_SHOWN} more" if len(missed) > _MISSED_SHOWN else ""
        lines.append(f"  missed on {volume.volume}: {shown}{more}")
    return lines


def _reboot_block(result: verdict.Verdict, fmt: str) -> list[str]:
    if not result.reboots:
        return ["reboots: none"]
    body = [
        (
            reboot.node,
            _clock(reboot.start_s, fmt),
            _clock(reboot.ready_s, fmt) if reboot.ready_s is not None else "never",
            _seconds(reboot.downtime_s),
            _seconds(reboot.recovery_s) if reboot.ready_s is not None else "-",
            "failed" if reboot.failed else "",
        )
        for reboot in result.reboots
    ]
    return ["reboots:", *_table(("node", "start", "Ready", "down s", "recovery s", ""), body)]


def headline(result: verdict.Verdict) -> str:
    """One line: the run's outcome (as `lhsoak analyze` decides it) and how each failed job failed."""
    prefix = f"lhsoak {result.run_id}: "
    if result.outcome == "interrupted":
        return prefix + verdict.INTERRUPTED_TEXT
    if result.outcome == "passed":
        return prefix + "PASSED: every job kept firing on every volume"
    failed = "; ".join(_how_it_failed(job, result.lag_bound_s) for job in result.jobs if not job.passed)
    then = " before the run was INTERRUPTED" if result.interrupted else ""
    return f"{prefix}FAILED{then}: {failed or 'a job failed'}"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _missed_ways(job: verdict.JobVerdict, lag_bound_s: float) -> list[str]:
    """Its missed ticks outside outages, by cause: "stopped firing" is kept for ticks at which nothing
    started (a reader takes it so), apart from fires that ended in Error or were not done in time."""
    by_cause: Counter[str] = Counter()
    for row in job.volumes:
        by_cause.update(row.missed_causes)
    ways = []
    if by_cause["no_fire"]:
        ways.append(f"stopped firing ({_plural(by_cause['no_fire'], 'missed tick')} outside outages)")
    if by_cause["error"]:
        ways.append(f"fired but failed ({_plural(by_cause['error'], 'tick')} outside outages ended in Error)")
    if by_cause["late"]:
        ways.append(
            f"fired but was not done in time ({_plural(by_cause['late'], 'tick')} outside outages, "
            f"lag bound {lag_bound_s:g} s)"
        )
    return ways


def _how_it_failed(job: verdict.JobVerdict, lag_bound_s: float) -> str:
    """`<job> stopped firing (…)`, `… fired but failed (…)`, `… fired but was not done in time (…)`,
    `… did not fire after the last outage`, `… left N Error backups`, joined by "and"."""
    rows = job.volumes
    if not rows:
        return f"{job.name} fired on no volume"
    ways = _missed_ways(job, lag_bound_s)
    not_back = sum(row.fired_after_last_outage is False for row in rows)
    if not_back and not ways:  # with missed ticks after it, those say it already
        ways.append(f"did not fire after the last outage{_on_volumes(not_back, len(rows))}")
    piled = [row.errors_piled_up for row in rows if row.errors_piled_up > job.retain]
    if len(rows) == 1 and piled:
        ways.append(f"left {piled[0]} Error {job.artifact_noun}, more than retain {job.retain}")
    elif piled:
        ways.append(
            f"left Error {job.artifact_noun} beyond retain {job.retain}{_on_volumes(len(piled), len(rows))} "
            f"(up to {max(piled)} on one)"
        )
    return f"{job.name} {' and '.join(ways) or 'failed'}"


def _on_volumes(count: int, of: int) -> str:
    return "" if of == 1 else f" on {count} of {of} volumes"


def _rows(result: verdict.Verdict, led: ledger.Ledger | None) -> list[tick_rows.TickRow]:
    return tick_rows.rows(led, result) if led is not None else []


def summary_text(result: verdict.Verdict, led: ledger.Ledger | None = None) -> str:
    """Per job a short table, its missed ticks (with the ledger: which, and how late), the reboots."""
    return _summary(result, _rows(result, led))


def _summary(result: verdict.Verdict, rows: Sequence[tick_rows.TickRow]) -> str:
    fmt = _clock_format(result)
    span = f"{to_rfc3339(result.window_start_s)} → {to_rfc3339(result.window_end_s)}"
    lines = [
        headline(result),
        f"window {span} ({result.end_reason or 'no end record'}); lag bound {result.lag_bound_s:g} s, "
        f"settle {result.settle_s:g} s; times UTC",
        "",
    ]
    for job in result.jobs:
        lines += _job_block(job, result, rows, fmt)
        lines.append("")
    if any(job.volumes for job in result.jobs):
        lines += [*_COLUMN_KEY, ""]
    lines += _reboot_block(result, fmt)
    if result.notes:
        lines += ["", "notes:", *(f"  - {note}" for note in result.notes)]
    return "\n".join(lines) + "\n"


def _failed_jobs(result: verdict.Verdict) -> set[str]:
    return {job.name for job in result.jobs if not job.passed}


def _note_categories(led: ledger.Ledger | None, failed: set[str]) -> list[str]:
    """Categories the soak's diagnosis wrote into the ledger's notes about the failed jobs."""
    found: list[str] = []
    covered: set[str] = set()
    for note in led.notes if led is not None else ():
        category, job = note.data.get("category"), note.data.get("job")
        if note.level != "error" or category not in categories.TITLES:
            continue
        if (job is None or job in failed) and str(job) not in covered:
            covered.add(str(job))
            found += [str(category)] if category not in found else []
    return found


def _failure_markers(
    result: verdict.Verdict, findings: Sequence[diagnosis.Finding], led: ledger.Ledger | None
) -> list[str]:
    failed = _failed_jobs(result)
    relevant = [f for f in findings if not f.jobs or f.jobs & failed]
    if relevant:
        return categories.finding_markers(relevant)
    noted = _note_categories(led, failed)
    return [categories.category_marker(c) for c in noted or ["missed-ticks"]]


def _cause_lines(findings: Sequence[diagnosis.Finding], led: ledger.Ledger | None) -> list[str]:
    if findings:
        return [f"cause: [{finding.category}] {finding.summary}" for finding in findings]
    noted = [note for note in (led.notes if led is not None else ()) if note.level == "error"]
    if noted:
        return [f"noted {to_rfc3339(note.ts_s)}: {note.text}" for note in noted[:_MISSED_SHOWN]]
    return ["cause: none found in the cluster state"]


def failure_text(
    result: verdict.Verdict,
    findings: Sequence[diagnosis.Finding] = (),
    led: ledger.Ledger | None = None,
) -> str:
    """The verdict's failure message; empty when the run passed.

    Short on purpose (Allure groups a category's failures by their message): the headline, the
    category markers (the most specific finding per failed job; else the categories the soak's
    diagnosis noted in the ledger; else `missed-ticks`), the verdict's reasons and one line per
    cause. The tables are `summary_text`, the diagnosis detail is in the attachments.
    """
    if result.passed:
        return ""
    lines = [headline(result), *_failure_markers(result, findings, led)]
    lines += [f"- {f.job} on {f.volume or 'every volume'}: {f.reason}" for f in result.failures]
    lines += _cause_lines(findings, led)
    return "\n".join(lines) + "\n"


def _reboot_category(proof: reboot.NodeReboot) -> str:
    # Down but never Ready again: the node did not come back; never seen down: nothing was proven.
    return "node-not-back" if proof.down_s is not None and proof.ready_s is None else "reboot-not-proven"


def step_failure_text(
    what: str,
    *,
    findings: Sequence[diagnosis.Finding] = (),
    reboots: Sequence[reboot.NodeReboot] = (),
) -> str:
    """A chaos step's failure message: `what` (one line), the category markers, one line per cause.

    Failed reboot proofs file it under node-not-back or reboot-not-proven; else the findings' own
    categories; else missed-ticks. `report.attach_step` attaches the full diagnosis beside it.
    """
    categories_found = [_reboot_category(proof) for proof in reboots if proof.failure]
    markers = [categories.category_marker(c) for c in dict.fromkeys(categories_found)]
    markers += [m for m in categories.finding_markers(findings) if m not in markers]
    lines = [what, *(markers or [categories.category_marker("missed-ticks")])]
    lines += [f"node {proof.node}: {proof.failure}" for proof in reboots if proof.failure]
    lines += [f"cause: [{finding.category}] {finding.summary}" for finding in findings]
    return "\n".join(lines) + "\n"
