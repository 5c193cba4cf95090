"""Each machine's SSH endpoint, through paramiko: commands, reboots, refused connections, auth, keys."""

from __future__ import annotations

import asyncio
import io
import random
import socket
import stat
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import paramiko
import pytest
import tenacity
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lhsoak.lab import sshd
from lhsoak.lab.machine import Machine, MachineFleet, MachineTimings

T = TypeVar("T")
DEADLINE_S = 10.0
FAST = MachineTimings(shutdown_s=0.05, down_s=0.4, boot_s=0.05, kubelet_start_s=0.05)
# Long enough that a client connecting right after "booted" finds the kubelet still starting.
SLOW_KUBELET = MachineTimings(shutdown_s=0.05, down_s=0.1, boot_s=0.05, kubelet_start_s=1.5)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """The lab's event loop, in its own thread; the test is a client from another thread."""
    lab_loop = asyncio.new_event_loop()
    thread = threading.Thread(target=lab_loop.run_forever, name="lab-loop", daemon=True)
    thread.start()
    yield lab_loop
    in_loop(lab_loop, _cancel_leftover_tasks())
    lab_loop.call_soon_threadsafe(lab_loop.stop)
    thread.join(DEADLINE_S)
    lab_loop.close()


async def _cancel_leftover_tasks() -> None:
    leftovers = [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]
    for task in leftovers:
        task.cancel()
    await asyncio.gather(*leftovers, return_exceptions=True)


def in_loop(loop: asyncio.AbstractEventLoop, coroutine: Coroutine[Any, Any, T]) -> T:
    return asyncio.run_coroutine_threadsafe(coroutine, loop).result(DEADLINE_S)


def call_in_loop(loop: asyncio.AbstractEventLoop, function: Callable[[], T]) -> T:
    async def call() -> T:
        return function()

    return in_loop(loop, call())


@dataclass
class Lab:
    loop: asyncio.AbstractEventLoop
    fleet: MachineFleet
    servers: dict[str, sshd.SshServer]
    state_dir: Path
    known_hosts: Path

    def wait_for(self, name: str, predicate: Callable[[Machine], bool], what: str) -> None:
        in_loop(self.loop, self.fleet.wait_for(name, predicate, timeout_s=DEADLINE_S, what=what))

    def connect(self, name: str, **overrides: Any) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        client.load_host_keys(str(self.known_hosts))
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        options: dict[str, Any] = {
            "hostname": "127.0.0.1",
            "port": self.servers[name].port,
            "username": "lab",
            "key_filename": str(self.state_dir / "id_ed25519"),
            "look_for_keys": False,
            "allow_agent": False,
            "timeout": DEADLINE_S,
            "banner_timeout": DEADLINE_S,
            "auth_timeout": DEADLINE_S,
        }
        options.update(overrides)
        try:
            client.connect(**options)
        except BaseException:
            client.close()
            raise
        return client


async def start_servers(
    fleet: MachineFleet, state_dir: Path, ports: dict[str, int] | None = None
) -> dict[str, sshd.SshServer]:
    ports = ports or {}
    return {
        m.name: await sshd.start_ssh_server(m, state_dir=state_dir, port=ports.get(m.name, 0)) for m in fleet
    }


async def close_servers(servers: dict[str, sshd.SshServer]) -> None:
    for server in servers.values():
        await server.close()


@pytest.fixture
def lab(loop: asyncio.AbstractEventLoop, tmp_path: Path) -> Iterator[Lab]:
    fleet = MachineFleet(
        [
            Machine("node-a", role="control-plane", rng=random.Random(1), timings=FAST),
            Machine("node-k", role="worker", rng=random.Random(2), timings=SLOW_KUBELET),
        ]
    )
    state_dir = tmp_path / "state"
    servers = in_loop(loop, start_servers(fleet, state_dir))
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("".join(server.known_hosts_line + "\n" for server in servers.values()))
    yield Lab(loop, fleet, servers, state_dir, known_hosts)
    in_loop(loop, close_servers(servers))


def run(client: paramiko.SSHClient, command: str) -> tuple[int, str, str]:
    _stdin, stdout, stderr = client.exec_command(command, timeout=DEADLINE_S)
    status = stdout.channel.recv_exit_status()
    return status, stdout.read().decode(), stderr.read().decode()


def wait_until(condition: Callable[[], bool], what: str) -> None:
    for attempt in tenacity.Retrying(
        stop=tenacity.stop_after_delay(DEADLINE_S), wait=tenacity.wait_fixed(0.02), reraise=True
    ):
        with attempt:
            assert condition(), f"waited {DEADLINE_S}s for {what}"


def connection_refused(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(DEADLINE_S)
        return probe.connect_ex(("127.0.0.1", port)) == 111  # ECONNREFUSED


def test_reboot_over_ssh_changes_boot_id_and_keeps_port_and_host_key(lab: Lab) -> None:
    machine, server = lab.fleet["node-a"], lab.servers["node-a"]
    port, host_key = server.port, server.host_key_public
    with lab.connect("node-a") as client:
        status, old_boot_id, _ = run(client, "cat /proc/sys/kernel/random/boot_id")
        assert status == 0
        assert old_boot_id == machine.boot_id + "\n"
        _stdin, stdout, _stderr = client.exec_command("sudo reboot", timeout=DEADLINE_S)
        # The exit status races the connection drop, as on a real host: 0, or -1 for "none came".
        assert stdout.channel.recv_exit_status() in (0, -1)

    lab.wait_for("node-a", lambda m: m.state != "running", "the machine to go down")
    assert connection_refused(port)
    lab.wait_for("node-a", lambda m: m.state == "running", "the machine to boot")

    assert (server.port, server.host_key_public) == (port, host_key)
    with lab.connect("node-a") as client:
        _, new_boot_id, _ = run(client, "cat /proc/sys/kernel/random/boot_id")
    assert new_boot_id == machine.boot_id + "\n"
    assert new_boot_id != old_boot_id


def test_open_session_is_dropped_when_the_machine_reboots(lab: Lab) -> None:
    with lab.connect("node-a") as client:
        transport = client.get_transport()
        assert transport is not None
        assert transport.is_active()
        assert call_in_loop(lab.loop, lab.fleet["node-a"].reboot) is True

        wait_until(lambda: not transport.is_active(), "the session to be dropped")
        with pytest.raises((paramiko.SSHException, EOFError, OSError)):
            run(client, "hostname")


def test_connection_refused_while_powered_off(lab: Lab) -> None:
    server = lab.servers["node-a"]
    call_in_loop(lab.loop, lab.fleet["node-a"].power_off)
    assert not server.listening
    assert connection_refused(server.port)
    with pytest.raises(paramiko.ssh_exception.NoValidConnectionsError):
        lab.connect("node-a")
    call_in_loop(lab.loop, lab.fleet["node-a"].power_on)
    lab.wait_for("node-a", lambda m: m.state == "running", "power-on to finish")
    with lab.connect("node-a") as client:
        assert run(client, "hostname") == (0, "node-a\n", "")


def test_kubelet_inactive_right_after_boot_then_active(lab: Lab) -> None:
    machine = lab.fleet["node-k"]
    with lab.connect("node-k") as client:
        assert run(client, "systemctl is-active kubelet") == (0, "active\n", "")
    call_in_loop(lab.loop, machine.reboot)
    lab.wait_for("node-k", lambda m: m.state == "running", "the machine to boot")
    with lab.connect("node-k") as client:
        assert run(client, "systemctl is-active kubelet") == (3, "inactive\n", "")
        lab.wait_for("node-k", lambda m: m.kubelet_active, "the kubelet to start")
        assert run(client, "systemctl is-active kubelet") == (0, "active\n", "")


def test_commands_a_driver_needs_and_realistic_failures(lab: Lab) -> None:
    machine = lab.fleet["node-a"]
    with lab.connect("node-a") as client:
        assert run(client, "hostname") == (0, "node-a\n", "")
        assert run(client, "frobnicate --now") == (127, "", "bash: frobnicate: command not found\n")
        assert run(client, "reboot") == (1, "", "reboot: must be superuser.\n")
        assert run(client, "sudo frobnicate") == (1, "", "sudo: frobnicate: command not found\n")
        status, uptime, _ = run(client, "uptime")
        assert status == 0
        assert " up 0 min,  1 user,  load average: " in uptime
    assert machine.state == "running", "a refused reboot must not reboot"


def test_wrong_key_password_and_other_user_are_rejected(lab: Lab, tmp_path: Path) -> None:
    stranger = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    )
    stranger_key = paramiko.Ed25519Key(file_obj=io.StringIO(stranger.decode()))
    with pytest.raises(paramiko.AuthenticationException):
        lab.connect("node-a", key_filename=None, pkey=stranger_key)
    with pytest.raises(paramiko.BadAuthenticationType) as refused:
        lab.connect("node-a", key_filename=None, password="lab")
    assert refused.value.allowed_types == ["publickey"]
    with pytest.raises(paramiko.AuthenticationException):
        lab.connect("node-a", username="root")


def test_keys_are_reused_by_a_restarted_lab(lab: Lab) -> None:
    user_key = lab.state_dir / "id_ed25519"
    assert stat.S_IMODE(user_key.stat().st_mode) == 0o600
    paramiko.Ed25519Key(filename=str(user_key))  # OpenSSH format that paramiko reads
    before = {name: server.known_hosts_line for name, server in lab.servers.items()}
    ports = {name: server.port for name, server in lab.servers.items()}
    key_bytes = user_key.read_bytes()

    in_loop(lab.loop, close_servers(lab.servers))
    lab.servers.update(in_loop(lab.loop, start_servers(lab.fleet, lab.state_dir, ports)))

    assert {name: server.known_hosts_line for name, server in lab.servers.items()} == before
    assert user_key.read_bytes() == key_bytes
    with lab.connect("node-k") as client:
        assert run(client, "hostname") == (0, "node-k\n", "")


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("echo hi there", (0, "hi there\n", "")),
        ("true", (0, "", "")),
        ("sudo -n systemctl is-active kubelet.service", (0, "active\n", "")),
        ("cat /etc/shadow", (1, "", "cat: /etc/shadow: No such file or directory\n")),
        (
            "systemctl reboot",
            (1, "", "Failed to reboot system via logind: Interactive authentication required.\n"),
        ),
        ("echo 'unbalanced", (2, "", "bash: -c: syntax error: No closing quotation\n")),
    ],
)
def test_interpret(command: str, expected: tuple[int, str, str]) -> None:
    machine = Machine("n", role="worker", rng=random.Random(0))
    result = sshd.interpret(command, machine=machine, user="lab")
    assert (result.exit_status, result.stdout, result.stderr) == expected
    assert not result.reboots


@pytest.mark.parametrize(
    "command",
    [
        "sudo reboot",
        "sudo systemctl reboot",
        "sudo reboot -f",
        "sudo -n reboot",
        "sudo shutdown -r now",
    ],
)
def test_reboot_commands(command: str) -> None:
    machine = Machine("n", role="worker", rng=random.Random(0))
    assert sshd.interpret(command, machine=machine, user="lab").reboots
    assert sshd.interpret(
        command.removeprefix("sudo ").removeprefix("-n "), machine=machine, user="root"
    ).reboots


@pytest.mark.parametrize(
    ("uptime_s", "expected"),
    [
        (59, "0 min"),
        (300, "5 min"),
        (7500, " 2:05"),
        (86400 + 300, "1 day, 5 min"),
        (3 * 86400 + 7500, "3 days,  2:05"),
    ],
)
def test_format_uptime(uptime_s: float, expected: str) -> None:
    assert sshd.format_uptime(uptime_s) == expected
