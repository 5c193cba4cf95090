"""The lab store keeps Kubernetes API semantics: versions, concurrency, status, finalizers, cascades."""

from __future__ import annotations

from typing import Any

import pytest

from lhsoak.lab import kinds, store
from lhsoak.lab.store import Store

Obj = dict[str, Any]


@pytest.fixture
def api() -> Store:
    s = Store(clock=lambda: 1_700_000_000.0)
    s.create(kinds.NAMESPACE, {"metadata": {"name": "default"}})
    return s


def pod(name: str, **meta: Any) -> Obj:
    return {"metadata": {"name": name, **meta}, "spec": {"containers": [{"name": "c", "image": "i"}]}}


def test_create_fills_server_metadata(api: Store) -> None:
    created = api.create(kinds.POD, pod("p"), namespace="default")
    meta = created["metadata"]
    assert meta["namespace"] == "default"
    assert meta["creationTimestamp"] == "2023-11-14T22:13:20Z"
    assert len(meta["uid"]) == 36
    assert meta["generation"] == 1
    assert int(meta["resourceVersion"]) == api.resource_version
    assert created["apiVersion"] == "v1"
    assert created["kind"] == "Pod"
    assert created["status"] == {"phase": "Pending", "qosClass": "BestEffort"}


def test_resource_version_is_one_increasing_sequence_over_kinds(api: Store) -> None:
    first = api.create(kinds.POD, pod("p"), namespace="default")
    second = api.create(kinds.NODE, {"metadata": {"name": "n1"}})
    third = api.create(kinds.LH_VOLUME, {"metadata": {"name": "v", "namespace": "default"}, "spec": {}})
    versions = [int(o["metadata"]["resourceVersion"]) for o in (first, second, third)]
    assert versions == sorted(versions)
    assert len(set(versions)) == 3


def test_create_existing_name_is_already_exists(api: Store) -> None:
    api.create(kinds.POD, pod("p"), namespace="default")
    with pytest.raises(store.AlreadyExists) as info:
        api.create(kinds.POD, pod("p"), namespace="default")
    assert info.value.status()["code"] == 409
    assert info.value.status()["reason"] == "AlreadyExists"
    assert info.value.message == 'pods "p" already exists'


def test_generate_name_makes_unique_names(api: Store) -> None:
    names = {
        api.create(kinds.POD, pod("", generateName="job-"), namespace="default")["metadata"]["name"]
        for _ in range(20)
    }
    assert len(names) == 20
    assert all(n.startswith("job-") and len(n) == 9 for n in names)


def test_create_without_name_is_invalid(api: Store) -> None:
    with pytest.raises(store.Invalid) as info:
        api.create(kinds.POD, {"metadata": {}}, namespace="default")
    status = info.value.status()
    assert status["code"] == 422
    assert status["details"]["causes"][0]["field"] == "metadata.name"


def test_create_with_bad_name_or_label_is_invalid(api: Store) -> None:
    with pytest.raises(store.Invalid, match="RFC 1123 subdomain"):
        api.create(kinds.POD, pod("Bad_Name"), namespace="default")
    with pytest.raises(store.Invalid, match=r"metadata\.labels"):
        api.create(kinds.POD, pod("p", labels={"a": "not valid!"}), namespace="default")


def test_create_in_missing_namespace_is_not_found(api: Store) -> None:
    with pytest.raises(store.NotFound, match='namespaces "nope" not found'):
        api.create(kinds.POD, pod("p"), namespace="nope")


def test_create_resets_status_of_custom_resources(api: Store) -> None:
    created = api.create(
        kinds.LH_BACKUP,
        {"metadata": {"name": "b"}, "spec": {}, "status": {"state": "Completed"}},
        namespace="default",
    )
    assert "status" not in created


def test_get_returns_an_independent_copy(api: Store) -> None:
    api.create(kinds.POD, pod("p"), namespace="default")
    copy = api.get(kinds.POD, "p", namespace="default")
    copy["spec"]["containers"].append({"name": "x"})
    assert len(api.get(kinds.POD, "p", namespace="default")["spec"]["containers"]) == 1


def test_get_missing_is_not_found_with_real_status(api: Store) -> None:
    with pytest.raises(store.NotFound) as info:
        api.get(kinds.LH_VOLUME, "v", namespace="default")
    assert info.value.status() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'volumes.longhorn.io "v" not found',
        "reason": "NotFound",
        "details": {"name": "v", "kind": "volumes", "group": "longhorn.io"},
        "code": 404,
    }


def test_update_with_stale_version_conflicts(api: Store) -> None:
    created = api.create(
        kinds.JOB, {"metadata": {"name": "j"}, "spec": {"parallelism": 1}}, namespace="default"
    )
    api.mutate(kinds.JOB, "j", lambda o: o["spec"].update(parallelism=2), namespace="default")
    created["spec"]["parallelism"] = 3
    with pytest.raises(store.Conflict, match="the object has been modified"):
        api.update(kinds.JOB, created)


def test_update_bumps_generation_on_spec_change_only(api: Store) -> None:
    created = api.create(
        kinds.JOB, {"metadata": {"name": "j"}, "spec": {"parallelism": 1}}, namespace="default"
    )
    created["spec"]["parallelism"] = 2
    updated = api.update(kinds.JOB, created)
    assert updated["metadata"]["generation"] == 2
    updated["metadata"]["labels"] = {"a": "b"}
    relabelled = api.update(kinds.JOB, updated)
    assert relabelled["metadata"]["generation"] == 2
    assert int(relabelled["metadata"]["resourceVersion"]) > int(updated["metadata"]["resourceVersion"])


def test_noop_update_keeps_the_version(api: Store) -> None:
    created = api.create(kinds.POD, pod("p"), namespace="default")
    before = api.resource_version
    again = api.update(kinds.POD, created)
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
    assert api.resource_version == before


def test_main_resource_ignores_status_and_status_subresource_ignores_spec(api: Store) -> None:
    created = api.create(kinds.POD, pod("p"), namespace="default")
    created["status"] = {"phase": "Running"}
    assert api.update(kinds.POD, created)["status"]["phase"] == "Pending"
    created["spec"]["nodeName"] = "n1"
    after = api.update(kinds.POD, created, subresource="status")
    assert after["status"]["phase"] == "Running"
    assert "nodeName" not in after["spec"]


def test_server_metadata_survives_an_update(api: Store) -> None:
    created = api.create(kinds.POD, pod("p"), namespace="default")
    created["metadata"]["uid"] = created["metadata"]["uid"]
    created["metadata"]["creationTimestamp"] = "2000-01-01T00:00:00Z"
    created["metadata"]["labels"] = {"x": "y"}
    updated = api.update(kinds.POD, created)
    assert updated["metadata"]["creationTimestamp"] == "2023-11-14T22:13:20Z"


def test_merge_patch_removes_null_and_merges_objects(api: Store) -> None:
    api.create(kinds.POD, pod("p", labels={"a": "1", "b": "2"}), namespace="default")
    patched = api.patch(
        kinds.POD,
        "p",
        {"metadata": {"labels": {"a": None, "c": "3"}}},
        patch_type="merge",
        namespace="default",
    )
    assert patched["metadata"]["labels"] == {"b": "2", "c": "3"}


def test_json_patch_operations(api: Store) -> None:
    api.create(kinds.POD, pod("p", labels={"a": "1"}), namespace="default")
    ops = [
        {"op": "test", "path": "/metadata/labels/a", "value": "1"},
        {"op": "add", "path": "/metadata/labels/b~1c", "value": "2"},
        {"op": "replace", "path": "/spec/containers/0/image", "value": "j"},
        {"op": "remove", "path": "/metadata/labels/a"},
    ]
    patched = api.patch(kinds.POD, "p", ops, patch_type="json", namespace="default")
    assert patched["metadata"]["labels"] == {"b/c": "2"}
    assert patched["spec"]["containers"][0]["image"] == "j"
    with pytest.raises(store.Invalid, match="test failed"):
        api.patch(
            kinds.POD,
            "p",
            [{"op": "test", "path": "/metadata/name", "value": "q"}],
            patch_type="json",
            namespace="default",
        )


def test_patch_with_stale_resource_version_conflicts(api: Store) -> None:
    created = api.create(kinds.POD, pod("p"), namespace="default")
    api.patch(kinds.POD, "p", {"metadata": {"labels": {"a": "1"}}}, patch_type="merge", namespace="default")
    stale = {"metadata": {"resourceVersion": created["metadata"]["resourceVersion"], "labels": {"a": "2"}}}
    with pytest.raises(store.Conflict):
        api.patch(kinds.POD, "p", stale, patch_type="merge", namespace="default")


def test_strategic_patch_is_merge_for_builtins_and_refused_for_custom(api: Store) -> None:
    api.create(kinds.POD, pod("p"), namespace="default")
    patched = api.patch(
        kinds.POD,
        "p",
        {"metadata": {"labels": {"a": "1"}}, "$setElementOrder/x": []},
        patch_type="strategic",
        namespace="default",
    )
    assert patched["metadata"]["labels"] == {"a": "1"}
    assert "$setElementOrder/x" not in patched
    api.create(kinds.LH_VOLUME, {"metadata": {"name": "v"}, "spec": {}}, namespace="default")
    with pytest.raises(store.UnsupportedMediaType):
        api.patch(kinds.LH_VOLUME, "v", {"spec": {}}, patch_type="strategic", namespace="default")


def test_patch_of_status_subresource(api: Store) -> None:
    api.create(kinds.LH_BACKUP, {"metadata": {"name": "b"}, "spec": {}}, namespace="default")
    main = api.patch(
        kinds.LH_BACKUP, "b", {"status": {"state": "Error"}}, patch_type="merge", namespace="default"
    )
    assert "status" not in main
    sub = api.patch(
        kinds.LH_BACKUP,
        "b",
        {"status": {"state": "InProgress"}},
        patch_type="merge",
        namespace="default",
        subresource="status",
    )
    assert sub["status"] == {"state": "InProgress"}


def test_delete_returns_last_state_and_cascades_cronjob_job_pod(api: Store) -> None:
    cron = api.create(kinds.CRONJOB, {"metadata": {"name": "c"}, "spec": {}}, namespace="default")
    job = api.create(
        kinds.JOB,
        {"metadata": {"name": "c-1", "ownerReferences": [owner(cron)]}, "spec": {}},
        namespace="default",
    )
    api.create(kinds.POD, pod("c-1-x", ownerReferences=[owner(job)]), namespace="default")
    deleted: list[tuple[str, str, str]] = []
    api.listen(
        lambda e: (
            deleted.append((e.type, e.kind.kind, e.object["metadata"]["name"]))
            if e.type == "DELETED"
            else None
        )
    )
    last = api.delete(kinds.CRONJOB, "c", namespace="default")
    assert last["metadata"]["name"] == "c"
    assert int(last["metadata"]["resourceVersion"]) > int(cron["metadata"]["resourceVersion"])
    assert deleted == [("DELETED", "CronJob", "c"), ("DELETED", "Job", "c-1"), ("DELETED", "Pod", "c-1-x")]
    assert api.list(kinds.POD, namespace="default")[0] == []


def test_foreground_deletes_dependents_first_and_orphan_keeps_them(api: Store) -> None:
    job = api.create(kinds.JOB, {"metadata": {"name": "j"}, "spec": {}}, namespace="default")
    api.create(kinds.POD, pod("p", ownerReferences=[owner(job)]), namespace="default")
    order: list[str] = []
    api.listen(lambda e: order.append(e.object["metadata"]["name"]) if e.type == "DELETED" else None)
    api.delete(kinds.JOB, "j", namespace="default", propagation="Foreground")
    assert order == ["p", "j"]
    job = api.create(kinds.JOB, {"metadata": {"name": "j"}, "spec": {}}, namespace="default")
    api.create(kinds.POD, pod("p", ownerReferences=[owner(job)]), namespace="default")
    api.delete(kinds.JOB, "j", namespace="default", propagation="Orphan")
    assert "ownerReferences" not in api.get(kinds.POD, "p", namespace="default")["metadata"]


def test_finalizers_hold_deletion_until_removed(api: Store) -> None:
    api.create(
        kinds.LH_VOLUME,
        {"metadata": {"name": "v", "finalizers": ["longhorn.io"]}, "spec": {}},
        namespace="default",
    )
    marked = api.delete(kinds.LH_VOLUME, "v", namespace="default")
    assert marked["metadata"]["deletionTimestamp"]
    assert api.get(kinds.LH_VOLUME, "v", namespace="default")["metadata"]["deletionTimestamp"]
    with pytest.raises(store.Invalid, match="no new finalizers"):
        api.mutate(
            kinds.LH_VOLUME, "v", lambda o: o["metadata"]["finalizers"].append("x"), namespace="default"
        )
    api.mutate(kinds.LH_VOLUME, "v", lambda o: o["metadata"].pop("finalizers"), namespace="default")
    with pytest.raises(store.NotFound):
        api.get(kinds.LH_VOLUME, "v", namespace="default")


def test_deleting_a_namespace_deletes_its_objects(api: Store) -> None:
    api.create(kinds.NAMESPACE, {"metadata": {"name": "ns"}})
    api.create(kinds.POD, pod("p"), namespace="ns")
    api.delete(kinds.NAMESPACE, "ns")
    assert api.list(kinds.POD)[0] == []
    with pytest.raises(store.NotFound):
        api.get(kinds.NAMESPACE, "ns")


def test_list_filters_by_namespace_and_selectors(api: Store) -> None:
    api.create(kinds.NAMESPACE, {"metadata": {"name": "other"}})
    api.create(kinds.POD, pod("a", labels={"app": "x", "tier": "db"}), namespace="default")
    api.create(kinds.POD, pod("b", labels={"app": "y"}), namespace="default")
    api.create(kinds.POD, pod("c", labels={"app": "x"}), namespace="other")
    api.mutate(
        kinds.POD,
        "b",
        lambda o: o["status"].update(phase="Running"),
        namespace="default",
        subresource="status",
    )

    def names(**kw: Any) -> list[str]:
        return [o["metadata"]["name"] for o in api.list(kinds.POD, **kw)[0]]

    assert names() == ["a", "b", "c"]
    assert names(namespace="default") == ["a", "b"]
    assert names(label_selector="app=x") == ["a", "c"]
    assert names(label_selector="app!=x") == ["b"]
    assert names(label_selector="app in (x,y),tier") == ["a"]
    assert names(label_selector="app notin (x)") == ["b"]
    assert names(label_selector="!tier") == ["b", "c"]
    assert names(field_selector="status.phase=Running") == ["b"]
    assert names(field_selector="metadata.namespace!=default") == ["c"]
    with pytest.raises(store.BadRequest, match=r"field label not supported: spec\.foo"):
        names(field_selector="spec.foo=x")


def test_paginated_list_is_consistent_at_the_first_pages_version(api: Store) -> None:
    for i in range(5):
        api.create(kinds.POD, pod(f"p{i}"), namespace="default")
    first = api.list_page(kinds.POD, limit=2)
    assert [o["metadata"]["name"] for o in first.items] == ["p0", "p1"]
    assert first.remaining_item_count == 3
    api.delete(kinds.POD, "p3", namespace="default")
    api.create(kinds.POD, pod("p9"), namespace="default")
    assert first.continue_token is not None
    second = api.list_page(kinds.POD, limit=10, continue_token=first.continue_token)
    assert [o["metadata"]["name"] for o in second.items] == ["p2", "p3", "p4"]
    assert second.resource_version == first.resource_version
    assert second.continue_token is None


def test_continue_token_older_than_history_is_gone() -> None:
    api = Store(history=3)
    api.create(kinds.NAMESPACE, {"metadata": {"name": "default"}})
    for i in range(3):
        api.create(kinds.POD, pod(f"p{i}"), namespace="default")
    token = api.list_page(kinds.POD, limit=1).continue_token
    for i in range(5):
        api.create(kinds.POD, pod(f"q{i}"), namespace="default")
    with pytest.raises(store.Gone):
        api.list_page(kinds.POD, limit=1, continue_token=token)


def test_listener_sees_every_change_in_order_even_when_it_writes(api: Store) -> None:
    seen: list[int] = []

    def react(event: store.WatchEvent) -> None:
        seen.append(event.resource_version)
        if event.kind == kinds.POD and event.type == "ADDED":
            api.create(
                kinds.EVENT,
                {"metadata": {"name": event.object["metadata"]["name"] + ".ev"}},
                namespace="default",
            )

    api.listen(react)
    api.create(kinds.POD, pod("p"), namespace="default")
    api.create(kinds.POD, pod("q"), namespace="default")
    assert seen == sorted(seen)
    assert len(seen) == 4


def test_failing_listener_does_not_stop_others(api: Store) -> None:
    seen: list[str] = []

    def broken(event: store.WatchEvent) -> None:
        raise RuntimeError("boom")

    api.listen(broken)
    unsubscribe = api.listen(lambda e: seen.append(e.type))
    api.create(kinds.POD, pod("p"), namespace="default")
    unsubscribe()
    api.delete(kinds.POD, "p", namespace="default")
    assert seen == ["ADDED"]


def owner(obj: Obj) -> Obj:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        "controller": True,
    }


def test_graceful_pod_deletion_holds_a_bound_pod_until_the_kubelet_confirms() -> None:
    api = Store(clock=lambda: 1_700_000_000.0, graceful_pod_deletion=True)
    api.create(kinds.NAMESPACE, {"metadata": {"name": "default"}})
    bound = pod("bound")
    bound["spec"]["nodeName"] = "n1"
    api.create(kinds.POD, bound, namespace="default")
    api.create(kinds.POD, pod("unbound"), namespace="default")
    held = api.delete(kinds.POD, "bound", namespace="default")
    assert held["metadata"]["deletionTimestamp"] == "2023-11-14T22:13:50Z"
    assert held["metadata"]["deletionGracePeriodSeconds"] == 30
    assert api.get(kinds.POD, "bound", namespace="default")["metadata"]["deletionTimestamp"]
    api.delete(kinds.POD, "unbound", namespace="default")
    with pytest.raises(store.NotFound):
        api.get(kinds.POD, "unbound", namespace="default")
    api.delete(kinds.POD, "bound", namespace="default", grace_period_s=0)
    with pytest.raises(store.NotFound):
        api.get(kinds.POD, "bound", namespace="default")


def test_graceful_pod_deletion_applies_to_cascades() -> None:
    api = Store(graceful_pod_deletion=True)
    api.create(kinds.NAMESPACE, {"metadata": {"name": "default"}})
    job = api.create(kinds.JOB, {"metadata": {"name": "j"}, "spec": {}}, namespace="default")
    bound = pod("j-x", ownerReferences=[owner(job)])
    bound["spec"]["nodeName"] = "n1"
    api.create(kinds.POD, bound, namespace="default")
    api.delete(kinds.JOB, "j", namespace="default")
    assert api.get(kinds.POD, "j-x", namespace="default")["metadata"]["deletionTimestamp"]
