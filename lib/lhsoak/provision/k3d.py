"""k3d command lines (k3d v5.9.0: cmd/cluster/clusterCreate.go, clusterDelete.go,
cmd/kubeconfig/kubeconfigMerge.go). The cluster's context is `k3d-<name>`."""

from __future__ import annotations

import json
from pathlib import Path

from lhsoak.provision.process import Command

CREATE_TIMEOUT_S = 900.0
"""k3d cluster create boots 4 nodes and waits for them (options.k3d.timeout in the config)."""
FIX_ENVIRONMENT = {"K3D_FIX_MOUNTS": "1"}
# k3d writes its /bin/k3d-entrypoint.sh, which runs every /bin/k3d-entrypoint-*.sh of the image (the
# node image's Longhorn preparation among them), only when one of its fixes is enabled; the mounts
# fix also makes / rshared, which CSI mount propagation needs (pkg/types/fixes).


def context(name: str) -> str:
    """The kube context k3d writes for cluster `name`."""
    return f"k3d-{name}"


def node_names(name: str, *, servers: int = 1, agents: int) -> list[str]:
    """The node (and container) names k3d gives: k3d-<name>-server-0, k3d-<name>-agent-0, …"""
    return [f"k3d-{name}-server-{index}" for index in range(servers)] + [
        f"k3d-{name}-agent-{index}" for index in range(agents)
    ]


def create(*, name: str, config: Path) -> Command:
    """Create cluster `name` from `config` (the name argument overrides metadata.name)."""
    argv = (
        "k3d",
        "cluster",
        "create",
        name,
        "--config",
        str(config),
        "--kubeconfig-update-default=false",
        "--kubeconfig-switch-context=false",
    )
    return Command(
        argv=argv, what=f"create the k3d cluster {name}", timeout_s=CREATE_TIMEOUT_S, env=FIX_ENVIRONMENT
    )


def write_kubeconfig(*, name: str, kubeconfig: Path) -> Command:
    """Write cluster `name`'s kubeconfig to the file `kubeconfig`, replacing what is there."""
    argv = (
        "k3d",
        "kubeconfig",
        "write",
        name,
        "--output",
        str(kubeconfig),
        "--overwrite",
        "--kubeconfig-switch-context",
    )
    return Command(argv=argv, what=f"write the kubeconfig of the k3d cluster {name}", timeout_s=60.0)


def delete(*, name: str) -> Command:
    """Delete cluster `name`: its node containers with their volumes."""
    return Command(
        argv=("k3d", "cluster", "delete", name), what=f"delete the k3d cluster {name}", timeout_s=300.0
    )


def list_clusters() -> Command:
    """`k3d cluster list --output json`: a JSON list of clusters, each with its `name`."""
    return Command(
        argv=("k3d", "cluster", "list", "--output", "json"), what="list k3d clusters", timeout_s=60.0
    )


def cluster_names(listing: str) -> set[str]:
    """The names in `k3d cluster list --output json` output ("" or null: none)."""
    parsed = json.loads(listing or "[]") or []
    return {str(entry["name"]) for entry in parsed if isinstance(entry, dict) and "name" in entry}
