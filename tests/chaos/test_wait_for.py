"""wait_for: polls on an injected clock, logs every attempt, stops at the deadline with what it saw."""

from __future__ import annotations

import logging

import pytest

from lhsoak import errors
from lhsoak.chaos import driver
from lhsoak.chaos.driver import Done, DriverOptions, NotYet


class FakeTime:
    """A clock that only moves when slept on, and probes that cost time."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


def options_on(fake: FakeTime, *, poll_interval_s: float = 1.0) -> DriverOptions:
    return DriverOptions(poll_interval_s=poll_interval_s, clock=fake.clock, sleep=fake.sleep)


def test_returns_the_value_once_done_and_logs_each_attempt(
    fake: FakeTime, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="lhsoak.chaos.driver")
    answers = iter([NotYet("refused"), NotYet("refused"), Done("b00t", seen="new boot id b00t")])

    value = driver.wait_for(
        lambda _left: next(answers), node="w-1", awaiting="ssh back", deadline_s=10, options=options_on(fake)
    )

    assert value == "b00t"
    assert fake.sleeps == [1.0, 1.0]
    assert [r.getMessage() for r in caplog.records] == [
        "node w-1: attempt 1/11: ssh back → refused",
        "node w-1: attempt 2/11: ssh back → refused",
        "node w-1: attempt 3/11: ssh back → new boot id b00t",
    ]


def test_deadline_raises_the_given_failure_with_what_was_seen(fake: FakeTime) -> None:
    seen = iter(["boot id abc", "boot id abc", "boot id abc", "refused"] + ["boot id abc"] * 10)

    with pytest.raises(driver.RebootNotObserved) as caught:
        driver.wait_for(
            lambda _left: NotYet(next(seen)),
            node="w-1",
            awaiting="ssh to stop answering",
            deadline_s=3.5,
            options=options_on(fake),
            failure=driver.RebootNotObserved,
        )

    error = caught.value
    assert error.node == "w-1"
    assert error.seen == ("boot id abc (×3)", "refused", "boot id abc")
    assert str(error) == (
        "node w-1: ssh to stop answering: not seen within 3.5s (5 attempts); "
        "seen: boot id abc (×3); refused; boot id abc"
    )
    assert fake.now == pytest.approx(103.5), "the last sleep is cut to the deadline"


def test_probe_is_told_the_time_left(fake: FakeTime) -> None:
    lefts: list[float] = []

    def probe(left_s: float) -> Done[None] | NotYet:
        lefts.append(left_s)
        return NotYet("no")

    with pytest.raises(driver.DriverError):
        driver.wait_for(probe, node="n", awaiting="x", deadline_s=2.5, options=options_on(fake))
    assert lefts == [2.5, 1.5, 0.5, 0.0]


def test_a_zero_deadline_still_probes_once(fake: FakeTime) -> None:
    calls: list[float] = []

    def probe(left_s: float) -> Done[str] | NotYet:
        calls.append(left_s)
        return Done("up", seen="up")

    assert driver.wait_for(probe, node="n", awaiting="x", deadline_s=0, options=options_on(fake)) == "up"
    assert calls == [0.0]


def test_slow_probes_end_at_the_deadline_not_the_attempt_count(fake: FakeTime) -> None:
    def slow_probe(_left_s: float) -> Done[None] | NotYet:
        fake.now += 4.0  # e.g. an ssh connect timing out
        return NotYet("timed out")

    with pytest.raises(driver.DriverError, match=r"not seen within 10s \(3 attempts\)"):
        driver.wait_for(slow_probe, node="n", awaiting="x", deadline_s=10, options=options_on(fake))


def test_an_unexpected_probe_error_is_not_retried(fake: FakeTime) -> None:
    calls = 0

    def probe(_left_s: float) -> Done[None] | NotYet:
        nonlocal calls
        calls += 1
        raise driver.AccessError("host key changed", node="n")

    with pytest.raises(driver.AccessError, match="host key changed"):
        driver.wait_for(probe, node="n", awaiting="x", deadline_s=10, options=options_on(fake))
    assert calls == 1


def test_collapse_keeps_the_latest_entries() -> None:
    history = ["a", "b", "b", "c", "d", "e", "f", "g", "g", "g"]
    assert driver.collapse(history, keep=3) == ["… 4 earlier", "e", "f", "g (×3)"]


def test_options_reject_non_positive_durations() -> None:
    with pytest.raises(errors.UsageError, match="poll_interval_s must be > 0, got 0"):
        DriverOptions(poll_interval_s=0)
