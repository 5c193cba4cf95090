"""longhorn-manager pods that did not come back after a reboot are named, with their node and why;
the longhorn-manager DaemonSet, found by its label or selector whatever its name, is named when fewer
of its pods are Ready than nodes it schedules to, or when its controller lags its spec. Longhorn's
CSI is judged the same way: the longhorn-csi-plugin DaemonSet as the managers', each CSI sidecar
Deployment when missing, lagging, without a ready replica or not Available."""

from __future__ import annotations

from typing import Any

from lhsoak import longhorn


def _pod(
    name: str, node: str, phase: str, *, app: str = "longhorn-manager", reason: str = ""
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "longhorn-system", "labels": {"app": app}},
        "spec": {"nodeName": node},
        "status": {"phase": phase, "reason": reason},
    }


def _daemonset(
    name: str = "longhorn-manager",
    *,
    desired: int = 3,
    ready: int = 3,
    current: int | None = None,
    generation: int = 1,
    observed: int = 1,
    labels: dict[str, str] | None = None,
    selects: str = "longhorn-manager",
) -> dict[str, Any]:
    status = {
        "currentNumberScheduled": desired if current is None else current,
        "numberMisscheduled": 0,
        "desiredNumberScheduled": desired,
        "numberReady": ready,
    }
    # As the API sends it: zero counts of the omitempty fields are absent.
    optional = {
        "observedGeneration": observed,
        "numberAvailable": ready,
        "numberUnavailable": desired - ready,
    }
    status.update({key: value for key, value in optional.items() if value})
    return {
        "metadata": {
            "name": name,
            "namespace": "longhorn-system",
            "generation": generation,
            "labels": {"app": "longhorn-manager"} if labels is None else labels,
        },
        "spec": {"selector": {"matchLabels": {"app": selects}}},
        "status": status,
    }


ENGINE_IMAGE = _daemonset(
    "engine-image-ei-db6c2b6f", ready=0, labels={"longhorn.io/component": "engine-image"}
)
ENGINE_IMAGE["spec"]["selector"]["matchLabels"] = {"longhorn.io/component": "engine-image"}


def test_only_manager_pods_that_are_not_running_are_named() -> None:
    pods = [
        _pod("longhorn-manager-a", "worker-1", "Running"),
        _pod("longhorn-manager-b", "worker-2", "Failed", reason="Terminated"),
        _pod("longhorn-manager-c", "worker-3", "Pending"),
        _pod("soak-backup-123-x", "worker-3", "Pending", app="other"),
    ]
    assert longhorn.manager_pod_problems(pods) == [
        "longhorn-manager-b on worker-2: Failed (Terminated)",
        "longhorn-manager-c on worker-3: Pending",
    ]


def test_all_running_is_no_problem() -> None:
    assert longhorn.manager_pod_problems([_pod("longhorn-manager-a", "worker-1", "Running")]) == []


def test_a_daemonset_ready_on_every_node_is_no_problem() -> None:
    assert longhorn.manager_daemonset_problems([_daemonset(), ENGINE_IMAGE]) == []


def test_fewer_ready_than_desired_is_named_with_how_many_are_scheduled() -> None:
    assert longhorn.manager_daemonset_problems([_daemonset(ready=2, current=2)]) == [
        "DaemonSet longhorn-manager: 2/3 pods ready, 2 scheduled"
    ]


def test_counts_of_a_spec_its_controller_has_not_seen_yet_do_not_pass() -> None:
    assert longhorn.manager_daemonset_problems([_daemonset(generation=2, observed=1)]) == [
        "DaemonSet longhorn-manager: generation 2 not yet observed by its controller (observedGeneration 1)"
    ]


def test_a_daemonset_scheduling_no_pod_is_named_though_its_counts_agree() -> None:
    assert longhorn.manager_daemonset_problems([_daemonset(desired=0, ready=0)]) == [
        "DaemonSet longhorn-manager schedules no pod (desiredNumberScheduled 0)"
    ]


def test_a_daemonset_named_otherwise_is_found_by_its_label_or_its_selector() -> None:
    relabelled = _daemonset("lh-manager", ready=1, labels={"team": "storage"})
    renamed = _daemonset("longhorn-mgr", ready=2)
    found = longhorn.manager_daemonsets([relabelled, renamed, ENGINE_IMAGE])
    assert [d["metadata"]["name"] for d in found] == ["lh-manager", "longhorn-mgr"]
    assert longhorn.manager_daemonset_problems([relabelled, renamed, ENGINE_IMAGE]) == [
        "DaemonSet lh-manager: 1/3 pods ready, 3 scheduled",
        "DaemonSet longhorn-mgr: 2/3 pods ready, 3 scheduled",
    ]


def test_no_manager_daemonset_at_all_is_a_problem() -> None:
    assert longhorn.manager_daemonset_problems([ENGINE_IMAGE]) == [
        "no longhorn-manager DaemonSet in longhorn-system (none labelled or selecting app=longhorn-manager)"
    ]


def test_with_daemonsets_a_node_without_a_manager_pod_is_named_too() -> None:
    """A node whose manager pod is gone leaves no pod to name: only the DaemonSet shows it."""
    pods = [
        _pod("longhorn-manager-a", "worker-1", "Running"),
        _pod("longhorn-manager-b", "worker-2", "Running"),
    ]
    assert longhorn.manager_pod_problems(pods) == []
    assert longhorn.manager_pod_problems(pods, daemonsets=[_daemonset(ready=2, current=2)]) == [
        "DaemonSet longhorn-manager: 2/3 pods ready, 2 scheduled"
    ]


# -- Longhorn's CSI: the plugin DaemonSet and the sidecar Deployments ------------------------------

SIDECARS = ("csi-attacher", "csi-provisioner", "csi-resizer", "csi-snapshotter")


def _deployment(
    name: str,
    *,
    replicas: int = 3,
    ready: int = 3,
    available_condition: tuple[str, str] | None = ("True", "MinimumReplicasAvailable"),
    generation: int = 1,
    observed: int = 1,
) -> dict[str, Any]:
    """A Deployment as the API sends it: zero counts absent, conditions as the controller sets them."""
    status: dict[str, Any] = {
        key: value
        for key, value in {
            "observedGeneration": observed,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": ready,
            "availableReplicas": ready,
            "unavailableReplicas": replicas - ready,
        }.items()
        if value
    }
    if available_condition is not None:
        state, reason = available_condition
        status["conditions"] = [{"type": "Available", "status": state, "reason": reason}]
    return {
        "metadata": {
            "name": name,
            "namespace": "longhorn-system",
            "generation": generation,
            "labels": {"longhorn.io/managed-by": "longhorn-manager", "app": name},
        },
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}}},
        "status": status,
    }


HEALTHY_SIDECARS = [_deployment(name) for name in SIDECARS]
# The driver deployer and UI are not CSI: what they show does not count.
OTHERS = [
    _deployment("longhorn-driver-deployer", replicas=1, ready=0, available_condition=None),
    _deployment(
        "longhorn-ui", replicas=2, ready=0, available_condition=("False", "MinimumReplicasUnavailable")
    ),
]


def test_csi_sidecars_available_are_no_problem() -> None:
    assert longhorn.csi_deployment_problems([*HEALTHY_SIDECARS, *OTHERS]) == []


def test_a_sidecar_below_its_availability_is_named_with_its_counts_and_reason() -> None:
    """2 of 3 lost: one ready is not enough, Available=False (maxUnavailable 1)."""
    attacher = _deployment(
        "csi-attacher", ready=1, available_condition=("False", "MinimumReplicasUnavailable")
    )
    assert longhorn.csi_deployment_problems([attacher, *HEALTHY_SIDECARS[1:]]) == [
        "Deployment csi-attacher: 1/3 replicas ready, 1 available; Available=False (MinimumReplicasUnavailable)"
    ]


def test_a_sidecar_with_no_replica_ready_is_named_though_its_condition_lags() -> None:
    """The Available condition is written after the counts: zero ready fails on its own."""
    resizer = _deployment("csi-resizer", ready=0)
    assert longhorn.csi_deployment_problems([*HEALTHY_SIDECARS[:2], resizer, HEALTHY_SIDECARS[3]]) == [
        "Deployment csi-resizer: 0/3 replicas ready, 0 available; Available=True (MinimumReplicasAvailable)"
    ]


def test_a_sidecar_its_controller_has_not_yet_acted_on_is_named() -> None:
    fresh = _deployment("csi-snapshotter", ready=0, available_condition=None, observed=0)
    assert longhorn.csi_deployment_problems([*HEALTHY_SIDECARS[:3], fresh]) == [
        "Deployment csi-snapshotter: generation 1 not yet observed by its controller (observedGeneration 0)"
    ]


def test_a_sidecar_with_no_available_condition_yet_says_so() -> None:
    provisioner = _deployment("csi-provisioner", available_condition=None)
    assert longhorn.csi_deployment_problems([HEALTHY_SIDECARS[0], provisioner, *HEALTHY_SIDECARS[2:]]) == [
        "Deployment csi-provisioner: 3/3 replicas ready, 3 available; no Available condition yet"
    ]


def test_missing_sidecars_are_each_named() -> None:
    assert longhorn.csi_deployment_problems([*HEALTHY_SIDECARS[:2], *OTHERS]) == [
        "no csi-resizer Deployment in longhorn-system (none labelled or selecting app=csi-resizer)",
        "no csi-snapshotter Deployment in longhorn-system (none labelled or selecting app=csi-snapshotter)",
    ]


CSI_PLUGIN = _daemonset(
    "longhorn-csi-plugin",
    labels={"longhorn.io/managed-by": "longhorn-manager"},
    selects="longhorn-csi-plugin",
)


def test_the_csi_plugin_daemonset_is_found_by_its_selector_and_judged_as_the_managers() -> None:
    lost_node = _daemonset(
        "longhorn-csi-plugin",
        ready=2,
        labels={"longhorn.io/managed-by": "longhorn-manager"},
        selects="longhorn-csi-plugin",
    )
    everything = [_daemonset(), ENGINE_IMAGE]
    assert longhorn.daemonset_problems([*everything, CSI_PLUGIN], app="longhorn-csi-plugin") == []
    assert longhorn.daemonset_problems([*everything, lost_node], app="longhorn-csi-plugin") == [
        "DaemonSet longhorn-csi-plugin: 2/3 pods ready, 3 scheduled"
    ]
    assert longhorn.daemonset_problems(everything, app="longhorn-csi-plugin") == [
        "no longhorn-csi-plugin DaemonSet in longhorn-system (none labelled or selecting app=longhorn-csi-plugin)"
    ]
    assert longhorn.manager_daemonset_problems([CSI_PLUGIN]) == [
        "no longhorn-manager DaemonSet in longhorn-system (none labelled or selecting app=longhorn-manager)"
    ], "the plugin's DaemonSet is not the managers'"
