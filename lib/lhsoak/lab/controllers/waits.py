"""Waiting for one object to reach a state, driven by store events (no polling)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from lhsoak.lab.controllers.meta import Obj
from lhsoak.lab.kinds import Kind
from lhsoak.lab.store import NotFound, Store, WatchEvent

Predicate = Callable[[Obj], bool]
_WaitKey = tuple[Kind, str, str]


class WaitTimeout(Exception):
    """The object did not reach the state in time; the message says what was awaited and seen."""


@dataclass
class _Waiter:
    predicate: Predicate
    future: asyncio.Future[Obj | None]


class ObjectWaits:
    """Futures resolved by store events for one object each; feed it every store event."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._waiters: dict[_WaitKey, list[_Waiter]] = {}

    def observe(self, event: WatchEvent) -> None:
        """Resolve the waiters of the object this event is about."""
        meta = event.object["metadata"]
        key = (event.kind, str(meta.get("namespace") or ""), str(meta["name"]))
        waiters = self._waiters.get(key)
        if not waiters:
            return
        for waiter in list(waiters):
            if waiter.future.done():
                continue
            if event.type == "DELETED":
                waiter.future.set_result(None)
            elif waiter.predicate(event.object):
                waiter.future.set_result(event.object)

    async def until(
        self,
        kind: Kind,
        name: str,
        *,
        namespace: str,
        predicate: Predicate,
        what: str,
        timeout_s: float | None = None,
    ) -> Obj | None:
        """The object once `predicate` holds; None if it is (or gets) deleted; WaitTimeout after
        `timeout_s` (None: wait for ever, as upstream waits on a backup)."""
        try:
            current = self._store.get(kind, name, namespace=namespace or None)
        except NotFound:
            return None
        if predicate(current):
            return current
        key = (kind, namespace, name)
        waiter = _Waiter(predicate, asyncio.get_running_loop().create_future())
        self._waiters.setdefault(key, []).append(waiter)
        try:
            async with asyncio.timeout(timeout_s):
                return await waiter.future
        except TimeoutError:
            try:
                seen = self._store.get(kind, name, namespace=namespace or None).get("status")
            except NotFound:
                seen = "deleted"
            raise WaitTimeout(f"waited {timeout_s}s for {what}; last seen status {seen}") from None
        finally:
            remaining = [w for w in self._waiters.get(key, []) if w is not waiter]
            if remaining:
                self._waiters[key] = remaining
            else:
                self._waiters.pop(key, None)
