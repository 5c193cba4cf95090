"""Live tick checks: notice a missed tick while the soak runs, one lag bound after the tick.

The verdict engine decides at the end over the whole ledger; this is the same rule applied as time passes,
so a stalled job fails the running step within a period plus the lag bound instead of at the end of a
long soak. `judge_tick` is pure; `TickMonitor` is the thread that calls it at the right moments.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from lhsoak import artifacts, config, schedule

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outage:
    """A node outage as the soak knows it so far: `end_s` None while the node is not Ready again."""

    node: str
    start_s: float
    end_s: float | None


@dataclass(frozen=True)
class Miss:
    """A tick of one job on one volume that got no usable artifact within the lag bound."""

    job: str
    volume: str
    tick_s: float
    reason: str


def excused(tick_s: float, outages: Iterable[Outage], *, settle_s: float, lag_bound_s: float) -> bool:
    """The verdict's rule: a tick may be missed when an outage window (start to Ready + settle)
    overlaps the time its work was due, [tick, tick + lag bound]."""
    return any(
        outage.start_s <= tick_s + lag_bound_s and (outage.end_s is None or tick_s <= outage.end_s + settle_s)
        for outage in outages
    )


def judge_tick(
    *,
    job: str,
    volume: str,
    tick_s: float,
    next_tick_s: float,
    fires: Iterable[artifacts.Artifact],
    lag_bound_s: float,
) -> Miss | None:
    """The verdict's rule for one tick: the first artifact started in [tick, next tick) must be usable in time."""
    candidates = sorted(
        (
            fire
            for fire in fires
            if fire.job == job and fire.volume == volume and tick_s <= fire.started < next_tick_s
        ),
        key=lambda fire: fire.started,
    )
    if not candidates:
        return Miss(job, volume, tick_s, "nothing was started for this tick")
    first = candidates[0]
    if first.state == "Error":
        return Miss(job, volume, tick_s, f"{first.object} ended in Error: {first.error or 'no message'}")
    if first.done is None or first.done - tick_s > lag_bound_s:
        return Miss(
            job, volume, tick_s, f"{first.object} not usable within {lag_bound_s:.0f}s (state {first.state})"
        )
    return None


class TickMonitor:
    """Checks every tick of every job × volume one lag bound after it and reports misses as they happen."""

    def __init__(
        self,
        *,
        jobs: Sequence[config.JobSpec],
        volumes: Sequence[str],
        fires: Callable[[], Iterable[artifacts.Artifact]],
        outages: Callable[[], Sequence[Outage]],
        lag_bound_s: float,
        settle_s: float,
        on_miss: Callable[[Miss], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._schedules: Mapping[str, schedule.Schedule] = {
            job.name: schedule.parse(job.cron) for job in jobs
        }
        self._volumes = list(volumes)
        self._fires = fires
        self._outages = outages
        self._lag_bound_s = lag_bound_s
        self._settle_s = settle_s
        self._on_miss = on_miss
        self._clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.misses: list[Miss] = []
        self.checked = 0

    def start(self, *, from_s: float) -> None:
        self._thread = threading.Thread(target=self._run, args=(from_s,), name="tick-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self, from_s: float) -> None:
        pending = {name: sched.next_after(from_s) for name, sched in self._schedules.items()}
        while not self._stop.is_set():
            job, tick = min(pending.items(), key=lambda item: item[1])
            check_at = tick + self._lag_bound_s
            # A timer, not a poll: woken only to judge a tick whose lag bound has just run out.
            if self._stop.wait(timeout=max(0.0, check_at - self._clock())):
                return
            next_tick = self._schedules[job].next_after(tick)
            pending[job] = next_tick
            try:
                self._judge(job, tick, next_tick)
            except Exception:
                # One bad judgement must not end live detection for the rest of the soak.
                log.exception("tick monitor: judging %s at %s failed", job, tick)

    def _judge(self, job: str, tick: float, next_tick: float) -> None:
        if excused(tick, self._outages(), settle_s=self._settle_s, lag_bound_s=self._lag_bound_s):
            return
        fires = list(self._fires())
        for volume in self._volumes:
            self.checked += 1
            miss = judge_tick(
                job=job,
                volume=volume,
                tick_s=tick,
                next_tick_s=next_tick,
                fires=fires,
                lag_bound_s=self._lag_bound_s,
            )
            if miss is not None:
                self.misses.append(miss)
                self._on_miss(miss)
