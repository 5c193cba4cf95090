"""The default scheduler, reduced to what job pods meet: binds each pending pod to a node.

Filters as kube-scheduler's NodeUnschedulable, TaintToleration and NodeAffinity(nodeSelector)
plugins: a node is feasible when it is not cordoned, every NoSchedule/NoExecute taint is tolerated
and the nodeSelector matches. (NotReady nodes are excluded through the taints the node lifecycle
controller puts on them, as with TaintNodesByCondition — so a node that just went down but is
still within its grace period can be chosen, as on a real cluster.) Among feasible nodes the one
running the fewest pods wins, ties broken by the seeded rng.

Bound: `spec.nodeName`, condition PodScheduled=True, event Scheduled. Unschedulable: condition
PodScheduled=False reason Unschedulable with the upstream-style message, event FailedScheduling;
the pod is retried whenever a Node changes. A pod whose PersistentVolumeClaims are missing, being
deleted or unbound is rejected before any node is looked at (the VolumeBinding plugin's PreFilter)
and retried whenever a claim changes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from lhsoak.lab import kinds
from lhsoak.lab.controllers import storage
from lhsoak.lab.controllers.events import EventRecorder
from lhsoak.lab.controllers.meta import Key, Obj, condition, key_of, object_ref, rfc3339, set_condition
from lhsoak.lab.controllers.reconciler import Context, Reconciler
from lhsoak.lab.store import NotFound, WatchEvent

SCHEDULER_NAME = "default-scheduler"


def tolerates(tolerations: Iterable[Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
    """True when one toleration matches the taint (v1helper.TolerationsTolerateTaint)."""
    for toleration in tolerations:
        effect = toleration.get("effect")
        if effect and effect != taint.get("effect"):
            continue
        key = toleration.get("key")
        if toleration.get("operator", "Equal") == "Exists":
            if not key or key == taint.get("key"):
                return True
        elif key == taint.get("key") and toleration.get("value", "") == taint.get("value", ""):
            return True
    return False


class Scheduler(Reconciler):
    """Binds unscheduled pods that name the default scheduler."""

    name = SCHEDULER_NAME
    kinds = (kinds.POD, kinds.NODE, kinds.PVC)

    def __init__(self, ctx: Context, recorder: EventRecorder) -> None:
        super().__init__(ctx)
        self.recorder = recorder
        self._unschedulable: set[Key] = set()
        self._rng = ctx.profile.rng("scheduler")

    def observe(self, event: WatchEvent) -> None:
        obj = event.object
        if event.kind in (kinds.NODE, kinds.PVC):
            for key in list(self._unschedulable):
                self.enqueue(key)
            return
        if event.type == "DELETED":
            self._unschedulable.discard(key_of(obj))
        elif _wants_scheduling(obj):
            self.enqueue(key_of(obj))

    def all_keys(self) -> Iterable[Key]:
        items, _ = self.ctx.store.list(kinds.POD, field_selector="spec.nodeName=")
        return [key_of(p) for p in items if _wants_scheduling(p)]

    def reconcile(self, key: Key) -> float | None:
        namespace, name = key
        try:
            pod = self.ctx.store.get(kinds.POD, name, namespace=namespace)
        except NotFound:
            self._unschedulable.discard(key)
            return None
        if not _wants_scheduling(pod):
            self._unschedulable.discard(key)
            return None
        nodes, _ = self.ctx.store.list(kinds.NODE)
        claims_problem = storage.unbound_claims_reason(self.ctx.store, pod)
        if claims_problem is not None:
            self._unschedulable.add(key)
            self._mark_unschedulable(pod, len(nodes), Counter(), prefilter=claims_problem)
            return None
        feasible, reasons = self._filter(pod, nodes)
        if not feasible:
            self._unschedulable.add(key)
            self._mark_unschedulable(pod, len(nodes), reasons)
            return None
        self._unschedulable.discard(key)
        self._bind(pod, self._pick(feasible))
        return None

    def _filter(self, pod: Obj, nodes: list[Obj]) -> tuple[list[Obj], Counter[str]]:
        spec = pod.get("spec") or {}
        tolerations = spec.get("tolerations") or []
        selector = spec.get("nodeSelector") or {}
        feasible: list[Obj] = []
        reasons: Counter[str] = Counter()
        for node in nodes:
            reason = _rejection(node, tolerations, selector)
            if reason is None:
                feasible.append(node)
            else:
                reasons[reason] += 1
        return feasible, reasons

    def _pick(self, nodes: list[Obj]) -> Obj:
        pods, _ = self.ctx.store.list(kinds.POD)
        load = Counter(
            (p.get("spec") or {}).get("nodeName")
            for p in pods
            if (p.get("status") or {}).get("phase") not in ("Succeeded", "Failed")
        )
        least = min(load[n["metadata"]["name"]] for n in nodes)
        candidates = sorted(n["metadata"]["name"] for n in nodes if load[n["metadata"]["name"]] == least)
        chosen = self._rng.choice(candidates)
        return next(n for n in nodes if n["metadata"]["name"] == chosen)

    def _bind(self, pod: Obj, node: Obj) -> None:
        namespace, name = key_of(pod)
        node_name = node["metadata"]["name"]
        now = rfc3339(self.ctx.clock())

        def bind(obj: Obj) -> None:
            obj["spec"]["nodeName"] = node_name

        def scheduled(obj: Obj) -> None:
            _set_pod_scheduled(obj, status="True", now=now)

        self.ctx.store.mutate(kinds.POD, name, bind, namespace=namespace)
        self.ctx.store.mutate(kinds.POD, name, scheduled, namespace=namespace, subresource="status")
        self.recorder.event(
            object_ref(pod), "Normal", "Scheduled", f"Successfully assigned {namespace}/{name} to {node_name}"
        )

    def _mark_unschedulable(
        self, pod: Obj, node_count: int, reasons: Counter[str], *, prefilter: str | None = None
    ) -> None:
        namespace, name = key_of(pod)
        # A PreFilter rejection is reported without per-node counts (FitError.Error, k8s >= 1.27).
        parts = prefilter or ", ".join(f"{count} {reason}" for reason, count in sorted(reasons.items()))
        message = (
            f"0/{node_count} nodes are available: {parts}. preemption: 0/{node_count} nodes are "
            f"available: {node_count} Preemption is not helpful for scheduling."
            if node_count
            else "no nodes available to schedule pods"
        )
        now = rfc3339(self.ctx.clock())
        previous = condition((pod.get("status") or {}).get("conditions"), "PodScheduled")

        def unschedulable(obj: Obj) -> None:
            _set_pod_scheduled(obj, status="False", now=now, reason="Unschedulable", message=message)

        if previous is None or previous.get("message") != message or previous.get("status") != "False":
            self.ctx.store.mutate(kinds.POD, name, unschedulable, namespace=namespace, subresource="status")
        self.recorder.event(object_ref(pod), "Warning", "FailedScheduling", message)


def _wants_scheduling(pod: Obj) -> bool:
    spec = pod.get("spec") or {}
    return (
        not spec.get("nodeName")
        and spec.get("schedulerName", SCHEDULER_NAME) == SCHEDULER_NAME
        and (pod.get("status") or {}).get("phase", "Pending") == "Pending"
        and not pod["metadata"].get("deletionTimestamp")
    )


def _rejection(node: Obj, tolerations: list[Obj], selector: Mapping[str, str]) -> str | None:
    spec = node.get("spec") or {}
    if spec.get("unschedulable"):
        return "node(s) were unschedulable"
    for taint in spec.get("taints") or ():
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not tolerates(tolerations, taint):
            return f"node(s) had untolerated taint {{{taint.get('key')}: {taint.get('value', '')}}}"
    labels = node["metadata"].get("labels") or {}
    if any(labels.get(k) != v for k, v in selector.items()):
        return "node(s) didn't match Pod's node affinity/selector"
    return None


def _set_pod_scheduled(
    pod: Obj, *, status: str, now: str, reason: str | None = None, message: str | None = None
) -> None:
    conditions = pod.setdefault("status", {}).setdefault("conditions", [])
    set_condition(conditions, type_="PodScheduled", status=status, now=now, reason=reason, message=message)
    cond = condition(conditions, "PodScheduled")
    if cond is not None:
        cond["lastProbeTime"] = None
