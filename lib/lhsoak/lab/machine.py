"""Emulated machines: the power/boot state machine behind every lab node.

A `Machine` is one host. Its transitions are driven by loop timers (never blocking) and announced to
subscribers as `MachineEvent`s, synchronously in the event loop, in this order:

    reboot():            shutdown-started, kubelet-stopped, powered-off, boot-started, booted,
                         kubelet-started
    power_off():         kubelet-stopped, powered-off              (hard; graceful: shutdown-started first)
    power_on():          boot-started, booted, kubelet-started

Every "kubelet-started" is eventually matched by one "kubelet-stopped" before "powered-off", so a
subscriber can count on the pair. Subscribers must ignore kinds they do not know.

Requests that do not fit the current state are ignored and return False, never queued: a reboot
asked while the machine is already going down or coming up is absorbed by the transition in flight
(the boot id changes anyway, which is what a caller proving the reboot looks at), and a reboot of a
powered-off machine does nothing, as on a real host whose power button nobody pressed.

All methods must be called from the loop's thread; the lab is one asyncio loop.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

logger = logging.getLogger(__name__)

Role = Literal["control-plane", "worker"]
MachineState = Literal["running", "shutting-down", "off", "booting"]
EventKind = Literal[
    "shutdown-started",
    "kubelet-stopped",
    "powered-off",
    "boot-started",
    "booted",
    "kubelet-started",
]
Clock = Callable[[], float]


@dataclass(frozen=True)
class MachineTimings:
    """How long each emulated power step takes; every step is stretched by a random jitter."""

    shutdown_s: float = 0.2
    """Time from a soft shutdown request until the machine is powered off, in seconds (0.2)."""
    down_s: float = 0.5
    """Time a rebooting machine stays powered off before it starts booting, in seconds (0.5)."""
    boot_s: float = 0.3
    """Time from power-on until sshd answers and the new boot id is visible, in seconds (0.3)."""
    kubelet_start_s: float = 0.3
    """Time from boot until the kubelet is active, in seconds (0.3)."""
    jitter: float = 0.1
    """Each step lasts its duration times 1 ± up to this fraction, drawn from the seeded rng (0.1)."""

    def __post_init__(self) -> None:
        for name in ("shutdown_s", "down_s", "boot_s", "kubelet_start_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"MachineTimings.{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.jitter < 1:
            raise ValueError(f"MachineTimings.jitter must be in [0, 1), got {self.jitter}")


@dataclass(frozen=True)
class MachineEvent:
    """One transition of one machine, as seen right after it happened."""

    kind: EventKind
    """What happened."""
    machine: str
    """The machine's name (the node name)."""
    role: Role
    """The machine's role."""
    boot_id: str
    """The boot id after the transition (the new one on "booted")."""
    state: MachineState
    """The power state after the transition."""
    at: float
    """When it happened, epoch seconds from the machine's clock."""


Listener = Callable[[MachineEvent], None]


class Machine:
    """One emulated host: power state, boot id, kubelet; it starts running with the kubelet active."""

    def __init__(
        self,
        name: str,
        *,
        role: Role,
        rng: random.Random,
        timings: MachineTimings | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.name = name
        self.role: Role = role
        self.timings = timings or MachineTimings()
        self.clock = clock
        self._rng = rng
        self.boot_id = self._new_boot_id()
        self.state: MachineState = "running"
        self.booted_at = clock()
        self.kubelet_active = True
        self.rebooting = False
        """True from a reboot request until the machine is running again (EC2 keeps it "running")."""
        self._pending: asyncio.TimerHandle | None = None
        self._listeners: list[Listener] = []

    def __repr__(self) -> str:
        return (
            f"Machine({self.name!r}, state={self.state}, boot_id={self.boot_id}, "
            f"kubelet_active={self.kubelet_active}, rebooting={self.rebooting})"
        )

    def describe(self) -> str:
        """One line for logs and timeout messages."""
        return (
            f"{self.name}: state={self.state} boot_id={self.boot_id} "
            f"kubelet_active={self.kubelet_active} rebooting={self.rebooting}"
        )

    def uptime_s(self) -> float:
        """Seconds since the last boot completed, from the machine's clock."""
        return self.clock() - self.booted_at

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener` for each transition from now on; returns a function that unsubscribes."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    def reboot(self) -> bool:
        """Soft reboot: shut down, stay off for `down_s`, boot with a new boot id.

        Returns False (and does nothing) unless the machine is running.
        """
        if self.state != "running":
            logger.info("%s: reboot ignored, machine is %s", self.name, self.state)
            return False
        self.rebooting = True
        self._begin_shutdown()
        return True

    def power_off(self, *, graceful: bool = False) -> bool:
        """Power the machine off and keep it off; graceful first goes through a soft shutdown.

        A hard power-off cuts a shutdown or boot in flight short. Returns False if already off
        and not about to boot.
        """
        if self.state == "off" and self._pending is None:
            return False
        self.rebooting = False
        if graceful and self.state == "running":
            self._begin_shutdown()
        elif not (graceful and self.state == "shutting-down"):
            self._cut_power()
        return True

    def power_on(self) -> bool:
        """Boot a powered-off machine; returns False (and does nothing) if it is not off."""
        if self.state != "off" or self._pending is not None:
            logger.info("%s: power-on ignored, machine is %s", self.name, self.state)
            return False
        self._begin_boot()
        return True

    async def wait_for(
        self, predicate: Callable[[Machine], bool], *, timeout_s: float, what: str = ""
    ) -> Machine:
        """Wait until `predicate(machine)` holds; TimeoutError says what was awaited and seen."""
        if predicate(self):
            return self
        satisfied = asyncio.get_running_loop().create_future()

        def check(_event: MachineEvent) -> None:
            if not satisfied.done() and predicate(self):
                satisfied.set_result(None)

        unsubscribe = self.subscribe(check)
        try:
            async with asyncio.timeout(timeout_s):
                await satisfied
        except TimeoutError:
            awaited = what or getattr(predicate, "__name__", "predicate")
            raise TimeoutError(f"waited {timeout_s}s for {awaited}; last seen {self.describe()}") from None
        finally:
            unsubscribe()
        return self

    def _begin_shutdown(self) -> None:
        self._set_state("shutting-down", "shutdown-started")
        self._stop_kubelet()
        self._schedule(self.timings.shutdown_s, self._finish_shutdown)

    def _finish_shutdown(self) -> None:
        self._set_state("off", "powered-off")
        if self.rebooting:
            self._schedule(self.timings.down_s, self._begin_boot)

    def _cut_power(self) -> None:
        self._cancel_pending()
        self._stop_kubelet()
        if self.state != "off":
            self._set_state("off", "powered-off")

    def _begin_boot(self) -> None:
        self._set_state("booting", "boot-started")
        self._schedule(self.timings.boot_s, self._finish_boot)

    def _finish_boot(self) -> None:
        self.boot_id = self._new_boot_id()
        self.booted_at = self.clock()
        self.rebooting = False
        self._set_state("running", "booted")
        self._schedule(self.timings.kubelet_start_s, self._start_kubelet)

    def _start_kubelet(self) -> None:
        self.kubelet_active = True
        self._emit("kubelet-started")

    def _stop_kubelet(self) -> None:
        if self.kubelet_active:
            self.kubelet_active = False
            self._emit("kubelet-stopped")

    def _set_state(self, state: MachineState, kind: EventKind) -> None:
        self.state = state
        self._emit(kind)

    def _schedule(self, duration_s: float, step: Callable[[], None]) -> None:
        self._cancel_pending()
        delay_s = duration_s * (1 + self._rng.uniform(-self.timings.jitter, self.timings.jitter))

        def run_step() -> None:
            self._pending = None
            step()

        self._pending = asyncio.get_running_loop().call_later(delay_s, run_step)

    def _cancel_pending(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None

    def _emit(self, kind: EventKind) -> None:
        event = MachineEvent(
            kind=kind,
            machine=self.name,
            role=self.role,
            boot_id=self.boot_id,
            state=self.state,
            at=self.clock(),
        )
        logger.debug("%s: %s (boot_id=%s)", self.name, kind, self.boot_id)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:
                # One broken subscriber must not stop the machine or starve the others.
                logger.exception("%s: listener %r failed on %s", self.name, listener, kind)

    def _new_boot_id(self) -> str:
        return str(uuid.UUID(int=self._rng.getrandbits(128), version=4))


class MachineFleet:
    """All machines of a lab, by name."""

    def __init__(self, machines: Iterable[Machine]) -> None:
        self._machines: dict[str, Machine] = {}
        for machine in machines:
            if machine.name in self._machines:
                raise ValueError(f"duplicate machine name {machine.name!r}")
            self._machines[machine.name] = machine

    @classmethod
    def build(
        cls,
        roles: Mapping[str, Role],
        *,
        timings: MachineTimings | None = None,
        seed: int = 0,
        clock: Clock = time.time,
    ) -> MachineFleet:
        """One running machine per name; each gets its own rng from `seed` and its name."""
        return cls(
            Machine(
                name,
                role=role,
                rng=random.Random(f"{seed}:{name}"),
                timings=timings,
                clock=clock,
            )
            for name, role in roles.items()
        )

    def __getitem__(self, name: str) -> Machine:
        try:
            return self._machines[name]
        except KeyError:
            raise KeyError(f"no machine named {name!r}; have {sorted(self._machines)}") from None

    def __contains__(self, name: object) -> bool:
        return name in self._machines

    def __iter__(self) -> Iterator[Machine]:
        return iter(self._machines.values())

    def __len__(self) -> int:
        return len(self._machines)

    @property
    def names(self) -> list[str]:
        """Machine names in creation order."""
        return list(self._machines)

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Subscribe `listener` to every machine; returns a function that unsubscribes from all."""
        unsubscribers = [machine.subscribe(listener) for machine in self]

        def unsubscribe() -> None:
            for unsubscribe_one in unsubscribers:
                unsubscribe_one()

        return unsubscribe

    async def wait_for(
        self,
        name: str,
        predicate: Callable[[Machine], bool],
        *,
        timeout_s: float,
        what: str = "",
    ) -> Machine:
        """Wait until `predicate` holds for machine `name` (see `Machine.wait_for`)."""
        return await self[name].wait_for(predicate, timeout_s=timeout_s, what=what)
