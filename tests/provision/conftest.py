"""A lab API server (the real Kubernetes REST API over HTTPS on 127.0.0.1) to provision against, with
helpers to put Nodes and Longhorn objects in it as a real cluster would show them."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from lhsoak.lab import apiserver, kinds, kubeconfig, pki
from lhsoak.lab.store import Store

T = TypeVar("T")
CRDS = Path(__file__).resolve().parents[3] / "shared" / "longhorn" / "crds-v1.12.1.yaml"
CALL_TIMEOUT_S = 10.0


class Lab:
    """A lab API server in a background thread; its store is touched only through `call`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.pki = pki.generate()
        self.token = pki.new_token()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="lab-api", daemon=True)
        self._thread.start()
        crds = CRDS if CRDS.exists() else None
        self.store: Store = self.call(lambda: apiserver.lab_store(crd_path=crds))
        self.server = apiserver.ApiServer(
            self.store,
            pki_=self.pki,
            token=self.token,
            config=apiserver.ApiServerConfig(
                bookmark_interval_s=0.2, watch_liveness_check_s=0.1, shutdown_timeout_s=0.5
            ),
        )
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(timeout=CALL_TIMEOUT_S)
        self.create(kinds.NAMESPACE, {"metadata": {"name": "longhorn-system"}})

    def call(self, fn: Callable[[], T]) -> T:
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def invoke() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)

        self.loop.call_soon_threadsafe(invoke)
        return future.result(timeout=CALL_TIMEOUT_S)

    def kubeconfig(self, *, context: str) -> Path:
        """A kubeconfig whose only (and current) context is `context`."""
        return kubeconfig.write(
            self.directory / f"kubeconfig-{context}",
            url=self.server.url,
            ca_pem=self.pki.ca_pem,
            token=self.token,
            name=context,
        )

    def create(self, kind: kinds.Kind, obj: dict[str, Any], *, status: dict[str, Any] | None = None) -> None:
        """Create `obj` and, when given, set its status (as the object's controller would)."""
        body = {"apiVersion": kind.api_version, "kind": kind.kind, **obj}
        namespace = obj["metadata"].get("namespace")
        self.call(lambda: self.store.create(kind, body, namespace=namespace))
        if status is not None:
            self.set_status(kind, obj["metadata"]["name"], status, namespace=namespace)

    def set_status(
        self, kind: kinds.Kind, name: str, status: dict[str, Any], *, namespace: str | None = None
    ) -> None:
        def write(current: dict[str, Any]) -> None:
            current["status"] = status

        self.call(lambda: self.store.mutate(kind, name, write, namespace=namespace, subresource="status"))

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
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(timeout=CALL_TIMEOUT_S)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=CALL_TIMEOUT_S)
        self.loop.close()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    """An empty lab cluster (system namespaces and Longhorn CRDs, no nodes)."""
    started = Lab(tmp_path)
    yield started
    started.close()
