"""Before a soak starts, the harness waits for Longhorn to be healthy — saying what it still misses —
and gives up at its deadline with the last problems seen. Healthy includes the longhorn-manager
DaemonSet: as many pods Ready as nodes it schedules to, read through the API as an SRE reads it; and,
when a StorageClass provisions through Longhorn's CSI driver (the soak's PVCs need it), the CSI
sidecar Deployments available and the longhorn-csi-plugin DaemonSet ready on every node. An account
that may not list Deployments loses that one check, not the soak."""

from __future__ import annotations

import json
import logging
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from lhsoak import cluster, longhorn
from lhsoak.lab import kinds, kubeconfig
from lhsoak.lab.cluster import install_longhorn, manager_pod
from lhsoak.lab.controllers.meta import Obj, condition
from lhsoak.lab.machine import Machine

from ..support.lab_api import LabApi, running_lab_api
from ..support.lab_cluster import NotYet, eventually, running_cluster

TARGET_DOWN = {"target_down_after_s": 0.0, "target_down_after_first_backup_s": None}
NS = "longhorn-system"
WORKERS = ("worker-1", "worker-2")
ATTACHER_DOWN = (
    "Deployment csi-attacher: 1/3 replicas ready, 1 available; Available=False (MinimumReplicasUnavailable)"
)
PLUGIN_DOWN = "DaemonSet longhorn-csi-plugin: 1/2 pods ready, 2 scheduled"


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[LabApi]:
    with running_lab_api(tmp_path) as api:
        yield api


@pytest.fixture
def api(lab: LabApi) -> Iterator[cluster.Cluster]:
    connected = cluster.Cluster.connect(kubeconfig=lab.kubeconfig, context=None, allowed=("lhsoak-lab",))
    yield connected
    connected.close()


def _install(lab: LabApi) -> None:
    """Longhorn as `lhsoak lab up` installs it on both workers: managers, CSI plugin, Deployments."""
    lab.call(lambda: install_longhorn(lab.store, WORKERS))


def _set_ready(lab: LabApi, pod: str, ready: bool) -> None:
    """What the kubelet writes when a container's readiness probe fails (or passes again)."""

    def change(obj: Obj) -> None:
        found = condition(obj["status"]["conditions"], "Ready")
        assert found is not None
        found["status"] = str(ready)

    lab.call(lambda: lab.store.mutate(kinds.POD, pod, change, namespace=NS, subresource="status"))


def _wait(api: cluster.Cluster, *, deadline_s: float, said: list[str] | None = None) -> longhorn.Health:
    progress = said.append if said is not None else (lambda _text: None)
    return longhorn.wait_healthy(api, deadline_s=deadline_s, progress=progress, poll_s=0.1)


def test_the_soak_waits_until_a_backup_target_outage_is_over(lab: LabApi, api: cluster.Cluster) -> None:
    with running_cluster(lab, profile="backup-target-down", target_down_for_s=3.0, **TARGET_DOWN):
        _install(lab)
        said: list[str] = []
        health = longhorn.wait_healthy(api, deadline_s=60, progress=said.append, poll_s=0.2)
    assert health.healthy, health.problems
    assert said, "no progress was shown while waiting"
    assert "BackupTarget 'default' is not available" in said[0]


def test_at_the_deadline_the_last_problems_are_returned(lab: LabApi, api: cluster.Cluster) -> None:
    with running_cluster(lab, profile="backup-target-down", target_down_for_s=600.0, **TARGET_DOWN):
        health = longhorn.wait_healthy(api, deadline_s=1.0, progress=lambda _text: None, poll_s=0.2)
    assert not health.healthy
    assert health.csi_checked, "the lab's StorageClass longhorn provisions through driver.longhorn.io"
    for missing in (
        "no longhorn-manager pod is Running",
        "no longhorn-manager DaemonSet in longhorn-system",
        "no longhorn-csi-plugin DaemonSet in longhorn-system (none labelled or selecting app=longhorn-csi-plugin)",
        "no csi-attacher Deployment in longhorn-system (none labelled or selecting app=csi-attacher)",
        "no csi-snapshotter Deployment in longhorn-system",
        "BackupTarget 'default' is not available",
    ):
        assert any(missing in problem for problem in health.problems), (missing, health.problems)


def test_a_running_manager_that_is_not_ready_keeps_longhorn_unhealthy(
    lab: LabApi, api: cluster.Cluster
) -> None:
    """Its pod Runs, so the pod check passes; the DaemonSet counts it not Ready, as kubectl shows."""
    with running_cluster(lab, workers=2):
        _install(lab)
        assert _wait(api, deadline_s=30).healthy
        _set_ready(lab, "longhorn-manager-worker-1", False)
        said: list[str] = []
        stuck = _wait(api, deadline_s=1.0, said=said)
        assert stuck.problems == ("DaemonSet longhorn-manager: 1/2 pods ready, 2 scheduled",)
        assert any("1/2 pods ready" in line for line in said), said
        _set_ready(lab, "longhorn-manager-worker-1", True)
        health = _wait(api, deadline_s=30)
    assert health.healthy, health.problems


def _busiest_attacher_node(lab: LabApi) -> str:
    """The worker running two of csi-attacher's three pods (two workers: one has two)."""

    def placed() -> str:
        pods, _ = lab.call(lambda: lab.store.list(kinds.POD, namespace=NS, label_selector="app=csi-attacher"))
        nodes = [(pod.get("spec") or {}).get("nodeName") for pod in pods]
        busiest = [node for node in WORKERS if nodes.count(node) == 2]
        if len(nodes) != 3 or not busiest:
            raise NotYet(f"csi-attacher pods on {nodes}")
        return busiest[0]

    return eventually(placed, what="csi-attacher's pods placed")


def test_while_a_csi_pods_node_is_off_the_wait_names_it_until_it_is_back(
    lab: LabApi, api: cluster.Cluster
) -> None:
    """Two of the attacher's three pods are lost with their node: it is not Available (it needs two)
    and the CSI plugin misses a node; the wait says so, and ends healthy once the node is back."""
    with running_cluster(lab, workers=2) as running:
        _install(lab)
        healthy = _wait(api, deadline_s=30)
        assert healthy.healthy, healthy.problems
        assert healthy.csi_checked
        node = _busiest_attacher_node(lab)
        running.power(node, Machine.power_off)

        def csi_down() -> tuple[str, ...]:
            problems = longhorn.check_health(api).problems
            if ATTACHER_DOWN not in problems or PLUGIN_DOWN not in problems:
                raise NotYet(f"problems {problems}")
            return problems

        eventually(csi_down, what=f"{node}'s CSI pods seen not ready")
        said: list[str] = []

        def power_on_once_named(line: str) -> None:
            said.append(line)
            if ATTACHER_DOWN in line and len(said) == 1:
                running.power(node, Machine.power_on)

        health = longhorn.wait_healthy(api, deadline_s=30, progress=power_on_once_named, poll_s=0.1)
    assert health.healthy, health.problems
    assert ATTACHER_DOWN in said[0], said
    assert PLUGIN_DOWN in said[0], said


def test_without_a_longhorn_storage_class_csi_is_not_checked(lab: LabApi, api: cluster.Cluster) -> None:
    """No class provisions through driver.longhorn.io: no PVC of the soak needs the CSI driver."""
    with running_cluster(lab, workers=2):
        lab.call(lambda: lab.store.delete(kinds.STORAGE_CLASS, "longhorn"))
        lab.call(lambda: [lab.store.create(kinds.POD, manager_pod(node)) for node in WORKERS])
        health = _wait(api, deadline_s=30)
    assert health.healthy, health.problems
    assert not health.csi_checked


def test_a_403_on_deployments_costs_only_that_check(
    lab: LabApi, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Listing Deployments is forbidden to the account: the sidecars go unchecked (a warning says
    so), while the CSI plugin DaemonSet, which is missing here, is still named."""
    with running_cluster(lab, workers=2), forbidding_deployments(lab, tmp_path) as restricted:
        lab.call(lambda: [lab.store.create(kinds.POD, manager_pod(node)) for node in WORKERS])
        allowed = cluster.Cluster.connect(kubeconfig=lab.kubeconfig, context=None, allowed=("lhsoak-lab",))
        forbidden = cluster.Cluster.connect(kubeconfig=restricted, context=None, allowed=("lhsoak-lab",))
        only_plugin = (
            "no longhorn-csi-plugin DaemonSet in longhorn-system (none labelled or selecting app=longhorn-csi-plugin)",
        )

        def managers_ready(api: cluster.Cluster) -> tuple[str, ...]:
            problems = longhorn.check_health(api).problems
            if any("longhorn-manager" in problem for problem in problems):
                raise NotYet(f"problems {problems}")
            return problems

        try:
            seen = eventually(lambda: managers_ready(allowed), what="both managers ready")
            assert any("no csi-attacher Deployment" in problem for problem in seen), seen
            with caplog.at_level(logging.WARNING, logger="lhsoak.longhorn"):
                restricted_sees = managers_ready(forbidden)
        finally:
            allowed.close()
            forbidden.close()
    assert restricted_sees == only_plugin
    assert "cannot list deployments in longhorn-system" in caplog.text
    assert "CSI sidecar Deployments not checked" in caplog.text


@contextmanager
def forbidding_deployments(lab: LabApi, tmp_path: Path) -> Iterator[Path]:
    """A kubeconfig whose API answers as the lab's, except 403 Forbidden on listing Deployments in
    longhorn-system, as RBAC answers an account without that permission (plain HTTP on 127.0.0.1,
    relaying every other GET to the lab over HTTPS)."""
    context = ssl.create_default_context(cadata=lab.pki.ca_pem.decode())
    upstream = lab.server.url
    forbidden_path = f"/apis/apps/v1/namespaces/{NS}/deployments"

    class Relay(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.split("?", 1)[0] == forbidden_path:
                message = (
                    'deployments.apps is forbidden: User "system:serviceaccount:lhsoak:soak" cannot list '
                    f'resource "deployments" in API group "apps" in the namespace "{NS}"'
                )
                status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
                self._answer(
                    403,
                    json.dumps({**status, "message": message, "reason": "Forbidden", "code": 403}).encode(),
                )
                return
            headers = {name: self.headers[name] for name in ("Authorization", "Accept") if self.headers[name]}
            request = urllib.request.Request(upstream + self.path, headers=headers)
            try:
                with urllib.request.urlopen(request, context=context, timeout=10) as response:
                    self._answer(response.status, response.read())
            except urllib.error.HTTPError as error:
                with error:
                    self._answer(error.code, error.read())

        def _answer(self, code: int, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Relay)
    serving = threading.Thread(target=server.serve_forever, name="rbac-relay", daemon=True)
    serving.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        yield kubeconfig.write(
            tmp_path / "kubeconfig-restricted", url=url, ca_pem=lab.pki.ca_pem, token=lab.token
        )
    finally:
        server.shutdown()
        server.server_close()
        serving.join()
