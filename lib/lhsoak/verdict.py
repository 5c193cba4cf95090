"""The verdict: did every recurring job keep firing on every volume, with bounded lag, through the reboots?

Pure: `analyse(ledger)` reads nothing but the `lhsoak.ledger.Ledger` it is given. The rules, per job
and per volume:

- **Window**: from the run record's `ts` to the end record's `ts` (or, without one, the latest record).
- **Ticks**: every tick of the job's cron in [window start, window end), computed by
  `lhsoak.schedule` (a 6-field cron with seconds first is allowed here, for compressed soaks).
- **Outages**: per node, reboot records pair in order: `start` opens a reboot, `ready` closes it
  (outage = start → ready + `settle_s`), `failed` closes it without a ready, `down`/`up` only carry
  information. A reboot without `ready` is an outage to the end of the run. A second `start` while one
  is open belongs to the open reboot; phases with no open reboot are noted and ignored. A tick is
  *excused* (it may be missed) when its work was still due while an outage ran: the outage overlaps
  [tick, tick + `lag_bound_s`]. Ticks inside an outage are excused, and so is a tick whose backup was
  still running when the reboot began — the reboot took it, not a stalled job; but not a tick whose
  artifact had already ended in Error before the reboot began (a decision of this
  module: with ticks excused only from the reboot's start, every reboot during a backup would fail a
  healthy cluster).
- **A tick's fire** is the first artifact (by `started`) whose `started` is at or after the tick and
  before the next tick, in its latest recorded state. Its lag is `done − tick`. The tick is *missed*
  when it has no fire, when the fire ended in Error, or when the fire was not done within
  `lag_bound_s`. The rule takes the *first* fire only: a retry in the same window does not rescue an
  errored first attempt (the CronJob would not have run another job for that tick either).
- **Late fires land in the next window.** The CronJob controller creates the job at or after the tick
  and the pod creates the artifact later still, so `started ≥ tick` holds; but a fire for tick k whose
  pod started after tick k+1 counts for tick k+1 under this rule. That is the specified rule and is
  kept: such a tick shows as missed and the next one as fired. To make it visible, a missed tick
  followed by a window holding two fires is counted in `late_landed` and named in the failure text.
- **Pending** (a decision of this module): a tick whose outcome cannot be known by the window end —
  no fire yet while the next tick and the lag deadline are both after the end, or a fire still not
  done before its deadline — is neither fired nor missed but `pending`. Otherwise every run that ends
  a few seconds after a tick would fail.
- **Staleness**: the longest gap between the window start, the consecutive `done` times of usable
  artifacts (done, not Error) and the window end.
- **Retain**: each time a usable artifact becomes done, the usable live set (done, not yet `gone`)
  may hold `retain + 1` (the new one before its job deletes the oldest); every done that takes it
  beyond that is one violation. `errors_left` counts every Error artifact never followed by `gone`;
  `errors_piled_up` counts those of them that no reboot cut off (started before a reboot began,
  recorded in Error after). Retain violations are reported. A job fails when `errors_piled_up` is
  more than `retain` (longhorn#7854: backups that start during or after an outage fail, and the
  retain cleanup skips Error backups, so they pile up); one backup cut off by each reboot ends in
  Error on a healthy cluster too, so those are not counted against retain.
- **Recovery**: if there were outages, the job must fire on time for some tick after the last one
  ended. A run that was interrupted (end reason `interrupted`: stopped by SIGINT/SIGTERM, often in
  the middle of a reboot) is not held to a recovery it could not have seen: when no tick after the
  last outage's end was judged (the outage ended after the window, never ended, or only pending
  ticks follow it) recovery is not judged and a note says so. Any other run is: it was meant to
  watch ticks after its last reboot.
- **Pass**: a job passes on a volume when it has no missed tick outside outages, it recovered after
  the last outage (above), and it left no more Error artifacts than `retain` (above). The run passes
  when every job passes on every volume. A job that fired on no volume at all while ticks went by
  fails too.
- **Outcome**: `failed` when anything failed; else `interrupted` when the run was interrupted (what
  it saw passed, but it stopped before its verdict could be reached: `lhsoak analyze` exits 130);
  else `passed`. A failure found before an interrupt is a failure (exit 1).
- **Reboots**: `downtime_s` is start → ready (or the window end); `recovery_s` is ready → the first
  on-time fire started after ready, the maximum over jobs × volumes (null if one never came).
- **Blind windows** (the recorder's watch was down) do not excuse a miss; a failure's text names
  those overlapping its missed ticks (tick to tick + lag bound).
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import math
import operator
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal, NamedTuple

from lhsoak import ledger, schedule
from lhsoak.timestamps import to_rfc3339

__all__ = [
    "INTERRUPTED_TEXT",
    "Failure",
    "JobVerdict",
    "Outage",
    "RebootVerdict",
    "RunOutcome",
    "Verdict",
    "VolumeVerdict",
    "analyse",
    "render_table",
]

Outcome = Literal["fired", "missed", "pending"]
RunOutcome = Literal["passed", "failed", "interrupted"]
MissCause = Literal["no_fire", "late", "error"]
_MISS_CAUSES: tuple[MissCause, ...] = ("no_fire", "late", "error")


@dataclasses.dataclass(frozen=True)
class Outage:
    """A window in which ticks are excused: a reboot's start to its ready + settle."""

    node: str
    """The rebooted node."""
    start_s: float
    """When the reboot started (epoch s)."""
    end_s: float
    """Ready + settle (epoch s); +inf when the node never became ready."""


@dataclasses.dataclass(frozen=True)
class VolumeVerdict:
    """One job on one volume."""

    volume: str
    """The volume's name."""
    ticks: int
    """Cron ticks in the window."""
    excused: int
    """Ticks inside an outage window (whatever their outcome)."""
    fired: int
    """Ticks whose fire was done within the lag bound."""
    missed: int
    """Missed ticks outside outage windows: what fails a job."""
    excused_missed: int
    """Missed ticks inside outage windows."""
    pending: int
    """Ticks too close to the window end to judge."""
    missed_causes: Mapping[MissCause, int]
    """Non-excused misses by cause: no fire, not done in time, Error."""
    late_landed: int
    """Non-excused misses without a fire followed by a window holding two fires."""
    unmatched_fires: int
    """Fires that were not the first of a tick window (before the first tick, or extra ones)."""
    lag_p50_s: float | None
    """Median lag (done − tick) over ticks whose fire was done; None without any."""
    lag_p95_s: float | None
    """95th percentile lag (linear interpolation); None without any."""
    lag_max_s: float | None
    """Largest lag; None without any."""
    max_staleness_s: float
    """Longest time without a newer usable artifact."""
    retain_violations: int
    """Times the usable artifacts exceeded retain + 1."""
    errors_left: int
    """Every Error artifact never deleted."""
    errors_piled_up: int
    """Of `errors_left`, those no reboot cut off: what is compared against retain."""
    last_fire_done_s: float | None
    """When the last usable artifact became done."""
    fired_after_last_outage: bool | None
    """Whether some tick after the last outage fired on time; None without outages, or when an
    interrupted run judged no tick after it."""
    missed_ticks_s: tuple[float, ...]
    """The non-excused missed ticks."""
    passed: bool
    """No missed tick outside outages, fired after the last outage, Errors piled up within retain."""


@dataclasses.dataclass(frozen=True)
class JobVerdict:
    """One recurring job over every volume."""

    name: str
    """The job's name."""
    task: str
    """snapshot, backup, …"""
    cron: str
    """Its cron expression."""
    retain: int
    """How many artifacts it keeps."""
    volumes: tuple[VolumeVerdict, ...]
    """One row per volume, sorted by name."""
    passed: bool
    """Every volume passed (and it fired somewhere if ticks went by)."""

    @property
    def artifact_noun(self) -> str:
        """What its artifacts are called, plural: backups, snapshots, or artifacts."""
        return _artifact_noun(self.task)


def _artifact_noun(task: str) -> str:
    # Longhorn's tasks: backup, backup-force-create, snapshot, snapshot-force-create, … .
    for kind in ("backup", "snapshot"):
        if task.startswith(kind):
            return f"{kind}s"
    return "artifacts"


@dataclasses.dataclass(frozen=True)
class RebootVerdict:
    """One reboot of one node."""

    node: str
    """The rebooted node."""
    start_s: float
    """Its `start` record (epoch s)."""
    ready_s: float | None
    """Its `ready` record; None if the node never became ready."""
    failed: bool
    """True when the harness recorded the reboot as failed."""
    downtime_s: float
    """start → ready, or to the window end."""
    recovery_s: float | None
    """ready → first on-time fire of every job × volume (the max); None if one never came."""
    outage_end_s: float
    """ready + settle; +inf without ready."""


@dataclasses.dataclass(frozen=True)
class Failure:
    """Why a job failed on a volume (volume None: on no volume at all)."""

    job: str
    """The job's name."""
    volume: str | None
    """The volume, or None for a failure not tied to one."""
    reason: str
    """A human sentence."""


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The decision over a whole ledger; `to_json()` is the `lhsoak analyze --json` document."""

    passed: bool
    """Every job passed on every volume (in an interrupted run: as far as it got; see `outcome`)."""
    run_id: str
    """The run's id."""
    window_start_s: float
    """The run record's time."""
    window_end_s: float
    """The end record's time, or the latest record's."""
    end_reason: str | None
    """The end record's reason; None when the run did not end cleanly."""
    lag_bound_s: float
    """Longest allowed tick → done."""
    settle_s: float
    """Time after ready still excused."""
    jobs: tuple[JobVerdict, ...]
    """Per job, in run-record order."""
    reboots: tuple[RebootVerdict, ...]
    """Per reboot, by start time."""
    outages: tuple[Outage, ...]
    """Excusing windows, by start time."""
    blinds: tuple[ledger.Blind, ...]
    """The recorder's blind windows."""
    failures: tuple[Failure, ...]
    """Why it failed; empty when passed."""
    notes: tuple[str, ...]
    """Anything odd about the ledger worth a reader's attention."""

    @property
    def interrupted(self) -> bool:
        """The run was stopped (SIGINT/SIGTERM) before its plan was done."""
        return self.end_reason == "interrupted"

    @property
    def outcome(self) -> RunOutcome:
        """failed if anything failed; else interrupted if the run was; else passed."""
        if not self.passed:
            return "failed"
        return "interrupted" if self.interrupted else "passed"

    def to_json(self) -> dict[str, Any]:
        """The JSON document of `lhsoak analyze --json`."""
        return {
            # A script reading only `passed` must not count a stopped run as green.
            "passed": self.outcome == "passed",
            "outcome": self.outcome,
            "jobs": {job.name: _job_json(job) for job in self.jobs},
            "reboots": [_reboot_json(reboot) for reboot in self.reboots],
            "failures": [
                {"job": failure.job, "volume": failure.volume, "reason": failure.reason}
                for failure in self.failures
            ],
            "run_id": self.run_id,
            "window": {
                "start": to_rfc3339(self.window_start_s),
                "end": to_rfc3339(self.window_end_s),
                "end_reason": self.end_reason,
            },
            "lag_bound_s": self.lag_bound_s,
            "settle_s": self.settle_s,
            "outages": [
                {"node": o.node, "start": to_rfc3339(o.start_s), "end": _ts_or_none(o.end_s)}
                for o in self.outages
            ],
            "blind_windows": [
                {"from": to_rfc3339(b.from_s), "to": to_rfc3339(b.to_s), "resource": b.resource}
                for b in self.blinds
            ],
            "notes": list(self.notes),
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _ts_or_none(value: float | None) -> str | None:
    return None if value is None or math.isinf(value) else to_rfc3339(value)


def _job_json(job: JobVerdict) -> dict[str, Any]:
    return {
        "task": job.task,
        "volumes": {row.volume: _volume_json(row) for row in job.volumes},
        "cron": job.cron,
        "retain": job.retain,
        "passed": job.passed,
    }


def _volume_json(row: VolumeVerdict) -> dict[str, Any]:
    return {
        "ticks": row.ticks,
        "excused": row.excused,
        "fired": row.fired,
        "missed": row.missed,
        "lag_p50_s": _round(row.lag_p50_s),
        "lag_p95_s": _round(row.lag_p95_s),
        "lag_max_s": _round(row.lag_max_s),
        "max_staleness_s": _round(row.max_staleness_s),
        "retain_violations": row.retain_violations,
        "errors_left": row.errors_left,
        "errors_piled_up": row.errors_piled_up,
        "passed": row.passed,
        "missed_ticks": [to_rfc3339(tick) for tick in row.missed_ticks_s],
        "excused_missed": row.excused_missed,
        "pending": row.pending,
        "missed_causes": dict(row.missed_causes),
        "late_landed": row.late_landed,
        "unmatched_fires": row.unmatched_fires,
        "last_fire_done": _ts_or_none(row.last_fire_done_s),
        "fired_after_last_outage": row.fired_after_last_outage,
    }


def _reboot_json(reboot: RebootVerdict) -> dict[str, Any]:
    return {
        "node": reboot.node,
        "start": to_rfc3339(reboot.start_s),
        "ready": _ts_or_none(reboot.ready_s),
        "downtime_s": _round(reboot.downtime_s),
        "recovery_s": _round(reboot.recovery_s),
        "failed": reboot.failed,
        "outage_end": _ts_or_none(reboot.outage_end_s),
    }


# Per-tick judgement.


class _Tick(NamedTuple):
    tick_s: float
    excused: bool
    outcome: Outcome
    cause: MissCause | None
    fire: ledger.Fire | None
    lag_s: float | None
    window_fires: int


class _JobTicks(NamedTuple):
    """What every volume of a job shares: its ticks, their next ticks and excusal."""

    ticks: Sequence[float]
    nexts: Sequence[float]
    excused: Sequence[bool]


@dataclasses.dataclass(frozen=True)
class _Context:
    window_start_s: float
    window_end_s: float
    lag_bound_s: float
    outages: tuple[Outage, ...]
    blinds: tuple[ledger.Blind, ...]
    interrupted: bool

    @property
    def last_outage(self) -> Outage | None:
        return max(self.outages, key=lambda outage: outage.end_s, default=None)


def _job_ticks(job: ledger.Job, ctx: _Context) -> _JobTicks:
    parsed = schedule.parse(job.cron)
    ticks = parsed.ticks(ctx.window_start_s, ctx.window_end_s)
    nexts = [*ticks[1:], parsed.next_after(ticks[-1])] if ticks else []
    excused = [_in_outage(tick, ctx.outages, lag_bound_s=ctx.lag_bound_s) for tick in ticks]
    return _JobTicks(ticks=ticks, nexts=nexts, excused=excused)


def _in_outage(t_s: float, outages: Iterable[Outage], *, lag_bound_s: float) -> bool:
    return any(outage.start_s <= t_s + lag_bound_s and t_s <= outage.end_s for outage in outages)


def _judge_ticks(job_ticks: _JobTicks, fires: Sequence[ledger.Fire], ctx: _Context) -> list[_Tick]:
    """Judge every tick against `fires` (sorted by `started_s`)."""
    starts = [fire.started_s for fire in fires]
    judged = []
    for tick, nxt, excused in zip(job_ticks.ticks, job_ticks.nexts, job_ticks.excused, strict=True):
        first = bisect.bisect_left(starts, tick)
        past = bisect.bisect_left(starts, nxt, lo=first)
        fire = fires[first] if past > first else None
        outcome, cause, lag = _judge_tick(tick, nxt, fire, ctx)
        if excused and cause == "error" and fire is not None:
            excused = _excused_error(tick, fire, ctx)
        judged.append(_Tick(tick, excused, outcome, cause, fire, lag, past - first))
    return judged


def _excused_error(tick_s: float, fire: ledger.Fire, ctx: _Context) -> bool:
    """An outage that began while a tick's work was due excuses it, unless the tick was already lost
    before the reboot began (its artifact was recorded in Error earlier): the reboot did not cause that."""
    for outage in ctx.outages:
        if not (outage.start_s <= tick_s + ctx.lag_bound_s and tick_s <= outage.end_s):
            continue
        if outage.start_s <= tick_s or fire.ts_s >= outage.start_s:
            return True
    return False


def _judge_tick(
    tick_s: float, next_s: float, fire: ledger.Fire | None, ctx: _Context
) -> tuple[Outcome, MissCause | None, float | None]:
    deadline_s = tick_s + ctx.lag_bound_s
    if fire is None:
        decided = ctx.window_end_s >= next_s or ctx.window_end_s > deadline_s
        return ("missed", "no_fire", None) if decided else ("pending", None, None)
    if fire.state == "Error":
        return "missed", "error", None
    if fire.done_s is None:
        return ("missed", "late", None) if ctx.window_end_s > deadline_s else ("pending", None, None)
    lag_s = fire.done_s - tick_s
    return ("fired", None, lag_s) if lag_s <= ctx.lag_bound_s else ("missed", "late", lag_s)


# Per-volume figures.


def _percentile(ordered: Sequence[float], fraction: float) -> float:
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _usable_dones(fires: Iterable[ledger.Fire]) -> list[tuple[float, str]]:
    """(done time, object) of the artifacts that became usable: done and not in Error."""
    return [(fire.done_s, fire.object) for fire in fires if fire.done_s is not None and fire.state != "Error"]


def _max_staleness(usable: Iterable[tuple[float, str]], ctx: _Context) -> float:
    dones = sorted(done_s for done_s, _ in usable if ctx.window_start_s <= done_s <= ctx.window_end_s)
    points = [ctx.window_start_s, *dones, ctx.window_end_s]
    return max(later - earlier for earlier, later in itertools.pairwise(points))


def _retain_violations(
    usable: Iterable[tuple[float, str]], gone_s: Mapping[str, float], *, retain: int
) -> int:
    """How many times a usable artifact became done while retain + 1 others were already live."""
    dones: list[float] = []
    deletions: list[float] = []
    for done_s, name in usable:
        deleted_s = gone_s.get(name, math.inf)
        if deleted_s <= done_s:
            continue  # deleted before it was ever usable
        dones.append(done_s)
        if deleted_s < math.inf:
            deletions.append(deleted_s)
    dones.sort()
    deletions.sort()
    # live at the n-th done = dones so far − deletions up to then (a deletion at the same instant
    # counts first)
    return sum(
        1
        for made, done_s in enumerate(dones, start=1)
        if made - bisect.bisect_right(deletions, done_s) > retain + 1
    )


def _late_landed(judged: Sequence[_Tick]) -> int:
    return sum(
        1
        for tick, following in itertools.pairwise(judged)
        if tick.cause == "no_fire" and not tick.excused and following.window_fires >= 2
    )


def _fired_after(judged: Sequence[_Tick], ctx: _Context) -> bool | None:
    last = ctx.last_outage
    if last is None:
        return None
    after = [tick for tick in judged if tick.tick_s > last.end_s]
    if any(tick.outcome == "fired" for tick in after):
        return True
    # An interrupted run stopped before it could see the recovery: no verdict on it, not a failure.
    if ctx.interrupted and not any(tick.outcome == "missed" for tick in after):
        return None
    return False


class _Row(NamedTuple):
    """A volume's verdict plus what the failure text and recovery need."""

    verdict: VolumeVerdict
    judged: Sequence[_Tick]


def _judge_volume(
    volume: str,
    *,
    job: ledger.Job,
    job_ticks: _JobTicks,
    fires: Sequence[ledger.Fire],
    gone_s: Mapping[str, float],
    ctx: _Context,
) -> _Row:
    judged = _judge_ticks(job_ticks, fires, ctx)
    missed = [t for t in judged if t.outcome == "missed" and not t.excused]
    lags = sorted(t.lag_s for t in judged if t.lag_s is not None)
    usable = _usable_dones(fires)
    fired_after = _fired_after(judged, ctx)
    piled_up = _errors_not_from_interruptions(fires, gone_s, ctx.outages)
    row = VolumeVerdict(
        volume=volume,
        ticks=len(judged),
        excused=sum(t.excused for t in judged),
        fired=sum(t.outcome == "fired" for t in judged),
        missed=len(missed),
        excused_missed=sum(t.outcome == "missed" and t.excused for t in judged),
        pending=sum(t.outcome == "pending" for t in judged),
        missed_causes={cause: sum(t.cause == cause for t in missed) for cause in _MISS_CAUSES},
        late_landed=_late_landed(judged),
        unmatched_fires=len(fires) - sum(t.fire is not None for t in judged),
        lag_p50_s=_percentile(lags, 0.5) if lags else None,
        lag_p95_s=_percentile(lags, 0.95) if lags else None,
        lag_max_s=lags[-1] if lags else None,
        max_staleness_s=_max_staleness(usable, ctx),
        retain_violations=_retain_violations(usable, gone_s, retain=job.retain),
        errors_left=sum(1 for f in fires if f.state == "Error" and f.object not in gone_s),
        errors_piled_up=piled_up,
        last_fire_done_s=max((done_s for done_s, _ in usable), default=None),
        fired_after_last_outage=fired_after,
        missed_ticks_s=tuple(t.tick_s for t in missed),
        passed=False,
    )
    passed = not missed and fired_after is not False and piled_up <= job.retain
    return _Row(dataclasses.replace(row, passed=passed), judged)


def _errors_not_from_interruptions(
    fires: Sequence[ledger.Fire], gone_s: Mapping[str, float], outages: Sequence[Outage]
) -> int:
    """Error artifacts left at the end that no reboot interrupted.

    A backup running when a reboot began ends in Error on a healthy cluster too, one per reboot; the
    longhorn#7854 pile-up is the others: backups that start failing during and after the outage.
    """

    def interrupted(fire: ledger.Fire) -> bool:
        return any(fire.started_s < outage.start_s <= fire.ts_s for outage in outages)

    return sum(1 for f in fires if f.state == "Error" and f.object not in gone_s and not interrupted(f))


# Reboots.


@dataclasses.dataclass
class _OpenReboot:
    node: str
    start_s: float


def _pair_reboots(
    records: Iterable[ledger.Reboot], *, settle_s: float, window_end_s: float
) -> tuple[list[RebootVerdict], list[str]]:
    """Pair each node's start with its ready (or failed); returns the reboots and notes."""
    done: list[RebootVerdict] = []
    notes: list[str] = []
    open_by_node: dict[str, _OpenReboot] = {}
    for record in sorted(records, key=lambda r: (r.ts_s, r.line)):
        current = open_by_node.get(record.node)
        if record.phase == "start":
            if current is not None:
                notes.append(f"line {record.line}: reboot of {record.node} started again while open")
            else:
                open_by_node[record.node] = _OpenReboot(record.node, record.ts_s)
        elif current is None:
            notes.append(
                f"line {record.line}: reboot phase {record.phase!r} of {record.node} "
                "with no open reboot; ignored"
            )
        elif record.phase in ("ready", "failed"):
            ready_s = record.ts_s if record.phase == "ready" else None
            done.append(
                _reboot(
                    current,
                    ready_s,
                    failed=record.phase == "failed",
                    settle_s=settle_s,
                    window_end_s=window_end_s,
                )
            )
            del open_by_node[record.node]
    done.extend(
        _reboot(o, None, failed=False, settle_s=settle_s, window_end_s=window_end_s)
        for o in open_by_node.values()
    )
    done.sort(key=lambda r: r.start_s)
    return done, notes


def _reboot(
    opened: _OpenReboot,
    ready_s: float | None,
    *,
    failed: bool,
    settle_s: float,
    window_end_s: float,
) -> RebootVerdict:
    return RebootVerdict(
        node=opened.node,
        start_s=opened.start_s,
        ready_s=ready_s,
        failed=failed,
        downtime_s=(ready_s if ready_s is not None else window_end_s) - opened.start_s,
        recovery_s=None,
        outage_end_s=ready_s + settle_s if ready_s is not None else math.inf,
    )


def _recovery_s(ready_s: float, rows: Iterable[_Row]) -> float | None:
    worst = 0.0
    for row in rows:
        first_done = next(
            (
                t.fire.done_s
                for t in row.judged
                if t.outcome == "fired" and t.fire is not None and t.fire.started_s >= ready_s
            ),
            None,
        )
        if first_done is None:
            return None
        worst = max(worst, first_done - ready_s)
    return worst


# Failure sentences.


def _cause_text(row: VolumeVerdict, lag_bound_s: float) -> str:
    words = {
        "no_fire": "with no fire",
        "late": f"not done within the {lag_bound_s:g} s lag bound",
        "error": "ended in Error",
    }
    return ", ".join(f"{count} {words[cause]}" for cause, count in row.missed_causes.items() if count)


def _last_on_time_before(judged: Sequence[_Tick], t_s: float) -> str:
    dones = [
        (t.tick_s, t.fire.done_s)
        for t in judged
        if t.outcome == "fired" and t.tick_s < t_s and t.fire is not None and t.fire.done_s
    ]
    if not dones:
        return "no on-time fire before it"
    tick_s, done_s = dones[-1]
    return f"last on-time fire before it: tick {to_rfc3339(tick_s)}, done {to_rfc3339(done_s)}"


def _blind_text(missed: Sequence[float], ctx: _Context) -> str:
    overlapping = [
        blind
        for blind in ctx.blinds
        if any(blind.from_s <= t + ctx.lag_bound_s and t <= blind.to_s for t in missed)
    ]
    if not overlapping:
        return ""
    hit = sum(any(b.from_s <= t + ctx.lag_bound_s and t <= b.to_s for b in overlapping) for t in missed)
    shown = ", ".join(f"{b.resource} {to_rfc3339(b.from_s)} to {to_rfc3339(b.to_s)}" for b in overlapping[:3])
    more = f" and {len(overlapping) - 3} more" if len(overlapping) > 3 else ""
    return (
        f"; the recorder was blind during {hit} of them ({shown}{more}): still missed, "
        "the artifact would have been seen on re-list"
    )


def _volume_failures(job: ledger.Job, row: _Row, ctx: _Context) -> list[Failure]:
    verdict = row.verdict
    failures = []
    if verdict.missed:
        first = verdict.missed_ticks_s[0]
        plural = "s" if verdict.missed != 1 else ""
        late = (
            f"; {verdict.late_landed} of them may have fired late into the next tick's window "
            "(it holds two fires, and only the first counts for a tick)"
            if verdict.late_landed
            else ""
        )
        failures.append(
            Failure(
                job.name,
                verdict.volume,
                f"{verdict.missed} missed tick{plural} outside outages (first {to_rfc3339(first)}; "
                f"{_cause_text(verdict, ctx.lag_bound_s)}); "
                f"{_last_on_time_before(row.judged, first)}{late}"
                f"{_blind_text(verdict.missed_ticks_s, ctx)}",
            )
        )
    if verdict.fired_after_last_outage is False and (last := ctx.last_outage) is not None:
        failures.append(Failure(job.name, verdict.volume, _no_fire_after_text(last, ctx)))
    if verdict.errors_piled_up > job.retain:
        failures.append(Failure(job.name, verdict.volume, _piled_up_text(job, verdict)))
    return failures


def _piled_up_text(job: ledger.Job, row: VolumeVerdict) -> str:
    noun = _artifact_noun(job.task)
    cut_off = row.errors_left - row.errors_piled_up
    by = "a reboot" if cut_off == 1 else "reboots"
    return (
        f"{row.errors_piled_up} Error {noun} left at the end that no reboot cut off "
        f"({row.errors_left} left in all, {cut_off} cut off by {by}), more than retain {job.retain}: "
        # Why they failed (a stale lock, longhorn#7854; an unreachable target; …) is the diagnosis's
        # to say: the ledger alone cannot tell.
        "the retain cleanup skips them, so they pile up"
    )


def _no_fire_after_text(last: Outage, ctx: _Context) -> str:
    if math.isinf(last.end_s):
        return (
            f"did not fire after the last outage: node {last.node} never became ready "
            f"(reboot started {to_rfc3339(last.start_s)})"
        )
    if last.end_s >= ctx.window_end_s:
        return (
            f"no fire after the last outage could be seen: the run ended {to_rfc3339(ctx.window_end_s)}, "
            f"before that outage did (node {last.node}, ready + settle at {to_rfc3339(last.end_s)})"
        )
    return f"did not fire after the last outage (ended {to_rfc3339(last.end_s)})"


def _unjudged_recovery_note(rows: Sequence[_Row], ctx: _Context) -> str | None:
    """Say when an interrupted run left the recovery after its last outage unjudged."""
    last = ctx.last_outage
    unjudged = sum(row.verdict.fired_after_last_outage is None for row in rows)
    if last is None or not unjudged:
        return None
    if math.isinf(last.end_s):
        when = f"node {last.node} was not ready again"
    elif last.end_s >= ctx.window_end_s:
        when = f"the outage of node {last.node} ends {to_rfc3339(last.end_s)}, after the window"
    else:
        when = f"the outage of node {last.node} ended {to_rfc3339(last.end_s)}; later ticks are pending"
    return (
        f"the run was interrupted before a tick after the last outage could be judged ({when}): "
        f"recovery was not judged on {unjudged} job × volume rows"
    )


def _nowhere_failure(job: ledger.Job, job_ticks: _JobTicks, ctx: _Context) -> Failure | None:
    """A job with no volume row at all: fail it if ticks went by that a fire was due for."""
    judged = _judge_ticks(job_ticks, (), ctx)
    missed = [t.tick_s for t in judged if t.outcome == "missed" and not t.excused]
    if not missed:
        return None
    return Failure(
        job.name,
        None,
        f"fired on no volume: {len(missed)} ticks outside outages went by without a fire "
        f"(first {to_rfc3339(missed[0])}); list the volumes under test in the run record to get "
        "a row per volume",
    )


# The whole ledger.


def _group_fires(fires: Iterable[ledger.Fire]) -> dict[tuple[str, str], list[ledger.Fire]]:
    groups: dict[tuple[str, str], list[ledger.Fire]] = defaultdict(list)
    for fire in fires:
        groups[fire.job, fire.volume].append(fire)
    for group in groups.values():
        group.sort(key=operator.attrgetter("started_s"))
    return groups


def _gone_times(gones: Iterable[ledger.Gone]) -> dict[str, float]:
    """When each artifact was first seen deleted."""
    gone_s: dict[str, float] = {}
    for gone in gones:
        gone_s[gone.object] = min(gone.ts_s, gone_s.get(gone.object, math.inf))
    return gone_s


def _ledger_notes(led: ledger.Ledger, *, job_names: set[str]) -> list[str]:
    notes = []
    if led.truncated_tail:
        notes.append("the last line was cut off mid-write (the run was killed); it was skipped")
    if led.unknown_types:
        kinds = ", ".join(f"{kind} ({count})" for kind, count in sorted(led.unknown_types.items()))
        notes.append(f"skipped records of types this lhsoak does not know: {kinds}")
    strangers = sorted({fire.job for fire in led.fires} - job_names)
    if strangers:
        notes.append(f"fire records of jobs not in the run record were ignored: {', '.join(strangers)}")
    if led.end is None:
        notes.append("no end record: the window ends at the latest record")
    elif led.end.reason != "completed":
        notes.append(f"the run ended with reason {led.end.reason!r}")
    return notes


def analyse(led: ledger.Ledger) -> Verdict:
    """Judge a whole ledger; see the module docstring for the rules."""
    with ledger.gc_paused():
        return _analyse(led)


def _analyse(led: ledger.Ledger) -> Verdict:
    run = led.run
    window_end_s = max(led.end.ts_s if led.end is not None else led.last_ts_s, run.ts_s)
    reboots, notes = _pair_reboots(led.reboots, settle_s=run.settle_s, window_end_s=window_end_s)
    ctx = _Context(
        window_start_s=run.ts_s,
        window_end_s=window_end_s,
        lag_bound_s=run.lag_bound_s,
        outages=tuple(Outage(r.node, r.start_s, r.outage_end_s) for r in reboots),
        blinds=tuple(sorted(led.blinds, key=lambda blind: blind.from_s)),
        interrupted=led.end is not None and led.end.reason == "interrupted",
    )
    fires = _group_fires(led.latest_fires())
    gone_s = _gone_times(led.gones)
    jobs: list[JobVerdict] = []
    rows: list[_Row] = []
    failures: list[Failure] = []
    pending = 0
    for job in run.jobs:
        job_ticks = _job_ticks(job, ctx)
        names = set(run.volumes or ()) | {volume for (name, volume) in fires if name == job.name}
        job_rows = [
            _judge_volume(
                volume,
                job=job,
                job_ticks=job_ticks,
                fires=fires.get((job.name, volume), []),
                gone_s=gone_s,
                ctx=ctx,
            )
            for volume in sorted(names)
        ]
        job_failures = [f for row in job_rows for f in _volume_failures(job, row, ctx)]
        if not job_rows and (nowhere := _nowhere_failure(job, job_ticks, ctx)) is not None:
            job_failures.append(nowhere)
        pending += sum(row.verdict.pending for row in job_rows)
        rows.extend(job_rows)
        failures.extend(job_failures)
        jobs.append(
            JobVerdict(
                name=job.name,
                task=job.task,
                cron=job.cron,
                retain=job.retain,
                volumes=tuple(row.verdict for row in job_rows),
                passed=not job_failures,
            )
        )
    reboots = [
        dataclasses.replace(r, recovery_s=_recovery_s(r.ready_s, rows))
        if r.ready_s is not None and rows
        else r
        for r in reboots
    ]
    notes.extend(_ledger_notes(led, job_names={job.name for job in run.jobs}))
    if (unjudged := _unjudged_recovery_note(rows, ctx)) is not None:
        notes.append(unjudged)
    if pending:
        notes.append(
            f"{pending} tick{'s were' if pending != 1 else ' was'} too close to the window end to judge (pending)"
        )
    return Verdict(
        passed=not failures,
        run_id=run.run_id,
        window_start_s=run.ts_s,
        window_end_s=window_end_s,
        end_reason=led.end.reason if led.end is not None else None,
        lag_bound_s=run.lag_bound_s,
        settle_s=run.settle_s,
        jobs=tuple(jobs),
        reboots=tuple(reboots),
        outages=ctx.outages,
        blinds=ctx.blinds,
        failures=tuple(failures),
        notes=tuple(notes),
    )


# The human table.

INTERRUPTED_TEXT = "INTERRUPTED: the run was stopped before its verdict could be reached"
"""How an interrupted run with no failure is reported (the soak's headline says the same)."""

_COLUMN_KEY = (
    "columns (TICKS = FIRED + MISSED + MISSED-IN-OUTAGE + PENDING):",
    "- IN-OUTAGE: ticks due while an outage ran (excused, whatever became of them)",
    "- MISSED: missed ticks outside outages (they fail a job)",
    "- MISSED-IN-OUTAGE: missed ticks excused by an outage",
    "- ERRORS-LEFT: every Error artifact never deleted",
    "- PILED-UP: those no reboot cut off (more than retain fail a job)",
)


def _fmt_s(value: float | None) -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return "never"
    return f"{value:.1f}"


def _lag_text(row: VolumeVerdict) -> str:
    return "/".join(_fmt_s(v) for v in (row.lag_p50_s, row.lag_p95_s, row.lag_max_s))


def _table(header: Sequence[str], body: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(cell) for cell in column) for column in zip(header, *body, strict=True)]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(line, widths, strict=True)).rstrip()
        for line in (header, *body)
    ]


def render_table(v: Verdict) -> str:
    """A short human report: per job × volume figures, reboots, failures, notes, the verdict."""
    lines = [
        f"run {v.run_id}: {to_rfc3339(v.window_start_s)} → {to_rfc3339(v.window_end_s)} "
        f"({v.end_reason or 'no end record'}), lag bound {v.lag_bound_s:g} s, "
        f"settle {v.settle_s:g} s",
        "",
    ]
    header = ("JOB", "VOLUME", "TICKS", "IN-OUTAGE", "FIRED", "MISSED", "MISSED-IN-OUTAGE", "PENDING",
              "LAG p50/p95/max s", "STALENESS s", "OVER-RETAIN", "ERRORS-LEFT", "PILED-UP",
              "PASSED")  # fmt: skip
    body = [
        (job.name, row.volume, str(row.ticks), str(row.excused), str(row.fired), str(row.missed),
         str(row.excused_missed), str(row.pending), _lag_text(row), _fmt_s(row.max_staleness_s),
         str(row.retain_violations), str(row.errors_left), str(row.errors_piled_up),
         "yes" if row.passed else "NO")
        for job in v.jobs
        for row in job.volumes
    ]  # fmt: skip
    lines.extend([*_table(header, body), "", *_COLUMN_KEY] if body else ["(no job fired on any volume)"])
    if v.reboots:
        lines += ["", "reboots:"]
        lines += _table(
            ("NODE", "START", "READY", "DOWNTIME s", "RECOVERY s"),
            [
                (
                    r.node,
                    to_rfc3339(r.start_s),
                    _ts_or_none(r.ready_s) or ("failed" if r.failed else "never"),
                    _fmt_s(r.downtime_s),
                    _fmt_s(r.recovery_s),
                )
                for r in v.reboots
            ],
        )
    if v.failures:
        lines += ["", "failures:"]
        lines += [f"- {f.job} on {f.volume or 'every volume'}: {f.reason}" for f in v.failures]
    if v.notes:
        lines += ["", "notes:"]
        lines += [f"- {note}" for note in v.notes]
    lines += ["", _outcome_line(v)]
    return "\n".join(lines) + "\n"


def _outcome_line(v: Verdict) -> str:
    if v.outcome == "passed":
        return "PASSED"
    if v.outcome == "interrupted":
        return INTERRUPTED_TEXT
    plural = "" if len(v.failures) == 1 else "s"
    then = " before the run was INTERRUPTED" if v.interrupted else ""
    return f"FAILED ({len(v.failures)} failure{plural}){then}"
