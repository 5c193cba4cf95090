"""Watch events come in the batches the API server flushed them in, whole lines only, in order."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lhsoak import cluster
from lhsoak.lab import kinds

from ..support.lab_api import FAST_SERVER, LabApi, running_lab_api

NS = "longhorn-system"
BURST = 200


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[LabApi]:
    with running_lab_api(tmp_path, config=FAST_SERVER) as api:
        api.call(lambda: api.store.create(kinds.NAMESPACE, {"metadata": {"name": NS}}))
        yield api


def _snapshot(name: str) -> dict[str, Any]:
    return {
        "apiVersion": "longhorn.io/v1beta2",
        "kind": "Snapshot",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"volume": "vol-1", "labels": {"RecurringJob": "soak-snap"}},
    }


def test_a_burst_arrives_in_few_batches_with_every_event_in_order(lab: LabApi) -> None:
    api = cluster.Cluster.connect(kubeconfig=lab.kubeconfig, context=None, allowed=("lhsoak-lab",))
    try:
        start = api.list(cluster.SNAPSHOTS, namespace=NS).resource_version
        stream = api.watch(cluster.SNAPSHOTS, namespace=NS, resource_version=start, timeout_s=30)
        batches: list[list[cluster.WatchEvent]] = []

        def read() -> None:
            for batch in stream.batches():
                batches.append(batch)
                if sum(len(b) for b in batches) >= BURST:
                    return

        reader = threading.Thread(target=read, daemon=True)
        reader.start()

        def burst() -> None:  # one loop step: the server has them all pending at once
            for index in range(BURST):
                lab.store.create(kinds.LH_SNAPSHOT, _snapshot(f"snap-{index:03d}"))

        lab.call(burst)
        reader.join(timeout=20)
        stream.close()
    finally:
        api.close()
    names = [event.object["metadata"]["name"] for batch in batches for event in batch]
    assert names == [f"snap-{index:03d}" for index in range(BURST)]
    assert all(event.object["kind"] == "Snapshot" for batch in batches for event in batch)
    assert len(batches) < BURST / 10, [len(batch) for batch in batches]


class Chunks:
    """A response whose stream yields the given segments, as urllib3 yields HTTP chunks."""

    def __init__(self, *segments: bytes) -> None:
        self.segments = segments

    def stream(self, amt: object = None, decode_content: object = None) -> Iterator[bytes]:
        yield from self.segments

    def release_conn(self) -> None:
        pass


def test_lines_split_across_chunks_are_joined_and_a_cut_last_line_is_dropped() -> None:
    added = b'{"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"5"}}}\n'
    modified = b'{"type":"MODIFIED","object":{"metadata":{"name":"a","resourceVersion":"6"}}}\n'
    response = Chunks(added[:20], added[20:] + modified[:10], modified[10:] + b"\n", b'{"type":"ADD')
    batches = list(cluster.WatchStream(response, cluster.SNAPSHOTS).batches())
    assert [[(e.type, e.resource_version) for e in batch] for batch in batches] == [
        [("ADDED", "5")],
        [("MODIFIED", "6")],
    ]


def test_an_error_event_in_a_batch_is_raised() -> None:
    gone = b'{"type":"ERROR","object":{"kind":"Status","code":410,"message":"too old resource version"}}\n'
    with pytest.raises(cluster.ExpiredError, match="too old"):
        list(cluster.WatchStream(Chunks(gone), cluster.SNAPSHOTS).batches())
