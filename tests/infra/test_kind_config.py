"""infra/kind: the cluster config against the fields of kind v0.32.0's v1alpha4 API, and the node
image's Dockerfile.

kind reads its config strictly (pkg/internal/apis/config/encoding/load.go: yamlUnmarshalStrict), so
an unknown field fails `kind create cluster`. kind ships no JSON schema; the fields below are those of
pkg/apis/config/v1alpha4/types.go at v0.32.0 (Cluster, Node, Mount, PortMapping, Networking).
"""

from __future__ import annotations

from typing import Any

import yaml

from lhsoak.provision import kind, providers, versions

from .conftest import INFRA

CONFIG = INFRA / "kind" / "cluster.yaml"
CLUSTER_FIELDS = {
    "kind",
    "apiVersion",
    "name",
    "nodes",
    "networking",
    "featureGates",
    "runtimeConfig",
    "kubeadmConfigPatches",
    "kubeadmConfigPatchesJSON6902",
    "containerdConfigPatches",
    "containerdConfigPatchesJSON6902",
}
NODE_FIELDS = {
    "role",
    "image",
    "labels",
    "extraMounts",
    "extraPortMappings",
    "kubeadmConfigPatches",
    "kubeadmConfigPatchesJSON6902",
}
MOUNT_FIELDS = {"containerPath", "hostPath", "readOnly", "selinuxRelabel", "propagation"}
NODE_ROLES = {"control-plane", "worker"}
PROPAGATIONS = {"None", "HostToContainer", "Bidirectional"}


def problems(config: dict[str, Any]) -> list[str]:
    """What kind v0.32.0 would reject in `config` (the parts of its API this project can use)."""
    found = [f"unknown field {key}" for key in config if key not in CLUSTER_FIELDS]
    if (config.get("kind"), config.get("apiVersion")) != ("Cluster", "kind.x-k8s.io/v1alpha4"):
        found.append("not a kind.x-k8s.io/v1alpha4 Cluster")
    for index, node in enumerate(config.get("nodes") or []):
        found += [f"nodes[{index}]: unknown field {key}" for key in node if key not in NODE_FIELDS]
        if node.get("role") not in NODE_ROLES:
            found.append(f"nodes[{index}]: role {node.get('role')!r}")
        for mount in node.get("extraMounts") or []:
            found += [
                f"nodes[{index}]: unknown mount field {key}" for key in mount if key not in MOUNT_FIELDS
            ]
            if mount.get("propagation", "None") not in PROPAGATIONS:
                found.append(f"nodes[{index}]: propagation {mount['propagation']!r}")
    return found


def test_the_cluster_config_uses_only_kinds_fields() -> None:
    assert problems(yaml.safe_load(CONFIG.read_text())) == []


def test_the_check_catches_a_misspelt_field() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    config["nodes"][1]["extraMount"] = []
    config["nodes"][2]["role"] = "agent"
    assert problems(config) == ["nodes[1]: unknown field extraMount", "nodes[2]: role 'agent'"]


def test_one_control_plane_three_workers_of_the_pinned_image() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    roles = [node["role"] for node in config["nodes"]]
    assert roles == ["control-plane"] + ["worker"] * providers.WORKERS
    assert {node["image"] for node in config["nodes"]} == {versions.KIND_NODE_IMAGE}
    assert len(kind.node_names(config["name"], workers=providers.WORKERS)) == len(roles)


def test_the_dockerfile_builds_on_kinds_pinned_node_image() -> None:
    dockerfile = (INFRA / "kind" / "Dockerfile").read_text()
    assert f"ARG KIND_NODE_BASE={versions.KIND_BASE_IMAGE}\n" in dockerfile
    assert "open-iscsi nfs-common" in dockerfile
    assert "systemctl enable iscsid.service" in dockerfile
    assert versions.KIND_BASE_IMAGE.startswith(f"kindest/node:{versions.KUBERNETES_VERSION}@sha256:")
