"""The node lifecycle controller and taint-based eviction (pkg/controller/nodelifecycle, tainteviction).

A node whose kubelet stopped posting status is marked, after `node_monitor_grace_s` (40 s, the
kube-controller-manager default): Ready, MemoryPressure, DiskPressure and PIDPressure become Unknown (reason
NodeStatusUnknown, "Kubelet stopped posting node status."), the taints
`node.kubernetes.io/unreachable` NoSchedule and NoExecute are added, the node's pods get
Ready=False, and NodeNotReady events are recorded. When the kubelet reports Ready again, the taints
go. Pods on a NoExecute-tainted node are deleted once their toleration runs out
(`tolerationSeconds`, 300 s by default; TaintManagerEviction).

The lab reads heartbeats from the machines (the kubelet's state) rather than from Lease renewals.
A controller that starts or resumes gives every silent node a fresh grace period, as a restarted
kube-controller-manager does.
"""

from __future__ import annotations

from collections.abc import Iterable

from lhsoak.lab import kinds
from lhsoak.lab.controllers.events import EventRecorder
from lhsoak.lab.controllers.job import TAINT_NOT_READY, TAINT_UNREACHABLE
from lhsoak.lab.controllers.kubelet import node_conditions, node_ref
from lhsoak.lab.controllers.meta import (
    Key,
    Obj,
    condition,
    key_of,
    object_ref,
    parse_rfc3339,
    rfc3339,
    set_condition,
)
from lhsoak.lab.controllers.reconciler import Context, Reconciler
from lhsoak.lab.controllers.scheduler import tolerates
from lhsoak.lab.machine import MachineEvent
from lhsoak.lab.store import NotFound, WatchEvent

_NODE_TAINTS = (TAINT_UNREACHABLE, TAINT_NOT_READY)


class NodeLifecycle(Reconciler):
    """Marks silent nodes NotReady and evicts pods that no longer tolerate them."""

    name = "node-controller"
    kinds = (kinds.NODE, kinds.POD)
    follows_machines = True

    def __init__(self, ctx: Context, recorder: EventRecorder, eviction_recorder: EventRecorder) -> None:
        super().__init__(ctx)
        self.recorder = recorder
        self.eviction_recorder = eviction_recorder
        self._down_since: dict[str, float] = {}
        self._observed_from = ctx.clock()

    def on_start(self) -> None:
        self._observed_from = self.ctx.clock()

    def on_machine(self, event: MachineEvent) -> None:
        if event.kind == "kubelet-stopped":
            self._down_since[event.machine] = event.at
        elif event.kind == "kubelet-started":
            self._down_since.pop(event.machine, None)
        else:
            return
        self.enqueue(("", event.machine))

    def observe(self, event: WatchEvent) -> None:
        if event.kind == kinds.NODE:
            if event.type != "DELETED":
                self.enqueue(key_of(event.object))
            return
        node_name = (event.object.get("spec") or {}).get("nodeName")
        if node_name and event.type == "ADDED":
            self.enqueue(("", str(node_name)))

    def all_keys(self) -> Iterable[Key]:
        items, _ = self.ctx.store.list(kinds.NODE)
        return [key_of(n) for n in items]

    def reconcile(self, key: Key) -> float | None:
        _, name = key
        try:
            node = self.ctx.store.get(kinds.NODE, name)
        except NotFound:
            return None
        now_s = self.ctx.clock()
        if name in self.ctx.fleet and not self.ctx.fleet[name].kubelet_active:
            since = max(self._down_since.get(name, now_s), self._observed_from)
            due_s = since + self.ctx.profile.node_monitor_grace_s
            if now_s < due_s:
                return due_s - now_s
            node = self._mark_unknown(node, now_s)
        elif _ready(node) and _has_node_taints(node):
            node = self._remove_taints(node)
        return self._evict(node, now_s)

    def _mark_unknown(self, node: Obj, now_s: float) -> Obj:
        name = node["metadata"]["name"]
        now = rfc3339(now_s)
        ready = condition((node.get("status") or {}).get("conditions"), "Ready")
        if ready is None or ready.get("status") != "Unknown":

            def unknown(obj: Obj) -> None:
                conditions = obj.setdefault("status", {}).setdefault("conditions", [])
                for type_, status, reason, message in node_conditions(ready=False):
                    set_condition(
                        conditions, type_=type_, status=status, now=now, reason=reason, message=message
                    )

            node = self.ctx.store.mutate(kinds.NODE, name, unknown, subresource="status")
            self.recorder.event(
                node_ref(name), "Normal", "NodeNotReady", f"Node {name} status is now: NodeNotReady"
            )
            self._mark_pods_not_ready(name, now)
        taints = (node.get("spec") or {}).get("taints") or []
        wanted = [(TAINT_UNREACHABLE, "NoSchedule"), (TAINT_UNREACHABLE, "NoExecute")]
        missing = [
            (k, e) for k, e in wanted if not any(t.get("key") == k and t.get("effect") == e for t in taints)
        ]
        if missing:

            def taint(obj: Obj) -> None:
                spec = obj.setdefault("spec", {})
                spec["taints"] = [
                    *(spec.get("taints") or []),
                    *({"key": k, "effect": e, "timeAdded": now} for k, e in missing),
                ]

            node = self.ctx.store.mutate(kinds.NODE, name, taint)
        return node

    def _mark_pods_not_ready(self, node_name: str, now: str) -> None:
        pods, _ = self.ctx.store.list(kinds.POD, field_selector=f"spec.nodeName={node_name}")
        for pod in pods:
            ready = condition((pod.get("status") or {}).get("conditions"), "Ready")
            if ready is None or ready.get("status") != "True":
                continue

            def not_ready(obj: Obj) -> None:
                conditions = obj.setdefault("status", {}).setdefault("conditions", [])
                cond = condition(conditions, "Ready")
                if cond is not None:
                    cond["status"] = "False"
                    cond["lastTransitionTime"] = now

            namespace, name = key_of(pod)
            self.ctx.store.mutate(kinds.POD, name, not_ready, namespace=namespace, subresource="status")
            self.recorder.event(object_ref(pod), "Warning", "NodeNotReady", "Node is not ready")

    def _remove_taints(self, node: Obj) -> Obj:
        def untaint(obj: Obj) -> None:
            spec = obj.setdefault("spec", {})
            kept = [t for t in spec.get("taints") or () if t.get("key") not in _NODE_TAINTS]
            if kept:
                spec["taints"] = kept
            else:
                spec.pop("taints", None)

        return self.ctx.store.mutate(kinds.NODE, node["metadata"]["name"], untaint)

    def _evict(self, node: Obj, now_s: float) -> float | None:
        taints = [t for t in (node.get("spec") or {}).get("taints") or () if t.get("effect") == "NoExecute"]
        if not taints:
            return None
        pods, _ = self.ctx.store.list(kinds.POD, field_selector=f"spec.nodeName={node['metadata']['name']}")
        next_due: float | None = None
        for pod in pods:
            if (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed"):
                continue
            due_s = _eviction_due(pod, taints)
            if due_s is None:
                continue
            if due_s <= now_s:
                self._delete_pod(pod)
            else:
                next_due = due_s if next_due is None else min(next_due, due_s)
        return None if next_due is None else next_due - now_s

    def _delete_pod(self, pod: Obj) -> None:
        namespace, name = key_of(pod)
        self.eviction_recorder.event(
            object_ref(pod), "Normal", "TaintManagerEviction", f"Marking for deletion Pod {namespace}/{name}"
        )
        try:
            self.ctx.store.delete(kinds.POD, name, namespace=namespace)
        except NotFound:
            return


def _ready(node: Obj) -> bool:
    ready = condition((node.get("status") or {}).get("conditions"), "Ready")
    return ready is not None and ready.get("status") == "True"


def _has_node_taints(node: Obj) -> bool:
    return any(t.get("key") in _NODE_TAINTS for t in (node.get("spec") or {}).get("taints") or ())


def _eviction_due(pod: Obj, taints: list[Obj]) -> float | None:
    """When the pod must go (epoch s), or None while it tolerates every NoExecute taint forever."""
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    due: float | None = None
    for taint in taints:
        added_s = parse_rfc3339(taint["timeAdded"]) if taint.get("timeAdded") else 0.0
        matching = [t for t in tolerations if tolerates([t], taint)]
        if not matching:
            return added_s
        seconds = [t["tolerationSeconds"] for t in matching if t.get("tolerationSeconds") is not None]
        if seconds:
            taint_due = added_s + max(0, min(float(s) for s in seconds))
            due = taint_due if due is None else min(due, taint_due)
    return due
