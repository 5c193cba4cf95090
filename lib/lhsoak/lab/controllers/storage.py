"""Kubernetes storage as the lab's storage controllers share it: the Longhorn StorageClass, the
annotations and finalizers of claims and volumes, resource quantities, and which pods use a claim.

Names follow upstream: kubernetes pkg/controller/volume/persistentvolume (binding annotations,
phases), the StorageObjectInUseProtection admission plugin and the pvc/pv-protection controllers
(finalizers), kubernetes-csi/external-provisioner (the PV it writes), longhorn-manager csi/ and the
Longhorn chart's StorageClass.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from lhsoak.lab import kinds
from lhsoak.lab.controllers.meta import Obj
from lhsoak.lab.store import NotFound, Store

DRIVER = "driver.longhorn.io"
"""Longhorn's CSI driver: the StorageClass provisioner and every PV's spec.csi.driver."""
STORAGE_CLASS = "longhorn"

ANN_BIND_COMPLETED = "pv.kubernetes.io/bind-completed"
ANN_BOUND_BY_CONTROLLER = "pv.kubernetes.io/bound-by-controller"
ANN_STORAGE_PROVISIONER = "volume.kubernetes.io/storage-provisioner"
ANN_BETA_STORAGE_PROVISIONER = "volume.beta.kubernetes.io/storage-provisioner"
ANN_PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
ANN_DEFAULT_CLASS = "storageclass.kubernetes.io/is-default-class"

PVC_PROTECTION = "kubernetes.io/pvc-protection"
PV_PROTECTION = "kubernetes.io/pv-protection"
PROVISIONER_FINALIZER = "external-provisioner.volume.kubernetes.io/finalizer"

# Longhorn's chart (persistence.* defaults), as longhorn-manager applies it from the
# longhorn-storageclass ConfigMap.
LONGHORN_CLASS_PARAMETERS: dict[str, str] = {
    "numberOfReplicas": "3",
    "staleReplicaTimeout": "30",
    "fromBackup": "",
    "fsType": "ext4",
    "dataLocality": "disabled",
    "unmapMarkSnapChainRemoved": "ignored",
    "disableRevisionCounter": "true",
    "dataEngine": "v1",
    "backupTargetName": "default",
}

UNBOUND_IMMEDIATE = "pod has unbound immediate PersistentVolumeClaims"
"""The VolumeBinding scheduler plugin's PreFilter reason for a pod whose claims are not bound."""


def longhorn_storage_class() -> Obj:
    """StorageClass `longhorn`, as a Longhorn install creates it (the default class)."""
    return {
        "apiVersion": kinds.STORAGE_CLASS.api_version,
        "kind": kinds.STORAGE_CLASS.kind,
        "metadata": {"name": STORAGE_CLASS, "annotations": {ANN_DEFAULT_CLASS: "true"}},
        "provisioner": DRIVER,
        "allowVolumeExpansion": True,
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate",
        "parameters": dict(LONGHORN_CLASS_PARAMETERS),
    }


def pv_name_for(claim: Mapping[str, Any]) -> str:
    """The name external-provisioner gives a claim's volume (prefix "pvc", the claim's uid); the
    Longhorn CSI driver names its Volume the same."""
    return f"pvc-{claim['metadata']['uid']}"


# --- quantities ------------------------------------------------------------------------------------

_SUFFIXES: dict[str, Fraction] = {
    **{s: Fraction(1024**i) for i, s in enumerate(("Ki", "Mi", "Gi", "Ti", "Pi", "Ei"), start=1)},
    "n": Fraction(1, 10**9),
    "u": Fraction(1, 10**6),
    "m": Fraction(1, 10**3),
    "": Fraction(1),
    "k": Fraction(10**3),
    "M": Fraction(10**6),
    "G": Fraction(10**9),
    "T": Fraction(10**12),
    "P": Fraction(10**15),
    "E": Fraction(10**18),
}
_QUANTITY = re.compile(r"^([+-]?(?:\d+(?:\.\d*)?|\.\d+))(Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+|[numkMGTPE])?$")
_BINARY_SUFFIXES = ("", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei")


def quantity_value(text: str) -> int:
    """The value of a resource quantity ("1Gi", "500M", "1073741824"), rounded up to an integer as
    resource.Quantity.Value() does; ValueError when it does not parse."""
    match = _QUANTITY.match(str(text).strip())
    if match is None:
        raise ValueError(f"quantities must match the regular expression {_QUANTITY.pattern!r}: {text!r}")
    number, suffix = Fraction(match[1]), match[2] or ""
    if suffix[:1] in ("e", "E") and len(suffix) > 1:
        scale = Fraction(10) ** int(suffix[1:])
    else:
        scale = _SUFFIXES[suffix]
    return math.ceil(number * scale)


def binary_quantity(value: int) -> str:
    """`value` as resource.NewQuantity(value, BinarySI) prints it: "1Gi", "10Mi", "1500"."""
    if -1024 < value < 1024:
        return str(value)
    exponent = 0
    while value % 1024 == 0 and exponent < len(_BINARY_SUFFIXES) - 1:
        value //= 1024
        exponent += 1
    return f"{value}{_BINARY_SUFFIXES[exponent]}"


# --- claims and the pods that use them -----------------------------------------------------------


def claim_names(pod: Mapping[str, Any]) -> list[str]:
    """Names of the PVCs a pod mounts (spec.volumes[].persistentVolumeClaim.claimName)."""
    names = []
    for volume in (pod.get("spec") or {}).get("volumes") or ():
        claim = (volume or {}).get("persistentVolumeClaim") or {}
        if claim.get("claimName"):
            names.append(str(claim["claimName"]))
    return names


def terminated(pod: Mapping[str, Any]) -> bool:
    """True when the pod's phase is final (its volumes are free again)."""
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def pods_using(store: Store, namespace: str, claim: str) -> list[Obj]:
    """Pods in `namespace` that mount `claim`, oldest first."""
    pods, _ = store.list(kinds.POD, namespace=namespace)
    users = [p for p in pods if claim in claim_names(p)]
    return sorted(users, key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"]))


def holds_claim(pod: Mapping[str, Any]) -> bool:
    """True when the pod keeps its claims in use: scheduled to a node and not terminated (the
    pvc-protection controller ignores unscheduled pods; kubelet never starts them on a deleting claim)."""
    return bool((pod.get("spec") or {}).get("nodeName")) and not terminated(pod)


def is_longhorn_pv(pv: Mapping[str, Any]) -> bool:
    """True for a PersistentVolume of Longhorn's CSI driver."""
    return ((pv.get("spec") or {}).get("csi") or {}).get("driver") == DRIVER


def has_persistent_volume(store: Store, volume_name: str) -> bool:
    """True when a Longhorn PV refers to the Longhorn Volume `volume_name` (its workload, not the lab,
    decides where it is attached)."""
    try:
        pv = store.get(kinds.PV, volume_name)
    except NotFound:
        return False
    return is_longhorn_pv(pv) and (pv.get("spec") or {}).get("csi", {}).get("volumeHandle") == volume_name


def unbound_claims_reason(store: Store, pod: Mapping[str, Any]) -> str | None:
    """Why the VolumeBinding plugin's PreFilter rejects the pod, or None when its claims are ready.

    As upstream: a missing claim or one being deleted is named; any unbound claim gives "pod has
    unbound immediate PersistentVolumeClaims" (WaitForFirstConsumer classes are not emulated).
    """
    namespace = str(pod["metadata"].get("namespace") or "")
    unbound = False
    for name in claim_names(pod):
        try:
            claim = store.get(kinds.PVC, name, namespace=namespace)
        except NotFound:
            return f'persistentvolumeclaim "{name}" not found'
        if claim["metadata"].get("deletionTimestamp"):
            return f'persistentvolumeclaim "{name}" is being deleted'
        if not (claim.get("spec") or {}).get("volumeName"):
            unbound = True
    return UNBOUND_IMMEDIATE if unbound else None
