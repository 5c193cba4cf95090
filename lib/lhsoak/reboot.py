"""Rebooting nodes with proof: the machine went down and came back, and Kubernetes saw it.

For each node of a step, in parallel: issue the reboot through its driver, prove it went down and came back
(boot id over SSH, or the cloud/container state), then prove Kubernetes saw it: the Node's
`status.nodeInfo.bootID` changed and its Ready condition went False/Unknown and back to True (its
`lastTransitionTime` is after the reboot started). Every phase is a `reboot` record in the ledger; a reboot
that did not happen, or a node that does not come back, is a `failed` record and an error that says what
was seen — never a silent pass.

Each node's proof is told as it happens (`phase`, one step per node opened on that node's thread, so a
report nests it under the caller's open step), and its evidence is handed to `on_proof` inside that step.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lhsoak import ledger, longhorn, timestamps
from lhsoak.chaos import driver as chaos_driver
from lhsoak.recorder import ClusterView, WaitTimeout

log = logging.getLogger(__name__)


@dataclass
class NodeReboot:
    """What was proven about one node's reboot; `failure` says why the proof failed."""

    node: str
    started_s: float
    old_boot_id: str | None
    down_s: float | None = None
    up_s: float | None = None
    ready_s: float | None = None
    new_boot_id: str | None = None
    failure: str | None = None
    seen: list[str] = field(default_factory=list)
    ready_flipped: bool | None = None
    """Whether Ready was seen False/Unknown and back to True after the reboot began (None: not yet looked)."""

    @property
    def downtime_s(self) -> float | None:
        return None if self.ready_s is None else self.ready_s - self.started_s


class _Cancelled(Exception):
    """Teardown began before this reboot was issued."""


class RebootFailed(Exception):
    """At least one node's reboot could not be proven; the message lists each with what was seen."""

    def __init__(self, message: str, *, results: Sequence[NodeReboot] = ()) -> None:
        super().__init__(message)
        self.results = list(results)


def node_boot_id(node: Mapping[str, Any] | None) -> str | None:
    if node is None:
        return None
    return ((node.get("status") or {}).get("nodeInfo") or {}).get("bootID")


def _ready_since(node: Mapping[str, Any]) -> float | None:
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") == "True":
            since = condition.get("lastTransitionTime")
            return timestamps.parse_rfc3339(since) if since else None
    return None


def _describe_node(view: ClusterView, name: str) -> str:
    node = view.get("nodes", name)
    if node is None:
        return f"node {name} not in the cluster view"
    return f"node {name} Ready={longhorn.ready_status(node)} bootID={node_boot_id(node)}"


class Rebooter:
    """Reboots the nodes of a step through their drivers and proves each reboot."""

    def __init__(
        self,
        *,
        drivers: Mapping[str, chaos_driver.RebootDriver],
        view: ClusterView,
        writer: ledger.Writer,
        down_deadline_s: float,
        ready_deadline_s: float,
        clock: Callable[[], float] = time.time,
        progress: Callable[[str], None] = log.info,
        phase: Callable[[str], contextlib.AbstractContextManager[object]] = lambda _title: (
            contextlib.nullcontext()
        ),
        on_proof: Callable[[NodeReboot], None] = lambda _proof: None,
    ) -> None:
        """`phase(title)` wraps each node's proof and its parts (a report's steps); `on_proof(result)`
        is told each node's result, proven or not, inside that node's phase."""
        self._drivers = drivers
        self._view = view
        self._writer = writer
        self._down_deadline_s = down_deadline_s
        self._ready_deadline_s = ready_deadline_s
        self._clock = clock
        self._progress = progress
        self._phase = phase
        self._on_proof = on_proof
        self._lock = threading.Lock()
        self._cancelled = threading.Event()
        self._threads: list[threading.Thread] = []
        self.in_flight: dict[str, NodeReboot] = {}

    def reboot(self, nodes: Sequence[str]) -> list[NodeReboot]:
        unknown = [node for node in nodes if node not in self._drivers]
        if unknown:
            # The plan was checked against the inventory before anything started; this is a harness bug.
            raise RebootFailed(f"no reboot driver for {', '.join(unknown)}")
        results = self._in_parallel(nodes)
        failed = [result for result in results if result.failure]
        if failed:
            raise RebootFailed(
                "; ".join(f"{result.node}: {result.failure}" for result in failed), results=results
            )
        return results

    def _in_parallel(self, nodes: Sequence[str]) -> list[NodeReboot]:
        # Daemon threads, not an executor: on Ctrl-C/SIGTERM the join below is interrupted and the
        # soak's teardown cancels and restores the nodes, instead of the interpreter waiting out every proof.
        results: dict[str, NodeReboot] = {}

        def one(node: str) -> None:
            results[node] = self._reboot_one(node)

        threads = [
            threading.Thread(target=one, args=(node,), name=f"reboot-{node}", daemon=True) for node in nodes
        ]
        with self._lock:
            self._threads = threads
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        # A node with no result means its thread died: never a pass.
        return [results.get(node) or self._lost(node) for node in nodes]

    def _lost(self, node: str) -> NodeReboot:
        return NodeReboot(
            node=node, started_s=self._clock(), old_boot_id=None, failure="its reboot thread died"
        )

    def cancel(self, *, join_s: float) -> None:
        """Stop issuing reboots (teardown): in-flight proofs may finish within `join_s`, then restore."""
        self._cancelled.set()
        with self._lock:
            threads = list(self._threads)
        end = time.monotonic() + join_s
        for thread in threads:
            thread.join(timeout=max(0.0, end - time.monotonic()))

    def _record(self, result: NodeReboot, phase: str, boot_id: str | None = None, **extra: Any) -> None:
        record: dict[str, Any] = {"type": "reboot", "node": result.node, "phase": phase, "boot_id": boot_id}
        record.update(extra)
        try:
            self._writer.append(record)
        except (ValueError, OSError):
            # After cancel() the ledger may be closed under a proof still finishing: nothing to record.
            if not self._cancelled.is_set():
                raise

    def _reboot_one(self, node: str) -> NodeReboot:
        result = NodeReboot(
            node=node, started_s=self._clock(), old_boot_id=node_boot_id(self._view.get("nodes", node))
        )
        with self._lock:
            self.in_flight[node] = result
        try:
            with self._phase(f"reboot {node} and prove it came back"):
                self._prove(result)
        except Exception as error:
            # _prove has recorded why; anything else (the report's own machinery failing) must
            # still leave a failure behind: a result without one would count as proven.
            if result.failure is None:
                log.exception("node %s: the reboot proof crashed", node)
                self._fail(result, f"harness error while proving the reboot: {error!r}")
        finally:
            with self._lock:
                self.in_flight.pop(node, None)
        return result

    def _prove(self, result: NodeReboot) -> None:
        """The machine went down and came back, then Kubernetes saw it; raises when not proven."""
        try:
            with self._phase(f"the machine of {result.node} goes down and comes back"):
                proof = chaos_driver.prove_reboot(
                    self._drivers[result.node],
                    down_deadline_s=self._down_deadline_s,
                    up_deadline_s=self._ready_deadline_s,
                    clock=self._clock,
                    on_phase=lambda phase, boot_id: self._on_phase(result, phase, boot_id),
                )
                if not proof.machine_proven:
                    result.seen.append(f"not provable at the machine level: {proof.down.detail}")
            with self._phase(self._kubernetes_proof_title(result)):
                result.new_boot_id = self._wait_ready(result)
                self._tell_kubernetes_proof(result)
            result.ready_s = self._clock()
            self._record(result, "ready", result.new_boot_id)
            self._progress(f"{result.node} is back: Ready, boot id {result.new_boot_id}")
        except (chaos_driver.DriverError, WaitTimeout, _Cancelled) as error:
            self._fail(result, str(error))
            raise
        except Exception as error:  # a crashed proof is a failed proof, never a pass
            log.exception("node %s: the reboot proof crashed", result.node)
            self._fail(result, f"harness error while proving the reboot: {error!r}")
            raise
        finally:
            self._on_proof(result)

    def _kubernetes_proof_title(self, result: NodeReboot) -> str:
        if self._drivers[result.node].restarts_kernel:
            return (
                f"Kubernetes sees {result.node} back: Ready, with a boot id other than {result.old_boot_id}"
            )
        return f"Kubernetes sees {result.node} back: Ready again after going False/Unknown"

    def _fact(self, title: str) -> None:
        """A moment of the proof, told as an empty step where it happened."""
        with self._phase(title):
            pass

    def _since_issued(self, result: NodeReboot) -> str:
        return f"{self._clock() - result.started_s:.1f} s after the reboot was issued"

    def _on_phase(self, result: NodeReboot, phase: str, boot_id: str | None) -> None:
        """prove_reboot's phases, as ledger records (it restores the node itself when a step fails)."""
        if phase == "start":
            if self._cancelled.is_set():
                raise _Cancelled("the soak is being torn down: reboot not issued")
            # The machine's own word (SSH) beats the Node's status; a cloud driver has only the latter.
            result.old_boot_id = boot_id or result.old_boot_id
            result.started_s = self._clock()
            self._record(result, "start", result.old_boot_id)
            self._progress(f"rebooting {result.node} (boot id {result.old_boot_id})")
            self._fact(f"reboot issued (boot id {result.old_boot_id})")
        elif phase == "down":
            result.down_s = self._clock()
            self._record(result, "down", result.old_boot_id)
            self._fact(f"went down {self._since_issued(result)}")
        elif phase == "up":
            result.up_s = self._clock()
            self._record(result, "up", boot_id)
            self._fact(f"came up {self._since_issued(result)} (boot id {boot_id or 'not readable'})")

    def _tell_kubernetes_proof(self, result: NodeReboot) -> None:
        if self._drivers[result.node].restarts_kernel:
            self._fact(f"boot id changed: {result.old_boot_id} -> {result.new_boot_id}")
        else:
            self._fact("boot id unchanged: a container restart keeps the host's kernel")
        if result.ready_flipped:
            self._fact("Ready went False/Unknown, then True")
        else:
            self._fact("Ready was not seen False/Unknown (a reboot faster than the grace period)")

    def _fail(self, result: NodeReboot, why: str) -> None:
        result.failure = why
        if result.down_s is not None or result.up_s is not None or "not issued" not in why:
            self._record(result, "failed", None, error=why)
        self._progress(f"{result.node}: reboot not proven: {why}")

    def _wait_ready(self, result: NodeReboot) -> str:
        restarts_kernel = self._drivers[result.node].restarts_kernel

        def check(view: ClusterView) -> str | None:
            node = view.get("nodes", result.node)
            if node is None or longhorn.ready_status(node) != "True":
                return None
            boot_id = node_boot_id(node)
            transitioned = self._ready_transitioned(view, node, result)
            result.ready_flipped = transitioned
            if restarts_kernel:
                # A new bootID is only reported by a kubelet that started on the new kernel: proof
                # enough. Ready need not visibly flip: a reboot shorter than the node-monitor grace
                # period, with the control plane down too, may never show NotReady to anyone.
                if boot_id is None or boot_id == result.old_boot_id:
                    return None
                if not transitioned:
                    result.seen.append(
                        "Ready was not seen False/Unknown (a reboot faster than the grace period)"
                    )
                return boot_id
            # A container restart (kind, k3d) keeps the host kernel, so its bootID cannot change:
            # the Ready condition's transition is the proof.
            return (boot_id or "unchanged") if transitioned else None

        # One deadline from the reboot to Ready, whatever part of it the machine-level proof used.
        remaining_s = max(1.0, self._ready_deadline_s - (self._clock() - result.started_s))
        return self._view.wait_for(
            check,
            what=f"node {result.node} Ready with a new boot id (was {result.old_boot_id})",
            deadline_s=remaining_s,
            seen=lambda view: _describe_node(view, result.node),
            progress=self._progress,
        )

    @staticmethod
    def _ready_transitioned(view: ClusterView, node: Mapping[str, Any], result: NodeReboot) -> bool:
        since = _ready_since(node)
        # Kubernetes timestamps have whole seconds: a transition in the reboot's own second counts.
        return (since is not None and since >= int(result.started_s)) or view.not_ready_seen_since(
            result.node, result.started_s
        )

    def restore_all(self) -> list[str]:
        """Safety on interruption: bring back every node a driver may have left powered off."""
        problems = []
        for node, driver in self._drivers.items():
            try:
                driver.restore()
            except Exception as error:
                problems.append(f"{node}: {error}")
        return problems
