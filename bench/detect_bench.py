"""Time to detect: from the first missed tick to the harness failing the step, live, during the soak.

Two lab fault profiles, each in the scenario the regression suite uses (cron every 4 s, lag bound
8 s, settle 4 s): `stuck-pending` (full-cluster restart during a backup: the job pod stays Pending)
and `stuck-backup` (the running backup's node reboots: the backup stays InProgress).

Definitions, all on this machine's clock:
- first missed tick: the earliest tick the final verdict counts as missed and not excused (an outage
  window does not cover it), over every job and volume;
- miss noticed: the `missed tick` note the live monitor's `on_miss` writes to the ledger;
- step failed: when `SoakRun.run_step` raised StepFailed to its caller (diagnosis included);
- lag-bound expiry: tick + lag bound, the earliest moment the tick can be judged missed;
- end-of-step check (the comparison): a harness that judged ticks only at the end of a step would
  notice when the step's recovery wait runs out: the step's last `ready` record + settle + 2 periods
  + lag bound (`SoakRun._wait_recovered`'s deadline), measured on the same run.
Goal: first missed tick → step failed ≤ one period + the lag bound.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

from bench import _lab
from lhsoak import timestamps

SCENARIOS = {
    "stuck-pending": _lab.SoakSettings(
        profile="stuck-pending", kind="cluster", phase="during-backup", iterations=2
    ),
    "stuck-backup": _lab.SoakSettings(profile="stuck-backup", kind="backup-node", phase="any", iterations=3),
}


def run() -> dict[str, object]:
    _lab.quiet_library_logs()
    figures: dict[str, object] = {}
    for name, settings in SCENARIOS.items():
        _lab.say(f"lab soak {name}: {settings.kind} reboot, phase {settings.phase}")
        with _lab.running_lab(profile=settings.profile) as lab, tempfile.TemporaryDirectory() as reports:
            outcome = _lab.drive_soak(lab, settings, run_id=f"bench-{name}", reports_dir=Path(reports))
        figures[name] = detection(outcome)
    return figures


def detection(outcome: _lab.SoakOutcome) -> dict[str, Any]:
    settings = outcome.settings
    lag, period = settings.lag_bound_s, settings.period_s
    missed = sorted(
        (tick, job.name, row.volume)
        for job in outcome.verdict.jobs
        for row in job.volumes
        for tick in row.missed_ticks_s
    )
    if not missed:
        return {
            "error": "the soak missed no tick: nothing to detect",
            "verdict_passed": outcome.verdict.passed,
        }
    tick, job, volume = missed[0]
    noticed = [note for note in outcome.ledger.notes if note.text.startswith("missed tick")]
    noticed_s = noticed[0].ts_s if noticed else None
    noticed_tick = noticed[0].data.get("tick") if noticed else None
    failed_s = outcome.failed_at_s
    end_of_step_s = _end_of_step_check_s(outcome)
    return {
        "first_missed_tick": f"{job}/{volume} at {timestamps.to_rfc3339(tick)}",
        "monitor_first_flagged": noticed_tick,
        "tick_to_miss_noticed_s": _lab.rounded(None if noticed_s is None else noticed_s - tick, 3),
        "tick_to_step_failed_s": _lab.rounded(None if failed_s is None else failed_s - tick, 3),
        "lag_expiry_to_miss_noticed_s": _lab.rounded(
            None if noticed_s is None else noticed_s - tick - lag, 3
        ),
        "lag_expiry_to_step_failed_s": _lab.rounded(None if failed_s is None else failed_s - tick - lag, 3),
        "end_of_step_check_tick_to_detection_s": _lab.rounded(
            None if end_of_step_s is None else end_of_step_s - tick
        ),
        "end_of_step_check_later_by_s": _lab.rounded(
            None if end_of_step_s is None or failed_s is None else end_of_step_s - failed_s
        ),
        "goal_s": period + lag,
        "goal_met": failed_s is not None and failed_s - tick <= period + lag,
        "categories": sorted(set(re.findall(r"lhsoak-category: ([\w-]+)", outcome.step_failure or ""))),
        "verdict_passed": outcome.verdict.passed,
        "seconds_soak": round(outcome.ended_s - outcome.started_s, 1),
    }


def _end_of_step_check_s(outcome: _lab.SoakOutcome) -> float | None:
    """When the failed step's recovery wait would have timed out without the live monitor."""
    failed = [step for step in outcome.steps if step.failed]
    if not failed:
        return None
    step = failed[0]
    readies = [
        record.ts_s
        for record in outcome.ledger.reboots
        if record.phase == "ready" and step.began_s <= record.ts_s <= step.ended_s
    ]
    settings = outcome.settings
    wait_began_s = max(readies) if readies else step.began_s
    return wait_began_s + settings.settle_s + 2 * settings.period_s + settings.lag_bound_s


if __name__ == "__main__":
    print(_lab.dumps(run()))
