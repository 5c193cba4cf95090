"""Rule 3: Error backups of a job outlive retain; the job's retain cleanup skips them and only
failed-backup-ttl removes them (longhorn#7854)."""

from lhsoak import diagnosis

LOCK_ERROR = "failed lock backupstore/volumes/5e/0c/soak-vol-1/locks/lock-7f3a.lck type 2 acquisition"


def _error_backups(world, make, minutes):
    backups = [
        make.backup("soak-bak", "soak-vol-1", created=make.clock(m), state="Error", error=LOCK_ERROR)
        for m in minutes
    ]
    world.put(*backups)
    return backups


def test_error_backups_beyond_retain_name_count_oldest_and_error(world, make):
    # The healthy world already holds one Error backup (11:45:02) of soak-vol-1.
    added = _error_backups(world, make, ["11:05", "11:15", "11:25", "11:35"])
    oldest = added[0]["metadata"]["name"]

    findings = [
        f for f in world.diagnose(stalled={"soak-bak"}) if f.category == "error-backups-beyond-retain"
    ]

    assert len(findings) == 1, diagnosis.render(findings)
    finding = findings[0]
    assert finding.job == "soak-bak"
    assert finding.summary == (
        f'soak-bak: 5 Error backups of volume soak-vol-1 (retain 2), oldest 55m30s old: "{LOCK_ERROR}" '
        "(longhorn#7854)"
    )
    for fact in (
        f"on volume soak-vol-1: 5 > retain 2; oldest {oldest} created 2025-03-20T11:05:00Z (55m30s ago)",
        f'×5 "{LOCK_ERROR}"',
        "which Error backups never get",
        "failed-backup-ttl setting removes them (assumed 1440 min; the oldest goes in about 23h04m)",
        "longhorn#7854",
        '"*/2 * * * *"',
        'This job\'s cron: "*/5 * * * *"',
        f"delete backups.longhorn.io {oldest} ",
    ):
        assert fact in finding.detail, f"{fact!r} missing from:\n{finding.detail}"
    assert len(finding.objects) == 5
    assert {ref.kind for ref in finding.objects} == {"Backup"}
    assert finding.data["error_backups"] == 5
    assert finding.data["errors"] == {LOCK_ERROR: 5}


def test_error_backups_are_counted_per_volume(world, make):
    # Two more Error backups of soak-vol-2 (2 = retain) and one more of soak-vol-1 (2 = retain).
    world.put(
        *(
            make.backup("soak-bak", "soak-vol-2", created=make.clock(m), state="Error", error="x")
            for m in ("11:10", "11:20")
        ),
        make.backup("soak-bak", "soak-vol-1", created=make.clock("11:30"), state="Error", error="x"),
    )

    assert world.diagnose() == []


def test_error_backups_within_retain_are_not_a_finding(world):
    assert [f for f in world.diagnose() if f.category == "error-backups-beyond-retain"] == []


def test_the_failed_backup_ttl_is_a_parameter(world, make):
    _error_backups(world, make, ["11:05", "11:15"])

    findings = world.diagnose(thresholds=diagnosis.Thresholds(failed_backup_ttl_s=1800))

    assert "the oldest is already past it" in findings[0].detail


def test_errors_other_than_a_stale_lock_do_not_claim_longhorn_7854(world, make):
    world.put(
        *(
            make.backup("soak-bak", "soak-vol-2", created=make.clock(m), state="Error", error="x")
            for m in ("11:10", "11:20", "11:30")
        )
    )

    findings = [f for f in world.diagnose() if f.category == "error-backups-beyond-retain"]

    assert len(findings) == 1, diagnosis.render(findings)
    assert findings[0].summary.endswith('old: "x"')
    assert findings[0].data["issues"] == []
