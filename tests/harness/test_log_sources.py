"""Which container logs the evidence carries: the longhorn-manager pods of the nodes the findings
point at, then the blocking job pods, each with its run before a restart — bounded."""

from __future__ import annotations

from typing import Any

from lhsoak import diagnosis, pod_logs

NS = "longhorn-system"


def pod(
    name: str,
    node: str,
    *,
    manager: bool = False,
    restarts: int = 0,
    containers: tuple[str, ...] = ("main",),
) -> dict[str, Any]:
    labels = {"app": "longhorn-manager"} if manager else {"job-name": name.rsplit("-", 1)[0]}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "spec": {"nodeName": node, "containers": [{"name": c} for c in containers]},
        "status": {
            "containerStatuses": [{"name": containers[0], "restartCount": restarts}],
        },
    }


def manager(node: str, *, restarts: int = 0) -> dict[str, Any]:
    return pod(
        f"longhorn-manager-{node}", node, manager=True, restarts=restarts, containers=("longhorn-manager",)
    )


def backup(name: str, *, owner: str, job: str, created: str = "2026-01-01T00:00:00Z") -> dict[str, Any]:
    return {
        "apiVersion": "longhorn.io/v1beta2",
        "kind": "Backup",
        "metadata": {"name": name, "namespace": NS, "creationTimestamp": created},
        "spec": {"labels": {"RecurringJob": job}},
        "status": {"ownerID": owner, "state": "InProgress"},
    }


MANAGERS = [manager("worker-1"), manager("worker-2", restarts=1), manager("worker-3")]


def finding(*objects: dict[str, Any], job: str | None = "soak-backup") -> diagnosis.Finding:
    return diagnosis.Finding(
        category="stuck-pending-job",
        job=job,
        summary="s",
        detail="d",
        objects=tuple(diagnosis.ObjectRef.of(obj) for obj in objects),
    )


def snapshot(*objects: dict[str, Any]) -> diagnosis.ClusterSnapshot:
    return diagnosis.ClusterSnapshot(
        taken_at_s=0.0,
        pods=tuple(o for o in objects if o["kind"] == "Pod"),
        backups=tuple(o for o in objects if o["kind"] == "Backup"),
    )


def titles(sources: list[pod_logs.LogSource]) -> list[str]:
    return [source.title for source in sources]


def test_a_stuck_job_pod_brings_its_nodes_manager_and_itself() -> None:
    stuck = pod("soak-backup-29000000-abcde", "worker-2")

    sources = pod_logs.log_sources([finding(stuck)], snapshot(*MANAGERS, stuck))

    assert titles(sources) == [
        "longhorn-manager-worker-2",
        "longhorn-manager-worker-2 (previous)",
        "soak-backup-29000000-abcde",
    ]
    assert sources[0].container == "longhorn-manager"
    assert sources[0].why == "longhorn-manager of worker-2, the node of job pod soak-backup-29000000-abcde"
    assert sources[1].previous
    assert sources[1].command(tail_lines=200) == (
        "kubectl -n longhorn-system logs longhorn-manager-worker-2 -c longhorn-manager --tail=200 --previous"
    )
    assert sources[2].container == "main"


def test_a_backup_brings_the_manager_of_its_node_and_so_does_the_jobs_latest_backup() -> None:
    stuck = backup("backup-aaaa", owner="worker-3", job="soak-backup", created="2026-01-01T00:00:04Z")
    older = backup("backup-bbbb", owner="worker-1", job="soak-backup", created="2026-01-01T00:00:00Z")
    oldest = backup("backup-cccc", owner="worker-2", job="soak-backup", created="2025-12-31T00:00:00Z")

    sources = pod_logs.log_sources([finding(stuck)], snapshot(*MANAGERS, stuck, older, oldest))

    assert titles(sources) == ["longhorn-manager-worker-3", "longhorn-manager-worker-1"]
    assert sources[0].why.endswith("the node of backup backup-aaaa")
    assert sources[1].why.endswith("the node of soak-backup's latest backup backup-bbbb")


def test_findings_that_name_no_node_bring_every_manager_within_the_bound() -> None:
    target_down = finding(job=None)

    sources = pod_logs.log_sources([target_down], snapshot(*MANAGERS), manager_pods=2)

    assert titles(sources) == [
        "longhorn-manager-worker-1",
        "longhorn-manager-worker-2",
        "longhorn-manager-worker-2 (previous)",
    ]
    assert sources[0].why == "longhorn-manager (the findings name no node)"


def test_job_pods_are_bounded_and_a_manager_pod_named_by_a_finding_is_not_a_job_pod() -> None:
    stuck = [pod(f"soak-snap-2900000{n}-xyz", "worker-1") for n in range(5)]

    sources = pod_logs.log_sources([finding(MANAGERS[0], *stuck)], snapshot(*MANAGERS, *stuck), job_pods=2)

    assert titles(sources) == [
        "longhorn-manager-worker-1",
        "soak-snap-29000000-xyz",
        "soak-snap-29000001-xyz",
    ]


def test_no_findings_no_logs() -> None:
    assert pod_logs.log_sources([], snapshot(*MANAGERS)) == []
