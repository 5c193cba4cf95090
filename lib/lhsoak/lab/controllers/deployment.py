"""The Deployment and ReplicaSet controllers (pkg/controller/deployment, pkg/controller/replicaset),
for the Deployments the lab's Longhorn install makes: the CSI sidecars, longhorn-driver-deployer and
longhorn-ui (lhsoak.lab.cluster).

Clients may only read Deployments and ReplicaSets (kinds.DEPLOYMENT, kinds.REPLICASET): the lab
creates the Deployments in its store, as Longhorn's manifest and its driver deployer do, and nothing
changes their spec afterwards, so there is one revision and never a rollout:

- A Deployment gets one ReplicaSet, `<deployment>-<pod-template-hash>` (the hash of its pod
  template, spelled as upstream's ComputeHash: daemonset.revision_hash), owned by it, with the
  template's labels plus `pod-template-hash` (in its selector and template too), the annotations
  deployment.kubernetes.io/revision "1", desired-replicas and max-replicas (replicas + maxSurge);
  the Deployment gets the revision annotation and the event ScalingReplicaSet.
- The ReplicaSet keeps `spec.replicas` active pods (not Failed or Succeeded, not being deleted:
  FilterActivePods). New ones are `<replicaset>-<5 random characters>` (generateName), owned by it,
  unscheduled — the scheduler places them, on workers only as the control plane's NoSchedule taint
  is not tolerated — with the not-ready/unreachable NoExecute tolerations the DefaultTolerationSeconds
  admission plugin adds (`profile.pod_toleration_s`). Surplus pods go unscheduled first, then not
  Ready, then newest (getPodsToDelete's ranking, reduced). Events SuccessfulCreate, SuccessfulDelete.
  So a pod failed by its node's graceful shutdown stays Failed (the pod GC, which the lab does not
  run, would take it much later) and a replacement is made at once; a pod on a lost node stays
  bound and not Ready (the node lifecycle controller marks it) until its node is back, or until the
  taint manager evicts it once its toleration ran out and a replacement is made.
- Status, recomputed after every change of its pods (`replica_set_status`, `deployment_status`):
  zero counts are left out, as omitempty does. The Deployment's conditions: Available True
  (MinimumReplicasAvailable) while at least replicas - maxUnavailable are available, else False
  (MinimumReplicasUnavailable); Progressing True with NewReplicaSetCreated, then ReplicaSetUpdated
  while pods come up, then NewReplicaSetAvailable once every replica is available — where it stays
  when pods are lost later, as upstream estimates no progress of a complete rollout. No progress
  deadline: ProgressDeadlineExceeded is not emulated.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Mapping
from typing import Any

from lhsoak.lab import kinds
from lhsoak.lab.controllers.daemonset import revision_hash
from lhsoak.lab.controllers.events import EventRecorder, EventType
from lhsoak.lab.controllers.job import TAINT_NOT_READY, TAINT_UNREACHABLE
from lhsoak.lab.controllers.meta import (
    Key,
    Obj,
    condition,
    controller_of,
    controller_ref,
    key_of,
    labels_of,
    object_ref,
    parse_rfc3339,
    rfc3339,
    uid_of,
)
from lhsoak.lab.controllers.reconciler import Context, Reconciler
from lhsoak.lab.kinds import Kind
from lhsoak.lab.store import AlreadyExists, NotFound, WatchEvent

COMPONENT = "deployment-controller"
REPLICASET_COMPONENT = "replicaset-controller"
POD_TEMPLATE_HASH_LABEL = "pod-template-hash"
"""apps.DefaultDeploymentUniqueLabelKey: the template hash in a ReplicaSet's name, selector and pods."""
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
DESIRED_REPLICAS_ANNOTATION = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS_ANNOTATION = "deployment.kubernetes.io/max-replicas"
DEFAULT_MAX_SURGE = "25%"
DEFAULT_MAX_UNAVAILABLE = "25%"


def replicas_of(obj: Mapping[str, Any]) -> int:
    """spec.replicas of a Deployment or ReplicaSet (the API defaults it to 1)."""
    replicas = (obj.get("spec") or {}).get("replicas")
    return 1 if replicas is None else int(replicas)


def _scaled(value: int | str, total: int, *, round_up: bool) -> int:
    """intstr.GetScaledValueFromIntOrPercent: an int as is, "N%" of `total` rounded up or down."""
    if isinstance(value, int):
        return value
    fraction = int(value.rstrip("%")) * total / 100
    return math.ceil(fraction) if round_up else math.floor(fraction)


def surge_and_unavailable(deployment: Mapping[str, Any]) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) of a RollingUpdate Deployment as ResolveFenceposts makes them
    absolute: surge rounded up, unavailability down, and 1 unavailable when both come out 0;
    maxUnavailable capped at spec.replicas (deploymentutil.MaxUnavailable)."""
    replicas = replicas_of(deployment)
    strategy = (deployment.get("spec") or {}).get("strategy") or {}
    if strategy.get("type", "RollingUpdate") != "RollingUpdate":
        return 0, 0
    rolling = strategy.get("rollingUpdate") or {}
    surge = _scaled(rolling.get("maxSurge", DEFAULT_MAX_SURGE), replicas, round_up=True)
    unavailable = _scaled(rolling.get("maxUnavailable", DEFAULT_MAX_UNAVAILABLE), replicas, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, min(unavailable, replicas)


def replica_set_manifest(deployment: Obj) -> Obj:
    """The ReplicaSet of a Deployment's current template (getNewReplicaSet, revision 1)."""
    spec = deployment["spec"]
    template = copy.deepcopy(spec["template"])
    template_hash = revision_hash(template)
    template.setdefault("metadata", {})
    template["metadata"]["labels"] = {
        **(template["metadata"].get("labels") or {}),
        POD_TEMPLATE_HASH_LABEL: template_hash,
    }
    selector = copy.deepcopy(spec["selector"])
    selector["matchLabels"] = {**(selector.get("matchLabels") or {}), POD_TEMPLATE_HASH_LABEL: template_hash}
    replicas = replicas_of(deployment)
    surge, _ = surge_and_unavailable(deployment)
    copied = {
        key: value
        for key, value in (deployment["metadata"].get("annotations") or {}).items()
        if not key.startswith("deployment.kubernetes.io/")
        and key != "kubectl.kubernetes.io/last-applied-configuration"
    }
    replica_set_spec: Obj = {"replicas": replicas, "selector": selector, "template": template}
    if spec.get("minReadySeconds"):
        replica_set_spec["minReadySeconds"] = spec["minReadySeconds"]
    return {
        "apiVersion": kinds.REPLICASET.api_version,
        "kind": kinds.REPLICASET.kind,
        "metadata": {
            "name": f"{deployment['metadata']['name']}-{template_hash}",
            "namespace": deployment["metadata"]["namespace"],
            "labels": dict(template["metadata"]["labels"]),
            "annotations": {
                **copied,
                REVISION_ANNOTATION: "1",
                DESIRED_REPLICAS_ANNOTATION: str(replicas),
                MAX_REPLICAS_ANNOTATION: str(replicas + surge),
            },
            "ownerReferences": [controller_ref(deployment)],
        },
        "spec": replica_set_spec,
    }


def default_tolerations(spec: Mapping[str, Any], *, seconds: int) -> list[Obj]:
    """The pod's tolerations plus what the DefaultTolerationSeconds admission plugin adds: not-ready
    and unreachable NoExecute for `seconds`, each unless the pod tolerates that taint already."""
    own = [dict(t) for t in spec.get("tolerations") or ()]
    present = {t.get("key") for t in own if t.get("effect") in (None, "", "NoExecute")}
    added = [
        {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}
        for key in (TAINT_NOT_READY, TAINT_UNREACHABLE)
        if key not in present
    ]
    return own + added


def _ready_since_s(pod: Obj) -> float | None:
    """When the pod became Ready (its Ready condition's lastTransitionTime), None if not Ready."""
    ready = condition((pod.get("status") or {}).get("conditions"), "Ready")
    if ready is None or ready.get("status") != "True":
        return None
    since = ready.get("lastTransitionTime")
    return parse_rfc3339(since) if since else 0.0


def _active(pod: Obj) -> bool:
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Failed", "Succeeded") and not pod["metadata"].get("deletionTimestamp")


def _omit_zeros(status: Obj, always: Iterable[str] = ()) -> Obj:
    kept = set(always)
    return {key: value for key, value in status.items() if value or key in kept}


def replica_set_status(replica_set: Obj, pods: Iterable[Obj], *, now_s: float) -> Obj:
    """The status the ReplicaSet controller writes (calculateStatus) for `pods`, its active ones:
    replicas, fullyLabeledReplicas (those with every template label), readyReplicas,
    availableReplicas (Ready for minReadySeconds), observedGeneration; only replicas when 0."""
    template_labels = ((replica_set["spec"].get("template") or {}).get("metadata") or {}).get("labels") or {}
    min_ready_s = int(replica_set["spec"].get("minReadySeconds") or 0)
    replicas = labelled = ready = available = 0
    for pod in pods:
        replicas += 1
        if labels_of(pod).items() >= template_labels.items():
            labelled += 1
        since_s = _ready_since_s(pod)
        if since_s is not None:
            ready += 1
            if min_ready_s == 0 or since_s + min_ready_s <= now_s:
                available += 1
    status = {
        "replicas": replicas,
        "fullyLabeledReplicas": labelled,
        "readyReplicas": ready,
        "availableReplicas": available,
        "observedGeneration": int(replica_set["metadata"].get("generation") or 0),
    }
    return _omit_zeros(status, always=("replicas",))


def deployment_status(deployment: Obj, replica_set: Obj, replica_set_status: Obj, *, now: str) -> Obj:
    """The status the Deployment controller writes (calculateStatus and syncRolloutStatus) with
    `replica_set`, its only ReplicaSet, in `replica_set_status`; `now` stamps changed conditions."""
    wanted = replicas_of(deployment)
    rs_name = replica_set["metadata"]["name"]
    replicas = int(replica_set_status.get("replicas") or 0)
    available = int(replica_set_status.get("availableReplicas") or 0)
    previous = deployment.get("status") or {}
    conditions = [dict(c) for c in previous.get("conditions") or ()]
    _, max_unavailable = surge_and_unavailable(deployment)
    if available >= wanted - max_unavailable:
        _set(
            conditions,
            "Available",
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
            now,
        )
    else:
        _set(
            conditions,
            "Available",
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
            now,
        )
    status: Obj = {
        "observedGeneration": int(deployment["metadata"].get("generation") or 0),
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": int(replica_set_status.get("readyReplicas") or 0),
        "availableReplicas": available,
        "unavailableReplicas": max(0, replicas_of(replica_set) - available),
    }
    _progress(conditions, previous, status, wanted=wanted, rs_name=rs_name, now=now)
    status["conditions"] = conditions
    return _omit_zeros(status)


def _progress(
    conditions: list[Obj], previous: Obj, status: Obj, *, wanted: int, rs_name: str, now: str
) -> None:
    """syncRolloutStatus with one ReplicaSet: created, progressing, then available for good."""
    current = condition(conditions, "Progressing")
    if current is None:
        _set(
            conditions,
            "Progressing",
            "True",
            "NewReplicaSetCreated",
            f'Created new replica set "{rs_name}"',
            now,
        )
        current = condition(conditions, "Progressing")
    assert current is not None
    if current.get("reason") == "NewReplicaSetAvailable" and status["replicas"] == status["updatedReplicas"]:
        return
    if (
        status["updatedReplicas"] == wanted
        and status["replicas"] == wanted
        and status["availableReplicas"] == wanted
    ):
        message = f'ReplicaSet "{rs_name}" has successfully progressed.'
        _set(conditions, "Progressing", "True", "NewReplicaSetAvailable", message, now)
    elif any(
        int(status[field]) > int(previous.get(field) or 0)
        for field in ("updatedReplicas", "readyReplicas", "availableReplicas")
    ):
        # A Progressing condition that is True keeps its lastTransitionTime; its update time moves.
        since = current["lastTransitionTime"] if current.get("status") == "True" else now
        conditions.remove(current)
        conditions.append(
            {
                "type": "Progressing",
                "status": "True",
                "lastUpdateTime": now,
                "lastTransitionTime": since,
                "reason": "ReplicaSetUpdated",
                "message": f'ReplicaSet "{rs_name}" is progressing.',
            }
        )


def _set(conditions: list[Obj], type_: str, status: str, reason: str, message: str, now: str) -> None:
    """SetDeploymentCondition: nothing changes when status and reason are the same; otherwise the
    condition is replaced (moved last), keeping lastTransitionTime when the status is the same."""
    current = condition(conditions, type_)
    if current is not None and current.get("status") == status and current.get("reason") == reason:
        return
    since = current["lastTransitionTime"] if current is not None and current.get("status") == status else now
    if current is not None:
        conditions.remove(current)
    conditions.append(
        {
            "type": type_,
            "status": status,
            "lastUpdateTime": now,
            "lastTransitionTime": since,
            "reason": reason,
            "message": message,
        }
    )


def _deletion_rank(pod: Obj) -> tuple[int, int, float]:
    """Sorts the pods to delete first: unscheduled, then not Ready, then newest."""
    created = pod["metadata"].get("creationTimestamp")
    return (
        1 if (pod.get("spec") or {}).get("nodeName") else 0,
        0 if _ready_since_s(pod) is None else 1,
        -(parse_rfc3339(created) if created else 0.0),
    )


class DeploymentController(Reconciler):
    """Keeps each Deployment's ReplicaSet, its pods and both statuses; keys are Deployments'."""

    name = COMPONENT
    kinds = (kinds.DEPLOYMENT, kinds.REPLICASET, kinds.POD)

    def __init__(self, ctx: Context, recorder: EventRecorder, replica_set_recorder: EventRecorder) -> None:
        super().__init__(ctx)
        self.recorder = recorder
        self.replica_set_recorder = replica_set_recorder
        # Hashing a template costs a pass over its JSON: once per Deployment spec, not per pod change.
        self._replica_set_names: dict[tuple[str, int], str] = {}

    def observe(self, event: WatchEvent) -> None:
        obj = event.object
        if event.kind == kinds.DEPLOYMENT:
            if event.type != "DELETED":
                self.enqueue(key_of(obj))
            return
        owner = controller_of(obj)
        if event.kind == kinds.REPLICASET:
            # Only this controller writes ReplicaSets: its own writes need no second look.
            if event.type == "DELETED" and owner is not None and owner.get("kind") == kinds.DEPLOYMENT.kind:
                self.enqueue((str(obj["metadata"]["namespace"]), str(owner["name"])))
            return
        if owner is None or owner.get("kind") != kinds.REPLICASET.kind:
            return
        template_hash = labels_of(obj).get(POD_TEMPLATE_HASH_LABEL)
        rs_name = str(owner["name"])
        if template_hash and rs_name.endswith(f"-{template_hash}"):
            deployment = rs_name.removesuffix(f"-{template_hash}")
            self.enqueue((str(obj["metadata"]["namespace"]), deployment))

    def all_keys(self) -> Iterable[Key]:
        items, _ = self.ctx.store.list(kinds.DEPLOYMENT)
        return [key_of(d) for d in items]

    def reconcile(self, key: Key) -> float | None:
        namespace, name = key
        try:
            deployment = self.ctx.store.get(kinds.DEPLOYMENT, name, namespace=namespace)
        except NotFound:
            return None
        replica_set = self._replica_set(deployment)
        active = [p for p in self._pods(replica_set) if _active(p)]
        active = self._scale(replica_set, active)
        now_s = self.ctx.clock()
        rs_status = replica_set_status(replica_set, active, now_s=now_s)
        self._write_status(kinds.REPLICASET, replica_set, rs_status)
        status = deployment_status(deployment, replica_set, rs_status, now=rfc3339(now_s))
        self._write_status(kinds.DEPLOYMENT, deployment, status)
        min_ready_s = int(replica_set["spec"].get("minReadySeconds") or 0)
        # As upstream: a resync after minReadySeconds while ready pods are not available yet.
        if min_ready_s and rs_status.get("readyReplicas", 0) != rs_status.get("availableReplicas", 0):
            return float(min_ready_s)
        return None

    # -- the ReplicaSet --

    def _replica_set(self, deployment: Obj) -> Obj:
        """The Deployment's ReplicaSet, made if it does not exist yet."""
        namespace = str(deployment["metadata"]["namespace"])
        version = (uid_of(deployment), int(deployment["metadata"].get("generation") or 0))
        known = self._replica_set_names.get(version)
        if known is not None:
            try:
                return self.ctx.store.get(kinds.REPLICASET, known, namespace=namespace)
            except NotFound:
                pass
        wanted = replica_set_manifest(deployment)
        name = str(wanted["metadata"]["name"])
        self._replica_set_names[version] = name
        try:
            return self.ctx.store.get(kinds.REPLICASET, name, namespace=namespace)
        except NotFound:
            pass
        try:
            created = self.ctx.store.create(kinds.REPLICASET, wanted)
        except AlreadyExists:
            return self.ctx.store.get(kinds.REPLICASET, name, namespace=namespace)
        replicas = replicas_of(created)
        self._annotate_revision(deployment)
        message = f"Scaled up replica set {name} from 0 to {replicas}"
        self._event(self.recorder, deployment, "Normal", "ScalingReplicaSet", message)
        return created

    def _annotate_revision(self, deployment: Obj) -> None:
        def annotate(obj: Obj) -> None:
            meta = obj["metadata"]
            meta["annotations"] = {**(meta.get("annotations") or {}), REVISION_ANNOTATION: "1"}

        namespace, name = key_of(deployment)
        deployment.update(self.ctx.store.mutate(kinds.DEPLOYMENT, name, annotate, namespace=namespace))

    def _scale(self, replica_set: Obj, active: list[Obj]) -> list[Obj]:
        """`active` brought to spec.replicas pods: new ones made, surplus deleted."""
        missing = replicas_of(replica_set) - len(active)
        if missing >= 0:
            return active + [self._create_pod(replica_set) for _ in range(missing)]
        doomed = sorted(active, key=_deletion_rank)[:-missing]
        for pod in doomed:
            self._delete_pod(replica_set, pod)
        return [p for p in active if p not in doomed]

    # -- writes --

    def _create_pod(self, replica_set: Obj) -> Obj:
        template = replica_set["spec"]["template"]
        spec = copy.deepcopy(template["spec"])
        spec["tolerations"] = default_tolerations(spec, seconds=math.ceil(self.ctx.profile.pod_toleration_s))
        metadata: Obj = {
            "generateName": f"{replica_set['metadata']['name']}-",
            "namespace": replica_set["metadata"]["namespace"],
            "labels": dict(template["metadata"].get("labels") or {}),
            "ownerReferences": [controller_ref(replica_set)],
        }
        if template["metadata"].get("annotations"):
            metadata["annotations"] = dict(template["metadata"]["annotations"])
        pod: Obj = {
            "apiVersion": kinds.POD.api_version,
            "kind": kinds.POD.kind,
            "metadata": metadata,
            "spec": spec,
        }
        created = self.ctx.store.create(kinds.POD, pod)
        message = f"Created pod: {created['metadata']['name']}"
        self._event(self.replica_set_recorder, replica_set, "Normal", "SuccessfulCreate", message)
        return created

    def _delete_pod(self, replica_set: Obj, pod: Obj) -> None:
        namespace, name = key_of(pod)
        try:
            self.ctx.store.delete(kinds.POD, name, namespace=namespace)
        except NotFound:
            return
        self._event(
            self.replica_set_recorder, replica_set, "Normal", "SuccessfulDelete", f"Deleted pod: {name}"
        )

    def _write_status(self, kind: Kind, obj: Obj, status: Obj) -> None:
        if obj.get("status") == status:
            return
        namespace, name = key_of(obj)

        def write(current: Obj) -> None:
            current["status"] = status

        try:
            obj.update(self.ctx.store.mutate(kind, name, write, namespace=namespace, subresource="status"))
        except NotFound:
            return

    def _event(self, recorder: EventRecorder, obj: Obj, type_: EventType, reason: str, message: str) -> None:
        recorder.event(object_ref(obj), type_, reason, message)

    def _pods(self, replica_set: Obj) -> list[Obj]:
        selector = replica_set["spec"]["selector"].get("matchLabels") or {}
        items, _ = self.ctx.store.list(
            kinds.POD,
            namespace=replica_set["metadata"]["namespace"],
            label_selector=",".join(f"{key}={value}" for key, value in sorted(selector.items())),
        )
        uid = replica_set["metadata"]["uid"]
        return [p for p in items if (controller_of(p) or {}).get("uid") == uid]
