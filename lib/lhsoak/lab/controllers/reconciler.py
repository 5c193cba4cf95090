"""The shape of every lab controller: a work queue of object keys, drained on the event loop.

Like client-go's workqueue behind an informer: store events map to keys, a key queued twice is
reconciled once, `enqueue_after` keeps the earliest wake-up, and reconcile() returns when to look
again (a duration, as upstream's requeueAfter) or None. Nothing polls: keys arrive from store
events, machine events and timers only.

Controllers of the control plane are paused while it is down: they drop their queue and timers
and, when resumed, reconcile every object again — the informer re-list a restarted
kube-controller-manager does — which is how they catch up.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import ClassVar

from lhsoak.lab.controllers.link import ApiLink
from lhsoak.lab.controllers.meta import Key
from lhsoak.lab.kinds import Kind
from lhsoak.lab.machine import MachineEvent, MachineFleet
from lhsoak.lab.profiles import Profile
from lhsoak.lab.store import Store, WatchEvent

logger = logging.getLogger(__name__)

Clock = Callable[[], float]

# A reconcile that raised is retried after this long (client-go's rate limiter starts at 5 ms and
# backs off; one fixed short delay keeps a lab bug visible without spinning).
_RETRY_AFTER_ERROR_S = 0.5


@dataclass
class Context:
    """What every controller of one lab shares."""

    store: Store
    profile: Profile
    fleet: MachineFleet
    link: ApiLink
    clock: Clock
    rng: random.Random = field(default_factory=random.Random)

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The lab's event loop (every controller runs in it)."""
        return asyncio.get_running_loop()

    def jittered(self, duration_s: float) -> float:
        """`duration_s` with the profile's jitter applied."""
        return self.profile.jittered(duration_s, self.rng)


class Reconciler:
    """Base of a controller: override `observe`, `reconcile` and `all_keys`."""

    name: ClassVar[str] = "reconciler"
    kinds: ClassVar[tuple[Kind, ...]] = ()
    """Kinds whose store events reach `observe`."""
    follows_machines: ClassVar[bool] = False
    """True: `on_machine` hears every machine transition from start to stop, pauses included (a
    machine going down is a fact of the world, not news that waits for the API)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self._running = False
        self._fresh = True
        self._unsubscribe_machines: Callable[[], None] | None = None
        self._queue: dict[Key, None] = {}
        self._drain_handle: asyncio.Handle | None = None
        self._timers: dict[Key, tuple[float, asyncio.TimerHandle]] = {}

    @property
    def running(self) -> bool:
        """True between start()/resume() and pause()/stop()."""
        return self._running

    # -- to override --

    def observe(self, event: WatchEvent) -> None:
        """Map a store event to keys to reconcile (called only while running)."""

    def reconcile(self, key: Key) -> float | None:
        """Bring one object towards its desired state; return seconds until the next look, or None."""
        raise NotImplementedError

    def all_keys(self) -> Iterable[Key]:
        """Every key to reconcile on start and resume (the informer's initial list)."""
        return ()

    def on_machine(self, event: MachineEvent) -> None:
        """A machine transition (only with `follows_machines`)."""

    def on_fresh_start(self) -> None:
        """Hook run when the controller starts after being made or stopped (not on resume)."""

    def on_start(self) -> None:
        """Hook run when the controller starts or resumes, before the resync."""

    def on_pause(self) -> None:
        """Hook run when the controller pauses or stops."""

    # -- lifecycle --

    def start(self) -> None:
        """Begin reconciling: every existing object first."""
        self._running = True
        if self._fresh:
            self._fresh = False
            if self.follows_machines:
                self._unsubscribe_machines = self.ctx.fleet.subscribe(self.on_machine)
            self.on_fresh_start()
        self.on_start()
        for key in self.all_keys():
            self.enqueue(key)

    def pause(self) -> None:
        """Stop reconciling and forget queued work (resume re-lists)."""
        if not self._running:
            return
        self._running = False
        self._cancel_all()
        self.on_pause()

    def resume(self) -> None:
        """Start again after a pause, reconciling every object (catch-up)."""
        if not self._running:
            self.start()

    def stop(self) -> None:
        """Stop following the world; a later start is a fresh one."""
        self.pause()
        if self._unsubscribe_machines is not None:
            self._unsubscribe_machines()
            self._unsubscribe_machines = None
        self._fresh = True

    # -- queueing --

    def enqueue(self, key: Key) -> None:
        """Reconcile `key` soon (once, however often it is enqueued before that)."""
        if not self._running:
            return
        self._queue[key] = None
        if self._drain_handle is None:
            self._drain_handle = self.ctx.loop.call_soon(self._drain)

    def enqueue_after(self, key: Key, delay_s: float) -> None:
        """Reconcile `key` after `delay_s` seconds, unless an earlier wake-up is already set."""
        if not self._running:
            return
        if delay_s <= 0:
            self.enqueue(key)
            return
        due = self.ctx.loop.time() + delay_s
        existing = self._timers.get(key)
        if existing is not None:
            if existing[0] <= due:
                return
            existing[1].cancel()

        def fire() -> None:
            self._timers.pop(key, None)
            self.enqueue(key)

        self._timers[key] = (due, self.ctx.loop.call_at(due, fire))

    def _drain(self) -> None:
        self._drain_handle = None
        keys = list(self._queue)
        self._queue.clear()
        for key in keys:
            if not self._running:
                return
            try:
                requeue_s = self.reconcile(key)
            except Exception:
                logger.exception("%s: reconcile of %s/%s failed", self.name, *key)
                requeue_s = _RETRY_AFTER_ERROR_S
            if requeue_s is not None:
                self.enqueue_after(key, requeue_s)

    def _cancel_all(self) -> None:
        self._queue.clear()
        if self._drain_handle is not None:
            self._drain_handle.cancel()
            self._drain_handle = None
        for _, handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
