"""kube-controller-manager's persistent volume binder, with the pvc- and pv-protection controllers.

Claims (as pkg/controller/volume/persistentvolume syncClaim): an unbound claim with a PV pre-bound
to it (spec.claimRef with its uid, as external-provisioner writes it) is bound: the claim gets
spec.volumeName, annotations `pv.kubernetes.io/bind-completed` and `bound-by-controller`, status
Bound with the PV's capacity and access modes; the PV status Bound. Without one, a claim of a class
with an external provisioner is annotated `volume.kubernetes.io/storage-provisioner` (and the beta
key) and stays Pending with event ExternalProvisioning; an unknown class gives ProvisioningFailed,
no class FailedBinding. A bound claim whose PV is gone is Lost (event ClaimLost).

Volumes (syncVolume): no claimRef → Available; a claimRef whose claim is gone (or has another uid)
→ Released. Reclaiming a Released volume of an external provisioner is that provisioner's job.

Protection: claims and volumes get the `kubernetes.io/pvc-protection` / `pv-protection` finalizer
(added at creation by the StorageObjectInUseProtection admission plugin, or by these controllers).
A deleted claim goes once no scheduled, unfinished pod mounts it; a deleted volume once it is not
Bound.

Keys: (namespace, name) for claims, ("", name) for volumes (claims always have a namespace).
"""

from __future__ import annotations

from collections.abc import Iterable

from lhsoak.lab import kinds
from lhsoak.lab.controllers import storage
from lhsoak.lab.controllers.events import EventRecorder, EventType
from lhsoak.lab.controllers.meta import Key, Obj, key_of, object_ref, rfc3339, uid_of
from lhsoak.lab.controllers.reconciler import Context, Reconciler
from lhsoak.lab.kinds import Kind
from lhsoak.lab.store import NotFound, WatchEvent

CONTROLLER_NAME = "persistentvolume-controller"


class PersistentVolumeController(Reconciler):
    """Binds claims to the volumes provisioned for them; phases; claim and volume protection."""

    name = CONTROLLER_NAME
    kinds = (kinds.PVC, kinds.PV, kinds.POD, kinds.STORAGE_CLASS)

    def __init__(self, ctx: Context, recorder: EventRecorder) -> None:
        super().__init__(ctx)
        self.recorder = recorder

    def observe(self, event: WatchEvent) -> None:
        obj = event.object
        if event.kind == kinds.PVC:
            self.enqueue(key_of(obj))
            volume_name = (obj.get("spec") or {}).get("volumeName")
            if volume_name:
                self.enqueue(("", str(volume_name)))
        elif event.kind == kinds.PV:
            self.enqueue(("", obj["metadata"]["name"]))
            claim_ref = (obj.get("spec") or {}).get("claimRef") or {}
            if claim_ref.get("namespace") and claim_ref.get("name"):
                self.enqueue((str(claim_ref["namespace"]), str(claim_ref["name"])))
        elif event.kind == kinds.POD:
            # A pod that finished or went may free a claim waiting on its protection finalizer.
            if event.type == "DELETED" or storage.terminated(obj):
                namespace = str(obj["metadata"].get("namespace") or "")
                for claim in storage.claim_names(obj):
                    self.enqueue((namespace, claim))
        else:
            for key in self._pending_claim_keys():
                self.enqueue(key)

    def all_keys(self) -> Iterable[Key]:
        claims, _ = self.ctx.store.list(kinds.PVC)
        volumes, _ = self.ctx.store.list(kinds.PV)
        return [*(key_of(c) for c in claims), *(("", v["metadata"]["name"]) for v in volumes)]

    def reconcile(self, key: Key) -> float | None:
        namespace, name = key
        if namespace:
            self._sync_claim(namespace, name)
        else:
            self._sync_volume(name)
        return None

    # -- claims --

    def _sync_claim(self, namespace: str, name: str) -> None:
        try:
            claim = self.ctx.store.get(kinds.PVC, name, namespace=namespace)
        except NotFound:
            return
        if claim["metadata"].get("deletionTimestamp"):
            self._release_claim_if_unused(claim)
            return
        claim = self._add_finalizer(kinds.PVC, claim, storage.PVC_PROTECTION)
        volume_name = (claim.get("spec") or {}).get("volumeName")
        if volume_name:
            self._sync_bound_claim(claim, str(volume_name))
        else:
            self._sync_unbound_claim(claim)

    def _sync_unbound_claim(self, claim: Obj) -> None:
        volume = self._volume_prebound_to(claim)
        if volume is not None:
            self._bind(claim, volume)
            return
        self._set_claim_phase(claim, "Pending")
        class_name = (claim.get("spec") or {}).get("storageClassName") or ""
        if not class_name:
            self._claim_event(
                claim,
                "Warning",
                "FailedBinding",
                "no persistent volumes available for this claim and no storage class is set",
            )
            return
        try:
            storage_class = self.ctx.store.get(kinds.STORAGE_CLASS, class_name)
        except NotFound:
            self._claim_event(
                claim,
                "Warning",
                "ProvisioningFailed",
                f'storageclass.storage.k8s.io "{class_name}" not found',
            )
            return
        provisioner = str(storage_class.get("provisioner") or "")
        self._annotate_provisioner(claim, provisioner)
        self._claim_event(
            claim,
            "Normal",
            "ExternalProvisioning",
            f"Waiting for a volume to be created either by the external provisioner '{provisioner}' or "
            "manually by the system administrator. If volume creation is delayed, please verify that the "
            "provisioner is running and correctly registered.",
        )

    def _sync_bound_claim(self, claim: Obj, volume_name: str) -> None:
        try:
            volume = self.ctx.store.get(kinds.PV, volume_name)
        except NotFound:
            if self._set_claim_phase(claim, "Lost"):
                self._claim_event(
                    claim,
                    "Warning",
                    "ClaimLost",
                    "Bound claim has lost its PersistentVolume. Data on the volume is lost!",
                )
            return
        claim_ref = (volume.get("spec") or {}).get("claimRef") or {}
        if not claim_ref or _refers_to(claim_ref, claim):
            self._bind(claim, volume)
        elif self._set_claim_phase(claim, "Lost"):
            self._claim_event(
                claim,
                "Warning",
                "ClaimMisbound",
                "Two claims are bound to the same volume, this one is bound incorrectly",
            )

    def _volume_prebound_to(self, claim: Obj) -> Obj | None:
        volumes, _ = self.ctx.store.list(kinds.PV)
        for volume in volumes:
            claim_ref = (volume.get("spec") or {}).get("claimRef") or {}
            if claim_ref and _refers_to(claim_ref, claim) and not volume["metadata"].get("deletionTimestamp"):
                return volume
        return None

    def _bind(self, claim: Obj, volume: Obj) -> None:
        """bindVolumeToClaim + bindClaimToVolume + the two status updates; each only if needed."""
        volume_name = volume["metadata"]["name"]
        claim_ref = (volume.get("spec") or {}).get("claimRef") or {}
        if not claim_ref.get("uid"):

            def prebind(obj: Obj) -> None:
                obj["spec"]["claimRef"] = _claim_ref(claim)
                obj["metadata"].setdefault("annotations", {})[storage.ANN_BOUND_BY_CONTROLLER] = "yes"

            volume = self.ctx.store.mutate(kinds.PV, volume_name, prebind)
        self._set_volume_phase(volume, "Bound")
        wanted_annotations = {storage.ANN_BIND_COMPLETED: "yes"}
        if not (claim.get("spec") or {}).get("volumeName"):
            # Only a claim the controller bound says so; a user's pre-bound claim does not.
            wanted_annotations[storage.ANN_BOUND_BY_CONTROLLER] = "yes"
        annotations = claim["metadata"].get("annotations") or {}
        namespace, name = key_of(claim)
        if (claim.get("spec") or {}).get("volumeName") != volume_name or any(
            annotations.get(k) != v for k, v in wanted_annotations.items()
        ):

            def bind(obj: Obj) -> None:
                obj["spec"]["volumeName"] = volume_name
                obj["metadata"].setdefault("annotations", {}).update(wanted_annotations)

            claim = self.ctx.store.mutate(kinds.PVC, name, bind, namespace=namespace)
        spec = volume.get("spec") or {}
        wanted_status = {
            **(claim.get("status") or {}),
            "phase": "Bound",
            "accessModes": list(spec.get("accessModes") or ()),
            "capacity": dict(spec.get("capacity") or {}),
        }
        if wanted_status != claim.get("status"):

            def bound(obj: Obj) -> None:
                obj["status"] = wanted_status

            self.ctx.store.mutate(kinds.PVC, name, bound, namespace=namespace, subresource="status")

    def _annotate_provisioner(self, claim: Obj, provisioner: str) -> None:
        annotations = claim["metadata"].get("annotations") or {}
        keys = (storage.ANN_STORAGE_PROVISIONER, storage.ANN_BETA_STORAGE_PROVISIONER)
        if all(annotations.get(k) == provisioner for k in keys):
            return
        namespace, name = key_of(claim)

        def annotate(obj: Obj) -> None:
            obj["metadata"].setdefault("annotations", {}).update(dict.fromkeys(keys, provisioner))

        self.ctx.store.mutate(kinds.PVC, name, annotate, namespace=namespace)

    def _set_claim_phase(self, claim: Obj, phase: str) -> bool:
        """Write status.phase if it differs; True when it changed."""
        if (claim.get("status") or {}).get("phase") == phase:
            return False
        namespace, name = key_of(claim)

        def write(obj: Obj) -> None:
            obj["status"] = {**(obj.get("status") or {}), "phase": phase}

        self.ctx.store.mutate(kinds.PVC, name, write, namespace=namespace, subresource="status")
        return True

    def _release_claim_if_unused(self, claim: Obj) -> None:
        namespace, name = key_of(claim)
        if any(storage.holds_claim(p) for p in storage.pods_using(self.ctx.store, namespace, name)):
            return
        self._remove_finalizer(kinds.PVC, claim, storage.PVC_PROTECTION)

    def _claim_event(self, claim: Obj, type_: EventType, reason: str, message: str) -> None:
        self.recorder.event(object_ref(claim), type_, reason, message)

    def _pending_claim_keys(self) -> list[Key]:
        claims, _ = self.ctx.store.list(kinds.PVC)
        return [key_of(c) for c in claims if not (c.get("spec") or {}).get("volumeName")]

    # -- volumes --

    def _sync_volume(self, name: str) -> None:
        try:
            volume = self.ctx.store.get(kinds.PV, name)
        except NotFound:
            return
        if volume["metadata"].get("deletionTimestamp"):
            if (volume.get("status") or {}).get("phase") != "Bound":
                self._remove_finalizer(kinds.PV, volume, storage.PV_PROTECTION)
            return
        volume = self._add_finalizer(kinds.PV, volume, storage.PV_PROTECTION)
        claim_ref = (volume.get("spec") or {}).get("claimRef") or {}
        if not claim_ref:
            self._set_volume_phase(volume, "Available")
            return
        claim = self._claim_of(claim_ref)
        if claim is None:
            self._set_volume_phase(volume, "Released")
        elif (claim.get("spec") or {}).get("volumeName") == name:
            self._set_volume_phase(volume, "Bound")
        elif not (volume.get("status") or {}).get("phase"):
            # Pre-bound, waiting for the claim's sync to bind it (the real default phase is Pending).
            self._set_volume_phase(volume, "Pending")

    def _claim_of(self, claim_ref: Obj) -> Obj | None:
        """The claim a claimRef names, None when it is gone or is another claim of that name."""
        try:
            claim = self.ctx.store.get(
                kinds.PVC, str(claim_ref.get("name", "")), namespace=str(claim_ref.get("namespace", ""))
            )
        except NotFound:
            return None
        if claim_ref.get("uid") and claim_ref["uid"] != uid_of(claim):
            return None
        return claim

    def _set_volume_phase(self, volume: Obj, phase: str) -> None:
        status = volume.get("status") or {}
        if status.get("phase") == phase:
            return
        now = rfc3339(self.ctx.clock())

        def write(obj: Obj) -> None:
            obj["status"] = {**(obj.get("status") or {}), "phase": phase, "lastPhaseTransitionTime": now}

        self.ctx.store.mutate(kinds.PV, volume["metadata"]["name"], write, subresource="status")

    # -- finalizers --

    def _add_finalizer(self, kind: Kind, obj: Obj, finalizer: str) -> Obj:
        if finalizer in (obj["metadata"].get("finalizers") or ()):
            return obj
        namespace, name = key_of(obj)

        def add(current: Obj) -> None:
            current["metadata"].setdefault("finalizers", []).append(finalizer)

        return self.ctx.store.mutate(kind, name, add, namespace=namespace or None)

    def _remove_finalizer(self, kind: Kind, obj: Obj, finalizer: str) -> None:
        if finalizer not in (obj["metadata"].get("finalizers") or ()):
            return
        namespace, name = key_of(obj)

        def remove(current: Obj) -> None:
            current["metadata"]["finalizers"] = [
                f for f in current["metadata"].get("finalizers") or () if f != finalizer
            ]

        self.ctx.store.mutate(kind, name, remove, namespace=namespace or None)


def _refers_to(claim_ref: Obj, claim: Obj) -> bool:
    namespace, name = key_of(claim)
    same_name = claim_ref.get("namespace") == namespace and claim_ref.get("name") == name
    return same_name and (not claim_ref.get("uid") or claim_ref["uid"] == uid_of(claim))


def _claim_ref(claim: Obj) -> Obj:
    namespace, name = key_of(claim)
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "namespace": namespace,
        "name": name,
        "uid": uid_of(claim),
        "resourceVersion": str(claim["metadata"].get("resourceVersion", "")),
    }
