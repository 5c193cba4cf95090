"""A lab API server (the real Kubernetes REST API over HTTPS on 127.0.0.1) in a background loop."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from lhsoak.lab import apiserver, kubeconfig, pki
from lhsoak.lab.store import Store

from .loop import LoopThread

T = TypeVar("T")

CRDS = Path(__file__).resolve().parents[3] / "shared" / "longhorn" / "crds-v1.12.1.yaml"
"""The real Longhorn CRDs, beside the repository (absent in a clone without ../shared)."""
FAST_SERVER = apiserver.ApiServerConfig(
    bookmark_interval_s=0.2, watch_liveness_check_s=0.1, shutdown_timeout_s=0.5
)
"""Bookmarks, liveness checks and shutdown scaled down so a test sees them within a second."""


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
        self.directory = directory
        self.pki = pki.generate()
        self.token = pki.new_token()
        self._loop_thread = LoopThread(name="lab-api")
        self.loop = self._loop_thread.loop
        try:
            self.store: Store = self.call(lambda: apiserver.lab_store(crd_path=crd_path, history=history))
            self.server = apiserver.ApiServer(self.store, pki_=self.pki, token=self.token, config=config)
            self.run(self.server.start())
        except BaseException:
            self._loop_thread.close()
            raise
        self.kubeconfig = self._write_kubeconfig(directory / "kubeconfig", context=kubeconfig.DEFAULT_NAME)
        """The kubeconfig of the lab's default context."""

    def kubeconfig_for(self, context: str) -> Path:
        """A kubeconfig in the lab's directory whose only (and current) context is `context`."""
        return self._write_kubeconfig(self.directory / f"kubeconfig-{context}", context=context)

    def _write_kubeconfig(self, path: Path, *, context: str) -> Path:
        return kubeconfig.write(
            path, url=self.server.url, ca_pem=self.pki.ca_pem, token=self.token, name=context
        )

    def call(self, fn: Callable[[], T]) -> T:
        """Run `fn()` in the server's loop and return its result."""
        return self._loop_thread.call(fn)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine in the server's loop and return its result."""
        return self._loop_thread.run(coro)

    def api_client(self) -> Any:
        """A `kubernetes.client.ApiClient` configured from the lab's kubeconfig."""
        from kubernetes import client, config

        configuration = client.Configuration()
        config.load_kube_config(config_file=str(self.kubeconfig), client_configuration=configuration)
        return client.ApiClient(configuration)

    def close(self) -> None:
        """Stop the server, then its loop."""
        try:
            self.run(self.server.stop())
        finally:
            self._loop_thread.close()


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
        config=config or FAST_SERVER,
        history=history,
    )


@contextmanager
def running_lab_api(directory: Path, **options: Any) -> Iterator[LabApi]:
    """`start_lab_api` for the `with` block; closed when it ends."""
    lab = start_lab_api(directory, **options)
    try:
        yield lab
    finally:
        lab.close()
