"""Longhorn objects become ledger fires only for the jobs under test, with the cluster's own times."""

from __future__ import annotations

from typing import Any

from lhsoak import artifacts, timestamps

T0 = "2026-11-27T07:00:00Z"


def _snapshot(job: str, *, ready: bool, error: str = "") -> dict[str, Any]:
    return {
        "metadata": {"name": "snap-1", "namespace": "longhorn-system", "creationTimestamp": T0},
        "spec": {"volume": "vol-1", "labels": {"RecurringJob": job}},
        "status": {"readyToUse": ready, "creationTime": "2026-11-27T07:00:02Z", "error": error},
    }


def _backup(job: str, state: str, created_at: str = "") -> dict[str, Any]:
    return {
        "metadata": {
            "name": "backup-1",
            "namespace": "longhorn-system",
            "creationTimestamp": T0,
            "labels": {"backup-volume": "vol-1"},
        },
        "status": {"state": state, "labels": {"RecurringJob": job}, "backupCreatedAt": created_at},
    }


def test_a_ready_snapshot_is_done_at_its_creation_time() -> None:
    fire = artifacts.from_snapshot(
        _snapshot("snap", ready=True), snapshot_jobs=frozenset({"snap"}), volumes=None
    )
    assert fire is not None
    assert (fire.state, fire.started, fire.done) == (
        "Completed",
        timestamps.parse_rfc3339(T0),
        timestamps.parse_rfc3339("2026-11-27T07:00:02Z"),
    )


def test_the_snapshot_a_backup_job_takes_is_not_a_snapshot_job_fire() -> None:
    obj = _snapshot("backup-job", ready=True)
    assert artifacts.from_snapshot(obj, snapshot_jobs=frozenset({"snap"}), volumes=None) is None


def test_a_snapshot_of_a_volume_not_under_test_is_ignored() -> None:
    obj = _snapshot("snap", ready=True)
    assert (
        artifacts.from_snapshot(obj, snapshot_jobs=frozenset({"snap"}), volumes=frozenset({"other"})) is None
    )


def test_a_backup_in_progress_is_not_done_and_a_completed_one_is_done_when_longhorn_says() -> None:
    jobs = frozenset({"bk"})
    running = artifacts.from_backup(
        _backup("bk", "InProgress"), backup_jobs=jobs, volumes=None, observed_at=50.0
    )
    assert running is not None
    assert (running.state, running.done) == ("InProgress", None)
    done = artifacts.from_backup(
        _backup("bk", "Completed", "2026-11-27T07:00:09Z"), backup_jobs=jobs, volumes=None, observed_at=50.0
    )
    assert done is not None
    assert done.done == timestamps.parse_rfc3339("2026-11-27T07:00:09Z")


def test_a_completed_backup_without_created_at_is_done_when_observed() -> None:
    fire = artifacts.from_backup(
        _backup("bk", "Completed"), backup_jobs=frozenset({"bk"}), volumes=None, observed_at=50.0
    )
    assert fire is not None
    assert fire.done == 50.0


def test_unknown_backups_count_as_errors() -> None:
    fire = artifacts.from_backup(
        _backup("bk", "Unknown"), backup_jobs=frozenset({"bk"}), volumes=None, observed_at=1.0
    )
    assert fire is not None
    assert fire.state == "Error"


def test_a_backup_not_started_yet_is_pending_whether_longhorn_says_nothing_new_or_pending() -> None:
    states = {
        raw: artifacts.from_backup(
            _backup("bk", raw), backup_jobs=frozenset({"bk"}), volumes=None, observed_at=1.0
        )
        for raw in ("", "New", "Pending")
    }
    assert {raw: fire.state if fire else None for raw, fire in states.items()} == {
        "": "Pending",
        "New": "Pending",
        "Pending": "Pending",
    }
