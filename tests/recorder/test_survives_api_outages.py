"""The recorder watches through an API outage (a control-plane reboot): it records its blind window,
re-lists when the API is back, and records what happened meanwhile with the cluster's own timestamps —
artifacts made during the outage as fires, artifacts deleted meanwhile as gone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import tenacity

from lhsoak import cluster, ledger, recorder
from lhsoak.lab import kinds

from ..support.lab_api import FAST_SERVER, LabApi, running_lab_api
from ..support.ledgers import started_ledger

NS = "longhorn-system"


def _snapshot(name: str, *, job: str = "soak-snap", volume: str = "vol-1") -> dict[str, object]:
    return {
        "apiVersion": "longhorn.io/v1beta2",
        "kind": "Snapshot",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"volume": volume, "labels": {"RecurringJob": job}, "createSnapshot": True},
    }


def _make_ready(lab: LabApi, name: str) -> None:
    def change() -> None:
        def write(obj: dict[str, object]) -> None:
            obj["status"] = {"readyToUse": True, "creationTime": "2026-11-27T07:00:01Z", "labels": {}}

        lab.store.mutate(kinds.LH_SNAPSHOT, name, write, namespace=NS, subresource="status")

    lab.call(change)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[LabApi]:
    with running_lab_api(tmp_path, config=FAST_SERVER, history=50) as api:
        api.call(lambda: api.store.create(kinds.NAMESPACE, {"metadata": {"name": NS}}))
        yield api


def _records(path: Path) -> list[dict[str, object]]:
    return [record for _line, record in ledger.iter_records(path)]


def _wait(predicate: object, what: str) -> None:
    def check() -> None:
        if not predicate():  # type: ignore[operator]
            raise AssertionError(f"not yet: {what}")

    tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(AssertionError),
        wait=tenacity.wait_fixed(0.05),
        stop=tenacity.stop_after_delay(20),
        reraise=True,
    )(check)


def test_the_recorder_sees_through_an_api_outage(lab: LabApi, tmp_path: Path) -> None:
    api = cluster.Cluster.connect(kubeconfig=lab.kubeconfig, context=None, allowed=("lhsoak-lab",))
    path = tmp_path / "ledger.jsonl"
    with started_ledger(path) as writer:
        rec = recorder.Recorder(
            api, writer, jobs={"soak-snap": "snapshot"}, volumes=["vol-1"], backoff_s=(0.05, 0.2)
        )
        rec.start()
        try:
            rec.wait_synced(deadline_s=20)
            lab.call(lambda: lab.store.create(kinds.LH_SNAPSHOT, _snapshot("before")))
            _make_ready(lab, "before")
            _wait(
                lambda: any(
                    r.get("object") == "before" and r.get("state") == "Completed" for r in _records(path)
                ),
                "before recorded",
            )

            lab.run(lab.server.go_down())
            # While the API is down: one artifact is made and one deleted (the cluster goes on).
            lab.call(lambda: lab.store.create(kinds.LH_SNAPSHOT, _snapshot("during")))
            _make_ready(lab, "during")
            lab.call(lambda: lab.store.delete(kinds.LH_SNAPSHOT, "before", namespace=NS))
            # Enough writes that the watch's resourceVersion is past the kept history (a 410 on resume).
            for index in range(60):
                lab.call(
                    lambda i=index: lab.store.create(kinds.LH_SNAPSHOT, _snapshot(f"other-{i}", job="other"))
                )
            lab.run(lab.server.come_up())

            _wait(lambda: any(r.get("object") == "during" for r in _records(path)), "during recorded")
            _wait(
                lambda: any(r["type"] == "gone" and r.get("object") == "before" for r in _records(path)),
                "gone",
            )
            _wait(
                lambda: any(
                    r["type"] == "blind" and r.get("resource") == "snapshots" for r in _records(path)
                ),
                "blind",
            )
        finally:
            rec.stop()
            api.close()
    records = _records(path)
    during = [r for r in records if r.get("object") == "during"]
    assert during[-1]["state"] == "Completed"
    assert during[-1]["done"] == "2026-11-27T07:00:01.000000Z"  # the cluster's time, not the recorder's
    assert not any(r.get("job") == "other" for r in records)  # another job's snapshots are not fires
