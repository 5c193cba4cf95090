"""The reboot driver protocol, what drivers share, and `drivers_for`, the factory.

A driver reboots one node and proves it at the machine level. The caller's sequence is:

    old = driver.boot_id()                     # kernel boot id if readable (ssh), else None
    driver.reboot()                            # issue it; returns once the action was accepted
    evidence = driver.wait_down(deadline_s=…)  # proof it went down (or why none is observable)
    new = driver.wait_up(deadline_s=…)         # back; the NEW kernel boot id if readable
    ...
    driver.restore()                           # safety, always: power on what this driver stopped

`prove_reboot` runs that sequence and returns a `RebootProof`. A reboot that did not happen (the
node never went down, or came back with the same boot id) raises `RebootNotObserved`; a node that
does not come back within the deadline raises `NodeNotBack`; both say what was seen. Every wait polls
through `wait_for`: tenacity with a deadline, an attempt cap and a log line per attempt, on the
injectable `clock` and `sleep` of `DriverOptions`. A `Nudge` as that `sleep` lets someone who watches
the cluster cut the pauses short: when the Node turns Ready, the ssh probe runs at once instead of
at the next poll, so the poll interval does not add to the reboot's wait.

Boot ids are kernel boot ids (/proc/sys/kernel/random/boot_id), the same value the kubelet reports as
`status.nodeInfo.bootID`, so the cluster layer can compare them. Drivers that cannot read one (a
cloud driver without ssh, docker, k3d) return None and prove the restart by other means (instance
state, container start time); `Evidence.proven` says whether they could.
"""

from __future__ import annotations

import importlib
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Generic, Literal, Protocol, TypeVar, cast

import tenacity

from lhsoak import errors, inventory

logger = logging.getLogger(__name__)

T = TypeVar("T")
Clock = Callable[[], float]
Sleep = Callable[[float], None]
Phase = Literal["start", "down", "up", "failed"]


@dataclass(frozen=True)
class DriverOptions:
    """How drivers connect, poll and time out; shared by every backend."""

    insecure_host_keys: bool = False
    """Accept any ssh host key, logging a warning on every connection (False)."""
    connect_timeout_s: float = 10.0
    """Longest one ssh connection, one command or one cloud API call may take, in seconds (10)."""
    poll_interval_s: float = 2.0
    """Pause between two probes of a wait, in seconds (2)."""
    command_timeout_s: float = 120.0
    """Longest one blocking action may take: a k3d run, a container restart, in seconds (120)."""
    restore_deadline_s: float = 300.0
    """How long `restore` waits for a stopping machine to be stopped before starting it (300)."""
    clock: Clock = time.monotonic
    """Monotonic seconds, for deadlines (time.monotonic; tests pass a fake)."""
    sleep: Sleep = time.sleep
    """Sleeps between probes (time.sleep; tests pass a fake that advances their clock)."""

    def __post_init__(self) -> None:
        for name in ("connect_timeout_s", "poll_interval_s", "command_timeout_s", "restore_deadline_s"):
            if getattr(self, name) <= 0:
                raise errors.UsageError(f"{name} must be > 0, got {getattr(self, name)}")


class Nudge:
    """A `Sleep` that returns early when nudged: pauses between probes end when news arrives.

    Each sleeping thread wakes once per nudge; a nudge that came while a thread was probing ends that
    thread's next pause at once, so news is never missed between two looks.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._generation = 0
        self._seen = threading.local()

    def nudge(self) -> None:
        """Wake every pause in progress (and each thread's next one, if it has not woken since)."""
        with self._changed:
            self._generation += 1
            self._changed.notify_all()

    def sleep(self, seconds: float) -> None:
        with self._changed:
            seen = getattr(self._seen, "generation", None)
            if seen is None:
                seen = self._generation
            self._changed.wait_for(lambda: self._generation != seen, timeout=max(0.0, seconds))
            self._seen.generation = self._generation


class DriverError(Exception):
    """A driver could not do or prove what it was asked; the message says what was seen."""

    def __init__(self, message: str, *, node: str | None = None, seen: Iterable[str] = ()) -> None:
        self.node = node
        """The node concerned, when known."""
        self.seen = tuple(seen)
        """What the driver observed, oldest first (repeats collapsed)."""
        prefix = f"node {node}: " if node else ""
        suffix = f"; seen: {'; '.join(self.seen)}" if self.seen else ""
        super().__init__(f"{prefix}{message}{suffix}")


class AccessError(DriverError):
    """The driver cannot act on the node at all: unknown host key, refused credentials, no target."""


class RebootNotObserved(DriverError):
    """The reboot was issued but never seen: the node did not go down, or kept its boot id."""


class NodeNotBack(DriverError):
    """The node went down but did not come back within the deadline."""


@dataclass(frozen=True)
class Evidence:
    """What a driver saw that proves a point, or why nothing at the machine level could."""

    proven: bool
    """True if something was observed (a refused connection, a new boot id, a stopped state)."""
    detail: str
    """What was observed, or why it could not be."""


@dataclass(frozen=True)
class NotYet:
    """A probe's outcome: the awaited state is not there yet."""

    seen: str
    """What the probe saw instead."""


@dataclass(frozen=True)
class Done(Generic[T]):
    """A probe's outcome: the awaited state is there."""

    value: T
    """What the wait returns."""
    seen: str
    """What the probe saw, for the log."""


Probe = Callable[[float], "Done[T] | NotYet"]
"""One look at the node, given the seconds left before the deadline (to bound its own timeouts)."""


def wait_for(
    probe: Probe[T],
    *,
    node: str,
    awaiting: str,
    deadline_s: float,
    options: DriverOptions,
    failure: type[DriverError] = DriverError,
) -> T:
    """Probe until it is Done or `deadline_s` passed; `failure` with what was seen on a timeout.

    Logs `node N: attempt n/N: <awaiting> → <seen>` for every probe.
    """
    started = options.clock()
    attempts = max(1, math.ceil(deadline_s / options.poll_interval_s) + 1)
    history: list[str] = []

    def remaining_s() -> float:
        return max(0.0, deadline_s - (options.clock() - started))

    def attempt() -> Done[T] | NotYet:
        outcome = probe(remaining_s())
        history.append(outcome.seen)
        logger.info("node %s: attempt %d/%d: %s → %s", node, len(history), attempts, awaiting, outcome.seen)
        return outcome

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_result(lambda outcome: isinstance(outcome, NotYet)),
        stop=lambda state: state.attempt_number >= attempts or remaining_s() <= 0,
        wait=lambda _state: min(options.poll_interval_s, remaining_s()),
        sleep=options.sleep,
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
    )
    outcome = retrying(attempt)
    if isinstance(outcome, Done):
        return outcome.value
    raise failure(
        f"{awaiting}: not seen within {deadline_s:g}s ({len(history)} attempts)",
        node=node,
        seen=collapse(history),
    )


def collapse(history: Iterable[str], *, keep: int = 6) -> list[str]:
    """Consecutive repeats as one entry with a count; only the last `keep` entries."""
    groups: list[tuple[str, int]] = []
    for seen in history:
        if groups and groups[-1][0] == seen:
            groups[-1] = (seen, groups[-1][1] + 1)
        else:
            groups.append((seen, 1))
    shown = [seen if count == 1 else f"{seen} (×{count})" for seen, count in groups]
    if len(shown) > keep:
        return [f"… {len(shown) - keep} earlier", *shown[-keep:]]
    return shown


class RebootDriver(Protocol):
    """Reboots one node and proves it at the machine level; one method per action."""

    @property
    def node(self) -> str:
        """The Kubernetes Node name."""

    @property
    def kind(self) -> inventory.DriverKind:
        """Which backend this is (ssh, aws, gcp, azure, docker, k3d)."""

    @property
    def restarts_kernel(self) -> bool:
        """True if a reboot starts a new kernel, so the Node's `status.nodeInfo.bootID` changes.

        False for container nodes (docker/kind, k3d): they share the host's kernel.
        """

    def check(self) -> None:
        """Read-only preflight: the node is reachable and the driver can act on it.

        Raises AccessError (host key, credentials, missing target) or DriverError (unreachable).
        """

    def boot_id(self) -> str | None:
        """The node's current kernel boot id if this driver can read one, else None."""

    def reboot(self) -> None:
        """Issue the reboot; returns once it was accepted (the ssh session dropping is fine)."""

    def wait_down(self, *, deadline_s: float) -> Evidence:
        """Prove the node went down; RebootNotObserved with what was seen if it did not."""

    def wait_up(self, *, deadline_s: float) -> str | None:
        """Wait until the node is back; its NEW boot id if readable; NodeNotBack on the deadline."""

    def restore(self) -> None:
        """Safety: power on a node this driver powered off and did not start again (idempotent)."""


@dataclass(frozen=True)
class RebootProof:
    """What was proven about one reboot at the machine level."""

    node: str
    """The Kubernetes Node name."""
    driver: inventory.DriverKind
    """The backend that rebooted it."""
    old_boot_id: str | None
    """Kernel boot id before, if the driver could read it."""
    new_boot_id: str | None
    """Kernel boot id after, if the driver could read it; never equal to `old_boot_id`."""
    down: Evidence
    """What proved it went down."""
    issued_at: float
    """Clock reading when the reboot was issued, in seconds."""
    down_at: float
    """Clock reading when it was seen down, in seconds."""
    up_at: float
    """Clock reading when it was seen back, in seconds."""

    @property
    def machine_proven(self) -> bool:
        """True if the machine itself showed the reboot (a new boot id, or an observed outage)."""
        new_boot = self.new_boot_id is not None and self.new_boot_id != self.old_boot_id
        return new_boot or self.down.proven

    @property
    def outage_s(self) -> float:
        """Seconds from issuing the reboot to seeing the node back."""
        return self.up_at - self.issued_at


def prove_reboot(
    driver: RebootDriver,
    *,
    down_deadline_s: float,
    up_deadline_s: float,
    clock: Clock = time.monotonic,
    on_phase: Callable[[Phase, str | None], None] | None = None,
) -> RebootProof:
    """Reboot through `driver` and prove it; `restore()` runs if any step fails.

    `on_phase(phase, boot_id)` is told start (old id), down, up (new id) and failed (old id).
    """
    report = on_phase or (lambda _phase, _boot_id: None)
    old = driver.boot_id()
    report("start", old)
    issued_at = clock()
    try:
        driver.reboot()
        down = driver.wait_down(deadline_s=down_deadline_s)
        down_at = clock()
        report("down", old)
        new = driver.wait_up(deadline_s=up_deadline_s)
        if old is not None and new == old:
            raise RebootNotObserved(
                f"came back with the same boot id {old}: it did not reboot", node=driver.node
            )
    except BaseException:
        report("failed", old)
        _restore_quietly(driver)
        raise
    proof = RebootProof(
        node=driver.node,
        driver=driver.kind,
        old_boot_id=old,
        new_boot_id=new,
        down=down,
        issued_at=issued_at,
        down_at=down_at,
        up_at=clock(),
    )
    report("up", new)
    if not proof.machine_proven:
        logger.warning(
            "node %s: the %s driver could not prove the reboot at the machine level (%s); "
            "only the Kubernetes bootID can",
            driver.node,
            driver.kind,
            down.detail,
        )
    return proof


def _restore_quietly(driver: RebootDriver) -> None:
    try:
        driver.restore()
    except Exception:
        # The original failure is what the caller must see; a failed restore is logged loudly.
        logger.exception("node %s: restore after a failed reboot failed too", driver.node)


# --- the factory -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Backend:
    module: str
    """The backend module, imported only when a node uses it."""
    extra: str | None
    """The pip extra that installs its SDK (None: nothing to install)."""
    sdk_roots: tuple[str, ...]
    """Top-level packages of its SDK: an import error naming one of them means 'not installed'."""


_BACKENDS: dict[inventory.DriverKind, _Backend] = {
    "ssh": _Backend("lhsoak.chaos.ssh", None, ("paramiko",)),
    "aws": _Backend("lhsoak.chaos.aws", "aws", ("boto3", "botocore")),
    "gcp": _Backend("lhsoak.chaos.gcp", "gcp", ("google",)),
    "azure": _Backend("lhsoak.chaos.azure", "azure", ("azure",)),
    "docker": _Backend("lhsoak.chaos.docker", "docker", ("docker",)),
    "k3d": _Backend("lhsoak.chaos.k3d", None, ()),
}


class _BackendModule(Protocol):
    def build(self, node: inventory.Node, *, options: DriverOptions) -> RebootDriver: ...


def drivers_for(
    inv: inventory.Inventory,
    node_names: Iterable[str] | None = None,
    *,
    options: DriverOptions | None = None,
) -> dict[str, RebootDriver]:
    """One driver per named node (all when None), by the node's power driver; nothing is contacted.

    UsageError for a node the inventory lacks, or whose backend's SDK is not installed (naming the
    pip extra), or whose tool is missing (k3d).
    """
    chosen = options or DriverOptions()
    drivers: dict[str, RebootDriver] = {}
    for name in inv.names if node_names is None else node_names:
        node = inv.node(name)
        drivers[name] = _backend_module(node).build(node, options=chosen)
    return drivers


def _backend_module(node: inventory.Node) -> _BackendModule:
    kind = node.power_driver
    backend = _BACKENDS[kind]
    try:
        module = cast(_BackendModule, importlib.import_module(backend.module))
    except ModuleNotFoundError as error:
        missing_root = (error.name or "").split(".")[0]
        if missing_root not in backend.sdk_roots:
            raise
        install = f"pip install 'lhsoak[{backend.extra}]'" if backend.extra else "reinstall lhsoak"
        raise errors.UsageError(
            f"node {node.name} uses the {kind} driver, whose SDK ({missing_root}) is not installed: {install}"
        ) from None
    return module
