"""The report's per-tick rows count exactly what the verdict counts, so the two can never disagree."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from lhsoak import ledger, timestamps, verdict
from lhsoak.ledger_synth import Builder, job_spec
from lhsoak.report import ticks

START_S = timestamps.parse_rfc3339("2026-11-27T07:00:30Z")


def _assert_counts_match(led: ledger.Ledger) -> list[ticks.TickRow]:
    result = verdict.analyse(led)
    rows = ticks.rows(led, result)
    for job in result.jobs:
        for volume in job.volumes:
            mine = [r for r in rows if (r.job, r.volume) == (job.name, volume.volume)]
            outcomes = Counter(r.outcome for r in mine)
            seen = (
                len(mine),
                outcomes["fired"],
                sum(r.counts for r in mine),
                sum(r.excused for r in mine),
                sum(r.outcome == "missed" and r.excused for r in mine),
                outcomes["pending"],
                tuple(r.tick_s for r in mine if r.counts),
            )
            expected = (
                volume.ticks,
                volume.fired,
                volume.missed,
                volume.excused,
                volume.excused_missed,
                volume.pending,
                volume.missed_ticks_s,
            )
            assert seen == expected, f"{job.name}/{volume.volume}"
            lags = sorted(r.lag_s for r in mine if r.lag_s is not None)
            assert (lags[-1] if lags else None) == volume.lag_max_s
    return rows


def test_the_stalled_run_rows_match_the_verdict(stalled_ledger: ledger.Ledger) -> None:
    rows = _assert_counts_match(stalled_ledger)
    backup_misses = [r for r in rows if r.job == "soak-backup" and r.counts]
    assert backup_misses, "the stalled backup job has missed ticks"
    assert all(r.cause == "no_fire" for r in backup_misses)
    excused = [r for r in rows if r.excused]
    assert {node for r in excused for node in r.excused_by} == {"node-1", "node-2", "node-3"}


def test_late_error_and_pending_ticks_are_told_apart() -> None:
    b = Builder(start_s=START_S, jobs=[job_spec("snap", task="snapshot")], lag_bound_s=60.0, volumes=["v"])
    t0 = START_S + 90.0  # the first */2 tick after the start
    b.fire(job="snap", volume="v", started_s=t0 + 1, done_s=t0 + 10)  # fired, lag 10
    b.fire(job="snap", volume="v", started_s=t0 + 121, done_s=t0 + 120 + 75)  # late: lag 75 > 60
    b.fire(job="snap", volume="v", started_s=t0 + 241, done_s=None, state="Error")  # error
    b.fire(job="snap", volume="v", started_s=t0 + 361, done_s=None, state="InProgress")  # pending
    b.end(ts_s=t0 + 361 + 30)
    rows = _assert_counts_match(b.ledger())
    assert [(r.outcome, r.cause) for r in rows] == [
        ("fired", None),
        ("missed", "late"),
        ("missed", "error"),
        ("pending", None),
    ]
    assert rows[1].lag_s == 75.0
    assert rows[0].fire_object is not None
    assert rows[0].lag_s == 10.0


def test_an_error_recorded_before_a_reboot_is_not_excused_by_it() -> None:
    b = Builder(start_s=START_S, jobs=[job_spec("snap", task="snapshot")], lag_bound_s=120.0, volumes=["v"])
    t0 = START_S + 90.0  # the first */2 tick after the start
    b.fire(job="snap", volume="v", started_s=t0 + 1, done_s=None, state="Error", ts_s=t0 + 5)
    b.fire(job="snap", volume="v", started_s=t0 + 121, done_s=None, state="Error", ts_s=t0 + 125)
    b.reboot_cycle(node="n1", start_s=t0 + 100, ready_s=t0 + 200)
    b.end(ts_s=t0 + 600)

    rows = _assert_counts_match(b.ledger())

    # The reboot began after the first tick's Error: it took the second tick, not the first.
    assert [(r.outcome, r.cause, r.excused_by) for r in rows[:2]] == [
        ("missed", "error", ()),
        ("missed", "error", ("n1",)),
    ]


@st.composite
def _runs(draw: st.DrawFn) -> ledger.Ledger:
    b = Builder(
        start_s=START_S,
        jobs=[job_spec("snap", task="snapshot"), job_spec("bak", task="backup")],
        lag_bound_s=120.0,
        volumes=["v1", "v2"],
    )
    # Everything happens before the end record at +1800 s, which a ledger requires.
    for _ in range(draw(st.integers(0, 2))):
        start = START_S + draw(st.floats(0, 1300))
        b.reboot_cycle(
            node=draw(st.sampled_from(["n1", "n2"])),
            start_s=start,
            ready_s=draw(st.none() | st.floats(start + 10, start + 400)),
        )
    for _ in range(draw(st.integers(0, 40))):
        started = START_S + draw(st.floats(0, 1590))
        done = draw(st.none() | st.floats(started, started + 200))
        b.fire(
            job=draw(st.sampled_from(["snap", "bak"])),
            volume=draw(st.sampled_from(["v1", "v2"])),
            started_s=started,
            done_s=done,
            state=draw(st.sampled_from(["Completed", "Error", "InProgress"]))
            if done is None
            else "Completed",
        )
    if draw(st.booleans()):
        b.end(ts_s=START_S + 1800)
    return b.ledger()


@settings(max_examples=60, deadline=None)
@given(_runs())
def test_rows_match_the_verdict_on_any_run(led: ledger.Ledger) -> None:
    _assert_counts_match(led)
