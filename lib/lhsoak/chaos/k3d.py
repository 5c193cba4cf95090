"""The k3d driver: stop and start a k3d node with the k3d command line.

Commands, run as argument lists (never through a shell), each bounded by `command_timeout_s`:

    k3d node list <node> -o json     the node's State: {Running, Status, Started}
    k3d node stop <node>             reboot(): the node goes down
    k3d node start <node>            wait_up() (and restore()): the node comes back

The proof is State.Running going false, then true again with a new State.Started. A k3d node is a
container sharing the host's kernel: no kernel boot id (`boot_id()` is None, `restarts_kernel` False).
The binary is `k3d.binary` (default `k3d` on PATH); a missing one is a UsageError when the driver is
made, before anything is touched.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess

from lhsoak import errors, inventory
from lhsoak.chaos import driver
from lhsoak.chaos.container import ContainerState, ContainerWatch
from lhsoak.chaos.driver import AccessError, DriverError, DriverOptions, Evidence

logger = logging.getLogger(__name__)


def list_command(binary: str, node: str) -> list[str]:
    """The argument list that reports `node`'s state as JSON."""
    return [binary, "node", "list", node, "-o", "json"]


def stop_command(binary: str, node: str) -> list[str]:
    """The argument list that stops `node`."""
    return [binary, "node", "stop", node]


def start_command(binary: str, node: str) -> list[str]:
    """The argument list that starts `node`."""
    return [binary, "node", "start", node]


class K3dDriver:
    """Stops and starts one k3d node."""

    kind: inventory.DriverKind = "k3d"
    restarts_kernel = False

    def __init__(
        self, node: str, target: inventory.K3dTarget, *, executable: str, options: DriverOptions
    ) -> None:
        self.node = node
        self.target = target
        self.executable = executable
        self.options = options
        self._started_before: str | None = None
        self._stopped_by_us = False
        self._watch = ContainerWatch(
            node=node,
            what="k3d node",
            name=target.node,
            started_field="Started",
            read=self.state,
            options=options,
        )

    def __repr__(self) -> str:
        return f"K3dDriver({self.node!r}, k3d node {self.target.node!r})"

    def check(self) -> None:
        """The k3d node exists and runs."""
        state = self.state()
        if not state.running:
            raise DriverError(
                f"k3d node {self.target.node} is {state.status}; lhsoak restarts running nodes only",
                node=self.node,
            )

    def boot_id(self) -> str | None:
        """None: a k3d node has no kernel of its own."""
        return None

    def reboot(self) -> None:
        """`k3d node stop`."""
        self._started_before = self.state().started
        # Marked before the command: a `k3d node stop` that timed out may still stop the node, and
        # restore() must then start it (it looks at the node's state first).
        self._stopped_by_us = True
        self._run(stop_command(self.executable, self.target.node))

    def wait_down(self, *, deadline_s: float) -> Evidence:
        """Until `k3d node list` shows the node stopped (or restarted)."""
        return self._watch.wait_down(started_before=self._started_before, deadline_s=deadline_s)

    def wait_up(self, *, deadline_s: float) -> str | None:
        """`k3d node start` if this driver stopped it; until it runs with a new start time."""
        if self._stopped_by_us:
            self._start()
        self._watch.wait_up(started_before=self._started_before, deadline_s=deadline_s)
        return None

    def restore(self) -> None:
        """`k3d node start` if this driver stopped the node and has not started it since."""
        if not self._stopped_by_us:
            return
        if not self.state().running:
            logger.warning("node %s: restoring: starting k3d node %s", self.node, self.target.node)
            self._start()
        self._stopped_by_us = False

    def state(self) -> ContainerState:
        """The node's state from `k3d node list <node> -o json`."""
        output = self._run(list_command(self.executable, self.target.node))
        try:
            listed = json.loads(output)
        except json.JSONDecodeError:
            raise DriverError(f"k3d node list printed no JSON: {output[:200]!r}", node=self.node) from None
        for entry in listed if isinstance(listed, list) else []:
            if isinstance(entry, dict) and entry.get("name") == self.target.node:
                state = entry.get("State") or {}
                return ContainerState(
                    running=bool(state.get("Running")),
                    status=str(state.get("Status", "?")),
                    started=str(state.get("Started", "")),
                )
        raise AccessError(f"k3d lists no node {self.target.node}", node=self.node)

    def _start(self) -> None:
        self._run(start_command(self.executable, self.target.node))
        self._stopped_by_us = False

    def _run(self, command: list[str]) -> str:
        shown = " ".join(command)
        try:
            completed = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=self.options.command_timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise DriverError(
                f"{shown}: no answer within {self.options.command_timeout_s:g}s", node=self.node
            ) from None
        except OSError as error:
            raise DriverError(f"{shown}: cannot run: {error.strerror}", node=self.node) from None
        logger.info("node %s: %s → exit %d", self.node, shown, completed.returncode)
        if completed.returncode != 0:
            raise DriverError(
                f"{shown} failed with exit status {completed.returncode}",
                node=self.node,
                seen=[completed.stderr.strip() or "(no stderr)"],
            )
        return completed.stdout


def build(node: inventory.Node, *, options: DriverOptions) -> driver.RebootDriver:
    """The driver for a node whose power driver is k3d; UsageError if the k3d binary is missing."""
    assert node.k3d is not None, f"node {node.name} has no k3d section"
    executable = shutil.which(node.k3d.binary)
    if executable is None:
        raise errors.UsageError(
            f"node {node.name} uses the k3d driver, but the k3d executable {node.k3d.binary!r} "
            "was not found: install k3d (https://k3d.io) or set k3d.binary in the inventory"
        )
    return K3dDriver(node.name, node.k3d, executable=executable, options=options)
