"""Rule 7: the newest Job of the recurring job failed, or its pod burns through backoffLimit."""

from lhsoak import diagnosis


def test_newest_job_failed_with_backoff_limit_exceeded(world, make):
    failed = make.job("soak-bak", scheduled=make.clock("12:00"), outcome="failed", failed=1)
    world.put(
        failed,
        make.pod(
            failed,
            phase="Failed",
            node="node-2",
            created=make.clock("12:00"),
            restarts=3,
            last_exit=(
                1,
                "Error",
                "failed to complete backupAndCleanup for soak-vol-1: failed to create backup",
            ),
        ),
    )

    findings = world.diagnose(stalled={"soak-bak"})

    assert [f.category for f in findings] == ["job-pod-failing"], diagnosis.render(findings)
    finding = findings[0]
    assert finding.summary == (
        f"soak-bak: Job {failed['metadata']['name']} failed (BackoffLimitExceeded: Job has reached the specified "
        "backoff limit); last exit 1 (Error): failed to complete backupAndCleanup for soak-vol-1: failed to "
        "create backup"
    )
    assert "on node node-2, restarts 3; exit 1 (Error)" in finding.detail
    assert "backoffLimit 3 (Longhorn sets 3)" in finding.detail
    assert "logs <pod> --previous" in finding.detail
    assert finding.data["reason"] == "BackoffLimitExceeded"
    assert finding.data["retries"] == 1


def test_active_job_with_container_restarts_is_retrying(world, make):
    scheduled = make.clock("12:00")
    retrying = make.job("soak-snap", scheduled=scheduled)
    world.put(
        make.cronjob("soak-snap", schedule="*/2 * * * *", last_scheduled=scheduled, active=[retrying]),
        retrying,
        make.pod(
            retrying,
            phase="Running",
            node="node-1",
            created=scheduled,
            restarts=2,
            last_exit=(1, "Error", "timeouted waiting for the the snapshot to be ready"),
        ),
    )

    finding = next(f for f in world.diagnose() if f.category == "job-pod-failing")

    assert "is active and retrying: 2 of backoffLimit 3 retries used" in finding.detail
    assert finding.summary.endswith("last exit 1 (Error): timeouted waiting for the the snapshot to be ready")
    assert finding.data["retries"] == 2


def test_an_older_failed_job_followed_by_a_success_is_history(world):
    # The healthy world keeps a failed soak-snap Job from 11:50; the 12:00 Job completed.
    assert [f for f in world.diagnose() if f.category == "job-pod-failing"] == []
