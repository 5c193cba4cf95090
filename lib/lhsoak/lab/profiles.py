"""Lab profiles: how the emulated cluster behaves — its (time-compressed) durations and its faults.

A profile is a frozen set of durations plus switches that turn on one upstream failure each:

- ``healthy``: the fixed behaviour. A node going down fails its pods (graceful node shutdown) and
  the Job controller replaces them; backups interrupted by a reboot end in Error; jobs recover.
- ``stuck-pending``: longhorn#7956 / kubernetes#118321. A job pod bound to a node that reboots is
  admitted again by the kubelet but never started: it shows Pending with ``spec.nodeName`` set
  forever, its Job stays active and the Forbid CronJob never starts another job.
- ``stuck-backup``: longhorn#9168 / #9417. A backup running when its volume's node reboots stays
  InProgress forever; the job pod waits on it with no timeout (as upstream), so the backup CronJob
  stops firing while snapshots go on.
- ``error-backups``: longhorn#7854. Backups started while a node is down, or shortly after it is
  back (a stale backupstore lock), end in Error ("failed to acquire lock ..."); Error backups are
  never cleaned up by the job, so they pile up past ``retain``.
- ``backup-target-down``: the backup target becomes unavailable for a while once backups run (as an
  unreachable S3); backups started or running meanwhile end in Error.

Durations are compressed: the lab runs cron schedules with a seconds field, so what takes a minute
on a real cluster takes a second or two here. Each docstring gives the real-world figure.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Any, Literal

from lhsoak.errors import UsageError
from lhsoak.lab.machine import MachineTimings

LostPodFate = Literal["replaced", "stuck-pending"]
BackupOnNodeLoss = Literal["error", "stuck"]


@dataclass(frozen=True)
class Profile:
    """Durations (seconds, time-compressed) and fault switches of one lab cluster behaviour."""

    name: str
    """Profile name, e.g. "healthy"."""
    seed: int = 0
    """Seed of every random draw (jitter, pod placement, names) (0)."""
    jitter: float = 0.1
    """Each emulated duration lasts its value times 1 ± up to this fraction (0.1)."""

    shutdown_s: float = 0.2
    """Soft shutdown until power-off, seconds (0.2; real: tens of seconds)."""
    down_s: float = 0.4
    """Time a rebooting machine stays off, seconds (0.4; longhorn-tests on AWS: 60 s)."""
    boot_s: float = 0.3
    """Power-on until the OS is up with a new boot id, seconds (0.3; real: ~30-60 s)."""
    kubelet_start_s: float = 0.2
    """Boot until the kubelet is active, seconds (0.2; real: ~10 s)."""

    node_monitor_grace_s: float = 0.4
    """Node lifecycle controller's node-monitor-grace-period, seconds (0.4; kube-controller-manager
    default: 40 s)."""
    pod_toleration_s: float = 300.0
    """tolerationSeconds of the default not-ready/unreachable NoExecute tolerations added to every
    pod, i.e. the taint-eviction delay, seconds (300, as the DefaultTolerationSeconds plugin)."""

    pod_start_s: float = 0.05
    """Kubelet: pod admitted until its container runs (sandbox, image present), seconds (0.05)."""
    crash_backoff_s: float = 0.1
    """Kubelet: first restart delay of a failed container, doubled per restart, seconds (0.1;
    real: 10 s)."""
    crash_backoff_max_s: float = 1.0
    """Kubelet: cap of the container restart delay, seconds (1.0; real: 300 s)."""
    job_backoff_s: float = 0.1
    """Job controller: delay before replacing a failed pod, doubled per failure, seconds (0.1;
    real: 10 s)."""
    job_backoff_max_s: float = 1.0
    """Job controller: cap of the replacement delay, seconds (1.0; real: 360 s)."""

    snapshot_ready_s: float = 0.05
    """Snapshot CR created until readyToUse, seconds (0.05)."""
    snapshot_ready_timeout_s: float = 10.0
    """How long the job task waits for a snapshot to be ready, seconds (10; upstream: 390 x 5 s)."""
    backup_pending_s: float = 0.05
    """Backup New until Pending and Pending until InProgress, each, seconds (0.05)."""
    backup_s: float = 0.3
    """Backup InProgress until Completed, seconds (0.3)."""
    backup_progress_steps: int = 3
    """Progress updates written while a backup is InProgress (3)."""
    backup_start_timeout_s: float = 10.0
    """How long the job task waits for its backup to appear in the volume's backup status,
    seconds (10; upstream: 90 x 5 s)."""

    event_spam_burst: int = 25
    """client-go event spam filter: events one source may emit about one object at once (25)."""
    event_spam_refill_s: float = 10.0
    """client-go event spam filter: seconds per token refilled (10; real: 300 s, scaled like the
    schedules, a 1-minute cron becoming 2 s)."""
    event_aggregate_window_s: float = 20.0
    """client-go event aggregator: window in which 10 similar events are combined, seconds (20;
    real: 600 s, scaled like the schedules)."""

    lost_pod_fate: LostPodFate = "replaced"
    """What happens to a job pod whose node goes down: "replaced" (the kubelet fails it at
    shutdown, or restarts it after boot, and the job recovers) or "stuck-pending" (kubernetes#118321:
    Pending forever after the node is back)."""
    backup_on_node_loss: BackupOnNodeLoss = "error"
    """What a backup does when its volume's node goes down while it runs: "error" or "stuck"
    (longhorn#9168: InProgress forever)."""
    outage_backup_error_s: float | None = None
    """longhorn#7854: when set, backups started while any node is down, or within this many seconds
    after every node is back (a stale backupstore lock), end in Error; None disables (None)."""
    target_down_after_s: float | None = None
    """Seconds after the controllers start when the backup target becomes unavailable; None never
    (None)."""
    target_down_after_first_backup_s: float | None = None
    """Seconds after the first backup starts when the backup target becomes unavailable, so the
    outage falls inside whatever window a soak watches; None never (None)."""
    target_down_for_s: float = 0.0
    """How long each backup target outage lasts, seconds (0)."""
    target_down_every_s: float | None = None
    """Period of repeated backup target outages, seconds; None for a single one (None)."""

    def __post_init__(self) -> None:
        durations = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        for name, value in durations.items():
            if name.endswith("_s") and value is not None and value < 0:
                raise UsageError(f"profile {self.name}: {name} must be >= 0, got {value}")
        if not 0 <= self.jitter < 1:
            raise UsageError(f"profile {self.name}: jitter must be in [0, 1), got {self.jitter}")
        if self.backup_progress_steps < 1:
            raise UsageError(f"profile {self.name}: backup_progress_steps must be >= 1")
        if self.target_down_every_s is not None and self.target_down_every_s <= self.target_down_for_s:
            raise UsageError(f"profile {self.name}: target_down_every_s must exceed target_down_for_s")

    def machine_timings(self) -> MachineTimings:
        """The power-step durations of this profile, for `MachineFleet.build`."""
        return MachineTimings(
            shutdown_s=self.shutdown_s,
            down_s=self.down_s,
            boot_s=self.boot_s,
            kubelet_start_s=self.kubelet_start_s,
            jitter=self.jitter,
        )

    def rng(self, purpose: str) -> random.Random:
        """A random generator for one purpose, reproducible from the seed."""
        return random.Random(f"{self.seed}:{self.name}:{purpose}")

    def jittered(self, duration_s: float, rng: random.Random) -> float:
        """`duration_s` stretched by up to ± `jitter`, drawn from `rng`."""
        return duration_s * (1 + rng.uniform(-self.jitter, self.jitter))


_PROFILES: dict[str, dict[str, Any]] = {
    "healthy": {},
    "stuck-pending": {"lost_pod_fate": "stuck-pending"},
    "stuck-backup": {"backup_on_node_loss": "stuck"},
    # Longer than one 4-second lab tick, so every outage leaves at least one stale-lock Error behind.
    "error-backups": {"outage_backup_error_s": 6.0},
    # Keyed to the first backup, not to the lab's start: a soak that starts late (a loaded machine)
    # still sees the outage; it outlasts one 4-second tick, so at least one backup ends in Error.
    "backup-target-down": {"target_down_after_first_backup_s": 0.5, "target_down_for_s": 6.0},
}

NAMES: tuple[str, ...] = tuple(_PROFILES)


def get(name: str, **overrides: Any) -> Profile:
    """The profile called `name`, with fields replaced by `overrides` (e.g. ``seed=7``).

    Unknown names or fields are a UsageError naming what exists.
    """
    if name not in _PROFILES:
        raise UsageError(f"unknown lab profile {name!r}; known: {', '.join(NAMES)}")
    known = {f.name for f in dataclasses.fields(Profile)} - {"name"}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise UsageError(f"unknown lab profile field(s) {', '.join(unknown)}")
    return Profile(name=name, **{**_PROFILES[name], **overrides})
