"""The hand-made objects are ones a real cluster would serve.

Longhorn objects are validated against the openAPIV3Schema of the Longhorn v1.12.1 CRDs, made
strict: the API server prunes unknown fields, so a field the schema does not know could never
be in a real object and fails here. Kubernetes objects are round-tripped through the official
client's models, which drop every field the API does not define.
"""

import json
from pathlib import Path
from types import SimpleNamespace

import jsonschema
import pytest
import yaml
from kubernetes.client import ApiClient

CRDS = Path(__file__).resolve().parents[3] / "shared" / "longhorn" / "crds-v1.12.1.yaml"
LONGHORN_KINDS = ("Backup", "BackupTarget", "RecurringJob", "Snapshot", "Volume")
MODEL_OF_KIND = {
    "CronJob": "V1CronJob",
    "Job": "V1Job",
    "Pod": "V1Pod",
    "Event": "CoreV1Event",
    "Node": "V1Node",
}


def _strict(schema):
    """The CRD schema as the API server applies it: nullable allowed, unknown fields refused."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    strict = {key: _strict(value) for key, value in schema.items()}
    if strict.pop("nullable", False) and "type" in strict:
        strict["type"] = [strict["type"], "null"]
    if "properties" in strict and "additionalProperties" not in strict:
        strict["additionalProperties"] = False
    return strict


@pytest.fixture(scope="module")
def validators():
    if not CRDS.exists():
        pytest.skip(f"Longhorn CRDs not found at {CRDS} (shared reference data is outside the repo)")
    validators = {}
    for crd in yaml.safe_load_all(CRDS.read_text()):
        if not crd or crd.get("kind") != "CustomResourceDefinition":
            continue
        kind = crd["spec"]["names"]["kind"]
        version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1beta2")
        validators[kind] = jsonschema.Draft7Validator(_strict(version["schema"]["openAPIV3Schema"]))
    assert set(LONGHORN_KINDS) <= set(validators)
    return validators


def every_object(make):
    """The healthy world plus every broken variant the rule tests build."""
    world = make.healthy_world()
    objects = world.all()
    job = make.job("soak-bak", scheduled=make.clock("11:30"))
    failed = make.job("soak-bak", scheduled=make.clock("11:35"), outcome="failed", failed=1)
    cronjob = make.cronjob(
        "soak-bak", schedule="*/5 * * * *", last_scheduled=make.clock("11:30"), active=[job]
    )
    objects += [
        cronjob,
        make.cronjob("soak-snap", schedule="*/2 * * * *", last_scheduled=None, suspend=True),
        job,
        failed,
        make.pod(
            job, phase="Pending", node="node-2", created=make.clock("11:30"), waiting="ContainerCreating"
        ),
        make.pod(
            job,
            phase="Pending",
            node=None,
            created=make.clock("11:30"),
            unschedulable="0/3 nodes are available",
        ),
        make.pod(
            job,
            phase="Running",
            node="node-1",
            created=make.clock("11:30"),
            restarts=2,
            last_exit=(1, "Error", "x"),
        ),
        make.event(
            cronjob,
            reason="JobAlreadyActive",
            message="Not starting job because prior execution is running and concurrency policy is Forbid",
            count=6,
            first=make.clock("11:35"),
            last=make.clock("12:00"),
        ),
        make.node("node-3", ready="Unknown", since=make.clock("11:45"), unreachable=True),
        make.backup("soak-bak", "soak-vol-1", created=make.clock("11:35"), state="InProgress", progress=37),
        make.backup(
            "soak-bak", "soak-vol-1", created=make.clock("11:20"), state="", synced=make.clock("11:21")
        ),
        make.backup(
            "soak-bak", "soak-vol-1", created=make.clock("11:05"), state="Error", error="failed lock"
        ),
        make.snapshot("soak-bak", "soak-vol-1", created=make.clock("11:35"), ready=False),
        make.volume(
            "soak-vol-2",
            labels=make.VOLUME_LABELS["soak-vol-2"],
            state="detached",
            robustness="faulted",
            degraded=make.clock("11:41"),
            conditions=[
                {"type": "Scheduled", "status": "False", "reason": "ReplicaSchedulingFailure", "message": "m"}
            ],
        ),
        make.backup_target(available=False, reason="Unavailable", message="dial tcp: i/o timeout"),
    ]
    return objects


def _z(value):
    """The client writes datetimes back as +00:00; the API server writes Z."""
    if isinstance(value, dict):
        return {key: _z(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_z(item) for item in value]
    if isinstance(value, str) and value.endswith("+00:00"):
        return value.removesuffix("+00:00") + "Z"
    return value


def test_longhorn_fixtures_validate_against_the_crds(make, validators):
    longhorn = [obj for obj in every_object(make) if obj["apiVersion"] == "longhorn.io/v1beta2"]

    assert {obj["kind"] for obj in longhorn} == set(LONGHORN_KINDS)
    for obj in longhorn:
        errors = [error.message for error in validators[obj["kind"]].iter_errors(obj)]
        assert errors == [], f"{obj['kind']} {obj['metadata']['name']}: {errors}"


def test_the_strict_schema_catches_a_misspelt_field(make, validators):
    backup = make.backup("soak-bak", "soak-vol-1", created=make.clock("11:35"))
    backup["status"]["lastSyncAt"] = backup["status"].pop("lastSyncedAt")

    assert not validators["Backup"].is_valid(backup)


def test_kubernetes_fixtures_round_trip_through_the_official_models(make):
    api = ApiClient()
    kubernetes = [obj for obj in every_object(make) if obj["apiVersion"] in ("v1", "batch/v1")]

    assert {obj["kind"] for obj in kubernetes} == set(MODEL_OF_KIND)
    for obj in kubernetes:
        response = SimpleNamespace(data=json.dumps(obj))
        model = api.deserialize(response, MODEL_OF_KIND[obj["kind"]])
        assert _z(api.sanitize_for_serialization(model)) == obj, obj["metadata"]["name"]
