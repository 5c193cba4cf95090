"""Findings about stalled jobs come first; within a group, the most specific cause first."""

import pytest

from lhsoak import diagnosis


@pytest.fixture
def broken(world, make):
    """Six causes at once: soak-bak's pod stuck Pending, soak-snap's CronJob late, Error backups
    of soak-bak beyond retain, the backup target down, soak-vol-1 degraded, node-3 NotReady."""
    world.block_cronjob(
        "soak-bak", scheduled=make.clock("11:30"), phase="Pending", node="node-2", suffix="b7m2q"
    )
    world.put(
        make.cronjob("soak-snap", schedule="*/2 * * * *", last_scheduled=make.clock("11:40")),
        *(
            make.backup("soak-bak", "soak-vol-2", created=make.clock(m), state="Error", error="failed lock")
            for m in ("11:05", "11:10", "11:15")
        ),
        make.backup_target(available=False, reason="Unavailable", message="dial tcp: i/o timeout"),
        make.volume("soak-vol-1", labels=make.VOLUME_LABELS["soak-vol-1"], robustness="degraded"),
        make.node("node-3", ready="Unknown", since=make.clock("11:45"), unreachable=True),
    )
    return world


def _order(findings):
    return [(finding.category, finding.job or ",".join(sorted(finding.jobs)) or "-") for finding in findings]


def test_without_stalled_jobs_the_most_specific_cause_comes_first(broken):
    assert _order(broken.diagnose()) == [
        ("stuck-pending-job", "soak-bak"),
        ("cronjob-not-scheduling", "soak-snap"),
        ("error-backups-beyond-retain", "soak-bak"),
        ("backup-target-unavailable", "soak-bak"),
        ("volume-unhealthy", "soak-bak,soak-snap"),
        ("node-not-ready", "-"),
    ]


def test_findings_about_the_stalled_job_come_first(broken):
    assert _order(broken.diagnose(stalled={"soak-snap"})) == [
        ("cronjob-not-scheduling", "soak-snap"),
        ("volume-unhealthy", "soak-bak,soak-snap"),
        ("stuck-pending-job", "soak-bak"),
        ("error-backups-beyond-retain", "soak-bak"),
        ("backup-target-unavailable", "soak-bak"),
        ("node-not-ready", "-"),
    ]


def test_cluster_wide_causes_of_a_stalled_job_come_with_its_own(broken):
    assert _order(broken.diagnose(stalled={"soak-bak"})) == [
        ("stuck-pending-job", "soak-bak"),
        ("error-backups-beyond-retain", "soak-bak"),
        ("backup-target-unavailable", "soak-bak"),
        ("volume-unhealthy", "soak-bak,soak-snap"),
        ("cronjob-not-scheduling", "soak-snap"),
        ("node-not-ready", "-"),
    ]


def test_category_titles_list_every_category_in_rank_order():
    assert list(diagnosis.CATEGORY_TITLES) == list(diagnosis.Category.__args__)
