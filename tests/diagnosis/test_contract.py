"""The small contract around the rules: thresholds fail early, findings are hashable values,
their data is JSON-safe, and a snapshot of half-populated objects does not crash a rule."""

import json

import pytest

from lhsoak import diagnosis


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("pending_pod_after_s", 0),
        ("backup_stuck_after_s", -1),
        ("failed_backup_ttl_s", 0),
        ("late_after_ticks", 0),
    ],
)
def test_bad_thresholds_fail_early_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"Thresholds.{field}"):
        diagnosis.Thresholds(**{field: value})


def test_findings_are_hashable_and_their_data_is_json(world, make):
    world.put(
        make.node("node-3", ready="Unknown", since=make.clock("11:45"), unreachable=True),
        make.backup_target(available=False, reason="Unavailable", message="down"),
    )

    findings = world.diagnose()

    assert len(set(findings)) == len(findings) == 2
    json.dumps([dict(finding.data) for finding in findings])


def test_objects_with_missing_fields_do_not_crash_the_rules(make):
    bare = (
        {
            "kind": "CronJob",
            "metadata": {"name": "soak-bak", "namespace": "longhorn-system"},
            "status": {"active": [{}]},
        },
        {"kind": "Job", "metadata": {"name": "soak-bak-1", "namespace": "longhorn-system"}},
        {"kind": "Pod", "metadata": {"namespace": "longhorn-system"}, "status": {"phase": "Pending"}},
        {"kind": "Node", "metadata": {"name": "node-1"}, "status": {"conditions": None}},
        {
            "kind": "Backup",
            "metadata": {"namespace": "longhorn-system"},
            "status": {"labels": {"RecurringJob": "soak-bak"}},
        },
        {"kind": "Volume", "metadata": {"namespace": "longhorn-system"}},
        {
            "kind": "BackupTarget",
            "metadata": {"namespace": "longhorn-system"},
            "status": {"available": False},
        },
    )
    snapshot = diagnosis.ClusterSnapshot(
        taken_at_s=make.NOW_S,
        cronjobs=bare[0:1],
        jobs=bare[1:2],
        pods=bare[2:3],
        nodes=bare[3:4],
        backups=bare[4:5],
        volumes=bare[5:6],
        backup_targets=bare[6:7],
    )

    findings = diagnosis.diagnose(snapshot, jobs=make.JOBS, stalled={"soak-bak"})

    assert {f.category for f in findings} >= {"node-not-ready", "backup-target-unavailable"}
    assert diagnosis.render(findings)


def test_an_unparseable_schedule_is_said_plainly(world, make):
    scheduled = make.clock("11:30")
    stuck = make.job("soak-bak", scheduled=scheduled)
    world.put(
        make.cronjob("soak-bak", schedule="@every 5m", last_scheduled=scheduled, active=[stuck]),
        stuck,
        make.pod(stuck, phase="Pending", node="node-1", created=scheduled, suffix="b7m2q"),
    )

    finding = next(f for f in world.diagnose() if f.category == "stuck-pending-job")

    assert "ticks since unknown (schedule not parsed)" in finding.detail
    assert finding.data["skipped_ticks"] is None
