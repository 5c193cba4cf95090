"""The lab's EC2 endpoint, through boto3: reboot/stop/start drive the machines, describe follows them."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from lhsoak.lab import ec2
from lhsoak.lab.machine import EventKind, Machine, MachineEvent, MachineFleet, MachineTimings, Role

from ..support.loop import DEADLINE_S, LoopThread
from ..support.waits import wait_until

# The first endpoint of a process imports moto: ~2 s idle, much more on a loaded 2-core machine.
START_DEADLINE_S = 60.0
FAST = MachineTimings(shutdown_s=0.05, down_s=0.4, boot_s=0.05, kubelet_start_s=0.05)
ROLES: dict[str, Role] = {"cp-1": "control-plane", "worker-1": "worker", "worker-2": "worker"}


@dataclass
class Lab:
    loop: LoopThread
    fleet: MachineFleet
    endpoint: ec2.Ec2Endpoint
    client: Any
    events: list[MachineEvent]

    def wait_for(self, name: str, predicate: Callable[[Machine], bool], what: str) -> None:
        self.loop.run(self.fleet.wait_for(name, predicate, timeout_s=DEADLINE_S, what=what))

    def kinds(self, name: str) -> list[EventKind]:
        return [event.kind for event in list(self.events) if event.machine == name]

    def state(self, name: str) -> str:
        state: str = self.describe_by_name(name)["State"]["Name"]
        return state

    def describe_by_name(self, name: str) -> dict[str, Any]:
        reservations = self.client.describe_instances(Filters=[{"Name": "tag:Name", "Values": [name]}])
        instances = [i for r in reservations["Reservations"] for i in r["Instances"]]
        assert len(instances) == 1, f"tag Name={name} matched {len(instances)} instances"
        instance: dict[str, Any] = instances[0]
        return instance


@pytest.fixture
def lab(lab_loop: LoopThread) -> Iterator[Lab]:
    fleet = MachineFleet.build(ROLES, timings=FAST, seed=3)
    events: list[MachineEvent] = []
    fleet.subscribe(events.append)
    endpoint = lab_loop.run(ec2.start_ec2_endpoint(fleet), timeout_s=START_DEADLINE_S)
    client = boto3.client("ec2", **dataclasses.asdict(endpoint.credentials))
    yield Lab(lab_loop, fleet, endpoint, client, events)
    client.close()
    lab_loop.run(endpoint.close())


def test_describe_instances_by_tag_name(lab: Lab) -> None:
    for name in ROLES:
        instance = lab.describe_by_name(name)
        assert instance["InstanceId"] == lab.endpoint.instance_ids[name]
        assert instance["State"] == {"Code": 16, "Name": "running"}
        assert {"Key": "Name", "Value": name} in instance["Tags"]
    assert len(set(lab.endpoint.instance_ids.values())) == len(ROLES)


def test_reboot_instances_reboots_that_machine_only(lab: Lab) -> None:
    boot_ids = {machine.name: machine.boot_id for machine in lab.fleet}

    lab.client.reboot_instances(InstanceIds=[lab.endpoint.instance_ids["worker-1"]])

    lab.wait_for("worker-1", lambda m: m.state == "off", "the machine to be down")
    assert lab.state("worker-1") == "running", "EC2 shows a rebooting instance as running"
    lab.wait_for("worker-1", lambda m: m.state == "running" and m.kubelet_active, "the reboot")
    assert lab.fleet["worker-1"].boot_id != boot_ids["worker-1"]
    assert lab.kinds("worker-1")[0] == "shutdown-started"
    for name in ("cp-1", "worker-2"):
        assert lab.fleet[name].boot_id == boot_ids[name]
        assert lab.kinds(name) == []


def test_force_stop_then_start_power_cycles_the_machine(lab: Lab) -> None:
    instance_id = lab.endpoint.instance_ids["cp-1"]
    old_boot_id = lab.fleet["cp-1"].boot_id

    lab.client.stop_instances(InstanceIds=[instance_id], Force=True)
    assert lab.fleet["cp-1"].state == "off"
    assert lab.kinds("cp-1") == ["kubelet-stopped", "powered-off"]
    assert lab.state("cp-1") == "stopped"

    started = lab.client.start_instances(InstanceIds=[instance_id])
    assert started["StartingInstances"][0]["PreviousState"]["Name"] == "stopped"
    wait_until(lambda: lab.state("cp-1") == "running", what="DescribeInstances to say running")
    assert lab.fleet["cp-1"].state == "running"
    assert lab.fleet["cp-1"].boot_id != old_boot_id


def test_graceful_stop_shuts_down_and_stays_off(lab: Lab) -> None:
    lab.client.stop_instances(InstanceIds=[lab.endpoint.instance_ids["worker-2"]])
    wait_until(lambda: lab.state("worker-2") == "stopped", what="DescribeInstances to say stopped")
    assert lab.fleet["worker-2"].state == "off"
    assert lab.kinds("worker-2") == ["shutdown-started", "kubelet-stopped", "powered-off"]
    assert [lab.state(name) for name in ("cp-1", "worker-1")] == ["running", "running"]


def test_failed_requests_touch_no_machine(lab: Lab) -> None:
    with pytest.raises(ClientError, match=r"InvalidInstanceID\.NotFound"):
        lab.client.reboot_instances(InstanceIds=["i-0123456789abcdef0"])
    with pytest.raises(ClientError, match="DryRunOperation"):
        lab.client.stop_instances(InstanceIds=[lab.endpoint.instance_ids["worker-1"]], DryRun=True)
    assert all(machine.state == "running" for machine in lab.fleet)
    assert lab.events == []


def test_endpoints_do_not_see_each_others_instances(lab: Lab) -> None:
    other_fleet = MachineFleet.build({"cp-1": "control-plane"}, timings=FAST)
    other = lab.loop.run(ec2.start_ec2_endpoint(other_fleet), timeout_s=START_DEADLINE_S)
    try:
        other_client = boto3.client("ec2", **dataclasses.asdict(other.credentials))
        reservations = other_client.describe_instances()["Reservations"]
        other_client.close()
    finally:
        lab.loop.run(other.close())
    assert [i["InstanceId"] for r in reservations for i in r["Instances"]] == [other.instance_ids["cp-1"]]
    assert lab.describe_by_name("cp-1")["InstanceId"] == lab.endpoint.instance_ids["cp-1"]


@pytest.mark.parametrize(
    ("state", "rebooting", "expected"),
    [
        ("running", False, "running"),
        ("shutting-down", True, "running"),
        ("off", True, "running"),
        ("booting", True, "running"),
        ("shutting-down", False, "stopping"),
        ("off", False, "stopped"),
        ("booting", False, "pending"),
    ],
)
def test_ec2_state_follows_the_machine(state: str, rebooting: bool, expected: str) -> None:
    machine = MachineFleet.build({"n": "worker"})["n"]
    machine.state, machine.rebooting = state, rebooting  # type: ignore[assignment]
    assert ec2.ec2_state_of(machine)[0] == expected
