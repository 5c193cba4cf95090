"""Longhorn's CSI as a fresh install shows it: the sidecar Deployments (three replicas each), the
driver deployer and UI, each through one ReplicaSet whose pods the scheduler puts on workers, and
the longhorn-csi-plugin DaemonSet. Their counts follow node reboots as the real controllers'
do: a rebooted worker's pods fail and are replaced, a lost worker's stay bound but not Ready until
it is back. Clients read them (kubectl, the typed client) but may not write them."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lhsoak.lab import kinds, profiles
from lhsoak.lab.cluster import CSI_SIDECAR_IMAGES, install_longhorn
from lhsoak.lab.controllers import deployment
from lhsoak.lab.controllers.meta import Obj, condition, controller_ref, uid_of
from lhsoak.lab.controllers.testing import InProcessLab
from lhsoak.lab.process import LabProcess
from lhsoak.lab.store import WatchEvent

from ..support.lab_api import LabApi
from ..support.lab_cluster import LabCluster, NotYet, eventually, running_cluster

DEADLINE_S = 15.0
NS = "longhorn-system"
SIDECARS = tuple(CSI_SIDECAR_IMAGES)
DEPLOYMENTS = {"longhorn-driver-deployer": 1, "longhorn-ui": 2, **dict.fromkeys(SIDECARS, 3)}
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"


def workers(lab: InProcessLab) -> list[str]:
    return [m.name for m in lab.fleet if m.role == "worker"]


def deployments(lab: InProcessLab) -> dict[str, Obj]:
    return {d["metadata"]["name"]: d for d in lab.items(kinds.DEPLOYMENT)}


def counts(lab: InProcessLab) -> dict[str, tuple[int, ...]]:
    """(replicas, readyReplicas, availableReplicas) of each Deployment (absent counts are 0)."""
    fields = ("replicas", "readyReplicas", "availableReplicas")
    return {
        name: tuple(int((d.get("status") or {}).get(field) or 0) for field in fields)
        for name, d in deployments(lab).items()
    }


async def installed(lab: InProcessLab) -> dict[str, Obj]:
    """Longhorn installed on every worker, each Deployment with all its replicas available."""
    install_longhorn(lab.store, workers(lab))

    def all_available() -> dict[str, Obj] | None:
        found = deployments(lab)
        wanted = {name: (n, n, n) for name, n in DEPLOYMENTS.items()}
        return found if counts(lab) == wanted else None

    return await lab.wait(
        all_available, timeout_s=DEADLINE_S, what="every Deployment available", seen=lambda: counts(lab)
    )


async def wait_counts(lab: InProcessLab, name: str, what: str, **wanted: int) -> Obj:
    """Until Deployment `name` has every count in `wanted` (absent counts are 0)."""

    def matches() -> Obj | None:
        found = deployments(lab).get(name)
        status = (found or {}).get("status") or {}
        return found if found and all(int(status.get(k) or 0) == v for k, v in wanted.items()) else None

    return await lab.wait(matches, timeout_s=DEADLINE_S, what=what, seen=lambda: counts(lab))


def pods_of(lab: InProcessLab, app: str) -> list[Obj]:
    return lab.items(kinds.POD, label_selector=f"app={app}")


def reasons(obj: Obj) -> dict[str, tuple[str, str]]:
    """Each condition's (status, reason)."""
    return {c["type"]: (c["status"], c["reason"]) for c in obj["status"].get("conditions") or ()}


def record_statuses(lab: InProcessLab, name: str) -> list[Obj]:
    """Every status Deployment `name` is written with from now on."""
    seen: list[Obj] = []

    def record(event: WatchEvent) -> None:
        if event.object["metadata"]["name"] == name:
            seen.append(dict(event.object.get("status") or {}))

    lab.store.listen(record, only=[kinds.DEPLOYMENT])
    return seen


def test_each_deployment_runs_its_replicas_through_one_replicaset_on_the_workers() -> None:
    async def scenario() -> None:
        async with InProcessLab(profiles.get("healthy")) as lab:
            found = await installed(lab)
            replica_sets = {r["metadata"]["name"]: r for r in lab.items(kinds.REPLICASET)}
            assert len(replica_sets) == len(DEPLOYMENTS), sorted(replica_sets)
            for name, made in found.items():
                [replica_set] = [
                    r
                    for r in replica_sets.values()
                    if r["metadata"]["ownerReferences"] == [controller_ref(made)]
                ]
                template_hash = replica_set["metadata"]["labels"][deployment.POD_TEMPLATE_HASH_LABEL]
                assert replica_set["metadata"]["name"] == f"{name}-{template_hash}"
                assert replica_set["spec"]["selector"]["matchLabels"] == {
                    "app": name,
                    "pod-template-hash": template_hash,
                }
                assert replica_set["metadata"]["annotations"][deployment.REVISION_ANNOTATION] == "1"
                assert made["metadata"]["annotations"][deployment.REVISION_ANNOTATION] == "1"
                replicas = DEPLOYMENTS[name]
                assert replica_set["status"] == {
                    "replicas": replicas,
                    "fullyLabeledReplicas": replicas,
                    "readyReplicas": replicas,
                    "availableReplicas": replicas,
                    "observedGeneration": 1,
                }
                status = made["status"]
                assert {k: v for k, v in status.items() if k != "conditions"} == {
                    "observedGeneration": 1,
                    "replicas": replicas,
                    "updatedReplicas": replicas,
                    "readyReplicas": replicas,
                    "availableReplicas": replicas,
                }, "unavailableReplicas 0 is omitted, as omitempty does"
                assert reasons(made) == {
                    "Available": ("True", "MinimumReplicasAvailable"),
                    "Progressing": ("True", "NewReplicaSetAvailable"),
                }
                progressing = condition(status["conditions"], "Progressing")
                assert progressing is not None
                assert (
                    progressing["message"]
                    == f'ReplicaSet "{replica_set["metadata"]["name"]}" has successfully progressed.'
                )
                pods = pods_of(lab, name)
                assert len(pods) == replicas
                for pod in pods:
                    assert pod["metadata"]["ownerReferences"] == [controller_ref(replica_set)]
                    assert pod["metadata"]["name"].startswith(f"{replica_set['metadata']['name']}-")
                    assert pod["spec"]["nodeName"] in workers(lab), (
                        "the control plane's taint is not tolerated"
                    )
                    unreachable = [
                        t for t in pod["spec"]["tolerations"] if t["key"] == "node.kubernetes.io/unreachable"
                    ]
                    assert unreachable == [
                        {
                            "key": "node.kubernetes.io/unreachable",
                            "operator": "Exists",
                            "effect": "NoExecute",
                            "tolerationSeconds": 300,
                        }
                    ]
                assert lab.event_count("ScalingReplicaSet", involved=name) == 1
                assert (
                    lab.event_count("SuccessfulCreate", involved=replica_set["metadata"]["name"]) == replicas
                )
            [plugin] = [
                d for d in lab.items(kinds.DAEMONSET) if d["metadata"]["name"] == "longhorn-csi-plugin"
            ]
            assert plugin["spec"]["selector"] == {"matchLabels": {"app": "longhorn-csi-plugin"}}
            assert plugin["metadata"]["labels"] == {"longhorn.io/managed-by": "longhorn-manager"}
            assert plugin["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] == 1
            assert (plugin["status"]["desiredNumberScheduled"], plugin["status"]["numberReady"]) == (3, 3)

    asyncio.run(scenario())


def test_a_rebooted_workers_pods_fail_are_replaced_and_the_counts_come_back() -> None:
    """Graceful node shutdown fails the worker's pods: the ReplicaSet replaces the attacher's at
    once; it stays Available (2 of 3 suffice with maxUnavailable 1) while ready drops to 2."""

    async def scenario() -> None:
        async with InProcessLab(profiles.get("healthy")) as lab:
            await installed(lab)
            [before, *_] = pods_of(lab, "csi-attacher")
            node = before["spec"]["nodeName"]
            seen = record_statuses(lab, "csi-attacher")
            lab.fleet[node].reboot()
            await wait_counts(lab, "csi-attacher", f"{node}'s attacher not ready", readyReplicas=2)
            back = await wait_counts(
                lab, "csi-attacher", f"{node} back", readyReplicas=3, availableReplicas=3
            )
            assert reasons(back) == {
                "Available": ("True", "MinimumReplicasAvailable"),
                "Progressing": ("True", "NewReplicaSetAvailable"),
            }, "a complete rollout is not progressing again"
            assert all(s["replicas"] == 3 and s["availableReplicas"] >= 2 for s in seen), seen
            assert any(s.get("unavailableReplicas") == 1 for s in seen), seen
            failed = lab.store.get(kinds.POD, before["metadata"]["name"], namespace=NS)
            assert failed["status"]["phase"] == "Failed", "the pod GC, not the ReplicaSet, removes it"
            running = [p for p in pods_of(lab, "csi-attacher") if p["status"]["phase"] == "Running"]
            assert len(running) == 3
            assert uid_of(before) not in {uid_of(p) for p in running}

    asyncio.run(scenario())


def test_a_lost_workers_pods_stay_bound_not_ready_until_it_is_back() -> None:
    """One worker holds every replica: powered off, each Deployment has none ready and is not
    Available; the same pods run again when the node is back."""

    async def scenario() -> None:
        async with InProcessLab(profiles.get("healthy"), workers=1) as lab:
            await installed(lab)
            before = {uid_of(p) for p in pods_of(lab, "csi-provisioner")}
            lab.fleet["worker-1"].power_off()
            lost = await wait_counts(lab, "csi-provisioner", "no provisioner ready", readyReplicas=0)
            assert lost["status"]["replicas"] == 3, "the pods tolerate the unreachable node for 300 s"
            assert lost["status"]["unavailableReplicas"] == 3
            assert reasons(lost)["Available"] == ("False", "MinimumReplicasUnavailable")
            assert all(p["spec"]["nodeName"] == "worker-1" for p in pods_of(lab, "csi-provisioner"))
            lab.fleet["worker-1"].power_on()
            back = await wait_counts(
                lab, "csi-provisioner", "worker-1 back", readyReplicas=3, availableReplicas=3
            )
            assert reasons(back)["Available"] == ("True", "MinimumReplicasAvailable")
            assert {uid_of(p) for p in pods_of(lab, "csi-provisioner")} == before, "no pod was replaced"

    asyncio.run(scenario())


@pytest.mark.parametrize(
    ("replicas", "rolling", "expected"),
    [
        (3, {"maxUnavailable": 1, "maxSurge": "25%"}, (1, 1)),  # the CSI sidecars
        (1, {}, (1, 0)),  # 25% of 1: surge rounds up, unavailability down
        (2, {}, (1, 0)),  # longhorn-ui
        (4, {"maxUnavailable": "0%", "maxSurge": "0%"}, (0, 1)),  # both 0: one may be unavailable
        (3, {"maxUnavailable": 5, "maxSurge": 0}, (0, 3)),  # capped at spec.replicas
    ],
)
def test_surge_and_unavailability_are_resolved_as_upstream(
    replicas: int, rolling: dict[str, Any], expected: tuple[int, int]
) -> None:
    spec = {"replicas": replicas, "strategy": {"type": "RollingUpdate", "rollingUpdate": rolling}}
    assert deployment.surge_and_unavailable({"spec": spec}) == expected


# -- through the API -------------------------------------------------------------------------------


@pytest.fixture
def installed_api(lab_api: LabApi) -> Iterator[LabCluster]:
    """Two workers with Longhorn installed, as `lhsoak lab up` installs it."""
    with running_cluster(lab_api, workers=2) as cluster:
        lab_api.call(lambda: install_longhorn(lab_api.store, ["worker-1", "worker-2"]))
        yield cluster


def all_available(apps: client.AppsV1Api) -> list[client.V1Deployment]:
    found = apps.list_namespaced_deployment(NS).items
    short = [(d.metadata.name, d.status.available_replicas) for d in found]
    if len(found) != len(DEPLOYMENTS) or any(d.status.available_replicas != d.spec.replicas for d in found):
        raise NotYet(f"deployments {short}")
    return list(found)


def test_the_typed_client_reads_deployments_and_may_not_write_them(
    kube_client: Any, installed_api: LabCluster
) -> None:
    apps = client.AppsV1Api(kube_client)
    resources = {r.name: r for r in apps.get_api_resources().resources}
    assert (resources["deployments"].short_names, resources["deployments"].verbs) == (
        ["deploy"],
        ["get", "list", "watch"],
    )
    assert (resources["replicasets"].short_names, resources["replicasets"].verbs) == (
        ["rs"],
        ["get", "list", "watch"],
    )
    eventually(lambda: all_available(apps), what="every Deployment available")
    read = apps.read_namespaced_deployment("csi-attacher", NS)
    assert (read.spec.replicas, read.status.ready_replicas, read.status.updated_replicas) == (3, 3, 3)
    assert read.spec.strategy.rolling_update.max_unavailable == 1
    assert {c.type: c.status for c in read.status.conditions} == {"Available": "True", "Progressing": "True"}
    replica_sets = apps.list_namespaced_replica_set(NS, label_selector="app=csi-attacher").items
    assert [r.metadata.owner_references[0].uid for r in replica_sets] == [read.metadata.uid]
    with pytest.raises(ApiException) as refused:
        apps.patch_namespaced_deployment("csi-attacher", NS, {"spec": {"replicas": 1}})
    assert refused.value.status == 405


@pytest.mark.skipif(not Path(KUBECTL).exists(), reason="kubectl not installed (Debian: kubernetes-client)")
def test_kubectl_shows_a_fresh_labs_csi_deployments_and_daemonsets_ready(tmp_path: Path) -> None:
    """`lhsoak lab up` reports ready once the CSI is: every Deployment and DaemonSet ready at the
    first look."""
    lab = LabProcess.start(state_dir=tmp_path / "lab")
    try:
        env = {**os.environ, "KUBECONFIG": str(lab.kubeconfig), "HOME": str(tmp_path)}
        shown = subprocess.run(
            [KUBECTL, "-n", NS, "get", "deploy,ds", "-o", "json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        table = subprocess.run(
            [KUBECTL, "-n", NS, "get", "deploy,rs"],
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    finally:
        lab.stop()
    assert shown.returncode == 0, shown.stderr
    # The columns kubectl prints for a real cluster's Deployments and ReplicaSets.
    rows = [line.split() for line in table.stdout.splitlines()]
    assert ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"] in rows, table.stdout + table.stderr
    assert ["NAME", "DESIRED", "CURRENT", "READY", "AGE"] in rows, table.stdout
    attacher = next(row for row in rows if row[0] == "deployment.apps/csi-attacher")
    assert attacher[1:4] == [f"{DEPLOYMENTS['csi-attacher']}/{DEPLOYMENTS['csi-attacher']}", "3", "3"]
    items = json.loads(shown.stdout)["items"]
    found = {(item["kind"], item["metadata"]["name"]): item["status"] for item in items}
    assert sorted(found) == sorted(
        [
            *(("Deployment", name) for name in DEPLOYMENTS),
            ("DaemonSet", "longhorn-csi-plugin"),
            ("DaemonSet", "longhorn-manager"),
        ]
    )
    for (kind, name), status in found.items():
        if kind == "Deployment":
            assert status.get("readyReplicas") == DEPLOYMENTS[name], (name, status)
        else:
            assert status["numberReady"] == status["desiredNumberScheduled"] == 3, (name, status)
