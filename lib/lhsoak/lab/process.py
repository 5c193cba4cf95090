"""The lab as a separate process: start it, wait until it is really up, stop it.

The harness and the lab share 2 cores, so the lab runs in its own process (`lhsoak lab up`), as a real
cluster would; the harness reaches it only through the kubeconfig and inventory it writes.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import tenacity

from lhsoak import errors

READY_FILE = "ready.json"
PID_FILE = "lab.pid"
LOG_FILE = "lab.log"


class LabStartError(Exception):
    """The lab process did not come up; the message quotes the end of its log."""


@dataclass(frozen=True)
class LabProcess:
    """A running lab: where its kubeconfig and inventory are, and how to stop it."""

    state_dir: Path
    pid: int
    kubeconfig: Path
    inventory: Path
    context: str
    ec2_url: str | None = None
    """The lab's EC2 endpoint when it serves one."""
    gce_url: str | None = None
    """The lab's Compute Engine endpoint when it serves one."""
    azure_url: str | None = None
    """The lab's Azure Resource Manager when it serves one."""
    cloud_env: Path | None = None
    """The file of variables a client of the Compute Engine or Azure endpoint needs (see
    `cluster.read_env_file`)."""
    process: subprocess.Popen[bytes] | None = field(default=None, compare=False, repr=False)
    """The lab process when this one started it (then `stop` reaps it)."""

    @classmethod
    def start(
        cls,
        *,
        state_dir: Path,
        profile: str = "healthy",
        workers: int = 3,
        control_planes: int = 1,
        seed: int = 0,
        ec2: bool = False,
        gce: bool = False,
        azure: bool = False,
        crds: Path | None = None,
        deadline_s: float = 60.0,
    ) -> LabProcess:
        state_dir.mkdir(parents=True, exist_ok=True)
        (state_dir / READY_FILE).unlink(missing_ok=True)
        command = [
            sys.executable,
            "-m",
            "lhsoak",
            "lab",
            "up",
            f"--state-dir={state_dir}",
            f"--profile={profile}",
            f"--workers={workers}",
            f"--control-planes={control_planes}",
            f"--seed={seed}",
            *(["--ec2"] if ec2 else []),
            *(["--gce"] if gce else []),
            *(["--azure"] if azure else []),
            *([f"--crds={crds.resolve()}"] if crds is not None else []),
        ]
        with (state_dir / LOG_FILE).open("ab") as log_file:
            process = subprocess.Popen(
                command,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        try:
            return cls._wait_ready(state_dir, process, deadline_s=deadline_s)
        except BaseException:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            raise

    @classmethod
    def _wait_ready(
        cls, state_dir: Path, process: subprocess.Popen[bytes], *, deadline_s: float
    ) -> LabProcess:
        ready = state_dir / READY_FILE

        def check() -> dict[str, str]:
            if process.poll() is not None:
                raise LabStartError(f"the lab exited with {process.returncode}: {_log_tail(state_dir)}")
            if not ready.exists():
                raise FileNotFoundError(ready)
            data: dict[str, str] = json.loads(ready.read_text())
            return data

        # The lab writes ready.json only once its API, nodes and controllers answer; the file is the signal.
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type((FileNotFoundError, json.JSONDecodeError)),
            wait=tenacity.wait_fixed(0.1),
            stop=tenacity.stop_after_delay(deadline_s),
            reraise=True,
        )
        try:
            data = retrying(check)
        except FileNotFoundError:
            raise LabStartError(
                f"the lab did not report ready within {deadline_s:.0f}s: {_log_tail(state_dir)}"
            ) from None
        return cls(
            state_dir=state_dir,
            pid=process.pid,
            kubeconfig=Path(data["kubeconfig"]),
            inventory=Path(data["inventory"]),
            context=data["context"],
            ec2_url=data.get("ec2_url"),
            gce_url=data.get("gce_url"),
            azure_url=data.get("azure_url"),
            cloud_env=Path(data["cloud_env"]) if "cloud_env" in data else None,
            process=process,
        )

    def stop(self, *, deadline_s: float = 20.0) -> None:
        if self.process is None:
            stop_pid(self.pid, deadline_s=deadline_s)
        else:
            self.process.terminate()
            try:
                self.process.wait(timeout=deadline_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        (self.state_dir / READY_FILE).unlink(missing_ok=True)


def stop_pid(pid: int, *, deadline_s: float) -> None:
    """SIGTERM, wait for the process to go, SIGKILL if it will not."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return

    def gone() -> None:
        if _alive(pid):
            raise ProcessLookupError(f"lab process {pid} still running")

    # Another process's exit has no event to wait on (it may not be our child): poll with a deadline.
    try:
        tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(ProcessLookupError),
            wait=tenacity.wait_fixed(0.05),
            stop=tenacity.stop_after_delay(deadline_s),
            reraise=True,
        )(gone)
    except ProcessLookupError:
        os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        finished, _status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        # Not our child (started by `lab up --detach` from another command): ask the kernel.
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        return True
    return finished == 0


def _log_tail(state_dir: Path, lines: int = 20) -> str:
    path = state_dir / LOG_FILE
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def running_lab(state_dir: Path) -> int:
    """The pid of the lab recorded in `state_dir`; UsageError when there is none.

    A stale pid file must not make `lab down` signal whatever process has that pid now: the process
    must be an `lhsoak lab up` (its command line says so).
    """
    path = state_dir / PID_FILE
    if not path.exists():
        raise errors.UsageError(f"no lab is running from {state_dir} (no {PID_FILE})")
    pid = int(path.read_text().strip())
    try:
        command = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        path.unlink(missing_ok=True)
        raise errors.UsageError(
            f"the lab of {state_dir} (pid {pid}) is not running; removed its stale pid file"
        ) from None
    if b"lab" not in command or b"up" not in command:
        raise errors.UsageError(
            f"pid {pid} in {path} is not an lhsoak lab (stale pid file?); not signalling it"
        )
    return pid
