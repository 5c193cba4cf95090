"""core/v1 Events, recorded as client-go's EventRecorder does (tools/record).

Each recorder has a source (component, host). Its correlator, as client-go's EventCorrelator:

1. aggregation: more than 10 events differing only in message, about one object, within the
   aggregation window, become one event "(combined from similar events): <latest message>";
2. deduplication: an event identical to one already written (same source, object, type, reason,
   message) increments that Event's `count` and `lastTimestamp` instead of creating another;
3. spam filter: a token bucket per source and object (burst 25, one token per 5 minutes upstream)
   drops what exceeds it — after the count in the cache was already incremented, as upstream, so
   the next accepted update jumps.

Windows and refill are time-compressed by the profile. Event names are `<object>.<unix nanos hex>`;
cluster-scoped objects get their events in namespace "default".
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Literal, TypeVar

from lhsoak.lab import kinds
from lhsoak.lab.controllers.link import ApiLink
from lhsoak.lab.controllers.meta import Obj, rfc3339
from lhsoak.lab.profiles import Profile
from lhsoak.lab.store import AlreadyExists, NotFound, Store

logger = logging.getLogger(__name__)

EventType = Literal["Normal", "Warning"]
V = TypeVar("V")

_AGGREGATE_MAX_EVENTS = 10
_COMBINED_PREFIX = "(combined from similar events): "
_NAME_RETRIES = 8
_CACHE_ENTRIES = 4096
"""client-go's maxLruCacheEntries: each correlator cache forgets its least recent keys beyond it."""


class _Lru(Generic[V]):
    """A mapping that forgets its least recently used entries beyond _CACHE_ENTRIES."""

    def __init__(self) -> None:
        self._entries: OrderedDict[tuple[str, ...], V] = OrderedDict()

    def get(self, key: tuple[str, ...]) -> V | None:
        value = self._entries.get(key)
        if value is not None:
            self._entries.move_to_end(key)
        return value

    def put(self, key: tuple[str, ...], value: V) -> None:
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > _CACHE_ENTRIES:
            self._entries.popitem(last=False)

    def forget(self, value: V) -> None:
        for key, entry in list(self._entries.items()):
            if entry is value:
                del self._entries[key]


@dataclass
class _Aggregate:
    messages: set[str] = field(default_factory=set)
    last_s: float = 0.0


@dataclass
class _Logged:
    name: str
    namespace: str
    count: int
    first_timestamp: str


@dataclass
class _Bucket:
    tokens: float
    refilled_s: float


class EventRecorder:
    """Records Events for one source; writes go straight to the store or, with `link`, through it."""

    def __init__(
        self,
        store: Store,
        *,
        component: str,
        profile: Profile,
        clock: Callable[[], float],
        host: str = "",
        link: ApiLink | None = None,
    ) -> None:
        self.component = component
        self.host = host
        self._store = store
        self._profile = profile
        self._clock = clock
        self._link = link
        self._aggregates: _Lru[_Aggregate] = _Lru()
        self._logged: _Lru[_Logged] = _Lru()
        self._buckets: _Lru[_Bucket] = _Lru()

    @property
    def writer(self) -> str:
        """Name under which this recorder's writes wait for the API."""
        return f"events:{self.component}:{self.host}"

    def event(self, involved: Mapping[str, Any], type_: EventType, reason: str, message: str) -> None:
        """Record one event about `involved` (an ObjectReference dict, see meta.object_ref)."""
        now_s = self._clock()
        ref = _reference(involved)
        message, log_key = self._aggregate(ref, type_, reason, message, now_s)
        logged = self._logged.get(log_key)
        if logged is not None:
            logged.count += 1
        if not self._accept(ref, now_s):
            return
        write = self._update_write(logged, message, now_s) if logged else None
        if write is None:
            write = self._create_write(log_key, ref, type_, reason, message, now_s)
        if self._link is None:
            write()
        else:
            self._link.write(self.writer, log_key, write)

    def _aggregate(
        self, ref: Obj, type_: str, reason: str, message: str, now_s: float
    ) -> tuple[str, tuple[str, ...]]:
        aggregate_key = (*_ref_key(ref), type_, reason, self.component, self.host)
        record = self._aggregates.get(aggregate_key)
        if record is None or now_s - record.last_s > self._profile.event_aggregate_window_s:
            record = _Aggregate()
            self._aggregates.put(aggregate_key, record)
        record.last_s = now_s
        record.messages.add(message)
        if len(record.messages) < _AGGREGATE_MAX_EVENTS:
            return message, (*aggregate_key, message)
        record.messages.pop()
        return _COMBINED_PREFIX + message, aggregate_key

    def _accept(self, ref: Obj, now_s: float) -> bool:
        spam_key = (self.component, self.host, *_ref_key(ref))
        burst = float(self._profile.event_spam_burst)
        bucket = self._buckets.get(spam_key)
        if bucket is None:
            bucket = _Bucket(tokens=burst, refilled_s=now_s)
            self._buckets.put(spam_key, bucket)
        refill_s = self._profile.event_spam_refill_s
        if refill_s > 0:
            bucket.tokens = min(burst, bucket.tokens + (now_s - bucket.refilled_s) / refill_s)
        else:
            bucket.tokens = burst
        bucket.refilled_s = now_s
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def _update_write(self, logged: _Logged, message: str, now_s: float) -> Callable[[], None]:
        count = logged.count

        def write() -> None:
            def change(event: Obj) -> None:
                event["count"] = count
                event["lastTimestamp"] = rfc3339(now_s)
                event["message"] = message

            try:
                self._store.mutate(kinds.EVENT, logged.name, change, namespace=logged.namespace)
            except NotFound:
                # client-go creates the event anew when the one it counted was deleted (TTL).
                self._logged.forget(logged)

        return write

    def _create_write(
        self,
        log_key: tuple[str, ...],
        ref: Obj,
        type_: str,
        reason: str,
        message: str,
        now_s: float,
    ) -> Callable[[], None]:
        namespace = ref.get("namespace") or "default"
        timestamp = rfc3339(now_s)
        body: Obj = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"namespace": namespace},
            "involvedObject": ref,
            "reason": reason,
            "message": message,
            "source": {"component": self.component, **({"host": self.host} if self.host else {})},
            "firstTimestamp": timestamp,
            "lastTimestamp": timestamp,
            "count": 1,
            "type": type_,
            "eventTime": None,
            "reportingComponent": self.component,
            "reportingInstance": self.host,
        }
        nanos = int(now_s * 1e9)

        def write() -> None:
            for attempt in range(_NAME_RETRIES):
                body["metadata"]["name"] = f"{ref['name']}.{nanos + attempt:x}"
                try:
                    self._store.create(kinds.EVENT, body)
                except AlreadyExists:
                    continue
                except NotFound:
                    logger.info("%s: no namespace %s for event %s", self.component, namespace, reason)
                    return
                self._logged.put(log_key, _Logged(body["metadata"]["name"], namespace, 1, timestamp))
                return

        return write


def _reference(involved: Mapping[str, Any]) -> Obj:
    fields = ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")
    return {k: involved[k] for k in fields if involved.get(k)}


def _ref_key(ref: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(str(ref.get(k, "")) for k in ("kind", "namespace", "name", "uid", "apiVersion", "fieldPath"))
