"""Each machine's SSH endpoint, through paramiko: commands, reboots, refused connections, auth, keys."""

from __future__ import annotations

import errno
import io
import random
import socket
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from lhsoak.lab import sshd
from lhsoak.lab.machine import Machine, MachineTimings

from ..support.loop import DEADLINE_S, LoopThread
from ..support.ssh_lab import SshLab, running_ssh_lab
from ..support.waits import wait_until

FAST = MachineTimings(shutdown_s=0.05, down_s=0.4, boot_s=0.05, kubelet_start_s=0.05)
# Long enough that a client connecting right after "booted" finds the kubelet still starting.
SLOW_KUBELET = MachineTimings(shutdown_s=0.05, down_s=0.1, boot_s=0.05, kubelet_start_s=1.5)


@dataclass
class Lab(SshLab):
    """Two machines with SSH servers, and a known_hosts file that pins their host keys."""

    known_hosts: Path = Path()

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


@pytest.fixture
def lab(lab_loop: LoopThread, tmp_path: Path) -> Iterator[Lab]:
    machines = [
        Machine("node-a", role="control-plane", rng=random.Random(1), timings=FAST),
        Machine("node-k", role="worker", rng=random.Random(2), timings=SLOW_KUBELET),
    ]
    with running_ssh_lab(lab_loop, machines, state_dir=tmp_path / "state", lab_type=Lab) as started:
        started.known_hosts = tmp_path / "known_hosts"
        started.known_hosts.write_text(
            "".join(server.known_hosts_line + "\n" for server in started.servers.values())
        )
        yield started


def run(client: paramiko.SSHClient, command: str) -> tuple[int, str, str]:
    _stdin, stdout, stderr = client.exec_command(command, timeout=DEADLINE_S)
    status = stdout.channel.recv_exit_status()
    return status, stdout.read().decode(), stderr.read().decode()


def connection_refused(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(DEADLINE_S)
        return probe.connect_ex(("127.0.0.1", port)) == errno.ECONNREFUSED


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
        assert lab.loop.call(lab.fleet["node-a"].reboot) is True

        wait_until(lambda: not transport.is_active(), what="the session to be dropped")
        with pytest.raises((paramiko.SSHException, EOFError, OSError)):
            run(client, "hostname")


def test_connection_refused_while_powered_off(lab: Lab) -> None:
    server = lab.servers["node-a"]
    lab.loop.call(lab.fleet["node-a"].power_off)
    assert not server.listening
    assert connection_refused(server.port)
    with pytest.raises(paramiko.ssh_exception.NoValidConnectionsError):
        lab.connect("node-a")
    lab.loop.call(lab.fleet["node-a"].power_on)
    lab.wait_for("node-a", lambda m: m.state == "running", "power-on to finish")
    with lab.connect("node-a") as client:
        assert run(client, "hostname") == (0, "node-a\n", "")


def test_kubelet_inactive_right_after_boot_then_active(lab: Lab) -> None:
    machine = lab.fleet["node-k"]
    with lab.connect("node-k") as client:
        assert run(client, "systemctl is-active kubelet") == (0, "active\n", "")
    lab.loop.call(machine.reboot)
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
    key_bytes = user_key.read_bytes()

    lab.restart_servers()

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
