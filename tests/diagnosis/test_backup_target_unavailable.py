"""Rule 4: the backup target the soak's backup jobs need says it is unavailable."""

import re
from datetime import timedelta

from lhsoak import diagnosis

from .conftest import only

MESSAGE = (
    "failed to list backup volumes in s3://lhsoak-backups@us-east-1/: RequestError: send request "
    "failed caused by: dial tcp 52.216.0.1:443: i/o timeout"
)


def test_unavailable_backup_target_names_reason_message_and_since(world, make):
    world.put(
        make.backup_target(available=False, reason="Unavailable", message=MESSAGE, since=make.clock("11:40"))
    )

    findings = world.diagnose(stalled={"soak-bak"})

    assert [f.category for f in findings] == ["backup-target-unavailable"], diagnosis.render(findings)
    finding = findings[0]
    assert finding.job is None
    assert finding.jobs == {"soak-bak"}
    assert finding.summary.startswith(
        "backup target default unavailable since 2025-03-20T11:40:00Z (20m30s ago): Unavailable: failed to list"
    )
    assert finding.summary.endswith("; blocks backup jobs soak-bak")
    for fact in (
        'backupTargetURL "s3://lhsoak-backups@us-east-1/"',
        'credentialSecret "lhsoak-s3-secret"',
        "pollInterval 5m0s",
        "status.available False",
        "Condition Unavailable=True since 2025-03-20T11:40:00Z (20m30s ago): Unavailable: " + MESSAGE,
        "every pollInterval",
    ):
        assert fact in finding.detail, f"{fact!r} missing from:\n{finding.detail}"
    assert [str(ref) for ref in finding.objects] == ["BackupTarget longhorn-system/default"]
    assert finding.data["since"] == "2025-03-20T11:40:00Z"


def test_an_available_backup_target_is_not_a_finding(world):
    assert [f for f in world.diagnose() if f.category == "backup-target-unavailable"] == []


def test_an_unavailable_target_does_not_matter_without_backup_jobs(world, make):
    world.put(make.backup_target(available=False, reason="Unavailable", message=MESSAGE))
    snapshots_only = [spec for spec in make.JOBS if spec.task == "snapshot"]

    assert world.diagnose(jobs=snapshots_only) == []


# As the lab's backup controller words it (lab/controllers/backups.py `_target_error`): the
# sentence that says why sits in the middle, past a 120-character clip.
def _target_error(volume):
    return (
        f"failed to create backup to s3://lhsoak-backups@us-east-1/ for volume {volume}: backup "
        "target default is unavailable: failed to list backup volumes in "
        "s3://lhsoak-backups@us-east-1/: connection refused"
    )


LOCK_ERROR = (
    "proxyServer=10.42.1.15:8501 destination=10.42.1.15:10000: failed to backup snapshot "
    "soak-bak-3f2a9c1e-8d4b-4f6a-9b2c-1e7d5a3c9f80 to backup-1f3c5a7e9b2d4f60: rpc error: code = "
    "Unknown desc = failed to create backup to s3://lhsoak-backups@us-east-1/ for volume soak-vol-1: "
    "rpc error: code = Unknown desc = failed lock "
    "backupstore/volumes/5e/0c/soak-vol-1/locks/lock-7f3a2b1c9d8e6f50.lck type 1 acquisition"
)


def _target_outage_backups(world, make, minutes, *, volumes=("soak-vol-1", "soak-vol-2")):
    """Error backups of soak-bak made during an outage, each with the lab's target error."""
    backups = [
        make.backup(
            "soak-bak",
            volume,
            created=make.clock(minute),
            state="Error",
            error=_target_error(volume),
            synced=make.clock(minute) + timedelta(seconds=1),
        )
        for minute in minutes
        for volume in volumes
    ]
    world.put(*backups)
    return backups


def _target_back_up_at(make, when):
    """BackupTarget `default` available again: Unavailable turned False at `when`."""
    return make.backup_target(available=True, since=when)


def test_error_backups_that_say_the_target_was_unavailable_name_it_after_the_outage(world, make):
    # The outage (11:40-11:52:30) is over when the rules run: only the Error backups remember it.
    failed = _target_outage_backups(world, make, ["11:40", "11:45", "11:50"])
    world.put(_target_back_up_at(make, make.clock("11:52:30")))

    findings = world.diagnose(stalled={"soak-bak"})

    assert [f.category for f in findings] == ["backup-target-unavailable"], diagnosis.render(findings)
    finding = findings[0]
    assert finding.jobs == {"soak-bak"}
    assert finding.summary == (
        "backup target default was unavailable: 6 Error backups of soak-bak failed from "
        "2025-03-20T11:40:01Z to 2025-03-20T11:50:01Z: "
        f'"{_target_error("soak-vol-1")}"; available again since 2025-03-20T11:52:30Z'
    )
    for fact in (
        "status.available True",
        "Condition Unavailable=False since 2025-03-20T11:52:30Z (8m00s ago): the target is available again",
        "6 Error backups of soak-bak on volumes soak-vol-1 soak-vol-2, from 2025-03-20T11:40:01Z",
        "6 say the backup target is unavailable",
        # The two volumes' errors differ only by the volume's name: one error, said once.
        f'×6, e.g. "{_target_error("soak-vol-1")}"',
        "fails the recurring-job run",
        "failed-backup-ttl setting removes them (assumed 1440 min)",
        "Not longhorn#7854",
        "every pollInterval",
        f"delete backups.longhorn.io {failed[0]['metadata']['name']} ",
    ):
        assert fact in finding.detail, f"{fact!r} missing from:\n{finding.detail}"
    assert [ref.kind for ref in finding.objects] == ["BackupTarget"] + ["Backup"] * 6
    assert finding.data["available_now"] is True
    assert finding.data["error_backups"] == 6


def test_target_errors_are_not_blamed_on_the_stale_lock_of_longhorn_7854(world, make):
    # 3 Error backups per volume, beyond retain 2: before, all went to error-backups-beyond-retain.
    _target_outage_backups(world, make, ["11:40", "11:45", "11:50"])

    findings = world.diagnose(stalled={"soak-bak"})

    categories = [f.category for f in findings]
    assert "error-backups-beyond-retain" not in categories, diagnosis.render(findings)
    assert "longhorn#7854)" not in diagnosis.render(findings)
    assert "keep the cron at */2" not in diagnosis.render(findings)


def test_stale_lock_errors_and_target_errors_are_both_said(world, make):
    _target_outage_backups(world, make, ["11:40", "11:45"], volumes=("soak-vol-1",))
    world.put(
        *(
            make.backup("soak-bak", "soak-vol-1", created=make.clock(m), state="Error", error=LOCK_ERROR)
            for m in ("11:05", "11:10")
        )
    )

    findings = world.diagnose(stalled={"soak-bak"})

    retain = only(findings, "error-backups-beyond-retain")
    target = only(findings, "backup-target-unavailable")
    # The healthy world's own lock error plus the two above: 3 > retain 2; the target's 2 are apart.
    assert retain.data["error_backups"] == 3
    assert retain.data["target_unavailable_errors"] == 2
    assert retain.summary.endswith('type 1 acquisition" (longhorn#7854)')
    assert "Besides these, 2 Error backups of this volume failed because the backup target" in retain.detail
    assert target.data["error_backups"] == 2
    assert "2 Error backups of soak-bak failed" in target.summary


def test_a_long_error_keeps_the_part_that_says_why(world, make):
    why = "backup target default is unavailable: failed to list backup volumes"
    wrapped = (
        "proxyServer=10.42.1.15:8501 destination=10.42.1.15:10000: failed to backup snapshot "
        "soak-bak-3f2a9c1e-8d4b-4f6a-9b2c-1e7d5a3c9f80 to backup-1f3c5a7e9b2d4f60: rpc error: code = "
        f"Unknown desc = failed to create backup for volume soak-vol-1: {why} in "
        "s3://lhsoak-backups@us-east-1/: RequestError: send request failed caused by: Get "
        '"https://lhsoak-backups.s3.us-east-1.amazonaws.com/?delimiter=%2F&prefix=backupstore%2Fvolumes%2F": '
        "dial tcp 52.216.0.1:443: i/o timeout"
    )
    world.put(
        make.backup("soak-bak", "soak-vol-2", created=make.clock("11:40"), state="Error", error=wrapped)
    )

    finding = only(world.diagnose(), "backup-target-unavailable")

    quoted = re.search(r': "(.*)"; available now$', finding.summary).group(1)
    assert why in quoted, finding.summary
    assert quoted.startswith("proxyServer=")
    assert quoted.endswith("dial tcp 52.216.0.1:443: i/o timeout"), "the root cause, last in Go errors"
    assert "…" in quoted
    assert len(quoted) <= 240


def test_a_long_lock_error_keeps_its_cause_in_the_summary(world, make):
    world.put(
        *(
            make.backup("soak-bak", "soak-vol-2", created=make.clock(m), state="Error", error=LOCK_ERROR)
            for m in ("11:05", "11:10", "11:15")
        )
    )

    finding = only(world.diagnose(), "error-backups-beyond-retain")

    assert "failed lock backupstore/volumes/5e/0c/soak-vol-1/locks/" in finding.summary
    assert finding.summary.endswith('.lck type 1 acquisition" (longhorn#7854)')


def test_errors_while_the_target_is_down_are_its_doing_unless_they_name_another_cause(world, make):
    # The target has been down since 11:40; a backup failing after that with a bare network error
    # failed on it, one before it did not, and a stale lock is a stale lock whenever it happens.
    timeout = "failed to create backup: dial tcp 52.216.0.1:443: i/o timeout"
    world.put(
        make.backup_target(available=False, reason="Unavailable", message=MESSAGE, since=make.clock("11:40")),
        *(
            make.backup("soak-bak", "soak-vol-2", created=make.clock(m), state="Error", error=timeout)
            for m in ("11:30", "11:45", "11:50")
        ),
        make.backup("soak-bak", "soak-vol-2", created=make.clock("11:55"), state="Error", error=LOCK_ERROR),
    )

    findings = world.diagnose(stalled={"soak-bak"})

    target = only(findings, "backup-target-unavailable")
    assert target.summary.startswith("backup target default unavailable since 2025-03-20T11:40:00Z")
    assert "; 2 Error backups of soak-bak failed from 2025-03-20T11:45:00Z to 2025-03-20T11:50:00Z" in (
        target.summary
    )
    assert target.summary.endswith("; blocks backup jobs soak-bak")
    assert "2 failed while it is unavailable, with no other cause named" in target.detail
    assert [f for f in findings if f.category == "error-backups-beyond-retain"] == []


def test_one_error_backup_is_evidence_of_an_outage_long_over(world, make):
    # A target error from before the target came back at 11:30 is still evidence of that outage,
    # but the target blocks nothing now.
    world.put(
        make.backup(
            "soak-bak", "soak-vol-2", created=make.clock("11:20"), state="Error", error=_target_error("v")
        ),
        _target_back_up_at(make, make.clock("11:30")),
    )

    finding = only(world.diagnose(), "backup-target-unavailable")

    assert finding.summary.startswith("backup target default was unavailable: 1 Error backup of soak-bak")
    assert finding.summary.endswith("; available again since 2025-03-20T11:30:00Z")
    assert "blocks" not in finding.summary
