"""The longhorn-manager DaemonSet object follows its pods as the real controller's status does:
made with the first manager, owning every one, numberReady down while a node reboots or is lost,
back up once its pod runs again; zero counts left out as the real API leaves them out."""

from __future__ import annotations

import asyncio
from typing import Any

from lhsoak.lab import kinds, profiles
from lhsoak.lab.cluster import manager_pod
from lhsoak.lab.controllers import daemonset
from lhsoak.lab.controllers.meta import Obj, controller_ref
from lhsoak.lab.controllers.testing import InProcessLab
from lhsoak.lab.store import WatchEvent

DEADLINE_S = 15.0
WORKERS = ["worker-1", "worker-2", "worker-3"]
EPOCH = "2024-05-01T10:00:00Z"
EPOCH_S = 1714557600.0


def the_daemonset(lab: InProcessLab) -> Obj | None:
    found = lab.items(kinds.DAEMONSET)
    return found[0] if found else None


def status_of(lab: InProcessLab) -> dict[str, Any]:
    found = the_daemonset(lab)
    return dict(found["status"]) if found else {}


async def wait_status(lab: InProcessLab, what: str, **wanted: int) -> dict[str, Any]:
    """Until the DaemonSet's status has every count in `wanted`."""

    def matches() -> dict[str, Any] | None:
        status = status_of(lab)
        return status if all(status.get(k, 0) == v for k, v in wanted.items()) else None

    return await lab.wait(matches, timeout_s=DEADLINE_S, what=what, seen=lambda: status_of(lab))


def record_statuses(lab: InProcessLab) -> list[dict[str, Any]]:
    """Every status the DaemonSet is written with from now on (the list fills as they come)."""
    seen: list[dict[str, Any]] = []

    def record(event: WatchEvent) -> None:
        seen.append(dict(event.object.get("status") or {}))

    lab.store.listen(record, only=[kinds.DAEMONSET])
    return seen


async def install_managers(lab: InProcessLab) -> dict[str, Any]:
    for node in WORKERS:
        lab.store.create(kinds.POD, manager_pod(node))
    return await wait_status(lab, "all three managers ready", desiredNumberScheduled=3, numberReady=3)


def test_the_daemonset_is_made_with_the_first_manager_and_owns_every_one() -> None:
    async def scenario() -> None:
        async with InProcessLab(profiles.get("healthy")) as lab:
            status = await install_managers(lab)
            made = the_daemonset(lab)
            assert made is not None
            assert made["metadata"]["name"] == "longhorn-manager"
            assert made["metadata"]["labels"]["app"] == "longhorn-manager"
            assert made["spec"]["selector"] == {"matchLabels": {"app": "longhorn-manager"}}
            assert made["spec"]["updateStrategy"]["rollingUpdate"]["maxUnavailable"] == "100%"
            template = made["spec"]["template"]
            assert template["metadata"]["labels"] == manager_pod("worker-1")["metadata"]["labels"]
            assert {"nodeName", "tolerations", "affinity"}.isdisjoint(template["spec"]), (
                "what the controller adds to each pod is not in the template"
            )
            assert status == {
                "currentNumberScheduled": 3,
                "numberMisscheduled": 0,
                "desiredNumberScheduled": 3,
                "numberReady": 3,
                "observedGeneration": made["metadata"]["generation"],
                "updatedNumberScheduled": 3,
                "numberAvailable": 3,
            }, "numberUnavailable 0 is omitted, as omitempty does"
            for pod in lab.items(kinds.POD, label_selector="app=longhorn-manager"):
                assert pod["metadata"]["ownerReferences"] == [controller_ref(made)]
                labels = pod["metadata"]["labels"]
                assert labels.items() >= daemonset.revision_labels(made).items()

    asyncio.run(scenario())


def test_ready_drops_while_a_node_reboots_and_comes_back_with_its_new_pod() -> None:
    async def scenario() -> None:
        async with InProcessLab(profiles.get("healthy")) as lab:
            await install_managers(lab)
            seen = record_statuses(lab)
            lab.fleet["worker-1"].reboot()
            await wait_status(lab, "worker-1's manager not ready", numberReady=2)
            after = await wait_status(
                lab, "worker-1's new manager ready", numberReady=3, updatedNumberScheduled=3
            )
            assert any(s["numberReady"] == 2 and s.get("numberUnavailable") == 1 for s in seen), seen
            assert all(s["desiredNumberScheduled"] == 3 for s in seen), "a rebooting node still counts"
            assert "numberUnavailable" not in after
            assert lab.event_count("SuccessfulCreate", involved="longhorn-manager") == 1

    asyncio.run(scenario())


def test_a_lost_node_keeps_its_manager_scheduled_but_not_ready() -> None:
    """A hard power-off: the manager tolerates the unreachable node and stays bound (current 3), the
    node lifecycle controller marks it not Ready (ready 2) until the node is back."""

    async def scenario() -> None:
        async with InProcessLab(profiles.get("healthy")) as lab:
            await install_managers(lab)
            lab.fleet["worker-2"].power_off()
            lost = await wait_status(lab, "worker-2's manager marked not ready", numberReady=2)
            assert lost["currentNumberScheduled"] == 3
            assert lost["numberAvailable"] == 2
            assert lost["numberUnavailable"] == 1
            lab.fleet["worker-2"].power_on()
            await wait_status(lab, "worker-2's manager ready again", numberReady=3, numberAvailable=3)

    asyncio.run(scenario())


# -- the status, computed from hand-made objects --------------------------------------------------


def _daemonset(*, min_ready_s: int = 0, generation: int = 1) -> Obj:
    template = {"metadata": {"labels": {"app": "m"}}, "spec": {"containers": [{"name": "m"}]}}
    made = daemonset.Daemon(name="m", namespace="ns", match_labels={"app": "m"}).manifest(template)
    made["metadata"]["generation"] = generation
    made["spec"]["minReadySeconds"] = min_ready_s
    return made


def _pod(
    name: str,
    node: str,
    *,
    ready: bool = True,
    phase: str = "Running",
    created: str = EPOCH,
    ready_since: str = EPOCH,
    labels: dict[str, str] | None = None,
    deleting: bool = False,
) -> Obj:
    meta: Obj = {"name": name, "namespace": "ns", "creationTimestamp": created, "labels": labels or {}}
    if deleting:
        meta["deletionTimestamp"] = EPOCH
    conditions = [{"type": "Ready", "status": str(ready), "lastTransitionTime": ready_since}]
    return {
        "metadata": meta,
        "spec": {"nodeName": node},
        "status": {"phase": phase, "conditions": conditions},
    }


def test_each_node_counts_its_oldest_pod_and_a_deleted_terminal_pod_counts_for_nothing() -> None:
    made = _daemonset()
    current = daemonset.revision_labels(made)
    pods = [
        _pod("a-old", "a", ready=False, created="2024-05-01T09:00:00Z", labels=current),
        _pod("a-new", "a", ready=True, labels=current),
        _pod("b-failed", "b", ready=False, phase="Failed", deleting=True),
        _pod("c", "c", labels={daemonset.REVISION_HASH_LABEL: "stale"}),
    ]
    status = daemonset.daemon_status(made, nodes=["a", "b", "c"], pods=pods, now_s=EPOCH_S)
    assert status == {
        "currentNumberScheduled": 2,
        "numberMisscheduled": 0,
        "desiredNumberScheduled": 3,
        "numberReady": 1,
        "observedGeneration": 1,
        "updatedNumberScheduled": 1,
        "numberAvailable": 1,
        "numberUnavailable": 2,
    }, "a: its older pod counts (not ready, updated); b: none; c: ready, of another template"


def test_a_pod_of_the_current_template_generation_counts_as_updated() -> None:
    made = _daemonset()
    pods = [_pod("a", "a", labels={daemonset.TEMPLATE_GENERATION_LABEL: "1"})]
    status = daemonset.daemon_status(made, nodes=["a"], pods=pods, now_s=EPOCH_S)
    assert status["updatedNumberScheduled"] == 1


def test_a_ready_pod_is_available_only_after_min_ready_seconds() -> None:
    made = _daemonset(min_ready_s=30)
    pods = [_pod("a", "a")]
    early = daemonset.daemon_status(made, nodes=["a"], pods=pods, now_s=EPOCH_S + 29)
    assert (early["numberReady"], early.get("numberAvailable", 0), early["numberUnavailable"]) == (1, 0, 1)
    later = daemonset.daemon_status(made, nodes=["a"], pods=pods, now_s=EPOCH_S + 30)
    assert (later["numberAvailable"], later.get("numberUnavailable", 0)) == (1, 0)


def test_no_node_no_pod_leaves_only_the_counts_without_omitempty() -> None:
    status = daemonset.daemon_status(_daemonset(generation=0), nodes=[], pods=[], now_s=EPOCH_S)
    assert status == {
        "currentNumberScheduled": 0,
        "numberMisscheduled": 0,
        "desiredNumberScheduled": 0,
        "numberReady": 0,
    }


def test_the_template_leaves_out_what_the_controller_adds_to_each_pod() -> None:
    own = {"key": "dedicated", "operator": "Equal", "value": "storage", "effect": "NoSchedule"}
    preferred = {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, "preference": {}}]}
    pod = manager_pod("worker-1")
    pod["spec"]["tolerations"].append(own)
    pod["spec"]["affinity"]["nodeAffinity"].update(preferred)
    labels = {**pod["metadata"]["labels"], daemonset.REVISION_HASH_LABEL: "x"}
    template = daemonset.pod_template(labels=labels, annotations={}, spec=pod["spec"])
    assert template["metadata"] == {"labels": manager_pod("worker-1")["metadata"]["labels"]}
    assert "nodeName" not in template["spec"]
    assert template["spec"]["tolerations"] == [own]
    assert template["spec"]["affinity"] == {"nodeAffinity": preferred}
    assert template["spec"]["containers"] == pod["spec"]["containers"]


def test_the_revision_hash_names_the_template_in_the_safe_alphabet() -> None:
    template = _daemonset()["spec"]["template"]
    first = daemonset.revision_hash(template)
    assert first == daemonset.revision_hash({**template}), "the same template, the same hash"
    assert set(first) <= set("456789bcdf"), "decimal digits, safe-encoded as upstream's"
    changed = {**template, "spec": {"containers": [{"name": "m", "image": "other"}]}}
    assert daemonset.revision_hash(changed) != first
