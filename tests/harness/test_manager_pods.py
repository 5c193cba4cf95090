"""longhorn-manager pods that did not come back after a reboot are named, with their node and why;
the longhorn-manager DaemonSet, found by its label or selector whatever its name, is named when fewer
of its pods are Ready than nodes it schedules to, or when its controller lags its spec."""

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
