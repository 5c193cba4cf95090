"""The lab's object store: Kubernetes API semantics over plain JSON dicts, in one asyncio loop.

Not thread-safe: only the lab's event loop touches it (the HTTP handlers and the controllers).
What a client can rely on, as with the real API server: one monotonically increasing
resourceVersion for every change of every kind; uid, creationTimestamp and generation; optimistic
concurrency; status written only through the status subresource; finalizers and deletionTimestamp;
ownerReference cascades; selectors; consistent paginated lists; watches that replay from a
resourceVersion or fail with 410 Gone once it is older than the retained history.

Stored objects are never changed in place: every write stores a new dict (copy-on-write), so a
reference to a stored object is a snapshot of that version.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import builtins
import collections
import json
import logging
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from lhsoak.lab import kinds, selectors
from lhsoak.lab.kinds import Kind

log = logging.getLogger(__name__)

Obj = dict[str, Any]
EventType = Literal["ADDED", "MODIFIED", "DELETED"]
PatchType = Literal["merge", "json", "strategic"]
Propagation = Literal["Background", "Foreground", "Orphan"]
Subresource = Literal["status"]
Validator = Callable[[Kind, Obj, Obj | None], tuple[Obj, list[str]]]

# apimachinery's names.SimpleNameGenerator: 5 characters from an alphabet without vowels and
# look-alike characters, appended to a generateName truncated to 58 characters.
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_GENERATED_SUFFIX = 5
_MAX_NAME = 253
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_QUALIFIED_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
# metadata the server owns: a client's values are replaced by the stored ones on update.
_SERVER_METADATA = ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds")
# The CronJob controller appends an 11-character suffix to Job names, which must stay <= 63.
_MAX_CRONJOB_NAME = 52
# v1.PodSpec terminationGracePeriodSeconds default.
DEFAULT_POD_GRACE_S = 30


# --- errors ----------------------------------------------------------------------------------------


class ApiError(Exception):
    """A failed API call, carrying the Kubernetes Status the real API server would return."""

    code: int = 500
    reason: str = "InternalError"

    def __init__(
        self,
        message: str,
        *,
        details: Mapping[str, Any] | None = None,
        code: int | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details: dict[str, Any] = dict(details or {})
        if code is not None:
            self.code = code
        if reason is not None:
            self.reason = reason

    def status(self) -> Obj:
        """The `Status` object, as the real API server writes it in an error response."""
        body: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details:
            body["details"] = self.details
        return body


class NotFound(ApiError):
    """404: the object (or its namespace) does not exist."""

    code = 404
    reason = "NotFound"


class AlreadyExists(ApiError):
    """409: create of a name that exists."""

    code = 409
    reason = "AlreadyExists"


class Conflict(ApiError):
    """409: update with a stale resourceVersion (or another failed precondition)."""

    code = 409
    reason = "Conflict"


class Invalid(ApiError):
    """422: the object fails validation; `details.causes` lists the fields."""

    code = 422
    reason = "Invalid"


class Gone(ApiError):
    """410: the resourceVersion (or continue token) is older than the retained history."""

    code = 410
    reason = "Expired"


class BadRequest(ApiError):
    """400: a malformed request (bad selector, bad patch, mismatched namespace)."""

    code = 400
    reason = "BadRequest"


class Forbidden(ApiError):
    """403: refused by policy (e.g. creating in a namespace that is being deleted)."""

    code = 403
    reason = "Forbidden"


class UnsupportedMediaType(ApiError):
    """415: e.g. a strategic merge patch of a custom resource."""

    code = 415
    reason = "UnsupportedMediaType"


def _details(kind: Kind, name: str) -> Obj:
    details: Obj = {"name": name, "kind": kind.plural}
    if kind.group:
        details["group"] = kind.group
    return details


def not_found(kind: Kind, name: str) -> NotFound:
    """The real API's NotFound for one object."""
    return NotFound(f'{kind.qualified_resource} "{name}" not found', details=_details(kind, name))


def already_exists(kind: Kind, name: str) -> AlreadyExists:
    """The real API's AlreadyExists for one object."""
    return AlreadyExists(f'{kind.qualified_resource} "{name}" already exists', details=_details(kind, name))


def conflict(kind: Kind, name: str, why: str) -> Conflict:
    """The real API's Conflict ("Operation cannot be fulfilled on ...")."""
    return Conflict(
        f'Operation cannot be fulfilled on {kind.qualified_resource} "{name}": {why}',
        details=_details(kind, name),
    )


@dataclass(frozen=True)
class Cause:
    """One field of an Invalid error."""

    field: str
    message: str
    reason: str = "FieldValueInvalid"


def invalid(kind: Kind, name: str, causes: Iterable[Cause]) -> Invalid:
    """The real API's Invalid: `Kind "name" is invalid: field: message[, ...]`."""
    causes = list(causes)
    texts = [f"{c.field}: {c.message}" if c.field else c.message for c in causes]
    summary = texts[0] if len(texts) == 1 else "[" + ", ".join(texts) + "]"
    details: Obj = {
        "name": name,
        "kind": kind.kind,
        "causes": [{"reason": c.reason, "message": c.message, "field": c.field} for c in causes],
    }
    if kind.group:
        details["group"] = kind.group
    return Invalid(f'{kind.kind} "{name}" is invalid: {summary}', details=details)


def gone(resource_version: int, oldest: int) -> Gone:
    """The real API's 410 for a watch from a compacted resourceVersion."""
    return Gone(f"too old resource version: {resource_version} ({oldest})")


# --- events ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WatchEvent:
    """One change as a watcher or listener sees it."""

    type: EventType
    kind: Kind
    object: Obj
    """The object after the change; DELETED carries the last state with the deletion's version."""
    resource_version: int


@dataclass(frozen=True)
class _Change:
    resource_version: int
    kind: Kind
    type: EventType
    obj: Obj
    """Stored (never mutated) state after the change; for DELETED the last state."""
    old: Obj | None
    """Stored state before the change (None for ADDED)."""

    @property
    def key(self) -> tuple[str, str]:
        return _key_of(self.obj)


@dataclass(frozen=True)
class ListPage:
    """One page of a list: items (copies), the list's resourceVersion and the continue token."""

    items: list[Obj]
    resource_version: int
    continue_token: str | None = None
    remaining_item_count: int | None = None


class WatchStream:
    """Events of one kind for one watcher: an async iterator, in resourceVersion order.

    Ends (StopAsyncIteration) when closed: by `close()`, by `Store.end_watches()` (an API outage),
    or when the watcher falls more than `max_pending` events behind (the real API server also drops
    watchers that cannot keep up; the client resumes from its last resourceVersion).
    """

    def __init__(
        self,
        store: Store,
        *,
        kind: Kind,
        namespace: str | None,
        labels: selectors.LabelSelector,
        fields: selectors.FieldSelector,
        copy_objects: bool,
        max_pending: int,
    ) -> None:
        self.kind = kind
        self.namespace = namespace
        self._store = store
        self._labels = labels
        self._fields = fields
        self._copy = copy_objects
        self._max_pending = max_pending
        self._buffer: collections.deque[WatchEvent] = collections.deque()
        self._wakeup = asyncio.Event()
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once the stream has ended (no more events will arrive)."""
        return self._closed

    def close(self) -> None:
        """End the stream; buffered events are dropped, as on a cut connection."""
        if self._closed:
            return
        self._closed = True
        self._buffer.clear()
        self._store._forget(self)
        self._wakeup.set()

    def __aiter__(self) -> WatchStream:
        return self

    async def __anext__(self) -> WatchEvent:
        event = await self.next_event()
        if event is None:
            raise StopAsyncIteration
        return event

    async def next_event(self, *, timeout_s: float | None = None) -> WatchEvent | None:
        """The next event; None when `timeout_s` passed with none, or when the stream is closed."""
        while not self._buffer:
            if self._closed:
                return None
            self._wakeup.clear()
            if timeout_s is None:
                await self._wakeup.wait()
                continue
            try:
                async with asyncio.timeout(timeout_s):
                    await self._wakeup.wait()
            except TimeoutError:
                return None
        return self._buffer.popleft()

    def drain_nowait(self) -> list[WatchEvent]:
        """Every event already buffered, without waiting."""
        events = list(self._buffer)
        self._buffer.clear()
        return events

    def bookmark_version(self) -> int:
        """The newest resourceVersion a BOOKMARK to this watcher may carry now.

        The store's own version, unless events are still buffered: then just below the oldest of
        them. A client resumes from the last version it saw, so a bookmark that ran ahead of an
        undelivered event would lose that event when the connection drops before it is sent.
        """
        if self._buffer:
            return self._buffer[0].resource_version - 1
        return self._store.resource_version

    def _push(self, event: WatchEvent) -> None:
        if self._closed:
            return
        if len(self._buffer) >= self._max_pending:
            log.warning("watch of %s fell %d events behind: closing it", self.kind, self._max_pending)
            self.close()
            return
        self._buffer.append(event)
        self._wakeup.set()

    def _offer(self, change: _Change) -> None:
        if self.namespace is not None and _namespace_of(change.obj) != self.namespace:
            return
        event = self._convert(change)
        if event is not None:
            self._push(event)

    def _matches(self, obj: Obj) -> bool:
        return self._labels.matches(obj["metadata"].get("labels")) and self._fields.matches(obj)

    def _convert(self, change: _Change) -> WatchEvent | None:
        # As the real watch cache: an object that starts matching the selectors arrives as ADDED,
        # one that stops matching as DELETED carrying its previous state at the new version.
        now = self._matches(change.obj)
        if change.type != "MODIFIED" or change.old is None:
            return self._event(change.type, change.obj, change.resource_version) if now else None
        before = self._matches(change.old)
        if now:
            return self._event("MODIFIED" if before else "ADDED", change.obj, change.resource_version)
        if before:
            return self._event(
                "DELETED", _with_version(change.old, change.resource_version), change.resource_version
            )
        return None

    def _event(self, type_: EventType, obj: Obj, resource_version: int) -> WatchEvent:
        return WatchEvent(type_, self.kind, _clone(obj) if self._copy else obj, resource_version)


# --- the store -------------------------------------------------------------------------------------


class Store:
    """Objects of every kind, one resourceVersion sequence, watchers and listeners."""

    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        history: int = 20000,
        require_namespace: bool = True,
        validator: Validator | None = None,
        max_watch_pending: int = 10000,
        graceful_pod_deletion: bool = False,
    ) -> None:
        """`history`: changes kept for watch resume and paginated lists (older ones give 410).

        `require_namespace`: creating in a namespace that does not exist is NotFound, as the real
        API. `validator(kind, obj, old)` (e.g. `kinds.SchemaValidator` over the Longhorn CRDs)
        returns the object to store (pruned, defaulted; a new dict, `obj` is not changed) and
        Invalid messages ("field: message") for an object about to be stored.
        `graceful_pod_deletion`: deleting a pod bound to a node only marks it Terminating, as the
        real API; something playing the kubelet must then delete it with grace_period_s=0.
        """
        self._clock = clock
        self._rv = 0
        self._objects: dict[Kind, dict[tuple[str, str], Obj]] = {k: {} for k in kinds.ALL}
        self._history: collections.deque[_Change] = collections.deque(maxlen=max(1, history))
        self._compacted_rv = 0
        self._streams: dict[Kind, set[WatchStream]] = {}
        self._listeners: list[tuple[Callable[[WatchEvent], None], frozenset[Kind] | None]] = []
        self._pending: collections.deque[_Change] = collections.deque()
        self._dispatching = False
        self._require_namespace = require_namespace
        self._validator = validator
        self._max_watch_pending = max_watch_pending
        self._graceful_pods = graceful_pod_deletion

    # -- reads --

    @property
    def resource_version(self) -> int:
        """The latest resourceVersion (0 before the first change)."""
        return self._rv

    @property
    def validator(self) -> Validator | None:
        """The validator given at construction (e.g. a kinds.SchemaValidator), if any."""
        return self._validator

    @property
    def oldest_resource_version(self) -> int:
        """The oldest resourceVersion a watch can resume from (older ones get 410 Gone)."""
        return self._compacted_rv

    def get(self, kind: Kind, name: str, *, namespace: str | None = None) -> Obj:
        """A copy of one object; NotFound if absent."""
        return _copy(self._stored(kind, name, namespace))

    def list(
        self,
        kind: Kind,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> tuple[list[Obj], int]:
        """Copies of the matching objects, sorted by namespace and name, and the list's version."""
        page = self.list_page(
            kind, namespace=namespace, label_selector=label_selector, field_selector=field_selector
        )
        return page.items, page.resource_version

    def list_page(
        self,
        kind: Kind,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        limit: int | None = None,
        continue_token: str | None = None,
        copy_objects: bool = True,
    ) -> ListPage:
        """One page of a list. Every page of a continued list shows the state at the first page's
        resourceVersion (as etcd serves it); Gone once that version left the history."""
        labels, fields = self._selectors(kind, label_selector, field_selector)
        list_rv, start = self._resume_point(continue_token)
        objects = self._state_at(kind, list_rv) if list_rv < self._rv else self._objects[kind]
        keys = sorted(k for k in objects if (namespace is None or k[0] == namespace) and k > start)
        matched: list[Obj] = []
        remaining = 0
        next_token = None
        for index, key in enumerate(keys):
            obj = objects[key]
            if not (labels.matches(obj["metadata"].get("labels")) and fields.matches(obj)):
                continue
            if limit and len(matched) == limit:
                next_token = _encode_continue(list_rv, _key_of(matched[-1]))
                remaining = _count_remaining(keys[index:], objects, labels, fields)
                break
            matched.append(obj)
        items = [_clone(o) for o in matched] if copy_objects else matched
        has_selector = bool(labels.requirements or fields.requirements)
        return ListPage(
            items=items,
            resource_version=list_rv,
            continue_token=next_token,
            remaining_item_count=remaining if next_token and not has_selector else None,
        )

    def kinds_with_objects(self) -> Iterator[Kind]:
        """Kinds that have at least one object."""
        return (k for k, objs in self._objects.items() if objs)

    # -- writes --

    def create(self, kind: Kind, obj: Obj, *, namespace: str | None = None) -> Obj:
        """Store a new object; fills uid, creationTimestamp, resourceVersion, generation.

        `metadata.generateName` makes a unique name. Status is reset as the real API does on
        create (except for Nodes): Pods start Pending, Namespaces Active, others without status.
        """
        obj = _clone(obj)
        self._check_type(kind, obj)
        meta = obj.setdefault("metadata", {})
        if meta.get("resourceVersion"):
            raise ApiError("resourceVersion should not be set on objects to be created")
        ns = self._namespace_for_create(kind, meta, namespace)
        meta["name"] = self._name_for_create(kind, meta, ns)
        self._check_namespace_open(kind, ns, meta["name"])
        for server_field in _SERVER_METADATA:
            meta.pop(server_field, None)
        meta["uid"] = str(uuid.uuid4())
        meta["creationTimestamp"] = self._timestamp()
        if kind.has_generation:
            meta["generation"] = 1
        else:
            meta.pop("generation", None)
        _reset_status_on_create(kind, obj)
        obj = self._validate(kind, obj, None)
        stored = self._commit(kind, "ADDED", obj, None)
        return _copy(stored)

    def update(self, kind: Kind, obj: Obj, *, subresource: Subresource | None = None) -> Obj:
        """Replace an object (found by metadata name/namespace); Conflict when a set
        metadata.resourceVersion is stale. The main resource ignores .status of a kind with a
        status subresource; `subresource="status"` changes only .status. A no-op keeps the version."""
        obj = _clone(obj)
        self._check_type(kind, obj)
        meta = obj.get("metadata") or {}
        name = meta.get("name") or ""
        if not name:
            raise invalid(
                kind, "", [Cause("metadata.name", "Required value: name is required", "FieldValueRequired")]
            )
        current = self._stored(kind, name, meta.get("namespace") if kind.namespaced else None)
        self._check_preconditions(kind, current, meta)
        return _copy(self._replace(kind, current, obj, subresource))

    def patch(
        self,
        kind: Kind,
        name: str,
        patch: Any,
        *,
        patch_type: PatchType,
        namespace: str | None = None,
        subresource: Subresource | None = None,
    ) -> Obj:
        """Apply a JSON merge patch (RFC 7386), JSON patch (RFC 6902) or strategic merge patch
        (treated as merge; refused with 415 for custom resources, as the real API does)."""
        current = self._stored(kind, name, namespace)
        if patch_type == "strategic" and kind.is_custom:
            raise UnsupportedMediaType(
                "the body of the request was in an unknown format - accepted media types include: "
                "application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"
            )
        patched = _apply_patch(_copy(current), patch, patch_type, kind, name)
        if not isinstance(patched, dict):
            raise BadRequest("the patch did not produce an object")
        meta = patched.get("metadata") or {}
        if meta.get("name") != name or (kind.namespaced and meta.get("namespace") != namespace):
            raise invalid(kind, name, [Cause("metadata.name", "Invalid value: field is immutable")])
        self._check_preconditions(kind, current, meta)
        return _copy(self._replace(kind, current, patched, subresource))

    def mutate(
        self,
        kind: Kind,
        name: str,
        change: Callable[[Obj], None],
        *,
        namespace: str | None = None,
        subresource: Subresource | None = None,
    ) -> Obj:
        """Controller convenience: apply `change` to a copy and store it (no version check)."""
        current = self._stored(kind, name, namespace)
        changed = _copy(current)
        change(changed)
        changed.setdefault("metadata", {}).update(name=name)
        if kind.namespaced:
            changed["metadata"]["namespace"] = namespace
        return _copy(self._replace(kind, current, changed, subresource))

    def delete(
        self,
        kind: Kind,
        name: str,
        *,
        namespace: str | None = None,
        propagation: Propagation = "Background",
        preconditions: Mapping[str, str] | None = None,
        grace_period_s: int | None = None,
    ) -> Obj:
        """Delete an object and (Background/Foreground) its dependents by ownerReferences, or
        (Orphan) strip their ownerReferences. An object with finalizers only gets a
        deletionTimestamp and goes when an update empties its finalizers. Returns its last state.
        `preconditions`: {"uid": ..., "resourceVersion": ...} from DeleteOptions; Conflict if stale.
        `grace_period_s`: for pods when the store has `graceful_pod_deletion` (0 forces)."""
        current = self._stored(kind, name, namespace)
        if preconditions:
            self._check_delete_preconditions(kind, current, preconditions)
        return _copy(self._delete(kind, current, propagation, grace_period_s=grace_period_s))

    def end_watches(self) -> None:
        """End every open WatchStream (an API outage); objects and versions are untouched."""
        for streams in list(self._streams.values()):
            for stream in list(streams):
                stream.close()

    close = end_watches

    # -- notifications --

    def listen(
        self, callback: Callable[[WatchEvent], None], *, only: Iterable[Kind] | None = None
    ) -> Callable[[], None]:
        """Call `callback` synchronously after every change (of the kinds in `only`, default all), in version
        order, with its own copy of the object; returns the unsubscribe function. A callback that
        writes to the store is fine: the resulting events are delivered after the current one."""
        entry = (callback, frozenset(only) if only is not None else None)
        self._listeners.append(entry)

        def unsubscribe() -> None:
            if entry in self._listeners:
                self._listeners.remove(entry)

        return unsubscribe

    def watch(
        self,
        kind: Kind,
        *,
        namespace: str | None = None,
        resource_version: int | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
        copy_objects: bool = True,
    ) -> WatchStream:
        """Events of one kind. `resource_version` None/0: synthetic ADDED for the current objects,
        then live; N: the retained changes after N, then live; Gone if N is older than the history.
        `copy_objects=False` shares one read-only object between watchers (the HTTP server)."""
        labels, fields = self._selectors(kind, label_selector, field_selector)
        if resource_version and resource_version < self._compacted_rv:
            raise gone(resource_version, self._compacted_rv + 1)
        stream = WatchStream(
            self,
            kind=kind,
            namespace=namespace,
            labels=labels,
            fields=fields,
            copy_objects=copy_objects,
            max_pending=self._max_watch_pending,
        )
        if resource_version:
            for change in self._history:
                if change.resource_version > resource_version and change.kind == kind:
                    stream._offer(change)
        else:
            for key in sorted(self._objects[kind]):
                obj = self._objects[kind][key]
                if (namespace is None or key[0] == namespace) and stream._matches(obj):
                    stream._push(stream._event("ADDED", obj, _version_of(obj)))
        self._streams.setdefault(kind, set()).add(stream)
        return stream

    def _forget(self, stream: WatchStream) -> None:
        self._streams.get(stream.kind, set()).discard(stream)

    # -- internals: lookups --

    def _stored(self, kind: Kind, name: str, namespace: str | None) -> Obj:
        if kind.namespaced and not namespace:
            raise BadRequest(f"{kind.qualified_resource} is namespaced: a namespace is required")
        obj = self._objects[kind].get((namespace or "" if kind.namespaced else "", name))
        if obj is None:
            raise not_found(kind, name)
        return obj

    def _selectors(
        self, kind: Kind, label_selector: str | None, field_selector: str | None
    ) -> tuple[selectors.LabelSelector, selectors.FieldSelector]:
        try:
            return (
                selectors.parse_labels(label_selector),
                selectors.parse_fields(field_selector, supported=kind.field_selectors),
            )
        except selectors.SelectorError as exc:
            raise BadRequest(str(exc)) from exc

    def _resume_point(self, continue_token: str | None) -> tuple[int, tuple[str, str]]:
        if not continue_token:
            return self._rv, ("", "")
        list_rv, start = _decode_continue(continue_token)
        if list_rv < self._compacted_rv:
            raise Gone(
                "The provided continue parameter is too old to display a consistent list result. "
                "You can start a new list without the continue parameter."
            )
        return list_rv, start

    def _state_at(self, kind: Kind, resource_version: int) -> dict[tuple[str, str], Obj]:
        state = dict(self._objects[kind])
        for change in reversed(self._history):
            if change.resource_version <= resource_version:
                break
            if change.kind != kind:
                continue
            if change.old is None:
                state.pop(change.key, None)
            else:
                state[change.key] = change.old
        return state

    def _namespace_objects(self, namespace: str) -> builtins.list[tuple[Kind, Obj]]:
        return [
            (kind, obj)
            for kind, objects in self._objects.items()
            if kind.namespaced
            for key, obj in objects.items()
            if key[0] == namespace
        ]

    # -- internals: checks --

    def _check_type(self, kind: Kind, obj: Obj) -> None:
        if not isinstance(obj, dict):
            raise BadRequest("the body of the request is not a JSON object")
        api_version = obj.setdefault("apiVersion", kind.api_version)
        obj_kind = obj.setdefault("kind", kind.kind)
        if (api_version, obj_kind) != (kind.api_version, kind.kind):
            raise BadRequest(
                f"the API version in the data ({api_version}) does not match the expected API version "
                f"({kind.api_version})"
                if api_version != kind.api_version
                else f"the kind in the data ({obj_kind}) does not match the expected kind ({kind.kind})"
            )
        if not isinstance(obj.get("metadata", {}), dict):
            raise BadRequest("metadata must be an object")

    def _namespace_for_create(self, kind: Kind, meta: Obj, namespace: str | None) -> str:
        if not kind.namespaced:
            meta.pop("namespace", None)
            return ""
        given = meta.get("namespace")
        if namespace and given and given != namespace:
            raise BadRequest(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        ns = namespace or given
        if not ns:
            raise invalid(
                kind,
                meta.get("name", ""),
                [Cause("metadata.namespace", "Required value", "FieldValueRequired")],
            )
        meta["namespace"] = ns
        return str(ns)

    def _name_for_create(self, kind: Kind, meta: Obj, namespace: str) -> str:
        name = meta.get("name")
        if not name and meta.get("generateName"):
            base = str(meta["generateName"])[: 63 - _GENERATED_SUFFIX]
            for _ in range(8):
                candidate = base + "".join(secrets.choice(_NAME_ALPHABET) for _ in range(_GENERATED_SUFFIX))
                if (namespace, candidate) not in self._objects[kind]:
                    name = candidate
                    break
        if not name:
            raise invalid(
                kind,
                "",
                [
                    Cause(
                        "metadata.name",
                        "Required value: name or generateName is required",
                        "FieldValueRequired",
                    )
                ],
            )
        name = str(name)
        causes = _name_causes(kind, name)
        if causes:
            raise invalid(kind, name, causes)
        if (namespace, name) in self._objects[kind]:
            raise already_exists(kind, name)
        return name

    def _check_namespace_open(self, kind: Kind, namespace: str, name: str) -> None:
        if not kind.namespaced or not self._require_namespace:
            return
        ns = self._objects[kinds.NAMESPACE].get(("", namespace))
        if ns is None:
            raise not_found(kinds.NAMESPACE, namespace)
        if ns["metadata"].get("deletionTimestamp"):
            raise Forbidden(
                f'{kind.qualified_resource} "{name}" is forbidden: unable to create new content in '
                f"namespace {namespace} because it is being terminated",
                details=_details(kind, name),
            )

    def _check_preconditions(self, kind: Kind, current: Obj, meta: Mapping[str, Any]) -> None:
        name = current["metadata"]["name"]
        given_rv = meta.get("resourceVersion")
        if given_rv and str(given_rv) != current["metadata"]["resourceVersion"]:
            raise conflict(
                kind,
                name,
                "the object has been modified; please apply your changes to the latest version and try again",
            )
        given_uid = meta.get("uid")
        if given_uid and given_uid != current["metadata"]["uid"]:
            raise conflict(
                kind,
                name,
                f"Precondition failed: UID in precondition: {given_uid}, "
                f"UID in object meta: {current['metadata']['uid']}",
            )

    def _check_delete_preconditions(self, kind: Kind, current: Obj, preconditions: Mapping[str, str]) -> None:
        name = current["metadata"]["name"]
        for key in ("uid", "resourceVersion"):
            wanted = preconditions.get(key)
            actual = current["metadata"][key]
            if wanted and wanted != actual:
                raise conflict(
                    kind,
                    name,
                    f"Precondition failed: {key[0].upper() + key[1:]} in precondition: {wanted}, "
                    f"{key[0].upper() + key[1:]} in object meta: {actual}",
                )

    def _validate(self, kind: Kind, obj: Obj, old: Obj | None) -> Obj:
        name = obj["metadata"].get("name", "")
        causes = _metadata_causes(obj["metadata"])
        if self._validator is not None:
            obj, messages = self._validator(kind, obj, old)
            for message in messages:
                field_path, _, text = message.partition(": ")
                causes.append(Cause(field_path, text) if text else Cause("", message))
        if causes:
            raise invalid(kind, name, causes)
        return obj

    # -- internals: writes --

    def _replace(self, kind: Kind, current: Obj, new: Obj, subresource: Subresource | None) -> Obj:
        merged = _merge_for_write(kind, current, new, subresource)
        terminating = bool(current["metadata"].get("deletionTimestamp"))
        if terminating:
            _check_no_new_finalizers(kind, current, merged)
        merged = self._validate(kind, merged, current)
        if kind.has_generation and _spec_part(merged) != _spec_part(current):
            merged["metadata"]["generation"] = int(current["metadata"].get("generation", 1)) + 1
        if merged == current:
            return current
        stored = self._commit(kind, "MODIFIED", merged, current)
        if terminating and not merged["metadata"].get("finalizers"):
            return self._remove(kind, stored)
        return stored

    def _hold_terminating_pod(self, pod: Obj, grace_period_s: int | None) -> Obj | None:
        # As the real pod strategy (CheckGracefulDelete): a pod bound to a node and not finished
        # is only marked, deletionTimestamp = now + grace; the kubelet removes it (grace 0) once
        # its containers stopped, so on a node that never answers it stays Terminating.
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        if not spec.get("nodeName") or status.get("phase") in ("Succeeded", "Failed"):
            return None
        default_grace = int(spec.get("terminationGracePeriodSeconds", DEFAULT_POD_GRACE_S))
        grace = default_grace if grace_period_s is None else grace_period_s
        if grace <= 0:
            return None
        meta = pod["metadata"]
        if meta.get("deletionTimestamp") and int(meta.get("deletionGracePeriodSeconds", grace)) <= grace:
            return pod
        marked_meta = {
            **meta,
            "deletionTimestamp": self._timestamp(offset_s=grace),
            "deletionGracePeriodSeconds": grace,
        }
        return self._commit(kinds.POD, "MODIFIED", {**pod, "metadata": marked_meta}, pod)

    def _delete(
        self, kind: Kind, current: Obj, propagation: Propagation, *, grace_period_s: int | None = None
    ) -> Obj:
        if self._graceful_pods and kind == kinds.POD:
            held = self._hold_terminating_pod(current, grace_period_s)
            if held is not None:
                return held
        if kind == kinds.NAMESPACE:
            return self._delete_namespace(current)
        uid = current["metadata"]["uid"]
        if propagation == "Orphan":
            self._orphan_dependents(uid)
        elif propagation == "Foreground":
            self._delete_dependents(uid, "Foreground")
        if current["metadata"].get("finalizers"):
            return self._mark_deleting(kind, current)
        gone_obj = self._remove(kind, current)
        if propagation == "Background":
            self._delete_dependents(uid, "Background")
        return gone_obj

    def _delete_namespace(self, namespace: Obj) -> Obj:
        marked = self._mark_deleting(kinds.NAMESPACE, namespace, phase="Terminating")
        name = namespace["metadata"]["name"]
        for kind, obj in self._namespace_objects(name):
            live = self._objects[kind].get(_key_of(obj))
            if live is not None:
                self._delete(kind, live, "Background")
        return self._finish_namespace(name) or marked

    def _finish_namespace(self, name: str) -> Obj | None:
        namespace = self._objects[kinds.NAMESPACE].get(("", name))
        if namespace is None or not namespace["metadata"].get("deletionTimestamp"):
            return None
        if self._namespace_objects(name):
            return None
        return self._remove(kinds.NAMESPACE, namespace)

    def _mark_deleting(self, kind: Kind, current: Obj, *, phase: str | None = None) -> Obj:
        if current["metadata"].get("deletionTimestamp"):
            return current
        marked = {**current, "metadata": {**current["metadata"]}}
        marked["metadata"]["deletionTimestamp"] = self._timestamp()
        marked["metadata"]["deletionGracePeriodSeconds"] = 0
        if phase:
            marked["status"] = {**(current.get("status") or {}), "phase": phase}
        return self._commit(kind, "MODIFIED", marked, current)

    def _remove(self, kind: Kind, current: Obj) -> Obj:
        last = self._commit(kind, "DELETED", current, current)
        if kind.namespaced:
            self._finish_namespace(_namespace_of(current))
        return last

    def _dependents(self, owner_uid: str) -> builtins.list[tuple[Kind, Obj]]:
        return [
            (kind, obj)
            for kind, objects in self._objects.items()
            for obj in objects.values()
            if any(ref.get("uid") == owner_uid for ref in obj["metadata"].get("ownerReferences") or ())
        ]

    def _delete_dependents(self, owner_uid: str, propagation: Propagation) -> None:
        for kind, obj in self._dependents(owner_uid):
            live = self._objects[kind].get(_key_of(obj))
            if live is not None and not live["metadata"].get("deletionTimestamp"):
                self._delete(kind, live, propagation)

    def _orphan_dependents(self, owner_uid: str) -> None:
        for kind, obj in self._dependents(owner_uid):
            refs = [r for r in obj["metadata"]["ownerReferences"] if r.get("uid") != owner_uid]
            meta = {**obj["metadata"], "ownerReferences": refs}
            if not refs:
                del meta["ownerReferences"]
            self._commit(kind, "MODIFIED", {**obj, "metadata": meta}, obj)

    def _commit(self, kind: Kind, type_: EventType, obj: Obj, old: Obj | None) -> Obj:
        self._rv += 1
        stored = {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(self._rv)}}
        key = _key_of(stored)
        if type_ == "DELETED":
            del self._objects[kind][key]
        else:
            self._objects[kind][key] = stored
        change = _Change(self._rv, kind, type_, stored, old)
        if len(self._history) == self._history.maxlen:
            self._compacted_rv = self._history[0].resource_version
        self._history.append(change)
        for stream in list(self._streams.get(kind, ())):
            stream._offer(change)
        self._notify(change)
        return stored

    def _notify(self, change: _Change) -> None:
        self._pending.append(change)
        if self._dispatching:
            return
        self._dispatching = True
        try:
            while self._pending:
                current = self._pending.popleft()
                for callback, wanted in list(self._listeners):
                    if wanted is None or current.kind in wanted:
                        self._call_listener(callback, current)
        finally:
            self._dispatching = False

    def _call_listener(self, callback: Callable[[WatchEvent], None], change: _Change) -> None:
        event = WatchEvent(change.type, change.kind, _clone(change.obj), change.resource_version)
        try:
            callback(event)
        except Exception:
            log.exception("store listener %r failed on %s %s", callback, change.type, change.kind)

    def _timestamp(self, *, offset_s: float = 0.0) -> str:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._clock() + offset_s))


# --- helpers ---------------------------------------------------------------------------------------


def _copy(obj: Obj) -> Obj:
    """A deep copy of an object."""
    return {k: _clone(v) for k, v in obj.items()}


def _clone(value: Any) -> Any:
    """A deep copy of JSON-shaped data (much faster than copy.deepcopy)."""
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_clone(v) for v in value]
    return value


def _key_of(obj: Obj) -> tuple[str, str]:
    meta = obj["metadata"]
    return meta.get("namespace") or "", meta["name"]


def _namespace_of(obj: Obj) -> str:
    return str(obj["metadata"].get("namespace") or "")


def _version_of(obj: Obj) -> int:
    return int(obj["metadata"]["resourceVersion"])


def _with_version(obj: Obj, resource_version: int) -> Obj:
    return {**obj, "metadata": {**obj["metadata"], "resourceVersion": str(resource_version)}}


def _check_no_new_finalizers(kind: Kind, current: Obj, merged: Obj) -> None:
    before = set(current["metadata"].get("finalizers") or ())
    if set(merged["metadata"].get("finalizers") or ()) - before:
        message = "Forbidden: no new finalizers can be added if the object is being deleted"
        cause = Cause("metadata.finalizers", message, "FieldValueForbidden")
        raise invalid(kind, current["metadata"]["name"], [cause])


def _spec_part(obj: Obj) -> Obj:
    return {k: v for k, v in obj.items() if k not in ("metadata", "status")}


def _merge_for_write(kind: Kind, current: Obj, new: Obj, subresource: Subresource | None) -> Obj:
    if subresource == "status":
        if not kind.has_status:
            raise not_found(kind, current["metadata"]["name"])
        merged = {k: v for k, v in current.items() if k != "status"}
        if "status" in new:
            merged["status"] = new["status"]
        return {**merged, "metadata": dict(current["metadata"])}
    merged = dict(new)
    if kind.has_status:
        merged.pop("status", None)
        if "status" in current:
            merged["status"] = current["status"]
    meta = {**(new.get("metadata") or {})}
    for key in (*_SERVER_METADATA, "name", "namespace", "generation", "resourceVersion"):
        if key in current["metadata"]:
            meta[key] = current["metadata"][key]
        else:
            meta.pop(key, None)
    merged["metadata"] = meta
    return merged


def _reset_status_on_create(kind: Kind, obj: Obj) -> None:
    # The real registry strategies' PrepareForCreate: status is not settable on create, except
    # for Nodes; Pods start Pending, Namespaces Active (with their finalizer and name label).
    if kind == kinds.NODE or not kind.has_status:
        return
    obj.pop("status", None)
    if kind == kinds.POD:
        obj["status"] = {"phase": "Pending", "qosClass": _qos_class(obj.get("spec") or {})}
    elif kind == kinds.NAMESPACE:
        obj["status"] = {"phase": "Active"}
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        labels = obj["metadata"].setdefault("labels", {})
        labels["kubernetes.io/metadata.name"] = obj["metadata"]["name"]
    elif kind in (kinds.JOB, kinds.CRONJOB):
        obj["status"] = {}
    elif kind == kinds.DAEMONSET:
        # An empty DaemonSetStatus: its four counts have no omitempty, the rest are left out.
        obj["status"] = {
            "currentNumberScheduled": 0,
            "numberMisscheduled": 0,
            "desiredNumberScheduled": 0,
            "numberReady": 0,
        }


def _qos_class(spec: Obj) -> str:
    containers = [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]
    resources = [c.get("resources") or {} for c in containers]
    if not any(r.get("requests") or r.get("limits") for r in resources):
        return "BestEffort"
    guaranteed = all(
        all((r.get("limits") or {}).get(res) for res in ("cpu", "memory"))
        and all(
            (r.get("requests") or r.get("limits") or {}).get(res) == r["limits"][res]
            for res in ("cpu", "memory")
        )
        for r in resources
    )
    return "Guaranteed" if guaranteed else "Burstable"


def _name_causes(kind: Kind, name: str) -> list[Cause]:
    if kind == kinds.NAMESPACE:
        if len(name) > 63 or not _DNS1123_LABEL.match(name):
            return [
                Cause(
                    "metadata.name",
                    f'Invalid value: "{name}": a lowercase RFC 1123 label must consist of lower case '
                    "alphanumeric characters or '-', and must start and end with an alphanumeric "
                    "character (e.g. 'my-name',  or '123-abc', regex used for validation is "
                    "'[a-z0-9]([-a-z0-9]*[a-z0-9])?')",
                )
            ]
        return []
    if len(name) > _MAX_NAME or not _DNS1123_SUBDOMAIN.match(name):
        return [
            Cause(
                "metadata.name",
                f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower case '
                "alphanumeric characters, '-' or '.', and must start and end with an alphanumeric "
                "character (e.g. 'example.com', regex used for validation is "
                "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')",
            )
        ]
    if kind == kinds.CRONJOB and len(name) > _MAX_CRONJOB_NAME:
        return [Cause("metadata.name", f'Invalid value: "{name}": must be no more than 52 characters')]
    return []


def _metadata_causes(meta: Mapping[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    for key, value in (meta.get("labels") or {}).items():
        if not _is_qualified_name(key):
            causes.append(
                Cause("metadata.labels", f'Invalid value: "{key}": name part must be a qualified name')
            )
        if not isinstance(value, str) or len(value) > 63 or not _LABEL_VALUE.match(value):
            causes.append(
                Cause(
                    "metadata.labels",
                    f'Invalid value: "{value}": a valid label must be an empty string or consist of '
                    "alphanumeric characters, '-', '_' or '.', and must start and end with an "
                    "alphanumeric character, at most 63 characters",
                )
            )
    for key, value in (meta.get("annotations") or {}).items():
        if not _is_qualified_name(key):
            causes.append(
                Cause("metadata.annotations", f'Invalid value: "{key}": name part must be a qualified name')
            )
        if not isinstance(value, str):
            causes.append(Cause(f"metadata.annotations[{key}]", "Invalid value: must be a string"))
    return causes


def _is_qualified_name(key: str) -> bool:
    prefix, slash, name = key.rpartition("/")
    if slash and (not prefix or len(prefix) > _MAX_NAME or not _DNS1123_SUBDOMAIN.match(prefix)):
        return False
    return 0 < len(name) <= 63 and bool(_QUALIFIED_NAME.match(name))


def _encode_continue(resource_version: int, start: tuple[str, str]) -> str:
    raw = json.dumps({"v": "meta.k8s.io/v1", "rv": resource_version, "start": list(start)})
    return base64.urlsafe_b64encode(raw.encode()).decode()


def _decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        start = data["start"]
        return int(data["rv"]), (str(start[0]), str(start[1]))
    except (binascii.Error, ValueError, KeyError, TypeError, IndexError) as exc:
        raise BadRequest(f"invalid continue token: {exc}") from exc


def _count_remaining(
    keys: list[tuple[str, str]],
    objects: Mapping[tuple[str, str], Obj],
    labels: selectors.LabelSelector,
    fields: selectors.FieldSelector,
) -> int:
    return sum(
        1 for k in keys if labels.matches(objects[k]["metadata"].get("labels")) and fields.matches(objects[k])
    )


# --- patches ---------------------------------------------------------------------------------------


def _apply_patch(doc: Obj, patch: Any, patch_type: PatchType, kind: Kind, name: str) -> Any:
    if patch_type == "json":
        return json_patch(doc, patch, kind=kind, name=name)
    if not isinstance(patch, dict):
        raise BadRequest("a merge patch must be a JSON object")
    if patch_type == "strategic":
        patch = _strip_directives(patch)
    return merge_patch(doc, patch)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch: objects merge, null removes, anything else replaces."""
    if not isinstance(patch, dict):
        return _clone(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _strip_directives(patch: Any) -> Any:
    # Strategic merge patch directives ($patch, $retainKeys, $setElementOrder/...) have no meaning
    # once lists are replaced wholesale; `$patch: delete` still removes the object it sits in.
    if isinstance(patch, list):
        return [_strip_directives(v) for v in patch]
    if not isinstance(patch, dict):
        return patch
    if patch.get("$patch") == "delete":
        return None
    return {k: _strip_directives(v) for k, v in patch.items() if not k.startswith("$")}


def json_patch(doc: Any, operations: Any, *, kind: Kind, name: str) -> Any:
    """RFC 6902 JSON patch: add, remove, replace, move, copy, test."""
    if not isinstance(operations, list):
        raise BadRequest("a JSON patch must be a list of operations")
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise BadRequest(f"invalid JSON patch operation: {op!r}")
        try:
            doc = _json_patch_op(doc, op)
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise invalid(
                kind, name, [Cause("", f"the JSON patch failed: {op['op']} {op['path']}: {exc}")]
            ) from exc
    return doc


def _json_patch_op(doc: Any, op: Mapping[str, Any]) -> Any:
    action = op["op"]
    path = _pointer(op["path"])
    if action == "add":
        return _pointer_add(doc, path, _clone(op["value"]))
    if action == "remove":
        return _pointer_remove(doc, path)
    if action == "replace":
        doc = _pointer_remove(doc, path)
        return _pointer_add(doc, path, _clone(op["value"]))
    if action == "test":
        if _pointer_get(doc, path) != op["value"]:
            raise ValueError("test failed")
        return doc
    if action in ("move", "copy"):
        source = _pointer(op["from"])
        value = _clone(_pointer_get(doc, source))
        if action == "move":
            doc = _pointer_remove(doc, source)
        return _pointer_add(doc, path, value)
    raise ValueError(f"unknown operation {action!r}")


def _pointer(text: str) -> list[str]:
    if text == "":
        return []
    if not text.startswith("/"):
        raise ValueError(f"bad JSON pointer {text!r}")
    return [part.replace("~1", "/").replace("~0", "~") for part in text[1:].split("/")]


def _pointer_get(doc: Any, path: list[str]) -> Any:
    for part in path:
        doc = doc[int(part)] if isinstance(doc, list) else doc[part]
    return doc


def _pointer_add(doc: Any, path: list[str], value: Any) -> Any:
    if not path:
        return value
    parent = _pointer_get(doc, path[:-1])
    last = path[-1]
    if isinstance(parent, list):
        index = len(parent) if last == "-" else int(last)
        if not 0 <= index <= len(parent):
            raise IndexError(f"index {index} out of range")
        parent.insert(index, value)
    elif isinstance(parent, dict):
        parent[last] = value
    else:
        raise TypeError(f"cannot add to a {type(parent).__name__}")
    return doc


def _pointer_remove(doc: Any, path: list[str]) -> Any:
    if not path:
        return None
    parent = _pointer_get(doc, path[:-1])
    last = path[-1]
    if isinstance(parent, list):
        del parent[int(last)]
    else:
        del parent[last]
    return doc


__all__ = [
    "AlreadyExists",
    "ApiError",
    "BadRequest",
    "Cause",
    "Conflict",
    "Forbidden",
    "Gone",
    "Invalid",
    "ListPage",
    "NotFound",
    "Store",
    "UnsupportedMediaType",
    "WatchEvent",
    "WatchStream",
    "json_patch",
    "merge_patch",
]
