"""The DaemonSet controller (pkg/controller/daemon), for the daemons the lab installs as bare pods.

The lab installs longhorn-manager and longhorn-csi-plugin as one pod each per worker, bound with
`spec.nodeName` (lhsoak.lab.cluster). One of these controllers per daemon (`Daemon`:
LONGHORN_MANAGER, LONGHORN_CSI_PLUGIN) plays the DaemonSet behind them, so they come back after a
node's graceful shutdown as they do on a real cluster, where the kubelet fails every pod, daemon
pods included (phase Failed, reason Terminated, "Pod was terminated in response to imminent node
shutdown.") and the DaemonSet controller replaces them:

- A node is the daemon's once one of its pods (namespace and labels of `Daemon`) was seen bound to
  it; that pod is the template of its replacements. Nodes never seen are left alone, so labs and
  tests that install no manager get none (and no DaemonSet).
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

The apps/v1 DaemonSet object (clients may only read it: kinds.DAEMONSET):

- Made when the daemon has its first node: name, namespace and selector from `Daemon`, the pod
  template from that node's pod less what the controller adds per pod (node affinity, daemon
  tolerations, revision labels), updateStrategy RollingUpdate with `Daemon.max_unavailable`.
- Pods are claimed as ClaimPods does: a daemon pod with no controller reference gets one to the
  DaemonSet. The lab also stamps the revision labels (`controller-revision-hash`,
  `pod-template-generation`) on it, which upstream adoption does not: the bare pods stand for the
  ones the DaemonSet made at install, and without them none would count as up to date. Pods the
  controller makes carry both from the start.
- Status as updateDaemonSetStatus computes it (`daemon_status`), after every change of its pods
  and nodes: a rebooting node's pod not Ready drops numberReady and numberAvailable at once; while
  the control plane is down nothing updates it, as with a stopped kube-controller-manager.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lhsoak.lab import kinds
from lhsoak.lab.controllers.events import EventRecorder, EventType
from lhsoak.lab.controllers.job import TAINT_NOT_READY, TAINT_UNREACHABLE
from lhsoak.lab.controllers.meta import (
    Key,
    Obj,
    condition,
    controller_of,
    controller_ref,
    labels_of,
    object_ref,
    parse_rfc3339,
)
from lhsoak.lab.controllers.reconciler import Context, Reconciler
from lhsoak.lab.store import NotFound, WatchEvent

COMPONENT = "daemonset-controller"
REVISION_HASH_LABEL = "controller-revision-hash"
"""apps.DefaultDaemonSetUniqueLabelKey: the hash of the template a daemon pod was made from."""
TEMPLATE_GENERATION_LABEL = "pod-template-generation"
"""The (deprecated) template generation a daemon pod was made from."""
TEMPLATE_GENERATION_ANNOTATION = "deprecated.daemonset.template.generation"
"""Where apps/v1 keeps the DaemonSet's template generation (the internal spec.templateGeneration)."""

_NODE_CONDITION_TAINTS = (
    "node.kubernetes.io/disk-pressure",
    "node.kubernetes.io/memory-pressure",
    "node.kubernetes.io/pid-pressure",
    "node.kubernetes.io/unschedulable",
)
# apimachinery's rand.SafeEncodeString alphabet (no vowels, no look-alikes).
_SAFE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


@dataclass(frozen=True)
class Daemon:
    """One emulated DaemonSet: the pods it owns and the name its new pods are made from."""

    name: str = "longhorn-manager"
    """The DaemonSet's name, prefix of its pods' generated names ("longhorn-manager")."""
    namespace: str = "longhorn-system"
    """Namespace of the DaemonSet and its pods ("longhorn-system")."""
    match_labels: Mapping[str, str] = field(default_factory=lambda: {"app": "longhorn-manager"})
    """Labels every pod of the DaemonSet has ({"app": "longhorn-manager"})."""
    max_unavailable: str | int = "100%"
    """updateStrategy.rollingUpdate.maxUnavailable ("100%", as Longhorn's chart sets it for the
    manager)."""
    labels: Mapping[str, str] | None = None
    """Labels of the DaemonSet object (None: those of its pods' template)."""

    @property
    def label_selector(self) -> str:
        """`match_labels` as a label selector string."""
        return ",".join(f"{key}={value}" for key, value in sorted(self.match_labels.items()))

    @property
    def key(self) -> Key:
        """(namespace, name) of the DaemonSet object."""
        return (self.namespace, self.name)

    def owns(self, pod: Obj) -> bool:
        """True for a pod of this daemon (namespace and labels match)."""
        labels = labels_of(pod)
        return pod["metadata"].get("namespace") == self.namespace and all(
            labels.get(key) == value for key, value in self.match_labels.items()
        )

    def manifest(self, template: Obj) -> Obj:
        """The DaemonSet object to create, with `template` (a pod template) as spec.template."""
        return {
            "apiVersion": kinds.DAEMONSET.api_version,
            "kind": kinds.DAEMONSET.kind,
            "metadata": {
                "name": self.name,
                "namespace": self.namespace,
                "labels": dict(self.labels or template["metadata"].get("labels") or self.match_labels),
                "annotations": {TEMPLATE_GENERATION_ANNOTATION: "1"},
            },
            "spec": {
                "selector": {"matchLabels": dict(self.match_labels)},
                "template": template,
                "updateStrategy": {
                    "type": "RollingUpdate",
                    "rollingUpdate": {"maxUnavailable": self.max_unavailable, "maxSurge": 0},
                },
                "revisionHistoryLimit": 10,
            },
        }


LONGHORN_MANAGER = Daemon()
LONGHORN_CSI_PLUGIN = Daemon(
    name="longhorn-csi-plugin",
    match_labels={"app": "longhorn-csi-plugin"},
    # As longhorn-manager's csi/deployment.go makes it: one node at a time, labelled as a component
    # longhorn-manager manages (its pod template carries only the app label).
    max_unavailable=1,
    labels={"longhorn.io/managed-by": "longhorn-manager"},
)


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
    for key, effect in _DAEMON_TOLERATIONS:
        # AddOrUpdateTolerationInPodSpec: one that differs only in tolerationSeconds is replaced.
        merged = [t for t in merged if _toleration_identity(t) != (key, "Exists", "", effect)]
        merged.append({"key": key, "operator": "Exists", "effect": effect})
    return merged


_DAEMON_TOLERATIONS = (
    *((key, "NoExecute") for key in (TAINT_NOT_READY, TAINT_UNREACHABLE)),
    *((key, "NoSchedule") for key in _NODE_CONDITION_TAINTS),
)


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


def pod_template(*, labels: Mapping[str, str], annotations: Mapping[str, str], spec: Obj) -> Obj:
    """The DaemonSet's spec.template behind a daemon pod's labels, annotations and spec: without
    what the controller adds to each pod (nodeName, node affinity, daemon tolerations, revision
    labels)."""
    spec = copy.deepcopy(spec)
    spec.pop("nodeName", None)
    own = [t for t in spec.pop("tolerations", None) or () if not _is_daemon_toleration(t)]
    if own:
        spec["tolerations"] = own
    affinity = dict(spec.pop("affinity", None) or {})
    # The controller replaces a pod's required node terms with its node's (only those are its own).
    required = "requiredDuringSchedulingIgnoredDuringExecution"
    node_terms = {k: v for k, v in (affinity.pop("nodeAffinity", None) or {}).items() if k != required}
    if node_terms:
        affinity["nodeAffinity"] = node_terms
    if affinity:
        spec["affinity"] = affinity
    metadata: Obj = {
        "labels": {
            k: v for k, v in labels.items() if k not in (REVISION_HASH_LABEL, TEMPLATE_GENERATION_LABEL)
        }
    }
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {"metadata": metadata, "spec": spec}


def _is_daemon_toleration(toleration: Mapping[str, object]) -> bool:
    exact = {"key", "operator", "effect"} >= set(toleration)
    return exact and any(
        _toleration_identity(toleration) == (key, "Exists", "", effect) for key, effect in _DAEMON_TOLERATIONS
    )


def revision_hash(template: Mapping[str, Any]) -> str:
    """The controller-revision-hash of a pod template: FNV-1a (32 bit) of its canonical JSON, its
    decimal digits spelled in the safe alphabet, shaped as upstream's ComputeHash (whose value, a
    hash of the Go struct, no Python code can reproduce)."""
    digest = 0x811C9DC5
    for byte in json.dumps(template, sort_keys=True, separators=(",", ":")).encode():
        digest = ((digest ^ byte) * 0x01000193) & 0xFFFFFFFF
    return "".join(_SAFE_ALPHABET[ord(digit) % len(_SAFE_ALPHABET)] for digit in str(digest))


def revision_labels(daemonset: Obj) -> dict[str, str]:
    """The labels that mark a pod as made from `daemonset`'s current template."""
    generation = (daemonset["metadata"].get("annotations") or {}).get(TEMPLATE_GENERATION_ANNOTATION, "1")
    return {
        REVISION_HASH_LABEL: revision_hash(daemonset["spec"]["template"]),
        TEMPLATE_GENERATION_LABEL: str(generation),
    }


def daemon_status(daemonset: Obj, *, nodes: Iterable[str], pods: Iterable[Obj], now_s: float) -> Obj:
    """The status updateDaemonSetStatus writes for `daemonset`, whose pods are `pods` and which
    should run on `nodes`: per node its oldest pod counts (Ready: numberReady; Ready for
    spec.minReadySeconds: numberAvailable; of the current template: updatedNumberScheduled). A
    terminal pod being deleted counts for nothing. Zero counts upstream omits (omitempty) are left
    out: only the first four fields are always there."""
    by_node: dict[str, list[Obj]] = {}
    for pod in pods:
        if _terminal(pod) and pod["metadata"].get("deletionTimestamp"):
            continue
        by_node.setdefault(str((pod.get("spec") or {}).get("nodeName") or ""), []).append(pod)
    wanted = revision_labels(daemonset)
    min_ready_s = int((daemonset.get("spec") or {}).get("minReadySeconds") or 0)
    desired = current = ready = available = updated = 0
    for node in nodes:
        desired += 1
        if not by_node.get(node):
            continue
        current += 1
        oldest = min(by_node[node], key=_age_order)
        ready_since_s = _ready_since_s(oldest)
        if ready_since_s is not None:
            ready += 1
            if ready_since_s + min_ready_s <= now_s or min_ready_s == 0:
                available += 1
        labels = labels_of(oldest)
        if any(labels.get(key) == value for key, value in wanted.items()):
            updated += 1
    status: Obj = {
        "currentNumberScheduled": current,
        # Every node a pod of the daemon was seen on is the daemon's: none runs where it should not.
        "numberMisscheduled": 0,
        "desiredNumberScheduled": desired,
        "numberReady": ready,
    }
    optional = {
        "observedGeneration": int(daemonset["metadata"].get("generation") or 0),
        "updatedNumberScheduled": updated,
        "numberAvailable": available,
        "numberUnavailable": desired - available,
    }
    status.update({key: value for key, value in optional.items() if value})
    return status


class DaemonSetController(Reconciler):
    """Keeps one live pod of `daemon` on every node that had one, and its DaemonSet's status; keys
    are ("", node name) for a node's pods and `daemon.key` for the DaemonSet."""

    name = COMPONENT
    kinds = (kinds.POD, kinds.NODE)

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
        obj = event.object
        if event.kind == kinds.NODE:
            # A node registered again gets its pod back; one gone no longer counts as desired.
            if obj["metadata"]["name"] in self._templates and event.type != "MODIFIED":
                self.enqueue(("", str(obj["metadata"]["name"])))
                self.enqueue(self.daemon.key)
            return
        node = (obj.get("spec") or {}).get("nodeName")
        if not node or not self.daemon.owns(obj):
            return
        if event.type != "DELETED":
            self._learn(str(node), obj)
        self.enqueue(("", str(node)))
        self.enqueue(self.daemon.key)

    def all_keys(self) -> Iterable[Key]:
        for pod in self._pods():
            self._learn(str(pod["spec"]["nodeName"]), pod)
        node_keys = [("", node) for node in self.nodes]
        return [*node_keys, self.daemon.key] if node_keys else []

    def reconcile(self, key: Key) -> float | None:
        if key == self.daemon.key:
            return self._sync_daemonset()
        _, node = key
        if node not in self._templates:
            return None
        daemonset = self._daemonset()
        pods = self._pods(node)
        if not pods:
            self._create(node, daemonset)
            return None
        live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
        doomed, requeue_s = self._terminal_to_delete(node, live, daemonset)
        running = [p for p in live if _phase(p) not in ("Failed", "Succeeded")]
        doomed += sorted(running, key=_age_order)[1:]
        for pod in doomed:
            self._delete(pod, daemonset)
        return requeue_s

    # -- decisions --

    def _terminal_to_delete(
        self, node: str, pods: list[Obj], daemonset: Obj
    ) -> tuple[list[Obj], float | None]:
        doomed: list[Obj] = []
        requeue_s: float | None = None
        for pod in pods:
            pod_name = f"{self.daemon.namespace}/{pod['metadata']['name']}"
            if _phase(pod) == "Succeeded":
                message = f"Found succeeded daemon pod {pod_name} on node {node}, will try to delete it"
                self._event(daemonset, "Normal", "SucceededDaemonPod", message)
                doomed.append(pod)
            elif _phase(pod) == "Failed":
                now_s = self.ctx.clock()
                delay_s = self.backoff.delay_s(node, now_s)
                if delay_s is not None:
                    requeue_s = delay_s
                    continue
                self.backoff.step(node, now_s)
                message = f"Found failed daemon pod {pod_name} on node {node}, will try to kill it"
                self._event(daemonset, "Warning", "FailedDaemonPod", message)
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

    def _desired_nodes(self) -> list[str]:
        desired = []
        for node in self.nodes:
            try:
                self.ctx.store.get(kinds.NODE, node)
            except NotFound:
                continue
            desired.append(node)
        return desired

    # -- the DaemonSet object --

    def _daemonset(self) -> Obj:
        """The DaemonSet, made from the first node's pod template if it does not exist yet."""
        namespace, name = self.daemon.key
        try:
            return self.ctx.store.get(kinds.DAEMONSET, name, namespace=namespace)
        except NotFound:
            first = next(iter(self._templates.values()))
            template = pod_template(
                labels=first["labels"], annotations=first["annotations"], spec=first["spec"]
            )
            return self.ctx.store.create(kinds.DAEMONSET, self.daemon.manifest(template))

    def _sync_daemonset(self) -> float | None:
        if not self._templates:
            return None
        daemonset = self._daemonset()
        pods = [self._adopt(pod, daemonset) for pod in self._pods()]
        now_s = self.ctx.clock()
        status = daemon_status(daemonset, nodes=self._desired_nodes(), pods=pods, now_s=now_s)
        if status != daemonset.get("status"):
            namespace, name = self.daemon.key

            def write(obj: Obj) -> None:
                obj["status"] = status

            self.ctx.store.mutate(kinds.DAEMONSET, name, write, namespace=namespace, subresource="status")
        min_ready_s = int(daemonset["spec"].get("minReadySeconds") or 0)
        # As upstream: a resync after minReadySeconds, when ready pods are not available yet.
        if min_ready_s and status["numberReady"] != status.get("numberAvailable", 0):
            return float(min_ready_s)
        return None

    def _adopt(self, pod: Obj, daemonset: Obj) -> Obj:
        if controller_of(pod) is not None or pod["metadata"].get("deletionTimestamp"):
            return pod
        stamp = revision_labels(daemonset)

        def claim(obj: Obj) -> None:
            meta = obj["metadata"]
            meta["ownerReferences"] = [*(meta.get("ownerReferences") or ()), controller_ref(daemonset)]
            meta["labels"] = {**(meta.get("labels") or {}), **stamp}

        try:
            return self.ctx.store.mutate(
                kinds.POD, pod["metadata"]["name"], claim, namespace=self.daemon.namespace
            )
        except NotFound:
            return pod

    # -- writes --

    def _create(self, node: str, daemonset: Obj) -> None:
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
            "labels": {**template["labels"], **revision_labels(daemonset)},
            "ownerReferences": [controller_ref(daemonset)],
        }
        if template["annotations"]:
            metadata["annotations"] = dict(template["annotations"])
        pod: Obj = {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}
        created = self.ctx.store.create(kinds.POD, pod)
        self._event(daemonset, "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}")

    def _delete(self, pod: Obj, daemonset: Obj) -> None:
        name = pod["metadata"]["name"]
        try:
            self.ctx.store.delete(kinds.POD, name, namespace=self.daemon.namespace)
        except NotFound:
            return
        self._event(daemonset, "Normal", "SuccessfulDelete", f"Deleted pod: {name}")

    def _event(self, daemonset: Obj, type_: EventType, reason: str, message: str) -> None:
        self.recorder.event(object_ref(daemonset), type_, reason, message)

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


def _terminal(pod: Obj) -> bool:
    return _phase(pod) in ("Failed", "Succeeded")


def _ready_since_s(pod: Obj) -> float | None:
    """When the pod became Ready (its Ready condition's lastTransitionTime), None if not Ready."""
    ready = condition((pod.get("status") or {}).get("conditions"), "Ready")
    if ready is None or ready.get("status") != "True":
        return None
    since = ready.get("lastTransitionTime")
    return parse_rfc3339(since) if since else 0.0


def _age_order(pod: Obj) -> tuple[float, str]:
    created = pod["metadata"].get("creationTimestamp")
    return (parse_rfc3339(created) if created else 0.0, pod["metadata"]["name"])
