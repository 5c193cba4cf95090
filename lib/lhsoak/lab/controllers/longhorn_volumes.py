"""longhorn-manager's volume and snapshot controllers, reduced to what recurring jobs touch.

Volumes: a volume without any `recurring-job.longhorn.io/*` or `recurring-job-group.longhorn.io/*`
label gets `recurring-job-group.longhorn.io/default=enabled` (datastore.FixupRecurringJob, applied
upstream on every volume create/update). Each volume is attached to one worker (`spec.nodeID`, or
the worker with the fewest volumes): `status.state` is "attached" and robustness "healthy" while
that node's kubelet runs, "detached"/"unknown" while it is down (its engine died with the node).
A volume behind a PersistentVolume is attached only where its pod runs (spec.nodeID, set by
attach_detach.py; none: detached).

Snapshots: a Snapshot CR asking for a snapshot (`spec.createSnapshot`) becomes `readyToUse` with
`creationTime` after `snapshot_ready_s`, once its volume is attached; it waits while the volume is
detached (the job task then times out on it, as upstream after SnapshotReadyTimeout).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from lhsoak.lab import kinds
from lhsoak.lab.controllers import storage
from lhsoak.lab.controllers.longhorn_manager import (
    DEFAULT_GROUP,
    GROUP_LABEL_PREFIX,
    JOB_LABEL_PREFIX,
    LABEL_ENABLED,
    NAMESPACE,
)
from lhsoak.lab.controllers.meta import Key, Obj, labels_of, rfc3339
from lhsoak.lab.controllers.reconciler import Context, Reconciler
from lhsoak.lab.machine import MachineEvent
from lhsoak.lab.store import NotFound, WatchEvent

LABEL_VOLUME = "longhornvolume"
VOLUME_SIZE = "2147483648"
SNAPSHOT_SIZE = 2097152

_VOLUME = "volume"
_SNAPSHOT = "snapshot"


def node_up(ctx: Context, node_name: str) -> bool:
    """True while the machine `node_name` runs with its kubelet active."""
    if node_name not in ctx.fleet:
        return False
    machine = ctx.fleet[node_name]
    return machine.state == "running" and machine.kubelet_active


class LonghornVolumes(Reconciler):
    """Volume attachment state and default recurring-job group; Snapshot CR readiness."""

    name = "longhorn-volume"
    kinds = (kinds.LH_VOLUME, kinds.LH_SNAPSHOT)
    follows_machines = True

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self._ready_at: dict[str, float] = {}
        self._rng = ctx.profile.rng("volumes")

    # Keys are (kind tag, name): volumes and snapshots share the queue, all in longhorn-system.

    def on_machine(self, event: MachineEvent) -> None:
        if event.kind in ("kubelet-started", "kubelet-stopped"):
            for key in self._volume_keys():
                self.enqueue(key)

    def observe(self, event: WatchEvent) -> None:
        obj = event.object
        if obj["metadata"].get("namespace") != NAMESPACE:
            return
        if event.kind == kinds.LH_VOLUME:
            if event.type == "DELETED":
                return
            self.enqueue((_VOLUME, obj["metadata"]["name"]))
            if (obj.get("status") or {}).get("state") == "attached":
                for key in self._pending_snapshot_keys(obj["metadata"]["name"]):
                    self.enqueue(key)
        elif event.type == "DELETED":
            self._ready_at.pop(obj["metadata"]["name"], None)
        else:
            self.enqueue((_SNAPSHOT, obj["metadata"]["name"]))

    def all_keys(self) -> Iterable[Key]:
        snapshots, _ = self.ctx.store.list(kinds.LH_SNAPSHOT, namespace=NAMESPACE)
        return [*self._volume_keys(), *((_SNAPSHOT, s["metadata"]["name"]) for s in snapshots)]

    def reconcile(self, key: Key) -> float | None:
        tag, name = key
        if tag == _VOLUME:
            self._reconcile_volume(name)
            return None
        return self._reconcile_snapshot(name)

    # -- volumes --

    def _volume_keys(self) -> list[Key]:
        volumes, _ = self.ctx.store.list(kinds.LH_VOLUME, namespace=NAMESPACE)
        return [(_VOLUME, v["metadata"]["name"]) for v in volumes]

    def _reconcile_volume(self, name: str) -> None:
        try:
            volume = self.ctx.store.get(kinds.LH_VOLUME, name, namespace=NAMESPACE)
        except NotFound:
            return
        if not any(k.startswith((JOB_LABEL_PREFIX, GROUP_LABEL_PREFIX)) for k in labels_of(volume)):

            def label_default(obj: Obj) -> None:
                labels = obj["metadata"].setdefault("labels", {})
                labels[GROUP_LABEL_PREFIX + DEFAULT_GROUP] = LABEL_ENABLED

            volume = self.ctx.store.mutate(kinds.LH_VOLUME, name, label_default, namespace=NAMESPACE)
        status = dict(volume.get("status") or {})
        node, owner = self._attachment(volume, status)
        attached = node_up(self.ctx, node)
        wanted = {
            **status,
            "currentNodeID": node if attached else "",
            "ownerID": owner,
            "state": "attached" if attached else "detached",
            "robustness": "healthy" if attached else "unknown",
            "frontendDisabled": False,
            "restoreRequired": False,
        }
        if wanted != status:

            def write(obj: Obj) -> None:
                obj["status"] = wanted

            self.ctx.store.mutate(kinds.LH_VOLUME, name, write, namespace=NAMESPACE, subresource="status")

    def _attachment(self, volume: Obj, status: Obj) -> tuple[str, str]:
        """(node to attach to, "" for none; ownerID). A PV's volume goes where its pod runs: spec.nodeID
        as the CSI attach sets it (attach_detach.py). The lab's bare volumes stay attached, to
        spec.nodeID or their owner: ownerID keeps the node a detached volume comes back to."""
        requested = str((volume.get("spec") or {}).get("nodeID") or "")
        if storage.has_persistent_volume(self.ctx.store, volume["metadata"]["name"]):
            return requested, requested or str(status.get("ownerID") or "") or self._pick_node()
        node = requested or str(status.get("ownerID") or "") or self._pick_node()
        return node, node

    def _pick_node(self) -> str:
        workers = [m.name for m in self.ctx.fleet if m.role == "worker"] or self.ctx.fleet.names
        volumes, _ = self.ctx.store.list(kinds.LH_VOLUME, namespace=NAMESPACE)
        load = Counter((v.get("status") or {}).get("ownerID") for v in volumes)
        least = min(load[w] for w in workers)
        return str(self._rng.choice(sorted(w for w in workers if load[w] == least)))

    # -- snapshots --

    def _own_by_volume(self, name: str, volume: Obj) -> None:
        # Longhorn's snapshot mutating webhook gives every Snapshot its volume as owner
        # (datastore.GetOwnerReferencesForVolume), so deleting a volume garbage-collects its snapshots.
        reference = {
            "apiVersion": volume["apiVersion"],
            "kind": volume["kind"],
            "name": volume["metadata"]["name"],
            "uid": volume["metadata"]["uid"],
            "blockOwnerDeletion": True,
        }

        def own(obj: Obj) -> None:
            obj["metadata"]["ownerReferences"] = [reference]

        self.ctx.store.mutate(kinds.LH_SNAPSHOT, name, own, namespace=NAMESPACE)

    def _pending_snapshot_keys(self, volume_name: str) -> list[Key]:
        snapshots, _ = self.ctx.store.list(kinds.LH_SNAPSHOT, namespace=NAMESPACE)
        return [
            (_SNAPSHOT, s["metadata"]["name"])
            for s in snapshots
            if (s.get("spec") or {}).get("volume") == volume_name
            and not (s.get("status") or {}).get("readyToUse")
        ]

    def _reconcile_snapshot(self, name: str) -> float | None:
        try:
            snapshot = self.ctx.store.get(kinds.LH_SNAPSHOT, name, namespace=NAMESPACE)
        except NotFound:
            self._ready_at.pop(name, None)
            return None
        spec = snapshot.get("spec") or {}
        try:
            volume = self.ctx.store.get(kinds.LH_VOLUME, str(spec.get("volume", "")), namespace=NAMESPACE)
        except NotFound:
            self._ready_at.pop(name, None)
            return None
        if not snapshot["metadata"].get("ownerReferences"):
            self._own_by_volume(name, volume)
        if (snapshot.get("status") or {}).get("readyToUse") or not spec.get("createSnapshot"):
            self._ready_at.pop(name, None)
            return None
        if (volume.get("status") or {}).get("state") != "attached":
            self._ready_at.pop(name, None)
            return None
        now_s = self.ctx.clock()
        ready_at = self._ready_at.setdefault(
            name, now_s + self.ctx.jittered(self.ctx.profile.snapshot_ready_s)
        )
        if now_s < ready_at:
            return ready_at - now_s
        self._ready_at.pop(name, None)
        owner = str((volume.get("status") or {}).get("currentNodeID", ""))

        def ready(obj: Obj) -> None:
            obj["status"] = {
                **(obj.get("status") or {}),
                "ownerID": owner,
                "creationTime": rfc3339(now_s),
                "readyToUse": True,
                "userCreated": True,
                "markRemoved": False,
                "labels": dict(spec.get("labels") or {}),
                "size": SNAPSHOT_SIZE,
                "restoreSize": int(VOLUME_SIZE),
                "parent": "",
                "children": {"volume-head": True},
                "error": "",
            }

        self.ctx.store.mutate(kinds.LH_SNAPSHOT, name, ready, namespace=NAMESPACE, subresource="status")
        return None
