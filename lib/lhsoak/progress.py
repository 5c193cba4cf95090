"""Progress of the soak's long waits: every `EVERY_S` seconds, what is awaited, what was seen so
far and how long is left, in the wall-clock time of the progress lines' own stamps."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Sequence

from lhsoak import artifacts, config, schedule

EVERY_S = 20.0
"""Seconds between progress lines while a wait goes on (a wait shorter than this prints none)."""


def clock_time(epoch_s: float) -> str:
    """Local wall-clock time, as the progress lines' own stamps show it."""
    return dt.datetime.fromtimestamp(epoch_s).strftime("%H:%M:%S")


def in_or_ago(delta_s: float) -> str:
    return f"in {delta_s:.0f} s" if delta_s >= 0 else f"{-delta_s:.0f} s ago"


def wait_until(
    epoch_s: float,
    *,
    clock: Callable[[], float],
    pause: Callable[[float], object],
    every_s: float,
    tell: Callable[[float], None],
) -> None:
    """Wait until `clock()` reaches `epoch_s` in pauses of at most `every_s`, calling `tell(left_s)`
    after each pause that did not end the wait (a wait shorter than `every_s` tells nothing)."""
    while (left_s := epoch_s - clock()) > 0:
        pause(min(left_s, every_s))
        left_s = epoch_s - clock()
        if left_s > 0:
            tell(left_s)


def recovery_status(
    *,
    jobs: Sequence[config.JobSpec],
    volumes: Sequence[str],
    fires: Iterable[artifacts.Artifact],
    after_s: float,
    now_s: float,
) -> str:
    """What a wait for every job's first fire after `after_s` has seen by `now_s`, job by job:
    when that tick is (or was) and on how many volumes it is done or still running."""
    fresh = [fire for fire in fires if fire.started >= after_s and fire.volume in volumes]
    parts = []
    for job in jobs:
        done = {fire.volume for fire in fresh if fire.job == job.name and fire.done is not None}
        if len(done) == len(volumes):
            parts.append(f"{job.name} done on every volume")
            continue
        running = {fire.volume for fire in fresh if fire.job == job.name and fire.done is None} - done
        # Ticks fall on whole seconds: the first one counted may be at `after_s` itself.
        first_s = schedule.parse(job.cron).next_after(after_s - 0.001)
        seen = [f"done on {len(done)} of {len(volumes)} volumes"] if done else []
        seen += [f"running on {len(running)}"] if running else []
        parts.append(
            f"{job.name}: first tick {clock_time(first_s)} ({in_or_ago(first_s - now_s)}), "
            f"seen so far: {', '.join(seen) or 'nothing'}"
        )
    return "; ".join(parts)


def watch_status(
    *,
    jobs: Sequence[config.JobSpec],
    fires: Iterable[artifacts.Artifact],
    since_s: float,
    now_s: float,
    missed: int,
) -> str:
    """What watching more ticks has seen by `now_s`: fires done since `since_s` per job, each
    job's next tick, and the ticks missed meanwhile."""
    fires = list(fires)
    parts = []
    for job in jobs:
        done = sum(1 for f in fires if f.job == job.name and f.done is not None and f.started >= since_s)
        next_s = schedule.parse(job.cron).next_after(now_s)
        parts.append(
            f"{job.name}: {done} fire{'' if done == 1 else 's'} done, next tick {clock_time(next_s)}"
        )
    return "; ".join(parts) + f"; missed ticks: {missed or 'none'}"
