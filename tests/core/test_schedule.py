"""Cron schedules: robfig's grammar, croniter's ticks, Longhorn's 5-field rule."""

from __future__ import annotations

import itertools
import time

import pytest
from croniter import croniter
from hypothesis import given, settings
from hypothesis import strategies as st

from lhsoak import schedule, timestamps

T0 = timestamps.parse_rfc3339("2026-11-27T07:00:30Z")


def _croniter_ticks(expr: str, start_s: float, end_s: float, *, seconds: bool = False) -> list[float]:
    iterator = croniter(expr, start_s - 1, ret_type=float, second_at_beginning=seconds)
    ticks = itertools.takewhile(lambda t: t < end_s, iter(lambda: iterator.get_next(float), None))
    return [t for t in ticks if t >= start_s]


def test_two_minute_cron_ticks_every_even_minute_in_a_half_open_window() -> None:
    every_two = schedule.parse("*/2 * * * *")
    ticks = every_two.ticks(T0, T0 + 3600)
    assert len(ticks) == 30
    assert ticks[0] == timestamps.parse_rfc3339("2026-11-27T07:02:00Z")
    assert ticks[-1] == timestamps.parse_rfc3339("2026-11-27T08:00:00Z")
    on_tick = ticks[0]
    assert every_two.ticks(on_tick, on_tick + 120) == [on_tick]  # start included, end excluded
    assert every_two.period_s == 120
    assert not every_two.has_seconds


def test_six_fields_read_seconds_first() -> None:
    every_ten_s = schedule.parse("*/10 * * * * *")
    assert every_ten_s.has_seconds
    assert every_ten_s.period_s == 10
    ticks = every_ten_s.ticks(T0, T0 + 60)
    assert ticks == [T0 + offset for offset in (0, 10, 20, 30, 40, 50)]
    # seconds-first: "5 * * * * *" is second 5 of every minute, not minute 5.
    assert schedule.parse("5 * * * * *").ticks(T0, T0 + 120) == [T0 + 35, T0 + 95]


@pytest.mark.parametrize(
    ("expr", "period_s"),
    [
        ("@hourly", 3600),
        ("@daily", 86400),
        ("@midnight", 86400),
        ("@weekly", 7 * 86400),
        ("*/7 * * * *", 4 * 60),  # :56 → :00
        ("5/10 * * * *", 600),  # robfig: 5-59/10
        ("0 9-17 * * mon-fri", 3600),
        ("0 0 1 jan,jul ?", 181 * 86400),
    ],
)
def test_period_is_the_shortest_gap(expr: str, period_s: float) -> None:
    assert schedule.parse(expr).period_s == period_s


def test_next_after_is_strictly_after_even_for_fractional_times() -> None:
    every_two = schedule.parse("*/2 * * * *")
    assert every_two.next_after(120.0) == 240.0
    assert every_two.next_after(119.9999999) == 120.0  # croniter alone answers 240 here
    assert every_two.next_after(120.5) == 240.0


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("", "empty expression"),
        ("* * * *", "expected 5 fields .* got 4"),
        ("* * * * * * *", "got 7"),
        ("61 * * * *", "minute field '61': 61 is outside 0-59"),
        ("* 24 * * *", "hour field"),
        ("* * 0 * *", "day-of-month field '0': 0 is outside 1-31"),
        ("* * * 13 *", "month field"),
        ("* * * * 7", "day-of-week field '7': 7 is outside 0-6"),
        ("*/0 * * * *", "a step must be a positive number"),
        ("5-1 * * * *", "range start 5 is after its end 1"),
        ("0 0 L * *", "'L' is not a number"),  # croniter extension robfig refuses
        ("0 0 * * 1#2", "not \\*, N, N-M"),
        ("H * * * *", "'H' is not a number"),
        ("1,,2 * * * *", "''"),
        ("@every 5m", "@every is not supported"),
        ("@reboot", "unknown descriptor"),
        ("CRON_TZ=Europe/Paris 0 * * * *", "time-zone prefixes are not supported"),
        ("0 0 30 2 *", "never fires"),
    ],
)
def test_refuses_what_robfig_or_the_harness_cannot_run(expr: str, problem: str) -> None:
    with pytest.raises(schedule.ScheduleError, match=problem):
        schedule.parse(expr)


def test_schedule_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="invalid cron"):
        schedule.parse("nonsense")


def test_require_standard_refuses_a_seconds_field_for_longhorn() -> None:
    with pytest.raises(schedule.ScheduleError, match=r"ParseStandard, which takes exactly 5 fields"):
        schedule.require_standard("*/10 * * * * *")
    assert schedule.require_standard("*/2 * * * *").period_s == 120
    assert schedule.require_standard("@hourly").period_s == 3600  # ParseStandard takes descriptors


def test_matches_croniter_across_a_month_boundary_and_weekdays() -> None:
    start_s = timestamps.parse_rfc3339("2026-11-28T00:00:00Z")
    end_s = start_s + 5 * 86400
    for expr in ("15 */6 1,30 * *", "0 12 * * sat,mon", "*/20 3 */2 * 1", "0 0 1 * *"):
        assert schedule.parse(expr).ticks(start_s, end_s) == _croniter_ticks(expr, start_s, end_s)


_FIELD = st.sampled_from(["*", "*/2", "*/15", "0", "5", "1-20", "3-40/7", "10/25", "7,11,59"])
_HOURS = st.sampled_from(["*", "*/6", "0", "1-3", "22,23", "5/8"])
_DOMS = st.sampled_from(["*", "1", "*/3", "28-31", "15,30"])
_MONTHS = st.sampled_from(["*", "1", "2", "feb-mar", "*/4"])
_DOWS = st.sampled_from(["*", "0", "mon-fri", "6", "1,3"])


@settings(max_examples=60, deadline=None)
@given(
    minute=_FIELD,
    hour=_HOURS,
    dom=_DOMS,
    month=_MONTHS,
    dow=_DOWS,
    second=st.sampled_from([None, "0", "*/20", "7,43"]),
    start_s=st.floats(min_value=1.7e9, max_value=1.9e9),
)
def test_ticks_equal_croniter_stepping_one_by_one(
    minute: str, hour: str, dom: str, month: str, dow: str, second: str | None, start_s: float
) -> None:
    fields = [minute, hour, dom, month, dow]
    expr = " ".join([second, *fields] if second is not None else fields)
    parsed = schedule.parse(expr)
    end_s = start_s + 3 * 86400
    expected = _croniter_ticks(parsed.canonical, start_s, end_s, seconds=parsed.has_seconds)
    assert parsed.ticks(start_s, end_s) == expected


def test_a_day_of_two_minute_ticks_for_many_jobs_is_fast() -> None:
    every_two = schedule.parse("*/2 * * * *")
    began = time.perf_counter()
    counts = {len(every_two.ticks(T0 + job, T0 + job + 86400)) for job in range(50)}
    fresh_s = time.perf_counter() - began
    began = time.perf_counter()
    for _ in range(1000):
        every_two.ticks(T0, T0 + 86400)
    cached_s = time.perf_counter() - began
    assert counts == {720}
    assert fresh_s < 2.0, f"50 uncached day windows took {fresh_s:.2f}s"
    assert cached_s < 1.0, f"1000 cached day windows took {cached_s:.2f}s"
