"""The docker reboot driver against a real Docker engine: containers named like kind nodes, found
through the inventory `lhsoak provision` writes for a kind cluster, restarted and proven restarted.

The engine is Debian's `docker.io` dockerd, started here under a temporary data root with no
networking set-up (--bridge=none --iptables=false) and the vfs storage driver (works without overlay
support); the image is a busybox-static root filesystem imported from a tar (no registry, no pulls).
Skipped, saying why, where dockerd is missing or cannot start (not root, no cgroups).
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import tenacity

from lhsoak import inventory
from lhsoak.chaos import driver
from lhsoak.chaos.driver import DriverOptions
from lhsoak.provision import draft

docker = pytest.importorskip(
    "docker", reason="the docker SDK is not installed (pip install 'lhsoak[docker]')"
)

pytestmark = pytest.mark.slow

BUSYBOX = Path("/bin/busybox")
IMAGE = "lhsoak/busybox-node:test"
# The node's "init": records each start, then idles until SIGTERM (a PID 1 ignores signals it does
# not handle, which would make every restart wait out docker's 10 s stop timeout).
NODE_COMMAND = ["sh", "-c", 'date +%s.%N >> /var/log/boots; trap "exit 0" TERM; sleep 2147483647 & wait']
ENGINE_START_S = 60.0


@dataclass
class Engine:
    """A private dockerd: its socket URL and an SDK client."""

    base_url: str
    client: Any


def _rootfs_tar() -> bytes:
    """/bin/busybox with the applets the node command uses, and the directories Docker expects."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for directory in ("bin", "dev", "etc", "proc", "sys", "tmp", "var", "var/log"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        tar.add(str(BUSYBOX), arcname="bin/busybox")
        for applet in ("sh", "sleep", "date", "cat"):
            info = tarfile.TarInfo(f"bin/{applet}")
            info.type, info.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(info)
    return buffer.getvalue()


def _why_no_engine() -> str | None:
    if shutil.which("dockerd") is None:
        return "dockerd is not installed (Debian: apt-get install docker.io)"
    if os.geteuid() != 0:
        return "dockerd needs root"
    if not BUSYBOX.is_file() or b"/lib64/ld-linux" in BUSYBOX.read_bytes()[:4096]:
        return "no static /bin/busybox (Debian: apt-get install busybox-static)"
    return None


def _start_dockerd(root: Path) -> subprocess.Popen[bytes]:
    # Short paths: containerd's sockets under --exec-root must fit a unix socket path (108 bytes).
    command = [
        "dockerd",
        f"--data-root={root / 'data'}",
        f"--exec-root={root / 'exec'}",
        f"--pidfile={root / 'docker.pid'}",
        f"--host=unix://{root / 'docker.sock'}",
        "--bridge=none",
        "--iptables=false",
        "--ip6tables=false",
        "--storage-driver=vfs",
        "--exec-opt=native.cgroupdriver=cgroupfs",
    ]
    log = (root / "dockerd.log").open("wb")
    try:
        return subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        log.close()


def _connect(root: Path, process: subprocess.Popen[bytes]) -> Any:
    """A client once dockerd accepts connections on its socket (it listens only when initialised).

    Probed with a plain socket: the SDK leaks its socket when its constructor's version query fails,
    which warnings-as-errors would turn into a failure."""
    sock = root / "docker.sock"

    def accepts() -> None:
        if process.poll() is not None:
            raise RuntimeError(f"dockerd exited with status {process.returncode}")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.connect(str(sock))

    tenacity.Retrying(
        stop=tenacity.stop_after_delay(ENGINE_START_S),
        wait=tenacity.wait_fixed(0.2),
        retry=tenacity.retry_if_exception_type(OSError),
        reraise=True,
    )(accepts)
    client = docker.DockerClient(base_url=f"unix://{sock}", timeout=30)
    client.ping()
    return client


def _stop_dockerd(process: subprocess.Popen[bytes], root: Path) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    # Anything dockerd left mounted under the temporary root (netns files, shm) goes before it does.
    mounts = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(str(root))), reverse=True):
        subprocess.run(["umount", "-l", mount], check=False, capture_output=True)
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    why = _why_no_engine()
    if why is not None:
        pytest.skip(why)
    root = Path(tempfile.mkdtemp(prefix="lhd-", dir="/tmp"))
    process = _start_dockerd(root)
    try:
        client = _connect(root, process)
    except (RuntimeError, OSError, docker.errors.DockerException) as error:
        tail = (root / "dockerd.log").read_text(errors="replace")[-1500:]
        _stop_dockerd(process, root)
        pytest.skip(f"dockerd cannot start here ({error}); its log ends: {tail}")
    try:
        tar = root / "rootfs.tar"
        tar.write_bytes(_rootfs_tar())
        client.api.import_image_from_file(str(tar), repository=IMAGE.split(":")[0], tag="test")
        yield Engine(base_url=f"unix://{root / 'docker.sock'}", client=client)
    finally:
        for container in client.containers.list(all=True):
            container.remove(force=True)
        client.close()
        _stop_dockerd(process, root)


@pytest.fixture
def kind_nodes(engine: Engine) -> Iterator[list[str]]:
    """Containers named as kind names a cluster `lhsoak-test`'s nodes, running the node command."""
    names = ["lhsoak-test-control-plane", "lhsoak-test-worker", "lhsoak-test-worker2"]
    for name in names:
        engine.client.containers.run(IMAGE, NODE_COMMAND, name=name, network_mode="none", detach=True)
    yield names
    for name in names:
        engine.client.containers.get(name).remove(force=True)


def inventory_for(names: list[str], engine: Engine, directory: Path) -> inventory.Inventory:
    """The inventory `lhsoak provision` writes for a kind cluster, as the soak will load it."""
    nodes = [
        draft.NodeFacts(
            name=name,
            role="control-plane" if name.endswith("control-plane") else "worker",
            internal_ip=None,
            provider_id=f"kind://docker/lhsoak-test/{name}",
        )
        for name in names
    ]
    drafted = draft.draft(
        nodes, context="kind-lhsoak-test", kubeconfig=None, driver="docker", docker_base_url=engine.base_url
    )
    path = directory / "inventory.yaml"
    inventory.dump(drafted, path)
    return inventory.load(path)


def boots(engine: Engine, container: str) -> list[str]:
    result = engine.client.containers.get(container).exec_run(["cat", "/var/log/boots"])
    assert result.exit_code == 0, result.output
    return result.output.decode().split()


OPTIONS = DriverOptions(poll_interval_s=0.2, command_timeout_s=60.0)


def test_the_driver_restarts_a_kind_node_container_and_proves_it(
    engine: Engine, kind_nodes: list[str], tmp_path: Path
) -> None:
    loaded = inventory_for(kind_nodes, engine, tmp_path)
    node = driver.drivers_for(loaded, ["lhsoak-test-worker"], options=OPTIONS)["lhsoak-test-worker"]
    before = engine.client.containers.get("lhsoak-test-worker").attrs["State"]["StartedAt"]
    node.check()

    node.reboot()
    evidence = node.wait_down(deadline_s=60)
    node.wait_up(deadline_s=60)

    assert evidence.proven
    assert evidence.detail.startswith(f"container restarted: StartedAt {before} → ")
    state = engine.client.containers.get("lhsoak-test-worker").attrs["State"]
    assert state["Running"]
    assert state["StartedAt"] != before
    assert len(boots(engine, "lhsoak-test-worker")) == 2  # its init really ran again
    assert len(boots(engine, "lhsoak-test-worker2")) == 1  # and no other node was touched
    assert node.boot_id() is None  # a container shares the host's kernel
    node.restore()  # nothing to restore: it runs


def test_restore_starts_a_node_left_stopped(engine: Engine, kind_nodes: list[str], tmp_path: Path) -> None:
    loaded = inventory_for(kind_nodes, engine, tmp_path)
    node = driver.drivers_for(loaded, ["lhsoak-test-worker2"], options=OPTIONS)["lhsoak-test-worker2"]
    node.reboot()
    engine.client.containers.get("lhsoak-test-worker2").stop(timeout=5)  # as if it died on the way up

    node.restore()

    assert engine.client.containers.get("lhsoak-test-worker2").attrs["State"]["Running"]
    assert len(boots(engine, "lhsoak-test-worker2")) == 3


def test_a_stopped_node_is_refused_before_anything_is_touched(
    engine: Engine, kind_nodes: list[str], tmp_path: Path
) -> None:
    engine.client.containers.get("lhsoak-test-control-plane").stop(timeout=5)
    loaded = inventory_for(kind_nodes, engine, tmp_path)
    node = driver.drivers_for(loaded, ["lhsoak-test-control-plane"], options=OPTIONS)[
        "lhsoak-test-control-plane"
    ]

    with pytest.raises(driver.DriverError, match="container lhsoak-test-control-plane is exited"):
        node.check()
