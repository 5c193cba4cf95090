"""The Kubernetes Job controller (pkg/controller/job), for the non-indexed Jobs CronJobs make.

- The API server's defaults for a new Job: completions/parallelism 1, backoffLimit 6, Job labels
  from the pod template; on first sight the controller adds what the API server would have put at
  creation (the lab store has no Job strategy): `spec.selector` on
  `batch.kubernetes.io/controller-uid` and the controller-uid/job-name labels on the template.
- While the Job is unfinished and has fewer active pods than parallelism, a pod is created from the
  template (SuccessfulCreate), after a backoff that doubles with each failure (10 s upstream).
  Active pods are those not Succeeded/Failed, Pending ones included.
- Failures: pods that reached Failed, and pods deleted before they succeeded (lost, evicted or
  deleted by hand, as upstream counts them with its tracking finalizer). With restartPolicy
  OnFailure the container restarts of active pods count too (pastBackoffLimitOnFailure):
  restarts >= backoffLimit fails the Job. failed > backoffLimit fails the Job.
- Finished: `Complete` (with `SuccessCriteriaMet`, as 1.31+) and `completionTime` once a pod
  succeeded; `Failed` (with `FailureTarget`), reason BackoffLimitExceeded, active pods deleted.
  Events Completed / BackoffLimitExceeded.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from typing import Literal

from lhsoak.lab import kinds
from lhsoak.lab.controllers.events import EventRecorder
from lhsoak.lab.controllers.meta import (
    Key,
    Obj,
    condition,
    condition_true,
    controller_of,
    controller_ref,
    key_of,
    object_ref,
    rfc3339,
    uid_of,
)
from lhsoak.lab.controllers.reconciler import Context, Reconciler
from lhsoak.lab.store import NotFound, WatchEvent

LABEL_CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
LABEL_JOB_NAME = "batch.kubernetes.io/job-name"
LEGACY_LABEL_CONTROLLER_UID = "controller-uid"
LEGACY_LABEL_JOB_NAME = "job-name"
DEFAULT_BACKOFF_LIMIT = 6
TAINT_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_UNREACHABLE = "node.kubernetes.io/unreachable"

FinishedCondition = Literal["Complete", "Failed", ""]


def job_finished(job: Obj) -> tuple[bool, FinishedCondition]:
    """(finished, "Complete" | "Failed") from the Job's conditions (IsJobFinished)."""
    for cond in (job.get("status") or {}).get("conditions") or ():
        if cond.get("status") == "True" and cond.get("type") == "Complete":
            return True, "Complete"
        if cond.get("status") == "True" and cond.get("type") == "Failed":
            return True, "Failed"
    return False, ""


def default_job(job: Obj) -> Obj:
    """`job` with the defaults the API server fills in on create (SetDefaults_Job)."""
    spec = job.setdefault("spec", {})
    template = spec.setdefault("template", {})
    template_labels = (template.get("metadata") or {}).get("labels") or {}
    if not job["metadata"].get("labels") and template_labels:
        job["metadata"]["labels"] = dict(template_labels)
    spec.setdefault("completions", 1)
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", DEFAULT_BACKOFF_LIMIT)
    spec.setdefault("completionMode", "NonIndexed")
    spec.setdefault("suspend", False)
    spec.setdefault("manualSelector", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    return job


def pod_failed(pod: Obj) -> bool:
    """True for a Failed pod, or one being deleted before it succeeded (counted failed upstream)."""
    phase = (pod.get("status") or {}).get("phase")
    if phase == "Failed":
        return True
    return bool(pod["metadata"].get("deletionTimestamp")) and phase != "Succeeded"


class JobController(Reconciler):
    """Runs each Job's pods to completion or failure, as kube-controller-manager's job-controller."""

    name = "job-controller"
    kinds = (kinds.JOB, kinds.POD)

    def __init__(self, ctx: Context, recorder: EventRecorder) -> None:
        super().__init__(ctx)
        self.recorder = recorder
        # What upstream keeps with its pod tracking finalizer: pods already counted, per Job uid.
        self._failed: dict[str, set[str]] = {}
        self._succeeded: dict[str, set[str]] = {}
        self._last_failure_s: dict[str, float] = {}

    def observe(self, event: WatchEvent) -> None:
        obj = event.object
        if event.kind == kinds.JOB:
            if event.type == "DELETED":
                self._forget(uid_of(obj))
            else:
                self.enqueue(key_of(obj))
            return
        ref = controller_of(obj)
        if ref is None or ref.get("kind") != "Job":
            return
        if event.type == "DELETED":
            self._count_gone_pod(str(ref.get("uid", "")), obj)
        self.enqueue((str(obj["metadata"].get("namespace") or ""), str(ref["name"])))

    def all_keys(self) -> Iterable[Key]:
        items, _ = self.ctx.store.list(kinds.JOB)
        return [key_of(j) for j in items]

    def reconcile(self, key: Key) -> float | None:
        namespace, name = key
        try:
            job = self.ctx.store.get(kinds.JOB, name, namespace=namespace)
        except NotFound:
            return None
        if not (job.get("spec") or {}).get("selector"):
            self._generate_selector(job)
            return None
        pods = self._pods_of(job)
        finished, _ = job_finished(job)
        if finished:
            return None
        return self._sync(job, pods)

    # -- the sync --

    def _sync(self, job: Obj, pods: list[Obj]) -> float | None:
        now_s = self.ctx.clock()
        uid = uid_of(job)
        spec = job["spec"]
        status = copy.deepcopy(job.get("status") or {})
        status.setdefault("startTime", rfc3339(now_s))
        failed = self._failed.setdefault(uid, set())
        succeeded = self._succeeded.setdefault(uid, set())
        for pod in pods:
            phase = (pod.get("status") or {}).get("phase")
            if pod_failed(pod) and uid_of(pod) not in failed:
                failed.add(uid_of(pod))
                self._last_failure_s[uid] = now_s
            elif phase == "Succeeded":
                succeeded.add(uid_of(pod))
        active = [p for p in pods if not _terminal(p)]
        requeue_s: float | None = None
        backoff_limit = int(spec.get("backoffLimit", DEFAULT_BACKOFF_LIMIT))
        if len(succeeded) >= int(spec.get("completions") or 1):
            self._complete(job, status, now_s)
        elif len(failed) > backoff_limit or _past_backoff_limit_on_failure(job, active):
            self._fail(job, status, active, now_s)
            active = []
        elif len(active) < int(spec.get("parallelism", 1)):
            delay_s = self._backoff_remaining(uid, len(failed), now_s)
            if delay_s > 0:
                requeue_s = delay_s
            else:
                created = self._create_pod(job)
                if created is not None:
                    active.append(created)
        status["active"] = len(active)
        status["ready"] = sum(1 for p in active if condition_true(p, "Ready"))
        status["failed"] = len(failed)
        status["succeeded"] = len(succeeded)
        status["terminating"] = 0
        status["uncountedTerminatedPods"] = {}
        for field in ("active", "failed", "succeeded"):
            if status[field] == 0:
                del status[field]
        if status != (job.get("status") or {}):
            self._write_status(job, status)
        return requeue_s

    def _complete(self, job: Obj, status: Obj, now_s: float) -> None:
        conditions = status.setdefault("conditions", [])
        for type_ in ("SuccessCriteriaMet", "Complete"):
            _add_condition(
                conditions,
                type_,
                now_s,
                reason="CompletionsReached",
                message="Reached expected number of succeeded pods",
            )
        status["completionTime"] = rfc3339(now_s)
        self.recorder.event(object_ref(job), "Normal", "Completed", "Job completed")

    def _fail(self, job: Obj, status: Obj, active: list[Obj], now_s: float) -> None:
        for pod in active:
            self._delete_pod(job, pod)
        conditions = status.setdefault("conditions", [])
        message = "Job has reached the specified backoff limit"
        for type_ in ("FailureTarget", "Failed"):
            _add_condition(conditions, type_, now_s, reason="BackoffLimitExceeded", message=message)
        self.recorder.event(object_ref(job), "Warning", "BackoffLimitExceeded", message)

    def _backoff_remaining(self, job_uid: str, failures: int, now_s: float) -> float:
        if failures == 0:
            return 0.0
        profile = self.ctx.profile
        backoff_s = min(profile.job_backoff_s * 2.0 ** (failures - 1), profile.job_backoff_max_s)
        last = self._last_failure_s.get(job_uid, now_s)
        return last + backoff_s - now_s

    # -- pods --

    def _pods_of(self, job: Obj) -> list[Obj]:
        items, _ = self.ctx.store.list(
            kinds.POD,
            namespace=job["metadata"]["namespace"],
            label_selector=f"{LABEL_CONTROLLER_UID}={uid_of(job)}",
        )
        return [p for p in items if (controller_of(p) or {}).get("uid") == uid_of(job)]

    def _create_pod(self, job: Obj) -> Obj | None:
        template = job["spec"].get("template") or {}
        meta = template.get("metadata") or {}
        spec = copy.deepcopy(template.get("spec") or {})
        spec.setdefault("schedulerName", "default-scheduler")
        spec.setdefault("enableServiceLinks", True)
        spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        spec["tolerations"] = [*(spec.get("tolerations") or []), *self._default_tolerations(spec)]
        pod: Obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "generateName": f"{job['metadata']['name']}-",
                "namespace": job["metadata"]["namespace"],
                "labels": dict(meta.get("labels") or {}),
                "ownerReferences": [controller_ref(job)],
            },
            "spec": spec,
        }
        if meta.get("annotations"):
            pod["metadata"]["annotations"] = dict(meta["annotations"])
        try:
            created = self.ctx.store.create(kinds.POD, pod)
        except NotFound as exc:
            self.recorder.event(object_ref(job), "Warning", "FailedCreate", f"Error creating: {exc.message}")
            return None
        self.recorder.event(
            object_ref(job), "Normal", "SuccessfulCreate", f"Created pod: {created['metadata']['name']}"
        )
        return created

    def _default_tolerations(self, spec: Obj) -> list[Obj]:
        # The DefaultTolerationSeconds admission plugin: tolerate not-ready/unreachable for a while.
        seconds = math.ceil(self.ctx.profile.pod_toleration_s)
        present = {t.get("key") for t in spec.get("tolerations") or () if t.get("effect") == "NoExecute"}
        return [
            {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": seconds}
            for key in (TAINT_NOT_READY, TAINT_UNREACHABLE)
            if key not in present
        ]

    def _delete_pod(self, job: Obj, pod: Obj) -> None:
        try:
            self.ctx.store.delete(kinds.POD, pod["metadata"]["name"], namespace=pod["metadata"]["namespace"])
        except NotFound:
            return
        self.recorder.event(
            object_ref(job), "Normal", "SuccessfulDelete", f"Deleted pod: {pod['metadata']['name']}"
        )

    def _count_gone_pod(self, job_uid: str, pod: Obj) -> None:
        phase = (pod.get("status") or {}).get("phase")
        if phase == "Succeeded":
            self._succeeded.setdefault(job_uid, set()).add(uid_of(pod))
        elif uid_of(pod) not in self._failed.setdefault(job_uid, set()):
            self._failed[job_uid].add(uid_of(pod))
            self._last_failure_s[job_uid] = self.ctx.clock()

    def _generate_selector(self, job: Obj) -> None:
        uid = uid_of(job)
        name = job["metadata"]["name"]
        added = {
            LABEL_CONTROLLER_UID: uid,
            LABEL_JOB_NAME: name,
            LEGACY_LABEL_CONTROLLER_UID: uid,
            LEGACY_LABEL_JOB_NAME: name,
        }

        def change(obj: Obj) -> None:
            spec = obj.setdefault("spec", {})
            spec["selector"] = {"matchLabels": {LABEL_CONTROLLER_UID: uid}}
            template_meta = spec.setdefault("template", {}).setdefault("metadata", {})
            template_meta["labels"] = {**(template_meta.get("labels") or {}), **added}
            obj["metadata"]["labels"] = {**(obj["metadata"].get("labels") or {}), **added}

        self.ctx.store.mutate(kinds.JOB, name, change, namespace=job["metadata"]["namespace"])

    def _write_status(self, job: Obj, status: Obj) -> None:
        def change(obj: Obj) -> None:
            obj["status"] = status

        try:
            self.ctx.store.mutate(
                kinds.JOB,
                job["metadata"]["name"],
                change,
                namespace=job["metadata"]["namespace"],
                subresource="status",
            )
        except NotFound:
            return

    def _forget(self, job_uid: str) -> None:
        self._failed.pop(job_uid, None)
        self._succeeded.pop(job_uid, None)
        self._last_failure_s.pop(job_uid, None)


def _terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed") or bool(
        pod["metadata"].get("deletionTimestamp")
    )


def _past_backoff_limit_on_failure(job: Obj, active: list[Obj]) -> bool:
    spec = job["spec"]
    if ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy") != "OnFailure":
        return False
    restarts = sum(
        int(status.get("restartCount", 0))
        for pod in active
        for status in [
            *((pod.get("status") or {}).get("initContainerStatuses") or []),
            *((pod.get("status") or {}).get("containerStatuses") or []),
        ]
    )
    limit = int(spec.get("backoffLimit", DEFAULT_BACKOFF_LIMIT))
    return restarts > 0 if limit == 0 else restarts >= limit


def _add_condition(conditions: list[Obj], type_: str, now_s: float, *, reason: str, message: str) -> None:
    if condition(conditions, type_) is not None:
        return
    now = rfc3339(now_s)
    conditions.append(
        {
            "type": type_,
            "status": "True",
            "lastProbeTime": now,
            "lastTransitionTime": now,
            "reason": reason,
            "message": message,
        }
    )
