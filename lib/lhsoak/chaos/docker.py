"""The docker driver: restart a node that is a container (kind) through the Docker Engine API.

`container.restart()` stops the container (SIGTERM, then SIGKILL after a grace period) and starts
it again; the call returns when the container runs again. The proof is the container's
`State.StartedAt` changing while `State.Running` is true again. A kind node shares the host's
kernel, so there is no new kernel boot id: `boot_id()` and `wait_up()` return None and
`restarts_kernel` is False (the Node's bootID will not change either).

The SDK is the `docker` PyPI package (`pip install 'lhsoak[docker]'`); the engine address is
`docker.base_url` or, without one, $DOCKER_HOST or the local socket.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

# The docker SDK ships no type hints (types-docker has them).
import docker  # type: ignore[import-untyped]
import docker.errors  # type: ignore[import-untyped]

from lhsoak import inventory
from lhsoak.chaos import driver
from lhsoak.chaos.container import ContainerState, ContainerWatch
from lhsoak.chaos.driver import AccessError, DriverError, DriverOptions, Evidence

logger = logging.getLogger(__name__)

T = TypeVar("T")
STOP_GRACE_S = 10
"""Seconds `docker restart` waits after SIGTERM before SIGKILL (docker's own default)."""


class DockerDriver:
    """Restarts the container that is a node (kind) and proves it by its start time."""

    kind: inventory.DriverKind = "docker"
    restarts_kernel = False

    def __init__(self, node: str, target: inventory.DockerTarget, *, options: DriverOptions) -> None:
        self.node = node
        self.target = target
        self.options = options
        self._client: Any = None
        self._started_before: str | None = None
        self._touched = False
        self._watch = ContainerWatch(
            node=node,
            what="container",
            name=target.container,
            started_field="StartedAt",
            read=self.state,
            options=options,
        )

    def __repr__(self) -> str:
        return f"DockerDriver({self.node!r}, container={self.target.container!r})"

    def check(self) -> None:
        """The container exists and runs."""
        state = self.state()
        if not state.running:
            raise DriverError(
                f"container {self.target.container} is {state.status}; lhsoak restarts running containers only",
                node=self.node,
            )

    def boot_id(self) -> str | None:
        """None: a container has no kernel of its own."""
        return None

    def reboot(self) -> None:
        """`docker restart` (blocks until the container runs again or the call times out)."""
        self._started_before = self.state().started
        container = self._container()
        self._touched = True
        self._call("restart", lambda: container.restart(timeout=STOP_GRACE_S))
        logger.info("node %s: container %s restarted", self.node, self.target.container)

    def wait_down(self, *, deadline_s: float) -> Evidence:
        """Until the container is not running or has a new start time."""
        return self._watch.wait_down(started_before=self._started_before, deadline_s=deadline_s)

    def wait_up(self, *, deadline_s: float) -> None:
        """Until the container runs with a start time other than before the restart."""
        self._watch.wait_up(started_before=self._started_before, deadline_s=deadline_s)

    def restore(self) -> None:
        """Start the container if a restart by this driver left it stopped."""
        if not self._touched:
            return
        state = self.state()
        if not state.running:
            logger.warning(
                "node %s: restoring: starting container %s (%s)",
                self.node,
                self.target.container,
                state.status,
            )
            container = self._container()
            self._call("start", container.start)
        self._touched = False

    def state(self) -> ContainerState:
        """State.Running, State.Status and State.StartedAt of the container, fresh from the engine."""
        container = self._container()
        attributes: dict[str, Any] = container.attrs
        state = attributes.get("State", {})
        return ContainerState(
            running=bool(state.get("Running")),
            status=str(state.get("Status", "?")),
            started=str(state.get("StartedAt", "")),
        )

    def _container(self) -> Any:
        return self._call("inspect", lambda: self._docker().containers.get(self.target.container))

    def _docker(self) -> Any:
        if self._client is None:
            # The client asks the engine for its API version when made: no engine, no client.
            timeout = int(self.options.command_timeout_s)
            if self.target.base_url:
                make = lambda: docker.DockerClient(base_url=self.target.base_url, timeout=timeout)  # noqa: E731
            else:
                make = lambda: docker.from_env(timeout=timeout)  # noqa: E731
            self._client = self._call("connect", make)
        return self._client

    def _call(self, action: str, call: Callable[[], T]) -> T:
        where = self.target.base_url or "the local Docker engine"
        try:
            return call()
        except docker.errors.NotFound:
            raise AccessError(
                f"{action}: no container {self.target.container} at {where}", node=self.node
            ) from None
        except docker.errors.APIError as error:
            raise DriverError(
                f"{action} {self.target.container}: {error.explanation or error}", node=self.node
            ) from None
        except docker.errors.DockerException as error:
            raise DriverError(f"{action}: cannot reach {where}: {error}", node=self.node) from None


def build(node: inventory.Node, *, options: DriverOptions) -> driver.RebootDriver:
    """The driver for a node whose power driver is docker."""
    assert node.docker is not None, f"node {node.name} has no docker section"
    return DockerDriver(node.name, node.docker, options=options)
