"""Waits: deadline, progress lines, the last sight in the error, API errors tolerated."""

from __future__ import annotations

import itertools

import pytest

from lhsoak import cluster
from lhsoak.provision.waits import Pace, Seen, WaitTimeout, until

FAST = Pace(poll_s=0.01, progress_every_s=0.0)


def test_returns_the_first_ready_sight() -> None:
    sights = iter(
        [Seen(False, "0/3 pods ready"), Seen(False, "2/3 pods ready"), Seen(True, "3/3 pods ready")]
    )
    said: list[str] = []

    seen = until(lambda: next(sights), what="the manager", deadline_s=5, say=said.append, pace=FAST)

    assert seen == Seen(True, "3/3 pods ready")
    assert said[0].startswith("waiting for the manager: 0/3 pods ready (")
    assert said[1].startswith("waiting for the manager: 2/3 pods ready (")
    assert said[-1].startswith("the manager: 3/3 pods ready (")


def test_a_deadline_names_what_was_awaited_and_what_was_seen_last() -> None:
    counter = itertools.count(1)

    with pytest.raises(WaitTimeout) as caught:
        until(
            lambda: Seen(False, f"look {next(counter)}: 1/3 pods ready"),
            what="longhorn-manager on every node",
            deadline_s=0.2,
            say=lambda _text: None,
            pace=FAST,
        )

    message = str(caught.value)
    assert message.startswith("longhorn-manager on every node: not reached within 0.2s; last seen: look ")
    assert message.endswith(": 1/3 pods ready")


def test_an_api_error_is_a_sight_not_a_failure() -> None:
    answers = iter([cluster.UnreachableError("GET /api/v1/nodes: connection refused"), Seen(True, "ok")])

    def probe() -> Seen:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    said: list[str] = []
    assert until(probe, what="nodes", deadline_s=5, say=said.append, pace=FAST).ready
    assert said[0].startswith("waiting for nodes: API error: GET /api/v1/nodes: connection refused")


def test_progress_is_throttled_to_the_pace() -> None:
    sights = iter([Seen(False, "a")] * 5 + [Seen(True, "done")])
    said: list[str] = []

    until(
        lambda: next(sights),
        what="x",
        deadline_s=5,
        say=said.append,
        pace=Pace(poll_s=0.0, progress_every_s=60),
    )

    assert said == [said[-1]]  # no progress line within a minute: only the final one
    assert said[-1].startswith("x: done (")
