"""The regression suite proves the harness: each lab fault profile reproduces an upstream bug, and the
harness must catch it with the right diagnosis. These tests start their own labs (one per profile)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import pytest

from lhsoak import config, diagnosis, soak, verdict
from lhsoak.lab.process import LabProcess

# A compressed schedule: every 4 s, so a soak with two full-cluster restarts takes well under a minute.
CRON = "*/4 * * * * *"


@dataclasses.dataclass
class Outcome:
    """What a soak against one lab profile ended with."""

    step_failure: str | None
    findings: list[diagnosis.Finding]
    verdict: verdict.Verdict
    notes: list[str]

    @property
    def categories(self) -> set[str]:
        return {finding.category for finding in self.findings}


@pytest.fixture
def lab_soak(tmp_path: Path) -> Iterator[object]:
    labs: list[LabProcess] = []

    def run(
        profile: str,
        *,
        iterations: int = 2,
        phase: config.Phase = "during-backup",
        kind: config.PlanKind = "cluster",
        remediate: bool = False,
        ticks_after_chaos: int = 2,
    ) -> Outcome:
        lab = LabProcess.start(state_dir=tmp_path / f"lab-{profile}", profile=profile)
        labs.append(lab)
        run = soak.SoakRun(
            soak=config.Soak(
                run_id=f"reg-{profile}",
                jobs=config.default_jobs(CRON),
                lag_bound_s=8,
                settle_s=4,
                reports_dir=tmp_path / "reports",
                allow_seconds_cron=True,
                remediate=remediate,
                ticks_after_chaos=ticks_after_chaos,
            ),
            target=config.Target(
                kubeconfig=lab.kubeconfig, inventory=lab.inventory, allowed_contexts=(lab.context,)
            ),
            chaos=config.Plan(
                kind=kind,
                iterations=iterations,
                phase=phase,
                down_deadline_s=30,
                ready_deadline_s=60,
                poll_interval_s=0.1,
            ),
        )
        failure: str | None = None
        findings: list[diagnosis.Finding] = []
        try:
            run.open()
            run.start()
            try:
                for step in run.steps():
                    run.run_step(step)
            except soak.StepFailed as error:
                failure = str(error)
                findings += run.outcomes[-1].findings
            run.settle()
            findings += run.diagnose()
            result = run.finish()
        finally:
            run.teardown()
        ledger_path = run.soak.run_dir / "ledger.jsonl"
        notes = [line for line in ledger_path.read_text().splitlines() if '"type":"note"' in line]
        return Outcome(step_failure=failure, findings=findings, verdict=result, notes=notes)

    yield run
    for lab in labs:
        lab.stop()
