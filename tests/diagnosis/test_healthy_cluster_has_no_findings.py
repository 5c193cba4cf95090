"""A healthy cluster, including normal history (an older failed Job, an Error backup within
retain, a volume outside the soak), yields no finding at all."""

from lhsoak import diagnosis


def test_healthy_cluster_has_no_findings(world):
    findings = world.diagnose(stalled={"soak-snap", "soak-bak"})

    assert findings == [], diagnosis.render(findings)


def test_a_job_that_just_started_is_not_stuck(world, make):
    # A fresh Pending pod and a fresh InProgress backup are normal for a few seconds.
    world.block_cronjob(
        "soak-bak", scheduled=make.clock("12:00"), phase="Pending", node="node-1", waiting="ContainerCreating"
    )
    world.put(
        make.backup("soak-bak", "soak-vol-1", created=make.clock("12:00:20"), state="InProgress", progress=5),
    )

    findings = world.diagnose(stalled={"soak-bak"})

    assert findings == [], diagnosis.render(findings)
