"""kubectl command lines: applying manifests, and the state dumped when a wait fails."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from lhsoak import config
from lhsoak.provision.process import Command


def _base(kubeconfig: Path, context: str) -> tuple[str, ...]:
    return ("kubectl", "--kubeconfig", str(kubeconfig), "--context", context)


def apply(*, kubeconfig: Path, context: str, files: Sequence[Path], what: str) -> Command:
    """`kubectl apply` of the given manifest files (server-side validated, created or updated)."""
    argv: tuple[str, ...] = (*_base(kubeconfig, context), "apply")
    for path in files:
        argv += ("--filename", str(path))
    return Command(argv=argv, what=what, timeout_s=120.0)


def diagnostics(*, kubeconfig: Path, context: str) -> dict[str, Command]:
    """What to save when provisioning fails: file name → the command whose output it holds."""
    base = _base(kubeconfig, context)
    ns = config.LONGHORN_NAMESPACE
    return {
        "nodes.txt": Command(argv=(*base, "get", "nodes", "--output", "wide"), what="list nodes"),
        "pods.txt": Command(
            argv=(*base, "get", "pods", "--all-namespaces", "--output", "wide"), what="list pods"
        ),
        "longhorn-objects.txt": Command(
            argv=(
                *base,
                "get",
                "daemonsets,deployments,instancemanagers.longhorn.io,backuptargets.longhorn.io,"
                "volumes.longhorn.io,nodes.longhorn.io",
                "--namespace",
                ns,
                "--output",
                "wide",
            ),
            what="list Longhorn objects",
        ),
        "events.txt": Command(
            argv=(*base, "get", "events", "--all-namespaces", "--sort-by", ".lastTimestamp"),
            what="list events",
        ),
        "longhorn-manager.log": Command(
            argv=(
                *base,
                "logs",
                "--namespace",
                ns,
                "--selector",
                "app=longhorn-manager",
                "--container",
                "longhorn-manager",
                "--tail",
                "300",
                "--prefix",
            ),
            what="read longhorn-manager logs",
        ),
    }
