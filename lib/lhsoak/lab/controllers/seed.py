"""The objects a fresh lab cluster starts with, as a Longhorn install on k3s/kubeadm shows them.

Namespaces default, kube-system and longhorn-system; one Node per machine (control-plane nodes
labelled and tainted `node-role.kubernetes.io/control-plane:NoSchedule`); a Longhorn Node per
worker; BackupTarget `default` (available); Longhorn's Settings with their defaults; StorageClass
`longhorn` (provisioner driver.longhorn.io, the default class, as Longhorn's chart). Seeding is
idempotent: objects that exist are left alone. `seed_volume` adds a Longhorn Volume.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping

from lhsoak.lab import kinds
from lhsoak.lab.controllers import storage
from lhsoak.lab.controllers.backups import TARGET_NAME, TARGET_URL
from lhsoak.lab.controllers.kubelet import node_conditions
from lhsoak.lab.controllers.longhorn_manager import DEFAULT_SETTINGS, NAMESPACE
from lhsoak.lab.controllers.longhorn_volumes import VOLUME_SIZE
from lhsoak.lab.controllers.meta import Obj, rfc3339, set_condition
from lhsoak.lab.kinds import Kind
from lhsoak.lab.machine import Machine, MachineFleet
from lhsoak.lab.profiles import Profile
from lhsoak.lab.store import AlreadyExists, Store

CONTROL_PLANE_TAINT = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
KUBELET_VERSION = "v1.31.4"


def seed(
    store: Store,
    fleet: MachineFleet,
    profile: Profile,
    *,
    clock: Callable[[], float] = time.time,
    settings: Mapping[str, str] | None = None,
) -> None:
    """Create what a fresh lab cluster has (settings: overrides of Longhorn's defaults)."""
    del profile  # the same cluster for every profile; kept for the lead's call signature
    now = rfc3339(clock())
    for namespace in ("default", "kube-system", NAMESPACE):
        _create(store, kinds.NAMESPACE, {"metadata": {"name": namespace}})
    for index, machine in enumerate(fleet):
        _create(store, kinds.NODE, node_object(machine, index=index, now=now))
        if machine.role == "worker":
            _create(store, kinds.LH_NODE, _longhorn_node(machine), status=_longhorn_node_status(now))
    _create(
        store,
        kinds.LH_BACKUP_TARGET,
        {
            "metadata": {"name": TARGET_NAME, "namespace": NAMESPACE},
            "spec": {
                "backupTargetURL": TARGET_URL,
                "credentialSecret": "minio-secret",
                "pollInterval": "5m0s",
            },
        },
        status={
            "available": True,
            "conditions": [],
            "lastSyncedAt": now,
            "ownerID": next((m.name for m in fleet if m.role == "worker"), ""),
        },
    )
    for name, value in {**DEFAULT_SETTINGS, **(settings or {})}.items():
        _create(
            store,
            kinds.LH_SETTING,
            {"metadata": {"name": name, "namespace": NAMESPACE}, "value": value},
            status={"applied": True},
        )
    _create(store, kinds.STORAGE_CLASS, storage.longhorn_storage_class())


def seed_volume(
    store: Store,
    name: str,
    *,
    labels: Mapping[str, str] | None = None,
    node: str = "",
    size: str = VOLUME_SIZE,
) -> Obj:
    """Create a Longhorn Volume (attached to `node`, or to a worker the volume controller picks)."""
    volume: Obj = {
        "apiVersion": kinds.LH_VOLUME.api_version,
        "kind": kinds.LH_VOLUME.kind,
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": dict(labels or {})},
        "spec": {
            "size": size,
            "numberOfReplicas": 3,
            "frontend": "blockdev",
            "dataEngine": "v1",
            "accessMode": "rwo",
            "dataLocality": "disabled",
            "backupCompressionMethod": "lz4",
            "backupTargetName": TARGET_NAME,
            "nodeID": node,
        },
    }
    return store.create(kinds.LH_VOLUME, volume)


def node_object(machine: Machine, *, index: int, now: str) -> Obj:
    """The Node of a machine, as its kubelet registers it."""
    labels = {
        "beta.kubernetes.io/arch": "amd64",
        "beta.kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "kubernetes.io/hostname": machine.name,
        "kubernetes.io/os": "linux",
    }
    spec: Obj = {"podCIDR": f"10.42.{index}.0/24", "podCIDRs": [f"10.42.{index}.0/24"]}
    if machine.role == "control-plane":
        labels["node-role.kubernetes.io/control-plane"] = "true"
        spec["taints"] = [dict(CONTROL_PLANE_TAINT)]
    conditions: list[Obj] = []
    for type_, status, reason, message in node_conditions(ready=machine.kubelet_active):
        set_condition(
            conditions,
            type_=type_,
            status=status,
            now=now,
            reason=reason,
            message=message,
            heartbeat_field="lastHeartbeatTime",
        )
    machine_id = hashlib.sha256(machine.name.encode()).hexdigest()[:32]
    capacity = {"cpu": "2", "ephemeral-storage": "30298176Ki", "memory": "4015196Ki", "pods": "110"}
    return {
        "metadata": {
            "name": machine.name,
            "labels": labels,
            "annotations": {
                "node.alpha.kubernetes.io/ttl": "0",
                "volumes.kubernetes.io/controller-managed-attach-detach": "true",
            },
        },
        "spec": spec,
        "status": {
            "conditions": conditions,
            "addresses": [
                {"type": "InternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": machine.name},
            ],
            "capacity": capacity,
            "allocatable": dict(capacity),
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "architecture": "amd64",
                "bootID": machine.boot_id,
                "containerRuntimeVersion": "containerd://1.7.23",
                "kernelVersion": "6.8.0-1021-aws",
                "kubeProxyVersion": KUBELET_VERSION,
                "kubeletVersion": KUBELET_VERSION,
                "machineID": machine_id,
                "operatingSystem": "linux",
                "osImage": "Ubuntu 24.04.1 LTS",
                "systemUUID": machine_id,
            },
        },
    }


def _longhorn_node(machine: Machine) -> Obj:
    return {
        "metadata": {"name": machine.name, "namespace": NAMESPACE},
        "spec": {
            "name": machine.name,
            "allowScheduling": True,
            "evictionRequested": False,
            "instanceManagerCPURequest": 0,
            "tags": [],
            "disks": {
                f"default-disk-{hashlib.sha256(machine.name.encode()).hexdigest()[:16]}": {
                    "path": "/var/lib/longhorn/",
                    "allowScheduling": True,
                    "evictionRequested": False,
                    "storageReserved": 0,
                    "diskType": "filesystem",
                    "tags": [],
                }
            },
        },
    }


def _longhorn_node_status(now: str) -> Obj:
    conditions: list[Obj] = []
    for type_ in ("Ready", "Schedulable", "MountPropagation"):
        set_condition(conditions, type_=type_, status="True", now=now, reason="", message="")
    for cond in conditions:
        cond["lastProbeTime"] = ""
    return {"conditions": conditions, "region": "", "zone": "", "diskStatus": {}}


def _create(store: Store, kind: Kind, obj: Obj, *, status: Obj | None = None) -> None:
    body = {"apiVersion": kind.api_version, "kind": kind.kind, **obj}
    try:
        created = store.create(kind, body)
    except AlreadyExists:
        return
    if status is not None:
        name = created["metadata"]["name"]
        namespace = created["metadata"].get("namespace")

        def write(current: Obj) -> None:
            current["status"] = status

        store.mutate(kind, name, write, namespace=namespace, subresource="status")
