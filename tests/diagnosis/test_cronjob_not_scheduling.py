"""Rule 6: the CronJob is missing, suspended, late with nothing active, or blocked by an active
Job that never ends (and nothing more specific explains it)."""

from lhsoak import diagnosis

from .conftest import only


def test_missing_cronjob_of_an_existing_recurring_job(world):
    world.remove("CronJob", "soak-snap")

    finding = only(world.diagnose(stalled={"soak-snap"}), "cronjob-not-scheduling")

    assert (
        finding.summary
        == "soak-snap: CronJob longhorn-system/soak-snap missing; the recurring job never fires"
    )
    assert (
        "RecurringJob longhorn-system/soak-snap exists (owner node node-1, executionCount 287)"
        in finding.detail
    )
    assert "longhorn-manager log on node-1" in finding.detail
    assert finding.data == {"reason": "missing", "recurring_job_exists": True}


def test_missing_recurring_job_and_cronjob(world):
    world.remove("CronJob", "soak-snap").remove("RecurringJob", "soak-snap")

    finding = only(world.diagnose(), "cronjob-not-scheduling")

    assert finding.summary.startswith("soak-snap: no RecurringJob and no CronJob")
    assert finding.objects == ()


def test_suspended_cronjob(world, make):
    world.put(
        make.cronjob("soak-bak", schedule="*/5 * * * *", last_scheduled=make.clock("11:20"), suspend=True)
    )

    finding = only(world.diagnose(), "cronjob-not-scheduling")

    assert finding.summary == "soak-bak: CronJob suspended (spec.suspend true); no tick starts a Job"
    assert "last scheduled 2025-03-20T11:20:00Z (40m30s ago)" in finding.detail
    assert '"spec":{"suspend":false}' in finding.detail
    assert finding.data["reason"] == "suspended"


def test_late_cronjob_with_no_active_job_names_missed_ticks_and_warning_events(world, make):
    cronjob = make.cronjob("soak-snap", schedule="*/2 * * * *", last_scheduled=make.clock("11:40"))
    warning = make.event(
        cronjob,
        reason="TooManyMissedTimes",
        message="too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check clock skew",
        first=make.clock("11:58"),
        type_="Warning",
    )
    world.put(cronjob, warning)

    finding = only(world.diagnose(stalled={"soak-snap"}), "cronjob-not-scheduling")

    assert finding.summary == (
        "soak-snap: CronJob last scheduled 2025-03-20T11:40:00Z (20m30s ago); 10 ticks since, no active "
        "Job; events: TooManyMissedTimes"
    )
    assert "10 scheduled ticks since, and no Job is active" in finding.detail
    assert (
        "Event Warning TooManyMissedTimes x1, last 2025-03-20T11:58:00Z (2m30s ago): too many missed"
        in finding.detail
    )
    assert [ref.kind for ref in finding.objects] == ["CronJob", "Event"]
    assert finding.data["missed_ticks"] == 10


def test_one_missed_tick_is_not_late_yet(world, make):
    world.put(make.cronjob("soak-snap", schedule="*/2 * * * *", last_scheduled=make.clock("11:58")))

    assert world.diagnose() == []


def test_a_cronjob_that_was_never_scheduled_counts_from_its_creation(world, make):
    world.put(
        make.cronjob("soak-bak", schedule="*/5 * * * *", last_scheduled=None, created=make.clock("11:00"))
    )

    finding = only(world.diagnose(), "cronjob-not-scheduling")

    assert "never scheduled since its creation 2025-03-20T11:00:00Z" in finding.summary
    assert finding.data["missed_ticks"] == 12


def test_a_schedule_that_differs_from_the_soak_config_is_pointed_out(world, make):
    world.put(make.cronjob("soak-snap", schedule="*/30 * * * *", last_scheduled=make.clock("10:30")))

    finding = only(world.diagnose(), "cronjob-not-scheduling")

    assert (
        'The CronJob\'s schedule "*/30 * * * *" differs from the soak\'s cron "*/2 * * * *".'
        in finding.detail
    )


def test_seconds_first_crons_of_the_lab_are_understood(world, make):
    world.put(make.cronjob("soak-snap", schedule="*/10 * * * * *", last_scheduled=make.clock("11:59:50")))
    lab_jobs = [diagnosis.JobSpec(name="soak-snap", task="snapshot", cron="*/10 * * * * *", retain=3)]

    finding = only(world.diagnose(jobs=lab_jobs), "cronjob-not-scheduling")

    assert finding.data["missed_ticks"] == 4


def test_active_job_whose_pod_sits_on_an_unreachable_node_blocks_the_cronjob(world, make):
    blocked = world.block_cronjob(
        "soak-snap", scheduled=make.clock("11:40"), phase="Running", node="node-3", suffix="k2v9d"
    )
    world.put(make.node("node-3", ready="Unknown", since=make.clock("11:45"), unreachable=True))
    pod_name = f"{blocked['metadata']['name']}-k2v9d"

    finding = only(world.diagnose(stalled={"soak-snap"}), "stuck-running-job")

    assert finding.summary == (
        f"soak-snap: CronJob blocked by active Job {blocked['metadata']['name']}: pod {pod_name} Running on "
        "node node-3, which is NotReady (Ready=Unknown NodeStatusUnknown); the Forbid CronJob has skipped 10 ticks"
    )
    for fact in (
        f"Pod longhorn-system/{pod_name}: Running on node node-3 for 20m30s.",
        "no JobAlreadyActive event in the snapshot",
        "Node node-3: Ready=Unknown NodeStatusUnknown since 2025-03-20T11:45:00Z (15m30s ago)",
        "node.kubernetes.io/unreachable for 300 s",
        f"deleting Job {blocked['metadata']['name']} frees the CronJob",
    ):
        assert fact in finding.detail, f"{fact!r} missing from:\n{finding.detail}"
    assert [ref.kind for ref in finding.objects] == ["Job", "CronJob", "Pod", "Node"]
    assert finding.data["node_not_ready"] == "node-3"


def test_an_active_job_within_two_ticks_is_not_blocking_yet(world, make):
    world.block_cronjob("soak-snap", scheduled=make.clock("11:58"), phase="Running", node="node-1")

    assert world.diagnose() == []
