"""longhorn-manager's backup and backup-target controllers, as a recurring job meets them.

A Backup CR (created by the job task: `spec.snapshotName`, labels `backup-volume`, `backup-target`)
goes New -> Pending -> InProgress (progress in `backup_progress_steps` steps over `backup_s`) ->
Completed with `backupCreatedAt`, `snapshotName`, `volumeName`, `url`, `labels` (carrying
`RecurringJob`); the volume's `lastBackup`/`lastBackupAt` follow. The volume's engine runs it on
the volume's node; while that node is down a backup not yet started stays Pending.

Failures:
- the backup target unavailable (profile `target_down_*`, or `set_target_available`): backups
  end in Error, as with an unreachable S3; BackupTarget `default` shows `available: false` and an
  Unavailable condition;
- the volume's node going down while a backup is InProgress: Error ("error"), or InProgress
  forever ("stuck", longhorn#9168/#9417) — nothing ever updates it again;
- longhorn#7854 (profile `outage_backup_error_s`): a backup starting while a node is down, or within
  that many seconds after every node is back, fails on the stale backupstore lock
  ("failed to acquire lock ... please try again later", the wording since Longhorn 1.8).

Error backups stay (upstream removes them only after the `failed-backup-ttl` setting, 1440 min).
Events on the volume, reason = the new state, as the backup controller records them.

The longhorn-manager pod of the backup's node (`status.ownerID`) logs it as upstream's does: the
backup monitor enabled when the backup starts, every event it records (client-go's broadcaster
logs each one), the monitor cancelled when the backup ends — and nothing when a backup is stuck
(longhorn#9168: its monitor died with the node).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from lhsoak.lab import kinds, logs
from lhsoak.lab.controllers.events import EventRecorder
from lhsoak.lab.controllers.longhorn_manager import NAMESPACE
from lhsoak.lab.controllers.longhorn_volumes import VOLUME_SIZE, node_up
from lhsoak.lab.controllers.meta import Key, Obj, labels_of, object_ref, rfc3339, set_condition
from lhsoak.lab.controllers.reconciler import Context, Reconciler
from lhsoak.lab.machine import MachineEvent
from lhsoak.lab.store import NotFound, WatchEvent

TARGET_NAME = "default"
TARGET_URL = "s3://backupbucket@us-east-1/"
LABEL_BACKUP_VOLUME = "backup-volume"
LABEL_BACKUP_TARGET = "backup-target"
FINAL_STATES = ("Completed", "Error", "Unknown")
ACTIVE_STATES = ("", "New", "Pending", "InProgress")
BACKUP_SIZE = "2097152"

_BACKUP = "backup"
_TARGET = "target"

# Where longhorn-manager v1.12.1 logs what this controller emulates (func, file:line).
_ENABLE_MONITOR = logs.Caller(
    "controller.(*BackupController).enableBackupMonitor", "backup_controller.go:1020"
)
_MONITOR_FAILED = logs.Caller("controller.(*BackupController).reconcile", "backup_controller.go:455")
_MONITOR_CANCELED = logs.Caller("engineapi.(*BackupMonitor).linerTimer", "backup_monitor.go:226")
_EVENT_LOGGED = logs.Caller("record.(*eventBroadcasterImpl).StartLogging.func1", "event.go:377")


@dataclass
class _Run:
    """What the volume's engine knows of one backup."""

    node: str
    due_s: float
    boot_id: str = ""
    """Boot of the engine's node when the backup started (InProgress); another means it died."""
    stuck: bool = False


class Backups(Reconciler):
    """Drives Backup CRs and BackupTarget `default`."""

    name = "longhorn-backup"
    kinds = (kinds.LH_BACKUP, kinds.LH_BACKUP_TARGET)
    follows_machines = True

    def __init__(self, ctx: Context, recorder: EventRecorder) -> None:
        super().__init__(ctx)
        self.recorder = recorder
        self._runs: dict[str, _Run] = {}
        self._target_available = True
        self._target_message = ""
        self._nodes_down: set[str] = set()
        self._lock_clear_at = 0.0
        self._outage_timer: asyncio.TimerHandle | None = None
        self._backups_seen = False

    # -- lifecycle --

    def on_fresh_start(self) -> None:
        self._nodes_down = {m.name for m in self.ctx.fleet if not node_up(self.ctx, m.name)}
        after_s = self.ctx.profile.target_down_after_s
        if after_s is not None:
            self._outage_timer = self.ctx.loop.call_later(after_s, self._target_outage)

    def stop(self) -> None:
        if self._outage_timer is not None:
            self._outage_timer.cancel()
            self._outage_timer = None
        super().stop()

    @property
    def target_available(self) -> bool:
        """Whether the backup store answers (the truth BackupTarget `default` reports)."""
        return self._target_available

    def set_target_available(self, available: bool, message: str = "") -> None:
        """Make the backup store reachable or not; running backups fail when it goes."""
        self._target_available = available
        self._target_message = message or (
            "" if available else f"failed to list backup volumes in {TARGET_URL}: connection refused"
        )
        self.enqueue((_TARGET, TARGET_NAME))
        for name in list(self._runs):
            self.enqueue((_BACKUP, name))

    def _first_backup_seen(self) -> None:
        if self._backups_seen:
            return
        self._backups_seen = True
        after_s = self.ctx.profile.target_down_after_first_backup_s
        if after_s is not None and self._outage_timer is None:
            self._outage_timer = self.ctx.loop.call_later(after_s, self._target_outage)

    def _target_outage(self) -> None:
        profile = self.ctx.profile
        self.set_target_available(False)

        def back() -> None:
            self.set_target_available(True)
            if profile.target_down_every_s is not None:
                delay_s = profile.target_down_every_s - profile.target_down_for_s
                self._outage_timer = self.ctx.loop.call_later(delay_s, self._target_outage)

        self._outage_timer = self.ctx.loop.call_later(profile.target_down_for_s, back)

    def on_machine(self, event: MachineEvent) -> None:
        if event.kind == "kubelet-stopped":
            self._nodes_down.add(event.machine)
        elif event.kind == "kubelet-started":
            self._nodes_down.discard(event.machine)
            if not self._nodes_down and self.ctx.profile.outage_backup_error_s is not None:
                self._lock_clear_at = event.at + self.ctx.profile.outage_backup_error_s
        else:
            return
        for name, run in list(self._runs.items()):
            if run.node == event.machine:
                self.enqueue((_BACKUP, name))

    # -- reconcile --

    def observe(self, event: WatchEvent) -> None:
        obj = event.object
        if obj["metadata"].get("namespace") != NAMESPACE:
            return
        if event.kind == kinds.LH_BACKUP_TARGET:
            if event.type != "DELETED":
                self.enqueue((_TARGET, obj["metadata"]["name"]))
        elif event.type == "DELETED":
            self._runs.pop(obj["metadata"]["name"], None)
        else:
            self.enqueue((_BACKUP, obj["metadata"]["name"]))

    def all_keys(self) -> Iterable[Key]:
        backups, _ = self.ctx.store.list(kinds.LH_BACKUP, namespace=NAMESPACE)
        targets, _ = self.ctx.store.list(kinds.LH_BACKUP_TARGET, namespace=NAMESPACE)
        return [
            *((_TARGET, t["metadata"]["name"]) for t in targets),
            *((_BACKUP, b["metadata"]["name"]) for b in backups),
        ]

    def reconcile(self, key: Key) -> float | None:
        tag, name = key
        if tag == _TARGET:
            self._reconcile_target(name)
            return None
        return self._reconcile_backup(name)

    def _reconcile_target(self, name: str) -> None:
        try:
            target = self.ctx.store.get(kinds.LH_BACKUP_TARGET, name, namespace=NAMESPACE)
        except NotFound:
            return
        status = target.get("status") or {}
        available = self._target_available if name == TARGET_NAME else True
        if status.get("available") == available and status.get("conditions") is not None:
            return
        now = rfc3339(self.ctx.clock())
        conditions = [dict(c) for c in status.get("conditions") or ()]
        set_condition(
            conditions,
            type_="Unavailable",
            status="False" if available else "True",
            now=now,
            reason="" if available else "Unavailable",
            message="" if available else self._target_message,
        )
        owner = self._owner()

        def write(obj: Obj) -> None:
            obj["status"] = {
                **(obj.get("status") or {}),
                "available": available,
                "conditions": conditions,
                "lastSyncedAt": now,
                "ownerID": owner,
            }

        self.ctx.store.mutate(kinds.LH_BACKUP_TARGET, name, write, namespace=NAMESPACE, subresource="status")

    def _reconcile_backup(self, name: str) -> float | None:
        try:
            backup = self.ctx.store.get(kinds.LH_BACKUP, name, namespace=NAMESPACE)
        except NotFound:
            self._runs.pop(name, None)
            return None
        state = str((backup.get("status") or {}).get("state") or "")
        if state in FINAL_STATES or state == "Deleting":
            self._runs.pop(name, None)
            return None
        volume = self._volume_of(backup)
        if volume is None:
            self._error(backup, "cannot find the corresponding volume")
            return None
        now_s = self.ctx.clock()
        run = self._runs.get(name)
        if run is None:
            self._first_backup_seen()
            node = str((volume.get("status") or {}).get("ownerID") or "")
            run = self._runs[name] = _Run(node=node, due_s=now_s)
        if run.stuck:
            return None
        if state == "InProgress" and self._engine_lost(run):
            if self.ctx.profile.backup_on_node_loss == "stuck":
                # longhorn#9168: the monitor died with the engine; nothing updates the CR again.
                run.stuck = True
                return None
            self._error(backup, self._engine_lost_message(backup, run))
            return None
        if state and not self._target_available:
            self._error(backup, self._target_error(backup))
            return None
        if now_s < run.due_s:
            return run.due_s - now_s
        return self._advance(backup, state, run, now_s)

    def _advance(self, backup: Obj, state: str, run: _Run, now_s: float) -> float | None:
        profile = self.ctx.profile
        if state == "":
            self._write(backup, self._new_status(backup, run))
            run.due_s = now_s + self.ctx.jittered(profile.backup_pending_s)
        elif state == "New":
            self._write(backup, {"state": "Pending"})
            run.due_s = now_s + self.ctx.jittered(profile.backup_pending_s)
        elif state == "Pending":
            if not node_up(self.ctx, run.node):
                return None
            if self._lock_stale(now_s):
                self._error(backup, self._lock_error(backup, run))
                return None
            run.boot_id = self.ctx.fleet[run.node].boot_id
            self._write(backup, {"state": "InProgress", "progress": 0, "replicaAddress": _replica(run.node)})
            run.due_s = now_s + self._step_s()
        else:
            progress = int((backup.get("status") or {}).get("progress") or 0)
            progress = min(100, progress + -(-100 // profile.backup_progress_steps))
            if progress < 100:
                self._write(backup, {"progress": progress})
                run.due_s = now_s + self._step_s()
            else:
                self._complete(backup, now_s)
                return None
        return max(0.0, run.due_s - now_s)

    def _step_s(self) -> float:
        profile = self.ctx.profile
        return self.ctx.jittered(profile.backup_s / profile.backup_progress_steps)

    def _new_status(self, backup: Obj, run: _Run) -> Obj:
        spec = backup.get("spec") or {}
        return {
            "state": "New",
            "ownerID": run.node,
            "snapshotName": spec.get("snapshotName", ""),
            "volumeName": labels_of(backup).get(LABEL_BACKUP_VOLUME, ""),
            "backupTargetName": labels_of(backup).get(LABEL_BACKUP_TARGET, TARGET_NAME),
            "progress": 0,
            "messages": {},
        }

    def _complete(self, backup: Obj, now_s: float) -> None:
        spec = backup.get("spec") or {}
        name = backup["metadata"]["name"]
        volume_name = labels_of(backup).get(LABEL_BACKUP_VOLUME, "")
        now = rfc3339(now_s)
        snapshot_created = ""
        try:
            snapshot = self.ctx.store.get(
                kinds.LH_SNAPSHOT, str(spec.get("snapshotName", "")), namespace=NAMESPACE
            )
            snapshot_created = str((snapshot.get("status") or {}).get("creationTime") or "")
        except NotFound:
            pass
        self._write(
            backup,
            {
                "state": "Completed",
                "progress": 100,
                "url": f"{TARGET_URL}?backup={name}&volume={volume_name}",
                "snapshotCreatedAt": snapshot_created,
                "backupCreatedAt": now,
                "size": BACKUP_SIZE,
                "labels": dict(spec.get("labels") or {}),
                "volumeSize": VOLUME_SIZE,
                "lastSyncedAt": now,
                "compressionMethod": "lz4",
                "newlyUploadDataSize": BACKUP_SIZE,
                "reUploadedDataSize": "0",
                "error": "",
            },
        )
        self._runs.pop(name, None)

        def last_backup(obj: Obj) -> None:
            obj.setdefault("status", {}).update(lastBackup=name, lastBackupAt=now)

        with contextlib.suppress(NotFound):
            self.ctx.store.mutate(
                kinds.LH_VOLUME, volume_name, last_backup, namespace=NAMESPACE, subresource="status"
            )

    def _error(self, backup: Obj, message: str) -> None:
        self._write(backup, {"state": "Error", "error": message, "lastSyncedAt": rfc3339(self.ctx.clock())})
        self._runs.pop(backup["metadata"]["name"], None)

    def _write(self, backup: Obj, changes: Obj) -> None:
        name = backup["metadata"]["name"]
        old_state = (backup.get("status") or {}).get("state")

        def write(obj: Obj) -> None:
            obj["status"] = {**(obj.get("status") or {}), **changes}

        updated = self.ctx.store.mutate(
            kinds.LH_BACKUP, name, write, namespace=NAMESPACE, subresource="status"
        )
        new_state = (updated.get("status") or {}).get("state")
        if new_state == old_state:
            return
        if new_state == "InProgress":
            self._log_monitor_enabled(updated)
        if new_state in ("InProgress", "Completed", "Error"):
            self._record(updated)
        if new_state in FINAL_STATES:
            self._log_monitor_closed(updated, str(old_state or ""))

    def _manager_log(self, backup: Obj) -> logs.Logger:
        """The backup controller's logger in the longhorn-manager of the backup's node."""
        node = str((backup.get("status") or {}).get("ownerID") or "")
        pod_logs = logs.of(self.ctx.store, clock=self.ctx.clock)
        return pod_logs.manager(node).with_fields(controller="longhorn-backup", node=node)

    def _log_monitor_enabled(self, backup: Obj) -> None:
        name = backup["metadata"]["name"]
        self._manager_log(backup).info(f"Enable backup monitor for backup {name}", caller=_ENABLE_MONITOR)

    def _log_monitor_closed(self, backup: Obj, old_state: str) -> None:
        name = backup["metadata"]["name"]
        log = self._manager_log(backup).with_fields(backup=name)
        if old_state == "InProgress":
            # Disabling the monitor cancels its polling context; upstream logs that as a warning.
            log.with_error("context canceled").warning(
                "Sync backup status canceled", caller=_MONITOR_CANCELED
            )
        elif (backup.get("status") or {}).get("state") == "Error":
            error = (backup.get("status") or {}).get("error", "")
            log.with_error(error).warning(
                f"Failed to enable the backup monitor for backup {name}", caller=_MONITOR_FAILED
            )

    def _record(self, backup: Obj) -> None:
        volume = self._volume_of(backup)
        if volume is None:
            return
        spec = backup.get("spec") or {}
        status = backup.get("status") or {}
        labels = " ".join(f"{k}:{v}" for k, v in sorted((spec.get("labels") or {}).items()))
        message = (
            f"Snapshot {spec.get('snapshotName', '')} backup {backup['metadata']['name']} label map[{labels}]"
        )
        state = str(status.get("state"))
        kind: Literal["Normal", "Warning"] = "Normal"
        if status.get("error"):
            kind, message = "Warning", f"{message}: {status['error']}"
        involved = object_ref(volume)
        self.recorder.event(involved, kind, state, message)
        # The manager's event broadcaster logs every event it records (StartLogging(logrus.Infof)),
        # through logrus' standard logger: no fields.
        standard = logs.of(self.ctx.store, clock=self.ctx.clock).manager(str(status.get("ownerID") or ""))
        standard.info(
            f"Event({_go_object_reference(involved)}): type: '{kind}' reason: '{state}' {message}",
            caller=_EVENT_LOGGED,
        )

    # -- helpers --

    def _volume_of(self, backup: Obj) -> Obj | None:
        try:
            return self.ctx.store.get(
                kinds.LH_VOLUME, labels_of(backup).get(LABEL_BACKUP_VOLUME, ""), namespace=NAMESPACE
            )
        except NotFound:
            return None

    def _engine_lost(self, run: _Run) -> bool:
        return not node_up(self.ctx, run.node) or self.ctx.fleet[run.node].boot_id != run.boot_id

    def _lock_stale(self, now_s: float) -> bool:
        if self.ctx.profile.outage_backup_error_s is None:
            return False
        return bool(self._nodes_down) or now_s < self._lock_clear_at

    def _owner(self) -> str:
        workers = [m.name for m in self.ctx.fleet if m.role == "worker"]
        return workers[0] if workers else self.ctx.fleet.names[0]

    def _target_error(self, backup: Obj) -> str:
        volume = labels_of(backup).get(LABEL_BACKUP_VOLUME, "")
        return (
            f"failed to create backup to {TARGET_URL} for volume {volume}: backup target "
            f"{TARGET_NAME} is unavailable: {self._target_message}"
        )

    def _lock_error(self, backup: Obj, run: _Run) -> str:
        volume = labels_of(backup).get(LABEL_BACKUP_VOLUME, "")
        digest = hashlib.sha256(volume.encode()).hexdigest()
        lock = hashlib.sha256(backup["metadata"]["name"].encode()).hexdigest()[:16]
        snapshot = (backup.get("spec") or {}).get("snapshotName", "")
        return (
            f"proxyServer={_replica(run.node).split(':')[0]}:8501 destination={_replica(run.node)}: "
            f"failed to backup snapshot {snapshot} to {backup['metadata']['name']}: rpc error: code = "
            f"Unknown desc = failed to create backup to {TARGET_URL} for volume {volume}: rpc error: "
            f"code = Unknown desc = failed to acquire lock backupstore/volumes/{digest[:2]}/{digest[2:4]}"
            f"/{volume}/locks/lock-{lock}.lck when performing backup create/restore, please try again later."
        )

    def _engine_lost_message(self, backup: Obj, run: _Run) -> str:
        snapshot = (backup.get("spec") or {}).get("snapshotName", "")
        return (
            f"proxyServer={_replica(run.node).split(':')[0]}:8501 destination={_replica(run.node)}: "
            f"failed to get backup status of snapshot {snapshot}: rpc error: code = Unavailable desc = "
            f"connection error: the engine on node {run.node} is gone"
        )


def _go_object_reference(ref: Obj) -> str:
    """A core/v1 ObjectReference as Go's %#v prints it."""
    fields = (
        ("Kind", "kind"),
        ("Namespace", "namespace"),
        ("Name", "name"),
        ("UID", "uid"),
        ("APIVersion", "apiVersion"),
        ("ResourceVersion", "resourceVersion"),
        ("FieldPath", "fieldPath"),
    )
    inner = ", ".join(f"{go}:{logs.go_quote(str(ref.get(key, '')))}" for go, key in fields)
    return f"v1.ObjectReference{{{inner}}}"


def _replica(node: str) -> str:
    digest = int(hashlib.sha256(node.encode()).hexdigest()[:4], 16)
    return f"10.42.{digest % 250}.{digest % 200 + 10}:10000"
