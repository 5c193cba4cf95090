"""Longhorn's CSI driver as the control plane sees it: the csi-provisioner sidecar with the driver's
CreateVolume/DeleteVolume behind it (longhorn-manager csi/controller_server.go).

Provisioning: a claim the persistent volume controller annotated
`volume.kubernetes.io/storage-provisioner: driver.longhorn.io`, not yet bound, gets a Longhorn
Volume named `pvc-<claim uid>` — the requested size (at least 10 MiB, rounded up to 2 MiB), the
class's numberOfReplicas (else the `default-replica-count` setting), staleReplicaTimeout,
dataLocality, dataEngine... — and a PersistentVolume of the same name pre-bound to the claim
(spec.claimRef with its uid; csi.driver and volumeHandle; the class's reclaim policy; finalizers
pv-protection and external-provisioner's). Events on the claim: Provisioning, then
ProvisioningSucceeded, or ProvisioningFailed (retried, as the sidecar does).

Deleting: a Released PV of this driver with reclaim policy Delete has its Longhorn Volume deleted,
then the PV (its finalizer removed; pv-protection lets it go once it is not Bound).

Keys: (namespace, name) for claims, ("", name) for PVs.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Mapping
from typing import Any

from lhsoak.lab import kinds
from lhsoak.lab.controllers import storage
from lhsoak.lab.controllers.events import EventRecorder
from lhsoak.lab.controllers.longhorn_manager import NAMESPACE, setting
from lhsoak.lab.controllers.meta import Key, Obj, key_of, object_ref, uid_of
from lhsoak.lab.controllers.reconciler import Context, Reconciler
from lhsoak.lab.store import AlreadyExists, ApiError, NotFound, WatchEvent

PROVISIONER_COMPONENT = f"{storage.DRIVER}_csi-provisioner"
MINIMAL_VOLUME_SIZE = 10 * 1024 * 1024
SIZE_ALIGNMENT = 2 * 1024 * 1024
DEFAULT_STALE_REPLICA_TIMEOUT = 2880
RETRY_S = 1.0
"""Delay before a failed provisioning is tried again, seconds (time-compressed; the sidecar backs off
exponentially from 1 s)."""

_CSI_PARAMETER_PREFIX = "csi.storage.k8s.io/"
_ACCESS_MODES = {"ReadWriteMany": "rwx", "ReadWriteOncePod": "rwop"}


class ProvisioningError(Exception):
    """The driver refused the request (the message is what ProvisioningFailed reports)."""


class LonghornCsi(Reconciler):
    """Creates a Longhorn Volume and a PV for each claim of a `driver.longhorn.io` class; deletes
    both when the claim is gone and the class said Delete."""

    name = "csi-provisioner"
    kinds = (kinds.PVC, kinds.PV)

    def __init__(self, ctx: Context, recorder: EventRecorder) -> None:
        super().__init__(ctx)
        self.recorder = recorder
        # external-provisioner: "<start time ms>-<random 0..9999>-<driver>"; its own rng keeps the
        # controllers' shared jitter sequence as it was.
        draw = ctx.profile.rng("csi-provisioner").randrange(10000)
        self._identity = f"{int(ctx.clock() * 1000)}-{draw}-{storage.DRIVER}"

    def observe(self, event: WatchEvent) -> None:
        obj = event.object
        if event.type == "DELETED":
            return
        if event.kind == kinds.PVC:
            self.enqueue(key_of(obj))
        else:
            self.enqueue(("", obj["metadata"]["name"]))

    def all_keys(self) -> Iterable[Key]:
        claims, _ = self.ctx.store.list(kinds.PVC)
        volumes, _ = self.ctx.store.list(kinds.PV)
        return [*(key_of(c) for c in claims), *(("", v["metadata"]["name"]) for v in volumes)]

    def reconcile(self, key: Key) -> float | None:
        namespace, name = key
        if namespace:
            return self._provision(namespace, name)
        self._reclaim(name)
        return None

    # -- provisioning --

    def _provision(self, namespace: str, name: str) -> float | None:
        try:
            claim = self.ctx.store.get(kinds.PVC, name, namespace=namespace)
        except NotFound:
            return None
        if not _wants_provisioning(claim):
            return None
        pv_name = storage.pv_name_for(claim)
        try:
            self.ctx.store.get(kinds.PV, pv_name)
            return None
        except NotFound:
            pass
        class_name = str((claim.get("spec") or {}).get("storageClassName") or "")
        ref = object_ref(claim)
        self.recorder.event(
            ref,
            "Normal",
            "Provisioning",
            f'External provisioner is provisioning volume for claim "{namespace}/{name}"',
        )
        try:
            storage_class = self.ctx.store.get(kinds.STORAGE_CLASS, class_name)
            size = self._create_volume(pv_name, claim, storage_class)
            self.ctx.store.create(kinds.PV, self._pv_object(pv_name, claim, storage_class, size))
        except (ProvisioningError, ApiError) as error:
            message = error.message if isinstance(error, ApiError) else str(error)
            self.recorder.event(
                ref,
                "Warning",
                "ProvisioningFailed",
                f'failed to provision volume with StorageClass "{class_name}": {message}',
            )
            return RETRY_S
        self.recorder.event(
            ref, "Normal", "ProvisioningSucceeded", f"Successfully provisioned volume {pv_name}"
        )
        return None

    def _create_volume(self, volume_name: str, claim: Obj, storage_class: Obj) -> int:
        """CreateVolume: the Longhorn Volume (idempotent, as the driver is); its size in bytes."""
        size = _requested_size(claim)
        parameters = _driver_parameters(storage_class)
        try:
            existing = self.ctx.store.get(kinds.LH_VOLUME, volume_name, namespace=NAMESPACE)
        except NotFound:
            existing = None
        if existing is not None:
            existing_size = int((existing.get("spec") or {}).get("size") or 0)
            if existing_size != size:
                raise ProvisioningError(
                    f"rpc error: code = AlreadyExists desc = volume {volume_name} size {existing_size} "
                    f"differs from requested size {size}"
                )
            return size
        spec = self._volume_spec(size, parameters, access_modes=_access_modes(claim))
        volume = {
            "apiVersion": kinds.LH_VOLUME.api_version,
            "kind": kinds.LH_VOLUME.kind,
            "metadata": {"name": volume_name, "namespace": NAMESPACE},
            "spec": spec,
        }
        with contextlib.suppress(AlreadyExists):
            self.ctx.store.create(kinds.LH_VOLUME, volume)
        return size

    def _volume_spec(self, size: int, parameters: Mapping[str, str], *, access_modes: list[str]) -> Obj:
        """getVolumeOptions over the class parameters, with longhorn-manager's defaults for the rest."""
        data_engine = parameters.get("dataEngine", "v1")
        access_mode = next((_ACCESS_MODES[m] for m in access_modes if m in _ACCESS_MODES), "rwo")
        stale_timeout = _int_parameter(parameters, "staleReplicaTimeout", minimum=None)
        return {
            "size": str(size),
            # 0 (or absent) leaves the count to longhorn-manager: the default-replica-count setting.
            "numberOfReplicas": _int_parameter(parameters, "numberOfReplicas", minimum=0)
            or self._default_replica_count(data_engine),
            "staleReplicaTimeout": stale_timeout if stale_timeout > 0 else DEFAULT_STALE_REPLICA_TIMEOUT,
            "frontend": "blockdev",
            "dataEngine": data_engine,
            "accessMode": access_mode,
            "dataLocality": parameters.get("dataLocality", "disabled"),
            "fromBackup": parameters.get("fromBackup", ""),
            "revisionCounterDisabled": _bool_parameter(parameters, "disableRevisionCounter", default=True),
            "unmapMarkSnapChainRemoved": parameters.get("unmapMarkSnapChainRemoved", "ignored"),
            "replicaAutoBalance": parameters.get("replicaAutoBalance", "ignored"),
            "snapshotDataIntegrity": "ignored",
            "backupCompressionMethod": "lz4",
            "backupTargetName": parameters.get("backupTargetName", "default"),
            "migratable": _bool_parameter(parameters, "migratable", default=False) and access_mode == "rwx",
            "encrypted": _bool_parameter(parameters, "encrypted", default=False),
            "nodeID": "",
        }

    def _default_replica_count(self, data_engine: str) -> int:
        try:
            obj: Obj | None = self.ctx.store.get(
                kinds.LH_SETTING, "default-replica-count", namespace=NAMESPACE
            )
        except NotFound:
            obj = None
        value = setting(obj, "default-replica-count")
        try:
            # Since v1.8 the setting is per data engine: {"v1":"3","v2":"3"}.
            parsed = json.loads(value)
            value = str(parsed.get(data_engine, 3)) if isinstance(parsed, dict) else str(parsed)
        except ValueError:
            pass
        return int(value) if value.isdigit() else 3

    def _pv_object(self, pv_name: str, claim: Obj, storage_class: Obj, size: int) -> Obj:
        """The PV external-provisioner writes for a provisioned volume, pre-bound to the claim."""
        namespace, name = key_of(claim)
        parameters = _driver_parameters(storage_class)
        attributes = {**parameters, "storage.kubernetes.io/csiProvisionerIdentity": self._identity}
        spec: Obj = {
            "accessModes": list((claim.get("spec") or {}).get("accessModes") or ["ReadWriteOnce"]),
            "capacity": {"storage": storage.binary_quantity(size)},
            "claimRef": {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "namespace": namespace,
                "name": name,
                "uid": uid_of(claim),
                "resourceVersion": str(claim["metadata"].get("resourceVersion", "")),
            },
            "csi": {
                "driver": storage.DRIVER,
                "fsType": _fs_type(storage_class),
                "volumeAttributes": attributes,
                "volumeHandle": pv_name,
            },
            "persistentVolumeReclaimPolicy": storage_class.get("reclaimPolicy") or "Delete",
            "storageClassName": storage_class["metadata"]["name"],
            "volumeMode": (claim.get("spec") or {}).get("volumeMode") or "Filesystem",
        }
        if storage_class.get("mountOptions"):
            spec["mountOptions"] = list(storage_class["mountOptions"])
        return {
            "apiVersion": kinds.PV.api_version,
            "kind": kinds.PV.kind,
            "metadata": {
                "name": pv_name,
                "annotations": {
                    storage.ANN_PROVISIONED_BY: storage.DRIVER,
                    "volume.kubernetes.io/provisioner-deletion-secret-name": "",
                    "volume.kubernetes.io/provisioner-deletion-secret-namespace": "",
                },
                "finalizers": [storage.PV_PROTECTION, storage.PROVISIONER_FINALIZER],
            },
            "spec": spec,
        }

    # -- deleting --

    def _reclaim(self, name: str) -> None:
        try:
            pv = self.ctx.store.get(kinds.PV, name)
        except NotFound:
            return
        annotations = pv["metadata"].get("annotations") or {}
        if annotations.get(storage.ANN_PROVISIONED_BY) != storage.DRIVER or not storage.is_longhorn_pv(pv):
            return
        released = (pv.get("status") or {}).get("phase") == "Released"
        policy = (pv.get("spec") or {}).get("persistentVolumeReclaimPolicy")
        deleting = bool(pv["metadata"].get("deletionTimestamp"))
        if released and policy == "Delete":
            self._delete_volume(str(pv["spec"]["csi"].get("volumeHandle") or name))
            if not deleting:
                pv = self.ctx.store.delete(kinds.PV, name)
            self._drop_finalizer(pv)
        elif deleting and policy != "Delete":
            self._drop_finalizer(pv)

    def _delete_volume(self, volume_name: str) -> None:
        """DeleteVolume: the Longhorn Volume goes (already gone is fine)."""
        with contextlib.suppress(NotFound):
            self.ctx.store.delete(kinds.LH_VOLUME, volume_name, namespace=NAMESPACE)

    def _drop_finalizer(self, pv: Obj) -> None:
        if storage.PROVISIONER_FINALIZER not in (pv["metadata"].get("finalizers") or ()):
            return

        def remove(obj: Obj) -> None:
            obj["metadata"]["finalizers"] = [
                f for f in obj["metadata"].get("finalizers") or () if f != storage.PROVISIONER_FINALIZER
            ]

        with contextlib.suppress(NotFound):
            self.ctx.store.mutate(kinds.PV, pv["metadata"]["name"], remove)


def _wants_provisioning(claim: Obj) -> bool:
    annotations = claim["metadata"].get("annotations") or {}
    return (
        annotations.get(storage.ANN_STORAGE_PROVISIONER) == storage.DRIVER
        and not (claim.get("spec") or {}).get("volumeName")
        and not claim["metadata"].get("deletionTimestamp")
    )


def _requested_size(claim: Obj) -> int:
    requested = (((claim.get("spec") or {}).get("resources") or {}).get("requests") or {}).get("storage")
    if requested is None:
        raise ProvisioningError("rpc error: code = InvalidArgument desc = claim has no storage request")
    try:
        size = storage.quantity_value(str(requested))
    except ValueError as error:
        raise ProvisioningError(f"rpc error: code = InvalidArgument desc = {error}") from None
    size = max(size, MINIMAL_VOLUME_SIZE)
    return -(-size // SIZE_ALIGNMENT) * SIZE_ALIGNMENT


def _driver_parameters(storage_class: Obj) -> dict[str, str]:
    """The class parameters the driver sees: external-provisioner strips its own csi.storage.k8s.io/ keys."""
    parameters = storage_class.get("parameters") or {}
    return {str(k): str(v) for k, v in parameters.items() if not str(k).startswith(_CSI_PARAMETER_PREFIX)}


def _fs_type(storage_class: Obj) -> str:
    parameters = storage_class.get("parameters") or {}
    return str(parameters.get(f"{_CSI_PARAMETER_PREFIX}fstype") or parameters.get("fsType") or "ext4")


def _access_modes(claim: Obj) -> list[str]:
    return [str(m) for m in (claim.get("spec") or {}).get("accessModes") or ()]


def _int_parameter(parameters: Mapping[str, Any], name: str, *, minimum: int | None) -> int:
    if name not in parameters:
        return 0
    try:
        value = int(str(parameters[name]))
    except ValueError:
        raise ProvisioningError(
            f"rpc error: code = InvalidArgument desc = invalid parameter {name}: {parameters[name]!r}"
        ) from None
    if minimum is not None and value < minimum:
        raise ProvisioningError(f"rpc error: code = InvalidArgument desc = invalid parameter {name}: {value}")
    return value


def _bool_parameter(parameters: Mapping[str, Any], name: str, *, default: bool) -> bool:
    if name not in parameters:
        return default
    text = str(parameters[name]).strip().lower()
    if text in ("1", "t", "true"):
        return True
    if text in ("0", "f", "false"):
        return False
    raise ProvisioningError(f"rpc error: code = InvalidArgument desc = invalid parameter {name}: {text!r}")
