"""The lab's CronJob controller follows cronjob_controllerv2.go: names, ticks, Forbid, catch-up, history."""

from __future__ import annotations

import asyncio
import time

import pytest

from lhsoak.lab import kinds, profiles
from lhsoak.lab.controllers import cron
from lhsoak.lab.controllers.cronjob import (
    SCHEDULED_TIMESTAMP_ANNOTATION,
    job_name_for,
    most_recent_schedule_time,
    next_schedule_delay,
)
from lhsoak.lab.controllers.job import job_finished
from lhsoak.lab.controllers.meta import Obj, parse_rfc3339, rfc3339
from lhsoak.lab.controllers.testing import InProcessLab

DEADLINE_S = 10.0
T0 = 1_699_999_920.0  # a multiple of 120 s: minute and even-second boundaries line up


def cronjob_at(created_s: float, *, last_s: float | None = None) -> Obj:
    status = {} if last_s is None else {"lastScheduleTime": rfc3339(last_s)}
    return {"metadata": {"name": "cj", "creationTimestamp": rfc3339(created_s)}, "spec": {}, "status": status}


def test_only_the_most_recent_missed_tick_is_due() -> None:
    schedule = cron.parse("*/2 * * * * *")
    _, most_recent, missed = most_recent_schedule_time(
        cronjob_at(T0, last_s=T0), T0 + 9.5, schedule, include_starting_deadline=False
    )
    assert (most_recent, missed) == (T0 + 8, "few")


def test_no_tick_is_due_before_the_first_one() -> None:
    schedule = cron.parse("*/2 * * * * *")
    _, most_recent, missed = most_recent_schedule_time(
        cronjob_at(T0), T0 + 1.5, schedule, include_starting_deadline=False
    )
    assert (most_recent, missed) == (None, "none")
    assert next_schedule_delay(cronjob_at(T0), T0 + 1.5, schedule) == pytest.approx(0.6)


def test_more_than_a_hundred_missed_ticks_are_many_and_the_latest_still_runs() -> None:
    schedule = cron.parse("* * * * *")
    _, most_recent, missed = most_recent_schedule_time(
        cronjob_at(T0), T0 + 150 * 60 + 30, schedule, include_starting_deadline=False
    )
    assert (most_recent, missed) == (T0 + 150 * 60, "many")


def test_job_name_suffix_is_minutes_for_standard_and_seconds_for_seconds_schedules() -> None:
    cj = {"metadata": {"name": "backup"}}
    assert job_name_for(cj, T0 + 60, cron.parse("* * * * *")) == f"backup-{int(T0) // 60 + 1}"
    assert job_name_for(cj, T0 + 2, cron.parse("*/2 * * * * *")) == f"backup-{int(T0) + 2}"


def test_bad_schedules_are_refused() -> None:
    with pytest.raises(cron.ScheduleError):
        cron.parse("* * *")
    with pytest.raises(cron.ScheduleError):
        cron.parse("99 * * * *")


def test_ticks_create_named_annotated_jobs_then_history_is_cleaned_up() -> None:
    async def scenario() -> None:
        async with InProcessLab(profiles.get("healthy")) as lab:
            lab.cronjob("tick", schedule="* * * * * *", command=["true"], history=(1, 1))
            await lab.wait(
                lambda: lab.event_count("SuccessfulDelete", involved="tick") >= 2,
                timeout_s=DEADLINE_S,
                what="two finished jobs cleaned up by the history limit",
                seen=lambda: [j["metadata"]["name"] for j in lab.items(kinds.JOB, namespace="default")],
            )
            jobs = lab.items(kinds.JOB, namespace="default")
            assert len(jobs) <= 2, "history limit 1 plus at most one running job"
            for job in jobs:
                scheduled_s = parse_rfc3339(job["metadata"]["annotations"][SCHEDULED_TIMESTAMP_ANNOTATION])
                assert job["metadata"]["name"] == f"tick-{int(scheduled_s)}"
                assert job["metadata"]["ownerReferences"][0]["kind"] == "CronJob"
                assert job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"]
            status = lab.store.get(kinds.CRONJOB, "tick", namespace="default")["status"]
            newest = max(jobs, key=lambda j: j["metadata"]["name"])
            assert (
                status["lastScheduleTime"]
                == newest["metadata"]["annotations"][SCHEDULED_TIMESTAMP_ANNOTATION]
            )
            assert "lastSuccessfulTime" in status
            assert lab.event_count("SuccessfulCreate", involved="tick") >= 3
            assert lab.event_count("SawCompletedJob", involved="tick") >= 2

    asyncio.run(scenario())


def test_forbid_skips_every_tick_while_a_job_is_active_with_one_aggregated_event() -> None:
    async def scenario() -> None:
        async with InProcessLab(profiles.get("healthy")) as lab:
            lab.cronjob("hang", schedule="* * * * * *", command=["sleep", "infinity"])
            await lab.wait(
                lambda: lab.event_count("JobAlreadyActive", involved="hang") >= 3,
                timeout_s=DEADLINE_S,
                what="three JobAlreadyActive events",
            )
            jobs = lab.items(kinds.JOB, namespace="default")
            assert len(jobs) == 1
            status = lab.store.get(kinds.CRONJOB, "hang", namespace="default")["status"]
            assert [ref["name"] for ref in status["active"]] == [jobs[0]["metadata"]["name"]]
            events = lab.events("JobAlreadyActive", involved="hang")
            assert len(events) == 1, "repeats are counted on one Event, as client-go does"
            assert events[0]["message"] == (
                "Not starting job because prior execution is running and concurrency policy is Forbid"
            )
            assert events[0]["source"] == {"component": "cronjob-controller"}

    asyncio.run(scenario())


def test_after_downtime_only_the_most_recent_missed_tick_is_started() -> None:
    async def scenario() -> None:
        async with InProcessLab(profiles.get("healthy")) as lab:
            lab.cronjob(
                "catch",
                schedule="* * * * * *",
                command=["true"],
                concurrency_policy="Allow",
                history=(50, 50),
            )
            await lab.wait(
                lambda: lab.items(kinds.JOB, namespace="default"), timeout_s=DEADLINE_S, what="a first job"
            )
            lab.controllers.pause()
            paused_names = {j["metadata"]["name"] for j in lab.items(kinds.JOB, namespace="default")}
            await asyncio.sleep(3.5)  # emulated downtime: three ticks pass with no controller
            resumed_s = time.time()
            lab.controllers.resume()
            await lab.wait(
                lambda: len(lab.items(kinds.JOB, namespace="default")) > len(paused_names),
                timeout_s=DEADLINE_S,
                what="the catch-up job",
            )
            new = sorted(
                int(j["metadata"]["name"].rsplit("-", 1)[1])
                for j in lab.items(kinds.JOB, namespace="default")
                if j["metadata"]["name"] not in paused_names
            )
            last_before = max(int(n.rsplit("-", 1)[1]) for n in paused_names)
            assert new[0] == int(resumed_s), "the catch-up job is for the most recent tick"
            assert not [s for s in new if last_before < s < int(resumed_s)], "missed ticks are not replayed"

    asyncio.run(scenario())


def test_finished_job_conditions_are_read_as_upstream() -> None:
    assert job_finished({"status": {"conditions": [{"type": "Complete", "status": "True"}]}}) == (
        True,
        "Complete",
    )
    assert job_finished({"status": {"conditions": [{"type": "Failed", "status": "True"}]}}) == (
        True,
        "Failed",
    )
    assert job_finished({"status": {"conditions": [{"type": "Failed", "status": "False"}]}}) == (False, "")
