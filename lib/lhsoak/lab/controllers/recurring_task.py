"""What a recurring job's pod runs: `longhorn-manager -d recurring-job <name> --manager-url ...`.

As app/recurring_job.go and app/recurringjob/*.go of longhorn-manager v1.9:

1. increment the RecurringJob's `status.executionCount`;
2. select volumes labelled `recurring-job.longhorn.io/<job>=enabled` or
   `recurring-job-group.longhorn.io/<group>=enabled` for one of the job's groups (the volume
   controller puts unlabelled volumes in group `default`), attached (or any, with the setting
   `allow-recurring-job-while-volume-detached`) and not faulted;
3. per volume, at most `concurrency` at once:
   - snapshot/backup tasks first clean up this job's old snapshots;
   - snapshot: a Snapshot CR `<job[:8]>-<uuid>` with `spec.labels.RecurringJob=<job>` (or the
     latest one of this job not created yet), waited on until `readyToUse`
     (SnapshotReadyTimeout), then this job's snapshots beyond `retain` are deleted, oldest first;
   - backup: that snapshot, then a Backup CR `backup-<16 hex>` (labels `backup-volume`,
     `backup-target`), waited on with NO timeout until Completed — Error or Unknown fail the run;
     then this job's Completed backups beyond `retain` are deleted, oldest `backupCreatedAt` first
     (Error backups have none and are skipped, as upstream); then snapshot cleanup, keeping only
     the snapshot just backed up (setting `auto-cleanup-recurring-job-backup-snapshot`).
4. exit 1 if any volume failed (v1.9: the errgroup error makes the process exit non-zero, so the
   container restarts under restartPolicy OnFailure), else 0.

The lab's API calls wait while the API endpoint is down (upstream retries its first call for about
a minute); every other wait is event-driven, except that the wait for a backup wakes every
`BACKUP_STATUS_POLL_S` to log its progress, as upstream's loop logs at each poll.

What the process prints goes to its container's log (`lhsoak.lab.logs.stdout`), with upstream's
messages, callers and fields (app/recurringjob/volume.go of v1.12.1): the volumes found, each
volume job's steps, "Creating backup …, current progress …" while a backup runs, the clean-ups,
and the error a failed run exits with.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lhsoak.lab import kinds, logs
from lhsoak.lab.controllers.backups import (
    ACTIVE_STATES,
    FINAL_STATES,
    LABEL_BACKUP_TARGET,
    LABEL_BACKUP_VOLUME,
    TARGET_NAME,
)
from lhsoak.lab.controllers.link import ApiLink
from lhsoak.lab.controllers.longhorn_manager import (
    GROUP_LABEL_PREFIX,
    JOB_LABEL_PREFIX,
    LABEL_ENABLED,
    SPEC_LABEL_RECURRING_JOB,
    setting,
)
from lhsoak.lab.controllers.meta import Obj, parse_rfc3339
from lhsoak.lab.controllers.waits import ObjectWaits, WaitTimeout
from lhsoak.lab.kinds import Kind
from lhsoak.lab.profiles import Profile
from lhsoak.lab.store import ApiError, NotFound, Store

logger = logging.getLogger(__name__)

SNAPSHOT_TASKS = ("snapshot", "snapshot-force-create")
BACKUP_TASKS = ("backup", "backup-force-create")
DEFAULT_CONCURRENCY = 10
PARAMETER_FULL_BACKUP_INTERVAL = "full-backup-interval"
BACKUP_STATUS_POLL_S = 0.5
"""Seconds between the progress lines of a backup being waited on (upstream: WaitInterval, 5 s)."""


def _caller(func: str, line: int, file: str = "volume.go") -> logs.Caller:
    return logs.Caller(f"recurringjob.{func}", f"{file}:{line}")


# Where longhorn-manager v1.12.1 logs each message (app/recurringjob/volume.go unless named).
_SETTING = _caller("StartVolumeJobs", 32)
_FOUND = _caller("StartVolumeJobs", 51)
_CREATING_VOLUME_JOB = _caller("startVolumeJob", 84)
_VOLUME_JOB_FAILED = _caller("startVolumeJob", 88)
_CREATED_VOLUME_JOB = _caller("startVolumeJob", 92)
_STARTING = _caller("(*VolumeJob).run", 141)
_RUNNING_BACKUP = _caller("(*VolumeJob).run", 176)
_RUNNING_SNAPSHOT = _caller("(*VolumeJob).run", 180)
_FINISHED_SNAPSHOT = _caller("(*VolumeJob).doRecurringSnapshot.func1", 189)
_SNAPSHOT_DONE = _caller("(*VolumeJob).doSnapshot", 266)
_SNAPSHOT_CLEANED = _caller("(*VolumeJob).doSnapshotCleanup", 319)
_FINISHED_BACKUP = _caller("(*VolumeJob).doRecurringBackup.func1", 450)
_BACKUP_DONE = _caller("(*VolumeJob).doRecurringBackup", 525)
_BACKUP_PROGRESS = _caller("(*VolumeJob).doRecurringBackup", 527)
_BACKUP_CLEANED = _caller("(*VolumeJob).doRecurringBackup", 562)
_FATAL = logs.Caller("app.RecurringJobCmd.func1", "recurring_job.go:31")


class TaskFailed(Exception):
    """The recurring job failed for a volume (the process exits non-zero)."""


@dataclass
class TaskEnv:
    """What the job process reaches: the API (through the link) and time."""

    store: Store
    link: ApiLink
    waits: ObjectWaits
    profile: Profile
    clock: Callable[[], float]
    rng: random.Random = field(default_factory=random.Random)


async def run(env: TaskEnv, job_name: str, namespace: str) -> int:
    """Run recurring job `job_name` once; the container's exit code."""
    try:
        await _run(env, job_name, namespace)
    except (TaskFailed, WaitTimeout, ApiError) as exc:
        logger.info("recurring job %s failed: %s", job_name, exc)
        logs.stdout.get().with_error(exc).fatal("Failed to do a recurring job", caller=_FATAL)
        return 1
    return 0


async def _run(env: TaskEnv, job_name: str, namespace: str) -> None:
    api = _Api(env, namespace)
    try:
        recurring_job = await api.get(kinds.LH_RECURRING_JOB, job_name)
    except NotFound as exc:
        raise TaskFailed(f"failed to get recurring job {job_name}: {exc.message}") from exc
    recurring_job = await api.mutate_status(kinds.LH_RECURRING_JOB, job_name, _count_execution)
    spec = recurring_job.get("spec") or {}
    if spec.get("task") == "system-backup":
        return
    allow_detached = await api.setting("allow-recurring-job-while-volume-detached") == "true"
    out = logs.stdout.get()
    out.info(
        f"Setting allow-recurring-job-while-volume-detached is {str(allow_detached).lower()}",
        caller=_SETTING,
    )
    selectors = [f"{JOB_LABEL_PREFIX}{job_name}={LABEL_ENABLED}"]
    selectors += [f"{GROUP_LABEL_PREFIX}{group}={LABEL_ENABLED}" for group in spec.get("groups") or ()]
    names: list[str] = []
    for selector in selectors:
        for volume in await api.list(kinds.LH_VOLUME, label_selector=selector):
            if volume["metadata"]["name"] not in names and _eligible(volume, allow_detached=allow_detached):
                names.append(volume["metadata"]["name"])
    out.info(f"Found {len(names)} volumes with recurring job {job_name}", caller=_FOUND)
    concurrency = int(spec.get("concurrency") or DEFAULT_CONCURRENCY)
    limiter = asyncio.Semaphore(max(1, concurrency))
    execution_count = int((recurring_job.get("status") or {}).get("executionCount", 0))

    async def one(volume_name: str) -> None:
        async with limiter:
            await _VolumeJob(api, env, recurring_job, volume_name, execution_count).run()

    results = await asyncio.gather(*(one(n) for n in names), return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


def _count_execution(obj: Obj) -> None:
    status = obj.setdefault("status", {})
    status["executionCount"] = int(status.get("executionCount", 0)) + 1


def _eligible(volume: Obj, *, allow_detached: bool) -> bool:
    status = volume.get("status") or {}
    if status.get("restoreRequired"):
        return False
    return status.get("robustness") != "faulted" and (status.get("state") == "attached" or allow_detached)


class _Api:
    """The calls the job makes, each waiting for the API endpoint first."""

    def __init__(self, env: TaskEnv, namespace: str) -> None:
        self.env = env
        self.namespace = namespace

    async def get(self, kind: Kind, name: str) -> Obj:
        await self.env.link.wait_up()
        return self.env.store.get(kind, name, namespace=self.namespace)

    async def get_or_none(self, kind: Kind, name: str) -> Obj | None:
        try:
            return await self.get(kind, name)
        except NotFound:
            return None

    async def list(self, kind: Kind, *, label_selector: str | None = None) -> list[Obj]:
        await self.env.link.wait_up()
        items, _ = self.env.store.list(kind, namespace=self.namespace, label_selector=label_selector)
        return items

    async def create(self, kind: Kind, obj: Obj) -> Obj:
        await self.env.link.wait_up()
        return self.env.store.create(kind, obj, namespace=self.namespace)

    async def delete(self, kind: Kind, name: str) -> None:
        await self.env.link.wait_up()
        try:
            self.env.store.delete(kind, name, namespace=self.namespace)
        except NotFound:
            return

    async def mutate_status(self, kind: Kind, name: str, change: Callable[[Obj], None]) -> Obj:
        await self.env.link.wait_up()
        return self.env.store.mutate(kind, name, change, namespace=self.namespace, subresource="status")

    async def setting(self, name: str) -> str:
        return setting(await self.get_or_none(kinds.LH_SETTING, name), name)

    async def until(
        self, kind: Kind, name: str, predicate: Callable[[Obj], bool], *, what: str, timeout_s: float | None
    ) -> Obj | None:
        await self.env.link.wait_up()
        return await self.env.waits.until(
            kind, name, namespace=self.namespace, predicate=predicate, what=what, timeout_s=timeout_s
        )


class _VolumeJob:
    """One volume's part of a run (VolumeJob upstream)."""

    def __init__(
        self, api: _Api, env: TaskEnv, recurring_job: Obj, volume_name: str, execution_count: int
    ) -> None:
        spec = recurring_job.get("spec") or {}
        self.api = api
        self.env = env
        self.job_name = str(recurring_job["metadata"]["name"])
        self.task = str(spec.get("task", "snapshot"))
        self.retain = int(spec.get("retain") or 0)
        self.parameters: dict[str, Any] = dict(spec.get("parameters") or {})
        self.execution_count = execution_count
        self.volume_name = volume_name
        self.spec_labels = {**(spec.get("labels") or {}), SPEC_LABEL_RECURRING_JOB: self.job_name}
        self.snapshot_name = f"{self.job_name[:8]}-{uuid.UUID(int=env.rng.getrandbits(128), version=4)}"
        self.log = logs.stdout.get().with_fields(
            job=self.job_name,
            task=self.task,
            retain=self.retain,
            parameters=self.parameters,
            executionCount=execution_count,
            concurrent=int(spec.get("concurrency") or DEFAULT_CONCURRENCY),
            groups=",".join(spec.get("groups") or ()),
            volumeName=volume_name,
            snapshotName=self.snapshot_name,
            specLabels=json.dumps(self.spec_labels, separators=(",", ":"), sort_keys=True),
        )

    async def run(self) -> None:
        """startVolumeJob: the volume job, logged as created or failed."""
        self.log.info("Creating volume job", caller=_CREATING_VOLUME_JOB)
        try:
            await self.run_steps()
        except (TaskFailed, WaitTimeout, ApiError) as exc:
            self.log.with_error(exc).error("Failed to run volume job", caller=_VOLUME_JOB_FAILED)
            raise
        self.log.info("Created volume job", caller=_CREATED_VOLUME_JOB)

    async def run_steps(self) -> None:
        self.log.info("Starting volume job", caller=_STARTING)
        volume = await self.api.get_or_none(kinds.LH_VOLUME, self.volume_name)
        if volume is None:
            return
        state = (volume.get("status") or {}).get("state")
        if state not in ("attached", "detached"):
            raise TaskFailed(
                f"volume {self.volume_name} is in an invalid state for recurring job: {state}. "
                "Volume must be in state Attached or Detached"
            )
        if self.task in ("snapshot", "backup"):
            await self.cleanup_snapshots(backup_done=False)
        if self.task == "filesystem-trim":
            return
        if self.task in BACKUP_TASKS:
            self.log.info(f"Running recurring backup for volume {self.volume_name}", caller=_RUNNING_BACKUP)
            await self.backup(volume)
            self.log.info("Finished recurring backup", caller=_FINISHED_BACKUP)
            return
        self.log.info(f"Running recurring snapshot for volume {self.volume_name}", caller=_RUNNING_SNAPSHOT)
        if self.task in SNAPSHOT_TASKS:
            await self.snapshot()
        await self.cleanup_snapshots(backup_done=False)
        self.log.info("Finished recurring snapshot", caller=_FINISHED_SNAPSHOT)

    # -- snapshots --

    async def volume_snapshots(self) -> list[Obj]:
        snapshots = await self.api.list(kinds.LH_SNAPSHOT)
        return [s for s in snapshots if (s.get("spec") or {}).get("volume") == self.volume_name]

    def of_this_job(self, objects: list[Obj], *, in_status: bool = False) -> list[Obj]:
        def labels(obj: Obj) -> dict[str, str]:
            part = obj.get("status" if in_status else "spec") or {}
            return dict(part.get("labels") or {})

        return [o for o in objects if labels(o).get(SPEC_LABEL_RECURRING_JOB) == self.job_name]

    async def snapshot(self) -> None:
        mine = [
            s
            for s in self.of_this_job(await self.volume_snapshots())
            if (s.get("spec") or {}).get("createSnapshot")
        ]
        latest = max(mine, key=_created_order, default=None)
        if latest is not None and not (latest.get("status") or {}).get("creationTime"):
            # The previous run's snapshot was asked for but never taken: take that one.
            self.snapshot_name = latest["metadata"]["name"]
        else:
            await self.api.create(
                kinds.LH_SNAPSHOT,
                {
                    "apiVersion": kinds.LH_SNAPSHOT.api_version,
                    "kind": kinds.LH_SNAPSHOT.kind,
                    "metadata": {"name": self.snapshot_name},
                    "spec": {"volume": self.volume_name, "createSnapshot": True, "labels": self.spec_labels},
                },
            )
        ready = await self.api.until(
            kinds.LH_SNAPSHOT,
            self.snapshot_name,
            lambda s: bool((s.get("status") or {}).get("readyToUse")),
            what=f"snapshot {self.snapshot_name} of volume {self.volume_name} to be ready",
            timeout_s=self.env.profile.snapshot_ready_timeout_s,
        )
        if ready is None:
            raise TaskFailed(f"snapshot {self.snapshot_name} of volume {self.volume_name} disappeared")
        self.log.info(f"Complete creating the snapshot {self.snapshot_name}", caller=_SNAPSHOT_DONE)

    async def cleanup_snapshots(self, *, backup_done: bool) -> None:
        snapshots = await self.volume_snapshots()
        if self.task == "snapshot-cleanup":
            return
        if self.task == "snapshot-delete":
            doomed = _expired(snapshots, self.retain)
        elif (
            self.task in SNAPSHOT_TASKS
            or await self.api.setting("auto-cleanup-recurring-job-backup-snapshot") != "true"
        ):
            doomed = _expired(self.of_this_job(snapshots), self.retain)
        else:
            keep = {self.snapshot_name}
            if not backup_done:
                keep |= await self.last_backup_snapshot()
            doomed = [
                s["metadata"]["name"]
                for s in self.of_this_job(snapshots)
                if s["metadata"]["name"] not in keep
            ]
        if not doomed:
            return
        in_use = await self.snapshots_of_active_backups()
        for name in doomed:
            if name not in in_use:
                await self.api.delete(kinds.LH_SNAPSHOT, name)
                self.log.info(
                    f"Cleaned up snapshot CR {name} for {self.volume_name}", caller=_SNAPSHOT_CLEANED
                )

    async def last_backup_snapshot(self) -> set[str]:
        volume = await self.api.get_or_none(kinds.LH_VOLUME, self.volume_name)
        last = ((volume or {}).get("status") or {}).get("lastBackup")
        if not last:
            return set()
        backup = await self.api.get_or_none(kinds.LH_BACKUP, str(last))
        if backup is None:
            return set()
        return {str((backup.get("spec") or {}).get("snapshotName", ""))}

    async def snapshots_of_active_backups(self) -> set[str]:
        backups = await self.api.list(
            kinds.LH_BACKUP, label_selector=f"{LABEL_BACKUP_VOLUME}={self.volume_name}"
        )
        return {
            str((b.get("spec") or {}).get("snapshotName"))
            for b in backups
            if (b.get("status") or {}).get("state", "") in ACTIVE_STATES
            and (b.get("spec") or {}).get("snapshotName")
        }

    # -- backups --

    async def backup(self, volume: Obj) -> None:
        await self.snapshot()
        mode = "incremental"
        interval = int(self.parameters.get(PARAMETER_FULL_BACKUP_INTERVAL) or 0)
        if interval and self.execution_count % interval == 0:
            mode = "full"
        name = f"backup-{self.env.rng.getrandbits(64):016x}"
        target = str((volume.get("spec") or {}).get("backupTargetName") or TARGET_NAME)
        await self.api.create(
            kinds.LH_BACKUP,
            {
                "apiVersion": kinds.LH_BACKUP.api_version,
                "kind": kinds.LH_BACKUP.kind,
                "metadata": {
                    "name": name,
                    "labels": {LABEL_BACKUP_TARGET: target, LABEL_BACKUP_VOLUME: self.volume_name},
                },
                "spec": {"snapshotName": self.snapshot_name, "labels": self.spec_labels, "backupMode": mode},
            },
        )
        started = await self.api.until(
            kinds.LH_BACKUP,
            name,
            lambda b: bool((b.get("status") or {}).get("state")),
            what=f"backup {name} of volume {self.volume_name} to start",
            timeout_s=self.env.profile.backup_start_timeout_s,
        )
        if started is None:
            raise TaskFailed(f"cannot find the status of the backup for snapshot {self.snapshot_name}")
        done = await self.backup_finished(name)
        if done is None:
            raise TaskFailed(f"cannot find the status of the backup for snapshot {self.snapshot_name}")
        status = done.get("status") or {}
        if status.get("state") != "Completed":
            raise TaskFailed(f"failed to create backup {name}: {status.get('error', '')}")
        self.log.info(f"Completed creating backup {name}", caller=_BACKUP_DONE)
        try:
            await self.cleanup_backups()
        except ApiError as exc:
            logger.info("created backup %s but its cleanup failed: %s", name, exc)
        await self.cleanup_snapshots(backup_done=True)

    async def backup_finished(self, name: str) -> Obj | None:
        """The backup once Completed, Error or Unknown; None if it is gone. Logs its progress at
        every poll while it runs."""
        # Upstream loops on the backup status with no timeout: a backup stuck InProgress holds
        # the job, and with it the Forbid CronJob, for ever (longhorn#9168, #9417).
        while True:
            backup = await self.api.get_or_none(kinds.LH_BACKUP, name)
            if backup is None:
                return None
            status = backup.get("status") or {}
            if status.get("state") in FINAL_STATES:
                return backup
            progress = int(status.get("progress") or 0)
            self.log.info(f"Creating backup {name}, current progress {progress}", caller=_BACKUP_PROGRESS)
            try:
                return await self.api.until(
                    kinds.LH_BACKUP,
                    name,
                    lambda b: (b.get("status") or {}).get("state") in FINAL_STATES,
                    what=f"backup {name} to finish",
                    timeout_s=BACKUP_STATUS_POLL_S,
                )
            except WaitTimeout:
                continue

    async def cleanup_backups(self) -> None:
        backups = await self.api.list(
            kinds.LH_BACKUP, label_selector=f"{LABEL_BACKUP_VOLUME}={self.volume_name}"
        )
        dated = [
            b
            for b in self.of_this_job(backups, in_status=True)
            if (b.get("status") or {}).get("backupCreatedAt")
        ]
        dated.sort(
            key=lambda b: (
                parse_rfc3339(b["status"]["backupCreatedAt"]),
                int(b["metadata"]["resourceVersion"]),
            )
        )
        for backup in dated[: max(0, len(dated) - self.retain)]:
            await self.api.delete(kinds.LH_BACKUP, backup["metadata"]["name"])
            self.log.info(
                f"Cleaned up backup {backup['metadata']['name']} for {self.volume_name}",
                caller=_BACKUP_CLEANED,
            )


def _created_order(obj: Obj) -> tuple[float, int]:
    return parse_rfc3339(obj["metadata"]["creationTimestamp"]), int(obj["metadata"].get("resourceVersion", 0))


def _expired(objects: list[Obj], retain: int) -> list[str]:
    """filterExpiredItems: all but the newest `retain`, oldest first."""
    ordered = sorted(objects, key=_created_order)
    return [o["metadata"]["name"] for o in ordered[: max(0, len(ordered) - retain)]]
