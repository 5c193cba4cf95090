"""Reboot overhead: from a node being back (SSH answers, Node Ready) to the harness proceeding.

Read from the full-cluster restart soak that `throughput` also reads (20 restarts × 4 nodes, SSH
probed every 0.1 s as the regression suite does), plus a 3-restart soak with the reboot driver's
default probe interval (`config.Plan.poll_interval_s`, 2 s: what a soak uses unless told
otherwise), because that interval is the one wait of a reboot that is a poll and not an event.

Per node reboot, on one clock (this machine's):
- SSH answers: the lab's log line "<node>: sshd listening" after the reboot's `start` (the lab
  binds the port when the machine has booted with its new boot id);
- Ready: when an outside observer (its own Node watch, re-connecting every 50 ms while the API
  server is down) first saw the Node Ready with the new boot id;
- back = the later of the two; the harness's `up` and `ready` ledger records are when it knew.
The step proceeds at its last `ready` record; step overhead = that − the last node's `back`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from bench import _lab
from lhsoak import config, ledger

DEFAULT_PROBE = dataclasses.replace(
    _lab.RESTARTS, iterations=3, poll_interval_s=config.Plan().poll_interval_s
)
"""The same soak with the reboot driver's default SSH probe interval."""


@dataclasses.dataclass(frozen=True)
class NodeBack:
    """One node reboot: when the node was back and when the harness knew (epoch seconds)."""

    node: str
    step: int
    ssh_s: float | None
    ready_s: float | None
    harness_up_s: float
    harness_ready_s: float

    @property
    def back_s(self) -> float | None:
        if self.ssh_s is None or self.ready_s is None:
            return None
        return max(self.ssh_s, self.ready_s)


def run() -> dict[str, object]:
    return {
        "probe_0.1s": _figures(_lab.restart_soak()),
        f"probe_{DEFAULT_PROBE.poll_interval_s:g}s_default": _figures(_lab.restart_soak(DEFAULT_PROBE)),
    }


def _figures(soak: _lab.RestartSoak) -> dict[str, Any]:
    backs = node_backs(soak)
    by_step: dict[int, list[NodeBack]] = {}
    for back in backs:
        by_step.setdefault(back.step, []).append(back)
    step_overheads = [
        max(b.harness_ready_s for b in group) - max(b.back_s for b in group if b.back_s is not None)
        for group in by_step.values()
        if all(b.back_s is not None for b in group)
    ]
    overall = _lab.summary(step_overheads)
    return {
        "restarts": len(soak.outcome.steps),
        "soak_passed": soak.outcome.verdict.passed,
        "node_reboots": len(backs),
        "unobserved": sum(1 for b in backs if b.back_s is None),
        "ssh_answers_to_harness_up_s": _lab.summary(
            [b.harness_up_s - b.ssh_s for b in backs if b.ssh_s is not None]
        ),
        "ready_seen_to_harness_ready_s": _lab.summary(
            [b.harness_ready_s - b.ready_s for b in backs if b.ready_s is not None]
        ),
        "node_back_to_harness_ready_s": _lab.summary(
            [b.harness_ready_s - b.back_s for b in backs if b.back_s is not None]
        ),
        "last_node_back_to_step_proceeds_s": overall,
        "goal_under_1s": overall["max"] is not None and overall["max"] < 1.0,
    }


def node_backs(soak: _lab.RestartSoak) -> list[NodeBack]:
    """Every proven node reboot of the soak with its outside and inside moments."""
    steps = soak.outcome.steps
    starts: dict[str, ledger.Reboot] = {}
    ups: dict[str, ledger.Reboot] = {}
    backs = []
    for record in soak.outcome.ledger.reboots:
        if record.phase == "start":
            starts[record.node] = record
        elif record.phase == "up":
            ups[record.node] = record
        elif record.phase == "ready" and record.node in starts and record.node in ups:
            started = starts[record.node].ts_s
            step = next((s.index for s in steps if s.began_s <= started <= s.ended_s), 0)
            sshd = [t for t in soak.sshd_listening.get(record.node, []) if t > started]
            backs.append(
                NodeBack(
                    node=record.node,
                    step=step,
                    ssh_s=sshd[0] if sshd else None,
                    ready_s=soak.ready_seen.get((record.node, record.boot_id or "")),
                    harness_up_s=ups[record.node].ts_s,
                    harness_ready_s=record.ts_s,
                )
            )
    return backs


if __name__ == "__main__":
    print(_lab.dumps(run()))
