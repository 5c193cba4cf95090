"""The k3d driver runs argument lists through a real subprocess; here a stand-in k3d executable
keeps one node's state in a file, as `k3d node list/stop/start` would."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from lhsoak import inventory
from lhsoak.chaos import driver, k3d
from lhsoak.chaos.driver import DriverOptions

NODE = "k3d-lab-agent-0"
FAKE_K3D = """\
#!{python}
import json, pathlib, sys
here = pathlib.Path(__file__).parent
state_file = here / "state.json"
state = json.loads(state_file.read_text())
with open(here / "calls.jsonl", "a") as calls:
    calls.write(json.dumps(sys.argv[1:]) + "\\n")
args = sys.argv[1:]
if state.get("broken"):
    sys.stderr.write("FATA[0000] Failed to get nodes: docker daemon not reachable\\n")
    sys.exit(1)
if args[:2] == ["node", "list"]:
    nodes = [{{"name": name, "role": "agent", "State": s}} for name, s in state["nodes"].items() if name in args[2:]]
    print(json.dumps(nodes))
elif args[:2] == ["node", "stop"] and state.get("stop_works", True):
    s = state["nodes"][args[2]]
    s.update(Running=False, Status="exited")
    if state.get("stop_fails_after_stopping"):
        state_file.write_text(json.dumps(state))
        sys.stderr.write("FATA[0030] Failed to stop node: context deadline exceeded\\n")
        sys.exit(1)
elif args[:2] == ["node", "start"]:
    s = state["nodes"][args[2]]
    state["starts"] = state.get("starts", 0) + 1
    s.update(Running=True, Status="running", Started="2026-01-01T00:00:%02dZ" % state["starts"])
state_file.write_text(json.dumps(state))
"""


class FakeK3d:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.binary = folder / "k3d"
        self.binary.write_text(FAKE_K3D.format(python=sys.executable))
        self.binary.chmod(0o755)
        self.write_state(
            {"nodes": {NODE: {"Running": True, "Status": "running", "Started": "2026-01-01T00:00:00Z"}}}
        )

    def write_state(self, state: dict[str, object]) -> None:
        (self.folder / "state.json").write_text(json.dumps(state))

    def state(self) -> dict[str, object]:
        loaded: dict[str, object] = json.loads((self.folder / "state.json").read_text())
        return loaded

    def calls(self) -> list[list[str]]:
        path = self.folder / "calls.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def fake_k3d(tmp_path: Path) -> FakeK3d:
    return FakeK3d(tmp_path)


def make(fake: FakeK3d, options: DriverOptions, *, node: str = NODE) -> driver.RebootDriver:
    target = inventory.Node(
        name=NODE, role="worker", k3d=inventory.K3dTarget(node=node, binary=str(fake.binary))
    )
    inv = inventory.Inventory(cluster=inventory.ClusterTarget(context="k3d-lab"), nodes=(target,))
    return driver.drivers_for(inv, [NODE], options=options)[NODE]


def test_commands_are_argument_lists() -> None:
    assert k3d.list_command("k3d", NODE) == ["k3d", "node", "list", NODE, "-o", "json"]
    assert k3d.stop_command("k3d", NODE) == ["k3d", "node", "stop", NODE]
    assert k3d.start_command("k3d", NODE) == ["k3d", "node", "start", NODE]


def test_stop_and_start_is_proven_by_state_and_start_time(fake_k3d: FakeK3d, options: DriverOptions) -> None:
    node = make(fake_k3d, options)
    node.check()

    proof = driver.prove_reboot(node, down_deadline_s=5, up_deadline_s=5)

    assert proof.down == driver.Evidence(proven=True, detail="k3d node exited")
    assert (proof.old_boot_id, proof.new_boot_id) == (None, None)
    assert not node.restarts_kernel
    listing = ["node", "list", NODE, "-o", "json"]
    assert fake_k3d.calls() == [
        listing,  # check
        listing,  # reboot: the start time before
        ["node", "stop", NODE],
        listing,  # wait_down
        ["node", "start", NODE],
        listing,  # wait_up
    ]


def test_a_stop_that_does_nothing_is_not_a_reboot(fake_k3d: FakeK3d, options: DriverOptions) -> None:
    fake_k3d.write_state({**fake_k3d.state(), "stop_works": False})
    with pytest.raises(driver.RebootNotObserved) as caught:
        driver.prove_reboot(make(fake_k3d, options), down_deadline_s=0.2, up_deadline_s=5)
    assert "k3d node k3d-lab-agent-0 to stop or restart: not seen within 0.2s" in str(caught.value)
    assert "seen: k3d node running since 2026-01-01T00:00:00Z" in str(caught.value)


def test_restore_starts_a_node_it_stopped(fake_k3d: FakeK3d, options: DriverOptions) -> None:
    node = make(fake_k3d, options)
    node.reboot()
    node.restore()
    node.restore()
    assert [call[1] for call in fake_k3d.calls()].count("start") == 1
    assert fake_k3d.state()["nodes"] == {
        NODE: {"Running": True, "Status": "running", "Started": "2026-01-01T00:00:01Z"}
    }


def test_restore_starts_a_node_whose_stop_failed_after_stopping_it(
    fake_k3d: FakeK3d, options: DriverOptions
) -> None:
    fake_k3d.write_state({**fake_k3d.state(), "stop_fails_after_stopping": True})
    node = make(fake_k3d, options)
    with pytest.raises(driver.DriverError, match=r"context deadline exceeded"):
        node.reboot()
    node.restore()
    assert fake_k3d.state()["nodes"] == {
        NODE: {"Running": True, "Status": "running", "Started": "2026-01-01T00:00:01Z"}
    }


def test_a_failing_k3d_says_what_it_printed(fake_k3d: FakeK3d, options: DriverOptions) -> None:
    fake_k3d.write_state({**fake_k3d.state(), "broken": True})
    with pytest.raises(driver.DriverError) as caught:
        make(fake_k3d, options).check()
    assert str(caught.value) == (
        f"node {NODE}: {fake_k3d.binary} node list {NODE} -o json failed with exit status 1; "
        "seen: FATA[0000] Failed to get nodes: docker daemon not reachable"
    )


def test_a_node_k3d_does_not_list_is_an_access_error(fake_k3d: FakeK3d, options: DriverOptions) -> None:
    with pytest.raises(driver.AccessError, match=r"k3d lists no node k3d-lab-agent-9"):
        make(fake_k3d, options, node="k3d-lab-agent-9").check()


def test_the_binary_is_found_on_path(
    fake_k3d: FakeK3d, monkeypatch: pytest.MonkeyPatch, options: DriverOptions
) -> None:
    monkeypatch.setenv("PATH", str(fake_k3d.folder))
    target = inventory.Node(name=NODE, role="worker", k3d=inventory.K3dTarget(node=NODE))
    inv = inventory.Inventory(cluster=inventory.ClusterTarget(context="k3d-lab"), nodes=(target,))
    driver.drivers_for(inv, [NODE], options=options)[NODE].check()
    assert fake_k3d.calls() == [["node", "list", NODE, "-o", "json"]]
