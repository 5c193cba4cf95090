"""Job controller, scheduler and kubelet: pod creation, binding, restarts, backoff limit, conditions."""

from __future__ import annotations

import asyncio

from lhsoak.lab import kinds, profiles
from lhsoak.lab.controllers.meta import Obj, condition
from lhsoak.lab.controllers.testing import InProcessLab

DEADLINE_S = 10.0


def job(lab: InProcessLab, name: str, *, command: list[str], restart_policy: str, backoff_limit: int) -> Obj:
    return lab.store.create(
        kinds.JOB,
        {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "backoffLimit": backoff_limit,
                "template": {
                    "spec": {
                        "restartPolicy": restart_policy,
                        "containers": [{"name": "main", "image": "busybox:1.36", "command": command}],
                    }
                },
            },
        },
    )


def job_condition(lab: InProcessLab, name: str, type_: str) -> Obj | None:
    current = lab.store.get(kinds.JOB, name, namespace="default")
    found = condition((current.get("status") or {}).get("conditions"), type_)
    return found if found is not None and found.get("status") == "True" else None


def pods(lab: InProcessLab) -> list[Obj]:
    return lab.items(kinds.POD, namespace="default")


def test_a_job_whose_pod_succeeds_completes() -> None:
    async def scenario() -> None:
        async with InProcessLab(profiles.get("healthy")) as lab:
            job(lab, "ok", command=["true"], restart_policy="OnFailure", backoff_limit=3)
            complete = await lab.wait(
                lambda: job_condition(lab, "ok", "Complete"), timeout_s=DEADLINE_S, what="Job ok Complete"
            )
            assert complete["reason"] == "CompletionsReached"
            status = lab.store.get(kinds.JOB, "ok", namespace="default")["status"]
            assert status["succeeded"] == 1
            assert "active" not in status
            assert status["startTime"] <= status["completionTime"]
            (pod,) = pods(lab)
            assert pod["status"]["phase"] == "Succeeded"
            assert pod["spec"]["nodeName"].startswith("worker-"), "the control plane is tainted"
            assert pod["metadata"]["labels"]["batch.kubernetes.io/job-name"] == "ok"
            terminated = pod["status"]["containerStatuses"][0]["state"]["terminated"]
            assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
            assert lab.event_count("Scheduled") == 1
            assert lab.event_count("Completed", involved="ok") == 1

    asyncio.run(scenario())


def test_on_failure_restarts_count_toward_the_backoff_limit() -> None:
    async def scenario() -> None:
        async with InProcessLab(profiles.get("healthy")) as lab:
            job(lab, "crash", command=["false"], restart_policy="OnFailure", backoff_limit=3)
            failed = await lab.wait(
                lambda: job_condition(lab, "crash", "Failed"),
                timeout_s=DEADLINE_S,
                what="Job crash Failed",
                seen=lambda: [p.get("status") for p in pods(lab)],
            )
            assert (failed["reason"], failed["message"]) == (
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            )
            assert lab.event_count("BackOff") >= 3
            assert lab.event_count("SuccessfulCreate", involved="crash") == 1, "restarts are in place"
            assert lab.event_count("SuccessfulDelete", involved="crash") == 1, "the failed job's pod goes"
            assert not pods(lab)

    asyncio.run(scenario())


def test_never_restart_pods_are_replaced_until_failures_exceed_the_backoff_limit() -> None:
    async def scenario() -> None:
        async with InProcessLab(profiles.get("healthy")) as lab:
            job(lab, "flaky", command=["exit", "2"], restart_policy="Never", backoff_limit=1)
            await lab.wait(
                lambda: job_condition(lab, "flaky", "Failed"), timeout_s=DEADLINE_S, what="Job flaky Failed"
            )
            status = lab.store.get(kinds.JOB, "flaky", namespace="default")["status"]
            assert status["failed"] == 2
            assert sorted(p["status"]["phase"] for p in pods(lab)) == ["Failed", "Failed"]
            exit_codes = {
                p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] for p in pods(lab)
            }
            assert exit_codes == {2}

    asyncio.run(scenario())


def test_without_a_schedulable_node_the_pod_stays_pending_then_binds_when_one_returns() -> None:
    async def scenario() -> None:
        async with InProcessLab(profiles.get("healthy")) as lab:
            for node in lab.items(kinds.NODE, namespace=None):
                if node["metadata"]["name"].startswith("worker-"):
                    lab.store.patch(
                        kinds.NODE,
                        node["metadata"]["name"],
                        {"spec": {"unschedulable": True}},
                        patch_type="merge",
                    )
            job(lab, "waits", command=["true"], restart_policy="OnFailure", backoff_limit=3)

            def unschedulable() -> Obj | None:
                for pod in pods(lab):
                    cond = condition(pod["status"].get("conditions"), "PodScheduled")
                    if cond is not None and cond.get("reason") == "Unschedulable":
                        return pod
                return None

            pod = await lab.wait(unschedulable, timeout_s=DEADLINE_S, what="an Unschedulable pod")
            assert pod["status"]["phase"] == "Pending"
            assert not pod["spec"].get("nodeName")
            (event,) = lab.events("FailedScheduling")
            assert event["type"] == "Warning"
            assert event["message"].startswith("0/4 nodes are available: ")
            assert "3 node(s) were unschedulable" in event["message"]
            assert (
                "1 node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"
                in event["message"]
            )

            lab.store.patch(kinds.NODE, "worker-2", {"spec": {"unschedulable": None}}, patch_type="merge")
            await lab.wait(
                lambda: job_condition(lab, "waits", "Complete"),
                timeout_s=DEADLINE_S,
                what="Job waits Complete",
            )
            (pod,) = pods(lab)
            assert pod["spec"]["nodeName"] == "worker-2"
            assert condition(pod["status"]["conditions"], "PodScheduled")["status"] == "True"  # type: ignore[index]

    asyncio.run(scenario())
