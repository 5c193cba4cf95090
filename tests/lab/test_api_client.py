"""The lab API endpoint through the official `kubernetes` client: auth, CRUD, errors, selectors, paging."""

from __future__ import annotations

import json
import ssl
import urllib.error
import urllib.request
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from lhsoak.lab import kinds

from ..support.lab_api import CRDS, LabApi

LH = ("longhorn.io", "v1beta2")


def raw_get(lab: LabApi, path: str, *, token: str | None) -> tuple[int, Any]:
    context = ssl.create_default_context(cadata=lab.pki.ca_pem.decode())
    request = urllib.request.Request(lab.server.url + path)
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, context=context, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


def pod(name: str, **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, **meta}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


@pytest.mark.parametrize("token", [None, "wrong-token"])
@pytest.mark.parametrize(
    "path", ["/version", "/api/v1/namespaces", "/apis/longhorn.io/v1beta2/volumes", "/metrics"]
)
def test_requests_without_the_token_get_401_and_no_data(
    lab_api: LabApi, token: str | None, path: str
) -> None:
    code, body = raw_get(lab_api, path, token=token)
    assert code == 401
    status = json.loads(body)
    assert status["kind"] == "Status"
    assert status["reason"] == "Unauthorized"
    assert "items" not in status


def test_tls_is_served_with_the_labs_own_ca(lab_api: LabApi) -> None:
    untrusted = ssl.create_default_context()
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        urllib.request.urlopen(lab_api.server.url + "/version", context=untrusted, timeout=5)


def test_version_and_discovery(kube_client: Any) -> None:
    version = client.VersionApi(kube_client).get_code()
    assert version.git_version.startswith("v1.")
    groups = {g.name for g in client.ApisApi(kube_client).get_api_versions().groups}
    assert {"batch", "longhorn.io", "apiextensions.k8s.io"} <= groups
    resources = client.CustomObjectsApi(kube_client).get_api_resources("longhorn.io", "v1beta2").resources
    short = {r.name: r.short_names for r in resources if "/" not in r.name}
    assert short["recurringjobs"] == ["lhrj"]
    assert short["snapshots"] == ["lhsnap"]
    assert short["backups"] == ["lhb"]
    assert short["volumes"] == ["lhv"]
    batch = client.BatchV1Api(kube_client).get_api_resources().resources
    assert next(r for r in batch if r.name == "cronjobs").short_names == ["cj"]


def test_create_returns_201_with_server_fields(kube_client: Any) -> None:
    core = client.CoreV1Api(kube_client)
    created, status, _ = core.create_namespaced_pod_with_http_info("default", pod("p"))
    assert status == 201
    assert created.metadata.uid
    assert created.metadata.creation_timestamp is not None
    assert int(created.metadata.resource_version) > 0
    assert created.status.phase == "Pending"


def test_errors_carry_a_real_status(kube_client: Any) -> None:
    core = client.CoreV1Api(kube_client)
    core.create_namespaced_pod("default", pod("p"))
    with pytest.raises(ApiException) as exists:
        core.create_namespaced_pod("default", pod("p"))
    assert exists.value.status == 409
    assert json.loads(exists.value.body)["reason"] == "AlreadyExists"
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_pod("nope", "default")
    assert missing.value.status == 404
    assert json.loads(missing.value.body)["message"] == 'pods "nope" not found'
    with pytest.raises(ApiException) as invalid:
        core.create_namespaced_pod("default", pod("Not_Valid"))
    body = json.loads(invalid.value.body)
    assert invalid.value.status == 422
    assert body["reason"] == "Invalid"
    assert body["details"]["causes"][0]["field"] == "metadata.name"


def test_update_with_stale_resource_version_is_409(kube_client: Any) -> None:
    core = client.CoreV1Api(kube_client)
    stale = core.create_namespaced_pod("default", pod("p"))
    core.patch_namespaced_pod("p", "default", {"metadata": {"labels": {"a": "1"}}})
    stale.metadata.labels = {"a": "2"}
    with pytest.raises(ApiException) as conflict:
        core.replace_namespaced_pod("p", "default", stale)
    assert conflict.value.status == 409
    assert json.loads(conflict.value.body)["reason"] == "Conflict"
    fresh = core.read_namespaced_pod("p", "default")
    fresh.metadata.labels = {"a": "3"}
    assert core.replace_namespaced_pod("p", "default", fresh).metadata.labels == {"a": "3"}


def test_label_and_field_selectors(kube_client: Any, lab_api: LabApi) -> None:
    core = client.CoreV1Api(kube_client)
    core.create_namespaced_pod("default", pod("a", labels={"app": "x", "tier": "db"}))
    core.create_namespaced_pod("default", pod("b", labels={"app": "y"}))
    core.create_namespaced_pod("default", {**pod("c"), "spec": {**pod("c")["spec"], "nodeName": "n1"}})
    core.patch_namespaced_pod_status("b", "default", {"status": {"phase": "Running"}})

    def names(**kw: Any) -> list[str]:
        return [p.metadata.name for p in core.list_namespaced_pod("default", **kw).items]

    assert names(label_selector="app=x") == ["a"]
    assert names(label_selector="app!=x") == ["b", "c"]
    assert names(label_selector="app in (x,y)") == ["a", "b"]
    assert names(label_selector="app notin (x)") == ["b", "c"]
    assert names(label_selector="tier") == ["a"]
    assert names(label_selector="!app") == ["c"]
    assert names(field_selector="spec.nodeName=n1") == ["c"]
    assert names(field_selector="status.phase=Running") == ["b"]
    assert names(field_selector="metadata.name=a") == ["a"]
    assert [
        p.metadata.name
        for p in core.list_pod_for_all_namespaces(field_selector="metadata.namespace=default").items
    ] == ["a", "b", "c"]
    with pytest.raises(ApiException) as bad:
        core.list_namespaced_pod("default", field_selector="spec.bogus=x")
    assert bad.value.status == 400


def test_limit_and_continue_page_through_a_consistent_list(kube_client: Any) -> None:
    core = client.CoreV1Api(kube_client)
    for i in range(5):
        core.create_namespaced_pod("default", pod(f"p{i}"))
    first = core.list_namespaced_pod("default", limit=2)
    assert [p.metadata.name for p in first.items] == ["p0", "p1"]
    assert first.metadata.remaining_item_count == 3
    core.delete_namespaced_pod("p4", "default")
    rest = core.list_namespaced_pod("default", limit=10, _continue=first.metadata._continue)
    assert [p.metadata.name for p in rest.items] == ["p2", "p3", "p4"]
    assert rest.metadata.resource_version == first.metadata.resource_version
    assert not rest.metadata._continue


def test_status_subresource_and_generation(kube_client: Any) -> None:
    custom = client.CustomObjectsApi(kube_client)
    body = {
        "apiVersion": "longhorn.io/v1beta2",
        "kind": "Backup",
        "metadata": {"name": "b"},
        "spec": {"labels": {}},
    }
    created = custom.create_namespaced_custom_object(
        *LH, "default", "backups", {**body, "status": {"state": "Completed"}}
    )
    assert "status" not in created
    main = custom.patch_namespaced_custom_object(
        *LH, "default", "backups", "b", {"status": {"state": "Error"}}
    )
    assert "status" not in main
    status = custom.patch_namespaced_custom_object_status(
        *LH, "default", "backups", "b", {"status": {"state": "InProgress"}}
    )
    assert status["status"]["state"] == "InProgress"
    assert status["metadata"]["generation"] == 1
    spec = custom.patch_namespaced_custom_object(
        *LH, "default", "backups", "b", {"spec": {"syncRequestedAt": "2024-01-01T00:00:00Z"}}
    )
    assert spec["metadata"]["generation"] == 2


def test_json_patch_and_strategic_merge(kube_client: Any) -> None:
    core = client.CoreV1Api(kube_client)
    core.create_namespaced_pod("default", pod("p", labels={"a": "1"}))
    patched = core.patch_namespaced_pod(
        "p", "default", [{"op": "replace", "path": "/metadata/labels/a", "value": "2"}]
    )
    assert patched.metadata.labels == {"a": "2"}
    merged = core.patch_namespaced_pod("p", "default", {"metadata": {"labels": {"b": "3"}}})
    assert merged.metadata.labels == {"a": "2", "b": "3"}


@pytest.mark.skipif(not CRDS.exists(), reason=f"Longhorn CRDs not found at {CRDS}")
def test_longhorn_objects_are_validated_by_the_real_crd_schema(kube_client: Any) -> None:
    custom = client.CustomObjectsApi(kube_client)
    job = {
        "apiVersion": "longhorn.io/v1beta2",
        "kind": "RecurringJob",
        "metadata": {"name": "snap"},
        "spec": {
            "name": "snap",
            "task": "snapshot",
            "cron": "*/2 * * * *",
            "retain": 1,
            "concurrency": 1,
            "groups": ["default"],
            "labels": {},
        },
    }
    with pytest.raises(ApiException) as invalid:
        custom.create_namespaced_custom_object(
            *LH, "default", "recurringjobs", {**job, "spec": {**job["spec"], "task": "nap"}}
        )
    assert invalid.value.status == 422
    assert 'spec.task: Unsupported value: "nap"' in json.loads(invalid.value.body)["message"]
    created = custom.create_namespaced_custom_object(*LH, "default", "recurringjobs", job)
    jsonschema = pytest.importorskip("jsonschema")
    jsonschema.validate(
        created, kinds.openapi_schema(kinds.load_crds(CRDS)[kinds.LH_RECURRING_JOB], "v1beta2")
    )


@pytest.mark.skipif(not CRDS.exists(), reason=f"Longhorn CRDs not found at {CRDS}")
def test_served_crds_are_the_real_longhorn_crds(kube_client: Any) -> None:
    served = client.ApiextensionsV1Api(kube_client).list_custom_resource_definition().items
    real = kinds.load_crds(CRDS)
    assert {c.metadata.name for c in served} == {c["metadata"]["name"] for c in real.values()}
    volume = next(c for c in served if c.metadata.name == "volumes.longhorn.io")
    assert volume.spec.versions[0].additional_printer_columns
    assert {c.type: c.status for c in volume.status.conditions}["Established"] == "True"


def test_cascading_delete_cronjob_job_pod(kube_client: Any) -> None:
    batch, core = client.BatchV1Api(kube_client), client.CoreV1Api(kube_client)
    cron = batch.create_namespaced_cron_job("default", cronjob("c"))
    job = batch.create_namespaced_job(
        "default", {"metadata": {"name": "c-1", "ownerReferences": [owner(cron)]}, "spec": job_spec()}
    )
    core.create_namespaced_pod("default", pod("c-1-abcde", ownerReferences=[owner(job)]))
    batch.delete_namespaced_cron_job("c", "default", propagation_policy="Background")
    assert batch.list_namespaced_job("default").items == []
    assert core.list_namespaced_pod("default").items == []


def test_deleting_a_job_without_policy_orphans_its_pods_as_batch_v1_does(kube_client: Any) -> None:
    batch, core = client.BatchV1Api(kube_client), client.CoreV1Api(kube_client)
    job = batch.create_namespaced_job("default", {"metadata": {"name": "j"}, "spec": job_spec()})
    core.create_namespaced_pod("default", pod("j-abcde", ownerReferences=[owner(job)]))
    batch.delete_namespaced_job("j", "default")
    left = core.read_namespaced_pod("j-abcde", "default")
    assert not left.metadata.owner_references
    job = batch.create_namespaced_job("default", {"metadata": {"name": "k"}, "spec": job_spec()})
    core.create_namespaced_pod("default", pod("k-abcde", ownerReferences=[owner(job)]))
    batch.delete_namespaced_job("k", "default", body=client.V1DeleteOptions(propagation_policy="Foreground"))
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_pod("k-abcde", "default")
    assert gone.value.status == 404


def test_delete_returns_202_while_finalizers_hold_the_object(kube_client: Any) -> None:
    custom = client.CustomObjectsApi(kube_client)
    body = {
        "apiVersion": "longhorn.io/v1beta2",
        "kind": "Volume",
        "metadata": {"name": "v", "finalizers": ["longhorn.io"]},
        "spec": {},
    }
    custom.create_namespaced_custom_object(*LH, "default", "volumes", body)
    _, status, _ = custom.delete_namespaced_custom_object_with_http_info(*LH, "default", "volumes", "v")
    assert status == 202
    held = custom.get_namespaced_custom_object(*LH, "default", "volumes", "v")
    assert held["metadata"]["deletionTimestamp"]
    custom.patch_namespaced_custom_object(*LH, "default", "volumes", "v", {"metadata": {"finalizers": None}})
    with pytest.raises(ApiException) as gone:
        custom.get_namespaced_custom_object(*LH, "default", "volumes", "v")
    assert gone.value.status == 404


def test_request_counts_and_metrics(kube_client: Any, lab_api: LabApi) -> None:
    core = client.CoreV1Api(kube_client)
    core.create_namespaced_pod("default", pod("p"))
    core.list_namespaced_pod("default")
    core.read_namespaced_pod("p", "default")
    with pytest.raises(ApiException):
        core.read_namespaced_pod("q", "default")
    counts = lab_api.call(lab_api.server.request_counts)
    assert counts[_key("POST", "pods", "namespace", 201)] == 1
    assert counts[_key("LIST", "pods", "namespace", 200)] == 1
    assert counts[_key("GET", "pods", "resource", 200)] == 1
    assert counts[_key("GET", "pods", "resource", 404)] == 1
    code, text = raw_get(lab_api, "/metrics", token=lab_api.token)
    assert code == 200
    assert (
        'apiserver_request_total{verb="LIST",group="",version="v1",resource="pods",subresource="",'
        'scope="namespace",component="apiserver",code="200"} 1'
    ) in text.decode()


def _key(verb: str, resource: str, scope: str, code: int) -> Any:
    from lhsoak.lab.apiserver import RequestKey

    return RequestKey(verb, "", "v1", resource, "", scope, code)


def cronjob(name: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name},
        "spec": {
            "schedule": "*/2 * * * *",
            "concurrencyPolicy": "Forbid",
            "jobTemplate": {"spec": job_spec()},
        },
    }


def job_spec() -> dict[str, Any]:
    return {
        "backoffLimit": 3,
        "template": {"spec": {"restartPolicy": "OnFailure", "containers": [{"name": "c", "image": "i"}]}},
    }


def owner(obj: Any) -> dict[str, Any]:
    return {
        "apiVersion": obj.api_version,
        "kind": obj.kind,
        "name": obj.metadata.name,
        "uid": obj.metadata.uid,
        "controller": True,
    }


def test_delete_collection_by_label(kube_client: Any) -> None:
    core = client.CoreV1Api(kube_client)
    core.create_namespaced_pod("default", pod("a", labels={"job-name": "j"}))
    core.create_namespaced_pod("default", pod("b", labels={"job-name": "j"}))
    core.create_namespaced_pod("default", pod("c"))
    core.delete_collection_namespaced_pod("default", label_selector="job-name=j")
    assert [p.metadata.name for p in core.list_namespaced_pod("default").items] == ["c"]


def test_namespace_delete_removes_its_contents(kube_client: Any) -> None:
    core = client.CoreV1Api(kube_client)
    core.create_namespace({"metadata": {"name": "scratch"}})
    core.create_namespaced_pod("scratch", pod("a"))
    core.delete_namespace("scratch")
    assert core.list_namespaced_pod("scratch").items == []
    with pytest.raises(ApiException) as gone:
        core.read_namespace("scratch")
    assert gone.value.status == 404
    with pytest.raises(ApiException) as missing:
        core.create_namespaced_pod("scratch", pod("b"))
    assert missing.value.status == 404
