"""Rule 4: the backup target the soak's backup jobs need says it is unavailable."""

from lhsoak import diagnosis

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
