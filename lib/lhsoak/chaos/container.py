"""What the drivers of container nodes (docker for kind, k3d) share: a node that is a container has
no kernel of its own, so its restart is proven by its state and its start time, not by a boot id.

    down: the container is not running, or runs with a start time other than before the restart
    up:   the container runs with a start time other than before the restart
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from lhsoak.chaos.driver import (
    Done,
    DriverOptions,
    Evidence,
    NodeNotBack,
    NotYet,
    RebootNotObserved,
    wait_for,
)


@dataclass(frozen=True)
class ContainerState:
    """A container's state as its engine reports it."""

    running: bool
    """Whether it runs now."""
    status: str
    """The engine's word for it: running, exited, restarting, …"""
    started: str
    """When it last started, as the engine spells it (compared, never parsed)."""


@dataclass(frozen=True)
class ContainerWatch:
    """Reads one container node's state and waits for it to go down and to come back."""

    node: str
    """The Kubernetes Node name, for messages."""
    what: str
    """What the container is called in messages: "container", "k3d node"."""
    name: str
    """The container's own name."""
    started_field: str
    """The engine's name for the start time, for messages: "StartedAt", "Started"."""
    read: Callable[[], ContainerState]
    """Fetches the state fresh from the engine."""
    options: DriverOptions

    def wait_down(self, *, started_before: str | None, deadline_s: float) -> Evidence:
        """Until the container stops or restarts; RebootNotObserved with what was seen if never."""

        def probe(_remaining_s: float) -> Done[Evidence] | NotYet:
            state = self.read()
            if not state.running:
                seen = f"{self.what} {state.status}"
                return Done(Evidence(proven=True, detail=seen), seen=seen)
            if state.started != started_before:
                seen = f"{self.what} restarted: {self.started_field} {started_before} → {state.started}"
                return Done(Evidence(proven=True, detail=seen), seen=seen)
            return NotYet(f"{self.what} {state.status} since {state.started}")

        return wait_for(
            probe,
            node=self.node,
            awaiting=f"{self.what} {self.name} to stop or restart",
            deadline_s=deadline_s,
            options=self.options,
            failure=RebootNotObserved,
        )

    def wait_up(self, *, started_before: str | None, deadline_s: float) -> None:
        """Until the container runs with a new start time; NodeNotBack with what was seen if never."""

        def probe(_remaining_s: float) -> Done[None] | NotYet:
            state = self.read()
            if state.running and state.started != started_before:
                return Done(None, seen=f"{self.what} running since {state.started}")
            return NotYet(f"{self.what} {state.status}, started {state.started}")

        wait_for(
            probe,
            node=self.node,
            awaiting=f"{self.what} {self.name} to run again",
            deadline_s=deadline_s,
            options=self.options,
            failure=NodeNotBack,
        )
