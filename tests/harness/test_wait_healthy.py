"""Before a soak starts, the harness waits for Longhorn to be healthy — saying what it still misses —
and gives up at its deadline with the last problems seen."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lhsoak import cluster, longhorn
from lhsoak.lab import kinds
from lhsoak.lab.cluster import manager_pod

from ..support.lab_api import LabApi, running_lab_api
from ..support.lab_cluster import running_cluster

TARGET_DOWN = {"target_down_after_s": 0.0, "target_down_after_first_backup_s": None}


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[LabApi]:
    with running_lab_api(tmp_path) as api:
        yield api


def _connect(lab: LabApi) -> cluster.Cluster:
    return cluster.Cluster.connect(kubeconfig=lab.kubeconfig, context=None, allowed=("lhsoak-lab",))


def test_the_soak_waits_until_a_backup_target_outage_is_over(lab: LabApi) -> None:
    with running_cluster(lab, profile="backup-target-down", target_down_for_s=3.0, **TARGET_DOWN):
        lab.call(lambda: lab.store.create(kinds.POD, manager_pod("worker-1")))
        api = _connect(lab)
        said: list[str] = []
        try:
            health = longhorn.wait_healthy(api, deadline_s=60, progress=said.append, poll_s=0.2)
        finally:
            api.close()
    assert health.healthy, health.problems
    assert said, "no progress was shown while waiting"
    assert "BackupTarget 'default' is not available" in said[0]


def test_at_the_deadline_the_last_problems_are_returned(lab: LabApi) -> None:
    with running_cluster(lab, profile="backup-target-down", target_down_for_s=600.0, **TARGET_DOWN):
        api = _connect(lab)
        try:
            health = longhorn.wait_healthy(api, deadline_s=1.0, progress=lambda _text: None, poll_s=0.2)
        finally:
            api.close()
    assert not health.healthy
    assert any("no longhorn-manager pod is Running" in problem for problem in health.problems)
    assert any("BackupTarget 'default' is not available" in problem for problem in health.problems)
