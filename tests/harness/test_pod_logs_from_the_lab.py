"""The harness reads the evidence's logs from a lab over HTTPS, as from a real cluster: a backup that
does not finish is diagnosed, and the logs the findings point at — the longhorn-manager of the
backup's node, the job pod waiting on it — are read through `Cluster.pod_log`."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lhsoak import cluster, config, diagnosis, pod_logs
from lhsoak.lab import kinds, kubeconfig
from lhsoak.lab.cluster import manager_pod
from lhsoak.lab.controllers.seed import seed_volume

from ..support.lab_api import LabApi, running_lab_api
from ..support.lab_cluster import NotYet, eventually, running_cluster

NS = "longhorn-system"
JOB = config.JobSpec(name="bak", task="backup", cron="* * * * * *", retain=1)


@pytest.fixture
def lab_api(tmp_path: Path) -> Iterator[LabApi]:
    with running_lab_api(tmp_path) as lab:
        yield lab


@pytest.fixture
def api(lab_api: LabApi) -> Iterator[cluster.Cluster]:
    connected = cluster.Cluster.connect(
        kubeconfig=lab_api.kubeconfig, context=None, allowed=(kubeconfig.DEFAULT_NAME,)
    )
    yield connected
    connected.close()


def recurring_job() -> dict[str, Any]:
    return {
        "apiVersion": kinds.LH_RECURRING_JOB.api_version,
        "kind": kinds.LH_RECURRING_JOB.kind,
        "metadata": {"name": JOB.name, "namespace": NS},
        "spec": {
            "name": JOB.name,
            "task": JOB.task,
            "cron": JOB.cron,
            "retain": JOB.retain,
            "groups": ["default"],
            "concurrency": 1,
            "labels": {},
        },
    }


def listed(api: cluster.Cluster) -> diagnosis.ClusterSnapshot:
    def items(resource: cluster.Resource) -> tuple[dict[str, Any], ...]:
        return tuple(api.list(resource, namespace=NS).items)

    return diagnosis.ClusterSnapshot(
        # The rules' "now", a second on: the backup is then past the (tiny) stuck threshold, whose
        # creationTimestamp has whole seconds only.
        taken_at_s=time.time() + 1.0,
        cronjobs=items(cluster.CRONJOBS),
        jobs=items(cluster.JOBS),
        pods=items(cluster.PODS),
        backups=items(cluster.BACKUPS),
        volumes=items(cluster.VOLUMES),
        recurring_jobs=items(cluster.RECURRING_JOBS),
    )


def test_the_logs_of_a_backup_that_does_not_finish_are_read_over_http(
    lab_api: LabApi, api: cluster.Cluster
) -> None:
    # A backup that takes a minute stands for one that never finishes: the job pod waits on it.
    with running_cluster(lab_api, workers=2, backup_s=60.0):

        def install() -> None:
            for node in ("worker-1", "worker-2"):
                lab_api.store.create(kinds.POD, manager_pod(node))
            seed_volume(lab_api.store, "vol-1", node="worker-1")
            lab_api.store.create(kinds.LH_RECURRING_JOB, recurring_job())

        lab_api.call(install)

        def backup_running() -> str:
            for backup in api.list(cluster.BACKUPS, namespace=NS).items:
                if (backup.get("status") or {}).get("state") == "InProgress":
                    return str(backup["metadata"]["name"])
            raise NotYet("no backup InProgress")

        name = eventually(backup_running, what="a backup of bak to be InProgress")

        def waiting_logged() -> dict[str, str]:
            snapshot = listed(api)
            findings = diagnosis.diagnose(
                snapshot, jobs=[JOB], thresholds=diagnosis.Thresholds(backup_stuck_after_s=0.001)
            )
            logs = pod_logs.read_logs(api, pod_logs.log_sources(findings, snapshot), now_s=time.time())
            if not any("current progress" in text for text in logs.values()):
                raise NotYet(f"findings {[f.category for f in findings]}, logs {list(logs)}")
            return logs

        logs = eventually(waiting_logged, what="the job pod to log its wait on the backup")

    manager = logs["longhorn-manager-worker-1"]
    assert manager.startswith(
        "# kubectl -n longhorn-system logs longhorn-manager-worker-1 -c longhorn-manager --tail=200\n"
        f"# longhorn-manager of worker-1, the node of backup {name}; read at "
    )
    assert f'msg="Enable backup monitor for backup {name}"' in manager
    job_pods = [title for title in logs if title.startswith("bak-")]
    assert len(job_pods) == 1, list(logs)
    assert f'msg="Creating backup {name}, current progress ' in logs[job_pods[0]]
    job_node = logs[job_pods[0]].split("# job pod on ", 1)[1].split(",", 1)[0]
    managers = {title for title in logs if title.startswith("longhorn-manager-")}
    assert managers == {"longhorn-manager-worker-1", f"longhorn-manager-{job_node}"}


def test_a_log_the_server_cannot_give_is_one_line_saying_why(lab_api: LabApi, api: cluster.Cluster) -> None:
    with running_cluster(lab_api, workers=1):
        lab_api.call(lambda: lab_api.store.create(kinds.POD, manager_pod("worker-1")))

        def started() -> str:
            text = api.pod_log(NS, "longhorn-manager-worker-1")
            if not text or text.startswith("(no log"):
                raise NotYet(text)
            return text

        eventually(started, what="worker-1's manager to start")

        assert api.pod_log(NS, "longhorn-manager-worker-1", container="nope") == (
            "(no log: container nope is not valid for pod longhorn-manager-worker-1)\n"
        )
        assert api.pod_log(NS, "longhorn-manager-worker-1", previous=True) == (
            '(no log: previous terminated container "longhorn-manager" in pod '
            '"longhorn-manager-worker-1" not found)\n'
        )
        assert api.pod_log(NS, "gone") == '(no log: pods "gone" not found)\n'
        assert api.pod_log(NS, "longhorn-manager-worker-1", tail_lines=1, since_s=0.2).count("\n") == 1
        with pytest.raises(cluster.ClusterError) as invalid:
            api.pod_log(NS, "longhorn-manager-worker-1", tail_lines=-1)
        assert invalid.value.status == 422
