"""The live tick check applies the verdict's rule one lag bound after each tick."""

from __future__ import annotations

from lhsoak import artifacts, monitor


def _fire(started: float, done: float | None, state: str = "Completed", job: str = "b") -> artifacts.Artifact:
    return artifacts.Artifact(
        job=job, volume="v", object=f"o-{started}", started=started, done=done, state=state
    )


def _judge(*fires: artifacts.Artifact) -> monitor.Miss | None:
    return monitor.judge_tick(
        job="b", volume="v", tick_s=100.0, next_tick_s=220.0, fires=fires, lag_bound_s=60.0
    )


def test_a_tick_with_an_artifact_done_in_time_is_not_missed() -> None:
    assert _judge(_fire(101.0, 130.0)) is None


def test_a_tick_with_no_artifact_is_missed() -> None:
    miss = _judge(_fire(230.0, 240.0), _fire(101.0, 120.0, job="other"))
    assert miss is not None
    assert "nothing was started" in miss.reason


def test_a_late_artifact_is_missed() -> None:
    miss = _judge(_fire(101.0, 170.0))
    assert miss is not None
    assert "not usable within 60s" in miss.reason


def test_an_artifact_still_in_progress_is_missed() -> None:
    assert _judge(_fire(101.0, None, state="InProgress")) is not None


def test_an_error_artifact_is_missed_even_if_a_later_one_in_the_window_succeeded() -> None:
    miss = _judge(_fire(101.0, None, state="Error"), _fire(150.0, 155.0))
    assert miss is not None
    assert "Error" in miss.reason


def test_ticks_inside_an_outage_and_its_settle_time_are_excused() -> None:
    outages = [monitor.Outage(node="w-1", start_s=90.0, end_s=95.0)]
    assert monitor.excused(100.0, outages, settle_s=10.0, lag_bound_s=5.0)
    assert not monitor.excused(100.0, outages, settle_s=1.0, lag_bound_s=5.0)
    endless = [monitor.Outage(node="w-1", start_s=90.0, end_s=None)]
    assert monitor.excused(1e9, endless, settle_s=0.0, lag_bound_s=5.0)


def test_a_tick_whose_work_was_still_due_when_the_reboot_began_is_excused() -> None:
    outage = [monitor.Outage(node="w-1", start_s=104.0, end_s=110.0)]
    assert monitor.excused(100.0, outage, settle_s=0.0, lag_bound_s=5.0)
    assert not monitor.excused(100.0, outage, settle_s=0.0, lag_bound_s=3.0)
