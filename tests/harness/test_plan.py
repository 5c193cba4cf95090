"""Chaos plans reboot exactly the nodes their kind says, in a stable order."""

from __future__ import annotations

import pytest

from lhsoak import config, errors, plan, schedule

NODES = {"cp-1": "control-plane", "w-1": "worker", "w-2": "worker", "w-3": "worker"}


def _steps(kind: config.PlanKind, iterations: int = 4, seed: int = 0) -> list[tuple[str, ...]]:
    chosen = config.Plan(kind=kind, iterations=iterations, seed=seed)
    return [step.nodes for step in plan.steps(chosen, NODES)]


def test_worker_plan_reboots_one_worker_at_a_time_round_robin() -> None:
    assert _steps("worker") == [("w-1",), ("w-2",), ("w-3",), ("w-1",)]


def test_control_plane_plan_never_touches_a_worker() -> None:
    assert all(nodes == ("cp-1",) for nodes in _steps("control-plane"))


def test_all_workers_plan_reboots_every_worker_but_not_the_control_plane() -> None:
    assert _steps("all-workers", 2) == [("w-1", "w-2", "w-3")] * 2


def test_cluster_plan_reboots_every_node() -> None:
    assert _steps("cluster", 1) == [("cp-1", "w-1", "w-2", "w-3")]


def test_random_plan_is_reproducible_from_its_seed_and_stays_within_the_cluster() -> None:
    first = _steps("random", 10, seed=7)
    assert first == _steps("random", 10, seed=7)
    assert first != _steps("random", 10, seed=8)
    assert all(set(nodes) <= set(NODES) and nodes for nodes in first)


def test_a_plan_without_matching_nodes_is_a_usage_error() -> None:
    with pytest.raises(errors.UsageError, match="no node"):
        list(plan.steps(config.Plan(kind="control-plane", iterations=1), {"w-1": "worker"}))


def test_required_nodes_lists_only_the_nodes_a_plan_may_touch() -> None:
    assert plan.required_nodes(config.Plan(kind="worker"), NODES) == ["w-1", "w-2", "w-3"]
    assert plan.required_nodes(config.Plan(kind="control-plane"), NODES) == ["cp-1"]
    assert plan.required_nodes(config.Plan(kind="none"), NODES) == []


@pytest.mark.parametrize(
    ("phase", "expected"),
    [("any", 100.0), ("before-tick", 115.0), ("between-ticks", 180.0), ("during-backup", 122.0)],
)
def test_phase_start_times_the_reboot_against_the_schedule(phase: config.Phase, expected: float) -> None:
    every_two_minutes = schedule.parse("*/2 * * * *")
    assert plan.phase_start(phase, now_s=100.0, schedules=[every_two_minutes]) == expected
