"""The machine state machine: reboots, power-off/on, the events subscribers see, reproducibility."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

import pytest

from lhsoak.lab.machine import EventKind, Machine, MachineEvent, MachineFleet, MachineTimings

FAST = MachineTimings(shutdown_s=0.02, down_s=0.04, boot_s=0.03, kubelet_start_s=0.03, jitter=0.2)
DEADLINE_S = 5.0


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(asyncio.wait_for(scenario(), timeout=DEADLINE_S * 2))


def make_fleet(seed: int = 7) -> MachineFleet:
    return MachineFleet.build(
        {"cp-1": "control-plane", "worker-1": "worker", "worker-2": "worker"}, timings=FAST, seed=seed
    )


def record(machine: Machine) -> list[MachineEvent]:
    events: list[MachineEvent] = []
    machine.subscribe(events.append)
    return events


def kinds(events: list[MachineEvent]) -> list[EventKind]:
    return [event.kind for event in events]


def kubelet_ready(machine: Machine) -> bool:
    return machine.state == "running" and machine.kubelet_active


def test_reboot_goes_down_and_comes_back_with_a_new_boot_id() -> None:
    async def scenario() -> None:
        machine = make_fleet()["worker-1"]
        events = record(machine)
        old_boot_id, old_booted_at = machine.boot_id, machine.booted_at

        assert machine.reboot() is True
        assert machine.state == "shutting-down"
        assert not machine.kubelet_active
        await machine.wait_for(kubelet_ready, timeout_s=DEADLINE_S)

        assert kinds(events) == [
            "shutdown-started",
            "kubelet-stopped",
            "powered-off",
            "boot-started",
            "booted",
            "kubelet-started",
        ]
        assert machine.boot_id != old_boot_id
        assert machine.booted_at > old_booted_at
        booted = next(event for event in events if event.kind == "booted")
        assert booted.boot_id == machine.boot_id
        assert {event.boot_id for event in events[:4]} == {old_boot_id}

    run(scenario)


def test_kubelet_is_inactive_right_after_boot_then_active() -> None:
    async def scenario() -> None:
        machine = make_fleet()["worker-1"]
        seen_at_boot: list[bool] = []
        machine.subscribe(
            lambda event: seen_at_boot.append(machine.kubelet_active) if event.kind == "booted" else None
        )
        machine.reboot()
        await machine.wait_for(lambda m: m.state == "running", timeout_s=DEADLINE_S, what="booted")
        assert seen_at_boot == [False]
        await machine.wait_for(kubelet_ready, timeout_s=DEADLINE_S)

    run(scenario)


def test_reboot_is_ignored_unless_running() -> None:
    async def scenario() -> None:
        machine = make_fleet()["worker-1"]
        events = record(machine)
        machine.reboot()
        assert machine.reboot() is False, "a second reboot while shutting down is absorbed"
        await machine.wait_for(kubelet_ready, timeout_s=DEADLINE_S)
        assert kinds(events).count("booted") == 1

        machine.power_off()
        assert machine.reboot() is False
        assert machine.state == "off"

    run(scenario)


def test_hard_power_off_stays_off_until_power_on() -> None:
    async def scenario() -> None:
        machine = make_fleet()["cp-1"]
        events = record(machine)
        old_boot_id = machine.boot_id

        assert machine.power_off() is True
        assert (machine.state, machine.kubelet_active) == ("off", False)
        assert kinds(events) == ["kubelet-stopped", "powered-off"]
        assert machine.power_off() is False
        with pytest.raises(TimeoutError, match=r"cp-1: state=off"):
            await machine.wait_for(lambda m: m.state != "off", timeout_s=0.3, what="any boot")

        assert machine.power_on() is True
        await machine.wait_for(kubelet_ready, timeout_s=DEADLINE_S)
        assert kinds(events)[2:] == ["boot-started", "booted", "kubelet-started"]
        assert machine.boot_id != old_boot_id

    run(scenario)


def test_graceful_power_off_during_a_reboot_keeps_the_machine_off() -> None:
    async def scenario() -> None:
        machine = make_fleet()["worker-2"]
        events = record(machine)
        machine.reboot()
        assert machine.power_off(graceful=True) is True
        assert not machine.rebooting
        await machine.wait_for(lambda m: m.state == "off", timeout_s=DEADLINE_S)
        with pytest.raises(TimeoutError):
            await machine.wait_for(lambda m: m.state != "off", timeout_s=0.3)
        assert kinds(events) == ["shutdown-started", "kubelet-stopped", "powered-off"]

    run(scenario)


def test_hard_power_off_cuts_a_boot_short() -> None:
    async def scenario() -> None:
        machine = make_fleet()["worker-2"]
        machine.power_off()
        machine.power_on()
        assert machine.state == "booting"
        assert machine.power_off() is True
        assert machine.state == "off"
        with pytest.raises(TimeoutError):
            await machine.wait_for(lambda m: m.state != "off", timeout_s=0.3)

    run(scenario)


def test_same_seed_gives_the_same_boot_ids() -> None:
    async def boot_ids(seed: int) -> list[str]:
        machine = make_fleet(seed)["worker-1"]
        ids = [machine.boot_id]
        for _ in range(2):
            machine.reboot()
            await machine.wait_for(kubelet_ready, timeout_s=DEADLINE_S)
            ids.append(machine.boot_id)
        return ids

    async def scenario() -> None:
        first, again, other = await boot_ids(1), await boot_ids(1), await boot_ids(2)
        assert first == again
        assert len(set(first)) == 3
        assert set(first).isdisjoint(other)

    run(scenario)


def test_a_failing_listener_does_not_stop_the_machine_or_other_listeners(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        machine = make_fleet()["worker-1"]

        def broken(_event: MachineEvent) -> None:
            raise RuntimeError("subscriber bug")

        machine.subscribe(broken)
        events = record(machine)
        machine.reboot()
        await machine.wait_for(kubelet_ready, timeout_s=DEADLINE_S)
        assert kinds(events)[-1] == "kubelet-started"

    run(scenario)
    assert "subscriber bug" in caplog.text


def test_unsubscribe_stops_delivery() -> None:
    async def scenario() -> None:
        fleet = make_fleet()
        events: list[MachineEvent] = []
        unsubscribe = fleet.subscribe(events.append)
        fleet["cp-1"].power_off()
        unsubscribe()
        fleet["worker-1"].power_off()
        assert {event.machine for event in events} == {"cp-1"}
        assert events[-1].role == "control-plane"

    run(scenario)


def test_fleet_rejects_duplicates_and_names_what_it_has() -> None:
    machine = Machine("n1", role="worker", rng=random.Random(0))
    with pytest.raises(ValueError, match="duplicate"):
        MachineFleet([machine, machine])
    with pytest.raises(KeyError, match="cp-1"):
        make_fleet()["nope"]


def test_timings_reject_nonsense() -> None:
    with pytest.raises(ValueError, match="down_s"):
        MachineTimings(down_s=-1)
    with pytest.raises(ValueError, match="jitter"):
        MachineTimings(jitter=1.5)
