"""Why a Longhorn recurring job stopped firing, read from the cluster's own objects.

Pure rules: `diagnose` takes a `ClusterSnapshot` (raw API dicts as the Kubernetes API returns
them) and the soak's job facts, does no I/O and reads no clock (`taken_at_s` is "now"), and
returns `Finding`s, most specific cause first. Their text is what QA and storage SREs read in a
failure message: it names objects, ages, nodes, the upstream issue and the documented workaround.

Raw payloads are read through the small typed accessors below (`_str`, `_int`, `_items`, ...)
rather than TypedDicts: every field of a live object may be absent, and a rule must degrade to
"unknown" instead of raising on a half-populated status.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from types import MappingProxyType
from typing import Any, Literal, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter

Obj = Mapping[str, Any]
"""One raw API object (or a nested part of it), exactly as the API server returns it."""

Category = Literal[
    "stuck-pending-job",
    "stuck-inprogress-backup",
    "stuck-running-job",
    "cronjob-not-scheduling",
    "job-pod-failing",
    "error-backups-beyond-retain",
    "backup-target-unavailable",
    "volume-unhealthy",
    "node-not-ready",
]

CATEGORY_TITLES: Mapping[Category, str] = {
    "stuck-pending-job": "Recurring-job pod stuck Pending blocks its Forbid CronJob",
    "stuck-inprogress-backup": "Backup stuck InProgress blocks the recurring backup job",
    "stuck-running-job": "Active recurring Job never finishes and blocks its Forbid CronJob",
    "cronjob-not-scheduling": "Recurring job's CronJob does not schedule",
    "job-pod-failing": "Recurring-job pod failing",
    "error-backups-beyond-retain": "Error backups pile up beyond retain",
    "backup-target-unavailable": "Backup target unavailable",
    "volume-unhealthy": "Test volume unhealthy",
    "node-not-ready": "Node not ready",
}
"""Every category with a title for report/Allure grouping, most specific cause first."""

_RANK: Mapping[str, int] = {category: rank for rank, category in enumerate(CATEGORY_TITLES)}

LONGHORN_NAMESPACE = "longhorn-system"
RECURRING_JOB_LABEL = "recurring-job.longhorn.io"
"""Label longhorn-manager puts on each recurring job's CronJob and pod template (value: job)."""
BACKUP_JOB_LABEL_KEY = "RecurringJob"
"""Key in a Backup's/Snapshot's labels naming the recurring job that made it."""
SCHEDULED_TIMESTAMP_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
JOB_ALREADY_ACTIVE_MESSAGE = (
    "Not starting job because prior execution is running and concurrency policy is Forbid"
)
_TICK_COUNT_CAP = 1000
_BACKUP_TASKS = frozenset({"backup", "backup-force-create"})
_UNFINISHED_BACKUP_STATES = frozenset({"", "New", "Pending", "InProgress"})
_CRONJOB_WARNING_REASONS = (
    "TooManyMissedTimes",
    "MissSchedule",
    "UnparseableSchedule",
    "InvalidSchedule",
    "UnknownTimeZone",
    "FailedCreate",
)
_LIST_LIMIT = 6
_DEFAULT_TARGET = "default"
_TARGET_UNAVAILABLE_ERROR = re.compile(
    r"backup[ -]?target\b[^:;]{0,80}?\b(?:is )?(?:unavailable|not available)", re.IGNORECASE
)
"""An error that says the backup target was unavailable, e.g. "backup target default is unavailable"."""
_LOCK_ERROR = re.compile(
    r"failed lock\b.*?(?:\bacquisition\b|$)"
    r"|failed to acquire lock\b.*?(?:\bplease try again later\b\.?|$)",
    re.IGNORECASE,
)
"""longhorn#7854's stale backupstore lock, in both wordings: "failed lock backupstore/.../lock-<id>.lck
type 1 acquisition" until Longhorn 1.7, "failed to acquire lock backupstore/.../lock-<id>.lck when
performing backup create/restore, please try again later" from 1.8 (longhorn#8713)."""
_SUMMARY_QUOTE_LIMIT = 240
_DETAIL_QUOTE_LIMIT = 400
_GROUPS_SHOWN = 3


# --------------------------------------------------------------------------- public types


class RecurringJobFacts(Protocol):
    """What the rules need to know about one soak recurring job (the config's job spec fits)."""

    @property
    def name(self) -> str: ...
    @property
    def task(self) -> str: ...
    @property
    def cron(self) -> str: ...
    @property
    def retain(self) -> int: ...


@dataclass(frozen=True)
class JobSpec:
    """One soak recurring job as the rules see it."""

    name: str
    """RecurringJob name; its CronJob has the same name in longhorn-system (no default)."""
    task: str
    """Longhorn task: snapshot, backup, ... (no default)."""
    cron: str
    """Cron expression of the RecurringJob (5 fields; 6 fields = seconds first) (no default)."""
    retain: int = 1
    """Snapshots/backups the job keeps per volume (count; default 1)."""


@dataclass(frozen=True)
class Thresholds:
    """When a state that is normal for a moment becomes a finding."""

    pending_pod_after_s: float = 120.0
    """A job pod Pending this long is stuck even before it has cost a tick (s; default 120)."""
    backup_stuck_after_s: float = 600.0
    """A backup neither Completed nor Error this long after creation is stuck (s; default 600)."""
    late_after_ticks: int = 2
    """Scheduled ticks a CronJob may let pass without starting a Job (count; default 2)."""
    failed_backup_ttl_s: float = 1440 * 60.0
    """The cluster's failed-backup-ttl setting: how long Error backups live (s; default 1440 min)."""

    def __post_init__(self) -> None:
        for name in ("pending_pod_after_s", "backup_stuck_after_s", "failed_backup_ttl_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"Thresholds.{name} must be > 0, got {getattr(self, name)!r}")
        if self.late_after_ticks < 1:
            raise ValueError(f"Thresholds.late_after_ticks must be >= 1, got {self.late_after_ticks}")


@dataclass(frozen=True)
class ObjectRef:
    """One object a finding points at; the report dumps its YAML."""

    kind: str
    namespace: str | None
    name: str
    api_version: str
    """Disambiguates e.g. core/v1 Node from longhorn.io/v1beta2 Node."""

    @classmethod
    def of(cls, obj: Obj) -> ObjectRef:
        """The reference of a raw API object."""
        return cls(
            kind=_str(obj, "kind"),
            namespace=_str(obj, "metadata", "namespace") or None,
            name=_name(obj),
            api_version=_str(obj, "apiVersion"),
        )

    def __str__(self) -> str:
        where = f"{self.namespace}/{self.name}" if self.namespace else self.name
        return f"{self.kind} {where}"


@dataclass(frozen=True)
class Finding:
    """One reason a recurring job is (or will be) not firing, with the evidence."""

    category: Category
    job: str | None
    """The recurring job it blocks; None = not one job's (backup target, volume, node)."""
    summary: str
    """One line for the failure message."""
    detail: str
    """A few lines: objects, ages, node, conditions, events; the upstream issue; workaround."""
    objects: tuple[ObjectRef, ...] = ()
    """The blocking objects, most important first."""
    data: Mapping[str, Any] = field(default_factory=dict, hash=False)
    """JSON-safe facts for the ledger note; `jobs` lists the recurring jobs it affects."""

    @property
    def jobs(self) -> frozenset[str]:
        """Recurring jobs this finding bears on: its own job, or those named in data['jobs']."""
        if self.job is not None:
            return frozenset({self.job})
        named = self.data.get("jobs", ())
        return frozenset(str(job) for job in named) if isinstance(named, list | tuple) else frozenset()


@dataclass(frozen=True)
class MessageGroup:
    """Error messages that differ only by object names, ids, addresses and times, as one."""

    pattern: str
    """The message with those parts as placeholders (<volume>, <uuid>, <ip>, ...): the group's key."""
    example: str
    """The group's first message, verbatim."""
    count: int
    """How many messages (one per object) the group holds."""
    variants: int
    """How many different texts among them (1 = all identical)."""


@dataclass(frozen=True, kw_only=True)
class ClusterSnapshot:
    """The cluster objects the rules read, as raw API dicts, and when they were listed."""

    taken_at_s: float
    """Epoch seconds at which the lists were taken; the rules' "now"."""
    cronjobs: tuple[Obj, ...] = ()
    jobs: tuple[Obj, ...] = ()
    pods: tuple[Obj, ...] = ()
    events: tuple[Obj, ...] = ()
    nodes: tuple[Obj, ...] = ()
    backups: tuple[Obj, ...] = ()
    snapshots: tuple[Obj, ...] = ()
    volumes: tuple[Obj, ...] = ()
    backup_targets: tuple[Obj, ...] = ()
    recurring_jobs: tuple[Obj, ...] = ()
    node_restarts: Mapping[str, float] = field(default_factory=dict)
    """Node name -> epoch seconds at which the harness's last proven reboot of it (a changed
    status.nodeInfo.bootID) started; empty = none known. A Node's Ready condition is weaker
    evidence: with the control plane down too, it may never flip (default empty)."""

    def objects_of(self, kind: str) -> tuple[Obj, ...]:
        """The listed objects of `kind` ("Pod", "Backup", ...); empty for a kind not listed."""
        field_name = SNAPSHOT_FIELD_OF_KIND.get(kind)
        objects: tuple[Obj, ...] = getattr(self, field_name) if field_name else ()
        return objects


SNAPSHOT_FIELD_OF_KIND: Mapping[str, str] = {
    "CronJob": "cronjobs",
    "Job": "jobs",
    "Pod": "pods",
    "Event": "events",
    "Node": "nodes",
    "Backup": "backups",
    "Snapshot": "snapshots",
    "Volume": "volumes",
    "BackupTarget": "backup_targets",
    "RecurringJob": "recurring_jobs",
}
"""The `ClusterSnapshot` field that lists each kind (core/v1 Node: Longhorn's Node is not listed)."""


# --------------------------------------------------------------------------- entry points


def diagnose(
    snapshot: ClusterSnapshot,
    *,
    jobs: Sequence[RecurringJobFacts],
    stalled: Collection[str] = (),
    thresholds: Thresholds = Thresholds(),
    namespace: str = LONGHORN_NAMESPACE,
) -> list[Finding]:
    """Every cause in `snapshot` that stops (or will stop) one of `jobs` from firing.

    Findings about `stalled` jobs (those the verdict saw miss ticks) come first; within each
    group the most specific cause comes first (the order of CATEGORY_TITLES).
    """
    cluster = _Cluster(snapshot, namespace=namespace)
    findings: list[Finding] = []
    for spec in jobs:
        own = [
            *_stuck_pending_job(cluster, spec, thresholds),
            *_stuck_inprogress_backups(cluster, spec, thresholds),
        ]
        explained = any(_blocks_cronjob(finding) for finding in own)
        own += _cronjob_not_scheduling(cluster, spec, thresholds, explained=explained)
        own += _job_pod_failing(cluster, spec)
        own += _error_backups_beyond_retain(cluster, spec, thresholds)
        findings += own
    findings += _backup_target_unavailable(cluster, jobs, thresholds)
    findings += _volumes_unhealthy(cluster, jobs)
    findings += _nodes_not_ready(cluster, jobs)
    return _ordered(findings, stalled=frozenset(stalled))


def render(findings: Sequence[Finding]) -> str:
    """A human block for the terminal and the failure message."""
    if not findings:
        return "Diagnosis: no cause found in the cluster state."
    plural = "s" if len(findings) != 1 else ""
    lines = [f"Diagnosis: {len(findings)} finding{plural}, most specific first"]
    for number, finding in enumerate(findings, start=1):
        lines.append(f"{number}. [{finding.category}] {finding.summary}")
        lines.extend(f"   {line}" for line in finding.detail.splitlines())
        if finding.objects:
            lines.append("   objects: " + ", ".join(str(ref) for ref in finding.objects))
    return "\n".join(lines)


def _ordered(findings: Iterable[Finding], *, stalled: frozenset[str]) -> list[Finding]:
    def key(finding: Finding) -> tuple[int, int, str, str]:
        group = 0 if finding.jobs & stalled else 1
        return (group, _RANK[finding.category], finding.job or "", finding.summary)

    return sorted(findings, key=key)


def _blocks_cronjob(finding: Finding) -> bool:
    if finding.category == "stuck-pending-job":
        return True
    return finding.category == "stuck-inprogress-backup" and bool(finding.data.get("blocking"))


# --------------------------------------------------------------------------- rule 1


def _stuck_pending_job(cluster: _Cluster, spec: RecurringJobFacts, thresholds: Thresholds) -> list[Finding]:
    """A job pod Pending keeps its Job active, so the Forbid CronJob starts nothing (#7956)."""
    cronjob = cluster.cronjob(spec.name)
    if cronjob is None:
        return []
    findings = []
    for blockage in cluster.blockages(cronjob):
        for pod in blockage.pods:
            if _str(pod, "status", "phase") != "Pending":
                continue
            cost_a_tick = (blockage.skipped_ticks or 0) >= 1
            if cluster.age_s(pod) >= thresholds.pending_pod_after_s or cost_a_tick:
                findings.append(_pending_pod_finding(cluster, spec, blockage, pod))
    return findings


def _pending_pod_finding(
    cluster: _Cluster, spec: RecurringJobFacts, blockage: _Blockage, pod: Obj
) -> Finding:
    now_s = cluster.now_s
    pod_name = _name(pod)
    node_name = _str(pod, "spec", "nodeName")
    created_s = _created_s(pod)
    age = _age(cluster.age_s(pod))
    node = cluster.node_facts(node_name) if node_name else None
    scheduled = _condition(pod, "PodScheduled")
    lines = [
        f"Pod {cluster.namespace}/{pod_name}: phase Pending for {age}, created "
        f"{_stamp(created_s, now_s)}"
        + (f"; spec.nodeName {node_name}" if node_name else "; spec.nodeName unset")
        + _terminating_note(pod, now_s)
        + ".",
    ]
    lines += _container_waiting_lines(pod)
    bound_s = _bound_s(pod)
    restarted_after_bind = False
    if node is not None:
        restarted_after_bind = node.restarted_after(bound_s)
        lines.append(node.describe(now_s, event_s=created_s, event="the pod was created"))
        lines += _reboot_after_bind_lines(node, bound_s=bound_s, now_s=now_s)
        if restarted_after_bind and node.ready == "True":
            lines.append(
                "The pod was bound to the node before it restarted, and the kubelet never "
                "started it after the reboot (kubernetes#118321)."
            )
    elif scheduled is not None and _str(scheduled, "status") == "False":
        lines.append(
            f"Not scheduled: PodScheduled=False {_str(scheduled, 'reason')}: {_str(scheduled, 'message')}"
        )
    lines += blockage.describe(now_s)
    if node is not None:
        lines += _pending_bound_advice(cluster.namespace, pod_name, node)
    else:
        lines.append(
            "Workaround: remove what keeps the pod unschedulable (see the message); the "
            "scheduler binds it once a node fits. This is not the reboot bug "
            "(longhorn#9185): that pod has spec.nodeName set."
        )
    summary = f"{spec.name}: job pod {pod_name} Pending for {age}" + _pending_where(
        node, scheduled, bound_s=bound_s, restarted_after_bind=restarted_after_bind
    )
    summary += f"; {blockage.cost()}" + (" (longhorn#9185)" if node is not None else "")
    objects = [ObjectRef.of(pod), *blockage.refs()]
    if node is not None and node.obj is not None:
        objects.append(ObjectRef.of(node.obj))
    data: dict[str, Any] = {
        "pod": pod_name,
        "pod_age_s": round(cluster.age_s(pod), 1),
        "node": node_name or None,
        "bound": node is not None,
        "node_restarted_after_bind": restarted_after_bind,
        "pod_bound_at_s": bound_s,
        "unschedulable_reason": _str(scheduled, "reason") if node is None else None,
        **blockage.data(),
        "issues": ["longhorn#7956", "longhorn#9185", "longhorn#10204", "kubernetes#118321"],
        "workaround": "delete the Pending pod",
    }
    if node is not None:
        data.update(node.data())
    return Finding(
        category="stuck-pending-job",
        job=spec.name,
        summary=summary,
        detail="\n".join(lines),
        objects=tuple(objects),
        data=data,
    )


def _pending_where(
    node: _NodeFacts | None,
    scheduled: Obj | None,
    *,
    bound_s: float | None,
    restarted_after_bind: bool,
) -> str:
    if node is None:
        reason = _str(scheduled, "reason") or "no PodScheduled reason"
        return f", not scheduled ({reason})"
    if node.ready != "True":
        return f" on node {node.name}, which is {node.ready_phrase()}"
    if node.rebooted_after(bound_s):
        return (
            f" on node {node.name}, rebooted (boot id changed) at {_iso(node.rebooted_s)} after "
            f"the pod was bound at {_iso(bound_s)}"
        )
    if restarted_after_bind:
        return f" on node {node.name}, bound before the node restarted"
    return f" though bound to Ready node {node.name}"


def _reboot_after_bind_lines(node: _NodeFacts, *, bound_s: float | None, now_s: float) -> list[str]:
    """The harness's proof that the node rebooted after the pod was bound, when it has one."""
    if not node.rebooted_after(bound_s):
        return []
    line = (
        f"Node {node.name} was rebooted (boot id changed, proven by the harness) at "
        f"{_stamp(node.rebooted_s, now_s)}, after the pod was bound at {_stamp(bound_s, now_s)}; "
        "the pod still shows Pending."
    )
    if not node.ready_changed_after(node.rebooted_s):
        # A reboot shorter than node-monitor-grace-period, with the control plane down as well, is
        # never seen as NotReady: Ready keeps its old lastTransitionTime and only the bootID moves.
        line += (
            " Its Ready condition last changed before that reboot: with the control plane down "
            "too, Ready need not flip, so only the boot id shows the restart."
        )
    return [line]


def _pending_bound_advice(namespace: str, pod_name: str, node: _NodeFacts) -> list[str]:
    force = " --grace-period=0 --force" if node.ready != "True" else ""
    lines = [
        "Upstream: longhorn#7956, longhorn#9185, longhorn#10204, kubernetes#118321; Longhorn "
        "does not manage the lifecycle of the CronJob pod (an upstream Kubernetes issue).",
        f"Workaround: kubectl -n {namespace} delete pod {pod_name}{force} (Longhorn KB "
        '"Troubleshooting: Recurring job pod stuck in Pending state"); the Job makes a new '
        "pod and the CronJob resumes once that Job finishes.",
        "longhorn-tests deletes Pending job pods older than 5 min before each check "
        "(longhorn-tests#2379), which hides this failure in Longhorn's own e2e runs.",
    ]
    if force:
        lines.insert(2, "The node is not Ready, so only a forced deletion removes the pod before it returns.")
    return lines


# --------------------------------------------------------------------------- rule 2


def _stuck_inprogress_backups(
    cluster: _Cluster, spec: RecurringJobFacts, thresholds: Thresholds
) -> list[Finding]:
    """A backup that never finishes keeps the job pod waiting with no timeout (#9168, #9417)."""
    cronjob = cluster.cronjob(spec.name)
    blockages = cluster.blockages(cronjob) if cronjob is not None else []
    findings = []
    for backup in cluster.backups_of(spec.name):
        if _str(backup, "status", "state") not in _UNFINISHED_BACKUP_STATES:
            continue
        if cluster.age_s(backup) < thresholds.backup_stuck_after_s:
            continue
        findings.append(_stuck_backup_finding(cluster, spec, backup, blockages))
    return findings


def _stuck_backup_finding(
    cluster: _Cluster, spec: RecurringJobFacts, backup: Obj, blockages: Sequence[_Blockage]
) -> Finding:
    now_s = cluster.now_s
    name = _name(backup)
    state = _str(backup, "status", "state")
    shown_state = state or '"" (not started)'
    progress = _int(backup, "status", "progress")
    volume = _backup_volume(backup)
    owner = _str(backup, "status", "ownerID")
    owner_facts = cluster.node_facts(owner) if owner else None
    lines = _stuck_backup_lines(cluster, backup, shown_state=shown_state, owner_facts=owner_facts)
    objects = [ObjectRef.of(backup)]
    waiting = _jobs_waiting_on(backup, blockages)
    if waiting:
        blockage, pod = waiting[0]
        lines.append(
            f"Job pod {cluster.namespace}/{_name(pod)} Running on node "
            f"{_str(pod, 'spec', 'nodeName') or '?'} for {_age(cluster.age_s(pod))}: the "
            "recurring-job pod loops on the volume's backup status with no timeout until it "
            "is Completed, Error or Unknown."
        )
        lines += blockage.describe(now_s)
        objects += [ObjectRef.of(pod), *blockage.refs()]
        summary_cost = f"; the job pod waits on it with no timeout, so {blockage.cost()}"
    else:
        lines.append(
            "The CronJob has no Running job pod waiting on it now, so it does not block the "
            "next tick by itself."
        )
        summary_cost = " (not blocking the CronJob now)"
    if owner_facts is not None and owner_facts.obj is not None:
        objects.append(ObjectRef.of(owner_facts.obj))
    lines += [
        "Upstream: longhorn#9168, longhorn#9417 (backup stuck InProgress after its node "
        "rebooted; Forbid blocks every later backup tick while snapshots continue).",
        f"Workaround: kubectl -n {cluster.namespace} delete backups.longhorn.io {name}; the "
        "waiting job pod stops waiting and the next tick starts a new Job.",
    ]
    age = _age(cluster.age_s(backup))
    return Finding(
        category="stuck-inprogress-backup",
        job=spec.name,
        summary=(
            f"{spec.name}: backup {name} of volume {volume or '?'} stuck {shown_state} at "
            f"{progress}% for {age}{summary_cost} (longhorn#9168)"
        ),
        detail="\n".join(lines),
        objects=tuple(objects),
        data={
            "backup": name,
            "state": state,
            "progress": progress,
            "volume": volume or None,
            "backup_age_s": round(cluster.age_s(backup), 1),
            "owner_node": owner or None,
            "last_synced_at": _str(backup, "status", "lastSyncedAt") or None,
            "blocking": bool(waiting),
            "waiting_pod": _name(waiting[0][1]) if waiting else None,
            **(waiting[0][0].data() if waiting else {}),
            "issues": ["longhorn#9168", "longhorn#9417"],
            "workaround": "delete the InProgress backup",
        },
    )


def _stuck_backup_lines(
    cluster: _Cluster, backup: Obj, *, shown_state: str, owner_facts: _NodeFacts | None
) -> list[str]:
    """The backup itself, the node that runs it and its snapshot."""
    now_s = cluster.now_s
    created_s = _created_s(backup)
    synced_s = _time_s(_str(backup, "status", "lastSyncedAt"))
    lines = [
        f"Backup {cluster.namespace}/{_name(backup)}: state {shown_state}, progress "
        f"{_int(backup, 'status', 'progress')}%, created {_stamp(created_s, now_s)}; volume "
        f"{_backup_volume(backup) or '?'}, snapshot "
        f"{_str(backup, 'status', 'snapshotName') or _str(backup, 'spec', 'snapshotName') or '?'}"
        f", backup target {_backup_target_name(backup) or '?'}, owner node "
        f"{_str(backup, 'status', 'ownerID') or '?'}, replica "
        f"{_str(backup, 'status', 'replicaAddress') or '?'}; lastSyncedAt "
        f"{_stamp(synced_s, now_s) if synced_s is not None else 'never'}.",
    ]
    if owner_facts is not None:
        lines.append(owner_facts.describe(now_s, event_s=created_s, event="the backup started"))
        if owner_facts.restarted_after(created_s):
            lines.append(
                "Its node went through a restart or lost contact after the backup started; "
                "nothing resumes or fails the upload afterwards."
            )
    return lines + cluster.snapshot_lines(_str(backup, "status", "snapshotName"))


def _jobs_waiting_on(backup: Obj, blockages: Sequence[_Blockage]) -> list[tuple[_Blockage, Obj]]:
    """The active Jobs' Running pods that may be waiting on `backup`."""
    created_s = _created_s(backup) or 0.0
    # Only a Job started before the backup can be the one waiting on it.
    return [
        (blockage, pod)
        for blockage in blockages
        if (_created_s(blockage.job) or 0.0) <= created_s
        for pod in blockage.pods
        if _str(pod, "status", "phase") == "Running"
    ]


# --------------------------------------------------------------------------- rule 3


def _error_backups_beyond_retain(
    cluster: _Cluster, spec: RecurringJobFacts, thresholds: Thresholds
) -> list[Finding]:
    """Error backups outlive `retain`: the cleanup skips them, only failed-backup-ttl removes them.

    Error backups that failed because the backup target was unavailable are rule 4's evidence,
    not this rule's: they neither count toward the pile nor name longhorn#7854.
    """
    by_volume: dict[str, list[Obj]] = {}
    target_failed: Counter[str] = Counter()
    for backup in cluster.backups_of(spec.name):
        if _str(backup, "status", "state") != "Error":
            continue
        volume = _backup_volume(backup) or "?"
        if cluster.target_evidence(backup) is not None:
            target_failed[volume] += 1
        else:
            by_volume.setdefault(volume, []).append(backup)
    findings = []
    for volume, errors in sorted(by_volume.items()):
        if len(errors) > spec.retain:
            errors.sort(key=lambda backup: (_created_s(backup) or 0.0, _name(backup)))
            findings.append(
                _error_backups_finding(
                    cluster,
                    spec,
                    volume,
                    errors,
                    thresholds=thresholds,
                    target_failed=target_failed[volume],
                )
            )
    return findings


def _error_backups_finding(
    cluster: _Cluster,
    spec: RecurringJobFacts,
    volume: str,
    errors: Sequence[Obj],
    *,
    thresholds: Thresholds,
    target_failed: int,
) -> Finding:
    now_s = cluster.now_s
    oldest, newest = errors[0], errors[-1]
    oldest_age_s = cluster.age_s(oldest)
    groups = group_backup_errors(errors)
    stale_locks = sum(1 for backup in errors if _LOCK_ERROR.search(_backup_error(backup)))
    ttl_min = round(thresholds.failed_backup_ttl_s / 60)
    left_s = thresholds.failed_backup_ttl_s - oldest_age_s
    lines = [
        f"Error backups of recurring job {spec.name} on volume {volume}: {len(errors)} > "
        f"retain {spec.retain}; oldest {_name(oldest)} created "
        f"{_stamp(_created_s(oldest), now_s)}, newest {_name(newest)} created "
        f"{_stamp(_created_s(newest), now_s)}.",
        _errors_line(groups, why=_LOCK_ERROR),
    ]
    if target_failed:
        lines.append(
            f"Besides these, {target_failed} Error backups of this volume failed because the "
            "backup target was unavailable (see backup-target-unavailable); they are not counted here."
        )
    lines += [
        "The job deletes its backups beyond retain oldest first by backupCreatedAt, which Error "
        "backups never get, so they stay until the failed-backup-ttl setting removes them "
        f"(assumed {ttl_min} min; the oldest "
        + (f"goes in about {_age(left_s)})." if left_s > 0 else "is already past it)."),
        f"Upstream: longhorn#7854 (a 1-minute cron with retain 1 left many Error backups "
        f'"failed lock ... acquisition" after a reboot; the e2e default cron became '
        f'"*/2 * * * *"). This job\'s cron: "{spec.cron}".',
        f"Workaround: delete the Error backups ({_delete_error_backups(cluster.namespace, volume, errors)}) "
        "or lower failed-backup-ttl; on a real cluster keep the schedule at every 2 minutes or slower.",
    ]
    # Only a stale backupstore lock is longhorn#7854; other errors just pile up the same way.
    issue = " (longhorn#7854)" if stale_locks else ""
    return Finding(
        category="error-backups-beyond-retain",
        job=spec.name,
        summary=(
            f"{spec.name}: {len(errors)} Error backups of volume {volume} (retain {spec.retain}), "
            f"oldest {_age(oldest_age_s)} old: "
            f"{_summary_quote(groups, total=len(errors), why=_LOCK_ERROR)}{issue}"
        ),
        detail="\n".join(lines),
        objects=tuple(ObjectRef.of(backup) for backup in errors),
        data={
            "volume": volume,
            "error_backups": len(errors),
            "retain": spec.retain,
            "oldest": _name(oldest),
            "oldest_age_s": round(oldest_age_s, 1),
            **_errors_data(groups),
            "stale_lock_errors": stale_locks,
            "target_unavailable_errors": target_failed,
            "failed_backup_ttl_s": thresholds.failed_backup_ttl_s,
            "issues": ["longhorn#7854"] if stale_locks else [],
            "workaround": "delete the Error backups or lower failed-backup-ttl",
        },
    )


# --------------------------------------------------------------------------- rule 6


def _cronjob_not_scheduling(
    cluster: _Cluster, spec: RecurringJobFacts, thresholds: Thresholds, *, explained: bool
) -> list[Finding]:
    """The CronJob is missing, suspended, late with nothing active, or blocked by a Job that
    never ends (`explained` = a more specific blocking finding exists for this job)."""
    cronjob = cluster.cronjob(spec.name)
    if cronjob is None:
        return [_missing_cronjob_finding(cluster, spec)]
    if _at(cronjob, "spec", "suspend") is True:
        return [_suspended_finding(cluster, spec, cronjob)]
    blockages = cluster.blockages(cronjob)
    if blockages:
        if explained:
            return []
        return [
            _stuck_running_finding(cluster, spec, blockage)
            for blockage in blockages
            if (blockage.skipped_ticks or 0) >= thresholds.late_after_ticks
        ]
    last_s = _time_s(_str(cronjob, "status", "lastScheduleTime"))
    since_s = last_s if last_s is not None else _created_s(cronjob)
    missed = cluster.ticks(cronjob, after_s=since_s)
    if missed is None or missed < thresholds.late_after_ticks:
        return []
    return [_late_cronjob_finding(cluster, spec, cronjob, missed=missed, last_s=last_s)]


def _missing_cronjob_finding(cluster: _Cluster, spec: RecurringJobFacts) -> Finding:
    recurring_job = cluster.recurring_job(spec.name)
    ns = cluster.namespace
    if recurring_job is None:
        lines = [
            f"Neither RecurringJob {ns}/{spec.name} nor CronJob {ns}/{spec.name} exists: the "
            "job is not configured in this Longhorn."
        ]
        summary = f"{spec.name}: no RecurringJob and no CronJob {ns}/{spec.name}; it never fires"
        objects: tuple[ObjectRef, ...] = ()
    else:
        owner = _str(recurring_job, "status", "ownerID") or "?"
        lines = [
            f"RecurringJob {ns}/{spec.name} exists (owner node {owner}, executionCount "
            f"{_int(recurring_job, 'status', 'executionCount')}), but CronJob {ns}/{spec.name} "
            "does not: longhorn-manager's recurring job controller creates it.",
            f"Check the longhorn-manager log on {owner} for the recurring job controller's errors.",
        ]
        summary = f"{spec.name}: CronJob {ns}/{spec.name} missing; the recurring job never fires"
        objects = (ObjectRef.of(recurring_job),)
    return Finding(
        category="cronjob-not-scheduling",
        job=spec.name,
        summary=summary,
        detail="\n".join(lines),
        objects=objects,
        data={"reason": "missing", "recurring_job_exists": recurring_job is not None},
    )


def _suspended_finding(cluster: _Cluster, spec: RecurringJobFacts, cronjob: Obj) -> Finding:
    last = _str(cronjob, "status", "lastScheduleTime")
    last_s = _time_s(last)
    lines = [
        f"CronJob {cluster.namespace}/{spec.name}: spec.suspend is true, so the CronJob "
        "controller starts no Job; last scheduled "
        + (_stamp(last_s, cluster.now_s) if last_s is not None else "never")
        + ".",
        *cluster.schedule_mismatch_lines(spec, cronjob),
        f"Resume: kubectl -n {cluster.namespace} patch cronjob {spec.name} "
        """-p '{"spec":{"suspend":false}}'.""",
    ]
    return Finding(
        category="cronjob-not-scheduling",
        job=spec.name,
        summary=f"{spec.name}: CronJob suspended (spec.suspend true); no tick starts a Job",
        detail="\n".join(lines),
        objects=(ObjectRef.of(cronjob),),
        data={"reason": "suspended", "last_schedule_time": last or None},
    )


def _late_cronjob_finding(
    cluster: _Cluster,
    spec: RecurringJobFacts,
    cronjob: Obj,
    *,
    missed: int,
    last_s: float | None,
) -> Finding:
    now_s = cluster.now_s
    schedule = _str(cronjob, "spec", "schedule")
    last_text = (
        f"last scheduled {_stamp(last_s, now_s)}"
        if last_s is not None
        else f"never scheduled since its creation {_stamp(_created_s(cronjob), now_s)}"
    )
    lines = [
        f'CronJob {cluster.namespace}/{spec.name} (schedule "{schedule}"): {last_text}; '
        f"{_count(missed)} scheduled ticks since, and no Job is active.",
        *cluster.schedule_mismatch_lines(spec, cronjob),
    ]
    warnings = cluster.events_about(cronjob, reasons=_CRONJOB_WARNING_REASONS)
    objects = [ObjectRef.of(cronjob)]
    for event in warnings:
        lines.append(cluster.event_line(event))
        objects.append(ObjectRef.of(event))
    if not warnings:
        lines.append(
            "No TooManyMissedTimes or other warning event on the CronJob in the snapshot: check "
            "that kube-controller-manager's cronjob controller runs (and its clock)."
        )
    reasons = sorted({_str(event, "reason") for event in warnings})
    return Finding(
        category="cronjob-not-scheduling",
        job=spec.name,
        summary=(
            f"{spec.name}: CronJob {last_text}; {_count(missed)} ticks since, no active Job"
            + (f"; events: {', '.join(reasons)}" if reasons else "")
        ),
        detail="\n".join(lines),
        objects=tuple(objects),
        data={
            "reason": "late",
            "missed_ticks": missed,
            "last_schedule_time": _str(cronjob, "status", "lastScheduleTime") or None,
            "events": reasons,
        },
    )


def _stuck_running_finding(cluster: _Cluster, spec: RecurringJobFacts, blockage: _Blockage) -> Finding:
    now_s = cluster.now_s
    lines: list[str] = []
    objects = blockage.refs()
    if blockage.job is None:
        lines.append(f"Job {blockage.job_name} listed in status.active is not in the snapshot.")
    elif not blockage.pods:
        lines.append(f"Job {blockage.job_name} is active but has no pod in the snapshot.")
    pod_phrases = []
    down_node: _NodeFacts | None = None
    for pod in blockage.pods:
        phase = _str(pod, "status", "phase") or "?"
        node_name = _str(pod, "spec", "nodeName")
        lines.append(
            f"Pod {cluster.namespace}/{_name(pod)}: {phase} on node {node_name or '?'} for "
            f"{_age(cluster.age_s(pod))}{_terminating_note(pod, now_s)}."
        )
        objects.append(ObjectRef.of(pod))
        where = f"{phase} on node {node_name or '?'}"
        node = cluster.node_facts(node_name) if node_name else None
        if node is not None and node.ready != "True":
            down_node = node
            where += f", which is {node.ready_phrase()}"
        pod_phrases.append(f"pod {_name(pod)} {where}")
    lines += blockage.describe(now_s)
    if down_node is not None:
        lines += [
            down_node.describe(now_s),
            "A pod on an unreachable node keeps its last reported phase and cannot finish until "
            "the node returns. Pods tolerate node.kubernetes.io/unreachable for 300 s, then are "
            "evicted, and the deletion completes only when the kubelet confirms it.",
        ]
        if down_node.obj is not None:
            objects.append(ObjectRef.of(down_node.obj))
    lines.append(
        f"Workaround: find why the job pod does not finish (kubectl -n {cluster.namespace} logs "
        f"<pod>); deleting Job {blockage.job_name} frees the CronJob for the next tick."
    )
    return Finding(
        category="stuck-running-job",
        job=spec.name,
        summary=(
            f"{spec.name}: CronJob blocked by active Job {blockage.job_name}"
            + (f": {'; '.join(pod_phrases)}" if pod_phrases else "")
            + f"; {blockage.cost()}"
        ),
        detail="\n".join(lines),
        objects=tuple(objects),
        data={
            **blockage.data(),
            "pods": [_name(pod) for pod in blockage.pods],
            "node_not_ready": down_node.name if down_node is not None else None,
        },
    )


# --------------------------------------------------------------------------- rule 7


def _job_pod_failing(cluster: _Cluster, spec: RecurringJobFacts) -> list[Finding]:
    """The newest Job of the CronJob failed, or its pod is burning through backoffLimit."""
    cronjob = cluster.cronjob(spec.name)
    if cronjob is None:
        return []
    jobs = cluster.jobs_of(cronjob)
    if not jobs:
        return []
    newest = jobs[-1]
    failed = _true_condition(newest, "Failed") or _true_condition(newest, "FailureTarget")
    if _true_condition(newest, "Complete") is not None:
        return []
    pods = cluster.pods_of(newest)
    retries = _int(newest, "status", "failed") + sum(
        _restarts(pod) for pod in pods if _str(pod, "status", "phase") in ("Pending", "Running")
    )
    if failed is None and retries == 0:
        return []
    return [_failing_finding(cluster, spec, newest, pods, failed=failed, retries=retries)]


def _failing_finding(
    cluster: _Cluster,
    spec: RecurringJobFacts,
    job: Obj,
    pods: Sequence[Obj],
    *,
    failed: Obj | None,
    retries: int,
) -> Finding:
    now_s = cluster.now_s
    job_name = _name(job)
    limit = _int(job, "spec", "backoffLimit", default=6)
    exits = [exit_ for pod in pods for exit_ in _container_exits(pod)]
    if failed is not None:
        reason = _str(failed, "reason") or "Failed"
        state = f"failed ({reason}: {_str(failed, 'message') or 'no message'})"
        since_s = _time_s(_str(failed, "lastTransitionTime"))
        when = f" at {_stamp(since_s, now_s)}" if since_s is not None else ""
        head = f"Job {cluster.namespace}/{job_name} {state}{when}"
    else:
        reason = "Retrying"
        state = f"retrying: {retries} of backoffLimit {limit} retries used"
        head = f"Job {cluster.namespace}/{job_name} is active and {state}"
    lines = [
        f"{head}; status.failed {_int(job, 'status', 'failed')}, "
        f"{sum(_restarts(pod) for pod in pods)} container restarts.",
    ]
    for pod in pods:
        lines.append(
            f"Pod {cluster.namespace}/{_name(pod)}: {_str(pod, 'status', 'phase') or '?'} on node "
            f"{_str(pod, 'spec', 'nodeName') or '?'}, restarts {_restarts(pod)}"
            + "".join(f"; {exit_}" for exit_ in _container_exits(pod))
            + "."
        )
    lines += [
        f"With restartPolicy OnFailure the container restarts in place and each restart counts "
        f"toward backoffLimit {limit} (Longhorn sets 3); then the Job fails and that tick "
        "produces no snapshot or backup.",
        f"Why: kubectl -n {cluster.namespace} logs <pod> --previous (the recurring-job log).",
    ]
    summary = f"{spec.name}: Job {job_name} {state}"
    if exits:
        summary += f"; last {exits[0]}"
    return Finding(
        category="job-pod-failing",
        job=spec.name,
        summary=summary,
        detail="\n".join(lines),
        objects=(ObjectRef.of(job), *(ObjectRef.of(pod) for pod in pods)),
        data={
            "job_name": job_name,
            "reason": reason,
            "retries": retries,
            "backoff_limit": limit,
            "pods": [_name(pod) for pod in pods],
            "exits": exits,
        },
    )


# --------------------------------------------------------------------------- rule 4


def _backup_target_unavailable(
    cluster: _Cluster, specs: Sequence[RecurringJobFacts], thresholds: Thresholds
) -> list[Finding]:
    """A backup target the soak's backup jobs need is unavailable, or was: the outage may be over
    when the rules run, but the Error backups it caused keep saying so until failed-backup-ttl."""
    backup_jobs = [spec.name for spec in specs if spec.task in _BACKUP_TASKS]
    if not backup_jobs:
        return []
    failed: dict[str, list[_TargetFailure]] = {}
    for spec in specs:
        for backup in cluster.backups_of(spec.name):
            evidence = cluster.target_evidence(backup) if _is_error(backup) else None
            if evidence is not None:
                failure = _TargetFailure(job=spec.name, backup=backup, evidence=evidence)
                failed.setdefault(_backup_target_name(backup) or _DEFAULT_TARGET, []).append(failure)
    targets = {_name(target): target for target in cluster.backup_targets()}
    findings = []
    for name in sorted(set(targets) | set(failed)):
        target = targets.get(name)
        down = target is not None and _target_down(target)
        if down or failed.get(name):
            failures = sorted(failed.get(name, []), key=lambda failure: failure.failed_s or 0.0)
            findings.append(
                _target_finding(
                    cluster,
                    name=name,
                    target=target,
                    failures=failures,
                    backup_jobs=backup_jobs,
                    thresholds=thresholds,
                )
            )
    return findings


@dataclass(frozen=True)
class _TargetFailure:
    """An Error backup of a soak job that failed because its backup target was unavailable."""

    job: str
    backup: Obj
    evidence: Literal["says", "during"]
    """says: its error says the target is unavailable; during: it failed while the target is
    (still) unavailable, with an error that names no other cause."""

    @property
    def failed_s(self) -> float | None:
        return _error_s(self.backup)


def _target_finding(
    cluster: _Cluster,
    *,
    name: str,
    target: Obj | None,
    failures: Sequence[_TargetFailure],
    backup_jobs: Sequence[str],
    thresholds: Thresholds,
) -> Finding:
    unavailable = _true_condition(target, "Unavailable")
    down = target is not None and _target_down(target)
    failed_jobs = sorted({failure.job for failure in failures})
    jobs = [*backup_jobs, *(job for job in failed_jobs if job not in backup_jobs)] if down else failed_jobs
    lines = _target_state_lines(cluster, name=name, target=target, failures=failures)
    if failures:
        lines += _target_failure_lines(cluster, name=name, failures=failures, thresholds=thresholds)
    if down:
        lines.append(
            f"Recurring backup jobs {', '.join(backup_jobs)} back up to it; while it is unavailable "
            "their backups cannot complete."
        )
    workaround = (
        "Workaround: fix the target's URL, credentials or reachability; Longhorn re-checks it "
        "every pollInterval."
    )
    if failures:
        workaround += (
            f" Then delete the Error backups (kubectl -n {cluster.namespace} delete "
            f"backups.longhorn.io {_names([_name(failure.backup) for failure in failures])}) or "
            "let failed-backup-ttl remove them."
        )
    lines.append(workaround)
    objects = ([ObjectRef.of(target)] if target is not None else []) + [
        ObjectRef.of(failure.backup) for failure in failures
    ]
    return Finding(
        category="backup-target-unavailable",
        job=None,
        summary=_target_summary(cluster, name=name, target=target, failures=failures, jobs=jobs),
        detail="\n".join(lines),
        objects=tuple(objects),
        data={
            "target": name,
            "available_now": not down if target is not None else None,
            "reason": _str(unavailable, "reason") or None,
            "message": _str(unavailable, "message") or None,
            "since": _str(unavailable, "lastTransitionTime") or None,
            "jobs": list(jobs),
            "error_backups": len(failures),
            **_errors_data(group_backup_errors(failure.backup for failure in failures)),
            "first_failed_at_s": failures[0].failed_s if failures else None,
            "last_failed_at_s": failures[-1].failed_s if failures else None,
            "workaround": "make the backup target reachable; delete its Error backups",
        },
    )


def _target_summary(
    cluster: _Cluster,
    *,
    name: str,
    target: Obj | None,
    failures: Sequence[_TargetFailure],
    jobs: Sequence[str],
) -> str:
    if target is not None and _target_down(target):
        unavailable = _true_condition(target, "Unavailable")
        since_s = _time_s(_str(unavailable, "lastTransitionTime"))
        since = f" since {_stamp(since_s, cluster.now_s)}" if since_s is not None else ""
        reason = (
            f": {_str(unavailable, 'reason')}: {_clip(_str(unavailable, 'message'), 160)}"
            if unavailable is not None
            else ""
        )
        failed = f"; {_failures_phrase(failures)}" if failures else ""
        return (
            f"backup target {name} unavailable{since}{reason}{failed}; blocks backup jobs {', '.join(jobs)}"
        )
    groups = group_backup_errors(failure.backup for failure in failures)
    quoted = _summary_quote(groups, total=len(failures), why=_TARGET_UNAVAILABLE_ERROR)
    now = (
        f"; available again since {_iso(back_s)}"
        if (back_s := _target_back_s(target, after_s=failures[0].failed_s)) is not None
        else ("; available now" if target is not None else f"; BackupTarget {name} not listed")
    )
    return f"backup target {name} was unavailable: {_failures_phrase(failures)}: {quoted}{now}"


def _failures_phrase(failures: Sequence[_TargetFailure]) -> str:
    first_s, last_s = failures[0].failed_s, failures[-1].failed_s
    when = f"at {_iso(first_s)}" if first_s == last_s else f"from {_iso(first_s)} to {_iso(last_s)}"
    return f"{_failures_count(failures)} failed {when}"


def _failures_count(failures: Sequence[_TargetFailure]) -> str:
    jobs = sorted({failure.job for failure in failures})
    plural = "s" if len(failures) != 1 else ""
    return f"{len(failures)} Error backup{plural} of {', '.join(jobs)}"


def _target_state_lines(
    cluster: _Cluster, *, name: str, target: Obj | None, failures: Sequence[_TargetFailure]
) -> list[str]:
    now_s = cluster.now_s
    if target is None:
        return [f"BackupTarget {cluster.namespace}/{name} is not in the snapshot."]
    unavailable = _true_condition(target, "Unavailable")
    synced_s = _time_s(_str(target, "status", "lastSyncedAt"))
    lines = [
        f"BackupTarget {cluster.namespace}/{name}: backupTargetURL "
        f'"{_str(target, "spec", "backupTargetURL")}", credentialSecret '
        f'"{_str(target, "spec", "credentialSecret")}", pollInterval '
        f"{_str(target, 'spec', 'pollInterval') or '?'}; status.available "
        f"{_at(target, 'status', 'available')}; lastSyncedAt "
        f"{_stamp(synced_s, now_s) if synced_s is not None else 'never'}.",
    ]
    if unavailable is not None:
        since_s = _time_s(_str(unavailable, "lastTransitionTime"))
        since = f" since {_stamp(since_s, now_s)}" if since_s is not None else ""
        lines.append(
            f"Condition Unavailable=True{since}: {_str(unavailable, 'reason') or 'no reason'}: "
            f"{_str(unavailable, 'message') or 'no message'}"
        )
    elif _target_down(target):
        lines.append("No Unavailable condition recorded.")
    elif (back_s := _target_back_s(target, after_s=failures[0].failed_s if failures else None)) is not None:
        lines.append(
            f"Condition Unavailable=False since {_stamp(back_s, now_s)}: the target is available "
            "again; the outage is over, its Error backups remain."
        )
    else:
        lines.append("The target is available now; the outage is over, its Error backups remain.")
    return lines


def _target_failure_lines(
    cluster: _Cluster, *, name: str, failures: Sequence[_TargetFailure], thresholds: Thresholds
) -> list[str]:
    now_s = cluster.now_s
    volumes = sorted({_backup_volume(failure.backup) or "?" for failure in failures})
    says = sum(1 for failure in failures if failure.evidence == "says")
    during = len(failures) - says
    evidence = []
    if says:
        evidence.append(f"{says} {'says' if says == 1 else 'say'} the backup target is unavailable")
    if during:
        evidence.append(f"{during} failed while it is unavailable, with no other cause named")
    groups = group_backup_errors(failure.backup for failure in failures)
    ttl_min = round(thresholds.failed_backup_ttl_s / 60)
    first_s, last_s = failures[0].failed_s, failures[-1].failed_s
    when = (
        f"at {_stamp(first_s, now_s)}"
        if first_s == last_s
        else f"from {_stamp(first_s, now_s)} to {_stamp(last_s, now_s)}"
    )
    return [
        f"Error backups that failed on backup target {name}: "
        f"{_failures_count(failures)} on volume{'s' if len(volumes) != 1 else ''} "
        f"{_names(volumes)}, {when}; {' and '.join(evidence)}.",
        _errors_line(groups, why=_TARGET_UNAVAILABLE_ERROR),
        "A backup that ends in Error fails the recurring-job run, so those ticks made no backup. "
        "The job's retain cleanup skips Error backups (they have no backupCreatedAt); they stay "
        f"until the failed-backup-ttl setting removes them (assumed {ttl_min} min).",
        "Not longhorn#7854 (a stale backupstore lock after a reboot): these errors name the "
        "unavailable target, and a slower cron does not help.",
    ]


def _target_down(target: Obj) -> bool:
    return _at(target, "status", "available") is False or _true_condition(target, "Unavailable") is not None


def _target_back_s(target: Obj | None, *, after_s: float | None) -> float | None:
    """When an available target's Unavailable condition last turned False, if after `after_s`:
    a condition transitions only on a change of status, so it was unavailable until then."""
    condition = _condition(target, "Unavailable")
    if target is None or _target_down(target) or _str(condition, "status") != "False":
        return None
    back_s = _time_s(_str(condition, "lastTransitionTime"))
    if back_s is None or after_s is None or back_s < after_s:
        return None
    return back_s


def _is_error(backup: Obj) -> bool:
    return _str(backup, "status", "state") == "Error"


def _error_s(backup: Obj) -> float | None:
    """When a backup ended in Error: its last sync, else its creation."""
    synced_s = _time_s(_str(backup, "status", "lastSyncedAt"))
    return synced_s if synced_s is not None else _created_s(backup)


# --------------------------------------------------------------------------- rule 5


def _volumes_unhealthy(cluster: _Cluster, specs: Sequence[RecurringJobFacts]) -> list[Finding]:
    """A volume the soak's jobs select is in a state the recurring job skips or fails on."""
    findings = []
    for volume in cluster.volumes():
        jobs = cluster.jobs_selecting(volume, specs)
        if not jobs:
            continue
        problems = _volume_problems(volume)
        if problems:
            findings.append(_volume_finding(cluster, volume, jobs, problems))
    return findings


def _volume_problems(volume: Obj) -> list[str]:
    state = _str(volume, "status", "state")
    robustness = _str(volume, "status", "robustness")
    problems = []
    if robustness == "faulted":
        problems.append(
            "robustness faulted: the recurring job skips faulted volumes (no snapshot, no backup)"
        )
    if state == "detached":
        problems.append(
            "detached: the recurring job skips detached volumes unless the setting "
            "allow-recurring-job-while-volume-detached is true"
        )
    elif state and state != "attached":
        problems.append(f"state {state}: a job run fails for it (the volume must be attached or detached)")
    if state == "attached" and robustness == "unknown":
        problems.append("attached with robustness unknown: its engine state is not known")
    if robustness == "degraded":
        problems.append(
            "robustness degraded: a replica is missing or rebuilding (e.g. on a rebooted node); "
            "snapshots and backups still run"
        )
    if _at(volume, "status", "restoreRequired") is True:
        problems.append("restoreRequired: the recurring job skips it while it restores")
    for condition in _items(volume, "status", "conditions"):
        kind, status = _str(condition, "type"), _str(condition, "status")
        if (kind == "Scheduled" and status == "False") or (kind == "TooManySnapshots" and status == "True"):
            problems.append(
                f"condition {kind}={status} {_str(condition, 'reason')}: "
                f"{_clip(_str(condition, 'message'), 120)}"
            )
    return problems


def _volume_finding(cluster: _Cluster, volume: Obj, jobs: Sequence[str], problems: Sequence[str]) -> Finding:
    name = _name(volume)
    state = _str(volume, "status", "state") or "?"
    robustness = _str(volume, "status", "robustness") or "?"
    node = _str(volume, "status", "currentNodeID")
    degraded_s = _time_s(_str(volume, "status", "lastDegradedAt"))
    lines = [
        f"Volume {cluster.namespace}/{name}: state {state}, robustness {robustness}, node "
        f"{node or 'none'}"
        + (f", last degraded {_stamp(degraded_s, cluster.now_s)}" if degraded_s is not None else "")
        + f"; selected by recurring jobs {', '.join(jobs)}.",
        *(f"- {problem}" for problem in problems),
    ]
    objects = [ObjectRef.of(volume)]
    node_facts = cluster.node_facts(node) if node else None
    if node_facts is not None and node_facts.ready != "True":
        lines.append(node_facts.describe(cluster.now_s))
        if node_facts.obj is not None:
            objects.append(ObjectRef.of(node_facts.obj))
    return Finding(
        category="volume-unhealthy",
        job=None,
        summary=(f"volume {name} {state}/{robustness}: {problems[0].split(':')[0]}; jobs {', '.join(jobs)}"),
        detail="\n".join(lines),
        objects=tuple(objects),
        data={
            "volume": name,
            "state": state,
            "robustness": robustness,
            "node": node or None,
            "problems": list(problems),
            "jobs": list(jobs),
        },
    )


# --------------------------------------------------------------------------- rule 8


def _nodes_not_ready(cluster: _Cluster, specs: Sequence[RecurringJobFacts]) -> list[Finding]:
    """Nodes whose Ready condition is not True: context for the findings above."""
    findings = []
    for node_obj in cluster.nodes():
        facts = cluster.node_facts(_name(node_obj))
        if facts.ready == "True":
            continue
        pods = [
            pod
            for pod in cluster.job_pods(specs)
            if _str(pod, "spec", "nodeName") == facts.name
            and _str(pod, "status", "phase") not in ("Succeeded", "Failed")
        ]
        volumes = [
            volume
            for volume in cluster.volumes()
            if _str(volume, "status", "currentNodeID") == facts.name and cluster.jobs_selecting(volume, specs)
        ]
        jobs = sorted(
            {_labels(pod).get(RECURRING_JOB_LABEL, "") for pod in pods}
            | {job for volume in volumes for job in cluster.jobs_selecting(volume, specs)}
        )
        findings.append(_node_finding(cluster, facts, node_obj, pods, volumes, jobs))
    return findings


def _node_finding(
    cluster: _Cluster,
    facts: _NodeFacts,
    node_obj: Obj,
    pods: Sequence[Obj],
    volumes: Sequence[Obj],
    jobs: Sequence[str],
) -> Finding:
    hosted = []
    if pods:
        hosted.append("job pods " + _names([_name(pod) for pod in pods]))
    if volumes:
        hosted.append("volumes " + _names([_name(volume) for volume in volumes]))
    lines = [
        facts.describe(cluster.now_s),
        f"Last heartbeat {_stamp(facts.heartbeat_s, cluster.now_s)}."
        if facts.heartbeat_s is not None
        else "No heartbeat recorded.",
        _NOT_READY_MEANING.get(facts.ready, "The node has no Ready condition at all."),
    ]
    if hosted:
        lines.append("On it: " + "; ".join(hosted) + ".")
    taints = f", taints {', '.join(facts.taints)}" if facts.taints else ""
    return Finding(
        category="node-not-ready",
        job=None,
        summary=(
            f"node {facts.name} {facts.ready_phrase()}"
            + (
                f" since {_stamp(facts.ready_since_s, cluster.now_s)}"
                if facts.ready_since_s is not None
                else ""
            )
            + taints
            + (f"; hosts {'; '.join(hosted)}" if hosted else "")
        ),
        detail="\n".join(lines),
        objects=(ObjectRef.of(node_obj), *(ObjectRef.of(pod) for pod in pods)),
        data={**facts.data(), "jobs": list(jobs), "pods": [_name(pod) for pod in pods]},
    )


_NOT_READY_MEANING = {
    "Unknown": (
        "The node lifecycle controller sets Ready=Unknown when the kubelet stops posting status "
        "(node-monitor-grace-period) and taints the node node.kubernetes.io/unreachable; pods "
        "tolerate that taint for 300 s before eviction. A reboot changes status.nodeInfo.bootID."
    ),
    "False": (
        "The kubelet itself reports the node not ready (see the message), e.g. while it boots "
        "or its container runtime or network is down; the node is tainted "
        "node.kubernetes.io/not-ready."
    ),
    "missing": "The Node object is gone: pods bound to it cannot run until it re-registers.",
}


# --------------------------------------------------------------------------- cluster view


@dataclass(frozen=True)
class _NodeFacts:
    """A core/v1 Node's readiness as the rules report it."""

    name: str
    obj: Obj | None
    ready: str
    """Ready condition status: True, False, Unknown, or "missing" (no such Node)."""
    ready_since_s: float | None
    reason: str
    message: str
    boot_id: str
    heartbeat_s: float | None
    taints: tuple[str, ...]
    rebooted_s: float | None = None
    """When the harness's last proven reboot of the node (a changed bootID) started."""

    def ready_changed_after(self, event_s: float | None) -> bool:
        """Whether Ready last transitioned after `event_s` (a restart or contact loss since)."""
        return event_s is not None and self.ready_since_s is not None and self.ready_since_s > event_s

    def rebooted_after(self, event_s: float | None) -> bool:
        """Whether the harness proved a reboot of the node that started after `event_s`."""
        return event_s is not None and self.rebooted_s is not None and self.rebooted_s > event_s

    def restarted_after(self, event_s: float | None) -> bool:
        """A proven reboot, or else a Ready transition, after `event_s`."""
        return self.rebooted_after(event_s) or self.ready_changed_after(event_s)

    def ready_phrase(self) -> str:
        if self.ready == "missing":
            return "gone (no Node object)"
        reason = f" {self.reason}" if self.reason else ""
        return f"NotReady (Ready={self.ready}{reason})"

    def describe(self, now_s: float, *, event_s: float | None = None, event: str = "") -> str:
        if self.ready == "missing":
            return f"Node {self.name}: no such Node in the cluster."
        since = ""
        if self.ready_since_s is not None:
            since = f" since {_stamp(self.ready_since_s, now_s)}"
            if event and self.ready_changed_after(event_s):
                since += f", after {event}"
        reason = f" {self.reason}" if self.reason else ""
        message = f' "{_clip(self.message, 100)}"' if self.message and self.ready != "True" else ""
        taints = f"; taints {', '.join(self.taints)}" if self.taints else ""
        return (
            f"Node {self.name}: Ready={self.ready}{reason}{since}{message}; bootID "
            f"{self.boot_id or '?'}{taints}."
        )

    def data(self) -> dict[str, Any]:
        return {
            "node": self.name,
            "node_ready": self.ready,
            "node_ready_since_s": self.ready_since_s,
            "node_boot_id": self.boot_id or None,
            "node_taints": list(self.taints),
            "node_rebooted_at_s": self.rebooted_s,
        }


@dataclass(frozen=True)
class _Blockage:
    """An active Job of a CronJob and what it has cost so far."""

    cronjob: Obj
    job_name: str
    job: Obj | None
    pods: tuple[Obj, ...]
    scheduled_s: float | None
    skipped_ticks: int | None
    already_active: int
    """Sum of the `count` of JobAlreadyActive events on the CronJob updated since the Job was
    created (an aggregated event may also carry counts from an earlier stall)."""
    already_active_last_s: float | None

    def cost(self) -> str:
        if self.skipped_ticks == 0:
            return "no tick skipped yet"
        if self.skipped_ticks is not None:
            return f"the Forbid CronJob has skipped {_count(self.skipped_ticks)} ticks"
        return f"the Forbid CronJob logged {self.already_active} JobAlreadyActive events"

    def describe(self, now_s: float) -> list[str]:
        cronjob = self.cronjob
        where = f"{_str(cronjob, 'metadata', 'namespace')}/{_name(cronjob)}"
        policy = _str(cronjob, "spec", "concurrencyPolicy") or "Allow"
        scheduled = f", scheduled {_stamp(self.scheduled_s, now_s)}" if self.scheduled_s is not None else ""
        lines = [
            f'CronJob {where} (schedule "{_str(cronjob, "spec", "schedule")}", concurrencyPolicy '
            f"{policy}) lists Job {self.job_name} in status.active"
            + scheduled
            + ("; while it is active no later tick starts a Job." if policy == "Forbid" else "."),
        ]
        ticks = (
            f"{_count(self.skipped_ticks)} scheduled ticks since"
            if self.skipped_ticks is not None
            else "ticks since unknown (schedule not parsed)"
        )
        if self.already_active:
            last = (
                f", last {_stamp(self.already_active_last_s, now_s)}"
                if self.already_active_last_s is not None
                else ""
            )
            events = (
                f"{self.already_active} JobAlreadyActive events on the CronJob{last}: "
                f'"{JOB_ALREADY_ACTIVE_MESSAGE}"'
            )
        else:
            events = (
                "no JobAlreadyActive event in the snapshot (events expire after the "
                "API server's event TTL, 1 h by default)"
            )
        lines.append(f"Skipped: {ticks}; {events}.")
        return lines

    def refs(self) -> list[ObjectRef]:
        refs = [ObjectRef.of(self.cronjob)]
        if self.job is not None:
            refs.insert(0, ObjectRef.of(self.job))
        return refs

    def data(self) -> dict[str, Any]:
        return {
            "job_name": self.job_name,
            "scheduled_at_s": self.scheduled_s,
            "skipped_ticks": self.skipped_ticks,
            "job_already_active_events": self.already_active,
            "cronjob_schedule": _str(self.cronjob, "spec", "schedule"),
        }


class _Cluster:
    """Lookups over one snapshot; the rules never walk the raw tuples themselves."""

    def __init__(self, snapshot: ClusterSnapshot, *, namespace: str) -> None:
        self.now_s = snapshot.taken_at_s
        self.namespace = namespace
        self._snapshot = snapshot
        self._nodes = {_name(node): node for node in snapshot.nodes}

    def _in_namespace(self, objects: Iterable[Obj]) -> list[Obj]:
        return [obj for obj in objects if _str(obj, "metadata", "namespace") == self.namespace]

    def age_s(self, obj: Obj) -> float:
        created_s = _created_s(obj)
        return max(0.0, self.now_s - created_s) if created_s is not None else 0.0

    def cronjob(self, job: str) -> Obj | None:
        cronjobs = self._in_namespace(self._snapshot.cronjobs)
        for cronjob in cronjobs:
            if _name(cronjob) == job:
                return cronjob
        return next((cj for cj in cronjobs if _labels(cj).get(RECURRING_JOB_LABEL) == job), None)

    def recurring_job(self, job: str) -> Obj | None:
        recurring_jobs = self._in_namespace(self._snapshot.recurring_jobs)
        return next((rj for rj in recurring_jobs if _name(rj) == job), None)

    def jobs_of(self, cronjob: Obj) -> list[Obj]:
        """The CronJob's Jobs, oldest first."""
        owned = [job for job in self._in_namespace(self._snapshot.jobs) if _owned_by(job, cronjob)]
        return sorted(owned, key=lambda job: (_created_s(job) or 0.0, _name(job)))

    def pods_of(self, job: Obj) -> list[Obj]:
        name = _name(job)
        return [
            pod
            for pod in self._in_namespace(self._snapshot.pods)
            if _owned_by(pod, job)
            or name in (_labels(pod).get("batch.kubernetes.io/job-name"), _labels(pod).get("job-name"))
        ]

    def job_pods(self, specs: Sequence[RecurringJobFacts]) -> list[Obj]:
        names = {spec.name for spec in specs}
        return [
            pod
            for pod in self._in_namespace(self._snapshot.pods)
            if _labels(pod).get(RECURRING_JOB_LABEL) in names
        ]

    def blockages(self, cronjob: Obj) -> list[_Blockage]:
        """One per Job in the CronJob's status.active."""
        blockages = []
        jobs = self._in_namespace(self._snapshot.jobs)
        for ref in _items(cronjob, "status", "active"):
            uid, name = _str(ref, "uid"), _str(ref, "name")
            job = next(
                (j for j in jobs if (uid and _str(j, "metadata", "uid") == uid) or _name(j) == name),
                None,
            )
            scheduled_s = _scheduled_s(job, name) if job is not None else _scheduled_from_name(name)
            since_s = scheduled_s if scheduled_s is not None else _created_s(job or {})
            counted_from_s = _created_s(job) if job is not None else since_s
            events = [
                event
                for event in self.events_about(cronjob, reasons=("JobAlreadyActive",))
                if counted_from_s is None or (_event_last_s(event) or 0.0) >= counted_from_s
            ]
            blockages.append(
                _Blockage(
                    cronjob=cronjob,
                    job_name=name,
                    job=job,
                    pods=tuple(self.pods_of(job)) if job is not None else (),
                    scheduled_s=scheduled_s,
                    skipped_ticks=self.ticks(cronjob, after_s=since_s),
                    already_active=sum(_event_count(event) for event in events),
                    already_active_last_s=max(
                        (s for s in map(_event_last_s, events) if s is not None), default=None
                    ),
                )
            )
        return blockages

    def ticks(self, cronjob: Obj, *, after_s: float | None) -> int | None:
        """Scheduled ticks of the CronJob in (after_s, now]; None if unknown."""
        if after_s is None:
            return None
        return _ticks_between(
            _str(cronjob, "spec", "schedule"),
            after_s=after_s,
            until_s=self.now_s,
            time_zone=_str(cronjob, "spec", "timeZone"),
        )

    def events_about(self, obj: Obj, *, reasons: Sequence[str]) -> list[Obj]:
        kind, name = _str(obj, "kind"), _name(obj)
        namespace = _str(obj, "metadata", "namespace")
        return sorted(
            (
                event
                for event in self._snapshot.events
                if _str(event, "involvedObject", "kind") == kind
                and _str(event, "involvedObject", "name") == name
                and (_str(event, "involvedObject", "namespace") or namespace) == namespace
                and _str(event, "reason") in reasons
            ),
            key=lambda event: _event_last_s(event) or 0.0,
        )

    def event_line(self, event: Obj) -> str:
        last_s = _event_last_s(event)
        when = f", last {_stamp(last_s, self.now_s)}" if last_s is not None else ""
        return (
            f"Event {_str(event, 'type') or 'Normal'} {_str(event, 'reason')} "
            f"x{_event_count(event)}{when}: {_clip(_str(event, 'message'), 160)}"
        )

    def backups_of(self, job: str) -> list[Obj]:
        return [
            backup for backup in self._in_namespace(self._snapshot.backups) if _made_by_job(backup) == job
        ]

    def snapshot_lines(self, snapshot_name: str) -> list[str]:
        if not snapshot_name:
            return []
        for snapshot in self._in_namespace(self._snapshot.snapshots):
            if _name(snapshot) == snapshot_name:
                created = _str(snapshot, "status", "creationTime") or "?"
                ready = _at(snapshot, "status", "readyToUse")
                return [f"Snapshot {snapshot_name}: readyToUse {ready}, creationTime {created}."]
        return [f"Snapshot {snapshot_name}: not in the snapshot list."]

    def volumes(self) -> list[Obj]:
        return sorted(self._in_namespace(self._snapshot.volumes), key=_name)

    def backup_targets(self) -> list[Obj]:
        return sorted(self._in_namespace(self._snapshot.backup_targets), key=_name)

    def backup_target(self, name: str) -> Obj | None:
        return next((target for target in self.backup_targets() if _name(target) == name), None)

    def target_evidence(self, backup: Obj) -> Literal["says", "during"] | None:
        """Whether an Error backup failed because its backup target was unavailable: its error says
        so, or it failed while the target is unavailable and its error names no other cause."""
        error = _backup_error(backup)
        if _TARGET_UNAVAILABLE_ERROR.search(error):
            return "says"
        if _LOCK_ERROR.search(error):
            return None
        target = self.backup_target(_backup_target_name(backup) or _DEFAULT_TARGET)
        if target is None or not _target_down(target):
            return None
        since_s = _time_s(_str(_true_condition(target, "Unavailable"), "lastTransitionTime"))
        failed_s = _error_s(backup)
        if since_s is not None and failed_s is not None and failed_s < since_s:
            return None
        return "during"

    def nodes(self) -> list[Obj]:
        return sorted(self._snapshot.nodes, key=_name)

    def jobs_selecting(self, volume: Obj, specs: Sequence[RecurringJobFacts]) -> list[str]:
        """Which of `specs` select the volume, by job label or group label (default group)."""
        labels = _labels(volume)
        job_prefix, group_prefix = "recurring-job.longhorn.io/", "recurring-job-group.longhorn.io/"
        own = {k.removeprefix(job_prefix) for k, v in labels.items() if k.startswith(job_prefix)}
        own_enabled = {
            k.removeprefix(job_prefix)
            for k, v in labels.items()
            if k.startswith(job_prefix) and v == "enabled"
        }
        groups = {
            k.removeprefix(group_prefix)
            for k, v in labels.items()
            if k.startswith(group_prefix) and v == "enabled"
        }
        if not own and not groups:
            groups = {"default"}
        selected = []
        for spec in specs:
            recurring_job = self.recurring_job(spec.name)
            job_groups = {str(g) for g in _at(recurring_job, "spec", "groups") or ()}
            if spec.name in own_enabled or job_groups & groups:
                selected.append(spec.name)
        return selected

    def schedule_mismatch_lines(self, spec: RecurringJobFacts, cronjob: Obj) -> list[str]:
        schedule = _str(cronjob, "spec", "schedule")
        if schedule == spec.cron:
            return []
        return [f'The CronJob\'s schedule "{schedule}" differs from the soak\'s cron "{spec.cron}".']

    def node_facts(self, name: str) -> _NodeFacts:
        node = self._nodes.get(name)
        rebooted_s = self._snapshot.node_restarts.get(name)
        if node is None:
            return _NodeFacts(name, None, "missing", None, "", "", "", None, (), rebooted_s)
        ready = _condition(node, "Ready")
        taints = tuple(
            f"{_str(t, 'key')}:{_str(t, 'effect')}"
            for t in _items(node, "spec", "taints")
            if _str(t, "key").startswith("node.kubernetes.io/")
        )
        return _NodeFacts(
            name=name,
            obj=node,
            ready=_str(ready, "status") or "Unknown",
            ready_since_s=_time_s(_str(ready, "lastTransitionTime")),
            reason=_str(ready, "reason"),
            message=_str(ready, "message"),
            boot_id=_str(node, "status", "nodeInfo", "bootID"),
            heartbeat_s=_time_s(_str(ready, "lastHeartbeatTime")),
            taints=taints,
            rebooted_s=rebooted_s,
        )


# --------------------------------------------------------------------------- error messages


_NO_NAMES: Mapping[str, str] = MappingProxyType({})
_MIN_NAME_LENGTH = 3
"""Shorter names (a volume "db") are left alone: as words they would replace ordinary text."""
_GENERATED_PARTS: tuple[tuple[re.Pattern[str], str], ...] = (
    # RFC 3339, and Go's time.Time.String() ("2025-03-20 11:40:00.123 +0000 UTC").
    (
        re.compile(
            r"\b\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|\s?[+-]\d{2}:?\d{2}(?:\s[A-Z]{2,5})?)?"
        ),
        "<time>",
    ),
    # Recurring-job snapshots are <job[:8]>-<uuid>; pvc-<uuid> volumes; instance-manager uuids.
    (
        re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b", re.IGNORECASE),
        "<uuid>",
    ),
    # "proxyServer=10.42.1.15:8501 destination=10.42.1.15:10000", "tcp://10.42.1.15:10000".
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}(?::\d{1,5})?\b"), "<ip>"),
    # backupstore keeps a volume under volumes/<2 hex>/<2 hex>/<volume>/, from its name's checksum.
    (re.compile(r"(?<=\bvolumes/)[0-9a-f]{2}/[0-9a-f]{2}(?=/)"), "<id>"),
    # S3 errors name each request: "RequestID: 7VPFQ0Q1JG3GMRJ8, HostID: yZ3t...=" (aws-sdk-go-v2),
    # "request id: ..., host id: ..." (v1).
    (re.compile(r"\b(RequestID|HostID|request id|host id): [^,\s]+", re.IGNORECASE), r"\1: <id>"),
    # GenerateName: "lock-", "backup-", "snap-", "system-backup-" and 16 hex characters.
    (re.compile(r"\b(lock|backup|snap|system-backup)-[0-9a-f]{4,}\b", re.IGNORECASE), r"\1-<id>"),
    (re.compile(r"\b[0-9a-f]{8,}\b", re.IGNORECASE), "<id>"),
)
"""What Longhorn and Kubernetes generate, in the order replaced (a uuid before its hex runs)."""


def message_pattern(text: str, *, names: Mapping[str, str] = _NO_NAMES) -> str:
    """`text` on one line with what differs from one object's message to the next replaced by
    placeholders, so that messages which say the same thing compare equal.

    `names` maps names the caller knows (a backup's own volume, snapshot and backup names) to
    their placeholder; they go first, longest first, as whole words. Then the parts Longhorn and
    Kubernetes generate: timestamps, uuids, IPv4 addresses with their port, backupstore's
    per-volume directories, lock-/backup-/snap- ids and hex runs of 8 or more characters.
    """
    pattern = " ".join(text.split())
    for name in sorted((name for name in names if len(name) >= _MIN_NAME_LENGTH), key=len, reverse=True):
        pattern = _replace_word(pattern, name, names[name])
    for part, placeholder in _GENERATED_PARTS:
        pattern = part.sub(placeholder, pattern)
    return pattern


def group_backup_errors(backups: Iterable[Obj]) -> list[MessageGroup]:
    """The error messages of `backups` grouped by `message_pattern` (each backup's own names as
    placeholders), most frequent first, equal counts in the order first seen."""
    texts: dict[str, list[str]] = {}
    for backup in backups:
        text = _backup_error(backup)
        texts.setdefault(message_pattern(text, names=_own_names(backup)), []).append(text)
    groups = [
        MessageGroup(pattern=pattern, example=seen[0], count=len(seen), variants=len(set(seen)))
        for pattern, seen in texts.items()
    ]
    return sorted(groups, key=lambda group: -group.count)


def _replace_word(text: str, word: str, placeholder: str) -> str:
    return re.sub(rf"(?<!\w){re.escape(word)}(?!\w)", lambda _match: placeholder, text)


def _own_names(backup: Obj) -> dict[str, str]:
    """A backup's names its error may quote, each with its placeholder."""
    names = {
        _str(backup, "spec", "snapshotName"): "<snapshot>",
        _str(backup, "status", "snapshotName"): "<snapshot>",
        _backup_volume(backup): "<volume>",
        _name(backup): "<backup>",
    }
    names.pop("", None)
    return names


def _backup_error(backup: Obj) -> str:
    """Why a backup failed: status.error, else the error longhorn-manager put in status.messages."""
    error = _str(backup, "status", "error")
    if error:
        return error
    message = _str(backup, "status", "messages", "error")
    return f"(status.messages.error) {message}" if message else "(no status.error)"


def _errors_line(groups: Sequence[MessageGroup], *, why: re.Pattern[str]) -> str:
    """The most frequent error groups, each as its count and first example."""
    parts = [_group_phrase(group, limit=_DETAIL_QUOTE_LIMIT, why=why) for group in groups[:_GROUPS_SHOWN]]
    rest = groups[_GROUPS_SHOWN:]
    if rest:
        plural = "s" if len(rest) != 1 else ""
        parts.append(f"and {len(rest)} other error{plural} (×{sum(group.count for group in rest)})")
    return "Errors: " + "; ".join(parts)


def _group_phrase(group: MessageGroup, *, limit: int, why: re.Pattern[str]) -> str:
    quoted = f'"{_quote(group.example, limit=limit, why=why)}"'
    return f"×{group.count}, e.g. {quoted}" if group.variants > 1 else f"×{group.count} {quoted}"


def _summary_quote(groups: Sequence[MessageGroup], *, total: int, why: re.Pattern[str]) -> str:
    """The most frequent error for a summary; its count only when other errors exist."""
    top = groups[0]
    quoted = f'"{_quote(top.example, limit=_SUMMARY_QUOTE_LIMIT, why=why)}"'
    return quoted if top.count == total else f"×{top.count} of {total} {quoted}"


def _errors_data(groups: Sequence[MessageGroup]) -> dict[str, dict[str, int]]:
    """JSON-safe: each group's first example and its pattern, with its count, most frequent first."""
    return {
        "errors": {group.example: group.count for group in groups},
        "error_patterns": {group.pattern: group.count for group in groups},
    }


# --------------------------------------------------------------------------- object helpers


def _at(obj: Obj | None, *path: str) -> Any:
    current: Any = obj
    for key in path:
        if not isinstance(current, Mapping):
            return None
        current = current.get(key)
    return current


def _str(obj: Obj | None, *path: str) -> str:
    value = _at(obj, *path)
    return value if isinstance(value, str) else ""


def _int(obj: Obj | None, *path: str, default: int = 0) -> int:
    value = _at(obj, *path)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _items(obj: Obj | None, *path: str) -> list[Obj]:
    value = _at(obj, *path)
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, Mapping)]


def _labels(obj: Obj | None) -> Mapping[str, str]:
    value = _at(obj, "metadata", "labels")
    return value if isinstance(value, Mapping) else {}


def _name(obj: Obj | None) -> str:
    return _str(obj, "metadata", "name")


def _created_s(obj: Obj | None) -> float | None:
    return _time_s(_str(obj, "metadata", "creationTimestamp"))


def _bound_s(pod: Obj) -> float | None:
    """When the scheduler bound the pod (PodScheduled turned True), else its creation."""
    bound_s = _time_s(_str(_true_condition(pod, "PodScheduled"), "lastTransitionTime"))
    return bound_s if bound_s is not None else _created_s(pod)


def _condition(obj: Obj | None, kind: str) -> Obj | None:
    return next((c for c in _items(obj, "status", "conditions") if _str(c, "type") == kind), None)


def _true_condition(obj: Obj | None, kind: str) -> Obj | None:
    condition = _condition(obj, kind)
    return condition if _str(condition, "status") == "True" else None


def _owned_by(obj: Obj, owner: Obj) -> bool:
    uid = _str(owner, "metadata", "uid")
    for ref in _items(obj, "metadata", "ownerReferences"):
        if _str(ref, "kind") != _str(owner, "kind"):
            continue
        if (uid and _str(ref, "uid") == uid) or (not uid and _str(ref, "name") == _name(owner)):
            return True
    return False


def _made_by_job(obj: Obj) -> str:
    for path in (("status", "labels"), ("spec", "labels"), ("metadata", "labels")):
        labels = _at(obj, *path)
        if isinstance(labels, Mapping) and isinstance(labels.get(BACKUP_JOB_LABEL_KEY), str):
            return str(labels[BACKUP_JOB_LABEL_KEY])
    return ""


def _backup_volume(backup: Obj) -> str:
    return _str(backup, "status", "volumeName") or _labels(backup).get("backup-volume", "")


def _backup_target_name(backup: Obj) -> str:
    return _str(backup, "status", "backupTargetName") or _labels(backup).get("backup-target", "")


def _scheduled_s(job: Obj, name: str) -> float | None:
    annotations = _at(job, "metadata", "annotations")
    if isinstance(annotations, Mapping):
        stamp = annotations.get(SCHEDULED_TIMESTAMP_ANNOTATION)
        if isinstance(stamp, str) and (parsed := _time_s(stamp)) is not None:
            return parsed
    return _scheduled_from_name(name)


def _scheduled_from_name(name: str) -> float | None:
    # The CronJob controller names each Job <cronjob>-<scheduled time in minutes since epoch>.
    match = re.search(r"-(\d{8,})$", name)
    return int(match.group(1)) * 60.0 if match else None


def _event_count(event: Obj) -> int:
    return max(_int(event, "count"), _int(event, "series", "count"), 1)


def _event_last_s(event: Obj) -> float | None:
    for path in (
        ("lastTimestamp",),
        ("series", "lastObservedTime"),
        ("eventTime",),
        ("firstTimestamp",),
        ("metadata", "creationTimestamp"),
    ):
        if (stamp := _time_s(_str(event, *path))) is not None:
            return stamp
    return None


def _restarts(pod: Obj) -> int:
    return sum(_int(status, "restartCount") for status in _items(pod, "status", "containerStatuses"))


def _container_exits(pod: Obj) -> list[str]:
    exits = []
    for status in _items(pod, "status", "containerStatuses"):
        for path in (("state", "terminated"), ("lastState", "terminated")):
            terminated = _at(status, *path)
            if isinstance(terminated, Mapping) and _int(terminated, "exitCode") != 0:
                message = _clip(_str(terminated, "message"), 120)
                exits.append(
                    f"exit {_int(terminated, 'exitCode')} ({_str(terminated, 'reason') or '?'})"
                    + (f": {message}" if message else "")
                )
                break
        waiting = _str(status, "state", "waiting", "reason")
        if waiting == "CrashLoopBackOff":
            exits.append("CrashLoopBackOff")
    return exits


def _container_waiting_lines(pod: Obj) -> list[str]:
    lines = []
    for status in _items(pod, "status", "containerStatuses"):
        reason = _str(status, "state", "waiting", "reason")
        if reason:
            message = _str(status, "state", "waiting", "message")
            lines.append(
                f"Container {_str(status, 'name')} waiting: {reason}"
                + (f": {_clip(message, 120)}" if message else "")
            )
    return lines


def _terminating_note(pod: Obj, now_s: float) -> str:
    deleted_s = _time_s(_str(pod, "metadata", "deletionTimestamp"))
    return f", terminating since {_stamp(deleted_s, now_s)}" if deleted_s is not None else ""


# --------------------------------------------------------------------------- time and text


def _time_s(text: str) -> float | None:
    """Epoch seconds of an RFC 3339 timestamp; None if empty or malformed."""
    if not text:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.timestamp()


def _ticks_between(cron: str, *, after_s: float, until_s: float, time_zone: str = "") -> int | None:
    """Ticks of `cron` in (after_s, until_s], capped; None if the expression does not parse."""
    fields = cron.split()
    seconds_first = len(fields) == 6
    if not croniter.is_valid(cron, second_at_beginning=seconds_first):
        return None
    zone: tzinfo = UTC
    if time_zone:
        try:
            zone = ZoneInfo(time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            return None
    start = datetime.fromtimestamp(after_s, tz=zone)
    ticks = croniter(cron, start, second_at_beginning=seconds_first)
    count = 0
    while count < _TICK_COUNT_CAP and float(ticks.get_next(float)) <= until_s:
        count += 1
    return count


def _count(ticks: int | None) -> str:
    if ticks is None:
        return "an unknown number of"
    return f"at least {ticks}" if ticks >= _TICK_COUNT_CAP else str(ticks)


def _age(seconds: float) -> str:
    whole = max(0, round(seconds))
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h{minutes:02d}m"
    days, hours = divmod(hours, 24)
    return f"{days}d{hours:02d}h"


def _stamp(epoch_s: float | None, now_s: float) -> str:
    if epoch_s is None:
        return "at an unknown time"
    iso = _iso(epoch_s)
    delta = now_s - epoch_s
    relative = f"{_age(delta)} ago" if delta >= 0 else f"in {_age(-delta)}"
    return f"{iso} ({relative})"


def _iso(epoch_s: float | None) -> str:
    if epoch_s is None:
        return "an unknown time"
    stamp = datetime.fromtimestamp(epoch_s, tz=UTC).isoformat(timespec="seconds")
    return stamp.replace("+00:00", "Z")


def _clip(text: str, limit: int) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _quote(text: str, *, limit: int, why: re.Pattern[str] | None = None) -> str:
    """`text` on one line in at most `limit` characters, clipped so its cause survives.

    Go errors wrap outermost first ("failed to X: failed to Y: root cause"), so the middle goes
    and the end stays; if `why` matches a part that would be cut, that part is kept whole too.
    """
    flat = " ".join(text.split())
    if len(flat) <= limit:
        return flat
    head_len = limit // 3
    tail_start = len(flat) - (limit - head_len - 1)
    match = why.search(flat) if why is not None else None
    if match is None or match.end() <= head_len or match.start() >= tail_start:
        quoted = _to_word_end(flat[:head_len]) + " … " + _from_word_start(flat[tail_start:])
        return quoted if len(quoted) <= limit else flat[:head_len] + "…" + flat[tail_start:]
    if match.end() < limit:
        return flat[: limit - 1] + "…"
    start = match.start()
    head = flat[: min(limit // 6, start)]
    room = limit - len(head) - 1
    if len(flat) - start <= room:
        return head + "…" + flat[start:]
    middle = flat[start : start + max(match.end() - start, (room - 1) // 2)]
    tail_len = room - 1 - len(middle)
    if tail_len <= 0:
        return head + "…" + middle[: room - 1] + "…"
    return head + "…" + middle + "…" + flat[-tail_len:]


def _to_word_end(head: str) -> str:
    """`head` without a word cut at its end (a reader should not have to guess "destinatio…")."""
    cut = head.rfind(" ")
    return head[:cut].rstrip(" :,") if cut > len(head) // 2 else head


def _from_word_start(tail: str) -> str:
    """`tail` without a word cut at its start."""
    cut = tail.find(" ")
    return tail[cut + 1 :] if 0 <= cut < len(tail) // 2 else tail


def _delete_error_backups(namespace: str, volume: str, errors: Sequence[Obj]) -> str:
    """A command to paste: the names when few, else every Error backup of the volume by its label."""
    names = [_name(b) for b in errors]
    if len(names) <= _LIST_LIMIT:
        return f"kubectl -n {namespace} delete backups.longhorn.io {' '.join(names)}"
    # Custom resources have no field selector on status: a JSONPath filter picks the Error ones.
    return (
        f"kubectl -n {namespace} get backups.longhorn.io -l backup-volume={volume} -o jsonpath="
        """'{range .items[?(@.status.state=="Error")]}{.metadata.name}{"\\n"}{end}' | """
        f"xargs -r kubectl -n {namespace} delete backups.longhorn.io"
    )


def _names(names: Sequence[str]) -> str:
    shown = " ".join(names[:_LIST_LIMIT])
    more = len(names) - _LIST_LIMIT
    return shown + (f" (and {more} more)" if more > 0 else "")
