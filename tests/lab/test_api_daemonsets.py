"""apps/v1 DaemonSets through the official client's AppsV1Api, as an SRE's tooling reads them: found
in discovery (namespaced, short name ds, get/list/watch only), listed and read as typed V1DaemonSet
objects, watched as a lost node's manager goes unready and comes back; writes refused (405)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from lhsoak.lab import kinds
from lhsoak.lab.cluster import manager_pod
from lhsoak.lab.machine import Machine

from ..support.lab_api import LabApi
from ..support.lab_cluster import LabCluster, NotYet, eventually, running_cluster

NS = "longhorn-system"
WORKERS = ("worker-1", "worker-2")
WATCH_S = 15


@pytest.fixture
def managed(lab_api: LabApi) -> Iterator[LabCluster]:
    """Two workers with a longhorn-manager pod each, as `lhsoak lab up` installs them."""
    with running_cluster(lab_api, workers=len(WORKERS)) as cluster:
        lab_api.call(lambda: [lab_api.store.create(kinds.POD, manager_pod(node)) for node in WORKERS])
        yield cluster


@pytest.fixture
def apps(kube_client: Any) -> client.AppsV1Api:
    return client.AppsV1Api(kube_client)


def all_ready(apps: client.AppsV1Api) -> client.V1DaemonSet:
    found = apps.list_namespaced_daemon_set(NS).items
    if len(found) != 1 or found[0].status.number_ready != len(WORKERS):
        raise NotYet(f"daemonsets {[(d.metadata.name, d.status) for d in found]}")
    return found[0]


def test_discovery_serves_daemonsets_read_only_with_short_name_ds(apps: client.AppsV1Api) -> None:
    resources = {r.name: r for r in apps.get_api_resources().resources}
    daemonsets = resources["daemonsets"]
    assert daemonsets.kind == "DaemonSet"
    assert daemonsets.namespaced is True
    assert daemonsets.short_names == ["ds"]
    assert daemonsets.verbs == ["get", "list", "watch"]
    assert daemonsets.categories == ["all"]
    assert resources["daemonsets/status"].verbs == ["get"]


def test_the_manager_daemonset_reads_as_a_typed_object_in_step_with_its_pods(
    apps: client.AppsV1Api, managed: LabCluster
) -> None:
    # The typed model refuses a status without its four required counts: this is the field check.
    listed = eventually(lambda: all_ready(apps), what="the longhorn-manager DaemonSet with both ready")
    read = apps.read_namespaced_daemon_set("longhorn-manager", NS)
    assert read.metadata.uid == listed.metadata.uid
    assert read.spec.selector.match_labels == {"app": "longhorn-manager"}
    assert read.spec.template.metadata.labels["app"] == "longhorn-manager"
    assert read.spec.update_strategy.type == "RollingUpdate"
    status = read.status
    assert (status.desired_number_scheduled, status.current_number_scheduled) == (2, 2)
    assert (status.number_ready, status.number_available, status.updated_number_scheduled) == (2, 2, 2)
    assert status.number_misscheduled == 0
    assert status.number_unavailable is None, "zero is omitted (omitempty)"
    assert status.observed_generation == read.metadata.generation
    pods = client.CoreV1Api(apps.api_client).list_namespaced_pod(NS, label_selector="app=longhorn-manager")
    for pod in pods.items:
        [owner] = pod.metadata.owner_references
        assert (owner.kind, owner.name, owner.uid, owner.controller) == (
            "DaemonSet",
            "longhorn-manager",
            read.metadata.uid,
            True,
        )


def test_a_watch_sees_ready_drop_while_a_node_is_lost_and_recover_with_it(
    apps: client.AppsV1Api, managed: LabCluster
) -> None:
    start = eventually(lambda: all_ready(apps), what="the longhorn-manager DaemonSet with both ready")
    watcher = watch.Watch()
    seen: list[tuple[int, int, int]] = []
    stream = watcher.stream(
        apps.list_namespaced_daemon_set,
        NS,
        resource_version=start.metadata.resource_version,
        timeout_seconds=WATCH_S,
    )
    managed.power("worker-1", Machine.power_off)
    try:
        for event in stream:
            status = event["object"].status
            seen.append(
                (status.current_number_scheduled, status.number_ready, status.number_unavailable or 0)
            )
            if status.number_ready == 1:
                managed.power("worker-1", Machine.power_on)
            elif seen[0][1] == 1 and status.number_ready == 2:
                break
    finally:
        watcher.stop()
    assert seen[0] == (2, 1, 1), f"the lost node's manager stays scheduled, not ready: {seen}"
    assert seen[-1] == (2, 2, 0), f"ready again once the node is back within {WATCH_S}s: {seen}"


@pytest.mark.parametrize("verb", ["create", "patch", "delete"])
def test_writes_are_refused_as_the_daemonset_is_the_labs(
    verb: str, apps: client.AppsV1Api, managed: LabCluster
) -> None:
    eventually(lambda: all_ready(apps), what="the longhorn-manager DaemonSet with both ready")
    calls = {
        "create": lambda: apps.create_namespaced_daemon_set(
            NS, {"metadata": {"name": "other"}, "spec": {"selector": {"matchLabels": {"app": "x"}}}}
        ),
        "patch": lambda: apps.patch_namespaced_daemon_set(
            "longhorn-manager", NS, {"spec": {"minReadySeconds": 5}}
        ),
        "delete": lambda: apps.delete_namespaced_daemon_set("longhorn-manager", NS),
    }
    with pytest.raises(ApiException) as refused:
        calls[verb]()
    assert refused.value.status == 405
    assert "does not allow this method" in str(refused.value.body)
    assert apps.read_namespaced_daemon_set("longhorn-manager", NS).metadata.generation == 1
