"""The in-cluster S3 backup target (MinIO, infra/backupstore/) and the objects that prove a volume
attaches: what `lhsoak provision` creates besides Longhorn itself.

Credentials are made fresh for every cluster and written only to the provisioning work directory
(upstream generates them too: longhorn deploy/backupstores, scripts/generate-backupstore-credentials.sh).
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass, field
from typing import Any

import yaml

from lhsoak import config
from lhsoak.cluster import Obj
from lhsoak.provision import versions

SECRET_NAME = "minio-secret"
BUCKET = "backupbucket"
REGION = "us-east-1"
TARGET_URL = f"s3://{BUCKET}@{REGION}/"
"""Longhorn's S3 URL form s3://<bucket>@<region>/<path>."""
ENDPOINT = "http://minio-service.default:9000"
MINIO_NAMESPACE = "default"
MINIO_DEPLOYMENT = "longhorn-test-minio"


@dataclass(frozen=True)
class Credentials:
    """The MinIO root user, which Longhorn uses as its S3 access key (never printed)."""

    access_key: str
    """AWS_ACCESS_KEY_ID and MINIO_ROOT_USER."""
    secret_key: str = field(repr=False)
    """AWS_SECRET_ACCESS_KEY and MINIO_ROOT_PASSWORD."""


def new_credentials() -> Credentials:
    """Fresh random credentials for one cluster."""
    return Credentials(access_key=f"lhsoak-{secrets.token_hex(6)}", secret_key=secrets.token_urlsafe(30))


def secret_objects(credentials: Credentials) -> list[Obj]:
    """`minio-secret` in `default` (MinIO reads its root user from it) and in longhorn-system (the
    BackupTarget's credentialSecret), as Longhorn's backupstore manifest has it."""
    data = {
        "AWS_ACCESS_KEY_ID": credentials.access_key,
        "AWS_SECRET_ACCESS_KEY": credentials.secret_key,
        "AWS_ENDPOINTS": ENDPOINT,
    }
    encoded = {key: base64.b64encode(value.encode()).decode() for key, value in data.items()}
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": SECRET_NAME, "namespace": namespace},
            "type": "Opaque",
            "data": dict(encoded),
        }
        for namespace in (MINIO_NAMESPACE, config.LONGHORN_NAMESPACE)
    ]


def namespace_object(name: str) -> Obj:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def manifest(objects: list[Obj]) -> str:
    """Objects as one multi-document YAML manifest for `kubectl apply`."""
    return yaml.safe_dump_all(objects, sort_keys=False)


def backup_target_patch() -> Obj:
    """The merge patch that points BackupTarget `default` at MinIO with the secret's credentials."""
    return {"spec": {"backupTargetURL": TARGET_URL, "credentialSecret": SECRET_NAME}}


@dataclass(frozen=True)
class AttachTest:
    """A PVC of Longhorn's StorageClass and a pod that mounts it: the proof that a volume attaches."""

    namespace: str = "default"
    """Where the claim and the pod live; default `default`."""
    claim: str = "lhsoak-attach-test"
    """PVC name."""
    pod: str = "lhsoak-attach-test"
    """Pod name."""
    size: str = "1Gi"
    """Requested size; default 1Gi (Longhorn volumes are thin)."""

    def objects(self) -> list[Obj]:
        """The PVC, then the pod."""
        return [self.claim_object(), self.pod_object()]

    def claim_object(self) -> Obj:
        return {
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": {"name": self.claim, "namespace": self.namespace, "labels": _labels()},
            "spec": {
                "accessModes": ["ReadWriteOnce"],
                "storageClassName": "longhorn",
                "resources": {"requests": {"storage": self.size}},
            },
        }

    def pod_object(self) -> Obj:
        container: dict[str, Any] = {
            "name": "writer",
            "image": versions.TEST_POD_IMAGE,
            # Writes through the filesystem, so a mounted-but-broken device fails here, not later.
            "command": ["sh", "-c", "echo lhsoak > /data/probe && sync && exec sleep 3600"],
            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
            "readinessProbe": {"exec": {"command": ["cat", "/data/probe"]}, "periodSeconds": 2},
        }
        return {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": self.pod, "namespace": self.namespace, "labels": _labels()},
            "spec": {
                "containers": [container],
                "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": self.claim}}],
                "terminationGracePeriodSeconds": 1,
            },
        }


def _labels() -> dict[str, str]:
    return {"app.kubernetes.io/managed-by": "lhsoak-provision"}
