"""The cloud driver's own rules, with an instance written for the test: failures no lab endpoint
produces on cue (a stop whose answer is lost, an SDK raising what it should not). Each provider
also runs through its real SDK against the lab: test_aws_driver.py, test_gcp_driver.py and
test_azure_driver.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from lhsoak.chaos import cloud
from lhsoak.chaos.cloud import Power, PowerState
from lhsoak.chaos.driver import AccessError, DriverError, DriverOptions

OPTIONS = DriverOptions(poll_interval_s=0.01, restore_deadline_s=1.0)


@dataclass
class Instance:
    """A provider's instance: its power state and the calls made, as a `cloud.CloudMachine`."""

    power: Power = "running"
    stop_fails: Literal["no", "answer-lost", "unreachable"] = "no"
    """How a stop call fails: the provider powers the instance off but its answer never arrives,
    or the call never reaches the provider."""
    calls: list[str] = field(default_factory=list)

    @property
    def description(self) -> str:
        return "instance i-1"

    def state(self) -> PowerState:
        return PowerState(power=self.power, raw=self.power)

    def restart(self) -> None:
        self.calls.append("restart")

    def stop(self) -> None:
        if self.stop_fails == "unreachable":
            raise DriverError("StopInstances failed: Could not connect to the endpoint URL", node="w-1")
        self.calls.append("stop")
        self.power = "stopped"
        if self.stop_fails == "answer-lost":
            raise DriverError("StopInstances failed: Read timeout on endpoint URL", node="w-1")

    def start(self) -> None:
        self.calls.append("start")
        self.power = "running"


def power_cycle(instance: Instance) -> cloud.CloudDriver:
    return cloud.CloudDriver(
        "w-1", kind="aws", machine=instance, power_cycle=True, watch=None, options=OPTIONS
    )


def test_restore_starts_an_instance_whose_stop_answer_was_lost() -> None:
    instance = Instance(stop_fails="answer-lost")
    chosen = power_cycle(instance)
    with pytest.raises(DriverError, match="Read timeout"):
        chosen.reboot()

    chosen.restore()

    assert instance.calls == ["stop", "start"]
    assert instance.power == "running"


def test_restore_leaves_alone_an_instance_the_stop_never_reached() -> None:
    instance = Instance(stop_fails="unreachable")
    chosen = power_cycle(instance)
    with pytest.raises(DriverError, match="Could not connect"):
        chosen.reboot()

    chosen.restore()

    assert instance.calls == []
    assert instance.power == "running"


class Sdk(cloud.SdkMachine[str]):
    """An SDK wrapper whose SDK raises LookupError for a missing instance."""

    @property
    def description(self) -> str:
        return f"instance {self.target}"

    def _translate(self, action: str, error: Exception) -> DriverError | None:
        if isinstance(error, LookupError):
            return AccessError(f"{action}: {self.description} not found", node=self.node)
        return None


def test_sdk_errors_become_driver_errors_and_others_pass_through() -> None:
    sdk = Sdk("w-1", "i-1", options=OPTIONS)

    def missing() -> None:
        raise KeyError("i-1")

    def broken() -> None:
        raise ZeroDivisionError

    with pytest.raises(AccessError, match=r"^node w-1: get: instance i-1 not found$") as caught:
        sdk._call("get", missing)
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__, "the SDK's own exception is not chained"
    with pytest.raises(ZeroDivisionError):
        sdk._call("get", broken)


def test_the_sdk_client_is_made_once_at_first_use() -> None:
    sdk = Sdk("w-1", "i-1", options=OPTIONS)
    made: list[object] = []

    def make() -> object:
        made.append(object())
        return made[-1]

    assert sdk._sdk_client(make) is sdk._sdk_client(make) is made[0]
    assert len(made) == 1
