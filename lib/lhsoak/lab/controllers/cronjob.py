"""The Kubernetes CronJob controller (pkg/controller/cronjob/cronjob_controllerv2.go and utils.go).

Per CronJob, on every change of it or of a Job it controls, and when the next tick is due:

- finished Jobs leave `status.active` (event SawCompletedJob); `status.lastSuccessfulTime` follows
  the latest completionTime; active entries whose Job is gone are dropped (MissingJob); an unfinished
  Job it controls but does not list is reported (UnexpectedJob);
- finished Jobs beyond `successfulJobsHistoryLimit` / `failedJobsHistoryLimit` are deleted, oldest
  start first (SuccessfulDelete);
- the most recent unmet tick since `status.lastScheduleTime` (or the creation time) is the only one
  started, however many were missed (more than 100 missed: a TooManyMissedTimes warning);
  with `startingDeadlineSeconds`, a tick older than the deadline is skipped (MissSchedule);
- Forbid with a non-empty `status.active` starts nothing and says so (JobAlreadyActive) — the
  event that repeats on every tick while a job is stuck; Replace deletes the active Jobs first;
- a Job `<cronjob>-<scheduled time>` is created from the template, annotated
  `batch.kubernetes.io/cronjob-scheduled-timestamp` (SuccessfulCreate), added to `status.active`,
  and `status.lastScheduleTime` is set to its tick;
- the CronJob is looked at again 100 ms after its next tick.

See cron.py for the lab's seconds field and the Job name suffix it implies.
"""

from __future__ import annotations

import copy
import email.utils
from collections.abc import Iterable
from typing import Literal

from lhsoak.lab import kinds
from lhsoak.lab.controllers import cron
from lhsoak.lab.controllers.events import EventRecorder
from lhsoak.lab.controllers.job import default_job, job_finished
from lhsoak.lab.controllers.meta import (
    Key,
    Obj,
    controller_of,
    controller_ref,
    key_of,
    object_ref,
    parse_rfc3339,
    rfc3339,
    uid_of,
)
from lhsoak.lab.controllers.reconciler import Context, Reconciler
from lhsoak.lab.store import AlreadyExists, Conflict, NotFound, WatchEvent

SCHEDULED_TIMESTAMP_ANNOTATION = "batch.kubernetes.io/cronjob-scheduled-timestamp"
NEXT_SCHEDULE_DELTA_S = 0.1
_TOO_MANY_MISSED = 100

Missed = Literal["none", "few", "many"]


class CronJobController(Reconciler):
    """Starts Jobs for CronJobs on their schedule, as kube-controller-manager's cronjob-controller."""

    name = "cronjob-controller"
    kinds = (kinds.CRONJOB, kinds.JOB)

    def __init__(self, ctx: Context, recorder: EventRecorder) -> None:
        super().__init__(ctx)
        self.recorder = recorder

    def observe(self, event: WatchEvent) -> None:
        if event.kind == kinds.CRONJOB:
            if event.type != "DELETED":
                self.enqueue(key_of(event.object))
            return
        ref = controller_of(event.object)
        if ref is not None and ref.get("kind") == "CronJob":
            self.enqueue((str(event.object["metadata"].get("namespace") or ""), str(ref["name"])))

    def all_keys(self) -> Iterable[Key]:
        items, _ = self.ctx.store.list(kinds.CRONJOB)
        return [key_of(cj) for cj in items]

    def reconcile(self, key: Key) -> float | None:
        namespace, name = key
        try:
            cronjob = self.ctx.store.get(kinds.CRONJOB, name, namespace=namespace)
        except NotFound:
            return None
        jobs = self._jobs_of(cronjob)
        status_before = copy.deepcopy(cronjob.get("status") or {})
        cronjob.setdefault("status", {})
        self._cleanup_finished_jobs(cronjob, jobs)
        requeue_s = self._sync(cronjob, jobs)
        if cronjob["status"] != status_before:
            try:
                self.ctx.store.update(kinds.CRONJOB, cronjob, subresource="status")
            except Conflict:
                return 0.0
            except NotFound:
                return None
        return requeue_s

    def _jobs_of(self, cronjob: Obj) -> list[Obj]:
        # As upstream: every Job whose controller reference names this CronJob, labels or not.
        items, _ = self.ctx.store.list(kinds.JOB, namespace=cronjob["metadata"]["namespace"])
        name = cronjob["metadata"]["name"]
        return [j for j in items if (controller_of(j) or {}).get("name") == name]

    # -- syncCronJob --

    def _sync(self, cronjob: Obj, jobs: list[Obj]) -> float | None:
        now_s = self.ctx.clock()
        self._reconcile_active(cronjob, jobs)
        spec = cronjob.get("spec") or {}
        if cronjob["metadata"].get("deletionTimestamp") or spec.get("suspend"):
            return None
        try:
            schedule = cron.parse(spec.get("schedule", ""))
        except cron.ScheduleError as exc:
            self._event(
                cronjob,
                "Warning",
                "UnparseableSchedule",
                f"unparseable schedule: {spec.get('schedule', '')!r} : {exc}",
            )
            return None
        try:
            scheduled_s = self._next_schedule_time(cronjob, now_s, schedule)
        except cron.ScheduleError as exc:
            self._event(
                cronjob, "Warning", "InvalidSchedule", f"invalid schedule: {schedule.expression} : {exc}"
            )
            return None
        next_s = next_schedule_delay(cronjob, now_s, schedule)
        if scheduled_s is None:
            return next_s
        deadline = spec.get("startingDeadlineSeconds")
        if deadline is not None and scheduled_s + float(deadline) < now_s:
            self._event(
                cronjob,
                "Warning",
                "MissSchedule",
                f"Missed scheduled time to start a job: {_rfc1123z(scheduled_s)}",
            )
            return next_s
        job_name = job_name_for(cronjob, scheduled_s, schedule)
        active = cronjob["status"].get("active") or []
        last = cronjob["status"].get("lastScheduleTime")
        if any(ref.get("name") == job_name for ref in active) or (
            last is not None and parse_rfc3339(last) == scheduled_s
        ):
            return next_s
        policy = spec.get("concurrencyPolicy", "Allow")
        if policy == "Forbid" and active:
            self._event(
                cronjob,
                "Normal",
                "JobAlreadyActive",
                "Not starting job because prior execution is running and concurrency policy is Forbid",
            )
            return next_s
        if policy == "Replace":
            for ref in list(active):
                self._delete_job(cronjob, str(ref["name"]), str(ref.get("uid", "")))
        created = self._create_job(cronjob, job_name, scheduled_s)
        if created is None:
            return None
        cronjob["status"].setdefault("active", []).append(object_ref(created))
        cronjob["status"]["lastScheduleTime"] = rfc3339(scheduled_s)
        return next_s

    def _reconcile_active(self, cronjob: Obj, jobs: list[Obj]) -> None:
        status = cronjob["status"]
        children = {uid_of(j) for j in jobs}
        for job in jobs:
            listed = _in_active(status, uid_of(job))
            finished, condition = job_finished(job)
            if not listed and not finished:
                self._event(
                    cronjob,
                    "Warning",
                    "UnexpectedJob",
                    f"Saw a job that the controller did not create or forgot: {job['metadata']['name']}",
                )
            elif finished:
                if listed:
                    _remove_active(status, uid_of(job))
                    self._event(
                        cronjob,
                        "Normal",
                        "SawCompletedJob",
                        f"Saw completed job: {job['metadata']['name']}, condition: {condition}",
                    )
                completion = (job.get("status") or {}).get("completionTime")
                if condition == "Complete" and completion:
                    last = status.get("lastSuccessfulTime")
                    if last is None or parse_rfc3339(completion) > parse_rfc3339(last):
                        status["lastSuccessfulTime"] = completion
        for ref in list(status.get("active") or []):
            if ref.get("uid") in children:
                continue
            try:
                self.ctx.store.get(kinds.JOB, str(ref["name"]), namespace=str(ref.get("namespace")))
            except NotFound:
                self._event(cronjob, "Normal", "MissingJob", f"Active job went missing: {ref['name']}")
                _remove_active(status, str(ref.get("uid", "")))
        if "active" in status and not status["active"]:
            del status["active"]

    def _next_schedule_time(self, cronjob: Obj, now_s: float, schedule: cron.Schedule) -> float | None:
        _, most_recent, missed = most_recent_schedule_time(
            cronjob, now_s, schedule, include_starting_deadline=True
        )
        if most_recent is None or most_recent > now_s:
            return None
        if missed == "many":
            self._event(
                cronjob,
                "Warning",
                "TooManyMissedTimes",
                "too many missed start times. Set or decrease .spec.startingDeadlineSeconds or check "
                "clock skew",
            )
        return most_recent

    def _create_job(self, cronjob: Obj, job_name: str, scheduled_s: float) -> Obj | None:
        job = job_from_template(cronjob, job_name, scheduled_s)
        namespace = cronjob["metadata"]["namespace"]
        try:
            created = self.ctx.store.create(kinds.JOB, job)
        except AlreadyExists:
            # Created by an earlier sync whose status update was lost: adopt it if it is ours.
            existing = self.ctx.store.get(kinds.JOB, job_name, namespace=namespace)
            ref = controller_of(existing)
            if ref is None or ref.get("uid") != uid_of(cronjob):
                return None
            if _in_active(cronjob["status"], uid_of(existing)):
                return None
            return existing
        except NotFound as exc:
            self._event(cronjob, "Warning", "FailedCreate", f"Error creating job: {exc.message}")
            return None
        self._event(cronjob, "Normal", "SuccessfulCreate", f"Created job {job_name}")
        return created

    # -- cleanupFinishedJobs --

    def _cleanup_finished_jobs(self, cronjob: Obj, jobs: list[Obj]) -> None:
        spec = cronjob.get("spec") or {}
        successful_limit = spec.get("successfulJobsHistoryLimit")
        failed_limit = spec.get("failedJobsHistoryLimit")
        if successful_limit is None and failed_limit is None:
            return
        successful = [j for j in jobs if job_finished(j) == (True, "Complete")]
        failed = [j for j in jobs if job_finished(j) == (True, "Failed")]
        for limit, finished in ((successful_limit, successful), (failed_limit, failed)):
            if limit is None or len(finished) <= int(limit):
                continue
            finished.sort(key=_start_time_order)
            for job in finished[: len(finished) - int(limit)]:
                self._delete_job(cronjob, job["metadata"]["name"], uid_of(job))
        jobs[:] = [j for j in jobs if self._exists(j)]

    def _delete_job(self, cronjob: Obj, name: str, uid: str) -> None:
        namespace = cronjob["metadata"]["namespace"]
        try:
            self.ctx.store.delete(kinds.JOB, name, namespace=namespace, propagation="Background")
        except NotFound as exc:
            self._event(cronjob, "Warning", "FailedDelete", f"Deleted job: {exc.message}")
            return
        _remove_active(cronjob["status"], uid)
        self._event(cronjob, "Normal", "SuccessfulDelete", f"Deleted job {name}")

    def _exists(self, job: Obj) -> bool:
        namespace, name = key_of(job)
        try:
            self.ctx.store.get(kinds.JOB, name, namespace=namespace)
        except NotFound:
            return False
        return True

    def _event(self, cronjob: Obj, type_: Literal["Normal", "Warning"], reason: str, message: str) -> None:
        self.recorder.event(object_ref(cronjob), type_, reason, message)


# --- utils.go ---------------------------------------------------------------------------------------


def most_recent_schedule_time(
    cronjob: Obj, now_s: float, schedule: cron.Schedule, *, include_starting_deadline: bool
) -> tuple[float, float | None, Missed]:
    """(earliest time considered, most recent tick <= now or None, how many were missed).

    As upstream: ticks are counted from status.lastScheduleTime, else the creation time; the count
    of missed ticks is estimated from the interval between the next two ticks.
    """
    status = cronjob.get("status") or {}
    last = status.get("lastScheduleTime")
    earliest = parse_rfc3339(last or cronjob["metadata"]["creationTimestamp"])
    deadline = (cronjob.get("spec") or {}).get("startingDeadlineSeconds")
    if include_starting_deadline and deadline is not None:
        earliest = max(earliest, now_s - float(deadline))
    t1 = schedule.next_after(earliest)
    t2 = schedule.next_after(t1)
    if now_s < t1:
        return earliest, None, "none"
    if now_s < t2:
        return earliest, t1, "none"
    between = round(t2 - t1)
    if between < 1:
        raise cron.ScheduleError("time difference between two schedules is less than 1 second")
    missed_count = int(now_s - t1) // between + 1
    most_recent: float | None = None
    tick = schedule.next_after(t1 + (missed_count - 2) * between)
    while tick <= now_s:
        most_recent = tick
        tick = schedule.next_after(tick)
    missed: Missed = "many" if missed_count > _TOO_MANY_MISSED else "few"
    return earliest, most_recent, missed


def next_schedule_delay(cronjob: Obj, now_s: float, schedule: cron.Schedule) -> float:
    """Seconds until 100 ms after the next tick (nextScheduleTimeDuration)."""
    try:
        earliest, most_recent, missed = most_recent_schedule_time(
            cronjob, now_s, schedule, include_starting_deadline=False
        )
    except cron.ScheduleError:
        earliest, most_recent, missed = now_s, now_s, "none"
    if most_recent is None:
        most_recent = earliest if missed == "none" else now_s
    return schedule.next_after(most_recent) + NEXT_SCHEDULE_DELTA_S - now_s


def job_name_for(cronjob: Obj, scheduled_s: float, schedule: cron.Schedule) -> str:
    """`<cronjob>-<suffix>` (getJobName; see cron.py for the suffix of a seconds schedule)."""
    return f"{cronjob['metadata']['name']}-{schedule.job_suffix(scheduled_s)}"


def job_from_template(cronjob: Obj, job_name: str, scheduled_s: float) -> Obj:
    """The Job for one tick (getJobFromTemplate2), with the defaults the API server fills in."""
    template = (cronjob.get("spec") or {}).get("jobTemplate") or {}
    template_meta = template.get("metadata") or {}
    annotations = dict(template_meta.get("annotations") or {})
    annotations[SCHEDULED_TIMESTAMP_ANNOTATION] = rfc3339(scheduled_s)
    metadata: Obj = {
        "name": job_name,
        "namespace": cronjob["metadata"]["namespace"],
        "annotations": annotations,
        "ownerReferences": [controller_ref(cronjob)],
    }
    labels = dict(template_meta.get("labels") or {})
    if labels:
        metadata["labels"] = labels
    job: Obj = {
        "apiVersion": kinds.JOB.api_version,
        "kind": kinds.JOB.kind,
        "metadata": metadata,
        "spec": copy.deepcopy(template.get("spec") or {}),
    }
    return default_job(job)


def _in_active(status: Obj, uid: str) -> bool:
    return any(ref.get("uid") == uid for ref in status.get("active") or ())


def _remove_active(status: Obj, uid: str) -> None:
    if "active" in status:
        status["active"] = [ref for ref in status["active"] if ref.get("uid") != uid]


def _start_time_order(job: Obj) -> tuple[int, float, str]:
    # byJobStartTime: Jobs without a start time sort last, ties broken by name.
    start = (job.get("status") or {}).get("startTime")
    return (
        (1, 0.0, job["metadata"]["name"])
        if start is None
        else (0, parse_rfc3339(start), job["metadata"]["name"])
    )


def _rfc1123z(epoch_s: float) -> str:
    return email.utils.formatdate(epoch_s, usegmt=False).replace("-0000", "+0000")
