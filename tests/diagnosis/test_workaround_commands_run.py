"""The workaround the diagnosis prints for Error backups piling up is a command that works: pasted
into a shell with the real kubectl against a lab API server holding the same backups, it deletes the
volume's Error backups and nothing else."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from lhsoak.lab import kinds

from ..support.lab_api import CRDS, running_lab_api

KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(KUBECTL is None, reason="kubectl not installed (Debian: kubernetes-client)")
WORKAROUND = re.compile(r"Workaround: delete the Error backups \((?P<command>kubectl .+?)\) or lower")


def _error_backups(world: Any, make: Any, volume: str, minutes: list[str]) -> list[dict[str, Any]]:
    backups = [
        make.backup("soak-bak", volume, created=make.clock(m), state="Error", error=f"failed at {m}")
        for m in minutes
    ]
    world.put(*backups)
    return backups


def _workaround(world: Any, volume: str) -> str:
    findings = [
        f
        for f in world.diagnose(stalled={"soak-bak"})
        if f.category == "error-backups-beyond-retain" and volume in f.summary
    ]
    assert len(findings) == 1, [f.summary for f in findings]
    match = WORKAROUND.search(findings[0].detail)
    assert match, findings[0].detail
    return match.group("command")


def _load(store: Any, backups: list[dict[str, Any]]) -> None:
    for backup in backups:
        # No finalizer: nothing here plays longhorn-manager to release it, and kubectl waits for it.
        meta = {k: v for k, v in backup["metadata"].items() if k not in ("resourceVersion", "uid")}
        created = store.create(kinds.LH_BACKUP, {**backup, "metadata": {**meta, "finalizers": []}})
        status = backup["status"]

        def write(obj: dict[str, Any], status: dict[str, Any] = status) -> None:
            obj["status"] = status

        store.mutate(
            kinds.LH_BACKUP,
            created["metadata"]["name"],
            write,
            namespace="longhorn-system",
            subresource="status",
        )


@pytest.mark.parametrize("count", [3, 9], ids=["a-few-by-name", "many-by-label-and-state"])
def test_the_printed_command_deletes_the_volumes_error_backups_only(
    world: Any, make: Any, tmp_path: Path, count: int
) -> None:
    minutes = [f"11:{m:02d}" for m in range(5, 5 + 3 * count, 3)]
    doomed = _error_backups(world, make, "soak-vol-1", minutes)
    others = _error_backups(world, make, "soak-vol-2", ["11:06", "11:09"])
    completed = make.backup("soak-bak", "soak-vol-1", created=make.clock("11:59"))
    world.put(completed)
    command = _workaround(world, "soak-vol-1")
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "longhorn-system"}}
    with running_lab_api(tmp_path, crd_path=CRDS if CRDS.exists() else None) as lab:
        lab.call(lambda: lab.store.create(kinds.NAMESPACE, namespace))
        lab.call(lambda: _load(lab.store, [b for b in world.all() if b["kind"] == "Backup"]))
        env = {**os.environ, "KUBECONFIG": str(lab.kubeconfig), "HOME": str(tmp_path)}
        ran = subprocess.run(
            ["bash", "-o", "pipefail", "-c", command],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert ran.returncode == 0, f"{command}\n{ran.stdout}{ran.stderr}"
        left = {b["metadata"]["name"] for b in lab.call(lambda: lab.store.list(kinds.LH_BACKUP)[0])}
    assert not left & {b["metadata"]["name"] for b in doomed}, command
    assert {b["metadata"]["name"] for b in [*others, completed]} <= left, command
