"""The recorder: watches the cluster for the whole soak and writes what it sees to the ledger as it happens.

One thread per resource does what kopf does: list, then watch from the list's resourceVersion, track the
latest version from every event (bookmarks included), re-list on 410 Gone, reconnect every 0.25 s while the
API server does not answer (a control-plane reboot; with backoff while it answers errors) — and record its
own blind spots, so the verdict can tell a
tick missed while nobody was looking. A re-list reconciles what happened while it was blind: artifacts made
during an outage are recorded with their real cluster timestamps, artifacts deleted meanwhile as `gone`.

It also keeps the latest state of every watched object in a `ClusterView`, which the chaos steps wait on
(node Ready, boot ids) and the diagnosis reads, so nothing polls the API server.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from lhsoak import artifacts, cluster, ledger, timestamps
from lhsoak.cluster import Obj, Resource

log = logging.getLogger(__name__)
T = TypeVar("T")

# Events whose reason tells a stall story (names as the upstream controllers emit them).
NOTABLE_EVENTS = {
    "JobAlreadyActive": "warn",  # cronjob controller, Forbid with an active job: a tick skipped
    "TooManyMissedTimes": "warn",
    "FailedScheduling": "warn",
    "BackoffLimitExceeded": "error",
    "FailedCreate": "warn",
    "MissSchedule": "warn",
}


class WaitTimeout(Exception):
    """A wait on cluster state ran past its deadline; says what was awaited and what was seen."""


def object_key(obj: Mapping[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace") or "", meta["name"])


class ClusterView:
    """The latest state of every watched object, shared by the watcher threads and whoever waits on it."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._objects: dict[str, dict[tuple[str, str], Obj]] = {}
        self._changed = threading.Condition()
        self._clock = clock
        self._not_ready_seen: dict[str, float] = {}
        self.generation = 0

    def replace(self, plural: str, items: Iterable[Obj]) -> dict[tuple[str, str], Obj]:
        """Swap in a fresh list; returns the objects that are gone since the last state."""
        fresh = {object_key(item): item for item in items}
        with self._changed:
            for item in fresh.values():
                self._note_readiness(plural, item)
            before = self._objects.get(plural, {})
            self._objects[plural] = fresh
            self._bump()
        return {key: obj for key, obj in before.items() if key not in fresh}

    def apply(self, plural: str, event_type: str, obj: Obj) -> None:
        with self._changed:
            bucket = self._objects.setdefault(plural, {})
            if event_type == "DELETED":
                bucket.pop(object_key(obj), None)
            else:
                bucket[object_key(obj)] = obj
                self._note_readiness(plural, obj)
            self._bump()

    def _note_readiness(self, plural: str, obj: Obj) -> None:
        # Remember when a node was last seen not Ready: a fast reboot may flip Ready and back between
        # two looks, but a watch usually sees it, and the reboot proof wants to know.
        if plural != "nodes":
            return
        for condition in (obj.get("status") or {}).get("conditions") or []:
            if condition.get("type") == "Ready" and condition.get("status") != "True":
                self._not_ready_seen[obj["metadata"]["name"]] = self._clock()

    def not_ready_seen_since(self, node: str, since_s: float) -> bool:
        """Whether the node was seen with Ready False/Unknown at or after `since_s`."""
        with self._changed:
            return self._not_ready_seen.get(node, float("-inf")) >= since_s

    def _bump(self) -> None:
        self.generation += 1
        self._changed.notify_all()

    def poke(self) -> None:
        """Wake every waiter so it re-checks conditions that live outside the view (a live miss)."""
        with self._changed:
            self._bump()

    def items(self, plural: str) -> list[Obj]:
        with self._changed:
            return list(self._objects.get(plural, {}).values())

    def get(self, plural: str, name: str, namespace: str = "") -> Obj | None:
        with self._changed:
            return self._objects.get(plural, {}).get((namespace, name))

    def wait_for(
        self,
        check: Callable[[ClusterView], T | None],
        *,
        what: str,
        deadline_s: float,
        seen: Callable[[ClusterView], str],
        clock: Callable[[], float] = time.monotonic,
        progress: Callable[[str], None] | None = None,
        progress_every_s: float = 10.0,
    ) -> T:
        """Block until `check` returns something other than None, re-checking on every change.

        Raises WaitTimeout naming `what` and the last state `seen` describes.
        """
        end = clock() + deadline_s
        next_progress = clock() + progress_every_s
        with self._changed:
            while True:
                result = check(self)
                if result is not None:
                    return result
                now = clock()
                if now >= end:
                    raise WaitTimeout(
                        f"timed out after {deadline_s:.0f}s waiting for {what}; saw {seen(self)}"
                    )
                if progress and now >= next_progress:
                    progress(f"waiting for {what}; {seen(self)}")
                    next_progress = now + progress_every_s
                # Woken by every change; the timeout only bounds how late a deadline or progress line is.
                self._changed.wait(timeout=min(end - now, max(0.0, next_progress - now), 1.0) or 0.05)


@dataclass
class _Watch:
    resource: Resource
    namespace: str | None
    label_selector: str | None = None
    synced: threading.Event = field(default_factory=threading.Event)
    stream: cluster.WatchStream | None = None


class Recorder:
    """Watches snapshots, backups, cronjobs, jobs, pods, events, nodes (and Longhorn context) into the ledger."""

    def __init__(
        self,
        api: cluster.Cluster,
        writer: ledger.Writer,
        *,
        jobs: Mapping[str, str],
        volumes: Iterable[str] | None,
        namespace: str = "longhorn-system",
        clock: Callable[[], float] = time.time,
        backoff_s: tuple[float, float] = (0.2, 5.0),
        unreachable_retry_s: float = 0.25,
        watch_timeout_s: int = 60,
        on_node_back: Callable[[str], None] | None = None,
    ) -> None:
        """`on_node_back(node)` is called (on a watcher thread) when a Node is seen Ready with a boot
        id not seen Ready before: a reboot's proof can look at the machine at once."""
        self._api = api
        self._on_node_back = on_node_back
        self._ready_boots: dict[str, str | None] = {}
        self._writer = writer
        self._snapshot_jobs = frozenset(name for name, task in jobs.items() if task == "snapshot")
        self._backup_jobs = frozenset(name for name, task in jobs.items() if task == "backup")
        self._volumes = frozenset(volumes) if volumes is not None else None
        self._clock = clock
        self._backoff_s = backoff_s
        self._unreachable_retry_s = unreachable_retry_s
        self._watch_timeout_s = watch_timeout_s
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._recorded: dict[str, tuple[Any, ...]] = {}
        self._noted_events: set[tuple[str, int]] = set()
        self._states: dict[str, tuple[str, str, str]] = {}
        self._lock = threading.Lock()
        self._lost: set[str] = set()
        self.view = ClusterView(clock=clock)
        self.fires: dict[str, artifacts.Artifact] = {}
        ns = namespace
        self._watches = [
            _Watch(cluster.SNAPSHOTS, ns),
            _Watch(cluster.BACKUPS, ns),
            _Watch(cluster.CRONJOBS, ns),
            _Watch(cluster.JOBS, ns),
            _Watch(cluster.PODS, ns),
            _Watch(cluster.EVENTS, ns),
            _Watch(cluster.NODES, None),
            _Watch(cluster.VOLUMES, ns),
            _Watch(cluster.BACKUP_TARGETS, ns),
            _Watch(cluster.RECURRING_JOBS, ns),
        ]

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        for watch in self._watches:
            thread = threading.Thread(
                target=self._run, args=(watch,), name=f"recorder-{watch.resource.plural}", daemon=True
            )
            thread.start()
            self._threads.append(thread)

    def wait_synced(self, *, deadline_s: float) -> None:
        end = time.monotonic() + deadline_s
        for watch in self._watches:
            if not watch.synced.wait(timeout=max(0.0, end - time.monotonic())):
                raise WaitTimeout(
                    f"timed out after {deadline_s:.0f}s waiting for the first list of {watch.resource.plural}"
                )

    def stop(self, *, join_s: float = 10.0) -> None:
        self._stop.set()
        for watch in self._watches:
            stream = watch.stream
            if stream is not None:
                stream.close()
        for thread in self._threads:
            thread.join(timeout=join_s)

    def fires_snapshot(self) -> list[artifacts.Artifact]:
        """Every artifact seen so far, latest state each, deleted ones included (retain cleanup
        removes a tick's artifact soon after the next one is done; the tick was still fired)."""
        with self._lock:
            return list(self.fires.values())

    # -- the list/watch loop ----------------------------------------------------------------------

    def _run(self, watch: _Watch) -> None:
        resource_version: str | None = None
        blind_since: float | None = None
        failures = 0
        while not self._stop.is_set():
            try:
                if resource_version is None:
                    resource_version = self._relist(watch)
                    if blind_since is not None:
                        self._record_blind(watch, blind_since)
                        blind_since = None
                        with self._lock:
                            self._lost.discard(watch.resource.plural)
                    failures = 0
                resource_version = self._follow(watch, resource_version)
            except cluster.ExpiredError:
                log.info("watch %s: resourceVersion expired, re-listing", watch.resource.plural)
                resource_version = None
            except Exception as error:
                if self._stop.is_set():
                    break
                failures += 1
                if blind_since is None:
                    blind_since = self._clock()
                    self._log_lost(watch, error)
                resource_version = None
                delay = self._retry_delay(error, failures)
                log.debug(
                    "attempt %d: watch %s → %s; retry in %.1fs", failures, watch.resource.plural, error, delay
                )
                self._stop.wait(delay)  # backoff between reconnects; stop() cuts it short

    def _retry_delay(self, error: Exception, failures: int) -> float:
        # A server that does not answer (the control plane rebooting) costs nothing to ask again, and
        # every moment after it is back counts: the Nodes' Ready, the proof of each reboot, come
        # through these watches. A doubling backoff would leave them blind up to 1.6 s after it is
        # back. A server that answers with errors gets the doubling backoff.
        if isinstance(error, cluster.UnreachableError):
            return self._unreachable_retry_s
        return float(min(self._backoff_s[1], self._backoff_s[0] * 2 ** min(failures, 8)))

    def _log_lost(self, watch: _Watch, error: Exception) -> None:
        # An API outage cuts every watch at once: one warning for the first, the rest at info level
        # (each blind window is in the ledger anyway). A harness error is always loud.
        with self._lock:
            first = not self._lost
            self._lost.add(watch.resource.plural)
        if not isinstance(error, cluster.ClusterError):
            log.error("watch %s lost: %s", watch.resource.plural, error, exc_info=True)
        elif first:
            log.warning(
                "watch %s lost: %s (re-listing every watch once the API answers)",
                watch.resource.plural,
                error,
            )
        else:
            log.info("watch %s lost: %s", watch.resource.plural, error)

    def _relist(self, watch: _Watch) -> str:
        listed = self._api.list(
            watch.resource, namespace=watch.namespace, label_selector=watch.label_selector
        )
        gone = self.view.replace(watch.resource.plural, listed.items)
        with self._writer.batch():
            for obj in gone.values():
                self._on_change(watch.resource, "DELETED", obj)
            for obj in listed.items:
                self._on_change(watch.resource, "ADDED", obj)
        watch.synced.set()
        return listed.resource_version

    def _follow(self, watch: _Watch, resource_version: str) -> str | None:
        stream = self._api.watch(
            watch.resource,
            namespace=watch.namespace,
            resource_version=resource_version,
            label_selector=watch.label_selector,
            timeout_s=self._watch_timeout_s,
        )
        watch.stream = stream
        try:
            for batch in stream.batches():
                if self._stop.is_set():
                    break
                # One fsync per burst, before the next read: what was received is on disk before
                # the recorder waits again, at a fraction of an fsync per record's cost.
                with self._writer.batch():
                    for event in batch:
                        if event.resource_version:
                            resource_version = event.resource_version
                        if event.type != "BOOKMARK":
                            self.view.apply(watch.resource.plural, event.type, event.object)
                            self._on_change(watch.resource, event.type, event.object)
        finally:
            watch.stream = None
        return resource_version

    def _record_blind(self, watch: _Watch, since: float) -> None:
        self._write(
            {
                "type": "blind",
                "from": timestamps.to_rfc3339(since),
                "to": timestamps.to_rfc3339(self._clock()),
                "resource": watch.resource.plural,
            }
        )

    # -- what an event means ----------------------------------------------------------------------

    def _on_change(self, resource: Resource, event_type: str, obj: Obj) -> None:
        if resource is cluster.SNAPSHOTS:
            self._on_artifact(
                event_type,
                obj,
                artifacts.from_snapshot(obj, snapshot_jobs=self._snapshot_jobs, volumes=self._volumes),
            )
        elif resource is cluster.BACKUPS:
            artifact = artifacts.from_backup(
                obj, backup_jobs=self._backup_jobs, volumes=self._volumes, observed_at=self._clock()
            )
            self._on_artifact(event_type, obj, artifact)
        elif resource is cluster.EVENTS and event_type != "DELETED":
            self._on_event(obj)
        elif resource is cluster.BACKUP_TARGETS and event_type != "DELETED":
            self._on_condition_change("BackupTarget", obj, _target_state(obj))
        elif resource is cluster.NODES and event_type != "DELETED":
            state = _node_state(obj)
            self._on_condition_change("Node", obj, state)
            self._note_ready_boot(obj, ready=state[0] == "ok")

    def _note_ready_boot(self, node: Obj, *, ready: bool) -> None:
        # Back = Ready again after not Ready (a container restart keeps its boot id), or Ready with
        # a new boot id (a reboot faster than the node-monitor grace period never shows NotReady).
        name = node["metadata"]["name"]
        boot_id = str(((node.get("status") or {}).get("nodeInfo") or {}).get("bootID") or "")
        with self._lock:
            first_sight = name not in self._ready_boots
            before = self._ready_boots.get(name)
            self._ready_boots[name] = boot_id if ready else None
        if ready and not first_sight and before != boot_id and self._on_node_back is not None:
            self._on_node_back(name)

    def _on_condition_change(self, kind: str, obj: Obj, state: tuple[str, str, str]) -> None:
        """A note when a node's Ready or a backup target's availability changes: the story of the run."""
        name = obj["metadata"]["name"]
        key = f"{kind}/{name}"
        with self._lock:
            before = self._states.get(key)
            self._states[key] = state
        # At first sight only trouble is news (a backup target already down when the soak starts).
        if (before is None and state[0] == "ok") or (before is not None and before[0] == state[0]):
            return
        healthy, reason = state[0] == "ok", state[1]
        self._write(
            {
                "type": "note",
                "level": "info" if healthy else "warn",
                "text": f"{key}: {state[2]}" + (f" ({reason})" if reason else ""),
                "data": {"kind": kind, "name": name, "healthy": healthy, "reason": reason},
            }
        )

    def _on_artifact(self, event_type: str, obj: Obj, artifact: artifacts.Artifact | None) -> None:
        if artifact is None:
            return
        name = artifact.object
        with self._lock:
            if event_type == "DELETED":
                if self._recorded.pop(name, None) is None:
                    return
                record: dict[str, Any] = {
                    "type": "gone",
                    "job": artifact.job,
                    "volume": artifact.volume,
                    "object": name,
                }
            else:
                signature = (artifact.state, artifact.done, artifact.error)
                if self._recorded.get(name) == signature:
                    return
                self._recorded[name] = signature
                self.fires[name] = artifact
                record = artifact.as_record()
        # Written outside the lock: the fsync must not hold up the other watchers. One object's
        # changes all come through its own watcher thread, so its records stay in order.
        self._write(record)

    def _on_event(self, obj: Obj) -> None:
        reason = obj.get("reason", "")
        level = NOTABLE_EVENTS.get(reason)
        if level is None:
            return
        meta = obj.get("metadata") or {}
        key = (meta.get("uid") or meta.get("name", ""), int(obj.get("count") or 1))
        with self._lock:
            if key in self._noted_events:
                return
            self._noted_events.add(key)
        involved = obj.get("involvedObject") or {}
        self._write(
            {
                "type": "note",
                "level": level,
                "text": f"{involved.get('kind')}/{involved.get('name')}: {reason}: {obj.get('message', '')}",
                "data": {
                    "event": meta.get("name"),
                    "reason": reason,
                    "count": obj.get("count") or 1,
                    "object": {"kind": involved.get("kind"), "name": involved.get("name")},
                },
            }
        )

    def _write(self, record: dict[str, Any]) -> None:
        self._writer.append(record)


def _target_state(obj: Obj) -> tuple[str, str, str]:
    status = obj.get("status") or {}
    if status.get("available"):
        return ("ok", "", "available")
    reason = ""
    for condition in status.get("conditions") or []:
        if condition.get("type") == "Unavailable" and condition.get("status") == "True":
            reason = f"{condition.get('reason', '')}: {condition.get('message', '')}".strip(": ")
    return ("down", reason, "unavailable")


def _node_state(obj: Obj) -> tuple[str, str, str]:
    for condition in (obj.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            status = str(condition.get("status", "Unknown"))
            reason = str(condition.get("reason", ""))
            return ("ok" if status == "True" else "down", reason, f"Ready={status}")
    return ("down", "", "Ready=Unknown")
