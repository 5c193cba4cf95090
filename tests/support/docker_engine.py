"""A private Docker engine for the docker driver's live test, started by the test itself.

CI has Debian's `docker.io` but no running engine and no registry: the test starts `dockerd` with no
bridge and no iptables (it touches no host networking) under a temporary data root, listening on its own
unix socket, and imports a one-binary image from the host's static busybox (no pulls). It is stopped and
its files removed at the end. Where that cannot be done (not root, no dockerd, no static busybox, the
daemon does not come up) the caller skips with the reason.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import tenacity

IMAGE = "lhsoak-test/busybox:local"
START_DEADLINE_S = 60.0


class EngineUnavailable(Exception):
    """Why no private engine could be started (the test skips with it)."""


@dataclass(frozen=True)
class PrivateEngine:
    host: str
    """DOCKER_HOST of the engine: unix://…/docker.sock."""
    image: str
    """A local image with `sleep` (busybox)."""


@contextlib.contextmanager
def private_engine() -> Iterator[PrivateEngine]:
    """Start dockerd, import the image, yield; stop it and remove its files. EngineUnavailable if not."""
    dockerd, busybox = _requirements()
    # A short path: a unix socket's path must fit in 108 bytes, pytest's tmp paths may not.
    workdir = Path(tempfile.mkdtemp(prefix="lhsoak-dk-", dir="/tmp"))
    socket_path = workdir / "docker.sock"
    log_path = workdir / "dockerd.log"
    with log_path.open("wb") as log:
        daemon = subprocess.Popen(
            [
                dockerd,
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                f"--data-root={workdir / 'root'}",
                f"--exec-root={workdir / 'exec'}",
                f"--pidfile={workdir / 'dockerd.pid'}",
                f"--host=unix://{socket_path}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        host = f"unix://{socket_path}"
        _wait_until_up(host, daemon, log_path)
        _import_image(host, busybox, workdir)
        yield PrivateEngine(host=host, image=IMAGE)
    finally:
        daemon.terminate()
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait(timeout=10)
        shutil.rmtree(workdir, ignore_errors=True)


def _requirements() -> tuple[str, str]:
    dockerd = shutil.which("dockerd")
    if dockerd is None:
        raise EngineUnavailable("dockerd is not installed (Debian docker.io)")
    if os.geteuid() != 0:
        raise EngineUnavailable("starting a private dockerd needs root")
    busybox = shutil.which("busybox")
    if busybox is None or not _is_static(busybox):
        raise EngineUnavailable("no static busybox to build the test image from (Debian busybox-static)")
    return dockerd, busybox


def _is_static(binary: str) -> bool:
    # A dynamic binary has a PT_INTERP program header naming its loader; its path is in the file.
    return b"ld-linux" not in Path(binary).read_bytes()[:65536]


def _docker(host: str, *arguments: str, timeout_s: float = 30.0) -> subprocess.CompletedProcess[str]:
    docker = shutil.which("docker")
    if docker is None:
        raise EngineUnavailable("the docker command line is not installed")
    return subprocess.run(
        [docker, f"--host={host}", *arguments],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def _wait_until_up(host: str, daemon: subprocess.Popen[bytes], log_path: Path) -> None:
    def answers() -> bool:
        if daemon.poll() is not None:
            raise EngineUnavailable(f"dockerd exited with {daemon.returncode}: {_tail(log_path)}")
        return _docker(host, "version", "--format={{.Server.Version}}", timeout_s=10).returncode == 0

    try:
        tenacity.Retrying(
            retry=tenacity.retry_if_result(lambda up: not up),
            wait=tenacity.wait_fixed(0.2),
            stop=tenacity.stop_after_delay(START_DEADLINE_S),
            reraise=True,
        )(answers)
    except tenacity.RetryError:
        raise EngineUnavailable(
            f"dockerd did not answer within {START_DEADLINE_S:.0f}s: {_tail(log_path)}"
        ) from None


def _import_image(host: str, busybox: str, workdir: Path) -> None:
    archive = workdir / "rootfs.tar"
    with tarfile.open(archive, "w") as tar:
        tar.add(busybox, arcname="bin/busybox")
        for applet in ("sh", "sleep"):
            link = tarfile.TarInfo(f"bin/{applet}")
            link.type, link.linkname = tarfile.SYMTYPE, "busybox"
            tar.addfile(link)
    result = _docker(host, "import", str(archive), IMAGE)
    if result.returncode != 0:
        raise EngineUnavailable(f"docker import failed: {result.stderr.strip()}")


def _tail(path: Path, lines: int = 5) -> str:
    return " | ".join(path.read_text(errors="replace").splitlines()[-lines:])
