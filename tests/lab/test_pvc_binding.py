"""A PVC of a `driver.longhorn.io` StorageClass, through the kubernetes client: the lab provisions a
Longhorn Volume `pvc-<claim uid>` and a PV pre-bound to the claim (Longhorn's CSI driver behind
csi-provisioner), the PV controller binds them, and deleting the claim deletes both (Delete)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from lhsoak.lab import kinds

from ..support.lab_api import CRDS, LabApi
from ..support.lab_cluster import NotYet, eventually, running_cluster

NS = "apps"
LH_NS = "longhorn-system"
KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"


def claim_body(name: str, *, storage: str, storage_class: str = "longhorn") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": name},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": storage_class,
            "resources": {"requests": {"storage": storage}},
        },
    }


def bound_claim(core: client.CoreV1Api, name: str) -> Any:
    claim = core.read_namespaced_persistent_volume_claim(name, NS)
    if claim.status.phase != "Bound":
        raise NotYet(f"claim {name}: phase {claim.status.phase}, volumeName {claim.spec.volume_name}")
    return claim


def longhorn_volume(custom: client.CustomObjectsApi, name: str) -> dict[str, Any]:
    volume: dict[str, Any] = custom.get_namespaced_custom_object(
        "longhorn.io", "v1beta2", LH_NS, "volumes", name
    )
    return volume


def test_a_claim_is_bound_to_a_pv_and_a_longhorn_volume_named_after_the_claim_uid(
    lab_api: LabApi, kube_client: Any
) -> None:
    core, custom = client.CoreV1Api(kube_client), client.CustomObjectsApi(kube_client)
    with running_cluster(lab_api):
        core.create_namespace({"metadata": {"name": NS}})
        uid = core.create_namespaced_persistent_volume_claim(
            NS, claim_body("data", storage="1Gi")
        ).metadata.uid

        claim = eventually(lambda: bound_claim(core, "data"), what="claim data Bound")

        name = f"pvc-{uid}"
        assert claim.spec.volume_name == name
        assert claim.status.capacity == {"storage": "1Gi"}
        assert claim.status.access_modes == ["ReadWriteOnce"]
        assert claim.metadata.annotations["pv.kubernetes.io/bind-completed"] == "yes"
        assert claim.metadata.annotations["volume.kubernetes.io/storage-provisioner"] == "driver.longhorn.io"
        assert claim.metadata.finalizers == ["kubernetes.io/pvc-protection"]
        pv = core.read_persistent_volume(name)
        assert pv.status.phase == "Bound"
        assert (pv.spec.claim_ref.namespace, pv.spec.claim_ref.name, pv.spec.claim_ref.uid) == (
            NS,
            "data",
            uid,
        )
        assert (pv.spec.csi.driver, pv.spec.csi.volume_handle) == ("driver.longhorn.io", name)
        assert pv.spec.persistent_volume_reclaim_policy == "Delete"
        assert pv.spec.storage_class_name == "longhorn"
        assert pv.spec.capacity == {"storage": "1Gi"}
        assert pv.metadata.annotations["pv.kubernetes.io/provisioned-by"] == "driver.longhorn.io"
        volume = longhorn_volume(custom, name)
        assert volume["spec"]["size"] == str(1 << 30)
        assert volume["spec"]["numberOfReplicas"] == 3
        assert volume["spec"]["staleReplicaTimeout"] == 30
        assert volume["status"]["kubernetesStatus"]["pvcName"] == "data"
        assert volume["status"]["kubernetesStatus"]["pvStatus"] == "Bound"
        # Nothing mounts it yet: a PV's volume is not auto-attached as the lab's bare volumes are.
        assert volume["status"]["state"] == "detached"


@pytest.mark.skipif(not CRDS.exists(), reason=f"Longhorn CRDs not found at {CRDS}")
def test_the_provisioned_longhorn_volume_validates_against_the_real_crd(
    lab_api: LabApi, kube_client: Any
) -> None:
    core, custom = client.CoreV1Api(kube_client), client.CustomObjectsApi(kube_client)
    with running_cluster(lab_api):
        core.create_namespace({"metadata": {"name": NS}})
        core.create_namespaced_persistent_volume_claim(NS, claim_body("data", storage="1Gi"))
        claim = eventually(lambda: bound_claim(core, "data"), what="claim data Bound")

        volume = longhorn_volume(custom, claim.spec.volume_name)

        check = kinds.SchemaValidator.from_crds(kinds.load_crds(CRDS)).check(kinds.LH_VOLUME, volume)
        assert check.errors == []
        assert check.unknown_fields == []


def test_the_class_parameters_and_longhorn_size_rules_shape_the_volume(
    lab_api: LabApi, kube_client: Any
) -> None:
    core, custom = client.CoreV1Api(kube_client), client.CustomObjectsApi(kube_client)
    storage_api = client.StorageV1Api(kube_client)
    with running_cluster(lab_api):
        storage_api.create_storage_class(
            {
                "metadata": {"name": "longhorn-two"},
                "provisioner": "driver.longhorn.io",
                "reclaimPolicy": "Retain",
                "parameters": {"numberOfReplicas": "2", "dataLocality": "best-effort"},
            }
        )
        core.create_namespace({"metadata": {"name": NS}})
        # Longhorn rounds up to 2 MiB and to at least 10 MiB.
        core.create_namespaced_persistent_volume_claim(
            NS, claim_body("tiny", storage="1", storage_class="longhorn-two")
        )
        core.create_namespaced_persistent_volume_claim(
            NS, claim_body("odd", storage="1.5G", storage_class="longhorn-two")
        )

        tiny = eventually(lambda: bound_claim(core, "tiny"), what="claim tiny Bound")
        odd = eventually(lambda: bound_claim(core, "odd"), what="claim odd Bound")

        assert tiny.status.capacity == {"storage": "10Mi"}
        assert longhorn_volume(custom, tiny.spec.volume_name)["spec"]["size"] == str(10 << 20)
        assert odd.status.capacity == {"storage": "1432Mi"}
        volume = longhorn_volume(custom, odd.spec.volume_name)
        assert volume["spec"]["numberOfReplicas"] == 2
        assert volume["spec"]["dataLocality"] == "best-effort"
        assert (
            core.read_persistent_volume(odd.spec.volume_name).spec.persistent_volume_reclaim_policy
            == "Retain"
        )


def test_deleting_the_claim_deletes_its_pv_and_longhorn_volume(lab_api: LabApi, kube_client: Any) -> None:
    core, custom = client.CoreV1Api(kube_client), client.CustomObjectsApi(kube_client)
    with running_cluster(lab_api):
        core.create_namespace({"metadata": {"name": NS}})
        core.create_namespaced_persistent_volume_claim(NS, claim_body("data", storage="1Gi"))
        name = eventually(lambda: bound_claim(core, "data"), what="claim data Bound").spec.volume_name

        core.delete_namespaced_persistent_volume_claim("data", NS)

        def all_gone() -> None:
            left = {
                "claims": [c.metadata.name for c in core.list_namespaced_persistent_volume_claim(NS).items],
                "pvs": [v.metadata.name for v in core.list_persistent_volume().items],
                "volumes": [
                    v["metadata"]["name"]
                    for v in custom.list_namespaced_custom_object("longhorn.io", "v1beta2", LH_NS, "volumes")[
                        "items"
                    ]
                ],
            }
            if any(left.values()):
                raise NotYet(str(left))

        eventually(all_gone, what=f"claim data, PV and Longhorn volume {name} deleted")


def test_a_claim_of_an_unknown_class_stays_pending_with_provisioning_failed(
    lab_api: LabApi, kube_client: Any
) -> None:
    core = client.CoreV1Api(kube_client)
    with running_cluster(lab_api):
        core.create_namespace({"metadata": {"name": NS}})
        core.create_namespaced_persistent_volume_claim(
            NS, claim_body("data", storage="1Gi", storage_class="nope")
        )

        def failed_event() -> Any:
            events = core.list_namespaced_event(NS, field_selector="involvedObject.name=data").items
            failed = [e for e in events if e.reason == "ProvisioningFailed"]
            if not failed:
                raise NotYet(f"events: {[e.reason for e in events]}")
            return failed[0]

        event = eventually(failed_event, what="a ProvisioningFailed event about claim data")

        assert event.message == 'storageclass.storage.k8s.io "nope" not found'
        assert event.source.component == "persistentvolume-controller"
        claim = core.read_namespaced_persistent_volume_claim("data", NS)
        assert claim.status.phase == "Pending"
        assert not claim.spec.volume_name
        assert core.list_persistent_volume().items == []


@pytest.mark.skipif(not Path(KUBECTL).exists(), reason="kubectl not installed (Debian: kubernetes-client)")
def test_kubectl_gets_claims_volumes_and_classes(lab_api: LabApi, kube_client: Any, tmp_path: Path) -> None:
    core = client.CoreV1Api(kube_client)
    with running_cluster(lab_api):
        core.create_namespace({"metadata": {"name": NS}})
        core.create_namespaced_persistent_volume_claim(NS, claim_body("data", storage="1Gi"))
        name = eventually(lambda: bound_claim(core, "data"), what="claim data Bound").spec.volume_name
        env = {**os.environ, "KUBECONFIG": str(lab_api.kubeconfig), "HOME": str(tmp_path)}

        result = subprocess.run(
            [KUBECTL, "get", "pvc,pv,sc", "-A", "-o", "name"],
            env=env,
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        )

        assert result.returncode == 0, result.stderr
        assert result.stdout.split() == [
            "persistentvolumeclaim/data",
            f"persistentvolume/{name}",
            "storageclass.storage.k8s.io/longhorn",
        ]
