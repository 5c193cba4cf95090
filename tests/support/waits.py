"""Polling waits for tests, each with a deadline and a message saying what was awaited."""

from __future__ import annotations

from collections.abc import Callable

import tenacity

DEADLINE_S = 10.0
"""How long a test waits for a state by default, in seconds."""


def wait_until(
    condition: Callable[[], bool], *, what: str, deadline_s: float = DEADLINE_S, interval_s: float = 0.02
) -> None:
    """Poll `condition` until it holds; AssertionError naming `what` after `deadline_s`."""
    for attempt in tenacity.Retrying(
        stop=tenacity.stop_after_delay(deadline_s), wait=tenacity.wait_fixed(interval_s), reraise=True
    ):
        with attempt:
            assert condition(), f"waited {deadline_s}s for {what}"
