"""The controllers behind the lab's API endpoint, seen through the official `kubernetes` client:
what the harness reads on a real cluster is there, shaped the same."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from kubernetes import client
from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_delay, wait_fixed

from lhsoak.lab import profiles
from lhsoak.lab.controllers import LabControllers, seed, seed_volume
from lhsoak.lab.machine import MachineFleet

from ..support.lab_api import LabApi

T = TypeVar("T")
NS = "longhorn-system"
DEADLINE_S = 15.0


class NotYet(AssertionError):
    """The awaited state is not there yet."""


def wait_until(check: Callable[[], T], *, what: str) -> T:
    """`check()` once it stops raising NotYet, polled every 0.2 s for up to DEADLINE_S."""
    retrying = Retrying(
        retry=retry_if_exception_type(NotYet), stop=stop_after_delay(DEADLINE_S), wait=wait_fixed(0.2)
    )
    try:
        return retrying(check)
    except RetryError as exc:
        raise AssertionError(
            f"waited {DEADLINE_S}s for {what}; last seen: {exc.last_attempt.exception()}"
        ) from None


def start_cluster(lab_api: LabApi) -> LabControllers:
    profile = profiles.get("healthy")

    def build() -> LabControllers:
        fleet = MachineFleet.build(
            {"control-plane-1": "control-plane", "worker-1": "worker", "worker-2": "worker"},
            timings=profile.machine_timings(),
        )
        seed(lab_api.store, fleet, profile)
        seed_volume(lab_api.store, "vol-a")
        controllers = LabControllers(lab_api.store, fleet, profile)
        controllers.start()
        return controllers

    controllers: LabControllers = lab_api.call(build)
    return controllers


def test_recurring_job_runs_are_visible_through_the_kubernetes_client(
    lab_api: LabApi, kube_client: Any
) -> None:
    controllers = start_cluster(lab_api)
    try:
        custom = client.CustomObjectsApi(kube_client)
        custom.create_namespaced_custom_object(
            "longhorn.io",
            "v1beta2",
            NS,
            "recurringjobs",
            {
                "apiVersion": "longhorn.io/v1beta2",
                "kind": "RecurringJob",
                "metadata": {"name": "snap"},
                "spec": {
                    "name": "snap",
                    "task": "snapshot",
                    "cron": "* * * * * *",
                    "retain": 2,
                    "groups": ["default"],
                    "concurrency": 1,
                },
            },
        )
        batch = client.BatchV1Api(kube_client)
        core = client.CoreV1Api(kube_client)

        def completed_job() -> Any:
            jobs = batch.list_namespaced_job(NS, label_selector="recurring-job.longhorn.io=snap").items
            done = [
                j
                for j in jobs
                if any(c.type == "Complete" and c.status == "True" for c in j.status.conditions or [])
            ]
            if not done:
                raise NotYet(f"jobs: {[(j.metadata.name, j.status.conditions) for j in jobs]}")
            return done[0]

        job = wait_until(completed_job, what="a completed job of snap")
        assert job.metadata.annotations["batch.kubernetes.io/cronjob-scheduled-timestamp"]
        assert job.metadata.owner_references[0].kind == "CronJob"
        cronjob = batch.read_namespaced_cron_job("snap", NS)
        assert cronjob.spec.concurrency_policy == "Forbid"
        assert cronjob.status.last_schedule_time is not None
        pods = core.list_namespaced_pod(NS, label_selector=f"job-name={job.metadata.name}").items
        assert [p.status.phase for p in pods] == ["Succeeded"]
        events = core.list_namespaced_event(
            NS, field_selector="involvedObject.name=snap,reason=SuccessfulCreate"
        )
        assert events.items
        assert events.items[0].source.component == "cronjob-controller"
        snapshots = custom.list_namespaced_custom_object("longhorn.io", "v1beta2", NS, "snapshots")["items"]
        assert snapshots
        assert snapshots[0]["status"]["readyToUse"] is True
        rj = custom.get_namespaced_custom_object("longhorn.io", "v1beta2", NS, "recurringjobs", "snap")
        assert rj["status"]["executionCount"] >= 1
        nodes = core.list_node().items
        assert {n.metadata.name for n in nodes} == {"control-plane-1", "worker-1", "worker-2"}
    finally:
        lab_api.call(controllers.stop)
