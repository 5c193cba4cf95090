"""A writer pod mounting a Longhorn PVC, through the kubernetes client: its volume is attached to the
pod's node and detached when no pod uses it; an unbound claim keeps the pod Pending; a claim in use
is only deleted when its pod is gone; a node going down detaches the volume until its pod runs again.

The pods and claims are the harness's own (lhsoak.workload), so the lab is tested on what it serves.
"""

from __future__ import annotations

from typing import Any

from kubernetes import client

from lhsoak import workload

from ..support.lab_api import LabApi
from ..support.lab_cluster import NotYet, eventually, running_cluster

WORKLOAD = workload.Workload(namespace="apps")
NS = WORKLOAD.namespace
LH_NS = "longhorn-system"
# What the DefaultTolerationSeconds admission plugin adds to every pod on a real API server.
DEFAULT_TOLERATIONS = [
    {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
]


class Apis:
    def __init__(self, kube_client: Any) -> None:
        self.core = client.CoreV1Api(kube_client)
        self.custom = client.CustomObjectsApi(kube_client)

    def claim(self, name: str, *, storage_class: str = "longhorn") -> None:
        body = workload.pvc_object(
            name,
            run_id="t",
            workload=workload.Workload(namespace=NS, storage_class=storage_class),
            size_bytes=1 << 30,
        )
        self.core.create_namespaced_persistent_volume_claim(NS, body)

    def writer(self, name: str, *, claim: str, tolerations: list[dict[str, Any]] | None = None) -> None:
        body = workload.writer_pod_object(name, claim=claim, run_id="t", workload=WORKLOAD)
        if tolerations:
            body["spec"]["tolerations"] = tolerations
        self.core.create_namespaced_pod(NS, body)

    def volume(self, name: str) -> dict[str, Any]:
        volume: dict[str, Any] = self.custom.get_namespaced_custom_object(
            "longhorn.io", "v1beta2", LH_NS, "volumes", name
        )
        return volume

    def volume_name(self, claim: str) -> str:
        def bound() -> str:
            pvc = self.core.read_namespaced_persistent_volume_claim(claim, NS)
            if pvc.status.phase != "Bound":
                raise NotYet(f"claim {claim} {pvc.status.phase}")
            return str(pvc.spec.volume_name)

        return eventually(bound, what=f"claim {claim} Bound")

    def running_and_attached(self, pod_name: str, volume_name: str) -> tuple[Any, dict[str, Any]]:
        """The pod once Running with its volume attached to the pod's node."""

        def check() -> tuple[Any, dict[str, Any]]:
            pod = self.core.read_namespaced_pod(pod_name, NS)
            status = self.volume(volume_name).get("status") or {}
            seen = f"pod {pod.status.phase} on {pod.spec.node_name}, volume {status.get('state')} on {status.get('currentNodeID')}"
            if pod.status.phase != "Running" or status.get("state") != "attached":
                raise NotYet(seen)
            return pod, self.volume(volume_name)

        return eventually(check, what=f"pod {pod_name} Running with volume {volume_name} attached")

    def detached(self, volume_name: str) -> dict[str, Any]:
        def check() -> dict[str, Any]:
            volume = self.volume(volume_name)
            if (volume.get("status") or {}).get("state") != "detached":
                raise NotYet(f"volume status {volume.get('status')}")
            return volume

        return eventually(check, what=f"volume {volume_name} detached")

    def events(self, involved: str, reason: str) -> list[Any]:
        events = self.core.list_namespaced_event(NS, field_selector=f"involvedObject.name={involved}").items
        return [e for e in events if e.reason == reason]


def setup(kube_client: Any) -> Apis:
    apis = Apis(kube_client)
    apis.core.create_namespace({"metadata": {"name": NS}})
    return apis


def test_a_writer_pod_runs_with_its_volume_attached_to_its_node_and_detached_when_deleted(
    lab_api: LabApi, kube_client: Any
) -> None:
    with running_cluster(lab_api):
        apis = setup(kube_client)
        apis.claim("data")
        apis.writer("writer", claim="data")
        name = apis.volume_name("data")

        pod, volume = apis.running_and_attached("writer", name)

        assert volume["status"]["currentNodeID"] == pod.spec.node_name
        assert volume["spec"]["nodeID"] == pod.spec.node_name
        assert volume["status"]["robustness"] == "healthy"
        workloads = volume["status"]["kubernetesStatus"]["workloadsStatus"]
        assert [(w["podName"], w["podStatus"]) for w in workloads] == [("writer", "Running")]
        [attach] = apis.events("writer", "SuccessfulAttachVolume")
        assert attach.message == f'AttachVolume.Attach succeeded for volume "{name}"'
        assert attach.source.component == "attachdetach-controller"

        apis.core.delete_namespaced_pod("writer", NS)

        volume = apis.detached(name)
        assert volume["status"]["currentNodeID"] == ""
        assert volume["spec"]["nodeID"] == ""
        assert volume["status"]["kubernetesStatus"]["workloadsStatus"] == []
        assert volume["status"]["kubernetesStatus"]["lastPodRefAt"]


def test_a_pod_whose_claim_is_not_bound_stays_pending_until_it_is(lab_api: LabApi, kube_client: Any) -> None:
    with running_cluster(lab_api):
        apis = setup(kube_client)
        apis.claim("data", storage_class="later")
        apis.writer("writer", claim="data")
        apis.writer("orphan", claim="missing")

        def failed_scheduling(pod: str) -> str:
            failed = apis.events(pod, "FailedScheduling")
            if not failed:
                raise NotYet(f"no FailedScheduling event for {pod}")
            return str(failed[0].message)

        message = eventually(lambda: failed_scheduling("writer"), what="FailedScheduling of writer")
        orphan_message = eventually(lambda: failed_scheduling("orphan"), what="FailedScheduling of orphan")

        assert message == (
            "0/3 nodes are available: pod has unbound immediate PersistentVolumeClaims. preemption: 0/3 nodes "
            "are available: 3 Preemption is not helpful for scheduling."
        )
        assert 'persistentvolumeclaim "missing" not found' in orphan_message
        pod = apis.core.read_namespaced_pod("writer", NS)
        assert (pod.status.phase, pod.spec.node_name) == ("Pending", None)
        [scheduled] = [c for c in pod.status.conditions if c.type == "PodScheduled"]
        assert (scheduled.status, scheduled.reason) == ("False", "Unschedulable")

        client.StorageV1Api(kube_client).create_storage_class(
            {"metadata": {"name": "later"}, "provisioner": "driver.longhorn.io", "reclaimPolicy": "Delete"}
        )

        apis.running_and_attached("writer", apis.volume_name("data"))


def test_a_claim_in_use_is_deleted_only_once_its_pod_is_gone(lab_api: LabApi, kube_client: Any) -> None:
    with running_cluster(lab_api):
        apis = setup(kube_client)
        apis.claim("data")
        apis.writer("writer", claim="data")
        name = apis.volume_name("data")
        apis.running_and_attached("writer", name)

        apis.core.delete_namespaced_persistent_volume_claim("data", NS)

        claim = apis.core.read_namespaced_persistent_volume_claim("data", NS)
        assert claim.metadata.deletion_timestamp is not None
        assert claim.metadata.finalizers == ["kubernetes.io/pvc-protection"]
        assert apis.volume(name)["status"]["state"] == "attached"

        apis.core.delete_namespaced_pod("writer", NS)

        def gone() -> None:
            claims = apis.core.list_namespaced_persistent_volume_claim(NS).items
            pvs = apis.core.list_persistent_volume().items
            volumes = apis.custom.list_namespaced_custom_object("longhorn.io", "v1beta2", LH_NS, "volumes")[
                "items"
            ]
            if claims or pvs or volumes:
                raise NotYet(f"{len(claims)} claims, {len(pvs)} PVs, {len(volumes)} volumes left")

        eventually(gone, what="claim, PV and volume gone after the pod")


def wait_back(apis: Apis, node: str, *, boot_id: str) -> None:
    """The node is Ready again after a new boot, its not-ready taints gone."""

    def back() -> None:
        current = apis.core.read_node(node)
        ready = [c.status for c in current.status.conditions or [] if c.type == "Ready"]
        seen = f"node {node} boot {current.status.node_info.boot_id}, Ready {ready}, taints {current.spec.taints}"
        if current.status.node_info.boot_id == boot_id or ready != ["True"] or current.spec.taints:
            raise NotYet(seen)

    eventually(back, what=f"node {node} back from its reboot")


def test_a_volume_detaches_while_its_node_is_down_and_reattaches_when_its_pod_runs_again(
    lab_api: LabApi, kube_client: Any
) -> None:
    with running_cluster(lab_api) as cluster:
        apis = setup(kube_client)
        apis.claim("data")
        apis.writer("writer", claim="data", tolerations=DEFAULT_TOLERATIONS)
        name = apis.volume_name("data")
        pod, _ = apis.running_and_attached("writer", name)
        node = pod.spec.node_name

        # A hard power cut: no graceful node shutdown, so the pod stays bound and Running in the API.
        cluster.power(node, lambda machine: machine.power_off())

        down = apis.detached(name)
        assert (down["status"]["robustness"], down["status"]["currentNodeID"]) == ("unknown", "")
        assert down["spec"]["nodeID"] == node

        cluster.power(node, lambda machine: machine.power_on())

        def restarted() -> Any:
            current = apis.core.read_namespaced_pod("writer", NS)
            statuses = current.status.container_statuses or []
            if current.status.phase != "Running" or not statuses or statuses[0].restart_count < 1:
                raise NotYet(f"pod {current.status.phase}, containers {statuses}")
            return current

        again = eventually(restarted, what="the writer's container restarted after boot")
        _, volume = apis.running_and_attached("writer", name)
        assert again.spec.node_name == node
        assert volume["status"]["currentNodeID"] == node


def test_a_pod_failed_by_graceful_node_shutdown_leaves_its_volume_detached(
    lab_api: LabApi, kube_client: Any
) -> None:
    with running_cluster(lab_api) as cluster:
        apis = setup(kube_client)
        apis.claim("data")
        apis.writer("writer", claim="data", tolerations=DEFAULT_TOLERATIONS)
        name = apis.volume_name("data")
        pod, _ = apis.running_and_attached("writer", name)
        node = pod.spec.node_name
        boot_id = apis.core.read_node(node).status.node_info.boot_id

        cluster.power(node, lambda machine: machine.reboot())

        apis.detached(name)
        wait_back(apis, node, boot_id=boot_id)
        failed = apis.core.read_namespaced_pod("writer", NS)
        assert (failed.status.phase, failed.status.reason) == ("Failed", "Terminated")
        volume = apis.volume(name)
        assert volume["spec"]["nodeID"] == ""
        assert volume["status"]["state"] == "detached"

        apis.core.delete_namespaced_pod("writer", NS)
        apis.writer("writer-2", claim="data")

        apis.running_and_attached("writer-2", name)


def test_the_cluster_sees_one_attachment_per_volume(lab_api: LabApi, kube_client: Any) -> None:
    with running_cluster(lab_api, workers=2) as cluster:
        apis = setup(kube_client)
        apis.claim("data")
        apis.writer("first", claim="data")
        name = apis.volume_name("data")
        first, _ = apis.running_and_attached("first", name)
        other = next(m.name for m in cluster.fleet if m.role == "worker" and m.name != first.spec.node_name)
        body = workload.writer_pod_object("second", claim="data", run_id="t", workload=WORKLOAD)
        body["spec"]["nodeName"] = other
        apis.core.create_namespaced_pod(NS, body)

        def multi_attach() -> str:
            failed = apis.events("second", "FailedAttachVolume")
            if not failed:
                raise NotYet("no FailedAttachVolume event for pod second")
            return str(failed[0].message)

        message = eventually(multi_attach, what="a Multi-Attach error for the second pod")

        assert message == f'Multi-Attach error for volume "{name}" Volume is already used by pod(s) first'
        assert apis.volume(name)["status"]["currentNodeID"] == first.spec.node_name
