"""Readiness judges on objects shaped as a real cluster returns them, and the probes against the lab."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from lhsoak import cluster
from lhsoak.lab import kinds
from lhsoak.provision import backupstore, readiness
from lhsoak.provision.waits import Seen

from .conftest import Lab

Obj = dict[str, Any]


def daemonset(*, desired: int, ready: int, updated: int | None = None, generation: int = 1) -> Obj:
    return {
        "metadata": {"name": "longhorn-manager", "namespace": "longhorn-system", "generation": generation},
        "status": {
            "currentNumberScheduled": desired,
            "desiredNumberScheduled": desired,
            "numberAvailable": ready,
            "numberMisscheduled": 0,
            "numberReady": ready,
            "observedGeneration": 1,
            "updatedNumberScheduled": desired if updated is None else updated,
        },
    }


def deployment(*, replicas: int, available: int, generation: int = 1) -> Obj:
    return {
        "metadata": {"name": "csi-attacher", "namespace": "longhorn-system", "generation": generation},
        "spec": {"replicas": replicas},
        "status": {
            "availableReplicas": available,
            "observedGeneration": 1,
            "readyReplicas": available,
            "replicas": replicas,
            "updatedReplicas": replicas,
        },
    }


def test_a_daemonset_is_ready_when_every_scheduled_pod_is() -> None:
    assert readiness.daemonset_ready(daemonset(desired=3, ready=3), name="longhorn-manager").ready
    seen = readiness.daemonset_ready(daemonset(desired=3, ready=2), name="longhorn-manager")
    assert not seen.ready
    assert seen.detail == "DaemonSet longhorn-manager: 2/3 pods ready"


@pytest.mark.parametrize(
    "shape",
    [
        {"desired": 0, "ready": 0},  # scheduled nowhere yet
        {"desired": 3, "ready": 3, "updated": 1},  # a rollout in progress
        {"desired": 3, "ready": 3, "generation": 2},  # the controller has not seen the new spec
    ],
)
def test_a_daemonset_not_settled_is_not_ready(shape: dict[str, int]) -> None:
    assert not readiness.daemonset_ready(daemonset(**shape), name="ds").ready


def test_a_missing_object_is_waited_for_not_an_error() -> None:
    assert readiness.daemonset_ready(None, name="longhorn-csi-plugin").detail == (
        "DaemonSet longhorn-csi-plugin does not exist yet"
    )
    assert not readiness.deployment_available(None, name="csi-attacher").ready


def test_a_deployment_needs_all_its_replicas_available() -> None:
    assert readiness.deployment_available(deployment(replicas=1, available=1), name="d").ready
    assert not readiness.deployment_available(deployment(replicas=2, available=1), name="d").ready
    assert not readiness.deployment_available(
        deployment(replicas=1, available=1, generation=3), name="d"
    ).ready


def test_all_ready_lists_only_what_is_missing() -> None:
    parts = [
        readiness.deployment_available(deployment(replicas=1, available=1), name="csi-attacher"),
        readiness.deployment_available(None, name="csi-resizer"),
        readiness.daemonset_ready(daemonset(desired=3, ready=1), name="longhorn-csi-plugin"),
    ]
    seen = readiness.all_ready(parts)
    assert not seen.ready
    assert seen.detail == (
        "Deployment csi-resizer does not exist yet; DaemonSet longhorn-csi-plugin: 1/3 pods ready"
    )


def instance_manager(node: str, *, state: str, engine: str = "v1") -> Obj:
    return {
        "metadata": {"name": f"instance-manager-{node}", "namespace": "longhorn-system"},
        "spec": {"nodeID": node, "dataEngine": engine, "type": "aio"},
        "status": {"currentState": state},
    }


def test_every_longhorn_node_needs_a_running_v1_instance_manager() -> None:
    nodes = ["w1", "w2", "w3"]
    managers = [
        instance_manager("w1", state="running"),
        instance_manager("w2", state="starting"),
        instance_manager("w3", state="running", engine="v2"),
    ]
    seen = readiness.instance_managers_running(managers, nodes=nodes)
    assert not seen.ready
    assert seen.detail == "1/3 nodes have a running instance manager (not yet: w2, w3)"
    managers += [instance_manager("w2", state="running"), instance_manager("w3", state="running")]
    assert readiness.instance_managers_running(managers[1:], nodes=nodes).ready is False
    assert readiness.instance_managers_running(managers, nodes=nodes).ready
    assert not readiness.instance_managers_running(managers, nodes=[]).ready


def pod(*, phase: str, ready: bool, waiting: str | None = None) -> Obj:
    state: Obj = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    return {
        "metadata": {"name": "lhsoak-attach-test"},
        "status": {
            "phase": phase,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "containerStatuses": [{"name": "writer", "state": state}],
        },
    }


def test_a_pod_runs_when_its_containers_are_ready() -> None:
    assert readiness.pod_running(pod(phase="Running", ready=True), name="p").ready
    stuck = readiness.pod_running(pod(phase="Pending", ready=False, waiting="ContainerCreating"), name="p")
    assert not stuck.ready
    assert stuck.detail == "pod p: Pending (writer: ContainerCreating)"


# -- probes against the lab: the real API, Longhorn CRD shapes --------------------------------------


def test_the_nodes_probe_waits_for_every_expected_node(lab: Lab) -> None:
    lab.add_node("n-control-plane", control_plane=True)
    lab.add_node("n-worker", ready=False)
    api = cluster.Cluster.connect(
        kubeconfig=lab.kubeconfig(context="kind-n"), context=None, allowed=("kind-n",)
    )
    try:
        probe = readiness.nodes_probe(api, expected=3)
        assert probe() == Seen(False, "1/3 nodes Ready (not Ready: n-worker)")
        lab.add_node("n-worker2")
        lab.set_status(kinds.NODE, "n-worker", {"conditions": [{"type": "Ready", "status": "True"}]})
        assert probe() == Seen(True, "3/3 nodes Ready")
    finally:
        api.close()


def backup_target(*, url: str, available: bool, reason: str = "") -> tuple[Obj, Obj]:
    obj = {
        "metadata": {"name": "default", "namespace": "longhorn-system"},
        "spec": {"backupTargetURL": url, "credentialSecret": "", "pollInterval": "5m0s"},
    }
    condition = {"type": "Unavailable", "status": "True", "reason": reason, "message": "dial tcp: timeout"}
    status = {"available": available, "conditions": [] if available else [condition]}
    return obj, status


def test_the_backup_target_probe_follows_the_patch_to_available(lab: Lab) -> None:
    api = cluster.Cluster.connect(kubeconfig=lab.kubeconfig(context="c"), context=None, allowed=("c",))
    try:
        exists = readiness.backup_target_exists_probe(api)
        assert exists() == Seen(False, "BackupTarget default not created yet")
        obj, status = backup_target(url="", available=False, reason="Unavailable")
        lab.create(kinds.LH_BACKUP_TARGET, obj, status=status)  # as longhorn-manager does at start
        assert exists() == Seen(True, "BackupTarget default exists")

        probe = readiness.backup_target_probe(api, url=backupstore.TARGET_URL)
        assert probe().detail == "BackupTarget default points at '', not 's3://backupbucket@us-east-1/'"

        api.patch(
            cluster.BACKUP_TARGETS, "default", backupstore.backup_target_patch(), namespace="longhorn-system"
        )
        seen = probe()
        assert not seen.ready
        assert seen.detail == "BackupTarget default not available yet: Unavailable dial tcp: timeout"

        lab.set_status(kinds.LH_BACKUP_TARGET, "default", {"available": True}, namespace="longhorn-system")
        assert probe() == Seen(True, "BackupTarget default available at s3://backupbucket@us-east-1/")
        stored = api.get(cluster.BACKUP_TARGETS, "default", namespace="longhorn-system")
        assert stored["spec"]["credentialSecret"] == "minio-secret"
    finally:
        api.close()


def test_a_longhorn_volume_counts_once_attached_and_healthy(lab: Lab) -> None:
    volume = {
        "metadata": {"name": "pvc-1234", "namespace": "longhorn-system"},
        "spec": {"size": "1073741824", "numberOfReplicas": 2, "frontend": "blockdev", "dataEngine": "v1"},
    }
    lab.create(kinds.LH_VOLUME, volume, status={"state": "attaching", "robustness": "unknown"})
    api = cluster.Cluster.connect(kubeconfig=lab.kubeconfig(context="c"), context=None, allowed=("c",))
    try:
        fetch = lambda: api.find(cluster.VOLUMES, "pvc-1234", namespace="longhorn-system")  # noqa: E731
        assert readiness.volume_attached(fetch(), name="pvc-1234").detail == (
            "Longhorn volume pvc-1234: attaching, unknown, on no node"
        )
        attached = {"state": "attached", "robustness": "healthy", "currentNodeID": "kind-worker2"}
        lab.set_status(kinds.LH_VOLUME, "pvc-1234", copy.deepcopy(attached), namespace="longhorn-system")
        assert readiness.volume_attached(fetch(), name="pvc-1234") == Seen(
            True, "Longhorn volume pvc-1234: attached, healthy, on kind-worker2"
        )
    finally:
        api.close()
