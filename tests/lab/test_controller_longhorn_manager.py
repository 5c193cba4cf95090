"""longhorn-manager keeps one CronJob per RecurringJob, shaped as upstream's newCronJob."""

from __future__ import annotations

import asyncio
import json

from lhsoak.lab import kinds, profiles
from lhsoak.lab.controllers.longhorn_manager import ANNOTATION_LAST_APPLIED, NAMESPACE
from lhsoak.lab.controllers.meta import Obj
from lhsoak.lab.controllers.testing import InProcessLab
from lhsoak.lab.store import NotFound

# A schedule that never fires while a test runs: the controller is what is under test here.
NEVER = "0 0 1 1 *"
DEADLINE_S = 5.0


def cronjob(lab: InProcessLab, name: str) -> Obj | None:
    try:
        return lab.store.get(kinds.CRONJOB, name, namespace=NAMESPACE)
    except NotFound:
        return None


def test_recurring_job_becomes_a_forbid_cronjob_shaped_as_upstream() -> None:
    async def scenario() -> None:
        async with InProcessLab(profiles.get("healthy")) as lab:
            rj = lab.recurring_job("snap", task="snapshot", cron=NEVER)
            cj = await lab.wait(lambda: cronjob(lab, "snap"), timeout_s=DEADLINE_S, what="CronJob snap")
            assert cj["metadata"]["labels"] == {
                "recurring-job.longhorn.io": "snap",
                "longhorn.io/managed-by": "longhorn-manager",
            }
            assert cj["metadata"]["ownerReferences"] == [
                {
                    "apiVersion": "longhorn.io/v1beta2",
                    "kind": "RecurringJob",
                    "name": "snap",
                    "uid": rj["metadata"]["uid"],
                }
            ]
            spec = cj["spec"]
            assert spec["schedule"] == NEVER
            assert spec["concurrencyPolicy"] == "Forbid"
            assert "startingDeadlineSeconds" not in spec
            assert (spec["successfulJobsHistoryLimit"], spec["failedJobsHistoryLimit"]) == (1, 1)
            job_spec = spec["jobTemplate"]["spec"]
            assert job_spec["backoffLimit"] == 3
            assert "activeDeadlineSeconds" not in job_spec
            assert "ttlSecondsAfterFinished" not in job_spec
            pod = job_spec["template"]["spec"]
            assert pod["restartPolicy"] == "OnFailure"
            assert pod["priorityClassName"] == "longhorn-critical"
            assert pod["containers"][0]["command"] == [
                "longhorn-manager",
                "-d",
                "recurring-job",
                "snap",
                "--manager-url",
                "http://longhorn-backend:9500/v1",
            ]
            assert json.loads(cj["metadata"]["annotations"][ANNOTATION_LAST_APPLIED]) == spec
            assert lab.store.get(kinds.LH_RECURRING_JOB, "snap", namespace=NAMESPACE)["status"][
                "ownerID"
            ].startswith("worker-")

    asyncio.run(scenario())


def test_cronjob_follows_recurring_job_and_settings_and_goes_with_it() -> None:
    async def scenario() -> None:
        async with InProcessLab(profiles.get("healthy")) as lab:
            lab.recurring_job("bak", task="backup", cron=NEVER)
            await lab.wait(lambda: cronjob(lab, "bak"), timeout_s=DEADLINE_S, what="CronJob bak")

            def recron(obj: Obj) -> None:
                obj["spec"]["cron"] = "5 4 * * *"

            lab.store.mutate(kinds.LH_RECURRING_JOB, "bak", recron, namespace=NAMESPACE)
            await lab.wait(
                lambda: (cronjob(lab, "bak") or {}).get("spec", {}).get("schedule") == "5 4 * * *",
                timeout_s=DEADLINE_S,
                what="the CronJob's schedule to follow the RecurringJob's cron",
                seen=lambda: cronjob(lab, "bak"),
            )

            def limit(obj: Obj) -> None:
                obj["value"] = "4"

            lab.store.mutate(
                kinds.LH_SETTING, "recurring-successful-jobs-history-limit", limit, namespace=NAMESPACE
            )
            await lab.wait(
                lambda: (cronjob(lab, "bak") or {}).get("spec", {}).get("successfulJobsHistoryLimit") == 4,
                timeout_s=DEADLINE_S,
                what="successfulJobsHistoryLimit to follow the setting",
                seen=lambda: cronjob(lab, "bak"),
            )

            lab.store.delete(kinds.CRONJOB, "bak", namespace=NAMESPACE)
            await lab.wait(
                lambda: cronjob(lab, "bak"),
                timeout_s=DEADLINE_S,
                what="a CronJob deleted by hand to come back",
            )

            lab.store.delete(kinds.LH_RECURRING_JOB, "bak", namespace=NAMESPACE)
            await lab.wait(
                lambda: cronjob(lab, "bak") is None,
                timeout_s=DEADLINE_S,
                what="the CronJob to go with its RecurringJob",
            )

    asyncio.run(scenario())
