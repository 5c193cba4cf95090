"""Longhorn objects written to the store are pruned, defaulted and validated by the real CRD schemas."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lhsoak.lab import kinds, store
from lhsoak.lab.store import Store

CRDS = Path(__file__).resolve().parents[3] / "shared" / "longhorn" / "crds-v1.12.1.yaml"
pytestmark = pytest.mark.skipif(not CRDS.exists(), reason=f"Longhorn CRDs not found at {CRDS}")


@pytest.fixture(scope="module")
def validator() -> kinds.SchemaValidator:
    return kinds.SchemaValidator.from_crds(kinds.load_crds(CRDS))


@pytest.fixture
def api(validator: kinds.SchemaValidator) -> Store:
    s = Store(validator=validator)
    s.create(kinds.NAMESPACE, {"metadata": {"name": "longhorn-system"}})
    return s


def recurring_job(**spec: Any) -> dict[str, Any]:
    base = {
        "name": "snap",
        "task": "snapshot",
        "cron": "*/2 * * * *",
        "retain": 2,
        "concurrency": 1,
        "groups": [],
    }
    return {"metadata": {"name": "snap", "namespace": "longhorn-system"}, "spec": {**base, **spec}}


def test_every_longhorn_kind_has_its_real_crd() -> None:
    loaded = kinds.load_crds(CRDS)
    assert set(loaded) == set(kinds.LONGHORN)
    for kind, crd in loaded.items():
        assert crd["spec"]["names"]["shortNames"] == list(kind.short_names)
        assert (crd["spec"]["scope"] == "Namespaced") is kind.namespaced


def test_valid_recurring_job_is_stored_with_schema_defaults(api: Store) -> None:
    created = api.create(kinds.LH_RECURRING_JOB, recurring_job())
    assert created["spec"]["retentionPolicy"] == "count-based"


def test_unknown_fields_are_pruned_as_the_real_api_does(api: Store) -> None:
    created = api.create(kinds.LH_RECURRING_JOB, recurring_job(bogus="x"))
    assert "bogus" not in created["spec"]


def test_bad_enum_and_type_are_invalid_with_real_wording(api: Store) -> None:
    with pytest.raises(store.Invalid) as info:
        api.create(kinds.LH_RECURRING_JOB, recurring_job(task="nap", retain="two"))
    status = info.value.status()
    assert status["code"] == 422
    fields = {c["field"] for c in status["details"]["causes"]}
    assert fields == {"spec.task", "spec.retain"}
    assert 'spec.task: Unsupported value: "nap": supported values: "snapshot"' in status["message"]
    assert "spec.retain in body must be of type integer" in status["message"]


def test_immutable_volume_field_cannot_change(api: Store) -> None:
    volume = {"metadata": {"name": "v"}, "spec": {"numberOfReplicas": 1, "encrypted": False}}
    api.create(kinds.LH_VOLUME, volume, namespace="longhorn-system")
    with pytest.raises(store.Invalid, match="Encrypted is immutable"):
        api.patch(
            kinds.LH_VOLUME,
            "v",
            {"spec": {"encrypted": True}},
            patch_type="merge",
            namespace="longhorn-system",
        )


def test_status_is_validated_through_the_status_subresource(api: Store) -> None:
    api.create(kinds.LH_BACKUP, {"metadata": {"name": "b"}, "spec": {}}, namespace="longhorn-system")
    with pytest.raises(store.Invalid, match=r"status\.progress in body must be of type integer"):
        api.patch(
            kinds.LH_BACKUP,
            "b",
            {"status": {"progress": "half"}},
            patch_type="merge",
            namespace="longhorn-system",
            subresource="status",
        )
    ok = api.patch(
        kinds.LH_BACKUP,
        "b",
        {"status": {"state": "Completed", "backupCreatedAt": "2024-01-01T00:00:00Z"}},
        patch_type="merge",
        namespace="longhorn-system",
        subresource="status",
    )
    assert ok["status"]["state"] == "Completed"


def test_stored_objects_pass_the_crd_schema_as_json_schema(api: Store) -> None:
    jsonschema = pytest.importorskip("jsonschema")
    created = api.create(kinds.LH_RECURRING_JOB, recurring_job(bogus="x"))
    schema = kinds.openapi_schema(kinds.load_crds(CRDS)[kinds.LH_RECURRING_JOB], "v1beta2")
    jsonschema.validate(created, schema)


def test_minimal_crd_accepts_anything() -> None:
    validator = kinds.SchemaValidator.from_crds({kinds.LH_VOLUME: kinds.minimal_crd(kinds.LH_VOLUME)})
    checked = validator.check(kinds.LH_VOLUME, {"metadata": {"name": "v"}, "spec": {"x": 1}})
    assert checked.errors == []
    assert checked.obj["spec"] == {"x": 1}
