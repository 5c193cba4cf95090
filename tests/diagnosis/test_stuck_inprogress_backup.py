"""Rule 2: a backup stuck InProgress after its node rebooted; the job pod waits on it with no
timeout, so the Forbid CronJob blocks every later backup tick (longhorn#9168, #9417)."""

from lhsoak import diagnosis

from .conftest import only


def _stuck_backup(world, make, *, with_waiting_pod=True):
    """soak-bak's 11:35 Job waits on soak-vol-1's backup; node-2, its owner, rebooted at 11:40."""
    scheduled = make.clock("11:35")
    stuck = make.backup(
        "soak-bak",
        "soak-vol-1",
        created=make.clock("11:35:20"),
        state="InProgress",
        progress=37,
        owner="node-2",
    )
    world.put(stuck, make.node("node-2", since=make.clock("11:40:05")))
    world.put(make.snapshot("soak-bak", "soak-vol-1", created=make.clock("11:35:20")))
    if with_waiting_pod:
        world.block_cronjob(
            "soak-bak",
            scheduled=scheduled,
            phase="Running",
            node="node-1",
            suffix="r4n8w",
            already_active=(5, make.clock("11:40"), make.clock("12:00")),
        )
    return stuck


def test_backup_stuck_in_progress_blocks_the_backup_job(world, make):
    stuck = _stuck_backup(world, make)
    name = stuck["metadata"]["name"]
    job_name = make.job_name("soak-bak", make.clock("11:35"))

    finding = only(world.diagnose(stalled={"soak-bak"}), "stuck-inprogress-backup")

    assert finding.job == "soak-bak"
    assert finding.summary == (
        f"soak-bak: backup {name} of volume soak-vol-1 stuck InProgress at 37% for 25m10s; the job "
        "pod waits on it with no timeout, so the Forbid CronJob has skipped 5 ticks (longhorn#9168)"
    )
    for fact in (
        f"Backup longhorn-system/{name}: state InProgress, progress 37%, created 2025-03-20T11:35:20Z",
        "owner node node-2",
        "lastSyncedAt never",
        "Node node-2: Ready=True KubeletReady since 2025-03-20T11:40:05Z (20m25s ago), after the backup started",
        "restart or lost contact after the backup started",
        f"Snapshot {stuck['status']['snapshotName']}: readyToUse True",
        f"Job pod longhorn-system/{job_name}-r4n8w Running on node node-1 for 25m30s",
        "with no timeout",
        "5 scheduled ticks since; 5 JobAlreadyActive events",
        "longhorn#9168, longhorn#9417",
        f"Workaround: kubectl -n longhorn-system delete backups.longhorn.io {name};",
    ):
        assert fact in finding.detail, f"{fact!r} missing from:\n{finding.detail}"
    assert [ref.kind for ref in finding.objects] == ["Backup", "Pod", "Job", "CronJob", "Node"]
    assert finding.data["blocking"] is True
    assert finding.data["progress"] == 37
    assert finding.data["skipped_ticks"] == 5


def test_a_blocking_stuck_backup_replaces_the_generic_blocked_cronjob_finding(world, make):
    _stuck_backup(world, make)

    categories = [finding.category for finding in world.diagnose()]

    assert "stuck-running-job" not in categories


def test_a_stuck_backup_with_no_waiting_pod_is_reported_as_not_blocking(world, make):
    _stuck_backup(world, make, with_waiting_pod=False)

    finding = only(world.diagnose(), "stuck-inprogress-backup")

    assert finding.summary.endswith("(not blocking the CronJob now) (longhorn#9168)")
    assert finding.data["blocking"] is False


def test_a_backup_that_never_started_counts_as_stuck_too(world, make):
    world.put(make.backup("soak-bak", "soak-vol-2", created=make.clock("11:20"), state=""))

    finding = only(world.diagnose(), "stuck-inprogress-backup")

    assert 'stuck "" (not started) at 0% for 40m30s' in finding.summary


def test_a_young_or_finished_backup_is_not_stuck(world, make):
    world.put(
        make.backup("soak-bak", "soak-vol-1", created=make.clock("11:55"), state="InProgress", progress=90),
        make.backup("soak-bak", "soak-vol-2", created=make.clock("10:00"), state="Completed"),
    )

    assert world.diagnose() == []


def test_the_stuck_threshold_is_a_parameter(world, make):
    world.put(
        make.backup("soak-bak", "soak-vol-1", created=make.clock("11:55"), state="InProgress", progress=90)
    )

    findings = world.diagnose(thresholds=diagnosis.Thresholds(backup_stuck_after_s=60))

    assert [finding.category for finding in findings] == ["stuck-inprogress-backup"]


def test_backups_of_other_recurring_jobs_are_not_this_jobs_business(world, make):
    world.put(make.backup("nightly", "soak-vol-1", created=make.clock("09:00"), state="InProgress"))

    assert world.diagnose() == []


def test_a_backup_older_than_the_active_job_is_not_what_its_pod_waits_on(world, make):
    _stuck_backup(world, make)
    world.put(
        make.backup("soak-bak", "soak-vol-2", created=make.clock("11:10"), state="InProgress", progress=3)
    )

    findings = [f for f in world.diagnose() if f.category == "stuck-inprogress-backup"]

    assert {f.data["volume"]: f.data["blocking"] for f in findings} == {
        "soak-vol-1": True,
        "soak-vol-2": False,
    }


def test_a_proven_reboot_of_the_owner_node_counts_though_ready_never_flipped(world, make):
    _stuck_backup(world, make)
    # A full-cluster restart: node-2 got a new boot id at 11:40, but its Ready condition kept a
    # transition time from before the backup started.
    world.put(make.node("node-2", since=make.clock("11:00")))
    world.node_restarts["node-2"] = make.clock("11:40").timestamp()

    finding = only(world.diagnose(), "stuck-inprogress-backup")

    assert "restart or lost contact after the backup started" in finding.detail
