"""pods/log on the lab API, read as the harness and an SRE read it: the `kubernetes` client's
read_namespaced_pod_log and the machine's `kubectl logs` (with --previous, --tail, -f).

What is in the logs is what the lab's processes print, in longhorn-manager's logrus format: the
recurring-job task in its job pod, the backup controller in the longhorn-manager pod of the
backup's node.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from lhsoak.lab import kinds, logs
from lhsoak.lab.cluster import manager_pod
from lhsoak.lab.controllers.seed import seed_volume
from lhsoak.lab.machine import Machine

from ..support.lab_api import LabApi
from ..support.lab_cluster import LabCluster, NotYet, eventually, running_cluster

KUBECTL = shutil.which("kubectl") or "/usr/bin/kubectl"
needs_kubectl = pytest.mark.skipif(
    not Path(KUBECTL).exists(), reason="kubectl not installed (Debian: kubernetes-client)"
)
NS = "longhorn-system"
EVERY_SECOND = "* * * * * *"
LOGRUS = re.compile(
    r'^time="\S+Z" level=(info|warning|error|fatal) msg=("(?:[^"\\]|\\.)*"|\S+) func=\S+ file="\S+:\d+"'
)
NANOS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z ")


def recurring_job(name: str, *, task: str = "backup", cron: str = EVERY_SECOND) -> dict[str, Any]:
    return {
        "apiVersion": kinds.LH_RECURRING_JOB.api_version,
        "kind": kinds.LH_RECURRING_JOB.kind,
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "name": name,
            "task": task,
            "cron": cron,
            "retain": 1,
            "groups": ["default"],
            "concurrency": 1,
            "labels": {},
        },
    }


@pytest.fixture
def cluster(lab_api: LabApi) -> Iterator[LabCluster]:
    """Two workers, a longhorn-manager pod on each, volume vol-1 on worker-1."""
    with running_cluster(lab_api, workers=2) as running:

        def install() -> None:
            for node in ("worker-1", "worker-2"):
                lab_api.store.create(kinds.POD, manager_pod(node))
            seed_volume(lab_api.store, "vol-1", node="worker-1")

        lab_api.call(install)
        yield running


@pytest.fixture
def core(kube_client: Any) -> client.CoreV1Api:
    return client.CoreV1Api(kube_client)


def read_log(core: client.CoreV1Api, pod: str, *, namespace: str = NS, **options: Any) -> str:
    """The log as the harness reads it: raw bytes (the client's str() of a JSON-looking body mangles it)."""
    response = core.read_namespaced_pod_log(pod, namespace, _preload_content=False, **options)
    return str(response.data.decode())


def some_log(core: client.CoreV1Api, pod: str) -> str:
    """The pod's log once it has a line (NotYet while its container has not started)."""
    try:
        text = read_log(core, pod)
    except ApiException as error:
        raise NotYet(f"{error.status}: {error.body}") from None
    if not text:
        raise NotYet("an empty log")
    return text


def messages(text: str) -> list[str]:
    return [_msg(line) for line in text.splitlines()]


def _msg(line: str) -> str:
    found = re.search(r'msg=("(?:[^"\\]|\\.)*"|\S+)', line)
    assert found, f"no msg in {line!r}"
    value = found.group(1)
    return value[1:-1].replace('\\"', '"') if value.startswith('"') else value


def finished_job_pod(lab_api: LabApi, job: str) -> str:
    def done() -> str:
        pods = lab_api.call(lambda: lab_api.store.list(kinds.POD, namespace=NS)[0])
        ended = [
            p["metadata"]["name"]
            for p in pods
            if p["metadata"]["name"].startswith(f"{job}-") and p["status"].get("phase") == "Succeeded"
        ]
        if not ended:
            raise NotYet(f"pods: {[(p['metadata']['name'], p['status'].get('phase')) for p in pods]}")
        return ended[0]

    return eventually(done, what=f"a job pod of {job} to succeed")


def test_a_job_pods_log_is_what_the_recurring_job_printed(
    cluster: LabCluster, lab_api: LabApi, core: client.CoreV1Api
) -> None:
    lab_api.call(lambda: lab_api.store.create(kinds.LH_RECURRING_JOB, recurring_job("bak")))
    pod = finished_job_pod(lab_api, "bak")

    text = read_log(core, pod)

    lines = text.splitlines()
    assert all(LOGRUS.match(line) for line in lines), text
    said = messages(text)
    expected = [
        "Setting allow-recurring-job-while-volume-detached is false",
        "Found 1 volumes with recurring job bak",
        "Creating volume job",
        "Starting volume job",
        "Running recurring backup for volume vol-1",
    ]
    assert said[: len(expected)] == expected, said
    assert any(re.fullmatch(r"Complete creating the snapshot bak-[0-9a-f-]{36}", m) for m in said), said
    progress = [m for m in said if m.startswith("Creating backup backup-")]
    assert progress
    assert re.fullmatch(r"Creating backup backup-[0-9a-f]{16}, current progress \d+", progress[0])
    backup = progress[0].split()[2].rstrip(",")
    assert said[-3:] == [
        f"Completed creating backup {backup}",
        "Finished recurring backup",
        "Created volume job",
    ]
    volume_job = lines[2]
    for field in (
        "job=bak",
        "task=backup",
        "volumeName=vol-1",
        'specLabels="{\\"RecurringJob\\":\\"bak\\"}"',
    ):
        assert f" {field}" in volume_job, volume_job
    assert ' func=recurringjob.startVolumeJob file="volume.go:84" ' in volume_job


def test_tail_timestamps_since_and_limit_bytes_cut_the_log_as_the_kubelet_does(
    cluster: LabCluster, lab_api: LabApi, core: client.CoreV1Api
) -> None:
    lab_api.call(lambda: lab_api.store.create(kinds.LH_RECURRING_JOB, recurring_job("bak")))
    pod = finished_job_pod(lab_api, "bak")
    whole = read_log(core, pod)

    assert read_log(core, pod, tail_lines=2).splitlines() == whole.splitlines()[-2:]
    assert read_log(core, pod, tail_lines=0) == ""
    assert read_log(core, pod, limit_bytes=20) == whole[:20]
    assert read_log(core, pod, since_seconds=3600) == whole
    stamped = read_log(core, pod, timestamps=True).splitlines()
    assert [NANOS.sub("", line) for line in stamped] == whole.splitlines()
    assert all(NANOS.match(line) for line in stamped), stamped
    with pytest.raises(ApiException) as invalid:
        read_log(core, pod, tail_lines=-1)
    assert invalid.value.status == 422
    assert f'PodLogOptions \\"{pod}\\" is invalid: tailLines: Invalid value: -1' in invalid.value.body


def test_the_manager_of_the_backups_node_logs_the_backup(
    cluster: LabCluster, lab_api: LabApi, core: client.CoreV1Api
) -> None:
    lab_api.call(lambda: lab_api.store.create(kinds.LH_RECURRING_JOB, recurring_job("bak")))
    finished_job_pod(lab_api, "bak")

    def completed_event_logged() -> str:
        text = read_log(core, "longhorn-manager-worker-1")
        if "reason: 'Completed'" not in text:
            raise NotYet(text)
        return text

    text = eventually(completed_event_logged, what="worker-1's manager to log a Completed backup")
    said = messages(text)
    assert said[0] == "Starting Longhorn Backup controller"
    monitor = [m for m in said if m.startswith("Enable backup monitor for backup backup-")]
    assert monitor, said
    backup = monitor[0].rsplit(" ", 1)[1]
    completed = [m for m in said if "reason: 'Completed'" in m and backup in m]
    assert completed, said
    assert completed[0].startswith(
        'Event(v1.ObjectReference{Kind:"Volume", Namespace:"longhorn-system", Name:"vol-1"'
    )
    assert "type: 'Normal'" in completed[0]
    assert "label map[RecurringJob:bak]" in completed[0]
    enabled = next(line for line in text.splitlines() if f"Enable backup monitor for backup {backup}" in line)
    assert enabled.endswith("controller=longhorn-backup node=worker-1")
    assert "backup-" not in read_log(core, "longhorn-manager-worker-2")


def test_a_container_the_pod_lacks_a_pod_with_no_node_and_a_missing_pod_are_refused(
    cluster: LabCluster, lab_api: LabApi, core: client.CoreV1Api
) -> None:
    unschedulable = {
        "metadata": {"name": "nowhere", "namespace": NS},
        "spec": {"nodeSelector": {"no": "such-node"}, "containers": [{"name": "c", "image": "busybox"}]},
    }
    lab_api.call(lambda: lab_api.store.create(kinds.POD, unschedulable))

    refusals = {
        "container": lambda: read_log(core, "longhorn-manager-worker-1", container="nope"),
        "host": lambda: read_log(core, "nowhere"),
        "pod": lambda: read_log(core, "not-there"),
    }
    seen = {}
    for what, call in refusals.items():
        with pytest.raises(ApiException) as refused:
            call()
        seen[what] = (refused.value.status, refused.value.body)
    assert seen["container"][0] == 400
    assert "container nope is not valid for pod longhorn-manager-worker-1" in seen["container"][1]
    assert seen["host"][0] == 400
    assert "pod nowhere does not have a host assigned" in seen["host"][1]
    assert seen["pod"][0] == 404
    assert 'pods \\"not-there\\" not found' in seen["pod"][1]


def test_a_node_that_is_down_serves_no_logs(cluster: LabCluster, core: client.CoreV1Api) -> None:
    eventually(lambda: some_log(core, "longhorn-manager-worker-1"), what="worker-1's manager to start")
    cluster.power("worker-1", Machine.power_off)

    def refused() -> ApiException:
        try:
            read_log(core, "longhorn-manager-worker-1")
        except ApiException as error:
            return error
        raise NotYet("the log was served")

    error = eventually(refused, what="the log of a powered-off node to be refused")
    assert error.status == 500
    assert "dial tcp 127.0.0.1:10250: connect: connection refused" in error.body
    assert "/containerLogs/longhorn-system/longhorn-manager-worker-1/longhorn-manager" in error.body


def test_a_kept_log_is_bounded_and_forgotten_with_its_pod(lab_api: LabApi, core: client.CoreV1Api) -> None:
    pod = {
        "metadata": {"name": "chatty", "namespace": "default"},
        "spec": {"nodeName": "elsewhere", "containers": [{"name": "c", "image": "busybox"}]},
    }

    def chatter() -> dict[str, Any]:
        created = lab_api.store.create(kinds.POD, pod)
        pod_logs = logs.of(lab_api.store)
        for run in range(3):
            out = pod_logs.started(created, "c", container_id=f"containerd://run{run}")
            for n in range(logs.LINES_PER_RUN + 5):
                out.info(f"run {run} line {n}", caller=None)
            pod_logs.stopped(created, "c", container_id=f"containerd://run{run}")
        status = {
            "phase": "Running",
            "containerStatuses": [
                {
                    "name": "c",
                    "containerID": "containerd://run2",
                    "restartCount": 2,
                    "state": {"running": {"startedAt": "2025-01-01T00:00:00Z"}},
                    "lastState": {"terminated": {"containerID": "containerd://run1", "exitCode": 1}},
                }
            ],
        }
        lab_api.store.mutate(
            kinds.POD,
            "chatty",
            lambda obj: obj.update(status=status),
            namespace="default",
            subresource="status",
        )
        return created

    lab_api.call(chatter)

    current = messages(read_log(core, "chatty", namespace="default"))
    previous = messages(read_log(core, "chatty", namespace="default", previous=True))
    assert len(current) == logs.LINES_PER_RUN
    assert current[0] == "run 2 line 5"
    assert current[-1] == f"run 2 line {logs.LINES_PER_RUN + 4}"
    assert previous[-1] == f"run 1 line {logs.LINES_PER_RUN + 4}"
    assert lab_api.call(lambda: len(list(logs.of(lab_api.store).runs()))) == 2
    lab_api.call(lambda: lab_api.store.delete(kinds.POD, "chatty", namespace="default", grace_period_s=0))
    assert lab_api.call(lambda: len(list(logs.of(lab_api.store).runs()))) == 0


# --- kubectl ---------------------------------------------------------------------------------------


def kubectl(lab_api: LabApi, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": str(lab_api.kubeconfig), "HOME": str(tmp_path)}
    return subprocess.run(
        [KUBECTL, "-n", NS, *args], env=env, capture_output=True, text=True, timeout=20, check=False
    )


@needs_kubectl
def test_kubectl_logs_and_logs_previous_after_the_node_lost_power(
    cluster: LabCluster, lab_api: LabApi, tmp_path: Path
) -> None:
    lab_api.call(lambda: lab_api.store.create(kinds.LH_RECURRING_JOB, recurring_job("bak")))
    manager = "longhorn-manager-worker-1"

    def monitor_enabled() -> str:
        out = kubectl(lab_api, tmp_path, "logs", manager, "--timestamps").stdout
        if "Enable backup monitor" not in out:
            raise NotYet(out)
        return out

    before = eventually(monitor_enabled, what="worker-1's manager to start a backup monitor")
    # A power cut, not a clean reboot: with no graceful shutdown the kubelet restarts the manager's
    # container in its pod (restartCount 1), where a graceful one fails the pod and its DaemonSet
    # replaces it with a new pod, which has no previous log.
    cluster.power("worker-1", lambda machine: (machine.power_off(), machine.power_on()))

    def restarted() -> tuple[str, str]:
        previous = kubectl(lab_api, tmp_path, "logs", manager, "--previous", "--timestamps")
        if previous.returncode != 0:
            raise NotYet(previous.stderr)
        return previous.stdout, kubectl(lab_api, tmp_path, "logs", manager, "--timestamps").stdout

    previous, current = eventually(restarted, what="worker-1's manager to restart after the reboot")
    assert previous.startswith(before)
    assert "Enable backup monitor" in previous
    assert messages(NANOS.sub("", current.splitlines()[0])) == ["Starting Longhorn Backup controller"]
    assert previous.splitlines()[-1].split()[0] < current.splitlines()[0].split()[0]
    last = kubectl(lab_api, tmp_path, "logs", manager, "--tail=1")
    assert last.returncode == 0
    assert len(last.stdout.splitlines()) == 1


@needs_kubectl
def test_kubectl_logs_of_a_pending_pod_says_it_is_waiting_to_start(
    cluster: LabCluster, lab_api: LabApi, tmp_path: Path
) -> None:
    # As the kubelet reports a job pod it admitted after a reboot but never started (longhorn#7956).
    pod = {
        "metadata": {"name": "stuck", "namespace": NS},
        "spec": {"nodeName": "node-gone", "containers": [{"name": "bak", "image": "longhorn-manager"}]},
    }
    waiting = {
        "phase": "Pending",
        "containerStatuses": [
            {"name": "bak", "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}
        ],
    }

    def create() -> None:
        lab_api.store.create(kinds.POD, pod)
        lab_api.store.mutate(
            kinds.POD, "stuck", lambda obj: obj.update(status=waiting), namespace=NS, subresource="status"
        )

    lab_api.call(create)

    current = kubectl(lab_api, tmp_path, "logs", "stuck")
    previous = kubectl(lab_api, tmp_path, "logs", "stuck", "--previous")
    assert current.returncode == 1
    assert (
        'Error from server (BadRequest): container "bak" in pod "stuck" is waiting to start: ContainerCreating'
        in current.stderr
    )
    assert previous.returncode == 1
    assert 'previous terminated container "bak" in pod "stuck" not found' in previous.stderr


@needs_kubectl
def test_kubectl_logs_f_streams_until_the_container_stops(
    cluster: LabCluster, lab_api: LabApi, core: client.CoreV1Api, tmp_path: Path
) -> None:
    manager = "longhorn-manager-worker-1"
    eventually(lambda: some_log(core, manager), what="worker-1's manager to start")
    env = {**os.environ, "KUBECONFIG": str(lab_api.kubeconfig), "HOME": str(tmp_path)}
    command = [KUBECTL, "-n", NS, "logs", "-f", manager]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) as follow:
        try:
            lab_api.call(lambda: lab_api.store.create(kinds.LH_RECURRING_JOB, recurring_job("bak")))
            assert follow.stdout is not None
            streamed = []
            for line in follow.stdout:
                streamed.append(line)
                if "Enable backup monitor" in line:
                    break
            cluster.power("worker-1", Machine.power_off)
            # The kubelet kills the container with its node: the stream ends and kubectl exits.
            follow.communicate(timeout=20)
        finally:
            follow.kill()
    assert follow.returncode == 0
    assert messages("".join(streamed))[0] == "Starting Longhorn Backup controller"
    assert "Enable backup monitor" in streamed[-1]
