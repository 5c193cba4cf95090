"""Store watches: initial state, replay from a resourceVersion, 410 Gone, selectors, outage."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from lhsoak.lab import kinds, store
from lhsoak.lab.store import Store, WatchEvent, WatchStream

Obj = dict[str, Any]


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(test(), timeout=5))


def fresh(history: int = 20000) -> Store:
    s = Store(history=history)
    s.create(kinds.NAMESPACE, {"metadata": {"name": "default"}})
    return s


def pod(name: str, **meta: Any) -> Obj:
    return {"metadata": {"name": name, "namespace": "default", **meta}, "spec": {}}


async def take(stream: WatchStream, count: int) -> list[WatchEvent]:
    events: list[WatchEvent] = []
    while len(events) < count:
        event = await stream.next_event(timeout_s=2)
        assert event is not None, (
            f"waited for {count} events, got {[(e.type, e.resource_version) for e in events]}"
        )
        events.append(event)
    return events


def test_watch_without_version_starts_with_current_objects() -> None:
    async def body() -> None:
        api = fresh()
        api.create(kinds.POD, pod("a"))
        api.create(kinds.POD, pod("b"))
        stream = api.watch(kinds.POD)
        api.delete(kinds.POD, "a", namespace="default")
        events = await take(stream, 3)
        assert [(e.type, e.object["metadata"]["name"]) for e in events] == [
            ("ADDED", "a"),
            ("ADDED", "b"),
            ("DELETED", "a"),
        ]
        assert events[2].resource_version == api.resource_version

    run(body)


def test_watch_from_version_replays_what_came_after() -> None:
    async def body() -> None:
        api = fresh()
        created = api.create(kinds.POD, pod("a"))
        api.mutate(kinds.POD, "a", lambda o: o["metadata"].update(labels={"x": "1"}), namespace="default")
        api.create(kinds.NODE, {"metadata": {"name": "n"}})
        api.delete(kinds.POD, "a", namespace="default")
        stream = api.watch(kinds.POD, resource_version=int(created["metadata"]["resourceVersion"]))
        events = await take(stream, 2)
        assert [e.type for e in events] == ["MODIFIED", "DELETED"]
        assert events[1].object["metadata"]["labels"] == {"x": "1"}, "DELETED carries the last state"
        assert stream.drain_nowait() == []

    run(body)


def test_watch_from_a_compacted_version_is_gone() -> None:
    api = fresh(history=3)
    for i in range(5):
        api.create(kinds.POD, pod(f"p{i}"))
    with pytest.raises(store.Gone) as info:
        api.watch(kinds.POD, resource_version=1)
    assert info.value.code == 410
    assert info.value.reason == "Expired"
    assert api.watch(kinds.POD, resource_version=api.oldest_resource_version) is not None


def test_selector_watch_turns_label_changes_into_added_and_deleted() -> None:
    async def body() -> None:
        api = fresh()
        api.create(kinds.POD, pod("a"))
        stream = api.watch(kinds.POD, label_selector="app=x", resource_version=api.resource_version)
        api.mutate(kinds.POD, "a", lambda o: o["metadata"].update(labels={"app": "x"}), namespace="default")
        api.mutate(kinds.POD, "a", lambda o: o["spec"].update(nodeName="n"), namespace="default")
        api.mutate(kinds.POD, "a", lambda o: o["metadata"].update(labels={"app": "y"}), namespace="default")
        events = await take(stream, 3)
        assert [e.type for e in events] == ["ADDED", "MODIFIED", "DELETED"]
        assert events[2].object["metadata"]["labels"] == {"app": "x"}
        assert events[2].object["metadata"]["resourceVersion"] == str(api.resource_version)

    run(body)


def test_namespace_watch_sees_only_its_namespace() -> None:
    async def body() -> None:
        api = fresh()
        api.create(kinds.NAMESPACE, {"metadata": {"name": "other"}})
        stream = api.watch(kinds.POD, namespace="other", resource_version=api.resource_version)
        api.create(kinds.POD, pod("a"))
        api.create(kinds.POD, {"metadata": {"name": "b", "namespace": "other"}})
        events = await take(stream, 1)
        assert events[0].object["metadata"]["name"] == "b"

    run(body)


def test_end_watches_ends_streams_and_keeps_state() -> None:
    async def body() -> None:
        api = fresh()
        api.create(kinds.POD, pod("a"))
        version = api.resource_version
        stream = api.watch(kinds.POD, resource_version=version)
        api.end_watches()
        assert [e async for e in stream] == []
        assert stream.closed
        assert api.resource_version == version
        assert api.get(kinds.POD, "a", namespace="default")["metadata"]["name"] == "a"

    run(body)


def test_next_event_times_out_with_none() -> None:
    async def body() -> None:
        api = fresh()
        stream = api.watch(kinds.POD, resource_version=api.resource_version)
        assert await stream.next_event(timeout_s=0.01) is None
        assert not stream.closed

    run(body)


def test_watch_objects_are_copies_by_default() -> None:
    async def body() -> None:
        api = fresh()
        stream = api.watch(kinds.POD, resource_version=api.resource_version)
        api.create(kinds.POD, pod("a"))
        (event,) = await take(stream, 1)
        event.object["metadata"]["name"] = "changed"
        assert api.get(kinds.POD, "a", namespace="default")["metadata"]["name"] == "a"

    run(body)


def test_slow_watcher_is_dropped_not_buffered_forever() -> None:
    async def body() -> None:
        api = Store(max_watch_pending=3)
        stream = api.watch(kinds.NAMESPACE, resource_version=api.resource_version)
        for i in range(5):
            api.create(kinds.NAMESPACE, {"metadata": {"name": f"n{i}"}})
        assert stream.closed
        assert await stream.next_event(timeout_s=0.01) is None

    run(body)


def test_a_bookmark_never_runs_ahead_of_an_undelivered_event() -> None:
    async def body() -> None:
        api = fresh()
        stream = api.watch(kinds.POD, resource_version=api.resource_version)
        api.create(kinds.NAMESPACE, {"metadata": {"name": "other"}})
        assert stream.bookmark_version() == api.resource_version, "nothing of this watch is pending"

        first = api.create(kinds.POD, pod("a"))
        api.create(kinds.POD, pod("b"))
        # A client that resumed from this bookmark after a cut connection must still get "a".
        assert stream.bookmark_version() == int(first["metadata"]["resourceVersion"]) - 1

        await take(stream, 2)
        assert stream.bookmark_version() == api.resource_version

    run(body)
