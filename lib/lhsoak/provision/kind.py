"""kind command lines (kind v0.32.0: pkg/cmd/kind/{create,delete}/cluster). kind writes the cluster's
kubeconfig to the file given with --kubeconfig; its context is `kind-<name>`."""

from __future__ import annotations

from pathlib import Path

from lhsoak.provision.process import Command

CREATE_TIMEOUT_S = 900.0
"""kind create cluster pulls nothing (the node image is local) but boots 4 nodes: 15 minutes at most."""
CONTROL_PLANE_WAIT_S = 300
"""--wait: kind returns once the control-plane node is Ready, or fails after this long."""


def context(name: str) -> str:
    """The kube context kind writes for cluster `name`."""
    return f"kind-{name}"


def node_names(name: str, *, workers: int) -> list[str]:
    """The node (and container) names kind gives: <name>-control-plane, <name>-worker, -worker2, …"""
    suffixes = ["worker" if index == 0 else f"worker{index + 1}" for index in range(workers)]
    return [f"{name}-control-plane", *(f"{name}-{suffix}" for suffix in suffixes)]


def create(*, name: str, config: Path, kubeconfig: Path) -> Command:
    """Create cluster `name` from `config`, writing its kubeconfig to `kubeconfig` only."""
    argv = (
        "kind",
        "create",
        "cluster",
        "--name",
        name,
        "--config",
        str(config),
        "--kubeconfig",
        str(kubeconfig),
        "--wait",
        f"{CONTROL_PLANE_WAIT_S}s",
    )
    return Command(argv=argv, what=f"create the kind cluster {name}", timeout_s=CREATE_TIMEOUT_S)


def delete(*, name: str, kubeconfig: Path) -> Command:
    """Delete cluster `name` (its node containers and volumes); succeeds when there is none."""
    argv = ("kind", "delete", "cluster", "--name", name, "--kubeconfig", str(kubeconfig))
    return Command(argv=argv, what=f"delete the kind cluster {name}", timeout_s=300.0)


def list_clusters() -> Command:
    """`kind get clusters`: one cluster name per line (none: a note on stderr, exit 0)."""
    return Command(argv=("kind", "get", "clusters"), what="list kind clusters", timeout_s=60.0)


def cluster_names(listing: str) -> set[str]:
    """The names `kind get clusters` printed."""
    return {line.strip() for line in listing.splitlines() if line.strip()}
