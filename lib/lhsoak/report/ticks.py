"""Every tick of every job on every volume, with its fire, its lag and its outcome: the report's rows.

The verdict keeps its per-tick judgement private and publishes counts; the report needs the ticks
themselves (which were missed or late and by how much). `rows` judges them by the rules of
`lhsoak.verdict` (see its module docstring), from the same ledger and the verdict's window, outages
and volume rows; tests/report/test_ticks_agree_with_the_verdict.py checks, on generated runs, that
every count matches the verdict's, so a change of rule there fails here until both agree. (Once the
verdict publishes its per-tick outcomes, this module should become a view of them.)
"""

from __future__ import annotations

import bisect
import dataclasses
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

from lhsoak import ledger, schedule, verdict

__all__ = ["MissCause", "Outcome", "TickRow", "rows"]

Outcome = Literal["fired", "missed", "pending"]
MissCause = Literal["no_fire", "late", "error"]


@dataclasses.dataclass(frozen=True)
class TickRow:
    """One cron tick of one job on one volume and what became of it."""

    job: str
    """The recurring job."""
    volume: str
    """The volume."""
    tick_s: float
    """When the tick was due (epoch s)."""
    outcome: Outcome
    """fired (done within the lag bound), missed, or pending (too close to the run's end)."""
    cause: MissCause | None
    """Why a missed tick was missed: no fire, done too late (or never), or Error."""
    excused_by: tuple[str, ...]
    """Nodes whose outage overlaps the tick's due time (empty: the tick counts)."""
    fire_object: str | None
    """The artifact that served the tick (the first one started in its window)."""
    fire_state: str | None
    """That artifact's latest state."""
    started_s: float | None
    """When the artifact was created (epoch s)."""
    done_s: float | None
    """When it became usable (epoch s); None while it was not."""
    lag_s: float | None
    """done − tick (s); None without a done fire."""
    window_fires: int
    """Fires started in [tick, next tick): more than one hints at a late fire of the tick before."""

    @property
    def excused(self) -> bool:
        """The tick lies in an outage window, so missing it does not fail the job."""
        return bool(self.excused_by)

    @property
    def counts(self) -> bool:
        """A missed tick that fails the job."""
        return self.outcome == "missed" and not self.excused


def rows(led: ledger.Ledger, result: verdict.Verdict) -> list[TickRow]:
    """Every tick of every job × volume row of `result`, in job, volume, time order."""
    fires = _fires_by_job_volume(led.latest_fires())
    known = {job.name: job for job in led.run.jobs}
    judged: list[TickRow] = []
    for job_verdict in result.jobs:
        job = known.get(job_verdict.name)
        if job is None:
            continue
        ticks = schedule.parse(job.cron).ticks(result.window_start_s, result.window_end_s)
        if not ticks:
            continue
        nexts = [*ticks[1:], schedule.parse(job.cron).next_after(ticks[-1])]
        excused_by = [_outage_nodes(tick, result.outages, lag_bound_s=result.lag_bound_s) for tick in ticks]
        for volume in job_verdict.volumes:
            volume_fires = fires.get((job.name, volume.volume), [])
            judged += _judge(
                job.name,
                volume.volume,
                ticks=list(zip(ticks, nexts, excused_by, strict=True)),
                fires=volume_fires,
                result=result,
            )
    return judged


def _fires_by_job_volume(fires: Iterable[ledger.Fire]) -> Mapping[tuple[str, str], list[ledger.Fire]]:
    grouped: dict[tuple[str, str], list[ledger.Fire]] = defaultdict(list)
    for fire in fires:
        grouped[fire.job, fire.volume].append(fire)
    for group in grouped.values():
        group.sort(key=lambda fire: fire.started_s)
    return grouped


def _outage_nodes(tick_s: float, outages: Iterable[verdict.Outage], *, lag_bound_s: float) -> tuple[str, ...]:
    """Nodes whose outage overlaps [tick, tick + lag bound]: the tick's work was due while they were out."""
    nodes = {
        outage.node for outage in outages if outage.start_s <= tick_s + lag_bound_s and tick_s <= outage.end_s
    }
    return tuple(sorted(nodes))


def _nodes_excusing_error(tick_s: float, fire: ledger.Fire, result: verdict.Verdict) -> tuple[str, ...]:
    """Of the outages over the tick's due time, those that may have caused its Error: as the verdict
    rules, a tick whose artifact was already recorded in Error before a reboot began is not excused
    by that reboot."""
    nodes = {
        outage.node
        for outage in result.outages
        if outage.start_s <= tick_s + result.lag_bound_s
        and tick_s <= outage.end_s
        and (outage.start_s <= tick_s or fire.ts_s >= outage.start_s)
    }
    return tuple(sorted(nodes))


def _judge(
    job: str,
    volume: str,
    *,
    ticks: Sequence[tuple[float, float, tuple[str, ...]]],
    fires: Sequence[ledger.Fire],
    result: verdict.Verdict,
) -> list[TickRow]:
    starts = [fire.started_s for fire in fires]
    judged = []
    for tick_s, next_s, excused_by in ticks:
        first = bisect.bisect_left(starts, tick_s)
        past = bisect.bisect_left(starts, next_s, lo=first)
        fire = fires[first] if past > first else None
        outcome, cause, lag_s = _outcome(tick_s, next_s, fire, result)
        if cause == "error" and fire is not None and excused_by:
            excused_by = _nodes_excusing_error(tick_s, fire, result)
        judged.append(
            TickRow(
                job=job,
                volume=volume,
                tick_s=tick_s,
                outcome=outcome,
                cause=cause,
                excused_by=excused_by,
                fire_object=fire.object if fire else None,
                fire_state=fire.state if fire else None,
                started_s=fire.started_s if fire else None,
                done_s=fire.done_s if fire else None,
                lag_s=lag_s,
                window_fires=past - first,
            )
        )
    return judged


def _outcome(
    tick_s: float, next_s: float, fire: ledger.Fire | None, result: verdict.Verdict
) -> tuple[Outcome, MissCause | None, float | None]:
    deadline_s = tick_s + result.lag_bound_s
    end_s = result.window_end_s
    if fire is None:
        decided = end_s >= next_s or end_s > deadline_s
        return ("missed", "no_fire", None) if decided else ("pending", None, None)
    if fire.state == "Error":
        return "missed", "error", None
    if fire.done_s is None:
        return ("missed", "late", None) if end_s > deadline_s else ("pending", None, None)
    lag_s = fire.done_s - tick_s
    return ("fired", None, lag_s) if lag_s <= result.lag_bound_s else ("missed", "late", lag_s)
