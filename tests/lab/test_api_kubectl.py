"""The lab API endpoint through the real kubectl: get, get -o json, get -w, create -f, patch, label, delete;
get ds and rollout status on the longhorn-manager DaemonSet."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from lhsoak.lab import kinds
from lhsoak.lab.cluster import manager_pod

from ..support.lab_api import CRDS, LabApi
from ..support.lab_cluster import NotYet, eventually, running_cluster

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"
pytestmark = pytest.mark.skipif(
    not Path(KUBECTL).exists(), reason="kubectl not installed (Debian: kubernetes-client)"
)
TIMEOUT_S = 20.0

RECURRING_JOB = """
apiVersion: longhorn.io/v1beta2
kind: RecurringJob
metadata:
  name: backup-2m
  namespace: longhorn-system
spec:
  name: backup-2m
  task: backup
  cron: "*/2 * * * *"
  retain: 2
  concurrency: 1
  groups: [default]
  labels: {}
"""
NAMESPACE = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: longhorn-system\n"


class Kubectl:
    def __init__(self, lab: LabApi, tmp_path: Path) -> None:
        self.env = {**os.environ, "KUBECONFIG": str(lab.kubeconfig), "HOME": str(tmp_path)}
        self.tmp_path = tmp_path

    def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [KUBECTL, *args],
            input=stdin,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )

    def ok(self, *args: str, stdin: str | None = None) -> str:
        result = self(*args, stdin=stdin)
        assert result.returncode == 0, f"kubectl {' '.join(args)} failed: {result.stderr}"
        assert "Warning" not in result.stderr, f"kubectl {' '.join(args)} warned: {result.stderr}"
        return result.stdout

    def create(self, text: str) -> str:
        path = self.tmp_path / f"manifest-{time.monotonic_ns()}.yaml"
        path.write_text(text)
        return self.ok("create", "-f", str(path))

    @contextmanager
    def watching(self, *args: str) -> Iterator[queue.Queue[str]]:
        """Run `kubectl <args>` (a `-w` watch) for the block; yields the lines it prints."""
        process = subprocess.Popen(
            [KUBECTL, *args], env=self.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        lines: queue.Queue[str] = queue.Queue()
        # One reader of stdout only: this thread, until kubectl exits and the pipe reaches EOF.
        reader = threading.Thread(target=_pump, args=(process, lines), daemon=True)
        reader.start()
        try:
            yield lines
        finally:
            process.terminate()
            process.wait(timeout=TIMEOUT_S)
            reader.join(TIMEOUT_S)
            assert process.stdout is not None
            process.stdout.close()


@pytest.fixture
def kubectl(lab_api: LabApi, tmp_path: Path) -> Kubectl:
    return Kubectl(lab_api, tmp_path)


@pytest.fixture
def longhorn_system(kubectl: Kubectl) -> None:
    assert kubectl.create(NAMESPACE).strip() == "namespace/longhorn-system created"


def test_get_resolves_short_names_and_prints_a_table(kubectl: Kubectl, longhorn_system: None) -> None:
    kubectl.create(RECURRING_JOB)
    for name in ("lhrj", "recurringjobs", "recurringjobs.longhorn.io", "recurringjob"):
        out = kubectl.ok("get", name, "-n", "longhorn-system")
        header, row = out.splitlines()
        assert header.split()[0] == "NAME"
        assert row.split()[0] == "backup-2m"
    for short in ("lhsnap", "lhb", "lhv", "cj"):
        result = kubectl("get", short, "-A")
        assert result.returncode == 0, f"kubectl get {short}: {result.stderr}"
        assert result.stderr.strip() == "No resources found"
    namespaces = kubectl.ok("get", "ns").splitlines()
    assert namespaces[0].split() == ["NAME", "STATUS", "AGE"]
    assert "longhorn-system" in {line.split()[0] for line in namespaces[1:]}


def test_get_o_json(kubectl: Kubectl, longhorn_system: None) -> None:
    kubectl.create(RECURRING_JOB)
    job = json.loads(kubectl.ok("get", "lhrj", "backup-2m", "-n", "longhorn-system", "-o", "json"))
    assert job["spec"]["task"] == "backup"
    assert job["metadata"]["uid"]
    listed = json.loads(kubectl.ok("get", "lhrj", "-n", "longhorn-system", "-o", "json"))
    assert [i["metadata"]["name"] for i in listed["items"]] == ["backup-2m"]


@pytest.mark.skipif(not CRDS.exists(), reason=f"Longhorn CRDs not found at {CRDS}")
def test_create_f_is_validated_by_the_server(kubectl: Kubectl, longhorn_system: None) -> None:
    assert kubectl.create(RECURRING_JOB).strip() == "recurringjob.longhorn.io/backup-2m created"
    bad = RECURRING_JOB.replace("backup-2m", "bad").replace("task: backup", "task: nap")
    result = kubectl("create", "-f", "-", stdin=bad)
    assert result.returncode == 1
    assert 'The RecurringJob "bad" is invalid: spec.task: Unsupported value: "nap"' in result.stderr
    unknown = RECURRING_JOB.replace("backup-2m", "odd").replace("retain: 2", "retain: 2\n  bogus: 1")
    result = kubectl("create", "-f", "-", stdin=unknown)
    assert result.returncode == 1
    assert 'unknown field "spec.bogus"' in result.stderr


def test_patch_merge_label_and_delete(kubectl: Kubectl, longhorn_system: None) -> None:
    kubectl.create(RECURRING_JOB)
    ns = ("-n", "longhorn-system")
    patch = '{"spec":{"retain":5}}'
    assert "patched" in kubectl.ok("patch", "lhrj", "backup-2m", *ns, "--type=merge", "-p", patch)
    assert "labeled" in kubectl.ok("label", "lhrj", "backup-2m", *ns, "recurring-job.longhorn.io/source=lab")
    job = json.loads(kubectl.ok("get", "lhrj", "backup-2m", *ns, "-o", "json"))
    assert job["spec"]["retain"] == 5
    assert job["metadata"]["labels"] == {"recurring-job.longhorn.io/source": "lab"}
    assert kubectl.ok(
        "get", "lhrj", *ns, "-l", "recurring-job.longhorn.io/source=lab", "-o", "name"
    ).strip() == ("recurringjob.longhorn.io/backup-2m")
    assert "deleted" in kubectl.ok("delete", "lhrj", "backup-2m", *ns)
    result = kubectl("get", "lhrj", "backup-2m", *ns)
    assert result.returncode == 1
    assert 'recurringjobs.longhorn.io "backup-2m" not found' in result.stderr


def test_builtin_kinds_label_and_field_selectors(kubectl: Kubectl) -> None:
    pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: default}\nspec:\n  nodeName: n1\n  containers: [{name: c, image: busybox}]\n"
    kubectl.create(pod)
    assert "labeled" in kubectl.ok("label", "pod", "p", "app=x")
    assert (
        kubectl.ok("get", "pods", "-l", "app=x", "--field-selector", "spec.nodeName=n1", "-o", "name").strip()
        == "pod/p"
    )
    wide = kubectl.ok("get", "pods", "-o", "wide").splitlines()
    assert wide[0].split()[:5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    assert wide[1].split()[2] == "Pending"


def test_get_w_streams_changes(kubectl: Kubectl, longhorn_system: None) -> None:
    kubectl.create(RECURRING_JOB)
    with kubectl.watching(
        "get",
        "lhrj",
        "-n",
        "longhorn-system",
        "-w",
        "-o",
        "custom-columns=NAME:.metadata.name,RETAIN:.spec.retain",
    ) as lines:
        assert _next(lines).split() == ["NAME", "RETAIN"]
        assert _next(lines).split() == ["backup-2m", "2"]
        kubectl.ok(
            "patch",
            "lhrj",
            "backup-2m",
            "-n",
            "longhorn-system",
            "--type=merge",
            "-p",
            '{"spec":{"retain":7}}',
        )
        assert _next(lines).split() == ["backup-2m", "7"]


def test_get_w_table_output(kubectl: Kubectl, longhorn_system: None) -> None:
    with kubectl.watching("get", "pods", "-n", "longhorn-system", "-w") as lines:
        kubectl.create(
            "apiVersion: v1\nkind: Pod\nmetadata: {name: w, namespace: longhorn-system}\nspec:\n  containers: [{name: c, image: busybox}]\n"
        )
        assert _next(lines).split()[:3] == ["NAME", "READY", "STATUS"]
        assert _next(lines).split()[:3] == ["w", "0/1", "Pending"]


def test_get_ds_prints_the_longhorn_manager_daemonset(kubectl: Kubectl, lab_api: LabApi) -> None:
    """QA's finding: `kubectl get ds -n longhorn-system` said the resource type was unknown."""
    ns = ("-n", "longhorn-system")
    with running_cluster(lab_api, workers=2):
        lab_api.call(
            lambda: [lab_api.store.create(kinds.POD, manager_pod(n)) for n in ("worker-1", "worker-2")]
        )

        def both_ready() -> list[str]:
            lines = kubectl.ok("get", "ds", *ns).splitlines()
            if len(lines) != 2 or lines[1].split()[3] != "2":
                raise NotYet(f"kubectl get ds printed {lines}")
            return lines

        header, row = eventually(both_ready, what="kubectl get ds showing both managers ready")
        assert " ".join(header.split()) == "NAME DESIRED CURRENT READY UP-TO-DATE AVAILABLE NODE SELECTOR AGE"
        assert row.split()[:7] == ["longhorn-manager", "2", "2", "2", "2", "2", "<none>"]
        wide = kubectl.ok("get", "daemonsets.apps", *ns, "-o", "wide").splitlines()
        assert wide[0].split()[-3:] == ["CONTAINERS", "IMAGES", "SELECTOR"]
        assert wide[1].split()[-3:] == [
            "longhorn-manager",
            "longhornio/longhorn-manager:v1.12.1",
            "app=longhorn-manager",
        ]
        assert "daemonset.apps/longhorn-manager" in kubectl.ok("get", "all", *ns)
        rollout = kubectl.ok("rollout", "status", "ds/longhorn-manager", *ns, "--timeout=10s")
        assert 'daemon set "longhorn-manager" successfully rolled out' in rollout
        refused = kubectl("delete", "ds", "longhorn-manager", *ns)
        assert refused.returncode == 1
        assert "Error from server (MethodNotAllowed)" in refused.stderr


def _pump(process: subprocess.Popen[str], lines: queue.Queue[str]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        lines.put(line.rstrip("\n"))


def _next(lines: queue.Queue[str]) -> str:
    try:
        return lines.get(timeout=TIMEOUT_S)
    except queue.Empty:
        raise AssertionError(f"kubectl printed no line within {TIMEOUT_S}s") from None
