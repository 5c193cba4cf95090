"""Run configuration: frozen dataclasses grouped by concern, validated when built.

Every bad value fails early with one `UsageError` naming the option, so a soak never starts half-configured.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from lhsoak import errors, schedule

Task = Literal["snapshot", "backup"]
PlanKind = Literal["none", "worker", "control-plane", "all-workers", "cluster", "random", "backup-node"]
Phase = Literal["any", "before-tick", "during-backup", "between-ticks"]
VolumeMode = Literal["auto", "pvc", "volume"]
VOLUME_MODES: tuple[VolumeMode, ...] = ("auto", "pvc", "volume")

TASKS: tuple[Task, ...] = ("snapshot", "backup")
PLAN_KINDS: tuple[PlanKind, ...] = (
    "none",
    "worker",
    "control-plane",
    "all-workers",
    "cluster",
    "random",
    "backup-node",
)
PHASES: tuple[Phase, ...] = ("any", "before-tick", "during-backup", "between-ticks")

# Kubernetes object names: RFC 1123 labels (RecurringJob names end up as CronJob names).
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,50}[a-z0-9])?$")
LONGHORN_NAMESPACE = "longhorn-system"
RUN_LABEL = "lhsoak.io/run"


@dataclass(frozen=True)
class JobSpec:
    """One Longhorn RecurringJob the soak configures and watches."""

    name: str
    """RecurringJob name (also the CronJob's name); a DNS label."""
    task: Task
    """`snapshot` or `backup`."""
    cron: str
    """Cron schedule: 5 fields on a real Longhorn; 6 fields, seconds first, on the lab."""
    retain: int = 1
    """How many artifacts Longhorn keeps per volume; at least 1."""
    concurrency: int = 1
    """How many volumes the job pod works on at once; at least 1."""

    def validate(self, *, allow_seconds: bool) -> None:
        if not _DNS_LABEL.match(self.name):
            raise errors.UsageError(f"job name {self.name!r} is not a valid DNS label")
        if self.task not in TASKS:
            raise errors.UsageError(f"job {self.name}: task must be one of {', '.join(TASKS)}")
        if self.retain < 1:
            raise errors.UsageError(f"job {self.name}: retain must be at least 1, got {self.retain}")
        if self.concurrency < 1:
            raise errors.UsageError(
                f"job {self.name}: concurrency must be at least 1, got {self.concurrency}"
            )
        try:
            parsed = schedule.parse(self.cron)
            if not allow_seconds:
                schedule.require_standard(self.cron)
        except schedule.ScheduleError as error:
            raise errors.UsageError(f"job {self.name}: cron {self.cron!r}: {error}") from None
        del parsed

    def as_record(self) -> dict[str, object]:
        return {"name": self.name, "task": self.task, "cron": self.cron, "retain": self.retain}


def default_jobs(cron: str = "*/2 * * * *", retain: int = 1) -> tuple[JobSpec, ...]:
    return (
        JobSpec(name="soak-snap", task="snapshot", cron=cron, retain=retain),
        JobSpec(name="soak-backup", task="backup", cron=cron, retain=retain),
    )


@dataclass(frozen=True)
class Target:
    """Which cluster the soak may touch, and how its nodes are reached."""

    kubeconfig: Path | None = None
    """Kubeconfig file; default: $KUBECONFIG or ~/.kube/config."""
    context: str | None = None
    """Kube context to use; default: the kubeconfig's current context."""
    allowed_contexts: tuple[str, ...] = ()
    """Contexts the user allowed (`--allow-context`, or the inventory's `cluster.context`)."""
    inventory: Path | None = None
    """Inventory YAML: nodes, roles and how to reboot each."""
    insecure_host_keys: bool = False
    """Skip SSH host-key checks (loudly); default off."""


@dataclass(frozen=True)
class Plan:
    """The chaos: which nodes are rebooted, how often, and when relative to the schedule."""

    kind: PlanKind = "cluster"
    """none | worker | control-plane | all-workers | cluster | random | backup-node (the node
    carrying a volume whose backup is in progress, picked when the backup runs)."""
    iterations: int | None = 3
    """How many steps; None when `duration_s` bounds the plan instead."""
    duration_s: float | None = None
    """Stop starting new steps after this long; seconds; default unset."""
    pause_s: float = 0.0
    """Wait between a step's recovery and the next step; seconds; default 0."""
    phase: Phase = "any"
    """When to reboot relative to the schedule; default any time."""
    seed: int = 0
    """Seed for `random` plans and jitter; default 0."""
    down_deadline_s: float = 300.0
    """How long a node may take to go down after a reboot was issued; seconds; default 300."""
    ready_deadline_s: float = 900.0
    """How long a node may take to be Ready again; seconds; default 900."""
    poll_interval_s: float = 2.0
    """Pause between two probes of a node over SSH or a cloud API; seconds; default 2."""

    def validate(self) -> None:
        if self.kind not in PLAN_KINDS:
            raise errors.UsageError(f"plan must be one of {', '.join(PLAN_KINDS)}")
        if self.phase not in PHASES:
            raise errors.UsageError(f"phase must be one of {', '.join(PHASES)}")
        if self.iterations is not None and self.iterations < 0:
            raise errors.UsageError(f"iterations must be 0 or more, got {self.iterations}")
        if self.iterations is None and self.duration_s is None:
            raise errors.UsageError("a plan needs --iterations or --duration")
        for name in ("pause_s", "down_deadline_s", "ready_deadline_s"):
            if getattr(self, name) < 0:
                raise errors.UsageError(f"{name} must not be negative")


@dataclass(frozen=True)
class Soak:
    """Everything a soak run needs besides the target and the plan."""

    run_id: str
    """Names the report directory and labels every object the run creates."""
    jobs: tuple[JobSpec, ...] = field(default_factory=default_jobs)
    """The recurring jobs under test; default a snapshot and a backup job, `*/2 * * * *`, retain 1."""
    volumes: int = 2
    """How many test volumes; default 2."""
    volume_size_bytes: int = 1 << 30
    """Size of each test volume; default 1 GiB."""
    volume_mode: VolumeMode = "auto"
    """pvc: a PVC of `storage_class` with a writer pod (attached, as users have them); volume: a bare
    Longhorn Volume; auto: pvc when the StorageClass exists, else volume."""
    storage_class: str = "longhorn"
    """StorageClass of the test PVCs; default longhorn."""
    writer_image: str = "busybox:1.36"
    """Image of the writer pods; default busybox:1.36."""
    lag_bound_s: float = 120.0
    """A tick's artifact must be usable within this long of the tick; seconds; default 120."""
    settle_s: float = 60.0
    """Ticks this long after a node is Ready again are still excused; seconds; default 60."""
    ticks_after_chaos: int = 2
    """Ticks of every job to wait for after the last reboot before the verdict; default 2."""
    health_deadline_s: float = 300.0
    """How long Longhorn may take to be healthy (managers Running, backup target available, nodes
    Ready) before the soak starts; seconds; default 300 (a freshly installed cluster is still
    starting)."""
    reports_dir: Path = Path("reports")
    """Where `<run-id>/` is written; default ./reports."""
    keep: bool = False
    """Leave test objects on the cluster at the end; default off."""
    remediate: bool = False
    """Apply the documented workaround after a stall is recorded; default off."""
    allow_seconds_cron: bool = False
    """Accept 6-field (seconds-first) crons: only the lab understands them; default off."""

    @property
    def run_dir(self) -> Path:
        return self.reports_dir / self.run_id

    def validate(self) -> None:
        if not _DNS_LABEL.match(self.run_id):
            raise errors.UsageError(f"run id {self.run_id!r} is not a valid DNS label")
        if not self.jobs:
            raise errors.UsageError("no recurring jobs configured")
        names = [job.name for job in self.jobs]
        if len(set(names)) != len(names):
            raise errors.UsageError(f"duplicate job names: {', '.join(names)}")
        for job in self.jobs:
            job.validate(allow_seconds=self.allow_seconds_cron)
        if self.volume_mode not in VOLUME_MODES:
            raise errors.UsageError(f"volume mode must be one of {', '.join(VOLUME_MODES)}")
        if self.volumes < 1:
            raise errors.UsageError(f"volumes must be at least 1, got {self.volumes}")
        if self.lag_bound_s <= 0:
            raise errors.UsageError("lag bound must be positive")
        if self.settle_s < 0:
            raise errors.UsageError("settle time must not be negative")
        if self.health_deadline_s < 0:
            raise errors.UsageError("health deadline must not be negative")

    def with_jobs(self, jobs: Sequence[JobSpec]) -> Soak:
        return dataclasses.replace(self, jobs=tuple(jobs))
