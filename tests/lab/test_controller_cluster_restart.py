"""A full-cluster restart: the control plane goes down with every worker, the controllers stop
and catch up when it is back, and (healthy) both recurring jobs keep firing."""

from __future__ import annotations

import asyncio
import functools
import time

from lhsoak.lab import kinds, profiles
from lhsoak.lab.controllers.job import job_finished
from lhsoak.lab.controllers.meta import Obj, parse_rfc3339, rfc3339
from lhsoak.lab.controllers.testing import InProcessLab

DEADLINE_S = 15.0
RESTARTS = 3


def completed_after(lab: InProcessLab, job: str, after_s: float) -> int:
    return sum(
        1
        for j in lab.items(kinds.JOB)
        if j["metadata"]["name"].startswith(f"{job}-")
        and job_finished(j) == (True, "Complete")
        and parse_rfc3339(j["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"])
        >= after_s
    )


def both_completed_after(lab: InProcessLab, since_s: float) -> bool:
    return bool(completed_after(lab, "snap", since_s) and completed_after(lab, "bak", since_s))


def test_recurring_jobs_keep_firing_across_full_cluster_restarts() -> None:
    async def scenario() -> None:
        async with InProcessLab(profiles.get("healthy")) as lab:
            lab.volume("vol-a")
            lab.volume("vol-b")
            lab.recurring_job("snap", task="snapshot", cron="* * * * * *", retain=2)
            lab.recurring_job("bak", task="backup", cron="*/2 * * * * *", retain=2)
            for round_ in range(RESTARTS):
                boots = {m.name: m.boot_id for m in lab.fleet}
                for machine in lab.fleet:
                    machine.reboot()
                await lab.wait(
                    lambda: lab.controllers.paused, timeout_s=DEADLINE_S, what="the control plane down"
                )
                await lab.wait(
                    lambda: not lab.controllers.paused, timeout_s=DEADLINE_S, what="the control plane back"
                )
                back_s = time.time()
                await lab.wait(
                    functools.partial(both_completed_after, lab, back_s),
                    timeout_s=DEADLINE_S,
                    what=f"both jobs completing a tick after restart {round_ + 1}",
                    seen=lambda: [(j["metadata"]["name"], j.get("status")) for j in lab.items(kinds.JOB)],
                )
                assert all(m.boot_id != boots[m.name] for m in lab.fleet)
            for node in lab.items(kinds.NODE, namespace=None):
                ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
                assert ready[0]["status"] == "True", node["metadata"]["name"]
                assert node["status"]["nodeInfo"]["bootID"] == lab.fleet[node["metadata"]["name"]].boot_id
            assert lab.event_count("Rebooted") == RESTARTS * len(lab.fleet)
            stuck = [
                p["metadata"]["name"]
                for p in lab.items(kinds.POD)
                if p["status"].get("phase") == "Pending" and p["spec"].get("nodeName")
            ]
            assert len(stuck) <= 2, f"only pods just admitted may still be Pending: {stuck}"
            unfinished_from_before = [
                b["metadata"]["name"]
                for b in lab.items(kinds.LH_BACKUP)
                if b["status"].get("state") not in ("Completed", "Error")
                and parse_rfc3339(b["metadata"]["creationTimestamp"]) < back_s - 1
            ]
            assert not unfinished_from_before, "a backup cut by a reboot ends (Error), it does not hang"

    asyncio.run(scenario())


def test_a_worker_pod_runs_through_a_control_plane_reboot_and_reports_when_the_api_is_back() -> None:
    async def scenario() -> None:
        profile = profiles.get("healthy", down_s=2.5)
        async with InProcessLab(profile) as lab:
            lab.cronjob("work", schedule="* * * * * *", command=["sleep", "0.5"])

            def running() -> Obj | None:
                pods = [
                    p
                    for p in lab.items(kinds.POD, namespace="default")
                    if p["status"].get("phase") == "Running"
                ]
                return pods[0] if pods else None

            pod = await lab.wait(running, timeout_s=DEADLINE_S, what="the job's pod running")
            lab.fleet["control-plane-1"].reboot()
            await lab.wait(
                lambda: lab.controllers.paused, timeout_s=DEADLINE_S, what="the control plane down"
            )
            await lab.wait(
                lambda: not lab.controllers.paused, timeout_s=DEADLINE_S, what="the control plane back"
            )
            resumed = rfc3339(time.time())
            finished = await lab.wait(
                lambda: (
                    lab.store.get(kinds.POD, pod["metadata"]["name"], namespace="default")["status"].get(
                        "phase"
                    )
                    == "Succeeded"
                ),
                timeout_s=DEADLINE_S,
                what="the pod's success to be reported",
            )
            assert finished
            status = lab.store.get(kinds.POD, pod["metadata"]["name"], namespace="default")["status"]
            container = status["containerStatuses"][0]
            assert container["restartCount"] == 0, "the worker's pod was not disturbed"
            assert container["state"]["terminated"]["finishedAt"] < resumed, "it finished during the outage"
            job_name = pod["metadata"]["ownerReferences"][0]["name"]
            job = await lab.wait(
                lambda: next(
                    (
                        j
                        for j in lab.items(kinds.JOB, namespace="default")
                        if j["metadata"]["name"] == job_name and job_finished(j)[0]
                    ),
                    None,
                ),
                timeout_s=DEADLINE_S,
                what=f"job {job_name} to complete",
            )
            assert job["status"]["completionTime"] >= resumed, "controllers saw it only after the outage"

    asyncio.run(scenario())
