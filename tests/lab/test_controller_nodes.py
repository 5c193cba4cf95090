"""Node lifecycle: NotReady after the grace period with the unreachable taints, Ready again after
the kubelet starts with a new boot id, and taint-based eviction once the toleration runs out."""

from __future__ import annotations

import asyncio

from lhsoak.lab import kinds, profiles
from lhsoak.lab.controllers.meta import Obj, condition
from lhsoak.lab.controllers.testing import InProcessLab

DEADLINE_S = 10.0


def node(lab: InProcessLab, name: str) -> Obj:
    return lab.store.get(kinds.NODE, name)


def ready(lab: InProcessLab, name: str) -> str:
    cond = condition(node(lab, name)["status"]["conditions"], "Ready")
    return str(cond["status"]) if cond else ""


def taints(lab: InProcessLab, name: str) -> set[tuple[str, str]]:
    return {(t["key"], t["effect"]) for t in node(lab, name)["spec"].get("taints") or ()}


UNREACHABLE = {
    ("node.kubernetes.io/unreachable", "NoSchedule"),
    ("node.kubernetes.io/unreachable", "NoExecute"),
}


def test_a_rebooted_node_goes_unknown_after_the_grace_period_and_comes_back_ready() -> None:
    async def scenario() -> None:
        profile = profiles.get("healthy", down_s=1.0, node_monitor_grace_s=0.3)
        async with InProcessLab(profile) as lab:
            boot_before = node(lab, "worker-1")["status"]["nodeInfo"]["bootID"]
            lab.fleet["worker-1"].reboot()
            await lab.wait(
                lambda: ready(lab, "worker-1") == "Unknown",
                timeout_s=DEADLINE_S,
                what="worker-1 Ready=Unknown",
                seen=lambda: node(lab, "worker-1")["status"]["conditions"],
            )
            cond = condition(node(lab, "worker-1")["status"]["conditions"], "Ready")
            assert cond is not None
            assert (cond["reason"], cond["message"]) == (
                "NodeStatusUnknown",
                "Kubelet stopped posting node status.",
            )
            assert taints(lab, "worker-1") >= UNREACHABLE
            assert lab.event_count("NodeNotReady", involved="worker-1") == 1

            await lab.wait(
                lambda: ready(lab, "worker-1") == "True", timeout_s=DEADLINE_S, what="worker-1 Ready"
            )
            await lab.wait(
                lambda: not UNREACHABLE & taints(lab, "worker-1"),
                timeout_s=DEADLINE_S,
                what="the unreachable taints to go",
            )
            boot_after = node(lab, "worker-1")["status"]["nodeInfo"]["bootID"]
            assert boot_after != boot_before
            assert boot_after == lab.fleet["worker-1"].boot_id
            (rebooted,) = lab.events("Rebooted", involved="worker-1")
            assert rebooted["type"] == "Warning"
            assert boot_after in rebooted["message"]
            assert ready(lab, "worker-2") == "True", "other nodes are untouched"

    asyncio.run(scenario())


def test_a_node_back_within_the_grace_period_never_goes_unknown() -> None:
    async def scenario() -> None:
        profile = profiles.get(
            "healthy",
            shutdown_s=0.05,
            down_s=0.05,
            boot_s=0.05,
            kubelet_start_s=0.05,
            node_monitor_grace_s=3.0,
        )
        async with InProcessLab(profile) as lab:
            lab.fleet["worker-3"].reboot()
            await lab.wait(
                lambda: lab.events("Rebooted", involved="worker-3"), timeout_s=DEADLINE_S, what="Rebooted"
            )
            assert ready(lab, "worker-3") == "True"
            assert not lab.events("NodeNotReady")

    asyncio.run(scenario())


def test_pods_of_a_node_that_stays_down_are_evicted_after_their_toleration_and_replaced() -> None:
    async def scenario() -> None:
        profile = profiles.get("healthy", node_monitor_grace_s=0.2, pod_toleration_s=1.0)
        async with InProcessLab(profile) as lab:
            lab.store.create(
                kinds.JOB,
                {
                    "metadata": {"name": "long", "namespace": "default"},
                    "spec": {
                        "template": {
                            "spec": {
                                "restartPolicy": "OnFailure",
                                "containers": [
                                    {"name": "main", "image": "busybox", "command": ["sleep", "infinity"]}
                                ],
                            }
                        }
                    },
                },
            )

            def running() -> Obj | None:
                found = [
                    p
                    for p in lab.items(kinds.POD, namespace="default")
                    if p["status"].get("phase") == "Running"
                ]
                return found[0] if found else None

            first = await lab.wait(running, timeout_s=DEADLINE_S, what="a running pod")
            tolerations = {(t["key"], t.get("tolerationSeconds")) for t in first["spec"]["tolerations"]}
            assert ("node.kubernetes.io/unreachable", 1) in tolerations
            lab.fleet[first["spec"]["nodeName"]].power_off()

            def replacement() -> Obj | None:
                pod = running()
                return pod if pod and pod["metadata"]["name"] != first["metadata"]["name"] else None

            second = await lab.wait(
                replacement, timeout_s=DEADLINE_S, what="a replacement pod running elsewhere"
            )
            assert second["spec"]["nodeName"] != first["spec"]["nodeName"]
            (eviction,) = lab.events("TaintManagerEviction")
            assert eviction["message"] == f"Marking for deletion Pod default/{first['metadata']['name']}"
            assert lab.store.get(kinds.JOB, "long", namespace="default")["status"]["failed"] == 1

    asyncio.run(scenario())
