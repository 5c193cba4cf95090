"""A stand-in for suites/soak with no cluster: the soak's phases as tests, making the report's calls.

Not collected by the project's own run (its name does not start with test_): the report tests copy
it into a temporary directory as test_standin_soak.py and run it with `--alluredir`, on the synthetic
run in $LHSOAK_STANDIN_RUN_DIR (ledger.jsonl and cluster-snapshot.json, see conftest.py), as run
$LHSOAK_STANDIN_RUN_ID with seed $LHSOAK_STANDIN_SEED (the parameters that vary between runs). Step 2
fails like the soak fails on a stall (a StepFailed carrying the diagnosis and its category marker),
step 3 is skipped as the plugin skips steps after a failure, the verdict fails, and the teardown
breaks with a plain error: a harness error, filed under no cause.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from lhsoak import diagnosis, ledger, monitor, plan, reboot, report, soak, verdict

RUN_DIR = Path(os.environ["LHSOAK_STANDIN_RUN_DIR"])
JOBS = (
    diagnosis.JobSpec(name="soak-snap", task="snapshot", cron="*/2 * * * *", retain=2),
    diagnosis.JobSpec(name="soak-backup", task="backup", cron="*/2 * * * *", retain=1),
)
STEPS = {1: ("node-1",), 2: ("node-1", "node-2", "node-3"), 3: ("node-2",)}
STEP_STARTS_S = {1: 9 * 60 + 30.0, 2: 23 * 60 + 30.0, 3: 41 * 60 + 30.0}
"""When each step's reboots started, from the run's start (conftest.REBOOTS)."""
RUN_ID = os.environ.get("LHSOAK_STANDIN_RUN_ID", "soak-synthetic")
SEED = int(os.environ.get("LHSOAK_STANDIN_SEED", "7"))


def _snapshot() -> diagnosis.ClusterSnapshot:
    raw: dict[str, Any] = json.loads((RUN_DIR / "cluster-snapshot.json").read_text())
    lists = {key: tuple(value) for key, value in raw.items() if key != "taken_at_s"}
    return diagnosis.ClusterSnapshot(taken_at_s=float(raw["taken_at_s"]), **lists)


def _findings() -> list[diagnosis.Finding]:
    return diagnosis.diagnose(_snapshot(), jobs=JOBS, stalled={"soak-backup"})


def _proofs(led: ledger.Ledger, nodes: tuple[str, ...], started_s: float) -> list[reboot.NodeReboot]:
    """What the Rebooter proved about each node's reboot that started at `started_s`."""
    proofs = []
    for node in nodes:
        phases = sorted((r for r in led.reboots if r.node == node), key=lambda r: r.ts_s)
        start = next(i for i, r in enumerate(phases) if r.phase == "start" and r.ts_s == started_s)
        at = {r.phase: r for r in phases[start : start + 4]}
        proofs.append(
            reboot.NodeReboot(
                node=node,
                started_s=started_s,
                old_boot_id=at["start"].boot_id,
                down_s=at["down"].ts_s,
                up_s=at["up"].ts_s,
                ready_s=at["ready"].ts_s,
                new_boot_id=at["ready"].boot_id,
                seen=[f"node {node} Ready=True bootID={at['ready'].boot_id}"],
            )
        )
    return proofs


def test_longhorn_is_ready_and_the_jobs_are_configured() -> None:
    report.describe_test(run_id=RUN_ID, seed=SEED)
    with report.phase("Longhorn is ready: 3 nodes Ready, backup target available"):
        pass
    with report.phase("recurring jobs soak-snap and soak-backup on volumes vol-a, vol-b"):
        pass


@pytest.mark.parametrize("index", [1, 2, 3], ids=["step-01", "step-02", "step-03"])
def test_chaos_step(index: int) -> None:
    nodes = STEPS[index]
    step = plan.Step(index=index, kind="cluster" if len(nodes) > 1 else "worker", nodes=nodes)
    report.describe_test(run_id=RUN_ID, seed=SEED, title=step.title)
    if index == 3:
        pytest.skip("not run: step 2 failed (use --keep-going to run every step)")
    led = ledger.read(RUN_DIR / "ledger.jsonl")
    outcome = soak.StepOutcome(step=step, reboots=_proofs(led, nodes, led.run.ts_s + STEP_STARTS_S[index]))
    with report.phase(f"{step.title}: waiting for every job to fire again"):
        if index == 2:
            outcome.misses = [
                monitor.Miss("soak-backup", volume, tick_s=led.run.ts_s + 1800.0, reason="no fire")
                for volume in ("vol-a", "vol-b")
            ]
            outcome.findings = _findings()
    report.attach_step(outcome, snapshot=_snapshot())
    if outcome.findings:
        what = f"{step.title}: missed ticks: soak-backup/vol-a, soak-backup/vol-b at 00:30:00: no fire"
        raise soak.StepFailed(report.step_failure_text(what, findings=outcome.findings))


def test_both_jobs_keep_firing_with_bounded_lag() -> None:
    report.describe_test(run_id=RUN_ID, seed=SEED)
    led = ledger.read(RUN_DIR / "ledger.jsonl")
    result = verdict.analyse(led)
    with report.phase("diagnose the stalled jobs from the cluster state"):
        findings = _findings()
    report.attach_run(RUN_DIR, result, findings, snapshot=_snapshot())
    # Printed, it lands in JUnit's system-out (junit_logging=system-out) and Allure's stdout attachment.
    print(report.summary_text(result, led))
    if not result.passed:
        pytest.fail(report.failure_text(result, findings, led), pytrace=False)


def test_teardown_restores_the_recurring_jobs() -> None:
    report.describe_test(run_id=RUN_ID, seed=SEED)
    raise RuntimeError("teardown: could not restore RecurringJob soak-snap: 409 Conflict")
