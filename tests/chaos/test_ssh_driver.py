"""The ssh driver against the lab's real SSH servers: reboots proven by boot id, failures that say why."""

from __future__ import annotations

import base64
import logging
import socket
from pathlib import Path

import pytest

from lhsoak.chaos import driver, ssh
from lhsoak.chaos.driver import DriverOptions

from .conftest import Lab


def make(lab: Lab, name: str, options: DriverOptions, **ssh_overrides: object) -> ssh.SshDriver:
    return ssh.SshDriver(name, lab.ssh(name, **ssh_overrides), options=options)


def test_reboot_is_proven_by_a_new_boot_id(lab: Lab, options: DriverOptions) -> None:
    before = lab.boot_id("worker-1")
    phases: list[tuple[str, str | None]] = []

    proof = driver.prove_reboot(
        make(lab, "worker-1", options),
        down_deadline_s=5,
        up_deadline_s=5,
        on_phase=lambda phase, boot_id: phases.append((phase, boot_id)),
    )

    after = lab.boot_id("worker-1")
    assert after != before
    assert (proof.old_boot_id, proof.new_boot_id) == (before, after)
    assert proof.down.proven
    assert proof.machine_proven
    assert proof.issued_at <= proof.down_at <= proof.up_at
    assert phases == [("start", before), ("down", before), ("up", after)]
    assert lab.boot_id("worker-2") != after


def test_each_reboot_of_the_same_driver_is_proven_anew(lab: Lab, options: DriverOptions) -> None:
    node = make(lab, "cp-1", options)
    first = driver.prove_reboot(node, down_deadline_s=5, up_deadline_s=5)
    second = driver.prove_reboot(node, down_deadline_s=5, up_deadline_s=5)
    assert second.old_boot_id == first.new_boot_id
    assert second.new_boot_id == lab.boot_id("cp-1")
    assert len({first.old_boot_id, first.new_boot_id, second.new_boot_id}) == 3


def test_a_reboot_command_that_does_nothing_fails_with_what_was_seen(
    lab: Lab, options: DriverOptions
) -> None:
    before = lab.boot_id("worker-1")
    phases: list[str] = []

    with pytest.raises(driver.RebootNotObserved) as caught:
        driver.prove_reboot(
            make(lab, "worker-1", options, reboot_command="true", sudo=False),
            down_deadline_s=0.3,
            up_deadline_s=5,
            on_phase=lambda phase, _boot_id: phases.append(phase),
        )

    message = str(caught.value)
    assert message.startswith(
        "node worker-1: ssh to stop answering or show a new boot id: not seen within 0.3s"
    )
    assert f"seen: ssh answered, boot id still {before}" in message
    assert phases == ["start", "failed"]
    assert lab.boot_id("worker-1") == before


def test_a_reboot_command_that_is_not_found_fails_at_once(lab: Lab, options: DriverOptions) -> None:
    node = make(lab, "worker-1", options, reboot_command="systemctl-reboot-now", sudo=False)
    with pytest.raises(driver.DriverError) as caught:
        node.reboot()
    assert str(caught.value) == (
        "node worker-1: reboot command 'systemctl-reboot-now' failed with exit status 127; "
        "seen: bash: systemctl-reboot-now: command not found"
    )


def test_a_reboot_refused_without_sudo_says_so(lab: Lab, options: DriverOptions) -> None:
    node = make(lab, "worker-1", options, sudo=False)
    with pytest.raises(driver.DriverError, match=r"exit status 1; seen: Failed to reboot system via logind"):
        node.reboot()
    assert lab.machine("worker-1").state == "running"


def test_a_changed_host_key_is_refused(lab: Lab, options: DriverOptions) -> None:
    other_key = lab.servers["worker-2"].host_key_public
    node = make(lab, "worker-1", options, host_key=other_key)
    before = lab.boot_id("worker-1")

    with pytest.raises(driver.AccessError) as caught:
        node.reboot()

    message = str(caught.value)
    assert "ssh host key of 127.0.0.1:" in message
    assert "CHANGED: the server offered ssh-ed25519 SHA256:" in message
    assert "refusing to connect" in message
    assert lab.boot_id("worker-1") == before, "nothing was run"


def test_an_unknown_host_key_is_refused_with_what_to_do(
    lab: Lab, options: DriverOptions, tmp_path: Path
) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    node = make(lab, "worker-1", options, host_key=None, known_hosts=empty)
    with pytest.raises(driver.AccessError, match=r"is not known: put it in the inventory as ssh.host_key"):
        node.check()


def test_a_known_hosts_file_is_used(lab: Lab, options: DriverOptions, tmp_path: Path) -> None:
    known_hosts = tmp_path / "known_hosts"
    known_hosts.write_text("".join(server.known_hosts_line + "\n" for server in lab.servers.values()))
    node = make(lab, "cp-1", options, host_key=None, known_hosts=known_hosts)
    assert node.boot_id() == lab.boot_id("cp-1")


def test_insecure_host_keys_warn_on_every_connection(
    lab: Lab, options: DriverOptions, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="lhsoak.chaos.ssh")
    insecure = DriverOptions(
        insecure_host_keys=True, connect_timeout_s=options.connect_timeout_s, poll_interval_s=0.05
    )
    node = make(lab, "worker-1", insecure, host_key=lab.servers["worker-2"].host_key_public)

    assert node.boot_id() == node.boot_id() == lab.boot_id("worker-1")

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert all(
        w.startswith("node worker-1: INSECURE: accepting ssh host key ssh-ed25519 SHA256:") for w in warnings
    )


def test_a_refused_login_is_an_access_error(lab: Lab, options: DriverOptions) -> None:
    node = make(lab, "worker-1", options, user="root")
    with pytest.raises(driver.AccessError, match=r"ssh root@127.0.0.1:\d+ was refused"):
        node.boot_id()


def test_a_node_that_does_not_come_back_fails_with_what_was_seen(lab: Lab, options: DriverOptions) -> None:
    node = make(lab, "stuck-1", options)
    node.boot_id()
    node.reboot()
    assert node.wait_down(deadline_s=5).proven

    with pytest.raises(driver.NodeNotBack) as caught:
        node.wait_up(deadline_s=0.3)

    message = str(caught.value)
    assert "node stuck-1: ssh to answer with a new boot id (was " in message
    assert "not seen within 0.3s" in message
    assert "seen: ssh: connection refused" in message


def test_an_unreachable_node_cannot_be_read(lab: Lab, options: DriverOptions) -> None:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        closed_port = placeholder.getsockname()[1]
    node = make(lab, "worker-1", options, port=closed_port)
    with pytest.raises(driver.DriverError) as caught:
        node.boot_id()
    assert str(caught.value) == (
        f"node worker-1: cannot read the boot id over ssh (127.0.0.1:{closed_port}); seen: connection refused"
    )


def test_a_host_key_type_paramiko_cannot_check_is_an_access_error(lab: Lab, options: DriverOptions) -> None:
    key_type = b"sk-ssh-ed25519@openssh.com"
    blob = len(key_type).to_bytes(4, "big") + key_type + (32).to_bytes(4, "big") + bytes(32)
    node = make(lab, "worker-1", options, host_key=f"{key_type.decode()} {base64.b64encode(blob).decode()}")
    with pytest.raises(
        driver.AccessError, match=r"is a sk-ssh-ed25519@openssh.com key, which paramiko cannot check"
    ):
        node.check()
