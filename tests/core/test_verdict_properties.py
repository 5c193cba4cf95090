"""Properties of the verdict over generated runs of one job on one volume."""

from __future__ import annotations

import dataclasses
import math

from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lhsoak import ledger, schedule, timestamps, verdict
from lhsoak.ledger_synth import Builder, job_spec

START_S = timestamps.parse_rfc3339("2026-11-27T07:00:30Z")
LAG_BOUND_S = 120.0
TICKS = schedule.parse("*/2 * * * *").ticks(START_S, START_S + 3600)


@dataclasses.dataclass(frozen=True)
class FireSpec:
    tick: int
    delay_s: float
    duration_s: float
    state: str


@dataclasses.dataclass(frozen=True)
class Scenario:
    fires: tuple[FireSpec, ...]
    reboot: tuple[float, float | None] | None  # (start offset, ready after start)
    end_s: float

    def shifted(self, by_s: float) -> Scenario:
        moved = tuple(dataclasses.replace(f, delay_s=f.delay_s + by_s) for f in self.fires)
        return dataclasses.replace(self, fires=moved)

    def plus(self, fire: FireSpec) -> Scenario:
        return dataclasses.replace(self, fires=(*self.fires, fire))


def _fire_specs(*, max_tick: int, max_delay_s: float) -> st.SearchStrategy[FireSpec]:
    return st.builds(
        FireSpec,
        tick=st.integers(min_value=0, max_value=max_tick),
        delay_s=st.floats(min_value=0, max_value=max_delay_s),
        duration_s=st.floats(min_value=0, max_value=200),
        state=st.sampled_from(["Completed", "Completed", "Error", "InProgress"]),
    )


def _scenarios(*, max_tick: int = 20, max_delay_s: float = 130) -> st.SearchStrategy[Scenario]:
    # the reboot's `down` record comes 1 s after its start, and must not follow the run's end
    reboot = st.none() | st.tuples(
        st.floats(min_value=0, max_value=2300), st.none() | st.floats(min_value=10, max_value=600)
    )
    return st.builds(
        Scenario,
        fires=st.lists(_fire_specs(max_tick=max_tick, max_delay_s=max_delay_s), max_size=30).map(tuple),
        reboot=reboot,
        end_s=st.floats(min_value=START_S + 2400, max_value=START_S + 2700),
    )


@st.composite
def _mostly_healthy(draw: st.DrawFn) -> Scenario:
    """Every tick fires on time, but for the ones inside a reboot's outage and the one whose backup
    the reboot hit while it ran (it ends in Error or stays InProgress): runs that often pass."""
    reboot_at = draw(st.floats(min_value=0, max_value=2000))
    ready_after = draw(st.floats(min_value=10, max_value=300))
    outage = (START_S + reboot_at, START_S + reboot_at + ready_after + 60)
    fires = []
    for index, tick in enumerate(TICKS[:21]):
        if outage[0] <= tick <= outage[1]:
            continue
        fire = FireSpec(index, draw(st.floats(0, 60)), draw(st.floats(0, 50)), "Completed")
        if tick + fire.delay_s + fire.duration_s >= outage[0] > tick:
            fire = dataclasses.replace(fire, state=draw(st.sampled_from(["Error", "InProgress"])))
        fires.append(fire)
    return Scenario(fires=tuple(fires), reboot=(reboot_at, ready_after), end_s=START_S + 2520)


def _analyse(scenario: Scenario) -> verdict.VolumeVerdict:
    return _verdict(scenario).jobs[0].volumes[0]


def _verdict(
    scenario: Scenario, *, lag_bound_s: float = LAG_BOUND_S, end_reason: str = "completed"
) -> verdict.Verdict:
    b = Builder(
        start_s=START_S, jobs=[job_spec("j", task="backup")], volumes=["vol-1"], lag_bound_s=lag_bound_s
    )
    for fire in scenario.fires:
        started = TICKS[fire.tick] + fire.delay_s
        done = started + fire.duration_s
        if started >= scenario.end_s:
            continue  # not seen before the run ended
        if fire.state == "InProgress" or done >= scenario.end_s:
            b.fire(job="j", volume="vol-1", started_s=started, done_s=None, state="InProgress")
        else:
            b.fire(
                job="j",
                volume="vol-1",
                started_s=started,
                done_s=None if fire.state == "Error" else done,
                state=fire.state,
            )
    if scenario.reboot is not None:
        start, ready_after = scenario.reboot
        ready = START_S + start + ready_after if ready_after is not None else None
        b.reboot_cycle(
            node="w1",
            start_s=START_S + start,
            ready_s=ready if ready is not None and ready < scenario.end_s else None,
            down_s=1,
        )
    b.end(ts_s=scenario.end_s, reason=end_reason)
    return verdict.analyse(b.ledger())


@settings(max_examples=80, deadline=None)
@given(scenario=_scenarios() | _mostly_healthy())
def test_an_interrupt_never_adds_a_failure_and_only_lifts_an_unseen_recovery(scenario: Scenario) -> None:
    completed = _verdict(scenario)
    interrupted = _verdict(scenario, end_reason="interrupted")
    assert set(interrupted.failures) <= set(completed.failures)
    lifted = set(completed.failures) - set(interrupted.failures)
    assert all("after the last outage" in failure.reason for failure in lifted), lifted
    (before,), (after,) = (result.jobs[0].volumes for result in (completed, interrupted))
    assert dataclasses.replace(after, fired_after_last_outage=None, passed=True) == dataclasses.replace(
        before, fired_after_last_outage=None, passed=True
    )
    assert interrupted.outcome == ("failed" if interrupted.failures else "interrupted")


@settings(max_examples=80, deadline=None)
@given(
    scenario=_scenarios() | _mostly_healthy(),
    tick=st.integers(min_value=0, max_value=19),
    delay_s=st.floats(min_value=0, max_value=100),
    duration_fraction=st.floats(min_value=0, max_value=1),
)
def test_adding_an_on_time_fire_never_turns_a_pass_into_a_fail(
    scenario: Scenario, tick: int, delay_s: float, duration_fraction: float
) -> None:
    duration_s = (LAG_BOUND_S - delay_s) * duration_fraction
    assume(TICKS[tick] + delay_s + duration_s < scenario.end_s)
    before = _analyse(scenario)
    after = _analyse(scenario.plus(FireSpec(tick, delay_s, duration_s, "Completed")))
    if before.passed:
        assert after.passed
    assert after.fired >= before.fired
    assert after.missed <= before.missed


@settings(max_examples=80, deadline=None)
@given(
    scenario=_scenarios(max_tick=12, max_delay_s=60),
    by_s=st.floats(min_value=0, max_value=55),
)
def test_shifting_every_fire_later_within_its_window_never_lowers_lag(
    scenario: Scenario, by_s: float
) -> None:
    before = _analyse(scenario)
    after = _analyse(scenario.shifted(by_s))
    for name in ("lag_p50_s", "lag_p95_s", "lag_max_s"):
        old, new = getattr(before, name), getattr(after, name)
        assert (old is None) == (new is None)
        if old is not None:
            assert new >= old - 1e-6, f"{name} fell from {old} to {new} after a {by_s} s shift"


@settings(max_examples=120, deadline=None)
@given(scenario=_scenarios())
def test_excused_ticks_never_count_as_missed_and_outcomes_partition_the_ticks(
    scenario: Scenario,
) -> None:
    result = _verdict(scenario)
    row = result.jobs[0].volumes[0]
    for tick in row.missed_ticks_s:
        # no outage holds the tick; one that began while its work was due excuses it unless the tick
        # was already lost to an Error before the reboot began (checked in test_verdict_rules)
        assert not any(o.start_s <= tick <= o.end_s for o in result.outages)
    assert row.ticks == row.fired + row.missed + row.excused_missed + row.pending
    assert row.missed == len(row.missed_ticks_s) == sum(row.missed_causes.values())
    assert row.excused_missed <= row.excused
    assert row.errors_piled_up <= row.errors_left
    assert row.passed == (
        row.missed == 0 and row.fired_after_last_outage is not False and row.errors_piled_up <= 1
    )
    assert result.passed == row.passed
    if row.lag_max_s is not None:
        assert row.lag_p50_s is not None
        assert row.lag_p95_s is not None
        assert row.lag_p50_s <= row.lag_p95_s <= row.lag_max_s
    assert 0 < row.max_staleness_s <= result.window_end_s - result.window_start_s
    assert not math.isnan(row.max_staleness_s)


Reboot = tuple[float, float | None]  # (start offset, ready after start or None)
ERRORED_END_S = START_S + 2400


def _excused_ticks(reboots: tuple[Reboot, ...], *, lag_bound_s: float) -> frozenset[float]:
    """The excused ticks of a run in which every tick's fire ends in Error.

    An Error fire misses its tick whatever the lag bound and the window end, so every tick is
    missed and the ticks not reported missed are exactly the excused ones.
    """
    b = Builder(
        start_s=START_S, jobs=[job_spec("j", task="backup")], volumes=["vol-1"], lag_bound_s=lag_bound_s
    )
    ticks = [tick for tick in TICKS if tick < ERRORED_END_S]
    for tick in ticks:
        # Recorded in Error only at the end: no reboot can have come after the failure.
        b.fire(
            job="j", volume="vol-1", started_s=tick + 1, done_s=None, state="Error", ts_s=ERRORED_END_S - 1
        )
    for index, (start, ready_after) in enumerate(reboots):
        ready = START_S + start + ready_after if ready_after is not None else None
        b.reboot_cycle(
            node=f"w{index}",
            start_s=START_S + start,
            ready_s=ready if ready is not None and ready < ERRORED_END_S else None,
            down_s=1,
        )
    b.end(ts_s=ERRORED_END_S)
    row = verdict.analyse(b.ledger()).jobs[0].volumes[0]
    excused = frozenset(ticks) - frozenset(row.missed_ticks_s)
    assert (row.ticks, row.excused, row.excused_missed) == (len(ticks), len(excused), len(excused))
    return excused


_REBOOTS = st.lists(
    st.tuples(st.floats(min_value=0, max_value=2300), st.none() | st.floats(min_value=10, max_value=400)),
    max_size=3,
).map(tuple)


@settings(max_examples=80, deadline=None)
@given(
    reboots=_REBOOTS,
    scenario=_scenarios(),
    lag_bound_s=st.floats(min_value=0, max_value=600),
    longer_by_s=st.floats(min_value=0, max_value=600),
)
def test_lengthening_the_lag_bound_never_unexcuses_a_tick(
    reboots: tuple[Reboot, ...], scenario: Scenario, lag_bound_s: float, longer_by_s: float
) -> None:
    shorter = _excused_ticks(reboots, lag_bound_s=lag_bound_s)
    longer = _excused_ticks(reboots, lag_bound_s=lag_bound_s + longer_by_s)
    assert shorter <= longer, f"un-excused: {sorted(shorter - longer)}"
    before = _verdict(scenario, lag_bound_s=lag_bound_s).jobs[0].volumes[0]
    after = _verdict(scenario, lag_bound_s=lag_bound_s + longer_by_s).jobs[0].volumes[0]
    assert after.excused >= before.excused


def test_the_errored_run_helper_sees_the_ticks_due_before_a_reboot() -> None:
    # Guards the property above against a helper that never tells a longer bound apart.
    reboot = ((1000.0, 100.0),)  # 07:17:10 → ready 07:18:50, settle to 07:19:50
    assert len(_excused_ticks(reboot, lag_bound_s=0)) == 1  # 07:18
    assert len(_excused_ticks(reboot, lag_bound_s=120)) == 2  # 07:16 too
    assert len(_excused_ticks(reboot, lag_bound_s=600)) == 6  # 07:08 … 07:18
    assert _excused_ticks((), lag_bound_s=600) == frozenset()


def test_the_scenario_helper_really_produces_misses_and_passes() -> None:
    # Guards the properties above against a generator that only ever makes trivial runs.
    healthy = Scenario(
        fires=tuple(FireSpec(i, 3, 5, "Completed") for i in range(len(TICKS))),
        reboot=None,
        end_s=START_S + 2500,
    )
    assert _analyse(healthy).passed
    broken = dataclasses.replace(healthy, fires=healthy.fires[:5])
    assert _analyse(broken).missed > 0
    assert isinstance(_verdict(broken).jobs[0].volumes[0], verdict.VolumeVerdict)
    assert ledger.VERSION == 1
