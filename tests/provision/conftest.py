"""A lab API server (the real Kubernetes REST API over HTTPS on 127.0.0.1) to provision against, with
helpers to put Nodes and Longhorn objects in it as a real cluster would show them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lhsoak.lab import kinds

from ..support.lab_api import CRDS, LabApi, start_lab_api


class Lab:
    """A lab API server in a background thread, filled through `create`, `set_status` and `add_node`."""

    def __init__(self, directory: Path) -> None:
        self.api: LabApi = start_lab_api(directory, crd_path=CRDS)
        try:
            self.create(kinds.NAMESPACE, {"metadata": {"name": "longhorn-system"}})
        except BaseException:
            self.api.close()
            raise

    def kubeconfig(self, *, context: str) -> Path:
        """A kubeconfig whose only (and current) context is `context`."""
        return self.api.kubeconfig_for(context)

    def create(self, kind: kinds.Kind, obj: dict[str, Any], *, status: dict[str, Any] | None = None) -> None:
        """Create `obj` and, when given, set its status (as the object's controller would)."""
        body = {"apiVersion": kind.api_version, "kind": kind.kind, **obj}
        namespace = obj["metadata"].get("namespace")
        self.api.call(lambda: self.api.store.create(kind, body, namespace=namespace))
        if status is not None:
            self.set_status(kind, obj["metadata"]["name"], status, namespace=namespace)

    def set_status(
        self, kind: kinds.Kind, name: str, status: dict[str, Any], *, namespace: str | None = None
    ) -> None:
        def write(current: dict[str, Any]) -> None:
            current["status"] = status

        self.api.call(
            lambda: self.api.store.mutate(kind, name, write, namespace=namespace, subresource="status")
        )

    def add_node(
        self,
        name: str,
        *,
        control_plane: bool = False,
        address: str | None = "127.0.0.1",
        provider_id: str | None = None,
        ready: bool = True,
    ) -> None:
        """A Node as its kubelet registers it: labels, providerID, addresses, Ready condition."""
        labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}
        if control_plane:
            labels["node-role.kubernetes.io/control-plane"] = ""
        spec = {"providerID": provider_id} if provider_id else {}
        addresses = [{"type": "Hostname", "address": name}]
        if address:
            addresses.insert(0, {"type": "InternalIP", "address": address})
        condition = {
            "type": "Ready",
            "status": "True" if ready else "False",
            "reason": "KubeletReady" if ready else "KubeletNotReady",
            "lastHeartbeatTime": "2026-01-01T00:00:00Z",
            "lastTransitionTime": "2026-01-01T00:00:00Z",
        }
        self.create(
            kinds.NODE,
            {"metadata": {"name": name, "labels": labels}, "spec": spec},
            status={"addresses": addresses, "conditions": [condition]},
        )

    def close(self) -> None:
        """Stop the server and its loop."""
        self.api.close()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """An empty lab cluster (system namespaces and Longhorn CRDs, no nodes)."""
    started = Lab(tmp_path)
    yield started
    started.close()
