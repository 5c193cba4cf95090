"""What a Longhorn Snapshot or Backup object means for the tick ledger (pure: no I/O, no clock).

A recurring job leaves its mark in the objects it creates: the job pod labels them `RecurringJob=<job>`
(Snapshot `spec.labels`, Backup `status.labels`). A backup task also takes a snapshot with its own job's
label first; that snapshot is a step of the backup, not a fire of any snapshot job, so an artifact counts
only for a job whose task makes that kind of object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from lhsoak import timestamps

# Longhorn Backup states (longhorn-manager types.BackupState): "", New and Pending mean not started yet.
_BACKUP_FAILED_STATES = frozenset({"Error", "Unknown"})
# A backup is New for an instant before Pending: one state to the ledger, so a 500-volume tick writes
# a record fewer per backup (every record is fsync'd) and the reader sees the documented states only.
_BACKUP_STATE_ALIASES = {"New": "Pending"}


@dataclass(frozen=True)
class Artifact:
    """One snapshot or backup made by a recurring job, as the ledger records it."""

    job: str
    volume: str
    object: str
    started: float
    """The cluster's creation time of the object (epoch seconds)."""
    done: float | None
    """When it became usable (epoch seconds), None while it is not."""
    state: str
    """Completed, InProgress, Pending, Error (backups also Unknown, mapped to Error)."""
    error: str | None = None

    def as_record(self) -> dict[str, Any]:
        record: dict[str, Any] = {
            "type": "fire",
            "job": self.job,
            "volume": self.volume,
            "object": self.object,
            "started": timestamps.to_rfc3339(self.started),
            "done": timestamps.to_rfc3339(self.done) if self.done is not None else None,
            "state": self.state,
        }
        if self.error:
            record["error"] = self.error
        return record


def _meta(obj: Mapping[str, Any]) -> Mapping[str, Any]:
    return obj.get("metadata") or {}


def _created(obj: Mapping[str, Any]) -> float:
    return timestamps.parse_rfc3339(_meta(obj)["creationTimestamp"])


def from_snapshot(
    obj: Mapping[str, Any], *, snapshot_jobs: frozenset[str], volumes: frozenset[str] | None
) -> Artifact | None:
    """The artifact a Snapshot object stands for, or None when no snapshot job under test made it."""
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    labels = {**(status.get("labels") or {}), **(spec.get("labels") or {})}
    job = labels.get("RecurringJob")
    volume = spec.get("volume") or (_meta(obj).get("labels") or {}).get("longhornvolume")
    if job not in snapshot_jobs or not volume or (volumes is not None and volume not in volumes):
        return None
    started = _created(obj)
    error = status.get("error") or None
    ready = bool(status.get("readyToUse"))
    done: float | None = None
    if ready and not error:
        creation = status.get("creationTime")
        done = timestamps.parse_rfc3339(creation) if creation else started
    state = "Error" if error else ("Completed" if ready else "InProgress")
    return Artifact(
        job=job,
        volume=volume,
        object=_meta(obj)["name"],
        started=started,
        done=done,
        state=state,
        error=error,
    )


def backup_job(obj: Mapping[str, Any]) -> str | None:
    """The recurring job that asked for a Backup, if one did.

    The job pod asks for the backup with `spec.labels`; `status.labels` is filled in from the backup
    store once it completes, so an Error backup may carry the job only in its spec.
    """
    spec_labels = (obj.get("spec") or {}).get("labels") or {}
    status_labels = (obj.get("status") or {}).get("labels") or {}
    job = status_labels.get("RecurringJob") or spec_labels.get("RecurringJob")
    return str(job) if job else None


def from_backup(
    obj: Mapping[str, Any],
    *,
    backup_jobs: frozenset[str],
    volumes: frozenset[str] | None,
    observed_at: float,
) -> Artifact | None:
    """The artifact a Backup object stands for, or None when no backup job under test made it.

    `done` is the backup's `backupCreatedAt` when Longhorn filled it in, else when the harness saw it
    Completed (`observed_at`).
    """
    status = obj.get("status") or {}
    labels = _meta(obj).get("labels") or {}
    job = backup_job(obj)
    volume = status.get("volumeName") or labels.get("backup-volume")
    if job not in backup_jobs or not volume or (volumes is not None and volume not in volumes):
        return None
    raw_state = status.get("state") or "Pending"
    state = "Error" if raw_state in _BACKUP_FAILED_STATES else _BACKUP_STATE_ALIASES.get(raw_state, raw_state)
    done: float | None = None
    if state == "Completed":
        created_at = status.get("backupCreatedAt")
        done = timestamps.parse_rfc3339(created_at) if created_at else observed_at
    return Artifact(
        job=job,
        volume=volume,
        object=_meta(obj)["name"],
        started=_created(obj),
        done=done,
        state=state,
        error=(status.get("error") or None) if state == "Error" else None,
    )
