"""The recorder tells when a Node is back (Ready again, or Ready with a new boot id), so a reboot's
proof probes the machine at once instead of at its next poll."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from lhsoak import cluster, recorder
from lhsoak.lab import kinds
from lhsoak.lab.store import NotFound

from ..support.lab_api import FAST_SERVER, LabApi, running_lab_api
from ..support.ledgers import started_ledger

DEADLINE_S = 20.0


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[LabApi]:
    with running_lab_api(tmp_path, config=FAST_SERVER) as api:
        yield api


def _set_node(lab: LabApi, name: str, *, ready: bool, boot_id: str, heartbeat: int = 0) -> None:
    status = {
        "conditions": [
            {"type": "Ready", "status": "True" if ready else "False", "reason": f"beat-{heartbeat}"}
        ],
        "nodeInfo": {"bootID": boot_id},
    }

    def write() -> None:
        try:
            lab.store.get(kinds.NODE, name)
        except NotFound:
            lab.store.create(kinds.NODE, {"metadata": {"name": name}, "status": status})
            return
        lab.store.mutate(
            kinds.NODE, name, lambda obj: obj.__setitem__("status", status), subresource="status"
        )

    lab.call(write)


class Callbacks:
    def __init__(self) -> None:
        self.nodes: list[str] = []
        self._changed = threading.Condition()

    def __call__(self, node: str) -> None:
        with self._changed:
            self.nodes.append(node)
            self._changed.notify_all()

    def wait_count(self, count: int) -> list[str]:
        with self._changed:
            if not self._changed.wait_for(lambda: len(self.nodes) >= count, timeout=DEADLINE_S):
                raise AssertionError(
                    f"awaited {count} node-back callbacks within {DEADLINE_S}s, saw {self.nodes}"
                )
            return list(self.nodes)


def test_node_back_is_told_once_per_return_and_never_on_a_heartbeat(lab: LabApi, tmp_path: Path) -> None:
    _set_node(lab, "worker-1", ready=True, boot_id="boot-a")
    api = cluster.Cluster.connect(kubeconfig=lab.kubeconfig, context=None, allowed=("lhsoak-lab",))
    back = Callbacks()
    with started_ledger(tmp_path / "ledger.jsonl") as writer:
        rec = recorder.Recorder(api, writer, jobs={}, volumes=[], on_node_back=back)
        rec.start()
        try:
            rec.wait_synced(deadline_s=DEADLINE_S)
            _set_node(lab, "worker-1", ready=True, boot_id="boot-a", heartbeat=1)  # nothing new
            _set_node(lab, "worker-1", ready=False, boot_id="boot-a")
            _set_node(lab, "worker-1", ready=True, boot_id="boot-a", heartbeat=2)  # a container restart
            assert back.wait_count(1) == ["worker-1"]
            _set_node(lab, "worker-1", ready=True, boot_id="boot-b")  # a reboot too fast to see NotReady
            assert back.wait_count(2) == ["worker-1", "worker-1"]
            _set_node(lab, "worker-1", ready=True, boot_id="boot-b", heartbeat=3)
            _set_node(lab, "worker-2", ready=True, boot_id="boot-c")  # first sight: not a return
            rec.view.wait_for(
                lambda view: view.get("nodes", "worker-2"),
                what="worker-2 in the view",
                deadline_s=DEADLINE_S,
                seen=lambda view: str([n["metadata"]["name"] for n in view.items("nodes")]),
            )
        finally:
            rec.stop()
            api.close()
    assert back.nodes == ["worker-1", "worker-1"]
