"""Each fault profile produces its upstream symptom after a reboot, and `healthy` does not."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from lhsoak.lab import kinds, profiles
from lhsoak.lab.controllers.job import job_finished
from lhsoak.lab.controllers.meta import Obj, condition, parse_rfc3339
from lhsoak.lab.controllers.testing import InProcessLab
from lhsoak.lab.store import WatchEvent

DEADLINE_S = 15.0
EVERY_SECOND = "* * * * * *"
NS = "longhorn-system"


def pods_of(lab: InProcessLab, job: str) -> list[Obj]:
    return lab.items(kinds.POD, label_selector=f"recurring-job.longhorn.io={job}")


def running_pod(lab: InProcessLab, job: str) -> Obj | None:
    running = [p for p in pods_of(lab, job) if p["status"].get("phase") == "Running"]
    return running[0] if running else None


def completed_since(lab: InProcessLab, job: str, since_s: float) -> list[Obj]:
    return [
        j
        for j in lab.items(kinds.JOB, label_selector=f"recurring-job.longhorn.io={job}")
        if job_finished(j) == (True, "Complete")
        and parse_rfc3339(j["metadata"]["annotations"]["batch.kubernetes.io/cronjob-scheduled-timestamp"])
        >= since_s
    ]


def backups(lab: InProcessLab, state: str) -> list[Obj]:
    return [b for b in lab.items(kinds.LH_BACKUP) if b["status"].get("state") == state]


async def reboot_and_wait_ready(lab: InProcessLab, node: str) -> float:
    """Reboot `node`, return when its Node is Ready with the new boot id."""
    old_boot = lab.fleet[node].boot_id
    lab.fleet[node].reboot()

    def ready_again() -> bool:
        obj = lab.store.get(kinds.NODE, node)
        ready = condition(obj["status"]["conditions"], "Ready")
        boot = obj["status"]["nodeInfo"]["bootID"]
        return bool(ready and ready["status"] == "True" and boot != old_boot)

    await lab.wait(ready_again, timeout_s=DEADLINE_S, what=f"{node} Ready after its reboot")
    return time.time()


@pytest.mark.parametrize("profile_name", ["healthy", "stuck-pending"])
def test_job_pod_on_a_rebooted_node(profile_name: str) -> None:
    async def scenario() -> None:
        async with InProcessLab(profiles.get(profile_name, snapshot_ready_s=1.0)) as lab:
            lab.volume("vol-a")
            lab.recurring_job("snap", task="snapshot", cron=EVERY_SECOND)
            victim = await lab.wait(
                lambda: running_pod(lab, "snap"), timeout_s=DEADLINE_S, what="a running pod"
            )
            node = victim["spec"]["nodeName"]
            back_s = await reboot_and_wait_ready(lab, node)

            if profile_name == "healthy":
                await lab.wait(
                    lambda: completed_since(lab, "snap", back_s),
                    timeout_s=DEADLINE_S,
                    what="a job scheduled after the reboot to complete",
                )
                names = {p["metadata"]["name"]: p for p in pods_of(lab, "snap")}
                lost = names.get(victim["metadata"]["name"])
                assert lost is None or lost["status"]["phase"] == "Failed"
                if lost is not None:
                    assert lost["status"]["reason"] == "Terminated"
                    assert condition(lost["status"]["conditions"], "DisruptionTarget") is not None
                return

            already_active = lab.event_count("JobAlreadyActive", involved="snap")
            await lab.wait(
                lambda: lab.event_count("JobAlreadyActive", involved="snap") >= already_active + 3,
                timeout_s=DEADLINE_S,
                what="three more skipped ticks",
            )
            stuck = lab.store.get(kinds.POD, victim["metadata"]["name"], namespace=NS)
            assert stuck["status"]["phase"] == "Pending"
            assert stuck["spec"]["nodeName"] == node
            waiting = stuck["status"]["containerStatuses"][0]["state"]["waiting"]
            assert waiting["reason"] == "ContainerCreating"
            (job,) = lab.items(kinds.JOB, label_selector="recurring-job.longhorn.io=snap")
            assert job["status"]["active"] == 1
            assert not completed_since(lab, "snap", back_s)
            cronjob = lab.store.get(kinds.CRONJOB, "snap", namespace=NS)
            assert [r["name"] for r in cronjob["status"]["active"]] == [job["metadata"]["name"]]

            # The documented workaround: delete the Pending pod; the job and later ticks recover.
            deleted_s = time.time()
            lab.store.delete(kinds.POD, victim["metadata"]["name"], namespace=NS)
            await lab.wait(
                lambda: completed_since(lab, "snap", deleted_s),
                timeout_s=DEADLINE_S,
                what="a tick after the workaround to complete",
            )

    asyncio.run(scenario())


@pytest.mark.parametrize("profile_name", ["healthy", "stuck-backup"])
def test_backup_running_when_its_volume_node_reboots(profile_name: str) -> None:
    async def scenario() -> None:
        async with InProcessLab(profiles.get(profile_name, backup_s=1.5)) as lab:
            # The volume lives on worker-1; job pods run elsewhere, so they survive its reboot.
            lab.store.patch(kinds.NODE, "worker-1", {"spec": {"unschedulable": True}}, patch_type="merge")
            lab.volume("vol-a", node="worker-1")
            lab.recurring_job("bak", task="backup", cron=EVERY_SECOND)
            lab.recurring_job("snap", task="snapshot", cron=EVERY_SECOND)
            (cut,) = await lab.wait(
                lambda: backups(lab, "InProgress"), timeout_s=DEADLINE_S, what="InProgress"
            )
            name = cut["metadata"]["name"]
            back_s = await reboot_and_wait_ready(lab, "worker-1")

            if profile_name == "healthy":
                await lab.wait(
                    lambda: completed_since(lab, "bak", back_s),
                    timeout_s=DEADLINE_S,
                    what="a backup tick after the reboot to complete",
                )
                final = lab.store.get(kinds.LH_BACKUP, name, namespace=NS)["status"]
                assert final["state"] == "Error"
                assert "engine" in final["error"]
                return

            created = lab.event_count("SuccessfulCreate", involved="snap")
            skipped = lab.event_count("JobAlreadyActive", involved="bak")
            await lab.wait(
                lambda: (
                    lab.event_count("SuccessfulCreate", involved="snap") >= created + 3
                    and lab.event_count("JobAlreadyActive", involved="bak") >= skipped + 3
                ),
                timeout_s=DEADLINE_S,
                what="snapshot ticks going on while backup ticks are skipped",
            )
            assert lab.store.get(kinds.LH_BACKUP, name, namespace=NS)["status"]["state"] == "InProgress"
            assert not completed_since(lab, "bak", back_s)
            assert running_pod(lab, "bak") is not None, "the job pod waits on the backup"

            # The documented workaround: delete the InProgress backup; backups resume.
            deleted_s = time.time()
            lab.store.delete(kinds.LH_BACKUP, name, namespace=NS)
            await lab.wait(
                lambda: completed_since(lab, "bak", deleted_s),
                timeout_s=DEADLINE_S,
                what="a backup tick after the workaround to complete",
            )

    asyncio.run(scenario())


@pytest.mark.parametrize("profile_name", ["healthy", "error-backups"])
def test_backups_around_a_node_outage(profile_name: str) -> None:
    async def scenario() -> None:
        async with InProcessLab(profiles.get(profile_name)) as lab:
            lab.volume("vol-a", node="worker-1")
            lab.recurring_job("bak", task="backup", cron=EVERY_SECOND, retain=1)
            await lab.wait(lambda: backups(lab, "Completed"), timeout_s=DEADLINE_S, what="a first backup")
            back_s = await reboot_and_wait_ready(lab, "worker-3")
            window_s = lab.profile.outage_backup_error_s or 0.0
            await lab.wait(
                lambda: completed_since(lab, "bak", back_s + window_s + 1),
                timeout_s=DEADLINE_S,
                what="backups working again after the outage",
            )
            lock_errors = [
                b for b in backups(lab, "Error") if "failed to acquire lock" in b["status"]["error"]
            ]
            if profile_name == "healthy":
                assert not backups(lab, "Error")
                return
            assert len(lock_errors) > 1, "Error backups pile up past retain (1): cleanup skips them"
            assert all(not b["status"].get("backupCreatedAt") for b in lock_errors)
            assert lab.event_count("Error") >= len(lock_errors)

    asyncio.run(scenario())


TIMED_FROM_START = {
    "target_down_after_s": 1.5,
    "target_down_after_first_backup_s": None,
    "target_down_for_s": 2.0,
}


@pytest.mark.parametrize(
    ("profile_name", "overrides"),
    [("healthy", {}), ("backup-target-down", {}), ("backup-target-down", TIMED_FROM_START)],
    ids=["healthy", "after-the-first-backup", "timed-from-the-start"],
)
def test_backup_target_outage(profile_name: str, overrides: dict[str, Any]) -> None:
    async def scenario() -> None:
        profile = profiles.get(profile_name, **overrides)
        async with InProcessLab(profile) as lab:
            availability: list[bool] = []

            def record(event: WatchEvent) -> None:
                if event.kind == kinds.LH_BACKUP_TARGET and "available" in (event.object.get("status") or {}):
                    availability.append(bool(event.object["status"]["available"]))

            lab.store.listen(record)
            lab.volume("vol-a")
            lab.recurring_job("bak", task="backup", cron=EVERY_SECOND)
            started_s = time.time()
            await lab.wait(
                lambda: completed_since(lab, "bak", started_s + 5),
                timeout_s=DEADLINE_S,
                what="a backup tick 5 s after the start to complete",
            )
            target = lab.store.get(kinds.LH_BACKUP_TARGET, "default", namespace=NS)["status"]
            assert target["available"] is True
            if profile_name == "healthy":
                assert False not in availability
                assert not backups(lab, "Error")
                return
            assert False in availability
            errors = backups(lab, "Error")
            assert errors
            assert all("unavailable" in b["status"]["error"] for b in errors)
            unavailable = condition(target["conditions"], "Unavailable")
            assert unavailable is not None
            assert unavailable["status"] == "False"

    asyncio.run(scenario())
