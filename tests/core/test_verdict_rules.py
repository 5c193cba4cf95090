"""Every verdict rule, on small hand-made ledgers (times are 2026-11-27, UTC)."""

from __future__ import annotations

import re

import pytest

from lhsoak import ledger, ledger_synth, timestamps, verdict
from lhsoak.ledger_synth import Builder, job_spec

SNAP = job_spec("soak-snap", task="snapshot")
BACKUP = job_spec("soak-backup", task="backup")


def at(clock: str) -> float:
    """Epoch seconds of a time of day on the test date."""
    return timestamps.parse_rfc3339(f"2026-11-27T{clock}Z")


def iso(clock: str) -> str:
    return timestamps.to_rfc3339(at(clock))


def _builder(*, jobs: tuple[ledger.JobSpec, ...] = (BACKUP,), **options: object) -> Builder:
    return Builder(start_s=at("07:00:30"), jobs=jobs, **options)  # type: ignore[arg-type]


def _row(result: verdict.Verdict, job: str = "soak-backup", volume: str = "vol-1") -> verdict.VolumeVerdict:
    (found,) = [row for j in result.jobs if j.name == job for row in j.volumes if row.volume == volume]
    return found


def _reasons(result: verdict.Verdict) -> list[str]:
    return [failure.reason for failure in result.failures]


def test_a_healthy_run_passes_with_its_lags_and_staleness() -> None:
    b = _builder()
    b.regular_fires(job="soak-backup", volumes=["vol-1"], until_s=at("07:30:00"), delay_s=3, duration_s=5)
    b.end(ts_s=at("07:30:00"))
    result = verdict.analyse(b.ledger())
    row = _row(result)
    assert result.passed
    assert row.passed
    assert (row.ticks, row.fired, row.missed, row.excused, row.pending) == (14, 14, 0, 0, 0)
    assert (row.lag_p50_s, row.lag_p95_s, row.lag_max_s) == (8.0, 8.0, 8.0)
    # 07:00:30 → first done 07:02:08 is 98 s, then 120 s apart, last 07:28:08 → 07:30:00 is 112 s
    assert row.max_staleness_s == 120.0
    assert (row.retain_violations, row.errors_left) == (0, 0)
    assert row.fired_after_last_outage is None
    assert result.failures == ()


def test_the_window_ends_at_the_latest_record_without_an_end_record() -> None:
    b = _builder()
    b.regular_fires(job="soak-backup", volumes=["vol-1"], until_s=at("07:10:30"), cleanup=False)
    result = verdict.analyse(b.ledger())
    assert result.window_end_s == at("07:10:08")  # the last fire's record
    assert _row(result).ticks == 5  # 07:02 … 07:10
    assert result.end_reason is None
    assert any("no end record" in note for note in result.notes)


def test_a_tick_without_a_fire_is_missed_and_named() -> None:
    b = _builder()
    b.regular_fires(
        job="soak-backup", volumes=["vol-1"], until_s=at("07:30:00"), skip=lambda t, _v: t == at("07:10:00")
    )
    b.end(ts_s=at("07:30:00"))
    result = verdict.analyse(b.ledger())
    row = _row(result)
    assert not result.passed
    assert (row.fired, row.missed, row.missed_ticks_s) == (13, 1, (at("07:10:00"),))
    assert row.missed_causes == {"no_fire": 1, "late": 0, "error": 0}
    assert row.max_staleness_s == 240.0
    (failure,) = result.failures
    assert (failure.job, failure.volume) == ("soak-backup", "vol-1")
    assert failure.reason == (
        f"1 missed tick outside outages (first {iso('07:10:00')}; 1 with no fire); "
        f"last on-time fire before it: tick {iso('07:08:00')}, done {iso('07:08:08')}"
    )


def test_a_fire_done_at_the_lag_bound_is_on_time_and_later_is_missed() -> None:
    b = _builder(volumes=["vol-1", "vol-2"])
    tick = at("07:02:00")
    b.fire(job="soak-backup", volume="vol-1", started_s=tick + 1, done_s=tick + 120)
    b.fire(job="soak-backup", volume="vol-2", started_s=tick + 1, done_s=tick + 120.5)
    b.end(ts_s=at("07:04:01"))  # the 07:04 tick is pending
    result = verdict.analyse(b.ledger())
    assert _row(result, volume="vol-1").fired == 1
    late = _row(result, volume="vol-2")
    assert (late.fired, late.missed, late.missed_causes["late"]) == (0, 1, 1)
    assert late.lag_max_s == 120.5
    assert "1 not done within the 120 s lag bound" in _reasons(result)[0]


def test_an_errored_first_fire_misses_its_tick_even_if_a_retry_completes() -> None:
    b = _builder()
    tick = at("07:02:00")
    b.fire(job="soak-backup", volume="vol-1", started_s=tick + 3, done_s=None, state="Error")
    b.fire(job="soak-backup", volume="vol-1", started_s=tick + 30, done_s=tick + 40)
    b.end(ts_s=at("07:04:00"))
    row = _row(verdict.analyse(b.ledger()))
    assert (row.missed, row.missed_causes["error"], row.unmatched_fires) == (1, 1, 1)
    assert row.errors_left == 1


def test_an_artifact_still_in_progress_after_its_deadline_is_missed() -> None:
    b = _builder()
    b.fire_progress(job="soak-backup", volume="vol-1", started_s=at("07:02:03"), done_s=None)
    b.end(ts_s=at("07:04:01"))
    row = _row(verdict.analyse(b.ledger()))
    assert (row.missed, row.missed_causes["late"], row.lag_max_s) == (1, 1, None)


def test_ticks_too_close_to_the_end_to_judge_are_pending_not_missed() -> None:
    b = _builder(volumes=["vol-1", "vol-2"])
    b.regular_fires(job="soak-backup", volumes=["vol-1", "vol-2"], until_s=at("07:59:00"))
    # 08:00: vol-1 got no fire yet, vol-2's is in progress; the run ends 30 s after the tick.
    b.fire_progress(job="soak-backup", volume="vol-2", started_s=at("08:00:03"), done_s=None)
    b.end(ts_s=at("08:00:30"))
    result = verdict.analyse(b.ledger())
    for volume in ("vol-1", "vol-2"):
        row = _row(result, volume=volume)
        assert (row.ticks, row.fired, row.missed, row.pending) == (30, 29, 0, 1)
    assert result.passed
    assert "2 ticks were too close to the window end to judge (pending)" in result.notes


def test_a_fire_late_enough_to_start_after_the_next_tick_counts_for_that_tick() -> None:
    b = _builder()
    b.fire(job="soak-backup", volume="vol-1", started_s=at("07:02:03"), done_s=at("07:02:08"))
    # The 07:04 job's pod was so late its artifact started after 07:06 …
    b.fire(job="soak-backup", volume="vol-1", started_s=at("07:06:01"), done_s=at("07:06:20"))
    # … and the 07:06 job's own artifact came right after it.
    b.fire(job="soak-backup", volume="vol-1", started_s=at("07:06:04"), done_s=at("07:06:09"))
    b.end(ts_s=at("07:08:00"))
    result = verdict.analyse(b.ledger())
    row = _row(result)
    assert row.missed_ticks_s == (at("07:04:00"),)
    assert (row.fired, row.late_landed, row.unmatched_fires) == (2, 1, 1)
    assert row.lag_max_s == 20.0  # the late artifact is 07:06's fire, lag from 07:06
    assert "1 of them may have fired late into the next tick's window" in _reasons(result)[0]


def test_an_outage_excuses_ticks_due_from_reboot_start_to_ready_plus_settle_inclusive() -> None:
    b = _builder()
    outage = (at("07:10:00"), at("07:14:00"))  # start 07:10:00, ready 07:13:00, settle 60 s
    # Excused: 07:08 (its work was due until 07:10:00, the reboot's start: inclusive), 07:10, 07:12
    # and 07:14 (the outage's end: inclusive). 07:08 fired anyway; the other three did not.
    b.regular_fires(
        job="soak-backup",
        volumes=["vol-1"],
        until_s=at("07:30:00"),
        skip=lambda t, _v: outage[0] <= t <= outage[1],
    )
    b.reboot_cycle(node="worker-1", start_s=at("07:10:00"), ready_s=at("07:13:00"))
    b.end(ts_s=at("07:30:00"))
    result = verdict.analyse(b.ledger())
    row = _row(result)
    assert (row.ticks, row.excused, row.excused_missed, row.missed, row.fired) == (14, 4, 3, 0, 11)
    assert row.fired_after_last_outage is True
    assert result.passed
    (reboot,) = result.reboots
    assert (reboot.node, reboot.start_s, reboot.ready_s) == ("worker-1", at("07:10:00"), at("07:13:00"))
    assert reboot.downtime_s == 180.0
    assert reboot.recovery_s == at("07:16:08") - at("07:13:00")
    assert result.outages == (verdict.Outage("worker-1", outage[0], outage[1]),)


def test_the_first_tick_after_settle_is_not_excused() -> None:
    b = _builder()
    b.regular_fires(
        job="soak-backup",
        volumes=["vol-1"],
        until_s=at("07:30:00"),
        skip=lambda t, _v: at("07:10:00") <= t <= at("07:16:00"),
    )
    b.reboot_cycle(node="worker-1", start_s=at("07:10:00"), ready_s=at("07:13:00"))
    b.end(ts_s=at("07:30:00"))
    row = _row(verdict.analyse(b.ledger()))
    assert row.missed_ticks_s == (at("07:16:00"),)


def _reboot_near_the_07_10_backup(
    *, reboot_after_tick_s: float, fire_state: str | None, fire_ends_s: float
) -> verdict.Verdict:
    """Regular backups but the 07:10 one; worker-1 reboots `reboot_after_tick_s` after 07:10.

    The 07:10 backup starts at 07:10:05 and ends in `fire_state` at `fire_ends_s` (no fire when
    None); ticks from the reboot's start to ready + settle get no fire; the job fires again after.
    """
    tick = at("07:10:00")
    start = tick + reboot_after_tick_s
    ready = start + 150
    settle_end = ready + 60
    b = _builder()
    b.regular_fires(
        job="soak-backup",
        volumes=["vol-1"],
        until_s=at("07:30:00"),
        skip=lambda t, _v: t == tick or start <= t <= settle_end,
    )
    if fire_state is not None:
        name = b.fire(job="soak-backup", volume="vol-1", started_s=tick + 5, done_s=None, state="InProgress")
        b.fire(job="soak-backup", volume="vol-1", started_s=tick + 5, done_s=None, state=fire_state,
               name=name, ts_s=fire_ends_s)  # fmt: skip
    b.reboot_cycle(node="worker-1", start_s=start, ready_s=ready)
    b.end(ts_s=at("07:30:00"))
    return verdict.analyse(b.ledger())


@pytest.mark.parametrize(
    ("reboot_after_tick_s", "fire_state", "excused_ticks"),
    [
        # the reboot began 2 s after the tick, before its backup started: 07:10 is not inside
        # the outage (07:10:02 → 07:13:32), but its work was due during it
        pytest.param(2, None, ("07:10", "07:12"), id="reboot-before-the-backup-started"),
        pytest.param(60, "Error", ("07:10", "07:12", "07:14"), id="reboot-while-the-backup-ran"),
        pytest.param(120, "Error", ("07:10", "07:12", "07:14"), id="reboot-at-the-lag-bound"),
    ],
)
def test_a_tick_whose_work_was_still_due_when_a_reboot_began_is_excused(
    reboot_after_tick_s: float, fire_state: str | None, excused_ticks: tuple[str, ...]
) -> None:
    # The reboot took the 07:10 backup (it fails when its node goes down); a healthy cluster
    # fires again on the next tick after the outage, and must pass.
    result = _reboot_near_the_07_10_backup(
        reboot_after_tick_s=reboot_after_tick_s,
        fire_state=fire_state,
        fire_ends_s=at("07:10:00") + reboot_after_tick_s + 5,
    )
    row = _row(result)
    assert (row.missed, row.missed_ticks_s) == (0, ())
    assert (row.excused, row.excused_missed) == (len(excused_ticks), len(excused_ticks))
    assert row.fired == row.ticks - len(excused_ticks)
    assert row.fired_after_last_outage is True
    assert result.passed, _reasons(result)


@pytest.mark.parametrize(
    ("reboot_after_tick_s", "excused_ticks"),
    [
        pytest.param(120.5, ("07:12", "07:14"), id="just-past-the-lag-bound"),
        # 07:12 is excused too (its work was due until 07:14, after the reboot began at
        # 07:12:50), though it fired before
        pytest.param(170, ("07:12", "07:14", "07:16"), id="in-the-next-tick"),
    ],
)
def test_a_tick_more_than_the_lag_bound_before_a_reboot_is_not_excused(
    reboot_after_tick_s: float, excused_ticks: tuple[str, ...]
) -> None:
    # The 07:10 backup failed on its own at 07:10:40; its deadline, 07:12:00, passed before the reboot.
    result = _reboot_near_the_07_10_backup(
        reboot_after_tick_s=reboot_after_tick_s, fire_state="Error", fire_ends_s=at("07:10:40")
    )
    row = _row(result)
    assert row.missed_ticks_s == (at("07:10:00"),)
    assert row.missed_causes == {"no_fire": 0, "late": 0, "error": 1}
    assert row.excused == len(excused_ticks)
    assert not result.passed
    assert _reasons(result)[0].startswith(
        f"1 missed tick outside outages (first {iso('07:10:00')}; 1 ended in Error)"
    )


def test_a_reboot_that_never_became_ready_is_an_outage_to_the_end() -> None:
    b = _builder()
    b.regular_fires(job="soak-backup", volumes=["vol-1"], until_s=at("07:20:05"))
    b.reboot_cycle(node="worker-1", start_s=at("07:20:10"), ready_s=None)
    b.end(ts_s=at("07:30:00"))
    result = verdict.analyse(b.ledger())
    row = _row(result)
    # excused: 07:20 (due until 07:22, after the reboot began; it fired) and 07:22 … 07:28
    assert (row.missed, row.excused, row.excused_missed) == (0, 5, 4)
    (reboot,) = result.reboots
    assert (reboot.ready_s, reboot.recovery_s, reboot.failed) == (None, None, False)
    assert reboot.downtime_s == at("07:30:00") - at("07:20:10")
    assert not result.passed
    assert _reasons(result) == [
        f"did not fire after the last outage: node worker-1 never became ready "
        f"(reboot started {iso('07:20:10')})"
    ]
    assert result.to_json()["reboots"][0]["ready"] is None


def test_a_failed_phase_ends_that_reboot_without_ready() -> None:
    b = _builder()
    b.regular_fires(job="soak-backup", volumes=["vol-1"], until_s=at("07:30:00"))
    b.reboot(node="worker-1", phase="start", ts_s=at("07:05:00"))
    b.reboot(node="worker-1", phase="failed", ts_s=at("07:06:00"))
    # a later ready belongs to no reboot: the failed one is over
    b.reboot(node="worker-1", phase="ready", ts_s=at("07:07:00"))
    b.end(ts_s=at("07:30:00"))
    result = verdict.analyse(b.ledger())
    (reboot,) = result.reboots
    assert (reboot.failed, reboot.ready_s, reboot.outage_end_s) == (True, None, float("inf"))
    assert any("phase 'ready' of worker-1 with no open reboot" in note for note in result.notes)
    assert "never became ready" in _reasons(result)[0]


def test_reboots_pair_per_node_in_order() -> None:
    b = _builder()
    b.regular_fires(job="soak-backup", volumes=["vol-1"], until_s=at("07:40:00"))
    b.reboot(node="worker-1", phase="start", ts_s=at("07:05:00"))
    b.reboot(node="worker-2", phase="start", ts_s=at("07:06:00"))
    b.reboot(node="worker-2", phase="start", ts_s=at("07:06:30"))  # again while open: same reboot
    b.reboot(node="worker-1", phase="ready", ts_s=at("07:07:00"))
    b.reboot(node="worker-2", phase="ready", ts_s=at("07:09:00"))
    b.reboot(node="worker-1", phase="start", ts_s=at("07:20:00"))
    b.reboot(node="worker-1", phase="ready", ts_s=at("07:22:00"))
    b.end(ts_s=at("07:40:00"))
    result = verdict.analyse(b.ledger())
    assert [(r.node, r.start_s, r.ready_s) for r in result.reboots] == [
        ("worker-1", at("07:05:00"), at("07:07:00")),
        ("worker-2", at("07:06:00"), at("07:09:00")),
        ("worker-1", at("07:20:00"), at("07:22:00")),
    ]
    assert any("worker-2 started again while open" in note for note in result.notes)
    assert result.passed


def test_a_job_must_fire_on_time_after_the_last_outage() -> None:
    b = _builder()
    b.regular_fires(job="soak-backup", volumes=["vol-1"], until_s=at("07:26:05"))
    b.reboot_cycle(node="worker-1", start_s=at("07:26:30"), ready_s=at("07:28:00"))
    b.end(ts_s=at("07:30:00"))  # settle ends 07:29:00: no tick left after it
    result = verdict.analyse(b.ledger())
    row = _row(result)
    assert row.missed == 0
    assert row.fired_after_last_outage is False
    assert _reasons(result) == [f"did not fire after the last outage (ended {iso('07:29:00')})"]


def _interrupted_mid_reboot(*, ready: str | None, reason: str = "interrupted") -> Builder:
    """Both jobs fire on time on two volumes; worker-1 reboots at 07:21:00 and the run is stopped
    during it: the teardown brings the node back (`ready`, when given) and ends the ledger at 07:22:31,
    before ready + the 60 s settle."""
    b = _builder(jobs=(SNAP, BACKUP))
    for job in ("soak-snap", "soak-backup"):
        b.regular_fires(job=job, volumes=["vol-1", "vol-2"], until_s=at("07:20:05"))
    b.reboot_cycle(node="worker-1", start_s=at("07:21:00"), ready_s=at(ready) if ready else None)
    b.end(ts_s=at("07:22:31"), reason=reason)
    return b


@pytest.mark.parametrize("ready", ["07:22:30", None], ids=["ready-just-before-the-end", "never-ready"])
def test_an_interrupted_run_is_not_failed_for_a_recovery_it_could_not_see(ready: str | None) -> None:
    result = verdict.analyse(_interrupted_mid_reboot(ready=ready).ledger())
    assert result.window_end_s < result.outages[-1].end_s
    assert result.failures == ()
    assert result.passed
    assert result.outcome == "interrupted"
    assert result.to_json()["outcome"] == "interrupted"
    for job in result.jobs:
        for row in job.volumes:
            assert (row.missed, row.fired_after_last_outage, row.passed) == (0, None, True)
    assert any(
        "interrupted before a tick after the last outage could be judged" in note for note in result.notes
    ), result.notes


def test_an_interrupted_run_with_misses_before_the_interrupt_fails_for_them_only() -> None:
    b = _builder(jobs=(SNAP, BACKUP))
    for job in ("soak-snap", "soak-backup"):
        b.regular_fires(
            job=job,
            volumes=["vol-1", "vol-2"],
            until_s=at("07:20:05"),
            skip=lambda t, v: v == "vol-2" and t == at("07:10:00"),
        )
    b.reboot_cycle(node="worker-1", start_s=at("07:21:00"), ready_s=at("07:22:30"))
    b.end(ts_s=at("07:22:31"), reason="interrupted")
    result = verdict.analyse(b.ledger())
    assert result.outcome == "failed"
    assert [(f.job, f.volume) for f in result.failures] == [("soak-snap", "vol-2"), ("soak-backup", "vol-2")]
    assert all(
        f.reason.startswith(f"1 missed tick outside outages (first {iso('07:10:00')}")
        for f in result.failures
    )


def test_a_completed_run_that_ends_inside_its_last_outage_fails_saying_the_recovery_was_not_seen() -> None:
    result = verdict.analyse(_interrupted_mid_reboot(ready="07:22:30", reason="completed").ledger())
    assert result.outcome == "failed"
    assert _row(result).fired_after_last_outage is False
    assert len(result.failures) == 4
    assert _reasons(result)[0] == (
        f"no fire after the last outage could be seen: the run ended {iso('07:22:31')}, before that "
        f"outage did (node worker-1, ready + settle at {iso('07:23:30')})"
    )


def test_recovery_is_the_slowest_job_and_volume_to_fire_after_ready() -> None:
    b = _builder(jobs=(SNAP, BACKUP))
    ready = at("07:13:00")
    for job, first_after in (("soak-snap", at("07:14:00")), ("soak-backup", at("07:18:00"))):

        def down_until_first_after(tick: float, volume: str, first: float = first_after) -> bool:
            # vol-2 comes back one tick later than vol-1
            return at("07:10:00") <= tick < first + (volume == "vol-2") * 120

        b.regular_fires(
            job=job, volumes=["vol-1", "vol-2"], until_s=at("07:30:00"), skip=down_until_first_after
        )
    b.reboot_cycle(node="worker-1", start_s=at("07:10:00"), ready_s=ready)
    b.end(ts_s=at("07:30:00"))
    result = verdict.analyse(b.ledger())
    (reboot,) = result.reboots
    # the backup on vol-2 came last: tick 07:20, done 07:20:08
    assert reboot.recovery_s == at("07:20:08") - ready
    assert _row(result, "soak-backup", "vol-2").missed_ticks_s == (at("07:16:00"), at("07:18:00"))


def test_recovery_is_null_when_a_job_never_fires_on_time_after_ready() -> None:
    b = _builder(jobs=(SNAP, BACKUP))
    b.regular_fires(job="soak-snap", volumes=["vol-1"], until_s=at("07:30:00"))
    b.regular_fires(job="soak-backup", volumes=["vol-1"], until_s=at("07:09:00"))
    b.reboot_cycle(node="worker-1", start_s=at("07:10:00"), ready_s=at("07:13:00"))
    b.end(ts_s=at("07:30:00"))
    (reboot,) = verdict.analyse(b.ledger()).reboots
    assert reboot.recovery_s is None


def test_listed_volumes_that_never_fired_get_a_row_with_every_tick_missed() -> None:
    b = _builder(volumes=["vol-1", "vol-3"])
    b.regular_fires(job="soak-backup", volumes=["vol-1"], until_s=at("07:10:00"))
    b.end(ts_s=at("07:10:00"))
    result = verdict.analyse(b.ledger())
    silent = _row(result, volume="vol-3")
    assert (silent.ticks, silent.missed, silent.fired) == (4, 4, 0)
    assert (silent.lag_p50_s, silent.lag_p95_s, silent.lag_max_s) == (None, None, None)
    assert silent.max_staleness_s == at("07:10:00") - at("07:00:30")
    assert "no on-time fire before it" in _reasons(result)[0]


def test_a_job_that_fired_on_no_volume_fails_without_rows() -> None:
    b = _builder(jobs=(SNAP, BACKUP))
    b.regular_fires(job="soak-snap", volumes=["vol-1"], until_s=at("07:10:00"))
    b.end(ts_s=at("07:10:00"))
    result = verdict.analyse(b.ledger())
    (failure,) = result.failures
    assert (failure.job, failure.volume) == ("soak-backup", None)
    assert failure.reason.startswith(
        f"fired on no volume: 4 ticks outside outages went by without a fire (first {iso('07:02:00')})"
    )
    document = result.to_json()
    assert document["jobs"]["soak-backup"]["volumes"] == {}
    assert document["failures"][0]["volume"] is None


def test_retain_violations_count_done_artifacts_beyond_retain_plus_one() -> None:
    b = _builder(volumes=["vol-1", "vol-2"])
    b.regular_fires(job="soak-backup", volumes=["vol-1"], until_s=at("07:10:00"), cleanup=False)
    b.regular_fires(job="soak-backup", volumes=["vol-2"], until_s=at("07:10:00"), cleanup=True)
    b.end(ts_s=at("07:10:00"))
    result = verdict.analyse(b.ledger())
    # retain 1: the 2nd done is the allowed +1; the 3rd and 4th exceed it.
    assert _row(result, volume="vol-1").retain_violations == 2
    assert _row(result, volume="vol-2").retain_violations == 0
    assert result.passed  # reported, not failing


def test_error_artifacts_never_count_as_retained_and_are_left_until_gone() -> None:
    b = _builder()
    for index, tick in enumerate(("07:02:00", "07:04:00", "07:06:00")):
        name = b.fire(job="soak-backup", volume="vol-1", started_s=at(tick) + 2, done_s=None, state="Error")
        if index == 0:
            b.gone(job="soak-backup", volume="vol-1", name=name, ts_s=at(tick) + 30)
    b.end(ts_s=at("07:08:00"))
    row = _row(verdict.analyse(b.ledger()))
    assert (row.errors_left, row.retain_violations, row.missed) == (2, 0, 3)


def test_error_artifacts_piling_up_beyond_retain_fail_the_job_even_inside_outages() -> None:
    # longhorn#7854: backups during an outage end in Error, are excused as ticks, but are never cleaned up.
    b = _builder()
    b.regular_fires(
        job="soak-backup",
        volumes=["vol-1"],
        until_s=at("07:20:00"),
        skip=lambda t, _v: at("07:08:00") <= t <= at("07:10:00"),
    )
    for tick in ("07:08:00", "07:10:00"):
        b.fire(job="soak-backup", volume="vol-1", started_s=at(tick) + 2, done_s=None, state="Error")
    b.reboot_cycle(node="worker-1", start_s=at("07:07:00"), ready_s=at("07:09:30"))
    b.end(ts_s=at("07:20:00"))
    result = verdict.analyse(b.ledger())
    row = _row(result)
    assert (row.missed, row.errors_left, row.errors_piled_up) == (0, 2, 2)
    assert not row.passed
    assert any(
        "2 Error backups left at the end that no reboot cut off (2 left in all, 0 cut off by reboots), "
        "more than retain 1" in f.reason
        for f in result.failures
    )


def test_a_tick_lost_to_an_error_before_the_reboot_began_is_not_excused() -> None:
    b = _builder()
    b.regular_fires(
        job="soak-backup", volumes=["vol-1"], until_s=at("07:20:00"), skip=lambda t, _v: t == at("07:10:00")
    )
    # The 07:10 backup fails on its own at 07:10:40; the reboot at 07:11:00 is not why.
    b.fire(
        job="soak-backup",
        volume="vol-1",
        started_s=at("07:10:02"),
        done_s=None,
        state="Error",
        ts_s=at("07:10:40"),
    )
    b.reboot_cycle(node="worker-1", start_s=at("07:11:00"), ready_s=at("07:11:30"))
    b.end(ts_s=at("07:20:00"))
    row = _row(verdict.analyse(b.ledger()))
    assert row.missed_ticks_s == (at("07:10:00"),)


def test_backups_cut_off_by_reboots_end_in_error_without_failing_the_job() -> None:
    # A healthy cluster: each reboot interrupts the backup running at that moment, which ends in Error.
    b = _builder()
    interrupted = {at("07:04:00"), at("07:12:00")}
    b.regular_fires(
        job="soak-backup", volumes=["vol-1"], until_s=at("07:20:00"), skip=lambda t, _v: t in interrupted
    )
    for tick in sorted(interrupted):
        b.fire(
            job="soak-backup", volume="vol-1", started_s=tick + 2, done_s=None, state="Error", ts_s=tick + 20
        )
        b.reboot_cycle(node="worker-1", start_s=tick + 10, ready_s=tick + 60)
    b.end(ts_s=at("07:20:00"))
    row = _row(verdict.analyse(b.ledger()))
    assert (row.errors_left, row.missed, row.passed) == (2, 0, True)


def _reboots_cutting_off_backups_then_errors_piling_up() -> Builder:
    """Each of 3 reboots cuts off the backup running then (Error: expected, one per reboot); the
    backup of the tick after each reboot started during the outage and ends in Error too
    (longhorn#7854: those pile up)."""
    b = _builder()
    cut_off = (at("07:04:00"), at("07:12:00"), at("07:20:00"))
    after = tuple(tick + 120 for tick in cut_off)
    b.regular_fires(
        job="soak-backup",
        volumes=["vol-1"],
        until_s=at("07:30:00"),
        skip=lambda t, _v: t in cut_off or t in after,
    )
    for tick in (*cut_off, *after):
        b.fire(
            job="soak-backup", volume="vol-1", started_s=tick + 2, done_s=None, state="Error", ts_s=tick + 20
        )
    for tick in cut_off:
        b.reboot_cycle(node="worker-1", start_s=tick + 10, ready_s=tick + 60)
    b.end(ts_s=at("07:30:00"))
    return b


def test_the_error_count_compared_with_retain_is_the_one_the_failure_names() -> None:
    result = verdict.analyse(_reboots_cutting_off_backups_then_errors_piling_up().ledger())
    row = _row(result)
    assert (row.missed, row.fired_after_last_outage) == (0, True)
    assert (row.errors_left, row.errors_piled_up, row.passed) == (6, 3, False)
    assert _reasons(result) == [
        "3 Error backups left at the end that no reboot cut off (6 left in all, 3 cut off by "
        "reboots), more than retain 1: the retain cleanup skips them, so they pile up"
    ]
    document = result.to_json()["jobs"]["soak-backup"]["volumes"]["vol-1"]
    assert (document["errors_left"], document["errors_piled_up"]) == (6, 3)
    table = verdict.render_table(result)
    header, values = (re.split(r"\s{2,}", line) for line in table.splitlines()[2:4])
    columns = dict(zip(header, values, strict=True))
    assert (columns["ERRORS-LEFT"], columns["PILED-UP"]) == ("6", "3")


def test_error_artifacts_within_retain_are_reported_but_do_not_fail() -> None:
    b = _builder()
    b.regular_fires(
        job="soak-backup", volumes=["vol-1"], until_s=at("07:20:00"), skip=lambda t, _v: t == at("07:08:00")
    )
    b.fire(job="soak-backup", volume="vol-1", started_s=at("07:08:00") + 2, done_s=None, state="Error")
    b.reboot_cycle(node="worker-1", start_s=at("07:07:00"), ready_s=at("07:09:00"))
    b.end(ts_s=at("07:20:00"))
    row = _row(verdict.analyse(b.ledger()))
    assert (row.errors_left, row.passed) == (1, True)


def test_the_latest_record_of_an_artifact_decides() -> None:
    b = _builder(volumes=["vol-1", "vol-2"])
    b.fire_progress(job="soak-backup", volume="vol-1", started_s=at("07:02:03"), done_s=at("07:02:50"))
    name = b.fire(job="soak-backup", volume="vol-2", started_s=at("07:02:03"), done_s=at("07:02:50"))
    b.fire(job="soak-backup", volume="vol-2", started_s=at("07:02:03"), done_s=None, state="Error",
           name=name, ts_s=at("07:03:00"))  # fmt: skip
    b.end(ts_s=at("07:04:00"))
    result = verdict.analyse(b.ledger())
    assert _row(result, volume="vol-1").fired == 1
    assert _row(result, volume="vol-2").missed_causes["error"] == 1


def test_blind_windows_overlapping_missed_ticks_are_named_but_do_not_excuse() -> None:
    b = _builder()
    b.regular_fires(
        job="soak-backup", volumes=["vol-1"], until_s=at("07:20:00"), skip=lambda t, _v: t == at("07:10:00")
    )
    b.blind(from_s=at("07:11:00"), to_s=at("07:11:40"), resource="backups")
    b.blind(from_s=at("07:15:00"), to_s=at("07:15:10"), resource="snapshots")  # overlaps no miss
    b.end(ts_s=at("07:20:00"))
    result = verdict.analyse(b.ledger())
    assert _row(result).missed == 1
    reason = _reasons(result)[0]
    assert f"blind during 1 of them (backups {iso('07:11:00')} to {iso('07:11:40')})" in reason
    assert "snapshots" not in reason
    assert [w["resource"] for w in result.to_json()["blind_windows"]] == ["backups", "snapshots"]


def test_fires_before_the_first_tick_count_for_staleness_but_no_tick() -> None:
    b = _builder()
    b.fire(job="soak-backup", volume="vol-1", started_s=at("07:00:40"), done_s=at("07:00:50"))
    b.regular_fires(job="soak-backup", volumes=["vol-1"], until_s=at("07:06:00"), cleanup=False)
    b.end(ts_s=at("07:06:00"))
    row = _row(verdict.analyse(b.ledger()))
    assert (row.ticks, row.fired, row.unmatched_fires) == (2, 2, 1)
    assert row.max_staleness_s == at("07:04:08") - at("07:02:08")


def test_a_six_field_cron_with_seconds_first_runs_a_compressed_soak() -> None:
    fast = job_spec("soak-backup", task="backup", cron="*/10 * * * * *")
    b = Builder(start_s=at("07:00:00"), jobs=[fast], lag_bound_s=8, settle_s=5)
    b.regular_fires(
        job="soak-backup",
        volumes=["vol-1"],
        until_s=at("07:02:00"),
        delay_s=1,
        duration_s=2,
        skip=lambda t, _v: at("07:00:30") <= t <= at("07:00:40") or t >= at("07:01:30"),
    )
    b.reboot_cycle(node="worker-1", start_s=at("07:00:25"), ready_s=at("07:00:35"), down_s=2)
    b.end(ts_s=at("07:02:00"))
    result = verdict.analyse(b.ledger())
    row = _row(result)
    assert row.ticks == 12
    # excused: 07:00:20 (due until :28, after the reboot began at :25; it fired), :30 and :40 (≤ :40)
    assert (row.excused, row.excused_missed) == (3, 2)
    assert row.missed_ticks_s == (at("07:01:30"), at("07:01:40"), at("07:01:50"))
    assert row.lag_max_s == 3.0
    assert result.reboots[0].recovery_s == at("07:00:53") - at("07:00:35")


def test_notes_tell_what_was_odd_about_the_ledger() -> None:
    b = _builder()
    b.regular_fires(job="soak-backup", volumes=["vol-1"], until_s=at("07:06:00"))
    b.fire(job="soak-other", volume="vol-1", started_s=at("07:03:00"), done_s=at("07:03:05"))
    b.add(at("07:03:00"), {"type": "podstate", "pod": "p"})
    b.end(ts_s=at("07:06:00"), reason="interrupted")
    lines = [*b.lines(), '{"type":"note","ts":"2026-11-27T07:06:01Z","lev']
    result = verdict.analyse(ledger.parse_lines(lines))
    assert result.notes == (
        "the last line was cut off mid-write (the run was killed); it was skipped",
        "skipped records of types this lhsoak does not know: podstate (1)",
        "fire records of jobs not in the run record were ignored: soak-other",
        "the run ended with reason 'interrupted'",
    )
    assert result.passed


SPECIFIED_VOLUME_KEYS = {
    "ticks", "excused", "fired", "missed", "lag_p50_s", "lag_p95_s", "lag_max_s",
    "max_staleness_s", "retain_violations", "errors_left", "passed", "missed_ticks",
}  # fmt: skip


def test_the_json_document_has_every_specified_key() -> None:
    b = _builder(jobs=(SNAP, BACKUP))
    b.regular_fires(job="soak-snap", volumes=["vol-1"], until_s=at("07:30:00"))
    b.regular_fires(job="soak-backup", volumes=["vol-1"], until_s=at("07:12:00"))  # last: 07:10
    # the reboot begins more than the lag bound after the 07:12 tick, which stays a miss
    b.reboot_cycle(node="worker-1", start_s=at("07:14:30"), ready_s=at("07:17:00"))
    b.end(ts_s=at("07:30:00"))
    document = verdict.analyse(b.ledger()).to_json()
    assert {"passed", "jobs", "reboots", "failures"} <= document.keys()
    assert document["passed"] is False
    assert document["jobs"]["soak-snap"]["task"] == "snapshot"
    for job in document["jobs"].values():
        for row in job["volumes"].values():
            assert row.keys() >= SPECIFIED_VOLUME_KEYS
    backup = document["jobs"]["soak-backup"]["volumes"]["vol-1"]
    # fires stopped before the reboot; 07:14 … 07:18 are excused
    missed = ("07:12:00", "07:20:00", "07:22:00", "07:24:00", "07:26:00", "07:28:00")
    assert backup["missed_ticks"] == [iso(clock) for clock in missed]
    assert backup["excused"] == 3
    assert isinstance(backup["lag_p50_s"], float)
    (reboot,) = document["reboots"]
    assert {"node", "start", "ready", "downtime_s", "recovery_s"} <= reboot.keys()
    assert (reboot["start"], reboot["ready"], reboot["downtime_s"]) == (
        iso("07:14:30"),
        iso("07:17:00"),
        150.0,
    )
    assert reboot["recovery_s"] is None
    assert {"job", "volume", "reason"} == document["failures"][0].keys()


def test_the_table_shows_rows_reboots_failures_and_the_verdict() -> None:
    b = _builder(jobs=(SNAP, BACKUP))
    b.regular_fires(job="soak-snap", volumes=["vol-1"], until_s=at("07:30:00"))
    b.regular_fires(job="soak-backup", volumes=["vol-1"], until_s=at("07:12:00"))  # last: 07:10
    # the reboot begins more than the lag bound after the 07:12 tick, which stays a miss
    b.reboot_cycle(node="worker-1", start_s=at("07:14:30"), ready_s=at("07:17:00"))
    b.end(ts_s=at("07:30:00"))
    table = verdict.render_table(verdict.analyse(b.ledger()))
    lines = table.splitlines()
    assert re.split(r"\s{2,}", lines[2]) == [
        "JOB", "VOLUME", "TICKS", "IN-OUTAGE", "FIRED", "MISSED", "MISSED-IN-OUTAGE", "PENDING",
        "LAG p50/p95/max s", "STALENESS s", "OVER-RETAIN", "ERRORS-LEFT", "PILED-UP", "PASSED",
    ]  # fmt: skip
    assert lines[3].split() == [
        "soak-snap",
        "vol-1",
        "14",
        "3",  # in outage: 07:14 (due until 07:16, after the reboot began), 07:16 and 07:18
        "14",
        "0",
        "0",  # none of them missed
        "0",
        "8.0/8.0/8.0",
        "120.0",
        "0",
        "0",
        "0",
        "yes",
    ]
    # missed: 07:12 (before the reboot, not excused) and 07:20 … 07:28
    assert lines[4].split()[:6] == ["soak-backup", "vol-1", "14", "3", "5", "6"]
    assert "worker-1" in table
    assert "150.0" in table
    assert "- soak-backup on vol-1: 6 missed ticks outside outages" in table
    assert lines[-1] == "FAILED (2 failures)"


def test_the_table_says_what_each_count_counts() -> None:
    b = _builder()
    b.regular_fires(job="soak-backup", volumes=["vol-1"], until_s=at("07:10:00"))
    b.end(ts_s=at("07:10:00"))
    table = verdict.render_table(verdict.analyse(b.ledger()))
    for column, meaning in (
        ("IN-OUTAGE", "ticks due while an outage ran"),
        ("MISSED", "missed ticks outside outages"),
        ("MISSED-IN-OUTAGE", "missed ticks excused by an outage"),
        ("ERRORS-LEFT", "every Error artifact never deleted"),
        ("PILED-UP", "those no reboot cut off"),
    ):
        assert re.search(rf"\b{column}: {meaning}", table), (column, table)


@pytest.mark.parametrize(
    ("ready", "reason", "last_line"),
    [
        ("07:22:30", "interrupted", "INTERRUPTED: the run was stopped before its verdict could be reached"),
        ("07:22:30", "completed", "FAILED (4 failures)"),
    ],
)
def test_the_table_ends_with_the_outcome(ready: str, reason: str, last_line: str) -> None:
    table = verdict.render_table(
        verdict.analyse(_interrupted_mid_reboot(ready=ready, reason=reason).ledger())
    )
    assert table.splitlines()[-1] == last_line


def test_a_failed_interrupted_run_says_both() -> None:
    b = _builder()
    b.regular_fires(
        job="soak-backup", volumes=["vol-1"], until_s=at("07:10:00"), skip=lambda t, _v: t == at("07:04:00")
    )
    b.end(ts_s=at("07:10:00"), reason="interrupted")
    result = verdict.analyse(b.ledger())
    assert result.outcome == "failed"
    assert (
        verdict.render_table(result).splitlines()[-1] == "FAILED (1 failure) before the run was INTERRUPTED"
    )


@pytest.mark.parametrize("hours", [1.0])
def test_a_synthetic_soak_passes(hours: float) -> None:
    builder = ledger_synth.soak(start_s=at("00:00:00"), hours=hours, volumes=3)
    result = verdict.analyse(builder.ledger())
    assert result.passed
    assert {row.fired for job in result.jobs for row in job.volumes} == {30}
