"""longhorn-manager pods that did not come back after a reboot are named, with their node and why."""

from __future__ import annotations

from typing import Any

from lhsoak import longhorn


def _pod(
    name: str, node: str, phase: str, *, app: str = "longhorn-manager", reason: str = ""
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "longhorn-system", "labels": {"app": app}},
        "spec": {"nodeName": node},
        "status": {"phase": phase, "reason": reason},
    }


def test_only_manager_pods_that_are_not_running_are_named() -> None:
    pods = [
        _pod("longhorn-manager-a", "worker-1", "Running"),
        _pod("longhorn-manager-b", "worker-2", "Failed", reason="Terminated"),
        _pod("longhorn-manager-c", "worker-3", "Pending"),
        _pod("soak-backup-123-x", "worker-3", "Pending", app="other"),
    ]
    assert longhorn.manager_pod_problems(pods) == [
        "longhorn-manager-b on worker-2: Failed (Terminated)",
        "longhorn-manager-c on worker-3: Pending",
    ]


def test_all_running_is_no_problem() -> None:
    assert longhorn.manager_pod_problems([_pod("longhorn-manager-a", "worker-1", "Running")]) == []
