"""Each lab fault profile reproduces an upstream bug; the harness must fail the run and name the cause.

`healthy` is the control: the same reboots, the fixed behaviour, and the run passes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from lhsoak import diagnosis, verdict

LabSoak = Callable[..., Any]


def _failed_jobs(result: verdict.Verdict) -> set[str]:
    return {failure.job for failure in result.failures}


def test_a_healthy_cluster_passes_full_cluster_restarts(lab_soak: LabSoak) -> None:
    outcome = lab_soak("healthy")
    assert outcome.step_failure is None
    assert outcome.verdict.passed, verdict.render_table(outcome.verdict)
    assert not {"stuck-pending-job", "stuck-inprogress-backup"} & outcome.categories


def test_a_job_pod_stuck_pending_after_a_reboot_is_caught_and_named(lab_soak: LabSoak) -> None:
    outcome = lab_soak("stuck-pending")
    assert not outcome.verdict.passed
    assert outcome.step_failure is not None
    assert "stuck-pending-job" in outcome.categories, outcome.findings
    assert "lhsoak-category: stuck-pending-job" in outcome.step_failure
    assert "Pending" in outcome.step_failure


def test_a_backup_stuck_in_progress_is_caught_while_snapshots_go_on(lab_soak: LabSoak) -> None:
    # longhorn#9168: the backup's own node reboots while the job pod, elsewhere, waits on it forever.
    outcome = lab_soak("stuck-backup", kind="backup-node", iterations=3, phase="any")
    assert not outcome.verdict.passed
    assert _failed_jobs(outcome.verdict) == {"soak-backup"}, verdict.render_table(outcome.verdict)
    assert "stuck-inprogress-backup" in outcome.categories, outcome.findings


def test_error_backups_piling_up_past_retain_are_caught(lab_soak: LabSoak) -> None:
    outcome = lab_soak("error-backups")
    assert not outcome.verdict.passed
    assert "error-backups-beyond-retain" in outcome.categories, diagnosis.render(outcome.findings)
    assert "backup-target-unavailable" not in outcome.categories, diagnosis.render(outcome.findings)


def test_a_backup_target_outage_is_caught_and_recorded(lab_soak: LabSoak) -> None:
    # No reboots: the outage alone (keyed to the first backup) must fail the backup job. Four ticks
    # of watching put the Error ticks well before the window's pending tail.
    outcome = lab_soak("backup-target-down", iterations=0, phase="any", ticks_after_chaos=4)
    assert not outcome.verdict.passed
    assert _failed_jobs(outcome.verdict) == {"soak-backup"}, verdict.render_table(outcome.verdict)
    assert any("BackupTarget/default: unavailable" in note for note in outcome.notes), outcome.notes
    # The outage is over by the time the diagnosis runs: the Error backups' messages, which say the
    # target was unavailable, must name the cause, not longhorn#7854's stale lock.
    rendered = diagnosis.render(outcome.findings)
    assert "backup-target-unavailable" in outcome.categories, rendered
    assert "error-backups-beyond-retain" not in outcome.categories, rendered
    target = next(f for f in outcome.findings if f.category == "backup-target-unavailable")
    assert target.summary.startswith("backup target default "), rendered
    assert "backup target default is unavailable" in target.detail, rendered
    assert "Not longhorn#7854" in target.detail, rendered


def test_remediation_applies_the_workaround_and_the_jobs_resume_but_the_run_still_fails(
    lab_soak: LabSoak,
) -> None:
    outcome = lab_soak("stuck-pending", remediate=True)
    assert not outcome.verdict.passed
    assert outcome.step_failure is not None
    assert "--remediate deleted Pod" in outcome.step_failure
    assert "every job fired again" in outcome.step_failure
    assert any('"remediation":true' in note for note in outcome.notes), outcome.notes
