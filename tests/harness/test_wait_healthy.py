"""Before a soak starts, the harness waits for Longhorn to be healthy — saying what it still misses —
and gives up at its deadline with the last problems seen. Healthy includes the longhorn-manager
DaemonSet: as many pods Ready as nodes it schedules to, read through the API as an SRE reads it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lhsoak import cluster, longhorn
from lhsoak.lab import kinds
from lhsoak.lab.cluster import manager_pod
from lhsoak.lab.controllers.meta import Obj, condition

from ..support.lab_api import LabApi, running_lab_api
from ..support.lab_cluster import running_cluster

TARGET_DOWN = {"target_down_after_s": 0.0, "target_down_after_first_backup_s": None}
NS = "longhorn-system"


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[LabApi]:
    with running_lab_api(tmp_path) as api:
        yield api


@pytest.fixture
def api(lab: LabApi) -> Iterator[cluster.Cluster]:
    connected = cluster.Cluster.connect(kubeconfig=lab.kubeconfig, context=None, allowed=("lhsoak-lab",))
    yield connected
    connected.close()


def _set_ready(lab: LabApi, pod: str, ready: bool) -> None:
    """What the kubelet writes when a container's readiness probe fails (or passes again)."""

    def change(obj: Obj) -> None:
        found = condition(obj["status"]["conditions"], "Ready")
        assert found is not None
        found["status"] = str(ready)

    lab.call(lambda: lab.store.mutate(kinds.POD, pod, change, namespace=NS, subresource="status"))


def test_the_soak_waits_until_a_backup_target_outage_is_over(lab: LabApi, api: cluster.Cluster) -> None:
    with running_cluster(lab, profile="backup-target-down", target_down_for_s=3.0, **TARGET_DOWN):
        lab.call(lambda: lab.store.create(kinds.POD, manager_pod("worker-1")))
        said: list[str] = []
        health = longhorn.wait_healthy(api, deadline_s=60, progress=said.append, poll_s=0.2)
    assert health.healthy, health.problems
    assert said, "no progress was shown while waiting"
    assert "BackupTarget 'default' is not available" in said[0]


def test_at_the_deadline_the_last_problems_are_returned(lab: LabApi, api: cluster.Cluster) -> None:
    with running_cluster(lab, profile="backup-target-down", target_down_for_s=600.0, **TARGET_DOWN):
        health = longhorn.wait_healthy(api, deadline_s=1.0, progress=lambda _text: None, poll_s=0.2)
    assert not health.healthy
    assert any("no longhorn-manager pod is Running" in problem for problem in health.problems)
    assert any("no longhorn-manager DaemonSet in longhorn-system" in problem for problem in health.problems)
    assert any("BackupTarget 'default' is not available" in problem for problem in health.problems)


def test_a_running_manager_that_is_not_ready_keeps_longhorn_unhealthy(
    lab: LabApi, api: cluster.Cluster
) -> None:
    """Its pod Runs, so the pod check passes; the DaemonSet counts it not Ready, as kubectl shows."""
    with running_cluster(lab, workers=2):
        lab.call(lambda: [lab.store.create(kinds.POD, manager_pod(n)) for n in ("worker-1", "worker-2")])
        assert longhorn.wait_healthy(api, deadline_s=30, progress=lambda _text: None, poll_s=0.1).healthy
        _set_ready(lab, "longhorn-manager-worker-1", False)
        said: list[str] = []
        stuck = longhorn.wait_healthy(api, deadline_s=1.0, progress=said.append, poll_s=0.1)
        assert stuck.problems == ("DaemonSet longhorn-manager: 1/2 pods ready, 2 scheduled",)
        assert any("1/2 pods ready" in line for line in said), said
        _set_ready(lab, "longhorn-manager-worker-1", True)
        health = longhorn.wait_healthy(api, deadline_s=30, progress=lambda _text: None, poll_s=0.1)
    assert health.healthy, health.problems
