"""A kubeconfig for the lab: its URL, its CA embedded, its bearer token."""

from __future__ import annotations

import base64
import os
from pathlib import Path
from typing import Any

import yaml

DEFAULT_NAME = "lhsoak-lab"


def build(*, url: str, ca_pem: bytes, token: str, name: str = DEFAULT_NAME) -> dict[str, Any]:
    """A kubeconfig document with one cluster, one token user and one current context, all `name`."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [
            {
                "name": name,
                "cluster": {
                    "server": url,
                    "certificate-authority-data": base64.b64encode(ca_pem).decode(),
                },
            }
        ],
        "users": [{"name": name, "user": {"token": token}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }


def write(path: Path, *, url: str, ca_pem: bytes, token: str, name: str = DEFAULT_NAME) -> Path:
    """Write the kubeconfig to `path` (mode 0600, it holds the token) and return the path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(build(url=url, ca_pem=ca_pem, token=token, name=name), sort_keys=False)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    path.chmod(0o600)
    return path
