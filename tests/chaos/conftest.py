"""Fixtures for the chaos drivers: lab machines with real SSH servers and a real EC2 endpoint.

The lab runs in one asyncio loop in a background thread (as in the lab process); the drivers under
test are ordinary blocking clients in the test's thread, talking over loopback TCP.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lhsoak import inventory
from lhsoak.chaos.driver import DriverOptions
from lhsoak.lab import ec2, sshd
from lhsoak.lab.machine import Machine, MachineTimings

from ..support.loop import LoopThread
from ..support.ssh_lab import SshLab, running_ssh_lab

EC2_START_DEADLINE_S = 60.0
"""Starting moto imports and boots a whole server: slow on a busy 2-core machine, once per test."""
FAST = MachineTimings(shutdown_s=0.05, down_s=0.2, boot_s=0.05, kubelet_start_s=0.05)
NODES: dict[str, inventory.Role] = {"cp-1": "control-plane", "worker-1": "worker", "worker-2": "worker"}
STAYS_DOWN = dataclasses.replace(FAST, down_s=120.0)
"""Timings of "stuck-1": once it goes down it stays off far longer than any test waits."""


@pytest.fixture
def options() -> DriverOptions:
    """Driver options scaled to the lab's sub-second reboots."""
    return DriverOptions(connect_timeout_s=2.0, poll_interval_s=0.05, restore_deadline_s=5.0)


class Lab(SshLab):
    """Lab machines with SSH servers, driven from the test's thread."""

    def ssh(self, name: str, **overrides: Any) -> inventory.SshAccess:
        """Inventory ssh access to machine `name`: lab user and key, host key pinned."""
        server = self.servers[name]
        access = inventory.SshAccess(
            host=server.host,
            port=server.port,
            user=server.user,
            key_file=self.state_dir / sshd.USER_KEY_NAME,
            host_key=server.host_key_public,
        )
        return dataclasses.replace(access, **overrides)


@pytest.fixture
def lab(lab_loop: LoopThread, tmp_path: Path) -> Iterator[Lab]:
    """Running machines, each with an SSH server on loopback: cp-1, worker-1, worker-2 reboot in
    well under a second; stuck-1 stays down for minutes once it goes down."""
    machines = [
        Machine(name, role=role, rng=random.Random(f"11:{name}"), timings=FAST)
        for name, role in NODES.items()
    ]
    machines.append(Machine("stuck-1", role="worker", rng=random.Random("11:stuck-1"), timings=STAYS_DOWN))
    with running_ssh_lab(lab_loop, machines, state_dir=tmp_path / "state", lab_type=Lab) as started:
        yield started


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials in the environment (the lab accepts any) and no user AWS config."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ec2.FAKE_ACCESS_KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", ec2.FAKE_SECRET_ACCESS_KEY)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def ec2_endpoint(lab: Lab, aws_env: None) -> Iterator[ec2.Ec2Endpoint]:
    """The lab's EC2 endpoint (moto behind a proxy) with one instance per lab machine."""
    endpoint = lab.run(ec2.start_ec2_endpoint(lab.fleet), timeout_s=EC2_START_DEADLINE_S)
    yield endpoint
    lab.run(endpoint.close())
