"""prove_reboot's own rules, with a driver written for the test: same boot id = no reboot; restore on failure."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from lhsoak import inventory
from lhsoak.chaos import driver
from lhsoak.chaos.driver import Evidence


@dataclass
class ScriptedDriver:
    """A driver whose observations are given up front, recording what it was asked."""

    up_boot_id: str | None
    down_error: driver.DriverError | None = None
    node: str = "w-1"
    kind: inventory.DriverKind = "ssh"
    restarts_kernel: bool = True
    calls: list[str] = field(default_factory=list)

    def check(self) -> None:
        self.calls.append("check")

    def boot_id(self) -> str | None:
        self.calls.append("boot_id")
        return "old-id"

    def reboot(self) -> None:
        self.calls.append("reboot")

    def wait_down(self, *, deadline_s: float) -> Evidence:
        self.calls.append("wait_down")
        if self.down_error is not None:
            raise self.down_error
        return Evidence(proven=False, detail="not observable")

    def wait_up(self, *, deadline_s: float) -> str | None:
        self.calls.append("wait_up")
        return self.up_boot_id

    def restore(self) -> None:
        self.calls.append("restore")


def test_the_same_boot_id_after_coming_back_is_not_a_reboot() -> None:
    scripted = ScriptedDriver(up_boot_id="old-id")
    with pytest.raises(driver.RebootNotObserved, match=r"^node w-1: came back with the same boot id old-id"):
        driver.prove_reboot(scripted, down_deadline_s=1, up_deadline_s=1)
    assert scripted.calls == ["boot_id", "reboot", "wait_down", "wait_up", "restore"]


def test_a_failed_wait_restores_and_reraises() -> None:
    failure = driver.RebootNotObserved("never went down", node="w-1")
    scripted = ScriptedDriver(up_boot_id=None, down_error=failure)
    phases: list[str] = []
    with pytest.raises(driver.RebootNotObserved) as caught:
        driver.prove_reboot(
            scripted, down_deadline_s=1, up_deadline_s=1, on_phase=lambda phase, _id: phases.append(phase)
        )
    assert caught.value is failure
    assert scripted.calls[-1] == "restore"
    assert phases == ["start", "failed"]


def test_a_proof_without_machine_level_evidence_says_so() -> None:
    proof = driver.prove_reboot(ScriptedDriver(up_boot_id=None), down_deadline_s=1, up_deadline_s=1)
    assert not proof.machine_proven
    assert proof.outage_s >= 0
    proven = driver.prove_reboot(ScriptedDriver(up_boot_id="new-id"), down_deadline_s=1, up_deadline_s=1)
    assert proven.machine_proven
    assert (proven.old_boot_id, proven.new_boot_id) == ("old-id", "new-id")
