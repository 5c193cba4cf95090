"""A seeded lab cluster with running controllers behind a lab API server, for tests that drive it
through the official `kubernetes` client; machines are powered through the lab's loop."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import tenacity

from lhsoak.lab import profiles
from lhsoak.lab.controllers import LabControllers, seed
from lhsoak.lab.machine import Machine, MachineFleet

from .lab_api import LabApi

T = TypeVar("T")
DEADLINE_S = 10.0
"""How long a test waits for the cluster to reach a state, in seconds."""


class NotYet(AssertionError):
    """The awaited state is not there yet; the message says what was seen."""


def eventually(check: Callable[[], T], *, what: str, deadline_s: float = DEADLINE_S) -> T:
    """`check()` once it stops raising NotYet, polled every 50 ms; AssertionError after `deadline_s`
    naming what was awaited and what was seen last."""
    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(NotYet),
        stop=tenacity.stop_after_delay(deadline_s),
        wait=tenacity.wait_fixed(0.05),
    )
    try:
        return retrying(check)
    except tenacity.RetryError as error:
        raise AssertionError(
            f"waited {deadline_s}s for {what}; last seen: {error.last_attempt.exception()}"
        ) from None


@dataclass
class LabCluster:
    """The controllers and machines of a lab whose API is `lab`."""

    lab: LabApi
    fleet: MachineFleet
    controllers: LabControllers

    def machine(self, name: str) -> Machine:
        return self.fleet[name]

    def power(self, name: str, action: Callable[[Machine], Any]) -> None:
        """Run `action(machine)` (e.g. `Machine.power_off`) in the lab's loop."""
        self.lab.call(lambda: action(self.fleet[name]))


@contextmanager
def running_cluster(
    lab_api: LabApi, *, profile: str = "healthy", workers: int = 2, **overrides: Any
) -> Iterator[LabCluster]:
    """One control plane and `workers` workers, seeded as a fresh install, controllers running."""
    chosen = profiles.get(profile, **overrides)

    def build() -> LabCluster:
        roles: dict[str, Any] = {"control-plane-1": "control-plane"}
        roles.update({f"worker-{i}": "worker" for i in range(1, workers + 1)})
        fleet = MachineFleet.build(roles, timings=chosen.machine_timings(), seed=chosen.seed)
        seed(lab_api.store, fleet, chosen)
        controllers = LabControllers(lab_api.store, fleet, chosen)
        controllers.start()
        return LabCluster(lab=lab_api, fleet=fleet, controllers=controllers)

    cluster: LabCluster = lab_api.call(build)
    try:
        yield cluster
    finally:

        def stop() -> None:
            cluster.controllers.stop()
            for machine in cluster.fleet:
                machine.power_off()

        lab_api.call(stop)
