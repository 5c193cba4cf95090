"""Drafting an inventory from a cluster's Node objects: names, roles, and a reboot driver per node.

The driver comes from what the node says about itself (`spec.providerID`, as the kubelet or cloud
provider sets it):

| providerID | driver drafted |
|---|---|
| `kind://docker/<cluster>/<node>` (kind) | docker: the container named like the node |
| `k3s://<node>` with a k3d node name `k3d-<cluster>-server-<n>` or `-agent-<n>` | k3d: that node |
| `aws:///<zone>/<instance-id>` | aws (instance id, region from the zone) + ssh beside it |
| `gce://<project>/<zone>/<instance>` | gcp + ssh beside it |
| `azure:///subscriptions/<id>/resourceGroups/<rg>/…/virtualMachines/<vm>` | azure + ssh beside it |
| anything else (bare metal, VMs) | ssh to the node's InternalIP |

The ssh sections name only the host: the user completes user, key and host key (the rendered draft
says so in comments), which `lhsoak.inventory.load` accepts as it stands.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

from lhsoak import errors, inventory

DraftDriver = Literal["auto", "ssh", "docker", "k3d"]
DRAFT_DRIVERS: tuple[DraftDriver, ...] = get_args(DraftDriver)

_CONTROL_PLANE_LABELS = ("node-role.kubernetes.io/control-plane", "node-role.kubernetes.io/master")
_K3D_NODE = re.compile(r"^k3d-.+-(server|agent)-\d+$")
_KIND = re.compile(r"^kind://docker/[^/]+/(?P<node>[^/]+)$")
_AWS = re.compile(r"^aws:///(?P<zone>[a-z0-9-]+)/(?P<instance>i-[0-9a-f]+)$")
_AWS_REGION = re.compile(r"^(?P<region>[a-z]{2}(-gov)?-[a-z]+-\d+)")
_GCE = re.compile(r"^gce://(?P<project>[^/]+)/(?P<zone>[^/]+)/(?P<instance>[^/]+)$")
_AZURE = re.compile(
    r"^azure:///subscriptions/(?P<subscription>[^/]+)/resourceGroups/(?P<group>[^/]+)/"
    r"providers/Microsoft\.Compute/virtualMachines/(?P<vm>[^/]+)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class NodeFacts:
    """What a Node object says that an inventory needs."""

    name: str
    """metadata.name."""
    role: inventory.Role
    """control-plane when labelled node-role.kubernetes.io/control-plane (or master), else worker."""
    internal_ip: str | None
    """The first InternalIP address in status.addresses (None: the node reports none)."""
    provider_id: str
    """spec.providerID ("" when unset)."""


def facts(node: Mapping[str, Any]) -> NodeFacts:
    """The facts of one Node object as the API returns it."""
    metadata = node.get("metadata") or {}
    labels = metadata.get("labels") or {}
    addresses = (node.get("status") or {}).get("addresses") or []
    internal = [entry.get("address") for entry in addresses if entry.get("type") == "InternalIP"]
    return NodeFacts(
        name=str(metadata.get("name")),
        role="control-plane" if any(label in labels for label in _CONTROL_PLANE_LABELS) else "worker",
        internal_ip=str(internal[0]) if internal else None,
        provider_id=str((node.get("spec") or {}).get("providerID") or ""),
    )


def draft(
    nodes: Iterable[NodeFacts],
    *,
    context: str,
    kubeconfig: Path | None,
    driver: DraftDriver = "auto",
    docker_base_url: str | None = None,
) -> inventory.Inventory:
    """An inventory of `nodes` (control planes first, then by name) for the kube context `context`."""
    ordered = sorted(nodes, key=lambda node: (node.role != "control-plane", node.name))
    if not ordered:
        raise errors.UsageError("the cluster has no nodes to put in an inventory")
    drafted = tuple(_node(node, driver=driver, docker_base_url=docker_base_url) for node in ordered)
    return inventory.Inventory(
        cluster=inventory.ClusterTarget(context=context, kubeconfig=kubeconfig), nodes=drafted
    )


def _node(node: NodeFacts, *, driver: DraftDriver, docker_base_url: str | None) -> inventory.Node:
    chosen = _auto_driver(node) if driver == "auto" else driver
    if chosen == "docker":
        target = inventory.DockerTarget(container=_kind_container(node), base_url=docker_base_url)
        return inventory.Node(name=node.name, role=node.role, docker=target)
    if chosen == "k3d":
        return inventory.Node(name=node.name, role=node.role, k3d=inventory.K3dTarget(node=node.name))
    drafted = inventory.Node(name=node.name, role=node.role, ssh=_ssh(node))
    return _with_cloud(drafted, node.provider_id) if driver == "auto" else drafted


def _auto_driver(node: NodeFacts) -> Literal["ssh", "docker", "k3d"]:
    if _KIND.match(node.provider_id):
        return "docker"
    if node.provider_id.startswith("k3s://") and _K3D_NODE.match(node.name):
        return "k3d"
    return "ssh"


def _kind_container(node: NodeFacts) -> str:
    # kind names each node container after its node (pkg/cluster/internal/providers/docker).
    matched = _KIND.match(node.provider_id)
    return matched.group("node") if matched else node.name


def _ssh(node: NodeFacts) -> inventory.SshAccess:
    if node.internal_ip is None:
        raise errors.UsageError(
            f"node {node.name} reports no InternalIP address: give its ssh host in the inventory by hand"
        )
    return inventory.SshAccess(host=node.internal_ip)


def _with_cloud(node: inventory.Node, provider_id: str) -> inventory.Node:
    """The node with the power driver its cloud providerID names (ssh stays, to read the boot id)."""
    if (matched := _AWS.match(provider_id)) and (region := _AWS_REGION.match(matched.group("zone"))):
        target = inventory.AwsTarget(region=region.group("region"), instance_id=matched.group("instance"))
        return dataclasses.replace(node, aws=target)
    if matched := _GCE.match(provider_id):
        gcp = inventory.GcpTarget(
            project=matched.group("project"), zone=matched.group("zone"), instance=matched.group("instance")
        )
        return dataclasses.replace(node, gcp=gcp)
    if matched := _AZURE.match(provider_id):
        azure = inventory.AzureTarget(
            subscription_id=matched.group("subscription"),
            resource_group=matched.group("group"),
            vm_name=matched.group("vm"),
        )
        return dataclasses.replace(node, azure=azure)
    return node


# -- rendering ------------------------------------------------------------------------------------

_SSH_HINT = (
    "# complete: user (default: your login name), key_file, and host_key or known_hosts "
    "(default ~/.ssh/known_hosts)"
)


def render(drafted: inventory.Inventory, *, source: str) -> str:
    """The draft as inventory YAML, with a header and a hint under every ssh host to complete."""
    lines = [
        f"# Drafted by `lhsoak inventory init` from {source}.",
        "# Check every node's driver, complete the ssh sections, then run:",
        "#   make soak KUBECONFIG=<kubeconfig> INVENTORY=<this file>",
        "# Format: the lhsoak README, section 'Inventory'.",
    ]
    for line in inventory.dumps(drafted).splitlines():
        if line.startswith("#"):
            continue
        lines.append(line)
        if line.strip().startswith("host:") and _has_ssh_above(lines):
            indent = line[: len(line) - len(line.lstrip())]
            lines.append(f"{indent}{_SSH_HINT}")
    return "\n".join(lines) + "\n"


def _has_ssh_above(lines: Sequence[str]) -> bool:
    for line in reversed(lines[:-1]):
        stripped = line.strip()
        if stripped.endswith(":") and not stripped.startswith("-"):
            return stripped == "ssh:"
    return False
