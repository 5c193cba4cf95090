"""Rule 5: a volume the soak's jobs select is faulted, detached or degraded."""

import pytest

from lhsoak import diagnosis


def test_faulted_detached_volume_names_state_robustness_and_jobs(world, make):
    world.put(
        make.volume(
            "soak-vol-2",
            labels=make.VOLUME_LABELS["soak-vol-2"],
            state="detached",
            robustness="faulted",
            conditions=[
                {
                    "type": "Scheduled",
                    "status": "False",
                    "reason": "ReplicaSchedulingFailure",
                    "message": "insufficient storage",
                }
            ],
        )
    )

    findings = world.diagnose(stalled={"soak-bak"})

    assert [f.category for f in findings] == ["volume-unhealthy"], diagnosis.render(findings)
    finding = findings[0]
    assert finding.job is None
    assert finding.jobs == {"soak-bak"}  # via the group label recurring-job-group.longhorn.io/soak
    assert finding.summary == ("volume soak-vol-2 detached/faulted: robustness faulted; jobs soak-bak")
    for fact in (
        "Volume longhorn-system/soak-vol-2: state detached, robustness faulted, node none",
        "the recurring job skips faulted volumes",
        "allow-recurring-job-while-volume-detached",
        "condition Scheduled=False ReplicaSchedulingFailure: insufficient storage",
    ):
        assert fact in finding.detail, f"{fact!r} missing from:\n{finding.detail}"
    assert [str(ref) for ref in finding.objects] == ["Volume longhorn-system/soak-vol-2"]


def test_degraded_volume_is_reported_with_when_and_its_node(world, make):
    world.put(
        make.volume(
            "soak-vol-1",
            labels=make.VOLUME_LABELS["soak-vol-1"],
            node="node-3",
            robustness="degraded",
            degraded=make.clock("11:41"),
        ),
        make.node("node-3", ready="False", since=make.clock("11:40")),
    )

    finding = next(f for f in world.diagnose() if f.category == "volume-unhealthy")

    assert finding.data["jobs"] == ["soak-snap", "soak-bak"]
    assert "last degraded 2025-03-20T11:41:00Z (19m30s ago)" in finding.detail
    assert "a replica is missing or rebuilding" in finding.detail
    assert "Node node-3: Ready=False" in finding.detail


@pytest.mark.parametrize(("state", "robustness"), [("detached", "faulted"), ("attaching", "unknown")])
def test_a_volume_outside_the_soak_is_ignored(world, make, state, robustness):
    world.put(
        make.volume("other-vol", labels=make.VOLUME_LABELS["other-vol"], state=state, robustness=robustness)
    )

    assert world.diagnose() == []


def test_a_healthy_attached_volume_is_not_a_finding(world):
    assert [f for f in world.diagnose() if f.category == "volume-unhealthy"] == []


def test_a_volume_without_any_recurring_label_is_in_the_default_group(world, make):
    world.put(
        make.recurring_job("soak-snap", task="snapshot", cron="*/2 * * * *", retain=3, groups=["default"]),
        make.volume("other-vol", labels={}, state="attaching", robustness="unknown"),
    )

    finding = next(f for f in world.diagnose() if f.category == "volume-unhealthy")

    assert finding.data["jobs"] == ["soak-snap"]
    assert "state attaching: a job run fails for it" in finding.detail
