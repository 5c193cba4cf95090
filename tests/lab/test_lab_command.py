"""`lhsoak lab up --detach` / `lhsoak lab down`, and Ctrl-C on a foreground `lab up`, as the README
tells a user to run them: a detached lab answers kubectl until `lab down` stops it; Ctrl-C stops a
foreground one cleanly; `lab down` with no lab says so with exit code 2."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import tenacity

from lhsoak.lab import process

KUBECTL = shutil.which("kubectl")


def _lhsoak(*arguments: str, timeout_s: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lhsoak", *arguments],
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed (Debian: kubernetes-client)")
def test_a_detached_lab_serves_kubectl_until_lab_down(tmp_path: Path) -> None:
    state = tmp_path / "lab"
    up = _lhsoak("lab", "up", "--detach", f"--state-dir={state}")
    assert up.returncode == 0, up.stdout + up.stderr
    pid = int((state / process.PID_FILE).read_text())
    try:
        kubeconfig = json.loads((state / process.READY_FILE).read_text())["kubeconfig"]
        assert f"export KUBECONFIG={kubeconfig}" in up.stdout
        nodes = subprocess.run(
            [str(KUBECTL), "get", "nodes", "-o", "name"],
            env={**os.environ, "KUBECONFIG": kubeconfig, "HOME": str(tmp_path)},
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert nodes.stdout.split() == ["node/cp-1", "node/worker-1", "node/worker-2", "node/worker-3"]
    finally:
        down = _lhsoak("lab", "down", f"--state-dir={state}")
    assert down.returncode == 0, down.stdout + down.stderr
    assert f"lab down (pid {pid})" in down.stdout
    assert not _alive(pid)
    assert not (state / process.PID_FILE).exists()
    again = _lhsoak("lab", "down", f"--state-dir={state}")
    assert again.returncode == 2
    assert "no lab is running" in again.stderr


def test_ctrl_c_stops_a_foreground_lab_cleanly(tmp_path: Path) -> None:
    state = tmp_path / "lab"
    lab = subprocess.Popen(
        [sys.executable, "-m", "lhsoak", "lab", "up", f"--state-dir={state}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(FileNotFoundError),
            wait=tenacity.wait_fixed(0.1),
            stop=tenacity.stop_after_delay(60),
            reraise=True,
        )(lambda: (state / process.READY_FILE).read_text())
        lab.send_signal(signal.SIGINT)
        output, _ = lab.communicate(timeout=30)
    finally:
        lab.kill()
    assert lab.returncode == 0, output
    assert "Traceback" not in output
    assert not (state / process.READY_FILE).exists()
    assert not (state / process.PID_FILE).exists()
