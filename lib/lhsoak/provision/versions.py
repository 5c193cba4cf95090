"""Every version the nightly cluster pins, in one place (the Dockerfiles, configs and the CI tool
installer repeat some of them; tests/infra keeps the copies equal to these).

Longhorn 1.12.1 is tested on Kubernetes 1.33-1.36 (longhorn.io docs, best practices); both cluster
kinds run 1.36.1.
"""

from __future__ import annotations

KUBERNETES_VERSION = "v1.36.1"
"""The Kubernetes version of both nightly clusters."""

LONGHORN_CHART = "longhorn"
LONGHORN_CHART_REPO = "https://charts.longhorn.io"
LONGHORN_CHART_VERSION = "1.12.1"
"""The Longhorn Helm chart version (the CRDs in shared/longhorn are this release's)."""

KIND_VERSION = "v0.32.0"
KIND_BASE_IMAGE = (
    "kindest/node:v1.36.1@sha256:3489c7674813ba5d8b1a9977baea8a6e553784dab7b84759d1014dbd78f7ebd5"
)
"""kind v0.32.0's default node image (pkg/apis/config/defaults/image.go), by digest."""
KIND_NODE_IMAGE = "lhsoak/kind-node:v1.36.1-lh1"
"""The image infra/kind/Dockerfile builds: KIND_BASE_IMAGE plus open-iscsi and nfs-common."""

K3D_VERSION = "v5.9.0"
K3S_IMAGE = "rancher/k3s:v1.36.1-k3s1"
ALPINE_IMAGE = "alpine:3.22"
K3D_NODE_IMAGE = "lhsoak/k3d-node:v1.36.1-k3s1-lh1"
"""The image infra/k3d/Dockerfile builds: k3s's /bin on Alpine with open-iscsi."""

HELM_VERSION = "v3.19.0"
KUBECTL_VERSION = KUBERNETES_VERSION

MINIO_IMAGE = "minio/minio:RELEASE.2022-02-01T18-00-14Z"
"""The MinIO release Longhorn's own backupstore manifest pins."""
TEST_POD_IMAGE = "busybox:1.37.0"
"""The image of the pod that proves a Longhorn volume attaches."""
