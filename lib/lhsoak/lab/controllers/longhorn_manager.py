"""longhorn-manager's RecurringJob controller: one batch/v1 CronJob per RecurringJob.

As controller/recurring_job_controller.go (longhorn-manager v1.8-v1.9): the CronJob has the
RecurringJob's name and namespace, labels `longhorn.io/managed-by=longhorn-manager` and
`recurring-job.longhorn.io=<name>`, an ownerReference to the RecurringJob (so deleting the
RecurringJob removes it), `concurrencyPolicy: Forbid`, no startingDeadlineSeconds, history limits
from the settings `recurring-successful-jobs-history-limit` / `recurring-failed-jobs-history-limit`,
job `backoffLimit: 3`, pod `restartPolicy: OnFailure` running
`longhorn-manager -d recurring-job <name> --manager-url http://longhorn-backend:9500/v1`.
The spec applied last is kept in the annotation `longhorn.io/last-applied-cronjob-spec`; the
CronJob is updated only when the wanted spec differs from it, as upstream.

Upstream also re-syncs every RecurringJob every 30 s (informer resync), which recreates a CronJob
deleted by hand; the lab does it at once, on the CronJob's deletion.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from lhsoak.lab import kinds
from lhsoak.lab.controllers.meta import Key, Obj, key_of, labels_of
from lhsoak.lab.controllers.reconciler import Reconciler
from lhsoak.lab.store import NotFound, WatchEvent

NAMESPACE = "longhorn-system"
MANAGER_IMAGE = "longhornio/longhorn-manager:v1.12.1"
"""The version of the CRDs the lab serves, as the manager pods' image: job pods run the same image."""
MANAGER_URL = "http://longhorn-backend:9500/v1"
SERVICE_ACCOUNT = "longhorn-service-account"
ENGINE_BINARIES = "/var/lib/longhorn/engine-binaries/"

LABEL_MANAGED_BY = "longhorn.io/managed-by"
MANAGED_BY = "longhorn-manager"
LABEL_RECURRING_JOB = "recurring-job.longhorn.io"
JOB_LABEL_PREFIX = "recurring-job.longhorn.io/"
GROUP_LABEL_PREFIX = "recurring-job-group.longhorn.io/"
LABEL_ENABLED = "enabled"
DEFAULT_GROUP = "default"
SPEC_LABEL_RECURRING_JOB = "RecurringJob"
"""Key of the label a recurring job puts in Snapshot/Backup `spec.labels` (types.RecurringJobLabel)."""
ANNOTATION_LAST_APPLIED = "longhorn.io/last-applied-cronjob-spec"

CRONJOB_BACKOFF_LIMIT = 3
SETTING_SUCCESSFUL_HISTORY = "recurring-successful-jobs-history-limit"
SETTING_FAILED_HISTORY = "recurring-failed-jobs-history-limit"
SETTING_TAINT_TOLERATION = "taint-toleration"
SETTING_PRIORITY_CLASS = "priority-class"
_CRONJOB_SETTINGS = (
    SETTING_SUCCESSFUL_HISTORY,
    SETTING_FAILED_HISTORY,
    SETTING_TAINT_TOLERATION,
    SETTING_PRIORITY_CLASS,
)

DEFAULT_SETTINGS: dict[str, str] = {
    SETTING_SUCCESSFUL_HISTORY: "1",
    SETTING_FAILED_HISTORY: "1",
    SETTING_TAINT_TOLERATION: "",
    SETTING_PRIORITY_CLASS: "longhorn-critical",
    "allow-recurring-job-while-volume-detached": "false",
    "auto-cleanup-recurring-job-backup-snapshot": "true",
    "failed-backup-ttl": "1440",
    "backupstore-poll-interval": "300",
    "default-replica-count": '{"v1":"3","v2":"3"}',
    "system-managed-components-node-selector": "",
    "registry-secret": "",
}
"""Settings the lab seeds, with Longhorn's defaults."""


def setting(obj: Obj | None, name: str) -> str:
    """The value of Setting `name` from its object (None when absent: Longhorn's default)."""
    if obj is not None and isinstance(obj.get("value"), str):
        return str(obj["value"])
    return DEFAULT_SETTINGS.get(name, "")


def cronjob_labels(job_name: str) -> dict[str, str]:
    """types.GetCronJobLabels: the labels of a recurring job's CronJob and pods."""
    return {LABEL_MANAGED_BY: MANAGED_BY, LABEL_RECURRING_JOB: job_name}


class LonghornManager(Reconciler):
    """Keeps one CronJob per RecurringJob in longhorn-system, in sync with it and the settings."""

    name = "longhorn-recurring-job"
    kinds = (kinds.LH_RECURRING_JOB, kinds.LH_SETTING, kinds.CRONJOB)

    def observe(self, event: WatchEvent) -> None:
        obj = event.object
        if event.kind == kinds.LH_RECURRING_JOB:
            self.enqueue(key_of(obj))
        elif event.kind == kinds.LH_SETTING:
            if obj["metadata"]["name"] in _CRONJOB_SETTINGS:
                for key in self.all_keys():
                    self.enqueue(key)
        elif event.type == "DELETED" and labels_of(obj).get(LABEL_MANAGED_BY) == MANAGED_BY:
            job_name = labels_of(obj).get(LABEL_RECURRING_JOB)
            if job_name:
                self.enqueue((str(obj["metadata"].get("namespace") or ""), job_name))

    def all_keys(self) -> Iterable[Key]:
        items, _ = self.ctx.store.list(kinds.LH_RECURRING_JOB, namespace=NAMESPACE)
        return [key_of(rj) for rj in items]

    def reconcile(self, key: Key) -> float | None:
        namespace, name = key
        if namespace != NAMESPACE:
            return None
        try:
            recurring_job = self.ctx.store.get(kinds.LH_RECURRING_JOB, name, namespace=namespace)
        except NotFound:
            return None
        recurring_job = self._claim(recurring_job)
        wanted = self.new_cronjob(recurring_job)
        try:
            applied = self.ctx.store.get(kinds.CRONJOB, name, namespace=namespace)
        except NotFound:
            self.ctx.store.create(kinds.CRONJOB, wanted)
            return None
        annotations = applied["metadata"].get("annotations") or {}
        if annotations.get(ANNOTATION_LAST_APPLIED) != _spec_json(wanted["spec"]):
            wanted["metadata"]["resourceVersion"] = applied["metadata"]["resourceVersion"]
            self.ctx.store.update(kinds.CRONJOB, {**wanted, "status": applied.get("status", {})})
        return None

    def owner_id(self) -> str:
        """The node whose longhorn-manager owns the recurring jobs (the first worker)."""
        workers = [m.name for m in self.ctx.fleet if m.role == "worker"]
        return workers[0] if workers else self.ctx.fleet.names[0]

    def _claim(self, recurring_job: Obj) -> Obj:
        owner = self.owner_id()
        if (recurring_job.get("status") or {}).get("ownerID") == owner:
            return recurring_job

        def claim(obj: Obj) -> None:
            obj.setdefault("status", {})["ownerID"] = owner

        return self.ctx.store.mutate(
            kinds.LH_RECURRING_JOB,
            recurring_job["metadata"]["name"],
            claim,
            namespace=NAMESPACE,
            subresource="status",
        )

    def _setting(self, name: str) -> str:
        try:
            obj: Obj | None = self.ctx.store.get(kinds.LH_SETTING, name, namespace=NAMESPACE)
        except NotFound:
            obj = None
        return setting(obj, name)

    def new_cronjob(self, recurring_job: Obj) -> Obj:
        """The CronJob longhorn-manager wants for `recurring_job` (newCronJob upstream)."""
        name = recurring_job["metadata"]["name"]
        labels = cronjob_labels(name)
        pod_spec: Obj = {
            "containers": [
                {
                    "name": name,
                    "image": MANAGER_IMAGE,
                    "command": [
                        "longhorn-manager",
                        "-d",
                        "recurring-job",
                        name,
                        "--manager-url",
                        MANAGER_URL,
                    ],
                    "env": [
                        {
                            "name": "POD_NAMESPACE",
                            "valueFrom": {
                                "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}
                            },
                        }
                    ],
                    "volumeMounts": [{"name": "engine-binaries", "mountPath": ENGINE_BINARIES}],
                    "imagePullPolicy": "IfNotPresent",
                    "resources": {},
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                }
            ],
            "volumes": [{"name": "engine-binaries", "hostPath": {"path": ENGINE_BINARIES, "type": ""}}],
            "serviceAccountName": SERVICE_ACCOUNT,
            "serviceAccount": SERVICE_ACCOUNT,
            "restartPolicy": "OnFailure",
            "priorityClassName": self._setting(SETTING_PRIORITY_CLASS),
            "dnsPolicy": "ClusterFirst",
            "schedulerName": "default-scheduler",
            "securityContext": {},
            "terminationGracePeriodSeconds": 30,
        }
        tolerations = _tolerations(self._setting(SETTING_TAINT_TOLERATION))
        if tolerations:
            pod_spec["tolerations"] = tolerations
        spec: Obj = {
            "schedule": recurring_job.get("spec", {}).get("cron", ""),
            "concurrencyPolicy": "Forbid",
            "suspend": False,
            "successfulJobsHistoryLimit": _int(self._setting(SETTING_SUCCESSFUL_HISTORY), 1),
            "failedJobsHistoryLimit": _int(self._setting(SETTING_FAILED_HISTORY), 1),
            "jobTemplate": {
                "metadata": {},
                "spec": {
                    "backoffLimit": CRONJOB_BACKOFF_LIMIT,
                    "template": {"metadata": {"name": name, "labels": labels}, "spec": pod_spec},
                },
            },
        }
        return {
            "apiVersion": kinds.CRONJOB.api_version,
            "kind": kinds.CRONJOB.kind,
            "metadata": {
                "name": name,
                "namespace": NAMESPACE,
                "labels": labels,
                "annotations": {ANNOTATION_LAST_APPLIED: _spec_json(spec)},
                "ownerReferences": [
                    {
                        "apiVersion": kinds.LH_RECURRING_JOB.api_version,
                        "kind": kinds.LH_RECURRING_JOB.kind,
                        "name": name,
                        "uid": recurring_job["metadata"]["uid"],
                    }
                ],
            },
            "spec": spec,
        }


def _spec_json(spec: Obj) -> str:
    return json.dumps(spec, separators=(",", ":"), sort_keys=True)


def _int(text: str, default: int) -> int:
    try:
        return int(text)
    except ValueError:
        return default


def _tolerations(setting_value: str) -> list[Obj]:
    """The taint-toleration setting ("key=value:Effect;key:Effect") as pod tolerations."""
    tolerations: list[Obj] = []
    for item in filter(None, (part.strip() for part in setting_value.split(";"))):
        taint, _, effect = item.partition(":")
        key, equals, value = taint.partition("=")
        toleration: Obj = {"key": key, "operator": "Equal" if equals else "Exists"}
        if equals:
            toleration["value"] = value
        if effect:
            toleration["effect"] = effect
        tolerations.append(toleration)
    return tolerations
