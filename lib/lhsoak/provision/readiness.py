"""Is Longhorn really ready? Judges (pure: an object in, a `Seen` out) and the probes that fetch the
objects through `lhsoak.cluster`.

"Ready" is what a soak needs, checked in the order things come up: every node Ready; the
longhorn-manager DaemonSet on every node it schedules to; the driver deployer and the CSI components
it creates (attacher, provisioner, resizer, snapshotter, the plugin DaemonSet); a running v1 instance
manager on every Longhorn node; the BackupTarget available; and a test volume that really attaches
(a PVC of the `longhorn` StorageClass mounted by a pod: CSI, iscsid and the engine all take part).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from lhsoak import cluster, config
from lhsoak.cluster import Obj
from lhsoak.provision.waits import Seen

NS = config.LONGHORN_NAMESPACE

INSTANCE_MANAGERS = cluster.Resource(
    "instancemanagers", "InstanceManager", group="longhorn.io", version="v1beta2"
)
PERSISTENT_VOLUME_CLAIMS = cluster.Resource("persistentvolumeclaims", "PersistentVolumeClaim")
STORAGE_CLASSES = cluster.Resource("storageclasses", "StorageClass", group="storage.k8s.io", namespaced=False)

MANAGER_DAEMONSET = "longhorn-manager"
DRIVER_DEPLOYER = "longhorn-driver-deployer"
CSI_DEPLOYMENTS = ("csi-attacher", "csi-provisioner", "csi-resizer", "csi-snapshotter")
CSI_PLUGIN_DAEMONSET = "longhorn-csi-plugin"
INSTANCE_MANAGER_RUNNING = "running"
"""InstanceManager status.currentState when it serves (longhorn-manager: InstanceManagerStateRunning)."""


# -- judges -------------------------------------------------------------------------------------


def _status(obj: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return (obj or {}).get("status") or {}


def _condition(obj: Mapping[str, Any], kind: str) -> Mapping[str, Any]:
    for condition in _status(obj).get("conditions") or []:
        if condition.get("type") == kind:
            return dict(condition)
    return {}


def nodes_ready(nodes: Sequence[Obj], *, expected: int) -> Seen:
    """All `expected` nodes registered and Ready."""
    ready = [node for node in nodes if _condition(node, "Ready").get("status") == "True"]
    not_ready = sorted(node["metadata"]["name"] for node in nodes if node not in ready)
    detail = f"{len(ready)}/{expected} nodes Ready"
    if not_ready:
        detail += f" (not Ready: {', '.join(not_ready)})"
    return Seen(len(nodes) >= expected and len(ready) == len(nodes), detail)


def daemonset_ready(daemonset: Obj | None, *, name: str) -> Seen:
    """The DaemonSet's current generation runs a ready pod on every node it schedules to."""
    if daemonset is None:
        return Seen(False, f"DaemonSet {name} does not exist yet")
    status = _status(daemonset)
    desired = int(status.get("desiredNumberScheduled") or 0)
    ready = int(status.get("numberReady") or 0)
    updated = int(status.get("updatedNumberScheduled") or 0)
    current = int(status.get("observedGeneration") or 0) >= int(daemonset["metadata"].get("generation") or 0)
    detail = f"DaemonSet {name}: {ready}/{desired} pods ready"
    return Seen(current and desired > 0 and ready == desired and updated == desired, detail)


def deployment_available(deployment: Obj | None, *, name: str) -> Seen:
    """The Deployment's current generation has all its replicas available."""
    if deployment is None:
        return Seen(False, f"Deployment {name} does not exist yet")
    wanted = int((deployment.get("spec") or {}).get("replicas", 1))
    status = _status(deployment)
    available = int(status.get("availableReplicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    current = int(status.get("observedGeneration") or 0) >= int(deployment["metadata"].get("generation") or 0)
    detail = f"Deployment {name}: {available}/{wanted} replicas available"
    return Seen(current and available >= wanted and updated >= wanted, detail)


def all_ready(seen: Sequence[Seen]) -> Seen:
    """Ready when every part is; the detail lists the parts not ready yet (or all, when all are)."""
    waiting = [part.detail for part in seen if not part.ready]
    return Seen(not waiting, "; ".join(waiting or [part.detail for part in seen]))


def instance_managers_running(managers: Sequence[Obj], *, nodes: Sequence[str]) -> Seen:
    """Every node in `nodes` has a running v1-data-engine instance manager."""
    running = {
        (manager.get("spec") or {}).get("nodeID")
        for manager in managers
        if (manager.get("spec") or {}).get("dataEngine", "v1") == "v1"
        and _status(manager).get("currentState") == INSTANCE_MANAGER_RUNNING
    }
    missing = sorted(set(nodes) - running)
    if not nodes:
        return Seen(False, "no Longhorn node registered yet")
    detail = f"{len(nodes) - len(missing)}/{len(nodes)} nodes have a running instance manager"
    if missing:
        detail += f" (not yet: {', '.join(missing)})"
    return Seen(not missing, detail)


def backup_target_available(target: Obj | None, *, url: str) -> Seen:
    """BackupTarget `default` points at `url` and Longhorn reports it available."""
    if target is None:
        return Seen(False, "BackupTarget default does not exist yet")
    spec_url = (target.get("spec") or {}).get("backupTargetURL")
    if spec_url != url:
        return Seen(False, f"BackupTarget default points at {spec_url!r}, not {url!r}")
    if _status(target).get("available"):
        return Seen(True, f"BackupTarget default available at {url}")
    unavailable = _condition(target, "Unavailable")
    why = f"{unavailable.get('reason', '')} {unavailable.get('message', '')}".strip()
    return Seen(False, f"BackupTarget default not available yet{': ' + why if why else ''}")


def volume_attached(volume: Obj | None, *, name: str) -> Seen:
    """The Longhorn volume is attached and healthy."""
    if volume is None:
        return Seen(False, f"Longhorn volume {name} does not exist yet")
    status = _status(volume)
    state, robustness = status.get("state", "?"), status.get("robustness", "?")
    node = status.get("currentNodeID") or "no node"
    detail = f"Longhorn volume {name}: {state}, {robustness}, on {node}"
    return Seen(state == "attached" and robustness == "healthy", detail)


def pod_running(pod: Obj | None, *, name: str) -> Seen:
    """The pod runs with every container ready."""
    if pod is None:
        return Seen(False, f"pod {name} does not exist yet")
    phase = _status(pod).get("phase", "?")
    waiting = [
        f"{container.get('name')}: {reason}"
        for container in _status(pod).get("containerStatuses") or []
        if (reason := ((container.get("state") or {}).get("waiting") or {}).get("reason"))
    ]
    ready = _condition(pod, "Ready").get("status") == "True"
    detail = f"pod {name}: {phase}" + (f" ({', '.join(waiting)})" if waiting else "")
    return Seen(phase == "Running" and ready, detail)


# -- probes: fetch, then judge ------------------------------------------------------------------

Probe = Callable[[], Seen]


def nodes_probe(api: cluster.Cluster, *, expected: int) -> Probe:
    return lambda: nodes_ready(api.list(cluster.NODES).items, expected=expected)


def daemonset_probe(api: cluster.Cluster, name: str, *, namespace: str = NS) -> Probe:
    return lambda: daemonset_ready(api.find(cluster.DAEMONSETS, name, namespace=namespace), name=name)


def deployment_probe(api: cluster.Cluster, name: str, *, namespace: str = NS) -> Probe:
    return lambda: deployment_available(api.find(cluster.DEPLOYMENTS, name, namespace=namespace), name=name)


def csi_probe(api: cluster.Cluster) -> Probe:
    def probe() -> Seen:
        parts = [deployment_probe(api, name)() for name in CSI_DEPLOYMENTS]
        parts.append(daemonset_probe(api, CSI_PLUGIN_DAEMONSET)())
        return all_ready(parts)

    return probe


def instance_managers_probe(api: cluster.Cluster) -> Probe:
    def probe() -> Seen:
        nodes = [node["metadata"]["name"] for node in api.list(cluster.LONGHORN_NODES, namespace=NS).items]
        managers = api.list(INSTANCE_MANAGERS, namespace=NS).items
        return instance_managers_running(managers, nodes=nodes)

    return probe


def backup_target_exists_probe(api: cluster.Cluster) -> Probe:
    def probe() -> Seen:
        found = api.find(cluster.BACKUP_TARGETS, "default", namespace=NS)
        return Seen(found is not None, "BackupTarget default " + ("exists" if found else "not created yet"))

    return probe


def backup_target_probe(api: cluster.Cluster, *, url: str) -> Probe:
    return lambda: backup_target_available(api.find(cluster.BACKUP_TARGETS, "default", namespace=NS), url=url)


def attach_probe(api: cluster.Cluster, *, claim: str, pod: str, namespace: str) -> Probe:
    """The claim is bound, its Longhorn volume attached and healthy, the pod mounting it running."""

    def probe() -> Seen:
        found = api.find(PERSISTENT_VOLUME_CLAIMS, claim, namespace=namespace)
        if found is None or _status(found).get("phase") != "Bound":
            phase = _status(found).get("phase", "absent") if found else "absent"
            return Seen(False, f"PVC {claim}: {phase}")
        volume = str((found.get("spec") or {}).get("volumeName"))
        return all_ready(
            [
                volume_attached(api.find(cluster.VOLUMES, volume, namespace=NS), name=volume),
                pod_running(api.find(cluster.PODS, pod, namespace=namespace), name=pod),
            ]
        )

    return probe
