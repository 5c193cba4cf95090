"""Object helpers every lab controller shares: timestamps, keys, owner references, conditions."""

from __future__ import annotations

import calendar
import time
from collections.abc import Mapping
from typing import Any

Obj = dict[str, Any]
Key = tuple[str, str]
"""(namespace or "", name) of an object."""


def rfc3339(epoch_s: float) -> str:
    """An RFC 3339 UTC timestamp with second precision, as the API server serializes metav1.Time."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))


def parse_rfc3339(text: str) -> float:
    """Epoch seconds of an RFC 3339 UTC timestamp ("2024-01-02T03:04:05Z", fraction allowed)."""
    whole, _, fraction = text.rstrip("Z").partition(".")
    seconds = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
    return seconds + (float(f"0.{fraction}") if fraction else 0.0)


def key_of(obj: Mapping[str, Any]) -> Key:
    """The (namespace, name) of an object."""
    meta = obj["metadata"]
    return str(meta.get("namespace") or ""), str(meta["name"])


def uid_of(obj: Mapping[str, Any]) -> str:
    """metadata.uid of an object."""
    return str(obj["metadata"].get("uid", ""))


def labels_of(obj: Mapping[str, Any]) -> dict[str, str]:
    """metadata.labels of an object ({} when absent)."""
    return dict(obj["metadata"].get("labels") or {})


def controller_ref(owner: Mapping[str, Any]) -> Obj:
    """The ownerReference a controller puts on what it creates (metav1.NewControllerRef)."""
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def controller_of(obj: Mapping[str, Any]) -> Obj | None:
    """The ownerReference with controller=true, if any (metav1.GetControllerOf)."""
    for ref in obj["metadata"].get("ownerReferences") or ():
        if ref.get("controller"):
            return dict(ref)
    return None


def object_ref(obj: Mapping[str, Any]) -> Obj:
    """A core/v1 ObjectReference to an object (client-go reference.GetReference)."""
    meta = obj["metadata"]
    ref: Obj = {
        "kind": obj["kind"],
        "apiVersion": obj["apiVersion"],
        "name": meta["name"],
        "uid": meta.get("uid", ""),
        "resourceVersion": meta.get("resourceVersion", ""),
    }
    if meta.get("namespace"):
        ref["namespace"] = meta["namespace"]
    return ref


def condition(conditions: list[Obj] | None, type_: str) -> Obj | None:
    """The condition of one type from a conditions list, if present."""
    for cond in conditions or ():
        if cond.get("type") == type_:
            return cond
    return None


def set_condition(
    conditions: list[Obj],
    *,
    type_: str,
    status: str,
    now: str,
    reason: str | None = None,
    message: str | None = None,
    heartbeat_field: str | None = None,
) -> None:
    """Set one condition in place; lastTransitionTime changes only when the status does.

    `heartbeat_field` ("lastHeartbeatTime" for Nodes, "lastProbeTime" elsewhere) is stamped `now`.
    """
    current = condition(conditions, type_)
    if current is None:
        current = {"type": type_}
        conditions.append(current)
    if current.get("status") != status:
        current["lastTransitionTime"] = now
    current["status"] = status
    if heartbeat_field:
        current[heartbeat_field] = now
    for field, value in (("reason", reason), ("message", message)):
        if value is None:
            current.pop(field, None)
        else:
            current[field] = value


def condition_true(obj: Mapping[str, Any], type_: str) -> bool:
    """True when status.conditions has `type_` with status "True"."""
    cond = condition((obj.get("status") or {}).get("conditions"), type_)
    return cond is not None and cond.get("status") == "True"
