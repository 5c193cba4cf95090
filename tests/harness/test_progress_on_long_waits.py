"""Long waits say, now and then, what they wait for, how long is left and what was seen so far.

A real cluster's schedule (`*/2 * * * *`) makes the soak wait minutes for a tick; these are the pieces
that word and pace those lines, driven with a hand-made clock and hand-made fires.
"""

from __future__ import annotations

import datetime as dt

from lhsoak import artifacts, config, progress

SNAP = config.JobSpec("soak-snap", "snapshot", "*/2 * * * *")
BACKUP = config.JobSpec("soak-backup", "backup", "*/2 * * * *")
VOLUMES = ("vol-1", "vol-2")
TICK_S = 1_800_000_000.0
"""A tick of `*/2 * * * *` (a whole even minute, in epoch seconds)."""


def _hms(epoch_s: float) -> str:
    return dt.datetime.fromtimestamp(epoch_s).strftime("%H:%M:%S")


def _fire(job: str, volume: str, *, started: float, done: float | None) -> artifacts.Artifact:
    state = "Completed" if done is not None else "InProgress"
    return artifacts.Artifact(job, volume, f"{job}-{volume}-{started:.0f}", started, done, state)


class _Clock:
    """Time that passes only when the wait pauses."""

    def __init__(self, now_s: float) -> None:
        self.now_s = now_s
        self.pauses: list[float] = []

    def __call__(self) -> float:
        return self.now_s

    def pause(self, seconds: float) -> None:
        self.pauses.append(seconds)
        self.now_s += seconds


def test_a_long_wait_tells_how_long_is_left_after_every_interval() -> None:
    clock = _Clock(1000.0)
    told: list[float] = []

    progress.wait_until(1065.0, clock=clock, pause=clock.pause, every_s=20.0, tell=told.append)

    assert told == [45.0, 25.0, 5.0]
    assert clock.pauses == [20.0, 20.0, 20.0, 5.0]
    assert clock() == 1065.0


def test_a_wait_shorter_than_the_interval_tells_nothing() -> None:
    clock = _Clock(1000.0)
    told: list[float] = []

    progress.wait_until(1008.0, clock=clock, pause=clock.pause, every_s=20.0, tell=told.append)

    assert told == []
    assert clock() == 1008.0


def test_a_wait_woken_early_waits_on_to_its_end() -> None:
    clock = _Clock(1000.0)
    told: list[float] = []

    def wakes_early(seconds: float) -> None:
        clock.pause(min(seconds, 3.0))

    progress.wait_until(1010.0, clock=clock, pause=wakes_early, every_s=20.0, tell=told.append)

    assert clock() == 1010.0
    assert told == [7.0, 4.0, 1.0]


def test_before_the_first_tick_the_recovery_wait_names_it_and_how_soon_it_comes() -> None:
    status = progress.recovery_status(
        jobs=(SNAP, BACKUP), volumes=VOLUMES, fires=(), after_s=TICK_S - 30, now_s=TICK_S - 42
    )

    first = f"first tick {_hms(TICK_S)} (in 42 s), seen so far: nothing"
    assert status == f"soak-snap: {first}; soak-backup: {first}"


def test_after_the_first_tick_the_recovery_wait_says_where_each_job_is_done_or_still_running() -> None:
    fires = [
        _fire("soak-snap", "vol-1", started=TICK_S + 1, done=TICK_S + 2),
        _fire("soak-snap", "vol-2", started=TICK_S + 1, done=TICK_S + 3),
        _fire("soak-backup", "vol-1", started=TICK_S + 1, done=TICK_S + 20),
        _fire("soak-backup", "vol-2", started=TICK_S + 2, done=None),
        # Before the step's reboot: does not count as its recovery.
        _fire("soak-backup", "vol-2", started=TICK_S - 119, done=TICK_S - 100),
    ]

    status = progress.recovery_status(
        jobs=(SNAP, BACKUP), volumes=VOLUMES, fires=fires, after_s=TICK_S - 30, now_s=TICK_S + 25
    )

    assert status == (
        "soak-snap done on every volume; "
        f"soak-backup: first tick {_hms(TICK_S)} (25 s ago), seen so far: done on 1 of 2 volumes, running on 1"
    )


def test_a_tick_at_the_very_start_of_the_recovery_wait_is_its_first() -> None:
    status = progress.recovery_status(
        jobs=(SNAP,), volumes=VOLUMES, fires=(), after_s=TICK_S, now_s=TICK_S - 5
    )

    assert f"first tick {_hms(TICK_S)} (in 5 s)" in status


def test_watching_more_ticks_counts_the_fires_since_it_began_and_names_the_next_tick() -> None:
    fires = [
        _fire("soak-snap", "vol-1", started=TICK_S + 1, done=TICK_S + 2),
        _fire("soak-snap", "vol-2", started=TICK_S + 1, done=TICK_S + 2),
        _fire("soak-backup", "vol-1", started=TICK_S + 1, done=None),
        _fire("soak-snap", "vol-1", started=TICK_S - 119, done=TICK_S - 118),
    ]

    status = progress.watch_status(
        jobs=(SNAP, BACKUP), fires=fires, since_s=TICK_S - 10, now_s=TICK_S + 30, missed=0
    )

    next_tick = _hms(TICK_S + 120)
    assert status == (
        f"soak-snap: 2 fires done, next tick {next_tick}; "
        f"soak-backup: 0 fires done, next tick {next_tick}; missed ticks: none"
    )


def test_watching_more_ticks_counts_the_ticks_missed_meanwhile() -> None:
    status = progress.watch_status(jobs=(BACKUP,), fires=(), since_s=TICK_S, now_s=TICK_S + 5, missed=4)

    assert status.endswith("; missed ticks: 4")
