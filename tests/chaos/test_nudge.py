"""Nudge: a probe's pause ends when the cluster says the node is back, not at the next poll."""

from __future__ import annotations

import threading
import time

from lhsoak.chaos import driver
from lhsoak.chaos.driver import Done, DriverOptions, NotYet

LONG_PAUSE_S = 60.0
"""A pause no test may sit out: if one does, the nudge did not work (and the test times out)."""


def _sleep_in_thread(nudge: driver.Nudge, seconds: float) -> tuple[threading.Thread, threading.Event]:
    woke = threading.Event()

    def pause() -> None:
        nudge.sleep(seconds)
        woke.set()

    thread = threading.Thread(target=pause, daemon=True)
    thread.start()
    return thread, woke


def test_a_nudge_ends_every_pause_in_progress() -> None:
    nudge = driver.Nudge()
    sleepers = [_sleep_in_thread(nudge, LONG_PAUSE_S) for _ in range(3)]
    started = time.monotonic()
    # Nudge until all woke: a thread may not be asleep yet when the first nudge comes.
    while not all(woke.is_set() for _thread, woke in sleepers):
        assert time.monotonic() - started < 10, "sleepers still paused 10 s after the first nudge"
        nudge.nudge()
        for _thread, woke in sleepers:
            woke.wait(0.05)
    assert time.monotonic() - started < LONG_PAUSE_S / 2


def test_without_a_nudge_the_pause_lasts_its_time() -> None:
    nudge = driver.Nudge()
    started = time.monotonic()
    nudge.sleep(0.2)
    assert time.monotonic() - started >= 0.2


def test_a_nudge_while_probing_ends_the_next_pause_at_once_and_only_that_one() -> None:
    nudge = driver.Nudge()
    nudge.sleep(0)  # this thread has looked once
    nudge.nudge()  # news while it probes
    started = time.monotonic()
    nudge.sleep(LONG_PAUSE_S)
    assert time.monotonic() - started < LONG_PAUSE_S / 2
    started = time.monotonic()
    nudge.sleep(0.2)  # the news was used up: this pause lasts
    assert time.monotonic() - started >= 0.2


def test_wait_for_probes_again_as_soon_as_nudged() -> None:
    nudge = driver.Nudge()
    options = DriverOptions(poll_interval_s=LONG_PAUSE_S, sleep=nudge.sleep)
    looks: list[float] = []
    back = threading.Event()

    def probe(_remaining_s: float) -> Done[str] | NotYet:
        looks.append(time.monotonic())
        return Done("new-boot", seen="ssh answers") if back.is_set() else NotYet("ssh: refused")

    result: list[str] = []
    thread = threading.Thread(
        target=lambda: result.append(
            driver.wait_for(probe, node="n1", awaiting="ssh", deadline_s=3 * LONG_PAUSE_S, options=options)
        ),
        daemon=True,
    )
    thread.start()
    while not looks:
        thread.join(0.01)
    back.set()
    nudged_at = time.monotonic()
    nudge.nudge()
    thread.join(LONG_PAUSE_S / 2)
    assert result == ["new-boot"], "wait_for did not probe again after the nudge"
    assert looks[-1] - nudged_at < LONG_PAUSE_S / 2
