"""Fixtures for the chaos drivers: lab machines with real SSH servers and a real EC2 endpoint.

The lab runs in one asyncio loop in a background thread (as in the lab process); the drivers under
test are ordinary blocking clients in the test's thread, talking over loopback TCP.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from lhsoak import inventory
from lhsoak.chaos.driver import DriverOptions
from lhsoak.lab import ec2, sshd
from lhsoak.lab.machine import Machine, MachineFleet, MachineTimings

T = TypeVar("T")
LAB_DEADLINE_S = 10.0
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


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """The lab's event loop, running in its own thread."""
    lab_loop = asyncio.new_event_loop()
    thread = threading.Thread(target=lab_loop.run_forever, name="lab-loop", daemon=True)
    thread.start()
    yield lab_loop
    _in_loop(lab_loop, _cancel_leftover_tasks())
    lab_loop.call_soon_threadsafe(lab_loop.stop)
    thread.join(LAB_DEADLINE_S)
    lab_loop.close()


async def _cancel_leftover_tasks() -> None:
    leftovers = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in leftovers:
        task.cancel()
    await asyncio.gather(*leftovers, return_exceptions=True)


def _in_loop(
    loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, T], *, timeout_s: float = LAB_DEADLINE_S
) -> T:
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout_s)


@dataclass
class Lab:
    """Lab machines with SSH servers, driven from the test's thread."""

    loop: asyncio.AbstractEventLoop
    fleet: MachineFleet
    servers: dict[str, sshd.SshServer]
    state_dir: Path

    def run(self, coroutine: Coroutine[Any, Any, T], *, timeout_s: float = LAB_DEADLINE_S) -> T:
        """Run a coroutine in the lab loop and return its result."""
        return _in_loop(self.loop, coroutine, timeout_s=timeout_s)

    def call(self, function: Callable[[], T]) -> T:
        """Call a function in the lab loop (machines are touched only from there)."""

        async def call() -> T:
            return function()

        return self.run(call())

    def machine(self, name: str) -> Machine:
        return self.fleet[name]

    def boot_id(self, name: str) -> str:
        return self.call(lambda: self.fleet[name].boot_id)

    def wait_for(self, name: str, predicate: Callable[[Machine], bool], what: str) -> None:
        self.run(self.fleet.wait_for(name, predicate, timeout_s=LAB_DEADLINE_S, what=what))

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


async def _start_servers(fleet: MachineFleet, state_dir: Path) -> dict[str, sshd.SshServer]:
    return {machine.name: await sshd.start_ssh_server(machine, state_dir=state_dir) for machine in fleet}


async def _close_servers(servers: dict[str, sshd.SshServer]) -> None:
    for server in servers.values():
        await server.close()


@pytest.fixture
def lab(loop: asyncio.AbstractEventLoop, tmp_path: Path) -> Iterator[Lab]:
    """Running machines, each with an SSH server on loopback: cp-1, worker-1, worker-2 reboot in
    well under a second; stuck-1 stays down for minutes once it goes down."""

    async def build() -> tuple[MachineFleet, dict[str, sshd.SshServer]]:
        machines = [
            Machine(name, role=role, rng=random.Random(f"11:{name}"), timings=FAST)
            for name, role in NODES.items()
        ]
        machines.append(
            Machine("stuck-1", role="worker", rng=random.Random("11:stuck-1"), timings=STAYS_DOWN)
        )
        fleet = MachineFleet(machines)
        return fleet, await _start_servers(fleet, tmp_path / "state")

    fleet, servers = _in_loop(loop, build())
    yield Lab(loop=loop, fleet=fleet, servers=servers, state_dir=tmp_path / "state")
    _in_loop(loop, _close_servers(servers))


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
