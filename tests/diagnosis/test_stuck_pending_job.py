"""Rule 1: a recurring-job pod stuck Pending keeps its Job active, so the Forbid CronJob skips
every later tick (longhorn#7956, #9185, #10204; kubernetes#118321)."""

from datetime import timedelta

import pytest

from lhsoak import diagnosis

from .conftest import only

REBOOTED_BOOT_ID = "e4c0f1aa-0b1c-4d2e-9f3a-4b5c6d7e8f90"


def _stuck_pending(world, make, *, node="node-2", unschedulable=""):
    """soak-bak's 11:30 Job: its pod was bound to node-2, which rebooted at 11:33."""
    world.put(make.node("node-2", since=make.clock("11:33:10"), boot_id=REBOOTED_BOOT_ID))
    return world.block_cronjob(
        "soak-bak",
        scheduled=make.clock("11:30"),
        phase="Pending",
        node=node,
        unschedulable=unschedulable,
        suffix="b7m2q",
        already_active=(6, make.clock("11:35"), make.clock("12:00")),
    )


def test_pending_pod_bound_to_a_rebooted_node_blocks_the_cronjob(world, make):
    stuck = _stuck_pending(world, make)
    pod_name = f"{stuck['metadata']['name']}-b7m2q"

    finding = only(world.diagnose(stalled={"soak-bak"}), "stuck-pending-job")

    assert finding.job == "soak-bak"
    assert finding.summary == (
        f"soak-bak: job pod {pod_name} Pending for 30m30s on node node-2, bound before the node "
        "restarted; the Forbid CronJob has skipped 6 ticks (longhorn#9185)"
    )
    for fact in (
        f"Pod longhorn-system/{pod_name}: phase Pending for 30m30s, created 2025-03-20T11:30:00Z",
        "spec.nodeName node-2",
        "Node node-2: Ready=True KubeletReady since 2025-03-20T11:33:10Z (27m20s ago), after the pod was created",
        f"bootID {REBOOTED_BOOT_ID}",
        f"lists Job {stuck['metadata']['name']} in status.active, scheduled 2025-03-20T11:30:00Z",
        "concurrencyPolicy Forbid",
        "6 scheduled ticks since; 6 JobAlreadyActive events on the CronJob",
        diagnosis.JOB_ALREADY_ACTIVE_MESSAGE,
        "longhorn#7956, longhorn#9185, longhorn#10204, kubernetes#118321",
        f"Workaround: kubectl -n longhorn-system delete pod {pod_name} (Longhorn KB",
        "older than 5 min",
        "longhorn-tests#2379",
    ):
        assert fact in finding.detail, f"{fact!r} missing from:\n{finding.detail}"
    assert [str(ref) for ref in finding.objects] == [
        f"Pod longhorn-system/{pod_name}",
        f"Job longhorn-system/{stuck['metadata']['name']}",
        "CronJob longhorn-system/soak-bak",
        "Node node-2",
    ]
    assert finding.data["skipped_ticks"] == 6
    assert finding.data["job_already_active_events"] == 6
    assert finding.data["node_boot_id"] == REBOOTED_BOOT_ID
    assert finding.data["node_restarted_after_bind"] is True


def test_the_more_specific_finding_replaces_the_generic_blocked_cronjob_one(world, make):
    _stuck_pending(world, make)

    categories = [finding.category for finding in world.diagnose()]

    assert "stuck-running-job" not in categories
    assert "cronjob-not-scheduling" not in categories


def test_pending_pod_on_a_node_still_down_needs_a_forced_delete(world, make):
    stuck = _stuck_pending(world, make)
    world.put(make.node("node-2", ready="Unknown", since=make.clock("11:31"), unreachable=True))

    finding = only(world.diagnose(), "stuck-pending-job")

    assert "on node node-2, which is NotReady (Ready=Unknown NodeStatusUnknown)" in finding.summary
    assert f"delete pod {stuck['metadata']['name']}-b7m2q --grace-period=0 --force" in finding.detail
    assert "node.kubernetes.io/unreachable:NoExecute" in finding.detail


def test_unschedulable_pending_pod_names_the_scheduler_message(world, make):
    message = "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector."
    _stuck_pending(world, make, node=None, unschedulable=message)

    finding = only(world.diagnose(), "stuck-pending-job")

    assert "not scheduled (Unschedulable)" in finding.summary
    assert f"PodScheduled=False Unschedulable: {message}" in finding.detail
    assert "spec.nodeName unset" in finding.detail
    assert finding.data["bound"] is False
    assert finding.data["unschedulable_reason"] == "Unschedulable"


@pytest.mark.parametrize("pending_for_s", [30, 110])
def test_a_pending_pod_that_has_cost_no_tick_yet_is_not_stuck(world, make, pending_for_s):
    world.block_cronjob(
        "soak-bak",
        scheduled=make.clock("12:00"),
        phase="Pending",
        node="node-1",
        created=make.NOW - timedelta(seconds=pending_for_s),
    )

    assert world.diagnose() == []


def test_the_pending_threshold_alone_makes_a_finding(world, make):
    world.block_cronjob("soak-bak", scheduled=make.clock("12:00"), phase="Pending", node="node-1")

    findings = world.diagnose(thresholds=diagnosis.Thresholds(pending_pod_after_s=20))

    finding = only(findings, "stuck-pending-job")
    assert "though bound to Ready node node-1" in finding.summary
    assert finding.summary.endswith("; no tick skipped yet (longhorn#9185)")


def test_a_running_job_pod_is_not_a_pending_finding(world, make):
    stuck = _stuck_pending(world, make)
    world.put(make.pod(stuck, phase="Running", node="node-1", created=make.clock("11:30"), suffix="b7m2q"))

    categories = [finding.category for finding in world.diagnose()]

    assert "stuck-pending-job" not in categories


def _pending_after_full_cluster_restart(world, make):
    """soak-bak's 11:30 pod bound to node-2, which now has a new boot id; with the control plane
    down too, a full-cluster restart never flipped its Ready condition: Ready=True since 11:20,
    before the pod was even bound. Tests say when the harness proved the reboot, if it did."""
    world.put(make.node("node-2", since=make.clock("11:20"), boot_id=REBOOTED_BOOT_ID))
    return world.block_cronjob(
        "soak-bak",
        scheduled=make.clock("11:30"),
        phase="Pending",
        node="node-2",
        suffix="b7m2q",
        already_active=(6, make.clock("11:35"), make.clock("12:00")),
    )


def test_a_reboot_the_harness_proved_shows_though_ready_never_flipped(world, make):
    stuck = _pending_after_full_cluster_restart(world, make)
    rebooted_s = make.clock("11:33").timestamp() + 0.4
    world.node_restarts["node-2"] = rebooted_s
    pod_name = f"{stuck['metadata']['name']}-b7m2q"

    finding = only(world.diagnose(stalled={"soak-bak"}), "stuck-pending-job")

    assert finding.summary == (
        f"soak-bak: job pod {pod_name} Pending for 30m30s on node node-2, rebooted (boot id changed) "
        "at 2025-03-20T11:33:00Z after the pod was bound at 2025-03-20T11:30:00Z; the Forbid CronJob "
        "has skipped 6 ticks (longhorn#9185)"
    )
    assert "Ready node" not in finding.summary
    for fact in (
        "Node node-2 was rebooted (boot id changed, proven by the harness) at 2025-03-20T11:33:00Z "
        "(27m30s ago), after the pod was bound at 2025-03-20T11:30:00Z (30m30s ago); the pod still "
        "shows Pending.",
        "Its Ready condition last changed before that reboot",
        f"bootID {REBOOTED_BOOT_ID}",
        "never started it after the reboot (kubernetes#118321)",
        f"Workaround: kubectl -n longhorn-system delete pod {pod_name} (Longhorn KB",
    ):
        assert fact in finding.detail, f"{fact!r} missing from:\n{finding.detail}"
    assert finding.data["node_restarted_after_bind"] is True
    assert finding.data["node_rebooted_at_s"] == rebooted_s
    assert finding.data["pod_bound_at_s"] == make.clock("11:30").timestamp()


def test_without_the_harness_proof_the_ready_condition_is_all_there_is(world, make):
    _pending_after_full_cluster_restart(world, make)

    finding = only(world.diagnose(), "stuck-pending-job")

    assert "though bound to Ready node node-2" in finding.summary
    assert "rebooted" not in finding.summary
    assert finding.data["node_restarted_after_bind"] is False
    assert finding.data["node_rebooted_at_s"] is None


def test_a_reboot_before_the_pod_was_bound_is_not_blamed(world, make):
    _pending_after_full_cluster_restart(world, make)
    world.node_restarts["node-2"] = make.clock("11:25").timestamp()

    finding = only(world.diagnose(), "stuck-pending-job")

    assert "though bound to Ready node node-2" in finding.summary
    assert "was rebooted" not in finding.detail
    assert finding.data["node_restarted_after_bind"] is False


def test_a_snapshot_without_node_restarts_still_builds(make):
    snapshot = diagnosis.ClusterSnapshot(taken_at_s=make.NOW_S)

    assert snapshot.node_restarts == {}
