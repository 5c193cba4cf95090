"""Chaos plans: which nodes each step reboots, and when (pure: no I/O, no clock).

A plan never reboots a node it was not given, and never more nodes in one step than its kind says.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from lhsoak import config, errors, schedule

Role = str


@dataclass(frozen=True)
class Step:
    """One chaos step: reboot these nodes together."""

    index: int
    """1-based position in the plan."""
    kind: config.PlanKind
    nodes: tuple[str, ...]

    @property
    def title(self) -> str:
        nodes = ", ".join(self.nodes) or "the node of a running backup"
        return f"step {self.index}: {self.kind} reboot of {nodes}"


def _by_role(nodes: Mapping[str, Role], role: Role) -> list[str]:
    return sorted(name for name, node_role in nodes.items() if node_role == role)


def _nodes_for(kind: config.PlanKind, index: int, nodes: Mapping[str, Role], rng: random.Random) -> list[str]:
    workers = _by_role(nodes, "worker")
    planes = _by_role(nodes, "control-plane")
    if kind == "worker":
        return [workers[index % len(workers)]] if workers else []
    if kind == "control-plane":
        return [planes[index % len(planes)]] if planes else []
    if kind == "all-workers":
        return workers
    if kind == "cluster":
        return planes + workers
    if kind == "random":
        every = sorted(nodes)
        return sorted(rng.sample(every, rng.randint(1, len(every))))
    if kind == "backup-node":
        return workers  # the candidates: the one carrying the running backup is picked at run time
    return []


def required_nodes(plan: config.Plan, nodes: Mapping[str, Role]) -> list[str]:
    """Nodes the plan may touch, so the inventory can be checked before anything happens."""
    if plan.kind == "none":
        return []
    if plan.kind == "random":
        return sorted(nodes)
    return sorted(
        {
            name
            for index in range(max(1, len(nodes)))
            for name in _nodes_for(plan.kind, index, nodes, random.Random(0))
        }
    )


def steps(plan: config.Plan, nodes: Mapping[str, Role]) -> Iterator[Step]:
    """The plan's steps in order; endless for a plan bounded by duration (the caller stops)."""
    if plan.kind == "none":
        return
    rng = random.Random(plan.seed)
    index = 0
    while plan.iterations is None or index < plan.iterations:
        chosen = _nodes_for(plan.kind, index, nodes, rng)
        if not chosen:
            raise errors.UsageError(f"plan {plan.kind!r} has no node to reboot in this cluster")
        index += 1
        if plan.kind == "backup-node":
            chosen = []  # unknown until a backup runs (see `soak.SoakRun.run_step`)
        yield Step(index=index, kind=plan.kind, nodes=tuple(chosen))


def phase_start(phase: config.Phase, *, now_s: float, schedules: Sequence[schedule.Schedule]) -> float:
    """When to issue a reboot so it lands in the wanted phase of the schedule (epoch seconds).

    `during-backup` is timed to just after a tick; the caller also waits until a backup is really
    InProgress before rebooting, when it can see one.
    """
    if phase == "any" or not schedules:
        return now_s
    next_tick = min(sched.next_after(now_s) for sched in schedules)
    period = min(sched.period_s for sched in schedules)
    if phase == "before-tick":
        return max(now_s, next_tick - min(5.0, period * 0.1))
    if phase == "during-backup":
        return next_tick + min(2.0, period * 0.05)
    return next_tick + period / 2  # between-ticks
