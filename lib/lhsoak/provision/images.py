"""The node images: Longhorn needs iscsid on every node, which stock kind and k3s images lack
(longhorn#2739, k3d#719); infra/kind and infra/k3d hold the build files."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from lhsoak.provision import versions
from lhsoak.provision.process import Command

BUILD_TIMEOUT_S = 1200.0
"""A node image build pulls a base image and installs packages: 20 minutes at most."""


def build_command(*, tag: str, context_dir: Path, build_args: Mapping[str, str], what: str) -> Command:
    """`docker build` of the Dockerfile in `context_dir`, tagged `tag`."""
    argv = ["docker", "build", "--tag", tag]
    for name, value in build_args.items():
        argv += ["--build-arg", f"{name}={value}"]
    argv.append(str(context_dir))
    return Command(argv=tuple(argv), what=what, timeout_s=BUILD_TIMEOUT_S)


def kind_node_build(infra: Path) -> Command:
    """Build the kind node image (kindest/node + open-iscsi + nfs-common)."""
    return build_command(
        tag=versions.KIND_NODE_IMAGE,
        context_dir=infra / "kind",
        build_args={"KIND_NODE_BASE": versions.KIND_BASE_IMAGE},
        what="build the kind node image with open-iscsi",
    )


def k3d_node_build(infra: Path) -> Command:
    """Build the k3d node image (k3s on Alpine + open-iscsi)."""
    return build_command(
        tag=versions.K3D_NODE_IMAGE,
        context_dir=infra / "k3d",
        build_args={"K3S_IMAGE": versions.K3S_IMAGE, "ALPINE_IMAGE": versions.ALPINE_IMAGE},
        what="build the k3d node image with open-iscsi",
    )
