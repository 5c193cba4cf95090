"""The plain-text summary and the failure messages say which job stopped, which ticks, how late, why."""

from __future__ import annotations

import re

from lhsoak import diagnosis, ledger, timestamps, verdict
from lhsoak.ledger_synth import Builder, job_spec
from lhsoak.reboot import NodeReboot
from lhsoak.report import categories, summary

START_S = timestamps.parse_rfc3339("2026-11-27T07:00:00Z")


def test_the_summary_has_a_table_per_job_with_its_misses_and_the_reboots(
    stalled_ledger: ledger.Ledger, stalled_verdict: verdict.Verdict
) -> None:
    text = summary.summary_text(stalled_verdict, stalled_ledger)
    assert text.startswith("lhsoak soak-synthetic: FAILED: soak-backup stopped firing")
    blocks = text.split("\n\n")
    snap = next(b for b in blocks if b.startswith("soak-snap"))
    backup = next(b for b in blocks if b.startswith("soak-backup"))
    assert "): passed" in snap.splitlines()[0]
    assert "): FAILED" in backup.splitlines()[0]
    assert re.search(r"^\s+vol-a\s+30\s+\d+\s+10\s+12\s", backup, flags=re.M), backup
    assert "missed on vol-a: 00:30:00 (no fire), 00:32:00 (no fire)" in backup
    assert "… 6 more" in backup
    reboots = next(b for b in blocks if b.startswith("reboots:"))
    assert re.search(r"node-3\s+00:23:30\s+00:28:00\s+270\.0", reboots), reboots
    assert len(reboots.splitlines()) == 2 + 5


def test_without_the_ledger_the_summary_still_has_the_tables(stalled_verdict: verdict.Verdict) -> None:
    text = summary.summary_text(stalled_verdict)
    assert "missed on" not in text
    assert "lag p50/p95/max s" in text


def test_a_late_fire_says_by_how_much() -> None:
    b = Builder(start_s=START_S, jobs=[job_spec("snap", task="snapshot")], lag_bound_s=60.0, volumes=["v"])
    b.fire(job="snap", volume="v", started_s=START_S + 5, done_s=START_S + 95)
    b.end(ts_s=START_S + 200)
    led = b.ledger()
    text = summary.summary_text(verdict.analyse(led), led)
    assert "missed on v: 07:00:00 (done after 95 s > 60 s)" in text


def _finding(category: diagnosis.Category, job: str) -> diagnosis.Finding:
    return diagnosis.Finding(
        category=category, job=job, summary=f"{job}: blocked", detail="line one\nline two"
    )


def test_the_failure_message_is_short_and_carries_the_cause(
    stalled_ledger: ledger.Ledger, stalled_verdict: verdict.Verdict
) -> None:
    findings = [_finding("stuck-pending-job", "soak-backup"), _finding("job-pod-failing", "soak-snap")]
    text = summary.failure_text(stalled_verdict, findings, stalled_ledger)
    lines = text.splitlines()
    assert lines[0] == summary.headline(stalled_verdict)
    # soak-snap passed: its finding is not why the run failed.
    assert categories.markers_in(text) == ["stuck-pending-job"]
    assert "cause: [stuck-pending-job] soak-backup: blocked" in lines
    assert len(lines) <= 12
    assert "line one" not in text


def test_without_findings_the_categories_noted_in_the_ledger_file_the_failure(
    stalled_ledger: ledger.Ledger, stalled_verdict: verdict.Verdict
) -> None:
    text = summary.failure_text(stalled_verdict, (), stalled_ledger)
    assert categories.markers_in(text) == ["stuck-pending-job"]
    assert "noted 2026-11-27T00:30:05.000000Z: soak-backup: job pod" in text


def test_with_no_cause_at_all_the_failure_is_filed_as_missed_ticks(stalled_verdict: verdict.Verdict) -> None:
    text = summary.failure_text(stalled_verdict)
    assert categories.markers_in(text) == ["missed-ticks"]
    assert "cause: none found in the cluster state" in text


def test_a_passed_run_has_no_failure_text() -> None:
    b = Builder(start_s=START_S, jobs=[job_spec("snap", task="snapshot")], volumes=["v"])
    b.regular_fires(job="snap", volumes=["v"], until_s=START_S + 600)
    b.end(ts_s=START_S + 600)
    result = verdict.analyse(b.ledger())
    assert result.passed
    assert summary.failure_text(result) == ""
    assert summary.summary_text(result).startswith("lhsoak synthetic: PASSED")


def _proof(node: str, *, down_s: float | None, ready_s: float | None, failure: str | None) -> NodeReboot:
    return NodeReboot(
        node=node, started_s=START_S, old_boot_id="a", down_s=down_s, ready_s=ready_s, failure=failure
    )


def test_a_step_whose_node_never_came_back_is_filed_as_such() -> None:
    text = summary.step_failure_text(
        "step 2: cluster reboot of node-1, node-2: reboot not proven",
        reboots=[
            _proof("node-1", down_s=START_S + 5, ready_s=None, failure="not Ready within 900 s"),
            _proof("node-2", down_s=START_S + 5, ready_s=START_S + 90, failure=None),
        ],
    )
    assert categories.markers_in(text) == ["node-not-back"]
    assert "node node-1: not Ready within 900 s" in text
    assert "node-2" not in text.splitlines()[-1]


def test_a_reboot_never_seen_down_is_not_proven() -> None:
    text = summary.step_failure_text(
        "step 1: worker reboot of node-3: reboot not proven",
        reboots=[_proof("node-3", down_s=None, ready_s=None, failure="boot id unchanged after 300 s")],
    )
    assert categories.markers_in(text) == ["reboot-not-proven"]


def test_a_step_with_findings_carries_their_categories() -> None:
    text = summary.step_failure_text(
        "step 2: missed ticks", findings=[_finding("stuck-inprogress-backup", "soak-backup")]
    )
    assert text.splitlines()[:2] == ["step 2: missed ticks", "lhsoak-category: stuck-inprogress-backup"]
    assert (
        summary.step_failure_text("step 2: missed ticks").splitlines()[1] == "lhsoak-category: missed-ticks"
    )


def _cells(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def _summary_columns(text: str, job: str, volume: str) -> dict[str, str]:
    block = next(b for b in text.split("\n\n") if b.startswith(job)).splitlines()
    row = next(line for line in block if line.split()[:1] == [volume])
    return dict(zip(_cells(block[1]), _cells(row), strict=True))


def _analyze_columns(result: verdict.Verdict, job: str, volume: str) -> dict[str, str]:
    lines = verdict.render_table(result).splitlines()
    row = next(line for line in lines if line.split()[:2] == [job, volume])
    return dict(zip(_cells(lines[2]), _cells(row), strict=True))


def test_the_summary_and_analyze_count_the_same_things_under_the_same_names(
    stalled_verdict: verdict.Verdict,
) -> None:
    text = summary.summary_text(stalled_verdict)
    for job in stalled_verdict.jobs:
        for row in job.volumes:
            mine = _summary_columns(text, job.name, row.volume)
            theirs = _analyze_columns(stalled_verdict, job.name, row.volume)
            for name, value in (
                ("in outage", row.excused),
                ("fired", row.fired),
                ("missed", row.missed),
                ("missed in outage", row.excused_missed),
                ("pending", row.pending),
                ("Errors left", row.errors_left),
                ("piled up", row.errors_piled_up),
            ):
                assert mine[name] == theirs[name.upper().replace(" ", "-")] == str(value), name
    assert "in outage: ticks due while an outage ran" in text


def _error_backups(*, volumes: tuple[str, ...] = ("v",), end_reason: str = "completed") -> verdict.Verdict:
    """node-1 is down 07:19:50 to 07:28:20; every backup started meanwhile ends in Error and stays
    (longhorn#7854). Those ticks are excused; the job fires on time again from 07:30."""
    b = Builder(start_s=START_S, jobs=[job_spec("soak-backup", task="backup")], volumes=list(volumes))
    b.regular_fires(
        job="soak-backup",
        volumes=volumes,
        until_s=START_S + 2400,
        skip=lambda t, _v: START_S + 1200 <= t < START_S + 1800,
    )
    for volume in volumes:
        for tick in (START_S + 1200 + 120 * k for k in range(5)):
            b.fire(job="soak-backup", volume=volume, started_s=tick + 2, done_s=None, state="Error")
    b.reboot_cycle(node="node-1", start_s=START_S + 1190, ready_s=START_S + 1700)
    b.end(ts_s=START_S + 2400, reason=end_reason)
    return verdict.analyse(b.ledger())


def test_the_headline_names_error_backups_piling_up_not_missed_ticks() -> None:
    result = _error_backups()
    (row,) = result.jobs[0].volumes
    assert (row.missed, row.errors_piled_up) == (0, 5)
    assert summary.headline(result) == (
        "lhsoak synthetic: FAILED: soak-backup left 5 Error backups, more than retain 1"
    )
    several = _error_backups(volumes=("v1", "v2", "v3"))
    assert summary.headline(several) == (
        "lhsoak synthetic: FAILED: soak-backup left Error backups beyond retain 1 on 3 of 3 volumes "
        "(up to 5 on one)"
    )


def test_the_headline_counts_each_job_s_own_missed_ticks() -> None:
    b = Builder(
        start_s=START_S,
        jobs=[job_spec("snap", task="snapshot"), job_spec("backup", task="backup")],
        volumes=["v"],
    )
    b.regular_fires(job="snap", volumes=["v"], until_s=START_S + 600, skip=lambda t, _v: t == START_S + 240)
    b.regular_fires(job="backup", volumes=["v"], until_s=START_S + 600, skip=lambda t, _v: t >= START_S + 240)
    b.end(ts_s=START_S + 600)
    assert summary.headline(verdict.analyse(b.ledger())) == (
        "lhsoak synthetic: FAILED: snap stopped firing (1 missed tick outside outages); "
        "backup stopped firing (3 missed ticks outside outages)"
    )


def test_an_interrupted_run_is_interrupted_unless_it_failed_before() -> None:
    b = Builder(start_s=START_S, jobs=[job_spec("snap", task="snapshot")], volumes=["v"])
    b.regular_fires(job="snap", volumes=["v"], until_s=START_S + 600)
    b.reboot_cycle(node="node-1", start_s=START_S + 590, ready_s=None)
    b.end(ts_s=START_S + 600, reason="interrupted")
    assert summary.headline(verdict.analyse(b.ledger())) == (
        "lhsoak synthetic: INTERRUPTED: the run was stopped before its verdict could be reached"
    )
    failed = summary.headline(_error_backups(end_reason="interrupted"))
    assert failed == (
        "lhsoak synthetic: FAILED before the run was INTERRUPTED: soak-backup left 5 Error backups, "
        "more than retain 1"
    )


def _backup_run(*, fires: dict[float, str | None], lag_bound_s: float = 60.0) -> verdict.Verdict:
    """A backup job every 2 minutes on one volume for 20 minutes, no reboot. `fires` maps a tick's
    offset (s) to what became of its backup: "Error", "stuck" (InProgress, never done) or None (no
    backup at all); every other tick's backup is done 30 s after it."""
    b = Builder(
        start_s=START_S,
        jobs=[job_spec("soak-backup", task="backup")],
        lag_bound_s=lag_bound_s,
        volumes=["v"],
    )
    for offset in range(0, 1200, 120):
        tick = START_S + offset
        what = fires.get(offset, "done")
        if what == "done":
            b.fire(job="soak-backup", volume="v", started_s=tick + 2, done_s=tick + 30)
        elif what == "Error":
            b.fire(job="soak-backup", volume="v", started_s=tick + 2, done_s=None, state="Error")
        elif what == "stuck":
            b.fire_progress(job="soak-backup", volume="v", started_s=tick + 2, done_s=None)
    b.end(ts_s=START_S + 1200)
    return verdict.analyse(b.ledger())


def test_backups_that_fired_and_failed_are_not_said_to_have_stopped_firing() -> None:
    result = _backup_run(fires={600: "Error", 720: "Error"})
    (row,) = result.jobs[0].volumes
    assert dict(row.missed_causes) == {"no_fire": 0, "late": 0, "error": 2}
    line = summary.headline(result)
    assert "stopped firing" not in line
    assert line == (
        "lhsoak synthetic: FAILED: soak-backup fired but failed (2 ticks outside outages ended in Error) "
        "and left 2 Error backups, more than retain 1"
    )


def test_a_job_that_failed_and_then_stopped_says_both_on_one_line() -> None:
    line = summary.headline(_backup_run(fires={600: "Error", 720: None, 840: None, 960: None}))
    assert line == (
        "lhsoak synthetic: FAILED: soak-backup stopped firing (3 missed ticks outside outages) "
        "and fired but failed (1 tick outside outages ended in Error)"
    )
    assert "\n" not in line


def test_a_backup_stuck_in_progress_blocks_the_job_it_stopped_firing_after_it() -> None:
    # The stuck-backup shape: the stuck backup's tick is late (never done); with Forbid, nothing
    # starts after it, and the headline still starts as the acceptance test greps it.
    stuck: dict[float, str | None] = {600: "stuck", **dict.fromkeys(range(720, 1200, 120))}
    line = summary.headline(_backup_run(fires=stuck))
    assert line.startswith("lhsoak synthetic: FAILED: soak-backup stopped firing (4 missed ticks ")
    assert line.endswith("and fired but was not done in time (1 tick outside outages, lag bound 60 s)")
