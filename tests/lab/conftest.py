"""Fixtures that run the lab's API server in a background thread (its own event loop) for tests."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from lhsoak.lab import apiserver, kubeconfig, pki
from lhsoak.lab.store import Store

T = TypeVar("T")

CRDS = Path(__file__).resolve().parents[3] / "shared" / "longhorn" / "crds-v1.12.1.yaml"
CALL_TIMEOUT_S = 10.0


class LabApi:
    """A lab API server in a background thread. The store belongs to that thread's loop: touch it
    only through `call` (a function run in the loop) or `run` (a coroutine run in the loop)."""

    def __init__(
        self,
        directory: Path,
        *,
        crd_path: Path | None,
        config: apiserver.ApiServerConfig,
        history: int,
    ) -> None:
        self.pki = pki.generate()
        self.token = pki.new_token()
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="lab-api", daemon=True)
        self._thread.start()
        self.store: Store = self.call(lambda: apiserver.lab_store(crd_path=crd_path, history=history))
        self.server = apiserver.ApiServer(self.store, pki_=self.pki, token=self.token, config=config)
        self.run(self.server.start())
        self.kubeconfig = kubeconfig.write(
            directory / "kubeconfig", url=self.server.url, ca_pem=self.pki.ca_pem, token=self.token
        )

    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn()` in the server's loop and return its result."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def invoke() -> None:
            try:
                future.set_result(fn())
            except BaseException as exc:
                future.set_exception(exc)

        self.loop.call_soon_threadsafe(invoke)
        return future.result(timeout=CALL_TIMEOUT_S)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine in the server's loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=CALL_TIMEOUT_S)

    def api_client(self) -> Any:
        """A `kubernetes.client.ApiClient` configured from the lab's kubeconfig."""
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(config_file=str(self.kubeconfig), client_configuration=configuration)
        return client.ApiClient(configuration)

    def close(self) -> None:
        self.run(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=CALL_TIMEOUT_S)
        self.loop.close()


def start_lab_api(
    directory: Path,
    *,
    crd_path: Path | None = None,
    config: apiserver.ApiServerConfig | None = None,
    history: int = 20000,
) -> LabApi:
    """Start a lab API server (real Longhorn CRDs when `crd_path` exists)."""
    return LabApi(
        directory,
        crd_path=crd_path if crd_path is not None and crd_path.exists() else None,
        config=config
        or apiserver.ApiServerConfig(
            bookmark_interval_s=0.2, watch_liveness_check_s=0.1, shutdown_timeout_s=0.5
        ),
        history=history,
    )


@pytest.fixture
def lab_api(tmp_path: Path) -> Iterator[LabApi]:
    """A lab API server with the real Longhorn CRDs when available."""
    lab = start_lab_api(tmp_path, crd_path=CRDS)
    yield lab
    lab.close()


@pytest.fixture
def kube_client(lab_api: LabApi) -> Iterator[Any]:
    """A `kubernetes.client.ApiClient` for `lab_api`."""
    api_client = lab_api.api_client()
    yield api_client
    api_client.close()
