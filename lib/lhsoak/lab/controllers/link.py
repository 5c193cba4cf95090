"""Whether the API endpoint is reachable, and the writes that wait for it.

While the control plane is down, the kubelets on the other nodes keep running their pods, but
nothing they report reaches the API: their status writes queue here (the latest per object wins, as
a kubelet re-sends current status rather than history) and are applied when the API is back. A
kubelet that dies meanwhile (its node goes down) loses what it had queued. The job pods' API calls
simply wait for the API (upstream retries for about a minute; lab outages are shorter).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Hashable

from lhsoak.lab.store import ApiError

logger = logging.getLogger(__name__)

Write = Callable[[], object]


class ApiLink:
    """Reachability of the API endpoint from the nodes, with per-writer queues of deferred writes."""

    def __init__(self) -> None:
        self._up = True
        self._deferred: dict[str, dict[Hashable, Write]] = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._on_up: list[Callable[[], None]] = []

    @property
    def up(self) -> bool:
        """True while the API endpoint answers."""
        return self._up

    def on_up(self, callback: Callable[[], None]) -> None:
        """Call `callback` each time the API comes back (after the deferred writes are applied)."""
        self._on_up.append(callback)

    def write(self, writer: str, key: Hashable, write: Write) -> None:
        """Run `write` now if the API is up, else queue it under `writer` (replacing one with `key`).

        An ApiError from the write is logged: the writer reconciles again on its next change.
        """
        if self._up:
            _run(writer, write)
            return
        queue = self._deferred.setdefault(writer, {})
        queue.pop(key, None)
        queue[key] = write

    def drop(self, writer: str) -> None:
        """Forget what `writer` queued (it died before the API came back)."""
        self._deferred.pop(writer, None)

    async def wait_up(self) -> None:
        """Return once the API is up."""
        while not self._up:
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    def set_up(self, up: bool) -> None:
        """Mark the API reachable or not; coming up applies the queued writes, in order."""
        if up == self._up:
            return
        self._up = up
        if not up:
            return
        deferred, self._deferred = self._deferred, {}
        for writer, queue in deferred.items():
            for write in queue.values():
                _run(writer, write)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)
        for callback in list(self._on_up):
            callback()


def _run(writer: str, write: Write) -> None:
    try:
        write()
    except ApiError as exc:
        logger.info("%s: write failed: %s", writer, exc.message)
