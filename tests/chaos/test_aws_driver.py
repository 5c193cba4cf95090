"""The aws driver against the lab's EC2 endpoint (moto): the right instance, and only it, reboots."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from lhsoak import inventory
from lhsoak.chaos import driver
from lhsoak.chaos.driver import DriverOptions
from lhsoak.lab import ec2
from lhsoak.lab.machine import MachineEvent

from .conftest import Lab


class Events:
    """Every machine transition in the lab, recorded from the lab loop."""

    def __init__(self) -> None:
        self.seen: list[MachineEvent] = []

    def kinds(self, machine: str) -> list[str]:
        return [event.kind for event in list(self.seen) if event.machine == machine]


@pytest.fixture
def events(lab: Lab) -> Iterator[Events]:
    recorded = Events()
    unsubscribe = lab.call(lambda: lab.fleet.subscribe(recorded.seen.append))
    yield recorded
    lab.call(unsubscribe)


def node(
    endpoint: ec2.Ec2Endpoint, name: str, *, ssh: inventory.SshAccess | None = None, **aws_fields: object
) -> inventory.Node:
    fields: dict[str, object] = {"name_tag": name}
    fields.update(aws_fields)
    target = inventory.AwsTarget(region=endpoint.region, endpoint_url=endpoint.url, **fields)  # type: ignore[arg-type]
    return inventory.Node(name=name, role="worker", aws=target, ssh=ssh)


def build(node: inventory.Node, options: DriverOptions) -> driver.RebootDriver:
    return driver.drivers_for(
        inventory.Inventory(cluster=inventory.ClusterTarget(context="lab"), nodes=(node,)),
        [node.name],
        options=options,
    )[node.name]


def test_power_cycle_by_name_tag_stops_and_starts_only_that_instance(
    lab: Lab, ec2_endpoint: ec2.Ec2Endpoint, events: Events, options: DriverOptions
) -> None:
    before = {name: lab.boot_id(name) for name in lab.fleet.names}
    chosen = build(node(ec2_endpoint, "worker-1", mode="power-cycle"), options)
    chosen.check()

    proof = driver.prove_reboot(chosen, down_deadline_s=5, up_deadline_s=5)

    assert proof.down == driver.Evidence(
        proven=True, detail=f"EC2 instance {ec2_endpoint.instance_ids['worker-1']} (us-east-1) stopped"
    )
    assert (proof.old_boot_id, proof.new_boot_id) == (None, None), "no ssh: no boot id"
    assert events.kinds("worker-1")[:5] == [
        "shutdown-started",
        "kubelet-stopped",
        "powered-off",
        "boot-started",
        "booted",
    ]
    assert lab.boot_id("worker-1") != before["worker-1"]
    for other in ("cp-1", "worker-2", "stuck-1"):
        assert events.kinds(other) == [], f"{other} was touched"
        assert lab.boot_id(other) == before[other]


def test_reboot_by_instance_id_with_ssh_beside_proves_the_new_boot_id(
    lab: Lab, ec2_endpoint: ec2.Ec2Endpoint, events: Events, options: DriverOptions
) -> None:
    instance_id = ec2_endpoint.instance_ids["cp-1"]
    chosen = build(
        node(ec2_endpoint, "cp-1", name_tag=None, instance_id=instance_id, ssh=lab.ssh("cp-1")), options
    )
    before = lab.boot_id("cp-1")

    proof = driver.prove_reboot(chosen, down_deadline_s=5, up_deadline_s=5)

    assert proof.old_boot_id == before
    assert proof.new_boot_id == lab.boot_id("cp-1") != before
    assert proof.down.proven
    assert proof.down.detail.startswith("ssh: ")
    assert "powered-off" in events.kinds("cp-1")
    assert all(events.kinds(other) == [] for other in ("worker-1", "worker-2", "stuck-1"))


def test_reboot_without_ssh_says_the_machine_level_proof_is_missing(
    lab: Lab, ec2_endpoint: ec2.Ec2Endpoint, events: Events, options: DriverOptions
) -> None:
    before = lab.boot_id("worker-2")
    proof = driver.prove_reboot(
        build(node(ec2_endpoint, "worker-2"), options), down_deadline_s=5, up_deadline_s=5
    )

    assert not proof.machine_proven
    assert not proof.down.proven
    assert "stays 'running' through a restart and the node has no ssh" in proof.down.detail
    lab.wait_for(
        "worker-2", lambda m: m.state == "running" and m.boot_id != before, "the lab reboot to finish"
    )
    assert "shutdown-started" in events.kinds("worker-2"), "the reboot did happen"


def test_restore_starts_an_instance_this_driver_stopped_and_only_once(
    lab: Lab, ec2_endpoint: ec2.Ec2Endpoint, options: DriverOptions
) -> None:
    chosen = build(node(ec2_endpoint, "worker-1", mode="power-cycle"), options)
    chosen.reboot()
    assert chosen.wait_down(deadline_s=5).proven

    chosen.restore()

    lab.wait_for("worker-1", lambda m: m.state == "running", "worker-1 to boot after restore")
    chosen.restore()  # idempotent: nothing left to start
    assert lab.machine("worker-1").state == "running"


def test_a_failed_proof_restores_the_instance(
    lab: Lab, ec2_endpoint: ec2.Ec2Endpoint, options: DriverOptions
) -> None:
    chosen = build(node(ec2_endpoint, "worker-1", mode="power-cycle"), options)
    # A zero deadline sees "stopping" once and gives up: prove_reboot must not leave it off.
    with pytest.raises(
        driver.RebootNotObserved, match=r"to be stopped: not seen within 0s \(1 attempts\); seen: stopping"
    ):
        driver.prove_reboot(chosen, down_deadline_s=0, up_deadline_s=5)
    lab.wait_for("worker-1", lambda m: m.state == "running", "worker-1 to be started again by restore")


def test_restore_does_nothing_for_an_instance_it_did_not_stop(
    lab: Lab, ec2_endpoint: ec2.Ec2Endpoint, options: DriverOptions
) -> None:
    lab.call(lambda: lab.machine("worker-2").power_off())
    build(node(ec2_endpoint, "worker-2", mode="power-cycle"), options).restore()
    assert lab.machine("worker-2").state == "off"


def test_a_name_tag_matching_nothing_is_an_access_error(
    ec2_endpoint: ec2.Ec2Endpoint, options: DriverOptions
) -> None:
    chosen = build(node(ec2_endpoint, "worker-9"), options)
    with pytest.raises(
        driver.AccessError, match=r"no live instance tagged Name=worker-9 in us-east-1; exactly one"
    ):
        chosen.check()


def test_an_unknown_instance_id_is_an_access_error(
    ec2_endpoint: ec2.Ec2Endpoint, options: DriverOptions
) -> None:
    chosen = build(node(ec2_endpoint, "worker-1", name_tag=None, instance_id="i-0123456789abcdef0"), options)
    with pytest.raises(
        driver.AccessError,
        match=r"RebootInstances failed: InvalidInstanceID.NotFound: The instance ID .i-0123456789abcdef0. does not exist",
    ):
        chosen.reboot()


def test_a_stopped_instance_fails_the_check(
    lab: Lab, ec2_endpoint: ec2.Ec2Endpoint, options: DriverOptions
) -> None:
    lab.call(lambda: lab.machine("worker-2").power_off())
    with pytest.raises(
        driver.DriverError, match=r"\(us-east-1\) is stopped; lhsoak reboots running instances only"
    ):
        build(node(ec2_endpoint, "worker-2"), options).check()


def test_missing_credentials_are_an_access_error(
    ec2_endpoint: ec2.Ec2Endpoint, options: DriverOptions, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(driver.AccessError, match=r"no AWS credentials found"):
        build(node(ec2_endpoint, "worker-1"), options).check()


def test_an_unknown_profile_is_an_access_error(ec2_endpoint: ec2.Ec2Endpoint, options: DriverOptions) -> None:
    target = node(ec2_endpoint, "worker-1", profile="chaos")
    with pytest.raises(driver.AccessError, match=r"AWS profile 'chaos' is not in the shared AWS config"):
        build(target, options).check()


def test_reprs_hold_no_credentials(ec2_endpoint: ec2.Ec2Endpoint, options: DriverOptions) -> None:
    chosen = build(node(ec2_endpoint, "worker-1"), options)
    chosen.check()
    shown = repr(chosen) + repr(dataclasses.asdict(node(ec2_endpoint, "worker-1")))
    assert ec2.FAKE_SECRET_ACCESS_KEY not in shown
    assert ec2.FAKE_ACCESS_KEY_ID not in shown
