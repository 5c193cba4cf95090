"""Helm command lines (Helm 3): Longhorn from its chart repository at the pinned version."""

from __future__ import annotations

from pathlib import Path

from lhsoak import config
from lhsoak.provision import versions
from lhsoak.provision.process import Command

INSTALL_TIMEOUT_S = 600.0
"""helm returns once the objects are created (no --wait: our own waits report progress)."""


def install_longhorn(*, kubeconfig: Path, context: str, values: Path) -> Command:
    """Install (or upgrade to) Longhorn at the pinned chart version with the given values file."""
    argv = (
        "helm",
        "upgrade",
        "--install",
        "longhorn",
        versions.LONGHORN_CHART,
        "--repo",
        versions.LONGHORN_CHART_REPO,
        "--version",
        versions.LONGHORN_CHART_VERSION,
        "--namespace",
        config.LONGHORN_NAMESPACE,
        "--create-namespace",
        "--values",
        str(values),
        "--kubeconfig",
        str(kubeconfig),
        "--kube-context",
        context,
    )
    return Command(
        argv=argv,
        what=f"install Longhorn {versions.LONGHORN_CHART_VERSION} with Helm",
        timeout_s=INSTALL_TIMEOUT_S,
    )
