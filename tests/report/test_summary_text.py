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
    assert re.search(r"^\s+vol-a\s+30\s+10\s+12\s", backup, flags=re.M), backup
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
