"""The DaemonSet controller (pkg/controller/daemon), for the daemons the lab installs as bare pods.

The lab has no apps/v1 DaemonSet kind: longhorn-manager runs as one pod per worker, bound with
`spec.nodeName` (lhsoak.lab.cluster). This controller plays the DaemonSet behind them, so they come
back after a node's graceful shutdown as they do on a real cluster, where the kubelet fails every
pod, daemon pods included (phase Failed, reason Terminated, "Pod was terminated in response to
imminent node shutdown.") and the DaemonSet controller replaces them:

- A node is the daemon's once one of its pods (namespace and labels of `Daemon`) was seen bound to
  it; that pod is the template of its replacements. Nodes never seen are left alone, so labs and
  tests that install no manager get none.
- Per node, as podsShouldBeOnNode: a Failed pod is deleted (event FailedDaemonPod on the
  DaemonSet), rate-limited per node by a doubling backoff (flowcontrol.Backoff, 1 s to 15 min in
  kube-controller-manager) because upstream fights the kubelet here (a draining node's kubelet
  rejects new pods: Failed, reason NodeShutdown; the lab's kubelet stops the instant its shutdown
  starts, so only a pod failed by hand meets the backoff); a Succeeded one is deleted
  (SucceededDaemonPod); of several live pods the oldest stays. A node with no pod at all (not even
  a terminating one) gets a new one (SuccessfulCreate), on the next sync as upstream: the one the
  deletion event triggers.
- A new pod is named `<daemon>-<5 random characters>` (generateName, as the DaemonSet's) and
  carries the daemon tolerations (not-ready/unreachable NoExecute forever, the node-condition
  NoSchedule taints; AddOrUpdateDaemonPodTolerations), so the taint manager never evicts it from a
  NotReady node, and the node affinity the DaemonSet controller sets (matchFields metadata.name).
  Upstream the scheduler then binds it; the lab's scheduler does not read node affinity, so the
  pod is created bound (`spec.nodeName`), as DaemonSets did before ScheduleDaemonSetPods. The
  kubelet starts it when its node is up, at once or after the node's boot.

Owner references are left out: no DaemonSet object exists for them to name, and a dangling one
would be garbage on a real cluster. Events name the DaemonSet by kind, namespace and name.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from lhsoak.lab import kinds
from lhsoak.lab.controllers.events import EventRecorder
from lhsoak.lab.controllers.job import TAINT_NOT_READY, TAINT_UNREACHABLE
from lhsoak.lab.controllers.meta import Key, Obj, labels_of, parse_rfc3339
from lhsoak.lab.controllers.reconciler import Context, Reconciler
from lhsoak.lab.store import NotFound, WatchEvent

COMPONENT = "daemonset-controller"

_NODE_CONDITION_TAINTS = (
    "node.kubernetes.io/disk-pressure",
    "node.kubernetes.io/memory-pressure",
    "node.kubernetes.io/pid-pressure",
    "node.kubernetes.io/unschedulable",
)


@dataclass(frozen=True)
class Daemon:
    """One emulated DaemonSet: the pods it owns and the name its new pods are made from."""

    name: str = "longhorn-manager"
    """The DaemonSet's name, prefix of its pods' generated names ("longhorn-manager")."""
    namespace: str = "longhorn-system"
    """Namespace of the DaemonSet and its pods ("longhorn-system")."""
    match_labels: Mapping[str, str] = field(default_factory=lambda: {"app": "longhorn-manager"})
    """Labels every pod of the DaemonSet has ({"app": "longhorn-manager"})."""

    @property
    def label_selector(self) -> str:
        """`match_labels` as a label selector string."""
        return ",".join(f"{key}={value}" for key, value in sorted(self.match_labels.items()))

    def owns(self, pod: Obj) -> bool:
        """True for a pod of this daemon (namespace and labels match)."""
        labels = labels_of(pod)
        return pod["metadata"].get("namespace") == self.namespace and all(
            labels.get(key) == value for key, value in self.match_labels.items()
        )

    def reference(self) -> Obj:
        """The DaemonSet as events name it (there is no object, hence no uid)."""
        return {"kind": "DaemonSet", "apiVersion": "apps/v1", "namespace": self.namespace, "name": self.name}


LONGHORN_MANAGER = Daemon()


@dataclass(frozen=True)
class BackoffTimings:
    """Delays between deletions of failed daemon pods on one node (client-go flowcontrol.Backoff)."""

    initial_s: float = 0.1
    """Delay after the first deletion, seconds (0.1; kube-controller-manager: 1 s)."""
    max_s: float = 1.0
    """Cap of the doubling delay, seconds (1.0; kube-controller-manager: 15 min)."""

    def __post_init__(self) -> None:
        if not 0 < self.initial_s <= self.max_s:
            raise ValueError(f"backoff needs 0 < initial_s <= max_s, got {self.initial_s}, {self.max_s}")


class FailedPodBackoff:
    """Per-key doubling delay with flowcontrol.Backoff's rules: an entry untouched for twice the
    cap starts over at the initial delay."""

    def __init__(self, timings: BackoffTimings) -> None:
        self.timings = timings
        self._entries: dict[str, tuple[float, float]] = {}
        """key -> (current delay s, time of the last step s)."""

    def delay_s(self, key: str, now_s: float) -> float | None:
        """The current delay while `now_s` is within it since the last step, else None
        (IsInBackOffSinceUpdate)."""
        entry = self._entries.get(key)
        if entry is None or self._expired(entry, now_s):
            return None
        delay_s, last_s = entry
        return delay_s if now_s - last_s < delay_s else None

    def step(self, key: str, now_s: float) -> None:
        """Record one more deletion: the delay starts at `initial_s`, then doubles up to `max_s`."""
        entry = self._entries.get(key)
        if entry is None or self._expired(entry, now_s):
            delay_s = self.timings.initial_s
        else:
            delay_s = min(entry[0] * 2, self.timings.max_s)
        self._entries[key] = (delay_s, now_s)

    def _expired(self, entry: tuple[float, float], now_s: float) -> bool:
        return now_s - entry[1] > 2 * self.timings.max_s


def daemon_tolerations(tolerations: Iterable[Mapping[str, object]] = ()) -> list[Obj]:
    """`tolerations` plus those every DaemonSet pod gets (AddOrUpdateDaemonPodTolerations): not-ready
    and unreachable NoExecute with no time limit, the node-condition taints NoSchedule."""
    merged = [dict(t) for t in tolerations]
    wanted = [(key, "NoExecute") for key in (TAINT_NOT_READY, TAINT_UNREACHABLE)]
    wanted += [(key, "NoSchedule") for key in _NODE_CONDITION_TAINTS]
    for key, effect in wanted:
        # AddOrUpdateTolerationInPodSpec: one that differs only in tolerationSeconds is replaced.
        merged = [t for t in merged if _toleration_identity(t) != (key, "Exists", "", effect)]
        merged.append({"key": key, "operator": "Exists", "effect": effect})
    return merged


def _toleration_identity(toleration: Mapping[str, object]) -> tuple[object, ...]:
    return (
        toleration.get("key"),
        toleration.get("operator") or "Equal",
        toleration.get("value") or "",
        toleration.get("effect"),
    )


def node_affinity(node: str) -> Obj:
    """The affinity the DaemonSet controller gives a pod for `node` (matchFields metadata.name)."""
    term = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}
    return {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}}


class DaemonSetController(Reconciler):
    """Keeps one live pod of `daemon` on every node that had one; keys are ("", node name)."""

    name = COMPONENT
    kinds = (kinds.POD,)

    def __init__(
        self,
        ctx: Context,
        recorder: EventRecorder,
        *,
        daemon: Daemon = LONGHORN_MANAGER,
        backoff: BackoffTimings | None = None,
    ) -> None:
        super().__init__(ctx)
        self.recorder = recorder
        self.daemon = daemon
        self.backoff = FailedPodBackoff(backoff or BackoffTimings())
        self._templates: dict[str, Obj] = {}
        """node -> the pod template its replacements are made from (the DaemonSet's spec)."""

    @property
    def nodes(self) -> list[str]:
        """The nodes this daemon runs on (those one of its pods was seen bound to)."""
        return sorted(self._templates)

    def observe(self, event: WatchEvent) -> None:
        pod = event.object
        node = (pod.get("spec") or {}).get("nodeName")
        if not node or not self.daemon.owns(pod):
            return
        if event.type != "DELETED":
            self._learn(str(node), pod)
        self.enqueue(("", str(node)))

    def all_keys(self) -> Iterable[Key]:
        for pod in self._pods():
            self._learn(str(pod["spec"]["nodeName"]), pod)
        return [("", node) for node in self.nodes]

    def reconcile(self, key: Key) -> float | None:
        _, node = key
        if node not in self._templates:
            return None
        pods = self._pods(node)
        if not pods:
            self._create(node)
            return None
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        doomed, requeue_s = self._terminal_to_delete(node, live)
        running = [p for p in live if _phase(p) not in ("Failed", "Succeeded")]
        doomed += sorted(running, key=_age_order)[1:]
        for pod in doomed:
            self._delete(pod)
        return requeue_s

    # -- decisions --

    def _terminal_to_delete(self, node: str, pods: list[Obj]) -> tuple[list[Obj], float | None]:
        doomed: list[Obj] = []
        requeue_s: float | None = None
        for pod in pods:
            pod_name = f"{self.daemon.namespace}/{pod['metadata']['name']}"
            if _phase(pod) == "Succeeded":
                message = f"Found succeeded daemon pod {pod_name} on node {node}, will try to delete it"
                self.recorder.event(self.daemon.reference(), "Normal", "SucceededDaemonPod", message)
                doomed.append(pod)
            elif _phase(pod) == "Failed":
                now_s = self.ctx.clock()
                delay_s = self.backoff.delay_s(node, now_s)
                if delay_s is not None:
                    requeue_s = delay_s
                    continue
                self.backoff.step(node, now_s)
                message = f"Found failed daemon pod {pod_name} on node {node}, will try to kill it"
                self.recorder.event(self.daemon.reference(), "Warning", "FailedDaemonPod", message)
                doomed.append(pod)
        return doomed, requeue_s

    def _learn(self, node: str, pod: Obj) -> None:
        if node in self._templates or pod["metadata"].get("deletionTimestamp"):
            return
        meta = pod["metadata"]
        spec = copy.deepcopy(pod.get("spec") or {})
        spec.pop("nodeName", None)
        self._templates[node] = {
            "labels": dict(meta.get("labels") or {}),
            "annotations": dict(meta.get("annotations") or {}),
            "spec": spec,
        }

    # -- writes --

    def _create(self, node: str) -> None:
        try:
            self.ctx.store.get(kinds.NODE, node)
        except NotFound:
            return
        template = self._templates[node]
        spec = copy.deepcopy(template["spec"])
        spec["tolerations"] = daemon_tolerations(spec.get("tolerations") or ())
        spec["affinity"] = {**(spec.get("affinity") or {}), **node_affinity(node)}
        spec["nodeName"] = node
        metadata: Obj = {
            "generateName": f"{self.daemon.name}-",
            "namespace": self.daemon.namespace,
            "labels": dict(template["labels"]),
        }
        if template["annotations"]:
            metadata["annotations"] = dict(template["annotations"])
        pod: Obj = {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}
        created = self.ctx.store.create(kinds.POD, pod)
        message = f"Created pod: {created['metadata']['name']}"
        self.recorder.event(self.daemon.reference(), "Normal", "SuccessfulCreate", message)

    def _delete(self, pod: Obj) -> None:
        name = pod["metadata"]["name"]
        try:
            self.ctx.store.delete(kinds.POD, name, namespace=self.daemon.namespace)
        except NotFound:
            return
        self.recorder.event(self.daemon.reference(), "Normal", "SuccessfulDelete", f"Deleted pod: {name}")

    def _pods(self, node: str | None = None) -> list[Obj]:
        items, _ = self.ctx.store.list(
            kinds.POD,
            namespace=self.daemon.namespace,
            label_selector=self.daemon.label_selector,
            field_selector=f"spec.nodeName={node}" if node else None,
        )
        return [p for p in items if (p.get("spec") or {}).get("nodeName")]


def _phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def _age_order(pod: Obj) -> tuple[float, str]:
    created = pod["metadata"].get("creationTimestamp")
    return (parse_rfc3339(created) if created else 0.0, pod["metadata"]["name"])
