"""One driver for cloud machines (EC2, Compute Engine, Azure VMs), and what their SDK wrappers share.

A provider module (aws, gcp, azure) wraps one instance in a `CloudMachine`: its power state and the
restart/stop/start calls. `CloudDriver` turns that into a `RebootDriver`:

- restart mode: the provider's restart/reset. Every provider keeps reporting "running" through it,
  so going down is observable only through ssh beside the power driver (the boot id); without ssh
  the proof is left to the Kubernetes bootID (`Evidence.proven` False).
- power-cycle mode: stop, wait until stopped (the proof it went down), start at the start of
  `wait_up`, wait until running. `restore()` starts an instance this driver stopped and did not
  start again.

`SdkMachine` is the common base of the provider wrappers: the SDK client made at first use (that is
when SDKs look for credentials) and every SDK call translated into `AccessError`/`DriverError`, so
no SDK exception (nor the credentials some of them quote) leaves the driver.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, Literal, Protocol, TypeVar

from lhsoak import inventory
from lhsoak.chaos import ssh
from lhsoak.chaos.driver import (
    AccessError,
    Done,
    DriverError,
    DriverOptions,
    Evidence,
    NodeNotBack,
    NotYet,
    RebootNotObserved,
    wait_for,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")
TargetT = TypeVar("TargetT")

Power = Literal["running", "stopping", "stopped", "starting", "unknown"]
"""A cloud instance's power state, the same for every provider."""


@dataclass(frozen=True)
class PowerState:
    """A cloud instance's power state: normalized, and as the provider spelled it."""

    power: Power
    """The normalized state."""
    raw: str
    """The provider's own name for it (for messages): "stopping", "TERMINATED", "PowerState/…"."""


class CloudMachine(Protocol):
    """The few provider calls a cloud driver needs, for one instance."""

    @property
    def description(self) -> str:
        """The instance for messages: "EC2 instance i-… (us-east-1)"."""

    # EC2, Compute Engine and Azure all keep reporting "running" through a restart, so a restart
    # is never visible in the state; only a power-cycle is.

    def state(self) -> PowerState:
        """The instance's power state now; AccessError if it cannot be seen at all."""

    def restart(self) -> None:
        """Ask the provider for a reboot/reset/restart."""

    def stop(self) -> None:
        """Ask the provider to power the instance off."""

    def start(self) -> None:
        """Ask the provider to power the instance on."""


class BootIdWatcher(Protocol):
    """Reads the kernel boot id (over ssh) and proves a reboot by it; see `ssh.BootIdWatch`."""

    def read(self) -> str: ...

    def remember(self) -> str: ...

    def wait_down(self, *, deadline_s: float) -> Evidence: ...

    def wait_up(self, *, deadline_s: float) -> str: ...


class CloudDriver:
    """Reboots a cloud instance (restart, or power-cycle: stop, wait stopped, start)."""

    restarts_kernel = True

    def __init__(
        self,
        node: str,
        *,
        kind: inventory.DriverKind,
        machine: CloudMachine,
        power_cycle: bool,
        watch: BootIdWatcher | None,
        options: DriverOptions,
    ) -> None:
        self.node = node
        self.kind = kind
        self.machine = machine
        self.power_cycle = power_cycle
        self.watch = watch
        self.options = options
        self._stopped_by_us = False

    def __repr__(self) -> str:
        mode = "power-cycle" if self.power_cycle else "restart"
        return f"CloudDriver({self.node!r}, {self.machine.description}, {mode})"

    def check(self) -> None:
        """The instance is visible and running; the boot id is readable if ssh is configured."""
        state = self.machine.state()
        if state.power != "running":
            raise DriverError(
                f"{self.machine.description} is {state.raw}; lhsoak reboots running instances only",
                node=self.node,
            )
        if self.watch is not None:
            self.watch.read()

    def boot_id(self) -> str | None:
        """The kernel boot id over ssh, or None without an ssh section."""
        return self.watch.read() if self.watch is not None else None

    def reboot(self) -> None:
        """Restart the instance, or stop it in power-cycle mode."""
        if self.watch is not None:
            self.watch.remember()
        if not self.power_cycle:
            self.machine.restart()
            logger.info("node %s: restart of %s accepted", self.node, self.machine.description)
            return
        # Marked before the call: a stop whose answer was lost may still have been carried out, and
        # restore() must then start the instance (it looks at the power state first).
        self._stopped_by_us = True
        self.machine.stop()
        logger.info("node %s: stop of %s accepted (power-cycle)", self.node, self.machine.description)

    def wait_down(self, *, deadline_s: float) -> Evidence:
        """Power-cycle: until stopped. Restart: through ssh if configured, else not observable."""
        if self.power_cycle:
            self._wait_power("stopped", deadline_s=deadline_s, failure=RebootNotObserved)
            return Evidence(proven=True, detail=f"{self.machine.description} stopped")
        if self.watch is not None:
            return self.watch.wait_down(deadline_s=deadline_s)
        return Evidence(
            proven=False,
            detail=f"{self.machine.description} stays 'running' through a restart "
            "and the node has no ssh to see it go down",
        )

    def wait_up(self, *, deadline_s: float) -> str | None:
        """Start the instance if this driver stopped it; until running, then a new boot id (ssh)."""
        started = self.options.clock()
        if self._stopped_by_us:
            self._start()
        self._wait_power("running", deadline_s=deadline_s, failure=NodeNotBack)
        if self.watch is None:
            return None
        left_s = max(0.0, deadline_s - (self.options.clock() - started))
        return self.watch.wait_up(deadline_s=left_s)

    def restore(self) -> None:
        """Start the instance if this driver stopped it and has not started it since."""
        if not self._stopped_by_us:
            return
        state = self.machine.state()
        if state.power in ("running", "starting"):
            self._stopped_by_us = False
            return
        if state.power != "stopped":
            self._wait_power("stopped", deadline_s=self.options.restore_deadline_s, failure=DriverError)
        logger.warning("node %s: restoring: starting %s", self.node, self.machine.description)
        self._start()

    def _start(self) -> None:
        self.machine.start()
        self._stopped_by_us = False
        logger.info("node %s: start of %s accepted", self.node, self.machine.description)

    def _wait_power(self, wanted: Power, *, deadline_s: float, failure: type[DriverError]) -> None:
        def probe(_remaining_s: float) -> Done[None] | NotYet:
            try:
                state = self.machine.state()
            except AccessError:
                raise
            except DriverError as error:
                return NotYet(f"cannot read the state: {error}")
            if state.power == wanted:
                return Done(None, seen=state.raw)
            return NotYet(state.raw)

        wait_for(
            probe,
            node=self.node,
            awaiting=f"{self.machine.description} to be {wanted}",
            deadline_s=deadline_s,
            options=self.options,
            failure=failure,
        )


class SdkMachine(ABC, Generic[TargetT]):
    """The part of a `CloudMachine` every provider shares: the node, its target, the options, an
    SDK client made at first use, and SDK calls whose errors come out as driver errors."""

    def __init__(self, node: str, target: TargetT, *, options: DriverOptions) -> None:
        self.node = node
        self.target = target
        self.options = options
        self._client: Any = None

    @property
    @abstractmethod
    def description(self) -> str:
        """The instance for messages, as the provider names it."""

    def _sdk_client(self, make: Callable[[], Any]) -> Any:
        """The SDK client, made by `make` on first use (SDKs look for credentials then)."""
        if self._client is None:
            self._client = self._call("credentials", make)
        return self._client

    def _call(self, action: str, call: Callable[[], T]) -> T:
        """`call()`, with an SDK error turned into the driver error `_translate` makes of it."""
        try:
            return call()
        except DriverError:
            raise
        except Exception as error:
            translated = self._translate(action, error)
            if translated is None:
                raise
            raise translated from None

    @abstractmethod
    def _translate(self, action: str, error: Exception) -> DriverError | None:
        """The driver error an SDK error means (AccessError when retrying cannot help), or None
        for an error that is not the SDK's (it then propagates unchanged)."""


def build(
    node: inventory.Node,
    *,
    kind: inventory.DriverKind,
    machine: CloudMachine,
    power_cycle: bool,
    options: DriverOptions,
) -> CloudDriver:
    """The driver for `node` through `machine`; ssh beside the power driver reads the boot id."""
    return CloudDriver(
        node.name,
        kind=kind,
        machine=machine,
        power_cycle=power_cycle,
        watch=ssh.watch_for(node, options=options),
        options=options,
    )
