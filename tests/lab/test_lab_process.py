"""`lhsoak lab up` reports ready only once the cluster is what a user expects of a fresh install:
Longhorn's managers Running and every node Ready, at the first look, with no wait on the user's side."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from subprocess import CompletedProcess

from kubernetes import client
from kubernetes import config as kube_config

from lhsoak.lab.process import LabProcess


def test_a_lab_reported_ready_is_ready_at_the_first_look(tmp_path: Path) -> None:
    lab = LabProcess.start(state_dir=tmp_path / "lab")
    try:
        api_client = kube_config.new_client_from_config(config_file=str(lab.kubeconfig))
        try:
            core = client.CoreV1Api(api_client)
            pods = core.list_namespaced_pod("longhorn-system", label_selector="app=longhorn-manager").items
            nodes = core.list_node().items
        finally:
            api_client.close()
    finally:
        lab.stop()
    assert len(pods) == 3
    assert {pod.metadata.name: pod.status.phase for pod in pods} == {
        pod.metadata.name: "Running" for pod in pods
    }
    ready = {
        node.metadata.name: next(c.status for c in node.status.conditions if c.type == "Ready")
        for node in nodes
    }
    assert ready == dict.fromkeys(ready, "True")
    assert len(ready) == 4


def _lab_up(tmp_path: Path, *options: str, env: dict[str, str] | None = None) -> CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lhsoak", "lab", "up", f"--state-dir={tmp_path / 'lab'}", *options],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
    )


def test_crds_that_are_not_there_are_refused_before_anything_starts(tmp_path: Path) -> None:
    absent = tmp_path / "absent.yaml"
    for result in (
        _lab_up(tmp_path, f"--crds={absent}"),
        _lab_up(tmp_path, env={"LHSOAK_LAB_CRDS": str(absent)}),
    ):
        assert result.returncode == 2, result.stdout + result.stderr
        assert f"{absent}: no such file" in result.stderr
        assert not (tmp_path / "lab" / "kubeconfig").exists()
