"""longhorn-manager's pods behave as a DaemonSet's: the pod a node's graceful shutdown failed, or the
taint manager evicted, is replaced on its node, and every worker runs one Running manager again once
it is back — after one reboot, after full-cluster restarts, soak after soak."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Iterable

import pytest
from kubernetes import client

from lhsoak import longhorn
from lhsoak.cluster import Cluster
from lhsoak.lab import kinds, profiles
from lhsoak.lab.cluster import manager_pod
from lhsoak.lab.controllers import daemonset
from lhsoak.lab.controllers.meta import Obj, condition, controller_ref, uid_of
from lhsoak.lab.controllers.testing import InProcessLab
from lhsoak.lab.machine import Machine
from lhsoak.lab.store import WatchEvent

from ..support.lab_api import LabApi
from ..support.lab_cluster import NotYet, eventually, running_cluster

DEADLINE_S = 15.0
NS = "longhorn-system"
MANAGERS = "app=longhorn-manager"
FOREVER_NOEXECUTE = [
    {"key": key, "operator": "Exists", "effect": "NoExecute"}
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable")
]


def workers(lab: InProcessLab) -> list[str]:
    return [m.name for m in lab.fleet if m.role == "worker"]


def managers_by_node(lab: InProcessLab) -> dict[str, list[Obj]]:
    by_node: dict[str, list[Obj]] = {}
    for pod in lab.items(kinds.POD, label_selector=MANAGERS):
        by_node.setdefault(pod["spec"].get("nodeName", ""), []).append(pod)
    return by_node


def summary(lab: InProcessLab) -> dict[str, list[tuple[str, str]]]:
    return {
        node: [(p["metadata"]["name"], p["status"].get("phase", "")) for p in pods]
        for node, pods in managers_by_node(lab).items()
    }


def one_running_manager_per_worker(lab: InProcessLab) -> dict[str, Obj] | None:
    """Each worker's one manager pod when every worker has exactly one, Running, and nothing else
    (no Failed pod left behind, none elsewhere); else None."""
    by_node = managers_by_node(lab)
    if sorted(by_node) != sorted(workers(lab)):
        return None
    if any(len(pods) != 1 or pods[0]["status"].get("phase") != "Running" for pods in by_node.values()):
        return None
    return {node: pods[0] for node, pods in by_node.items()}


async def install_managers(lab: InProcessLab, *, tolerating: bool = True) -> dict[str, Obj]:
    """One longhorn-manager pod per worker, as `lhsoak lab up` installs them, Running; without
    `tolerating`, without the DaemonSet's tolerations (a pod the taint manager evicts)."""
    for name in workers(lab):
        pod = manager_pod(name)
        if not tolerating:
            del pod["spec"]["tolerations"]
        lab.store.create(kinds.POD, pod)
    return await settled(lab, "the managers to start")


async def settled(lab: InProcessLab, what: str) -> dict[str, Obj]:
    return await lab.wait(
        lambda: one_running_manager_per_worker(lab),
        timeout_s=DEADLINE_S,
        what=f"{what}: one Running longhorn-manager pod on every worker, no other",
        seen=lambda: summary(lab),
    )


async def back_after_reboot(lab: InProcessLab, names: Iterable[str], boots: dict[str, str]) -> None:
    """Until every machine in `names` runs its kubelet with a boot id other than in `boots` and its
    Node says Ready with that boot id."""

    def back() -> bool:
        for name in names:
            machine = lab.fleet[name]
            node = lab.store.get(kinds.NODE, name)
            ready = condition(node["status"]["conditions"], "Ready")
            if machine.boot_id == boots[name] or not machine.kubelet_active:
                return False
            if node["status"]["nodeInfo"]["bootID"] != machine.boot_id or ready is None:
                return False
            if ready["status"] != "True":
                return False
        return True

    await lab.wait(
        back,
        timeout_s=DEADLINE_S,
        what="the rebooted machines back and Ready",
        seen=lambda: [m.describe() for m in lab.fleet],
    )


def replacement_of(lab: InProcessLab, pod: Obj) -> Obj | None:
    """Another manager pod on `pod`'s node, once `pod` is gone."""
    on_node = managers_by_node(lab).get(pod["spec"]["nodeName"], [])
    if any(uid_of(p) == uid_of(pod) for p in on_node):
        return None
    return on_node[0] if on_node else None


def fail(lab: InProcessLab, pod: Obj) -> None:
    """What the kubelet writes for a pod it rejects while its node shuts down."""

    def rejected(obj: Obj) -> None:
        obj["status"] = {
            "phase": "Failed",
            "reason": "NodeShutdown",
            "message": "Pod was rejected as the node is shutting down.",
        }

    lab.store.mutate(kinds.POD, pod["metadata"]["name"], rejected, namespace=NS, subresource="status")


def test_the_manager_a_reboot_failed_is_replaced_on_its_node() -> None:
    async def scenario() -> None:
        async with InProcessLab(profiles.get("healthy")) as lab:
            before = await install_managers(lab)
            boots = {m.name: m.boot_id for m in lab.fleet}
            failed: list[Obj] = []

            def record_failed(event: WatchEvent) -> None:
                if event.type == "MODIFIED" and event.object["status"].get("phase") == "Failed":
                    failed.append(event.object)

            unsubscribe = lab.store.listen(record_failed, only=[kinds.POD])
            lab.fleet["worker-1"].reboot()
            await back_after_reboot(lab, ["worker-1"], boots)
            after = await settled(lab, "worker-1 rebooted")
            unsubscribe()

            assert [p["metadata"]["name"] for p in failed] == ["longhorn-manager-worker-1"]
            assert failed[0]["status"]["reason"] == "Terminated"
            replacement = after["worker-1"]
            assert uid_of(replacement) != uid_of(before["worker-1"])
            assert replacement["metadata"]["name"].startswith("longhorn-manager-")
            [daemon_set] = lab.items(kinds.DAEMONSET)
            assert replacement["metadata"]["labels"] == {
                **manager_pod("worker-1")["metadata"]["labels"],
                **daemonset.revision_labels(daemon_set),
            }
            assert replacement["metadata"]["ownerReferences"] == [controller_ref(daemon_set)]
            assert replacement["spec"]["containers"] == before["worker-1"]["spec"]["containers"]
            assert all(t in replacement["spec"]["tolerations"] for t in FOREVER_NOEXECUTE)
            assert replacement["status"]["containerStatuses"][0]["restartCount"] == 0
            for other in ("worker-2", "worker-3"):
                assert uid_of(after[other]) == uid_of(before[other]), f"{other}'s manager was left alone"
            [found] = lab.events("FailedDaemonPod")
            assert found["involvedObject"]["kind"] == "DaemonSet"
            assert found["message"] == (
                f"Found failed daemon pod {NS}/longhorn-manager-worker-1 on node worker-1, "
                "will try to kill it"
            )
            assert lab.event_count("SuccessfulDelete", involved="longhorn-manager") == 1
            assert lab.event_count("SuccessfulCreate", involved="longhorn-manager") == 1

    asyncio.run(scenario())


@pytest.mark.parametrize("first", ["workers", "control-plane"])
def test_every_worker_runs_one_manager_after_each_full_cluster_restart(first: str) -> None:
    """Workers first: their managers fail while the API is up, and the controller, stopped with the
    control plane before it could act, replaces them when it is back. Control plane first: the
    kubelets cannot report the shutdown, and restart the managers after boot."""

    async def scenario() -> None:
        async with InProcessLab(profiles.get("healthy")) as lab:
            await install_managers(lab)
            order = sorted(lab.fleet, key=lambda m: (m.role == "control-plane") == (first == "workers"))
            for round_ in range(1, 3):
                boots = {m.name: m.boot_id for m in lab.fleet}
                for machine in order:
                    machine.reboot()
                await lab.wait(
                    lambda: lab.controllers.paused, timeout_s=DEADLINE_S, what="the control plane down"
                )
                await back_after_reboot(lab, lab.fleet.names, boots)
                await settled(lab, f"full-cluster restart {round_}")
            replaced = lab.event_count("FailedDaemonPod")
            if first == "workers":
                assert replaced == 2 * len(workers(lab)), "each round failed, then replaced, them all"
            else:
                assert replaced == 0, "the shutdowns went unreported: the same pods run again"

    asyncio.run(scenario())


def test_a_manager_evicted_from_a_lost_node_comes_back_with_the_node() -> None:
    """A hard power-off: no graceful shutdown; the taint manager evicts a manager without the
    DaemonSet's tolerations; its replacement tolerates the NotReady node, waits on it Pending and
    runs once the node is back."""

    async def scenario() -> None:
        async with InProcessLab(profiles.get("healthy")) as lab:
            before = await install_managers(lab, tolerating=False)
            lab.fleet["worker-1"].power_off()
            waiting = await lab.wait(
                functools.partial(replacement_of, lab, before["worker-1"]),
                timeout_s=DEADLINE_S,
                what="a new manager pod bound to the powered-off worker-1",
                seen=lambda: summary(lab),
            )
            assert lab.event_count("TaintManagerEviction", involved="longhorn-manager-worker-1") == 1
            taints = lab.store.get(kinds.NODE, "worker-1")["spec"]["taints"]
            assert {"node.kubernetes.io/unreachable"} <= {t["key"] for t in taints}
            assert waiting["status"]["phase"] == "Pending"
            assert waiting["spec"]["nodeName"] == "worker-1"

            lab.fleet["worker-1"].power_on()
            after = await settled(lab, "worker-1 powered on again")
            assert uid_of(after["worker-1"]) == uid_of(waiting), "the pod made while it was down runs"
            assert lab.event_count("TaintManagerEviction", involved=waiting["metadata"]["name"]) == 0

    asyncio.run(scenario())


def test_managers_run_again_after_a_reboot_in_the_stuck_pending_profile() -> None:
    """kubernetes#118321 leaves job pods Pending after a reboot; a daemon pod (restartPolicy Always)
    is not among them."""

    async def scenario() -> None:
        async with InProcessLab(profiles.get("stuck-pending")) as lab:
            await install_managers(lab)
            boots = {m.name: m.boot_id for m in lab.fleet}
            lab.fleet["worker-1"].reboot()
            await back_after_reboot(lab, ["worker-1"], boots)
            after = await settled(lab, "worker-1 rebooted")
            assert after["worker-1"]["status"]["phase"] == "Running"

    asyncio.run(scenario())


def test_a_manager_failing_again_at_once_is_deleted_after_a_doubling_backoff() -> None:
    """As with a kubelet that rejects the replacements too (NodeShutdown): the controller deletes the
    first failed pod at once, the next one after the initial delay, the third after twice that."""
    # Long enough that the test's own turn between two failures never outlasts the first delay.
    timings = daemonset.BackoffTimings(initial_s=0.3, max_s=2.0)

    async def scenario() -> None:
        # The node stays down (no kubelet overwrites the status) and is never marked NotReady.
        profile = profiles.get("healthy", node_monitor_grace_s=60.0)
        async with InProcessLab(profile) as lab:
            lab.controllers.daemonsets.backoff = daemonset.FailedPodBackoff(timings)
            current = (await install_managers(lab))["worker-1"]
            lab.fleet["worker-1"].power_off()
            waited: list[float] = []
            for _ in range(3):
                fail(lab, current)
                started = time.monotonic()
                current = await lab.wait(
                    functools.partial(replacement_of, lab, current),
                    timeout_s=DEADLINE_S,
                    what=f"{current['metadata']['name']} replaced",
                    seen=lambda: summary(lab),
                )
                waited.append(time.monotonic() - started)
                assert [uid_of(p) for p in managers_by_node(lab)["worker-1"]] == [uid_of(current)]
            assert waited[1] >= timings.initial_s, f"the second waits the initial delay: {waited}"
            assert waited[2] >= 2 * timings.initial_s, f"the third waits twice that: {waited}"
            assert lab.event_count("FailedDaemonPod") == 3

    asyncio.run(scenario())


def test_a_lab_without_managers_gets_none() -> None:
    async def scenario() -> None:
        async with InProcessLab(profiles.get("healthy")) as lab:
            boots = {m.name: m.boot_id for m in lab.fleet}
            lab.fleet["worker-1"].reboot()
            await back_after_reboot(lab, ["worker-1"], boots)
            assert lab.items(kinds.POD, label_selector=MANAGERS) == []
            assert lab.controllers.daemonsets.nodes == []
            assert lab.items(kinds.DAEMONSET) == [], "no daemon installed: no DaemonSet either"

    asyncio.run(scenario())


def workers_back_with_one_manager_each(core: client.CoreV1Api, boots: dict[str, str]) -> None:
    """Through the API: every worker in `boots` Ready with another boot id, and one Running manager
    pod on each, no other; NotYet says what is missing."""
    nodes = {n.metadata.name: n for n in core.list_node().items}
    pods = core.list_namespaced_pod(NS, label_selector=MANAGERS).items
    seen = sorted((p.spec.node_name, p.metadata.name, p.status.phase) for p in pods)
    for name, boot in boots.items():
        status = nodes[name].status
        ready = next(c.status for c in status.conditions if c.type == "Ready")
        if status.node_info.boot_id == boot or ready != "True":
            raise NotYet(f"{name} not back yet; managers {seen}")
    if [(node, phase) for node, _, phase in seen] != [(name, "Running") for name in sorted(boots)]:
        raise NotYet(f"managers {seen}")


def test_longhorn_stays_healthy_through_soaks_of_worker_reboots(lab_api: LabApi) -> None:
    """QA's report through the real API: two rounds of rebooting every worker (two soaks) used to
    leave no manager Running, and the next soak stopped at setup."""
    with running_cluster(lab_api, workers=3) as cluster:
        names = [f"worker-{i}" for i in (1, 2, 3)]
        lab_api.call(lambda: [lab_api.store.create(kinds.POD, manager_pod(n)) for n in names])
        api_client = lab_api.api_client()
        core = client.CoreV1Api(api_client)
        health_api = Cluster(api_client, context="lhsoak-lab")
        try:
            for round_ in (1, 2):
                boots = {n: cluster.machine(n).boot_id for n in names}
                for name in names:
                    cluster.power(name, Machine.reboot)
                eventually(
                    functools.partial(workers_back_with_one_manager_each, core, boots),
                    what=f"round {round_}: every worker back, one Running manager each",
                    deadline_s=DEADLINE_S,
                )
                health = longhorn.check_health(health_api)
                assert not [p for p in health.problems if "longhorn-manager" in p], health.problems
        finally:
            api_client.close()


def test_the_failed_pod_backoff_doubles_up_to_its_cap_and_starts_over_when_quiet() -> None:
    backoff = daemonset.FailedPodBackoff(daemonset.BackoffTimings(initial_s=1.0, max_s=4.0))
    assert backoff.delay_s("worker-1", 100.0) is None, "nothing deleted yet: no delay"
    backoff.step("worker-1", 100.0)
    assert backoff.delay_s("worker-1", 100.5) == 1.0
    assert backoff.delay_s("worker-1", 101.0) is None, "the delay is over"
    assert backoff.delay_s("worker-2", 100.5) is None, "each node backs off on its own"
    steps = [101.0, 103.0, 107.0, 111.0]
    for at_s in steps:
        backoff.step("worker-1", at_s)
    assert backoff.delay_s("worker-1", 111.0 + 3.9) == 4.0, "2, 4, then capped at 4"
    assert backoff.delay_s("worker-1", 111.0 + 4.0) is None
    backoff.step("worker-1", 111.0 + 8.5)  # untouched for more than twice the cap
    assert backoff.delay_s("worker-1", 111.0 + 8.5 + 0.9) == 1.0, "started over"


def test_daemon_pods_tolerate_node_problems_forever_and_keep_their_own_tolerations() -> None:
    own = {"key": "kubernetes.io/arch", "operator": "Equal", "value": "arm64", "effect": "NoSchedule"}
    limited = {**FOREVER_NOEXECUTE[1], "tolerationSeconds": 300}
    merged = daemonset.daemon_tolerations([own, limited])
    assert own in merged
    assert limited not in merged, "the unreachable toleration is made unlimited, as upstream"
    assert all(t in merged for t in FOREVER_NOEXECUTE)
    assert {t["key"] for t in merged if t["effect"] == "NoSchedule"} >= {
        "node.kubernetes.io/unschedulable",
        "node.kubernetes.io/disk-pressure",
        "node.kubernetes.io/memory-pressure",
        "node.kubernetes.io/pid-pressure",
    }
    assert len(merged) == 7


def test_a_tolerating_manager_outlives_a_lost_node_and_runs_again_with_it() -> None:
    """The managers `lhsoak lab up` installs carry the DaemonSet's tolerations: a hard power-off
    does not evict them; the same pod runs again once the node is back."""

    async def scenario() -> None:
        async with InProcessLab(profiles.get("healthy")) as lab:
            before = await install_managers(lab)
            lab.fleet["worker-1"].power_off()
            await lab.wait(
                lambda: (
                    "node.kubernetes.io/unreachable"
                    in {t["key"] for t in lab.store.get(kinds.NODE, "worker-1")["spec"].get("taints") or []}
                    or None
                ),
                timeout_s=DEADLINE_S,
                what="worker-1 tainted unreachable",
                seen=lambda: summary(lab),
            )
            lab.fleet["worker-1"].power_on()
            after = await settled(lab, "worker-1 powered on again")
            assert uid_of(after["worker-1"]) == uid_of(before["worker-1"])
            assert lab.event_count("TaintManagerEviction", involved="longhorn-manager-worker-1") == 0

    asyncio.run(scenario())
