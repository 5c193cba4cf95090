"""Attaching Longhorn PVs where their pods run: kube-controller-manager's attach-detach controller,
with csi-attacher and Longhorn's ControllerPublishVolume/VolumeAttachment behind it, collapsed into
one step; and Longhorn's view of the Kubernetes side (`status.kubernetesStatus`).

Desired node of a PV's Longhorn Volume: the node of the oldest pod that mounts its claim, is
scheduled (spec.nodeName) and has not terminated (phase Succeeded/Failed) — as the attach-detach
controller's desired state of the world. It is written to the Volume's `spec.nodeID` (what
Longhorn's VolumeAttachment controller does with a CSI attachment ticket); "" when no pod uses the
claim, so the volume detaches. The Longhorn volume controller (longhorn_volumes.py) turns spec.nodeID
into status: attached on that node while its kubelet runs, detached/unknown while it is down.
A pod of the same RWO volume on another node gets FailedAttachVolume (Multi-Attach error); the pod
the volume is attached for gets SuccessfulAttachVolume once Longhorn reports it attached.

Node reboot: the pod keeps its node, so the volume shows detached/unknown while that node is down
and attached again when its kubelet is back (the pod's containers restart then). A pod the kubelet
failed at graceful shutdown (phase Failed) no longer holds the volume: it stays detached until a new
pod mounts the claim — as with a bare pod on a real cluster.

Keys: ("", PV name); the PV, the Longhorn Volume and the CSI volume handle share the name.
"""

from __future__ import annotations

from collections.abc import Iterable

from lhsoak.lab import kinds
from lhsoak.lab.controllers import storage
from lhsoak.lab.controllers.events import EventRecorder
from lhsoak.lab.controllers.longhorn_manager import NAMESPACE
from lhsoak.lab.controllers.meta import Key, Obj, controller_of, object_ref, rfc3339, uid_of
from lhsoak.lab.controllers.reconciler import Context, Reconciler
from lhsoak.lab.store import NotFound, WatchEvent

CONTROLLER_NAME = "attachdetach-controller"


class AttachDetach(Reconciler):
    """Keeps each Longhorn PV's Volume attached to the node of the pod that mounts its claim."""

    name = CONTROLLER_NAME
    kinds = (kinds.POD, kinds.PVC, kinds.PV, kinds.LH_VOLUME)

    def __init__(self, ctx: Context, recorder: EventRecorder) -> None:
        super().__init__(ctx)
        self.recorder = recorder
        self._announced: dict[str, tuple[str, str]] = {}
        """Volume name → (pod uid, node) whose SuccessfulAttachVolume was recorded."""

    def observe(self, event: WatchEvent) -> None:
        obj = event.object
        if event.kind == kinds.POD:
            namespace = str(obj["metadata"].get("namespace") or "")
            for claim in storage.claim_names(obj):
                self._enqueue_claim(namespace, claim)
        elif event.kind == kinds.PVC:
            volume_name = (obj.get("spec") or {}).get("volumeName")
            if volume_name:
                self.enqueue(("", str(volume_name)))
        elif event.kind == kinds.PV:
            if event.type == "DELETED":
                self._announced.pop(obj["metadata"]["name"], None)
            else:
                self.enqueue(("", obj["metadata"]["name"]))
        elif obj["metadata"].get("namespace") == NAMESPACE and event.type != "DELETED":
            self.enqueue(("", obj["metadata"]["name"]))

    def all_keys(self) -> Iterable[Key]:
        volumes, _ = self.ctx.store.list(kinds.PV)
        return [("", v["metadata"]["name"]) for v in volumes if storage.is_longhorn_pv(v)]

    def reconcile(self, key: Key) -> float | None:
        _, name = key
        try:
            pv = self.ctx.store.get(kinds.PV, name)
        except NotFound:
            self._announced.pop(name, None)
            return None
        if not storage.is_longhorn_pv(pv):
            return None
        volume_name = str((pv.get("spec") or {}).get("csi", {}).get("volumeHandle") or name)
        try:
            volume = self.ctx.store.get(kinds.LH_VOLUME, volume_name, namespace=NAMESPACE)
        except NotFound:
            return None
        claim = self._claim_of(pv)
        pods = self._pods_of(claim)
        holders = [p for p in pods if storage.holds_claim(p)]
        node = str(holders[0]["spec"]["nodeName"]) if holders else ""
        volume = self._request_node(volume, node)
        self._refuse_other_nodes(volume_name, holders, node)
        self._write_kubernetes_status(volume, pv, claim, pods)
        self._announce_attached(volume, holders[0] if holders else None)
        return None

    # -- attaching --

    def _request_node(self, volume: Obj, node: str) -> Obj:
        if str((volume.get("spec") or {}).get("nodeID") or "") == node:
            return volume

        def request(obj: Obj) -> None:
            obj["spec"]["nodeID"] = node

        return self.ctx.store.mutate(
            kinds.LH_VOLUME, volume["metadata"]["name"], request, namespace=NAMESPACE
        )

    def _refuse_other_nodes(self, volume_name: str, holders: list[Obj], node: str) -> None:
        users = [p["metadata"]["name"] for p in holders if p["spec"]["nodeName"] == node]
        for pod in holders:
            if pod["spec"]["nodeName"] != node:
                self.recorder.event(
                    object_ref(pod),
                    "Warning",
                    "FailedAttachVolume",
                    f'Multi-Attach error for volume "{volume_name}" Volume is already used by pod(s) '
                    f"{', '.join(users)}",
                )

    def _announce_attached(self, volume: Obj, holder: Obj | None) -> None:
        name = volume["metadata"]["name"]
        status = volume.get("status") or {}
        node = str(status.get("currentNodeID") or "")
        if holder is None or status.get("state") != "attached" or node != holder["spec"]["nodeName"]:
            return
        announced = (uid_of(holder), node)
        if self._announced.get(name) == announced:
            return
        self._announced[name] = announced
        self.recorder.event(
            object_ref(holder),
            "Normal",
            "SuccessfulAttachVolume",
            f'AttachVolume.Attach succeeded for volume "{name}"',
        )

    # -- Longhorn's kubernetes status --

    def _write_kubernetes_status(self, volume: Obj, pv: Obj, claim: Obj | None, pods: list[Obj]) -> None:
        """status.kubernetesStatus as Longhorn's kubernetes PV and pod controllers keep it."""
        previous = (volume.get("status") or {}).get("kubernetesStatus") or {}
        now = rfc3339(self.ctx.clock())
        workloads = [_workload_status(p) for p in pods if not p["metadata"].get("deletionTimestamp")]
        claim_ref = (pv.get("spec") or {}).get("claimRef") or {}
        wanted = {
            "pvName": pv["metadata"]["name"],
            "pvStatus": str((pv.get("status") or {}).get("phase") or ""),
            "namespace": str(claim_ref.get("namespace") or previous.get("namespace") or ""),
            "pvcName": str(claim_ref.get("name") or previous.get("pvcName") or ""),
            "lastPVCRefAt": "" if claim is not None else (previous.get("lastPVCRefAt") or now),
            "workloadsStatus": workloads,
            "lastPodRefAt": "" if workloads else _since(previous, now),
        }
        if wanted == previous:
            return

        def write(obj: Obj) -> None:
            obj["status"] = {**(obj.get("status") or {}), "kubernetesStatus": wanted}

        self.ctx.store.mutate(
            kinds.LH_VOLUME, volume["metadata"]["name"], write, namespace=NAMESPACE, subresource="status"
        )

    # -- lookups --

    def _enqueue_claim(self, namespace: str, claim: str) -> None:
        try:
            pvc = self.ctx.store.get(kinds.PVC, claim, namespace=namespace)
        except NotFound:
            return
        volume_name = (pvc.get("spec") or {}).get("volumeName")
        if volume_name:
            self.enqueue(("", str(volume_name)))

    def _claim_of(self, pv: Obj) -> Obj | None:
        claim_ref = (pv.get("spec") or {}).get("claimRef") or {}
        if not claim_ref.get("name"):
            return None
        try:
            claim = self.ctx.store.get(
                kinds.PVC, str(claim_ref["name"]), namespace=str(claim_ref.get("namespace"))
            )
        except NotFound:
            return None
        if claim_ref.get("uid") and claim_ref["uid"] != uid_of(claim):
            return None
        return claim

    def _pods_of(self, claim: Obj | None) -> list[Obj]:
        if claim is None or not (claim.get("spec") or {}).get("volumeName"):
            return []
        meta = claim["metadata"]
        return storage.pods_using(self.ctx.store, str(meta["namespace"]), str(meta["name"]))


def _workload_status(pod: Obj) -> Obj:
    owner = controller_of(pod) or {}
    return {
        "podName": pod["metadata"]["name"],
        "podStatus": str((pod.get("status") or {}).get("phase") or ""),
        "workloadName": str(owner.get("name") or ""),
        "workloadType": str(owner.get("kind") or ""),
    }


def _since(previous: Obj, now: str) -> str:
    """lastPodRefAt: when the last pod went (kept once set); "" for a volume no pod ever used."""
    if previous.get("lastPodRefAt"):
        return str(previous["lastPodRefAt"])
    return now if previous.get("workloadsStatus") else ""
