"""Soak throughput: full-cluster restarts per minute the lab and the harness sustain on this machine.

The lab issue's figure: a 1-control-plane, 3-worker lab with 2-second snapshot and backup schedules
runs 20 full-cluster restarts in under 5 minutes. Each step reboots all 4 nodes at once, proves each
came back (SSH boot id, Node Ready), then waits until every job fired again on every volume after
the settle time; the next step starts at once (`phase any`, no pause). The soak must pass, or the
rate means nothing. `reboot` reads the same run (it is run once per `make bench`).
"""

from __future__ import annotations

import os
from typing import Any

from bench import _lab

GOAL_RESTARTS = 20
GOAL_WALL_S = 300.0


def run() -> dict[str, object]:
    soak = _lab.restart_soak()
    return figures(soak)


def figures(soak: _lab.RestartSoak) -> dict[str, Any]:
    outcome = soak.outcome
    settings = outcome.settings
    steps = outcome.steps
    restarts = sum(1 for step in steps if not step.failed)
    steps_s = steps[-1].ended_s - steps[0].began_s if steps else 0.0
    whole_s = outcome.ended_s - outcome.started_s
    step_s = [step.ended_s - step.began_s for step in steps]
    cores = os.cpu_count() or 1
    return {
        "lab": f"1 control plane + 3 workers, cron {settings.cron!r}, {cores} cores",
        "restarts": restarts,
        "soak_passed": outcome.verdict.passed,
        "step_failure": (outcome.step_failure or "")[:200] or None,
        "seconds_restarts": round(steps_s, 1),
        "seconds_whole_soak": round(whole_s, 1),
        "restarts_per_min": round(60 * restarts / steps_s, 2) if steps_s else None,
        "seconds_per_restart": _lab.summary(step_s, digits=2),
        "lab_cpu_s": round(soak.lab_cpu_s, 1),
        "harness_cpu_s": round(soak.harness_cpu_s, 1),
        "cpu_share_of_all_cores": round((soak.lab_cpu_s + soak.harness_cpu_s) / (cores * whole_s), 2)
        if whole_s
        else None,
        "goal_20_restarts_under_5_min": restarts >= GOAL_RESTARTS
        and whole_s < GOAL_WALL_S
        and outcome.verdict.passed,
    }


if __name__ == "__main__":
    print(_lab.dumps(run()))
