"""A soak run, phase by phase: open → setup → steps → settle → finish → teardown.

The pytest plugin drives these phases as tests (so the report shows where a run broke); the library does
the work. Teardown always runs: it brings back any node a driver powered off, restores the recurring jobs
that were there, removes the soak's objects (unless `keep`) and ends the ledger.

A `Narrator` is told the story as it happens — each phase as a step, evidence where it was found — so a
report lists what happened in the order it happened (the pytest plugin's narrator writes Allure steps).
Long waits say every `progress_every_s` what they wait for, how long is left and what was seen so far
(`lhsoak.progress`).

When the diagnosis finds a cause, the evidence carries the logs an SRE reads first (`lhsoak.pod_logs`).
They go with the failed step's evidence and are kept with the run (`pod-logs.json`) for the report's
attachments/logs/.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import tenacity

from lhsoak import (
    artifacts,
    causes,
    cluster,
    config,
    diagnosis,
    errors,
    inventory,
    ledger,
    longhorn,
    monitor,
    plan,
    pod_logs,
    progress,
    reboot,
    recorder,
    report,
    schedule,
    timestamps,
    verdict,
)
from lhsoak.chaos import driver as chaos_driver
from lhsoak.report import files as report_files

log = logging.getLogger(__name__)
T = TypeVar("T")
PROGRESS_EVERY_S = progress.EVERY_S


class StepFailed(AssertionError):
    """A soak step failed: a reboot not proven, a node not back, or a tick missed (with the diagnosis)."""


@dataclass
class StepOutcome:
    step: plan.Step
    reboots: list[reboot.NodeReboot] = field(default_factory=list)
    misses: list[monitor.Miss] = field(default_factory=list)
    findings: list[diagnosis.Finding] = field(default_factory=list)


class Narrator(Protocol):
    """Told a soak's story as it happens; `lhsoak.report.attach.Narration` writes it as Allure steps."""

    def phase(self, title: str) -> contextlib.AbstractContextManager[object]:
        """A step around a phase; an exception leaving it marks the step failed."""
        ...

    def evidence(self, text: str, name: str) -> None:
        """Text that backs the phase running now (what set-up changed, what teardown restored)."""
        ...

    def reboot_proven(self, proof: reboot.NodeReboot) -> None:
        """One node's reboot proof, proven or not, inside that node's step (on its reboot thread)."""
        ...

    def step_failed(
        self,
        outcome: StepOutcome,
        snapshot: diagnosis.ClusterSnapshot | None,
        logs: Mapping[str, str] | None = None,
    ) -> None:
        """A failed step's missed ticks, diagnosis, blocking objects and their logs (title → text),
        inside its tick check."""
        ...


class Silent:
    """A narrator that tells nobody (the default: no report is being written)."""

    def phase(self, title: str) -> contextlib.AbstractContextManager[object]:
        del title
        return contextlib.nullcontext()

    def evidence(self, text: str, name: str) -> None:
        del text, name

    def reboot_proven(self, proof: reboot.NodeReboot) -> None:
        del proof

    def step_failed(
        self,
        outcome: StepOutcome,
        snapshot: diagnosis.ClusterSnapshot | None,
        logs: Mapping[str, str] | None = None,
    ) -> None:
        del outcome, snapshot, logs


class JobsDidNotFireAgain(AssertionError):
    """The jobs did not all fire again after a step's reboots (a deadline passed or a tick was missed)."""


class _TeardownProblems(Exception):
    """Teardown could not put everything back; the message lists what."""


class SoakRun:
    """One soak against one cluster. Not reusable: open, setup, run steps, finish, teardown."""

    def __init__(
        self,
        *,
        soak: config.Soak,
        target: config.Target,
        chaos: config.Plan,
        progress: Callable[[str], None] = log.info,
        narrator: Narrator | None = None,
        progress_every_s: float = PROGRESS_EVERY_S,
        environment: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.soak = soak
        self.target = target
        self.chaos = chaos
        self.progress = progress
        self.narrator: Narrator = narrator or Silent()
        self.phase = self.narrator.phase
        self.progress_every_s = progress_every_s
        # What set-up and teardown change on the cluster, told as it happens and kept as evidence.
        self._changes = _Lines(self.progress)
        self.environment = dict(environment or {})
        self.clock = clock
        self.last_snapshot: diagnosis.ClusterSnapshot | None = None
        self.last_logs: dict[str, str] = {}
        """The container logs the last `diagnose()` read (title → text; empty without findings)."""
        self.api: cluster.Cluster | None = None
        self.inventory: inventory.Inventory | None = None
        self.drivers: dict[str, chaos_driver.RebootDriver] = {}
        self.nodes: dict[str, str] = {}
        self.writer: ledger.Writer | None = None
        self.setup: longhorn.Setup | None = None
        self.recorder: recorder.Recorder | None = None
        self.monitor: monitor.TickMonitor | None = None
        self.rebooter: reboot.Rebooter | None = None
        self.outcomes: list[StepOutcome] = []
        self.final_findings: list[diagnosis.Finding] = []
        self._manager_problems: list[str] = []
        """What the last `diagnose()` found (the verdict's evidence)."""
        self.health: longhorn.Health | None = None
        self.result: verdict.Verdict | None = None
        self.started_s: float | None = None
        self._misses: list[monitor.Miss] = []
        self._time_passes = threading.Event()  # never set: its wait is an interruptible timer
        self._outages: list[monitor.Outage] = []
        self._lock = threading.Lock()
        self._ended = False
        # Node Ready events (from the recorder) cut the reboot drivers' probe pauses short.
        self.nudge = chaos_driver.Nudge()

    # -- phase 0: check inputs and the target before touching anything ---------------------------

    def open(self) -> None:
        """Validate config, inventory and context; connect. Raises UsageError, touches nothing."""
        self.soak.validate()
        self.chaos.validate()
        allowed = self.target.allowed_contexts
        if self.target.inventory is not None:
            self.inventory = inventory.load(self.target.inventory)
            allowed = (*allowed, self.inventory.cluster.context)
        self.api = cluster.Cluster.connect(
            kubeconfig=self.target.kubeconfig, context=self.target.context, allowed=allowed
        )
        try:
            nodes = self.api.list(cluster.NODES).items
        except cluster.UnreachableError as error:
            raise errors.UsageError(f"the API server at {self.api.server} is unreachable: {error}") from None
        self.nodes = {node["metadata"]["name"]: _role(node) for node in nodes}
        needed = plan.required_nodes(self.chaos, self.nodes)
        if needed:
            if self.inventory is None:
                raise errors.UsageError(f"plan {self.chaos.kind!r} reboots nodes: pass --inventory")
            options = chaos_driver.DriverOptions(
                insecure_host_keys=self.target.insecure_host_keys,
                poll_interval_s=self.chaos.poll_interval_s,
                sleep=self.nudge.sleep,
            )
            self.drivers = chaos_driver.drivers_for(self.inventory, needed, options=options)
            for node, driver in self.drivers.items():
                try:
                    driver.check()
                except chaos_driver.DriverError as error:
                    raise errors.UsageError(f"node {node} cannot be rebooted: {error}") from None
        self._fact(
            f"cluster adopted: context {self.api.context} at {self.api.server}, {len(self.nodes)} nodes",
            evidence=(self._nodes_text(), "nodes"),
        )

    def _nodes_text(self) -> str:
        lines = []
        for node, role in sorted(self.nodes.items()):
            driver = self.drivers.get(node)
            how = f"rebooted by the {driver.kind} driver" if driver else "not rebooted by this plan"
            lines.append(f"{node}  {role}  {how}\n")
        return "".join(lines)

    def _fact(self, title: str, *, evidence: tuple[str, str] | None = None) -> None:
        """Something established, told as an empty step (with its evidence: text, name)."""
        with self.phase(title):
            if evidence is not None:
                self.narrator.evidence(*evidence)

    @property
    def period_s(self) -> float:
        """The longest period of the soak's jobs: waits for "the next tick" are sized by it."""
        return max(schedule.parse(job.cron).period_s for job in self.soak.jobs)

    def describe_plan(self) -> str:
        """What a dry run prints: nodes, order, expected ticks, outage overlap."""
        lines = [
            f"target: context {self.api.context if self.api else '?'}; nodes {', '.join(sorted(self.nodes))}"
        ]
        for job in self.soak.jobs:
            sched = schedule.parse(job.cron)
            lines.append(
                f"job {job.name}: {job.task} {job.cron!r} (every {sched.period_s:.0f}s), retain {job.retain}"
            )
        steps = list(_bounded(plan.steps(self.chaos, self.nodes), 50))
        for step in steps:
            lines.append(step.title)
        if not steps:
            lines.append("no chaos: the jobs are watched only")
        return "\n".join([*lines, *self._expected_ticks(len(steps))])

    def _expected_ticks(self, steps: int) -> list[str]:
        """How long the plan takes at the least, the ticks each job has in it, and which are excused."""
        period_s = self.period_s
        # Each step waits for a tick of every job after its nodes are back, then the run watches more.
        ticks_of_slowest = steps + self.soak.ticks_after_chaos
        window_s = ticks_of_slowest * period_s
        lines = [
            f"at least {window_s:.0f}s: each step spans at least one tick of the slowest job "
            f"(every {period_s:.0f}s), then {self.soak.ticks_after_chaos} more ticks are watched"
        ]
        for job in self.soak.jobs:
            ticks = ticks_of_slowest * round(period_s / schedule.parse(job.cron).period_s)
            lines.append(f"expected ticks of {job.name}: at least {ticks}")
        lines.append(
            f"outage overlap: a tick due while a rebooted node is down, or within {self.soak.settle_s:g}s "
            f"after it is Ready, is excused; any other must be done within {self.soak.lag_bound_s:g}s"
        )
        return lines

    # -- phase 1: setup ---------------------------------------------------------------------------

    def start(self) -> None:
        api = self._require_api()
        with self.phase("Longhorn is installed and healthy"):
            self.health = longhorn.wait_healthy(
                api, deadline_s=self.soak.health_deadline_s, progress=self.progress
            )
            if not self.health.healthy:
                raise StepFailed(
                    f"Longhorn is not ready after {self.soak.health_deadline_s:.0f}s: "
                    + "; ".join(self.health.problems)
                )
            self._fact(
                f"Longhorn {self.health.longhorn_version or '(version unknown)'} on Kubernetes "
                f"{self.health.kubernetes_version or '(version unknown)'}: managers running, "
                f"backup target available, {self.health.nodes} nodes Ready"
            )
        self.soak.run_dir.mkdir(parents=True, exist_ok=True)
        self._fact(f"run directory: {self.soak.run_dir.resolve()}")
        jobs = ", ".join(f"{job.name} ({job.task}, {job.cron!r})" for job in self.soak.jobs)
        with self.phase(f"recurring jobs {jobs} configured on {self.soak.volumes} test volumes"):
            try:
                self._start_recording(api)
            finally:
                self.narrator.evidence(self._changes.take() or "nothing\n", "what the set-up created")

    def _start_recording(self, api: cluster.Cluster) -> None:
        self.setup = longhorn.Setup(api, self.soak, on_step=self._changes)
        # Volumes first (a PVC's Longhorn volume is named by the CSI driver): the run record lists them.
        self.setup.apply()
        self.writer = ledger.Writer.open(self.soak.run_dir / "ledger.jsonl", clock=self.clock)
        self.started_s = self.clock()
        self.writer.append(self._run_record())
        self.recorder = recorder.Recorder(
            api,
            self.writer,
            jobs={job.name: job.task for job in self.soak.jobs},
            volumes=self.setup.volumes,
            clock=self.clock,
            on_node_back=lambda _node: self.nudge.nudge(),
        )
        self.recorder.start()
        self.recorder.wait_synced(deadline_s=60)
        self.rebooter = reboot.Rebooter(
            drivers=self.drivers,
            view=self.recorder.view,
            writer=self.writer,
            down_deadline_s=self.chaos.down_deadline_s,
            ready_deadline_s=self.chaos.ready_deadline_s,
            clock=self.clock,
            progress=self.progress,
            phase=self.phase,
            on_proof=self.narrator.reboot_proven,
        )
        self.monitor = monitor.TickMonitor(
            jobs=self.soak.jobs,
            volumes=self.setup.volumes,
            fires=lambda: list(self._require_recorder().fires_snapshot()),
            outages=self.outages,
            lag_bound_s=self.soak.lag_bound_s,
            settle_s=self.soak.settle_s,
            on_miss=self._on_miss,
            clock=self.clock,
        )
        self.monitor.start(from_s=self.started_s)

    def _run_record(self) -> dict[str, Any]:
        return {
            "type": "run",
            "version": 1,
            "run_id": self.soak.run_id,
            "target": {
                "context": self.api.context if self.api else None,
                "server": self.api.server if self.api else None,
                "nodes": self.nodes,
                "plan": self.chaos.kind,
                "phase": self.chaos.phase,
                "longhorn_version": self.health.longhorn_version if self.health else None,
                "kubernetes_version": self.health.kubernetes_version if self.health else None,
                **self.environment,
            },
            "jobs": [job.as_record() for job in self.soak.jobs],
            "volumes": list(self._require(self.setup).volumes),
            "lag_bound_s": self.soak.lag_bound_s,
            "settle_s": self.soak.settle_s,
        }

    # -- phase 2: chaos steps ---------------------------------------------------------------------

    def steps(self) -> list[plan.Step]:
        return list(_bounded(plan.steps(self.chaos, self.nodes), self.chaos.iterations or 10_000))

    def outages(self) -> list[monitor.Outage]:
        with self._lock:
            known = list(self._outages)
        rebooter = self.rebooter
        if rebooter is not None:
            known += [
                monitor.Outage(node=r.node, start_s=r.started_s, end_s=None)
                for r in list(rebooter.in_flight.values())
            ]
        return known

    def run_step(self, step: plan.Step) -> StepOutcome:
        """Reboot the step's nodes with proof, wait for every job to fire again, check no tick was
        missed; raises StepFailed (with the diagnosis) when any of it fails."""
        rebooter = self._require(self.rebooter)
        self._wait_for_phase()
        if step.kind == "backup-node":
            step = dataclasses.replace(step, nodes=(self._node_of_running_backup(step),))
        outcome = StepOutcome(step=step)
        self.outcomes.append(outcome)
        self.progress(step.title)
        misses_before = len(self._misses)
        self._reboot(step, outcome, rebooter)
        recovered_after = self._recovered_after(outcome)
        try:
            with self.phase("every job fires again on every volume"):
                self._revive_writers()
                self._wait_recovered(step, recovered_after=recovered_after, misses_before=misses_before)
        except JobsDidNotFireAgain as error:
            not_recovered: str | None = str(error)
        else:
            not_recovered = None
        self._check_ticks(step, outcome, misses_before=misses_before, not_recovered=not_recovered)
        self._note_manager_pods()
        if self.chaos.pause_s:
            with self.phase(f"pause {self.chaos.pause_s:g} s before the next step"):
                self._wait_until(self.clock() + self.chaos.pause_s, what="pausing before the next step")
        return outcome

    def _reboot(self, step: plan.Step, outcome: StepOutcome, rebooter: reboot.Rebooter) -> None:
        try:
            with self.phase(f"reboot {', '.join(step.nodes)} and prove each came back"):
                try:
                    outcome.reboots = rebooter.reboot(step.nodes)
                except reboot.RebootFailed as error:
                    outcome.reboots = error.results
                    self._note("error", f"{step.title}: reboot not proven: {error}")
                    raise StepFailed(
                        report.step_failure_text(f"{step.title}: reboot not proven", reboots=error.results)
                    ) from None
        finally:
            with self._lock:
                for result in outcome.reboots:
                    self._outages.append(monitor.Outage(result.node, result.started_s, result.ready_s))

    def _revive_writers(self) -> None:
        writers = self._require(self.setup).writers
        if writers is None:
            return
        self._changes.take()
        writers.revive(writers.claims())
        revived = self._changes.take()
        if revived:
            self.narrator.evidence(revived, "writer pods after the reboot")

    def _recovered_after(self, outcome: StepOutcome) -> float:
        """From when a fire counts as the jobs' recovery: the last node Ready, plus the settle time."""
        ready_at = (
            max((r.ready_s or self.clock()) for r in outcome.reboots) if outcome.reboots else self.clock()
        )
        return ready_at + self.soak.settle_s

    def _wait_for_phase(self) -> None:
        schedules = [schedule.parse(job.cron) for job in self.soak.jobs]
        at = plan.phase_start(self.chaos.phase, now_s=self.clock(), schedules=schedules)
        if at > self.clock():
            with self.phase(
                f"wait for the {self.chaos.phase} phase of the schedule, at {progress.clock_time(at)}"
            ):
                self.progress(f"waiting {at - self.clock():.1f}s for the {self.chaos.phase} phase")
                self._wait_until(
                    at, what=f"waiting for the {self.chaos.phase} phase at {progress.clock_time(at)}"
                )
        if self.chaos.phase == "during-backup":
            with self.phase("wait for a backup of the soak's backup job to be InProgress"):
                self._wait_backup_in_progress()

    def _node_of_running_backup(self, step: plan.Step) -> str:
        """The worker carrying a soak volume whose backup is InProgress now (waits for one).

        A node that does not also run the job pod is preferred: the pod then lives on, waiting on
        the interrupted backup, which is how longhorn#9168 strikes. After half the wait any carrier does.
        """
        rec = self._require_recorder()
        backup_jobs = {job.name for job in self.soak.jobs if job.task == "backup"}
        period = self.period_s
        deadline_s = 3 * period + self.soak.lag_bound_s
        lenient_after = self.clock() + deadline_s / 2

        def node(view: recorder.ClusterView) -> str | None:
            carriers = self._backup_carriers(view, backup_jobs)
            pod_nodes = self._job_pod_nodes(view, backup_jobs)
            preferred = [carrier for carrier in carriers if carrier not in pod_nodes]
            if preferred:
                return preferred[0]
            if carriers and self.clock() >= lenient_after:
                return carriers[0]
            return None

        try:
            with self.phase("pick the node of a running backup"):
                return rec.view.wait_for(
                    node,
                    what="a running backup of the soak's backup job, to reboot its volume's node",
                    deadline_s=deadline_s,
                    seen=lambda view: (
                        f"{len(view.items('backups'))} backups, none InProgress on a known node; "
                        + self._next_ticks_text(backup_jobs)
                    ),
                    progress=self.progress,
                    progress_every_s=self.progress_every_s,
                )
        except recorder.WaitTimeout as error:
            raise StepFailed(
                report.step_failure_text(f"{step.title}: no backup to interrupt: {error}")
            ) from None

    def _backup_carriers(self, view: recorder.ClusterView, backup_jobs: set[str]) -> list[str]:
        carriers = []
        for backup in view.items("backups"):
            status = backup.get("status") or {}
            if artifacts.backup_job(backup) not in backup_jobs or status.get("state") != "InProgress":
                continue
            volume = view.get("volumes", str(status.get("volumeName")), config.LONGHORN_NAMESPACE)
            vstatus = (volume or {}).get("status") or {}
            carrier = vstatus.get("currentNodeID") or vstatus.get("ownerID")
            if carrier in self.drivers:
                carriers.append(str(carrier))
        return carriers

    @staticmethod
    def _job_pod_nodes(view: recorder.ClusterView, jobs: set[str]) -> set[str]:
        # CronJob pods are named <cronjob>-<schedule>-<suffix>; the recurring job names the CronJob.
        return {
            str((pod.get("spec") or {}).get("nodeName"))
            for pod in view.items("pods")
            if any(pod["metadata"]["name"].startswith(f"{job}-") for job in jobs)
            and (pod.get("status") or {}).get("phase") in ("Pending", "Running")
        }

    def _wait_backup_in_progress(self) -> None:
        rec = self._require_recorder()
        backup_jobs = {job.name for job in self.soak.jobs if job.task == "backup"}
        period = self.period_s
        try:
            rec.view.wait_for(
                lambda view: (
                    True
                    if any(
                        artifacts.backup_job(b) in backup_jobs
                        and (b.get("status") or {}).get("state") == "InProgress"
                        for b in view.items("backups")
                    )
                    else None
                ),
                what="a backup of the soak's backup job to be InProgress",
                deadline_s=2 * period,
                seen=lambda view: (
                    f"{len(view.items('backups'))} backups, none InProgress; "
                    + self._next_ticks_text(backup_jobs)
                ),
                progress=self.progress,
                progress_every_s=self.progress_every_s,
            )
        except recorder.WaitTimeout as error:
            self._note("warn", f"phase during-backup: {error}; rebooting anyway")

    def _next_ticks_text(self, jobs: Iterable[str]) -> str:
        now_s = self.clock()
        wanted = set(jobs)
        return ", ".join(
            f"next {job.name} tick {progress.clock_time(tick)} ({progress.in_or_ago(tick - now_s)})"
            for job in self.soak.jobs
            if job.name in wanted
            for tick in [schedule.parse(job.cron).next_after(now_s)]
        )

    def _wait_recovered(self, step: plan.Step, *, recovered_after: float, misses_before: int) -> None:
        """After the reboot: every job fires again on every volume; JobsDidNotFireAgain on a miss or the deadline."""
        rec = self._require_recorder()
        deadline_s = self.soak.settle_s + 2 * self.period_s + self.soak.lag_bound_s
        ends_s = self.clock() + deadline_s

        def check(_view: recorder.ClusterView) -> bool | None:
            if len(self._misses) > misses_before:
                return False
            return True if self._every_job_fired_since(recovered_after) else None

        def seen(_view: recorder.ClusterView) -> str:
            status = progress.recovery_status(
                jobs=self.soak.jobs,
                volumes=self._require(self.setup).volumes,
                fires=self._require_recorder().fires_snapshot(),
                after_s=recovered_after,
                now_s=self.clock(),
            )
            return f"{status}; {max(0.0, ends_s - self.clock()):.0f} s left"

        self.progress(f"{step.title}: waiting for every job to fire again")
        try:
            recovered = rec.view.wait_for(
                check,
                what=f"every job to fire on every volume after {progress.clock_time(recovered_after)}",
                deadline_s=deadline_s,
                seen=seen,
                progress=self.progress,
                progress_every_s=self.progress_every_s,
            )
        except recorder.WaitTimeout as error:
            raise JobsDidNotFireAgain(str(error)) from None
        if not recovered:
            raise JobsDidNotFireAgain("a tick was missed while waiting for every job to fire again")
        self._fact(
            f"fired again after {progress.clock_time(recovered_after)}: {self._fire_counts(recovered_after)}"
        )

    def _check_ticks(
        self, step: plan.Step, outcome: StepOutcome, *, misses_before: int, not_recovered: str | None
    ) -> None:
        """The step's assessment: no tick missed and every job recovered; else diagnose and fail."""
        outcome.misses = self._misses[misses_before:]
        with self.phase("no tick of any job missed its lag bound during the step"):
            if not outcome.misses and not_recovered is None:
                return
            outcome.findings = self.diagnose()
            if outcome.misses:
                missed = "; ".join(
                    f"{m.job}/{m.volume} tick {timestamps.to_rfc3339(m.tick_s)}: {m.reason}"
                    for m in outcome.misses
                )
                what = f"missed ticks: {missed}"
            else:
                what = str(not_recovered)
            what += self._remediate(outcome.findings)
            self.narrator.step_failed(outcome, self.last_snapshot, self.last_logs)
            raise StepFailed(self._failure_text(step, what, outcome.findings))

    # The documented workarounds: delete the Pending job pod (longhorn#7956), delete the stuck
    # InProgress backup (longhorn#9168). Applied only with --remediate, after the misses are recorded.
    _REMEDIES: Mapping[str, tuple[str, cluster.Resource]] = {
        "stuck-pending-job": ("Pod", cluster.PODS),
        "stuck-inprogress-backup": ("Backup", cluster.BACKUPS),
    }

    def _remediate(self, findings: Sequence[diagnosis.Finding]) -> str:
        """Apply the workaround for each finding that has one; say whether the jobs resumed."""
        if not self.soak.remediate:
            return ""
        deleted = [name for finding in findings for name in self._apply_remedy(finding)]
        if not deleted:
            return "; --remediate: no documented workaround applies"
        resumed = self._wait_jobs_resume(after_s=self.clock())
        self._note(
            "info" if resumed else "error",
            f"after remediation the jobs {'resumed' if resumed else 'did not resume'}",
        )
        verdict_text = "every job fired again" if resumed else "the jobs did NOT resume"
        return (
            f"; --remediate deleted {', '.join(deleted)} and {verdict_text} (the misses still fail the run)"
        )

    def _apply_remedy(self, finding: diagnosis.Finding) -> list[str]:
        remedy = self._REMEDIES.get(finding.category)
        if remedy is None:
            return []
        kind, resource = remedy
        deleted = []
        for ref in finding.objects:
            if ref.kind != kind:
                continue
            try:
                self._require_api().delete(resource, ref.name, namespace=ref.namespace)
            except cluster.NotFoundError:
                continue
            deleted.append(f"{kind} {ref.name}")
            self._note(
                "warn",
                f"remediation: deleted {kind} {ref.namespace}/{ref.name}, the documented workaround for {finding.category}",
                {"category": finding.category, "kind": kind, "name": ref.name, "remediation": True},
            )
            self.progress(f"--remediate: deleted {kind} {ref.name} ({finding.category})")
        return deleted

    def _every_job_fired_since(self, after_s: float) -> bool:
        """Every job has a usable artifact started after `after_s` on every volume."""
        volumes = self._require(self.setup).volumes
        wanted = {(job.name, volume) for job in self.soak.jobs for volume in volumes}
        fires = self._require_recorder().fires_snapshot()
        fresh = {(f.job, f.volume) for f in fires if f.done is not None and f.started >= after_s}
        return wanted <= fresh

    def _wait_jobs_resume(self, *, after_s: float) -> bool:
        rec = self._require_recorder()
        period = self.period_s
        try:
            return rec.view.wait_for(
                lambda _view: True if self._every_job_fired_since(after_s) else None,
                what="every job to fire again after the remediation",
                deadline_s=2 * period + self.soak.lag_bound_s,
                seen=lambda _view: self._fire_summary(after_s),
                progress=self.progress,
            )
        except recorder.WaitTimeout:
            return False

    def _fire_summary(self, after_s: float) -> str:
        return "fires since then: " + self._fire_counts(after_s)

    def _fire_counts(self, after_s: float) -> str:
        fires = self._require_recorder().fires_snapshot()
        counts: dict[str, int] = {}
        for fire in fires:
            if fire.done is not None and fire.started >= after_s:
                counts[fire.job] = counts.get(fire.job, 0) + 1
        return ", ".join(f"{job} {n}" for job, n in sorted(counts.items())) or "none"

    def _failure_text(self, step: plan.Step, what: str, findings: Sequence[diagnosis.Finding]) -> str:
        if findings:
            # The whole story on the terminal; the exception carries the short, categorised form.
            self.progress(f"{step.title}: diagnosis\n{diagnosis.render(findings)}")
        return report.step_failure_text(f"{step.title}: {what}", findings=findings)

    def _on_miss(self, miss: monitor.Miss) -> None:
        self._misses.append(miss)
        self._note(
            "error",
            f"missed tick: {miss.job}/{miss.volume} at {timestamps.to_rfc3339(miss.tick_s)}: {miss.reason}",
            {"job": miss.job, "volume": miss.volume, "tick": timestamps.to_rfc3339(miss.tick_s)},
        )
        self.progress(
            f"MISSED {miss.job}/{miss.volume} tick {timestamps.to_rfc3339(miss.tick_s)}: {miss.reason}"
        )
        # Wake anyone waiting on the cluster view, so a step fails as soon as the miss is known.
        self._require_recorder().view.poke()

    # -- phase 3: after the chaos -----------------------------------------------------------------

    def settle(self) -> None:
        """Watch `ticks_after_chaos` more ticks of every job after the last outage has settled, so
        a stall after the last reboot shows and every job's verdict covers a stretch of calm."""
        period = self.period_s
        calm_from = max(
            [self._require(self.started_s)]
            + [(outage.end_s or self.clock()) + self.soak.settle_s for outage in self.outages()]
        )
        until = max(self.clock(), calm_from) + self.soak.ticks_after_chaos * period + self.soak.lag_bound_s
        ticks = self.soak.ticks_after_chaos
        self.progress(f"watching {ticks} more ticks ({until - self.clock():.0f}s)")
        watch_from, missed_before = self.clock(), len(self._misses)

        def seen() -> str:
            return progress.watch_status(
                jobs=self.soak.jobs,
                fires=self._require_recorder().fires_snapshot(),
                since_s=watch_from,
                now_s=self.clock(),
                missed=len(self._misses) - missed_before,
            )

        with self.phase(f"watch {ticks} more ticks of every job"):
            self._wait_until(
                until,
                what=f"watching {ticks} more ticks of every job until {progress.clock_time(until)}",
                seen=seen,
            )

    def diagnose(self) -> list[diagnosis.Finding]:
        rec = self._require_recorder()
        view = rec.view
        snapshot = diagnosis.ClusterSnapshot(
            cronjobs=tuple(view.items("cronjobs")),
            jobs=tuple(view.items("jobs")),
            pods=tuple(view.items("pods")),
            events=tuple(view.items("events")),
            nodes=tuple(view.items("nodes")),
            backups=tuple(view.items("backups")),
            snapshots=tuple(view.items("snapshots")),
            volumes=tuple(view.items("volumes")),
            backup_targets=tuple(view.items("backuptargets")),
            recurring_jobs=tuple(view.items("recurringjobs")),
            taken_at_s=self.clock(),
            node_restarts=self._proven_restarts(),
        )
        self.last_snapshot = snapshot
        self._note_manager_pods()
        stalled = {miss.job for miss in self._misses}
        # A backup or job pod that outlives the lag bound is late by the soak's own definition; the
        # library's defaults suit a real cluster's minutes, not a compressed lab's seconds.
        thresholds = diagnosis.Thresholds(
            pending_pod_after_s=min(120.0, self.soak.lag_bound_s),
            backup_stuck_after_s=min(600.0, self.soak.lag_bound_s),
        )
        findings = diagnosis.diagnose(snapshot, jobs=self.soak.jobs, stalled=stalled, thresholds=thresholds)
        self.final_findings = findings
        self.last_logs = self._read_logs(findings, snapshot)
        for finding in findings:
            self._note(
                "error" if finding.job in stalled else "warn",
                finding.summary,
                {
                    "category": finding.category,
                    "job": finding.job,
                    "detail": finding.detail,
                    **dict(finding.data),
                },
            )
        return findings

    def _read_logs(
        self, findings: Sequence[diagnosis.Finding], snapshot: diagnosis.ClusterSnapshot
    ) -> dict[str, str]:
        """The logs of the pods the findings point at, kept with the run for the report."""
        if not findings or self.api is None:
            return {}
        logs = pod_logs.read_logs(self.api, pod_logs.log_sources(findings, snapshot), now_s=self.clock())
        try:
            report_files.save_logs(self.soak.run_dir, logs)
        except OSError as error:
            self.progress(f"could not keep the pod logs with the run: {error}")
        return logs

    def _proven_restarts(self) -> dict[str, float]:
        """Node → start of its last reboot proven by a new boot id (a container restart keeps its
        boot id and is left out: the diagnosis then reads the Ready transition instead)."""
        restarts: dict[str, float] = {}
        for outcome in self.outcomes:
            for result in outcome.reboots:
                proven = result.failure is None and result.new_boot_id not in (None, result.old_boot_id)
                if proven and result.started_s > restarts.get(result.node, float("-inf")):
                    restarts[result.node] = result.started_s
        return restarts

    def findings(self) -> list[diagnosis.Finding]:
        """Every cause found, at failed steps and at the end: each once, as last seen (the same
        Pending pod found at a step and at the end is one cause, with its latest age)."""
        latest: dict[tuple[str, str | None, object], diagnosis.Finding] = {}
        for finding in [f for outcome in self.outcomes for f in outcome.findings] + self.final_findings:
            key = (finding.category, finding.job, finding.objects[0] if finding.objects else finding.summary)
            latest.pop(key, None)
            latest[key] = finding
        return list(latest.values())

    def finish(self, reason: str = "completed") -> verdict.Verdict:
        """Stop watching, end the ledger, decide. Idempotent."""
        if self.monitor is not None:
            self.monitor.stop()
        if self.recorder is not None:
            self.recorder.stop()
        writer = self._require(self.writer)
        if not self._ended:
            writer.append({"type": "end", "reason": reason})
            self._ended = True
        parsed = ledger.read(self.soak.run_dir / "ledger.jsonl")
        self.result = verdict.analyse(parsed)
        (self.soak.run_dir / "verdict.json").write_text(
            json.dumps(causes.verdict_document(self.result, parsed), indent=2, sort_keys=True) + "\n"
        )
        return self.result

    # -- teardown: always --------------------------------------------------------------------------

    def teardown(self, *, reason: str = "completed") -> list[str]:
        problems: list[str] = []
        if self.rebooter is not None:
            # No new reboot is issued now; a proof in flight may finish (it powers its node back on).
            self.rebooter.cancel(join_s=min(60.0, self.chaos.ready_deadline_s))
            if self.drivers:
                problems += self._told("every node the plan reboots is powered on", self.rebooter.restore_all)
        if self.writer is not None and not self._ended:
            problems += self._told(
                f"the ledger ends ({reason}) and the verdict is written", self._end, reason
            )
        setup = self.setup
        if setup is not None:
            volumes = "kept (--keep)" if self.soak.keep else "removed"
            problems += self._told(
                f"the recurring jobs that were there are restored, the soak's are removed; its volumes {volumes}",
                self._undo_setup,
                setup,
                evidence_name="what the teardown changed",
            )
        if self.writer is not None:
            self.writer.close()
        if self.api is not None:
            self.api.close()
        for problem in problems:
            self.progress(f"teardown: {problem}")
        return problems

    def _told(
        self,
        title: str,
        work: Callable[..., list[str]],
        *args: Any,
        evidence_name: str | None = None,
    ) -> list[str]:
        """Run a teardown part as a phase, failed when it reports problems; returns them."""
        self._changes.take()  # lines from before (writer pods revived at steps) are not this part's
        try:
            with self.phase(title):
                try:
                    problems = work(*args)
                finally:
                    if evidence_name is not None:
                        self.narrator.evidence(self._changes.take() or "nothing\n", evidence_name)
                if problems:
                    raise _TeardownProblems("; ".join(problems))
        except _TeardownProblems:
            pass
        return problems

    def _end(self, reason: str) -> list[str]:
        try:
            self.finish(reason)
        except Exception as error:
            return [f"could not finish the ledger: {error}"]
        return []

    def _undo_setup(self, setup: longhorn.Setup) -> list[str]:
        """Put the cluster back; waits for the API server if a control-plane reboot took it down."""

        def log_attempt(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome else None
            self.progress(
                f"teardown: attempt {state.attempt_number}: API server unreachable ({error}); retrying"
            )

        try:
            return tenacity.Retrying(
                retry=tenacity.retry_if_exception_type(cluster.UnreachableError),
                wait=tenacity.wait_exponential(multiplier=0.5, max=5),
                stop=tenacity.stop_after_delay(self.chaos.ready_deadline_s),
                before_sleep=log_attempt,
                reraise=True,
            )(setup.undo, keep=self.soak.keep)
        except cluster.ClusterError as error:
            return [f"cleanup failed: {error}"]

    # -- helpers ----------------------------------------------------------------------------------

    def _note_manager_pods(self) -> None:
        """A warning note when longhorn-manager pods are not Running (once per distinct state)."""
        problems = longhorn.manager_pod_problems(self._require_recorder().view.items("pods"))
        if problems == self._manager_problems:
            return
        self._manager_problems = problems
        if problems:
            self.progress("longhorn-manager not running: " + "; ".join(problems))
            self._note(
                "warn",
                "longhorn-manager not running: " + "; ".join(problems),
                {"kind": "LonghornManager", "problems": problems},
            )
        else:
            self._note("info", "longhorn-manager running on every node again", {"kind": "LonghornManager"})

    def _note(self, level: str, text: str, data: dict[str, Any] | None = None) -> None:
        if self.writer is not None and not self._ended:
            self.writer.append({"type": "note", "level": level, "text": text, "data": data or {}})

    def _wait_until(self, epoch_s: float, *, what: str, seen: Callable[[], str] | None = None) -> None:
        """Wait for time itself (the schedule's next ticks), not for state, saying now and then
        how long is left and what was `seen`. An interrupt still ends it: the lock wait under
        Event.wait is interruptible by signal handlers."""

        def tell(left_s: float) -> None:
            self.progress(f"{what} ({left_s:.0f} s left)" + (f"; {seen()}" if seen else ""))

        progress.wait_until(
            epoch_s,
            clock=self.clock,
            pause=lambda timeout_s: self._time_passes.wait(timeout=timeout_s),
            every_s=self.progress_every_s,
            tell=tell,
        )

    def _require_api(self) -> cluster.Cluster:
        return self._require(self.api)

    def _require_recorder(self) -> recorder.Recorder:
        return self._require(self.recorder)

    @staticmethod
    def _require(value: T | None) -> T:
        if value is None:
            raise RuntimeError("soak phase called out of order")
        return value


def _role(node: dict[str, Any]) -> str:
    labels = (node.get("metadata") or {}).get("labels") or {}
    planes = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")
    return "control-plane" if any(label in labels for label in planes) else "worker"


def _bounded(steps: Iterator[plan.Step], limit: int) -> Iterator[plan.Step]:
    for index, step in enumerate(steps):
        if index >= limit:
            return
        yield step


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


class _Lines:
    """Progress lines passed on as they come, and kept to be shown together (a phase's evidence)."""

    def __init__(self, progress: Callable[[str], None]) -> None:
        self._progress = progress
        self._lines: list[str] = []

    def __call__(self, line: str) -> None:
        self._lines.append(line)
        self._progress(line)

    def take(self) -> str:
        """The lines kept since the last take, as text ("" for none)."""
        lines, self._lines = self._lines, []
        return "".join(f"{line}\n" for line in lines)
