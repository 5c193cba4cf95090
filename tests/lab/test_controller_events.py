"""Events are recorded as client-go's recorder does: deduplicated counts, combined similar events,
and a per-object spam filter."""

from __future__ import annotations

from lhsoak.lab import kinds, profiles
from lhsoak.lab.controllers.events import EventRecorder
from lhsoak.lab.controllers.meta import Obj
from lhsoak.lab.store import Store

CRONJOB_REF = {
    "kind": "CronJob",
    "apiVersion": "batch/v1",
    "namespace": "default",
    "name": "snap",
    "uid": "11111111-2222-3333-4444-555555555555",
}


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


def recorder(*, burst: int = 25, refill_s: float = 10.0) -> tuple[Store, EventRecorder, FakeClock]:
    clock = FakeClock()
    store = Store(clock=clock)
    store.create(kinds.NAMESPACE, {"metadata": {"name": "default"}})
    profile = profiles.get("healthy", event_spam_burst=burst, event_spam_refill_s=refill_s)
    return store, EventRecorder(store, component="cronjob-controller", profile=profile, clock=clock), clock


def events(store: Store) -> list[Obj]:
    items, _ = store.list(kinds.EVENT, namespace="default")
    return items


def test_a_repeated_event_is_one_event_with_a_count() -> None:
    store, rec, clock = recorder()
    for _ in range(3):
        rec.event(CRONJOB_REF, "Normal", "JobAlreadyActive", "Not starting job")
        clock.now += 1
    (event,) = events(store)
    assert event["count"] == 3
    assert event["firstTimestamp"] == "2023-11-14T22:13:20Z"
    assert event["lastTimestamp"] == "2023-11-14T22:13:22Z"
    assert event["involvedObject"] == CRONJOB_REF
    assert event["source"] == {"component": "cronjob-controller"}
    assert event["metadata"]["name"].startswith("snap.")


def test_more_than_ten_similar_events_are_combined() -> None:
    store, rec, clock = recorder()
    for index in range(12):
        rec.event(CRONJOB_REF, "Normal", "SuccessfulCreate", f"Created job snap-{index}")
        clock.now += 0.5
    found = events(store)
    combined = [e for e in found if e["message"].startswith("(combined from similar events): ")]
    assert len(found) == 10
    assert len(combined) == 1
    assert combined[0]["count"] == 3
    assert combined[0]["message"] == "(combined from similar events): Created job snap-11"


def test_the_spam_filter_drops_writes_beyond_the_burst_until_tokens_refill() -> None:
    store, rec, clock = recorder(burst=3, refill_s=10.0)
    for _ in range(5):
        rec.event(CRONJOB_REF, "Normal", "JobAlreadyActive", "Not starting job")
    assert events(store)[0]["count"] == 3
    clock.now += 10
    rec.event(CRONJOB_REF, "Normal", "JobAlreadyActive", "Not starting job")
    assert events(store)[0]["count"] == 6, "the cached count kept counting while writes were dropped"


def test_cluster_scoped_objects_get_their_events_in_default() -> None:
    store, rec, _ = recorder()
    rec.event(
        {"kind": "Node", "name": "worker-1", "uid": "worker-1", "apiVersion": "v1"},
        "Warning",
        "Rebooted",
        "x",
    )
    (event,) = events(store)
    assert event["involvedObject"] == {
        "kind": "Node",
        "name": "worker-1",
        "uid": "worker-1",
        "apiVersion": "v1",
    }
    assert event["type"] == "Warning"
