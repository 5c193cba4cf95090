"""The resource kinds the lab serves, and the CustomResourceDefinitions it serves for longhorn.io.

One registry (`ALL`) drives the store, URL resolution, discovery and the CRD list, so a kind added
here is served everywhere at once.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

# Every kind accepts these two field selectors; the real API adds a few per kind (see FIELDS_*).
COMMON_FIELDS = ("metadata.name", "metadata.namespace")
ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
"""What clients may do with a kind the lab serves fully, as discovery lists it."""
READ_VERBS = ("get", "list", "watch")
"""Verbs of a kind only the lab's own controllers write (clients get 405 MethodNotAllowed)."""


@dataclass(frozen=True)
class Kind:
    """One served resource: where it lives in the API and how it behaves."""

    group: str
    """API group; "" for the core group."""
    version: str
    """API version within the group, e.g. "v1" or "v1beta2"."""
    kind: str
    """Kind as written in objects, e.g. "Pod"."""
    plural: str
    """Resource name in URLs, e.g. "pods"."""
    namespaced: bool
    """True when objects live in a namespace."""
    short_names: tuple[str, ...] = ()
    """Short names kubectl resolves, e.g. ("lhrj",)."""
    has_status: bool = True
    """True when the kind serves the /status subresource (the main resource then ignores .status)."""
    field_selectors: tuple[str, ...] = COMMON_FIELDS
    """Field selector labels the real API accepts for this kind (others are 400 BadRequest)."""
    categories: tuple[str, ...] = ()
    """Discovery categories, e.g. ("all",) so `kubectl get all` includes the kind."""
    has_generation: bool = True
    """True when the real API sets metadata.generation (not for namespaces, nodes, events)."""
    verbs: tuple[str, ...] = ALL_VERBS
    """Verbs clients may use, as discovery lists them (READ_VERBS: written by the lab only)."""

    @property
    def api_version(self) -> str:
        """ "v1" for the core group, "group/version" otherwise."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def singular(self) -> str:
        """Lower-case singular name, as discovery reports it."""
        return self.kind.lower()

    @property
    def list_kind(self) -> str:
        """Kind of a list of these objects, e.g. "PodList"."""
        return f"{self.kind}List"

    @property
    def qualified_resource(self) -> str:
        """Resource as the real API names it in messages: "pods", "volumes.longhorn.io"."""
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def is_custom(self) -> bool:
        """True for kinds defined by a CustomResourceDefinition (no strategic merge patch)."""
        return self.group == LONGHORN_GROUP

    def __str__(self) -> str:
        return self.qualified_resource


LONGHORN_GROUP = "longhorn.io"
LONGHORN_VERSION = "v1beta2"

_POD_FIELDS = (
    *COMMON_FIELDS,
    "spec.nodeName",
    "spec.restartPolicy",
    "spec.schedulerName",
    "spec.serviceAccountName",
    "status.phase",
    "status.podIP",
    "status.nominatedNodeName",
)
_EVENT_FIELDS = (
    *COMMON_FIELDS,
    "involvedObject.kind",
    "involvedObject.namespace",
    "involvedObject.name",
    "involvedObject.uid",
    "involvedObject.apiVersion",
    "involvedObject.resourceVersion",
    "involvedObject.fieldPath",
    "reason",
    "reportingComponent",
    "source",
    "type",
)

NAMESPACE = Kind(
    "",
    "v1",
    "Namespace",
    "namespaces",
    False,
    ("ns",),
    field_selectors=(*COMMON_FIELDS, "status.phase"),
    has_generation=False,
)
NODE = Kind(
    "",
    "v1",
    "Node",
    "nodes",
    False,
    ("no",),
    field_selectors=(*COMMON_FIELDS, "spec.unschedulable"),
    has_generation=False,
)
POD = Kind("", "v1", "Pod", "pods", True, ("po",), field_selectors=_POD_FIELDS, categories=("all",))
EVENT = Kind(
    "",
    "v1",
    "Event",
    "events",
    True,
    ("ev",),
    has_status=False,
    field_selectors=_EVENT_FIELDS,
    has_generation=False,
)
JOB = Kind(
    "batch",
    "v1",
    "Job",
    "jobs",
    True,
    field_selectors=(*COMMON_FIELDS, "status.successful"),
    categories=("all",),
)
CRONJOB = Kind("batch", "v1", "CronJob", "cronjobs", True, ("cj",), categories=("all",))
# Read-only: the lab's DaemonSet controller keeps the one it plays (longhorn-manager's) in step with
# its pods; a DaemonSet a client created or changed would have nothing behind it.
DAEMONSET = Kind(
    "apps", "v1", "DaemonSet", "daemonsets", True, ("ds",), categories=("all",), verbs=READ_VERBS
)
# Read-only as well: the lab's Deployment controller plays the Deployments its Longhorn install makes
# (CSI sidecars, driver deployer, UI) and the ReplicaSet behind each, as the DaemonSet above.
DEPLOYMENT = Kind(
    "apps", "v1", "Deployment", "deployments", True, ("deploy",), categories=("all",), verbs=READ_VERBS
)
REPLICASET = Kind(
    "apps", "v1", "ReplicaSet", "replicasets", True, ("rs",), categories=("all",), verbs=READ_VERBS
)
# Neither claims, volumes nor classes get metadata.generation from their registry strategies.
PVC = Kind("", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", True, ("pvc",), has_generation=False)
PV = Kind("", "v1", "PersistentVolume", "persistentvolumes", False, ("pv",), has_generation=False)
STORAGE_CLASS = Kind(
    "storage.k8s.io",
    "v1",
    "StorageClass",
    "storageclasses",
    False,
    ("sc",),
    has_status=False,
    has_generation=False,
)


def _longhorn(kind: str, plural: str, short_name: str, *, namespaced: bool = True) -> Kind:
    return Kind(
        LONGHORN_GROUP, LONGHORN_VERSION, kind, plural, namespaced, (short_name,), categories=("longhorn",)
    )


LH_VOLUME = _longhorn("Volume", "volumes", "lhv")
LH_RECURRING_JOB = _longhorn("RecurringJob", "recurringjobs", "lhrj")
LH_SNAPSHOT = _longhorn("Snapshot", "snapshots", "lhsnap")
LH_BACKUP = _longhorn("Backup", "backups", "lhb")
LH_BACKUP_TARGET = _longhorn("BackupTarget", "backuptargets", "lhbt")
LH_BACKUP_VOLUME = _longhorn("BackupVolume", "backupvolumes", "lhbv")
LH_SETTING = _longhorn("Setting", "settings", "lhs")
LH_NODE = _longhorn("Node", "nodes", "lhn")
CRD = Kind(
    "apiextensions.k8s.io",
    "v1",
    "CustomResourceDefinition",
    "customresourcedefinitions",
    False,
    ("crd", "crds"),
)

ALL: tuple[Kind, ...] = (
    NAMESPACE,
    NODE,
    POD,
    EVENT,
    JOB,
    CRONJOB,
    DAEMONSET,
    DEPLOYMENT,
    REPLICASET,
    PVC,
    PV,
    STORAGE_CLASS,
    LH_VOLUME,
    LH_RECURRING_JOB,
    LH_SNAPSHOT,
    LH_BACKUP,
    LH_BACKUP_TARGET,
    LH_BACKUP_VOLUME,
    LH_SETTING,
    LH_NODE,
    CRD,
)
LONGHORN: tuple[Kind, ...] = tuple(k for k in ALL if k.group == LONGHORN_GROUP)

_BY_PLURAL = {(k.group, k.plural): k for k in ALL}
_BY_KIND = {(k.api_version, k.kind): k for k in ALL}


def by_plural(group: str, plural: str) -> Kind:
    """The kind served at /apis/{group}/.../{plural} ("" group for /api/v1); KeyError if unknown."""
    return _BY_PLURAL[(group, plural)]


def by_kind(api_version: str, kind: str) -> Kind:
    """The kind of an object with this apiVersion and kind; KeyError if unknown."""
    return _BY_KIND[(api_version, kind)]


def group_versions() -> dict[str, list[str]]:
    """Every served group (core as "") with its versions, in registry order."""
    out: dict[str, list[str]] = {}
    for k in ALL:
        versions = out.setdefault(k.group, [])
        if k.version not in versions:
            versions.append(k.version)
    return out


def kinds_in(group: str, version: str) -> tuple[Kind, ...]:
    """The kinds served under one group/version."""
    return tuple(k for k in ALL if k.group == group and k.version == version)


# --- CustomResourceDefinitions ------------------------------------------------------------------


def minimal_crd(kind: Kind) -> dict[str, Any]:
    """A CRD for `kind` when the real ones are not available: any object shape is accepted."""
    return {
        "apiVersion": CRD.api_version,
        "kind": CRD.kind,
        "metadata": {"name": f"{kind.plural}.{kind.group}"},
        "spec": {
            "group": kind.group,
            "names": {
                "kind": kind.kind,
                "listKind": kind.list_kind,
                "plural": kind.plural,
                "singular": kind.singular,
                "shortNames": list(kind.short_names),
                "categories": list(kind.categories),
            },
            "scope": "Namespaced" if kind.namespaced else "Cluster",
            "versions": [
                {
                    "name": kind.version,
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                    "subresources": {"status": {}} if kind.has_status else {},
                }
            ],
        },
    }


def load_crds(path: Path) -> dict[Kind, dict[str, Any]]:
    """The CRDs in a multi-document YAML file (e.g. Longhorn's), keyed by the kind each defines.

    CRDs for kinds the lab does not serve are left out; a file without any CRD is a ValueError.
    """
    docs = [d for d in yaml.safe_load_all(path.read_text()) if isinstance(d, dict)]
    crds = [d for d in docs if d.get("kind") == CRD.kind]
    if not crds:
        raise ValueError(f"{path}: no CustomResourceDefinition in the file")
    out: dict[Kind, dict[str, Any]] = {}
    for crd in crds:
        spec = crd["spec"]
        for version in spec["versions"]:
            key = (f"{spec['group']}/{version['name']}", spec["names"]["kind"])
            if key in _BY_KIND and version.get("served", True):
                out[_BY_KIND[key]] = crd
    return out


def crds_for(kinds: Iterable[Kind], loaded: Mapping[Kind, dict[str, Any]]) -> list[dict[str, Any]]:
    """One CRD per custom kind: the loaded one when there is one, else a minimal one."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    for kind in kinds:
        crd = loaded.get(kind) or minimal_crd(kind)
        if crd["metadata"]["name"] not in seen:
            seen.add(crd["metadata"]["name"])
            out.append(crd)
    return out


def crd_version(crd: Mapping[str, Any], version: str) -> dict[str, Any]:
    """The `spec.versions[]` entry of a CRD for one version; KeyError if absent."""
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version:
            return dict(entry)
    raise KeyError(f"{crd['metadata']['name']} has no version {version}")


def openapi_schema(crd: Mapping[str, Any], version: str) -> dict[str, Any]:
    """The openAPIV3Schema of one version of a CRD ({} when it has none)."""
    schema = crd_version(crd, version).get("schema", {}).get("openAPIV3Schema", {})
    return dict(schema)


# --- structural schemas (openAPIV3Schema of a CRD) -----------------------------------------------

_TYPE_NAMES = {"object": dict, "array": list, "string": str, "boolean": bool}


@dataclass(frozen=True)
class SchemaCheck:
    """What a CRD schema makes of an object: the pruned object, errors, and the pruned fields."""

    obj: dict[str, Any]
    """The object with unknown fields and non-nullable nulls removed, defaults applied."""
    errors: list[str]
    """Invalid messages, "field: message" as the real API words them."""
    unknown_fields: list[str]
    """Paths of fields the schema does not know (pruned), e.g. "spec.foo"."""


class SchemaValidator:
    """Prunes, defaults and validates custom resources against their CRD's openAPIV3Schema.

    Does what the real API server does with a structural schema: unknown fields are dropped
    (unless x-kubernetes-preserve-unknown-fields), nulls dropped unless nullable, defaults applied,
    then type, enum, minimum/maximum, length, pattern and required checked. Of the CEL rules
    (x-kubernetes-validations) it knows the ones Longhorn's CRDs use: `self == oldSelf`
    (immutable) and `!self.startsWith('-')`; others are not evaluated.
    """

    def __init__(self, schemas: Mapping[Kind, Mapping[str, Any]]) -> None:
        self._schemas = dict(schemas)

    @classmethod
    def from_crds(cls, crds: Mapping[Kind, Mapping[str, Any]]) -> SchemaValidator:
        """A validator for every kind whose CRD carries an openAPIV3Schema."""
        return cls({kind: openapi_schema(crd, kind.version) for kind, crd in crds.items()})

    def knows(self, kind: Kind) -> bool:
        """True when `kind` has a schema here."""
        return kind in self._schemas

    def check(self, kind: Kind, obj: Mapping[str, Any], old: Mapping[str, Any] | None = None) -> SchemaCheck:
        """Prune, default and validate `obj` (not changed); `old` is the stored version on update."""
        schema = self._schemas.get(kind)
        if schema is None:
            return SchemaCheck(dict(obj), [], [])
        walk = _SchemaWalk()
        out = {}
        properties = schema.get("properties", {})
        for key, value in obj.items():
            if key in ("apiVersion", "kind", "metadata"):
                out[key] = value
            elif key in properties:
                pruned = walk.value(properties[key], value, key, (old or {}).get(key, _ABSENT))
                if pruned is not _ABSENT:
                    out[key] = pruned
            elif schema.get("x-kubernetes-preserve-unknown-fields"):
                out[key] = value
            else:
                walk.unknown.append(key)
        return SchemaCheck(out, walk.errors, walk.unknown)

    def __call__(
        self, kind: Kind, obj: dict[str, Any], old: dict[str, Any] | None
    ) -> tuple[dict[str, Any], list[str]]:
        """The store's validator hook: (pruned object, Invalid messages)."""
        result = self.check(kind, obj, old)
        return result.obj, result.errors


_ABSENT: Any = object()


class _SchemaWalk:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.unknown: list[str] = []

    def value(self, schema: Mapping[str, Any], value: Any, path: str, old: Any) -> Any:
        if value is None:
            if schema.get("nullable"):
                return None
            return _ABSENT
        value = self._shape(schema, value, path, old)
        if self._type_ok(schema, value, path):
            self._constraints(schema, value, path)
            self._rules(schema, value, path, old)
        return value

    def _shape(self, schema: Mapping[str, Any], value: Any, path: str, old: Any) -> Any:
        if isinstance(value, dict) and schema.get("type") == "object":
            return self._object(schema, value, path, old)
        if isinstance(value, list) and schema.get("type") == "array" and "items" in schema:
            return [
                self.value(schema["items"], item, f"{path}[{i}]", _ABSENT) for i, item in enumerate(value)
            ]
        return value

    def _object(
        self, schema: Mapping[str, Any], value: dict[str, Any], path: str, old: Any
    ) -> dict[str, Any]:
        old_map = old if isinstance(old, dict) else {}
        properties = schema.get("properties")
        extra = schema.get("additionalProperties")
        out: dict[str, Any] = {}
        for key, item in value.items():
            child_path = f"{path}.{key}"
            if properties is not None and key in properties:
                child = self.value(properties[key], item, child_path, old_map.get(key, _ABSENT))
            elif isinstance(extra, dict):
                child = self.value(extra, item, child_path, old_map.get(key, _ABSENT))
            elif schema.get("x-kubernetes-preserve-unknown-fields") or extra is True:
                child = item
            else:
                self.unknown.append(child_path)
                continue
            if child is not _ABSENT:
                out[key] = child
        for key, sub in (properties or {}).items():
            if key not in out and "default" in sub:
                out[key] = sub["default"]
        for key in schema.get("required", ()):
            if key not in out:
                self.errors.append(f"{path}.{key}: Required value")
        return out

    def _type_ok(self, schema: Mapping[str, Any], value: Any, path: str) -> bool:
        expected = schema.get("type")
        if schema.get("x-kubernetes-int-or-string"):
            ok = isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))
            expected = "integer or string"
        elif expected is None:
            return True
        elif expected == "integer":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif expected == "number":
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        else:
            ok = isinstance(value, _TYPE_NAMES.get(expected, object))
        if not ok:
            self.errors.append(
                f"{path}: Invalid value: {_json_type(value)}: {path} in body must be of type {expected}: "
                f"{_json_type(value)}"
            )
        return ok

    def _constraints(self, schema: Mapping[str, Any], value: Any, path: str) -> None:
        if "enum" in schema and value not in schema["enum"]:
            allowed = ", ".join(_quote(v) for v in schema["enum"])
            self.errors.append(f"{path}: Unsupported value: {_quote(value)}: supported values: {allowed}")
        if isinstance(value, int | float) and not isinstance(value, bool):
            if "minimum" in schema and value < schema["minimum"]:
                self.errors.append(
                    f"{path}: Invalid value: {value}: {path} in body should be greater than or equal to "
                    f"{schema['minimum']}"
                )
            if "maximum" in schema and value > schema["maximum"]:
                self.errors.append(
                    f"{path}: Invalid value: {value}: {path} in body should be less than or equal to "
                    f"{schema['maximum']}"
                )
        if isinstance(value, str):
            if "maxLength" in schema and len(value) > schema["maxLength"]:
                self.errors.append(f"{path}: Too long: may not be more than {schema['maxLength']} bytes")
            if "minLength" in schema and len(value) < schema["minLength"]:
                self.errors.append(
                    f"{path}: Invalid value: {_quote(value)}: {path} in body should be at least "
                    f"{schema['minLength']} chars long"
                )
            if "pattern" in schema and not re.search(schema["pattern"], value):
                self.errors.append(
                    f"{path}: Invalid value: {_quote(value)}: {path} in body should match '{schema['pattern']}'"
                )

    def _rules(self, schema: Mapping[str, Any], value: Any, path: str, old: Any) -> None:
        for rule in schema.get("x-kubernetes-validations", ()):
            text = rule.get("rule", "")
            message = rule.get("message") or f"failed rule: {text}"
            if text == "self == oldSelf":
                # a transition rule: only checked when the field existed before
                if old is not _ABSENT and old != value:
                    self.errors.append(f"{path}: Invalid value: {_json_type(value)}: {message}")
            elif text == "!self.startsWith('-')" and isinstance(value, str) and value.startswith("-"):
                self.errors.append(f"{path}: Invalid value: {_json_type(value)}: {message}")


def _quote(value: Any) -> str:
    return json.dumps(value)


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return '"boolean"'
    if isinstance(value, int):
        return '"integer"'
    if isinstance(value, float):
        return '"number"'
    if isinstance(value, str):
        return '"string"'
    if isinstance(value, list):
        return '"array"'
    if isinstance(value, dict):
        return '"object"'
    return '"null"'
