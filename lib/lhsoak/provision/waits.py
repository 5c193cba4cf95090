"""Waiting for the cluster: poll a probe until it says ready, with a deadline, a progress line every
so often, and an error naming what was awaited and what was last seen."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import tenacity

from lhsoak import cluster
from lhsoak.provision.process import ProvisionError


@dataclass(frozen=True)
class Seen:
    """One look at the cluster: is the awaited state there, and what was seen instead."""

    ready: bool
    """True when the awaited state is reached."""
    detail: str
    """What was seen, in a few words ("2/3 pods ready")."""


class WaitTimeout(ProvisionError):
    """The awaited state did not come within the deadline."""


@dataclass(frozen=True)
class Pace:
    """How often to look and to report while waiting."""

    poll_s: float = 5.0
    """Seconds between two looks; default 5."""
    progress_every_s: float = 30.0
    """Seconds between two progress lines; default 30."""


def until(
    probe: Callable[[], Seen],
    *,
    what: str,
    deadline_s: float,
    say: Callable[[str], None],
    pace: Pace = Pace(),
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Seen:
    """Poll `probe` until it is ready; WaitTimeout after `deadline_s` naming `what` and the last sight.

    An API error (the server restarting, a connection reset) counts as not ready yet, not as failure.
    """
    started = clock()
    last_report = [started]
    last = [Seen(False, "nothing seen yet")]

    def look() -> Seen:
        try:
            last[0] = probe()
        except cluster.ClusterError as error:
            last[0] = Seen(False, f"API error: {error}")
        return last[0]

    def report(state: tenacity.RetryCallState) -> None:
        now = clock()
        if now - last_report[0] >= pace.progress_every_s:
            last_report[0] = now
            say(f"waiting for {what}: {last[0].detail} ({now - started:.0f}s of {deadline_s:g}s)")

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_delay(deadline_s),
        wait=tenacity.wait_fixed(pace.poll_s),
        retry=tenacity.retry_if_result(lambda seen: not seen.ready),
        before_sleep=report,
        sleep=sleep,
        retry_error_callback=lambda _state: None,
    )
    seen = retrying(look)
    if seen is None:
        raise WaitTimeout(f"{what}: not reached within {deadline_s:g}s; last seen: {last[0].detail}")
    say(f"{what}: {seen.detail} ({clock() - started:.0f}s)")
    return seen
