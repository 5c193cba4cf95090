"""Hand-made cluster objects for the diagnosis rules, shaped exactly like the API's.

Kubernetes objects are built with the official client's models and serialised the way the
client sends them (`sanitize_for_serialization`), so their field names are the API's; Longhorn
objects are plain dicts that test_fixtures_match_the_api.py validates against the real CRDs.

The healthy world: three Ready nodes; RecurringJobs soak-snap (snapshot, */2, retain 3) and
soak-bak (backup, */5, retain 2, group "soak"); volume soak-vol-1 labelled for both jobs, volume
soak-vol-2 in group "soak", volume other-vol in no soak job; every CronJob scheduled its 12:00
tick and that Job completed; backups Completed (plus one Error backup within retain); an older
failed soak-snap Job kept as history. "Now" is 2025-03-20T12:00:30Z.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, ClassVar

import pytest
from kubernetes.client import (
    ApiClient,
    CoreV1Event,
    V1Container,
    V1ContainerState,
    V1ContainerStateRunning,
    V1ContainerStateTerminated,
    V1ContainerStateWaiting,
    V1ContainerStatus,
    V1CronJob,
    V1CronJobSpec,
    V1CronJobStatus,
    V1EnvVar,
    V1EnvVarSource,
    V1EventSource,
    V1HostPathVolumeSource,
    V1Job,
    V1JobCondition,
    V1JobSpec,
    V1JobStatus,
    V1JobTemplateSpec,
    V1Node,
    V1NodeCondition,
    V1NodeSpec,
    V1NodeStatus,
    V1NodeSystemInfo,
    V1ObjectFieldSelector,
    V1ObjectMeta,
    V1ObjectReference,
    V1OwnerReference,
    V1Pod,
    V1PodCondition,
    V1PodSpec,
    V1PodStatus,
    V1PodTemplateSpec,
    V1Taint,
    V1Volume,
    V1VolumeMount,
)

from lhsoak import diagnosis

NS = "longhorn-system"
NOW = datetime(2025, 3, 20, 12, 0, 30, tzinfo=UTC)
NOW_S = NOW.timestamp()
MANAGER_IMAGE = "longhornio/longhorn-manager:v1.9.1"
JOBS = (
    diagnosis.JobSpec(name="soak-snap", task="snapshot", cron="*/2 * * * *", retain=3),
    diagnosis.JobSpec(name="soak-bak", task="backup", cron="*/5 * * * *", retain=2),
)
BOOT_IDS = {
    "node-1": "0c6e3a51-7b2e-4f5e-9a41-3c1f0d8e2b11",
    "node-2": "5d2f8e77-1c3b-4a9d-8e6f-2b7a9c0d4e22",
    "node-3": "9a1b2c3d-4e5f-4a6b-8c7d-0e1f2a3b4c33",
}
_API = ApiClient()


def at(minutes_before_now: float) -> datetime:
    return NOW - timedelta(minutes=minutes_before_now)


def stamp(when: datetime) -> str:
    """RFC 3339 the way the API server writes it: UTC with a Z."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def clock(hh_mm: str) -> datetime:
    """A time on the test day, e.g. clock("11:30") or clock("11:35:20")."""
    parts = [int(part) for part in hh_mm.split(":")] + [0]
    return NOW.replace(hour=parts[0], minute=parts[1], second=parts[2])


def raw(model: Any) -> dict[str, Any]:
    serialised: dict[str, Any] = _API.sanitize_for_serialization(model)
    return serialised


def uid(*parts: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(parts)))


def short_hash(*parts: str) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:16]


# --------------------------------------------------------------------------- Kubernetes


def _recurring_labels(job: str) -> dict[str, str]:
    return {"recurring-job.longhorn.io": job, "longhorn.io/managed-by": "longhorn-manager"}


def _pod_template(job: str) -> V1PodTemplateSpec:
    # As longhorn-manager's recurring job controller writes it.
    return V1PodTemplateSpec(
        metadata=V1ObjectMeta(name=job, labels=_recurring_labels(job)),
        spec=V1PodSpec(
            containers=[
                V1Container(
                    name=job,
                    image=MANAGER_IMAGE,
                    command=[
                        "longhorn-manager",
                        "-d",
                        "recurring-job",
                        job,
                        "--manager-url",
                        "http://longhorn-backend:9500/v1",
                    ],
                    env=[
                        V1EnvVar(
                            name="POD_NAMESPACE",
                            value_from=V1EnvVarSource(
                                field_ref=V1ObjectFieldSelector(field_path="metadata.namespace")
                            ),
                        )
                    ],
                    volume_mounts=[
                        V1VolumeMount(name="engine-binaries", mount_path="/var/lib/longhorn/engine-binaries/")
                    ],
                )
            ],
            volumes=[
                V1Volume(
                    name="engine-binaries",
                    host_path=V1HostPathVolumeSource(path="/var/lib/longhorn/engine-binaries/"),
                )
            ],
            service_account_name="longhorn-service-account",
            restart_policy="OnFailure",
            priority_class_name="longhorn-critical",
        ),
    )


def cronjob(
    job: str,
    *,
    schedule: str,
    last_scheduled: datetime | None,
    active: Iterable[Mapping[str, Any]] = (),
    suspend: bool = False,
    created: datetime | None = None,
) -> dict[str, Any]:
    return raw(
        V1CronJob(
            api_version="batch/v1",
            kind="CronJob",
            metadata=V1ObjectMeta(
                name=job,
                namespace=NS,
                uid=uid("cronjob", job),
                creation_timestamp=stamp(created or at(24 * 60)),
                labels=_recurring_labels(job),
                owner_references=[
                    V1OwnerReference(
                        api_version="longhorn.io/v1beta2",
                        kind="RecurringJob",
                        name=job,
                        uid=uid("recurringjob", job),
                    )
                ],
            ),
            spec=V1CronJobSpec(
                schedule=schedule,
                concurrency_policy="Forbid",
                suspend=suspend,
                successful_jobs_history_limit=1,
                failed_jobs_history_limit=1,
                job_template=V1JobTemplateSpec(spec=V1JobSpec(backoff_limit=3, template=_pod_template(job))),
            ),
            status=V1CronJobStatus(
                active=[
                    V1ObjectReference(
                        api_version="batch/v1",
                        kind="Job",
                        name=ref["metadata"]["name"],
                        namespace=NS,
                        uid=ref["metadata"]["uid"],
                        resource_version="48213",
                    )
                    for ref in active
                ]
                or None,
                last_schedule_time=stamp(last_scheduled) if last_scheduled else None,
            ),
        )
    )


def job_name(job: str, scheduled: datetime) -> str:
    return f"{job}-{int(scheduled.timestamp()) // 60}"


def job(
    recurring_job: str,
    *,
    scheduled: datetime,
    outcome: str = "active",
    failed: int = 0,
    finished: datetime | None = None,
) -> dict[str, Any]:
    """A Job the CronJob controller made; outcome: active, complete or failed."""
    name = job_name(recurring_job, scheduled)
    conditions = None
    status = V1JobStatus(start_time=stamp(scheduled), failed=failed or None)
    done = stamp(finished or scheduled + timedelta(seconds=25))
    if outcome == "complete":
        conditions = [
            V1JobCondition(
                type="SuccessCriteriaMet", status="True", last_probe_time=done, last_transition_time=done
            ),
            V1JobCondition(type="Complete", status="True", last_probe_time=done, last_transition_time=done),
        ]
        status.succeeded, status.completion_time, status.ready = 1, done, 0
    elif outcome == "failed":
        message = "Job has reached the specified backoff limit"
        conditions = [
            V1JobCondition(
                type="FailureTarget",
                status="True",
                reason="BackoffLimitExceeded",
                message=message,
                last_probe_time=done,
                last_transition_time=done,
            ),
            V1JobCondition(
                type="Failed",
                status="True",
                reason="BackoffLimitExceeded",
                message=message,
                last_probe_time=done,
                last_transition_time=done,
            ),
        ]
        status.ready = 0
    else:
        status.active, status.ready = 1, 0
    status.conditions = conditions
    status.uncounted_terminated_pods = None
    job_uid = uid("job", name)
    return raw(
        V1Job(
            api_version="batch/v1",
            kind="Job",
            metadata=V1ObjectMeta(
                name=name,
                namespace=NS,
                uid=job_uid,
                creation_timestamp=stamp(scheduled),
                labels={"batch.kubernetes.io/controller-uid": job_uid, "controller-uid": job_uid},
                annotations={"batch.kubernetes.io/cronjob-scheduled-timestamp": stamp(scheduled)},
                owner_references=[
                    V1OwnerReference(
                        api_version="batch/v1",
                        kind="CronJob",
                        name=recurring_job,
                        uid=uid("cronjob", recurring_job),
                        controller=True,
                        block_owner_deletion=True,
                    )
                ],
            ),
            spec=V1JobSpec(
                backoff_limit=3,
                completions=1,
                parallelism=1,
                template=_pod_template(recurring_job),
            ),
            status=status,
        )
    )


def pod(
    owner: Mapping[str, Any],
    *,
    phase: str,
    node: str | None,
    created: datetime,
    suffix: str = "x7k2p",
    unschedulable: str = "",
    restarts: int = 0,
    last_exit: tuple[int, str, str] | None = None,
    waiting: str = "",
) -> dict[str, Any]:
    """A pod of `owner` (a Job dict); last_exit = (exitCode, reason, message)."""
    job_name_ = owner["metadata"]["name"]
    recurring_job = owner["metadata"]["ownerReferences"][0]["name"]
    job_uid = owner["metadata"]["uid"]
    template = _pod_template(recurring_job)
    spec = template.spec
    spec.node_name = node
    spec.scheduler_name = "default-scheduler"
    spec.tolerations = None
    conditions = [
        V1PodCondition(
            type="PodScheduled",
            status="False" if unschedulable else "True",
            reason="Unschedulable" if unschedulable else None,
            message=unschedulable or None,
            last_transition_time=stamp(created),
        )
    ]
    container_state = V1ContainerState(
        waiting=V1ContainerStateWaiting(reason=waiting) if waiting else None,
        running=V1ContainerStateRunning(started_at=stamp(created)) if phase == "Running" else None,
        terminated=V1ContainerStateTerminated(
            exit_code=0,
            reason="Completed",
            started_at=stamp(created),
            finished_at=stamp(created + timedelta(seconds=20)),
        )
        if phase == "Succeeded"
        else None,
    )
    last_state = V1ContainerState(
        terminated=V1ContainerStateTerminated(
            exit_code=last_exit[0],
            reason=last_exit[1],
            message=last_exit[2],
            started_at=stamp(created),
            finished_at=stamp(created + timedelta(seconds=30)),
        )
        if last_exit
        else None
    )
    statuses = None
    if node and not unschedulable:
        statuses = [
            V1ContainerStatus(
                name=recurring_job,
                image=MANAGER_IMAGE,
                image_id="",
                ready=phase == "Running",
                restart_count=restarts,
                started=phase == "Running",
                state=container_state,
                last_state=last_state,
            )
        ]
    return raw(
        V1Pod(
            api_version="v1",
            kind="Pod",
            metadata=V1ObjectMeta(
                name=f"{job_name_}-{suffix}",
                generate_name=f"{job_name_}-",
                namespace=NS,
                uid=uid("pod", job_name_, suffix),
                creation_timestamp=stamp(created),
                labels={
                    **_recurring_labels(recurring_job),
                    "batch.kubernetes.io/controller-uid": job_uid,
                    "batch.kubernetes.io/job-name": job_name_,
                    "controller-uid": job_uid,
                    "job-name": job_name_,
                },
                owner_references=[
                    V1OwnerReference(
                        api_version="batch/v1",
                        kind="Job",
                        name=job_name_,
                        uid=job_uid,
                        controller=True,
                        block_owner_deletion=True,
                    )
                ],
            ),
            spec=spec,
            status=V1PodStatus(
                phase=phase,
                conditions=conditions,
                qos_class="BestEffort",
                start_time=stamp(created) if node and not unschedulable else None,
                container_statuses=statuses,
            ),
        )
    )


def event(
    involved: Mapping[str, Any],
    *,
    reason: str,
    message: str,
    count: int = 1,
    first: datetime,
    last: datetime | None = None,
    type_: str = "Normal",
) -> dict[str, Any]:
    name = involved["metadata"]["name"]
    return raw(
        CoreV1Event(
            api_version="v1",
            kind="Event",
            metadata=V1ObjectMeta(
                name=f"{name}.{short_hash(name, reason, stamp(first))}",
                namespace=involved["metadata"].get("namespace", "default"),
                uid=uid("event", name, reason, stamp(first)),
                creation_timestamp=stamp(first),
            ),
            involved_object=V1ObjectReference(
                api_version=involved["apiVersion"],
                kind=involved["kind"],
                name=name,
                namespace=involved["metadata"].get("namespace"),
                uid=involved["metadata"]["uid"],
                resource_version="48213",
            ),
            reason=reason,
            message=message,
            count=count,
            first_timestamp=stamp(first),
            last_timestamp=stamp(last or first),
            type=type_,
            source=V1EventSource(component="cronjob-controller"),
            reporting_component="cronjob-controller",
            reporting_instance="",
        )
    )


def _last_heartbeat(ready: str, since: datetime | None) -> datetime:
    # A Ready kubelet posts every 10 s; a lost one stopped about the grace period before Unknown.
    if ready == "True":
        return at(0.2)
    return (since or at(6 * 60)) - timedelta(seconds=40)


def node(
    name: str,
    *,
    ready: str = "True",
    since: datetime | None = None,
    heartbeat: datetime | None = None,
    boot_id: str | None = None,
    unreachable: bool = False,
) -> dict[str, Any]:
    since_stamp = stamp(since or at(6 * 60))
    if ready == "True":
        reason, message = "KubeletReady", "kubelet is posting ready status"
    elif ready == "False":
        reason = "KubeletNotReady"
        message = (
            "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady "
            "message:Network plugin returns error: cni plugin not initialized"
        )
    else:
        reason, message = "NodeStatusUnknown", "Kubelet stopped posting node status."
    taints = None
    if unreachable:
        taints = [
            V1Taint(key="node.kubernetes.io/unreachable", effect="NoSchedule", time_added=since_stamp),
            V1Taint(key="node.kubernetes.io/unreachable", effect="NoExecute", time_added=since_stamp),
        ]
    return raw(
        V1Node(
            api_version="v1",
            kind="Node",
            metadata=V1ObjectMeta(
                name=name,
                uid=uid("node", name),
                creation_timestamp=stamp(at(30 * 24 * 60)),
                labels={"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"},
            ),
            spec=V1NodeSpec(pod_cidr="10.42.1.0/24", provider_id=f"k3s://{name}", taints=taints),
            status=V1NodeStatus(
                conditions=[
                    V1NodeCondition(
                        type="Ready",
                        status=ready,
                        reason=reason,
                        message=message,
                        last_heartbeat_time=stamp(heartbeat or _last_heartbeat(ready, since)),
                        last_transition_time=since_stamp,
                    )
                ],
                node_info=V1NodeSystemInfo(
                    architecture="amd64",
                    boot_id=boot_id or BOOT_IDS[name],
                    container_runtime_version="containerd://1.7.23-k3s2",
                    kernel_version="6.8.0-1021-aws",
                    kube_proxy_version="v1.31.4+k3s1",
                    kubelet_version="v1.31.4+k3s1",
                    machine_id=short_hash("machine", name) * 2,
                    operating_system="linux",
                    os_image="Ubuntu 24.04.1 LTS",
                    system_uuid=uid("system", name),
                ),
            ),
        )
    )


# --------------------------------------------------------------------------- Longhorn


def _lh_meta(name: str, created: datetime, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": NS,
        "uid": uid("longhorn", name),
        "resourceVersion": "48213",
        "generation": 1,
        "creationTimestamp": stamp(created),
        **extra,
    }


def recurring_job(
    name: str, *, task: str, cron: str, retain: int, groups: list[str] | None = None
) -> dict[str, Any]:
    return {
        "apiVersion": "longhorn.io/v1beta2",
        "kind": "RecurringJob",
        "metadata": _lh_meta(name, at(24 * 60)),
        "spec": {
            "name": name,
            "task": task,
            "cron": cron,
            "retain": retain,
            "concurrency": 1,
            "groups": groups or [],
            "labels": {},
            "parameters": {},
            "retentionPolicy": "count-based",
        },
        "status": {"ownerID": "node-1", "executionCount": 287},
    }


def snapshot_name(job: str, *parts: str) -> str:
    # app/recurringjob: the first 8 characters of the job name, "-", a uuid.
    return f"{job[:8]}-{uid('snapshot', job, *parts)}"


def backup(
    job: str,
    volume: str,
    *,
    created: datetime,
    state: str = "Completed",
    progress: int | None = None,
    error: str = "",
    owner: str = "node-1",
    synced: datetime | None = None,
) -> dict[str, Any]:
    name = f"backup-{short_hash('backup', job, volume, stamp(created))}"
    snapshot = snapshot_name(job, volume, stamp(created))
    labels = {"RecurringJob": job, "longhorn.io/volume-access-mode": "rwo"}
    status: dict[str, Any] = {
        "ownerID": owner,
        "state": state,
        "progress": progress if progress is not None else (100 if state == "Completed" else 0),
        "snapshotName": snapshot,
        "snapshotCreatedAt": stamp(created),
        "volumeName": volume,
        "volumeSize": "1073741824",
        "volumeCreated": stamp(at(30 * 24 * 60)),
        "labels": labels,
        "backupTargetName": "default",
        "replicaAddress": "tcp://10.42.1.15:10000",
        "compressionMethod": "lz4",
        "error": error,
    }
    if state == "Completed":
        done = created + timedelta(seconds=40)
        status |= {
            "backupCreatedAt": stamp(done),
            "url": f"s3://lhsoak-backups@us-east-1/?backup={name}&volume={volume}",
            "size": "2097152",
            "newlyUploadDataSize": "2097152",
            "reUploadedDataSize": "0",
            "lastSyncedAt": stamp(synced or done),
        }
    elif synced is not None:
        status["lastSyncedAt"] = stamp(synced)
    return {
        "apiVersion": "longhorn.io/v1beta2",
        "kind": "Backup",
        "metadata": _lh_meta(
            name,
            created,
            labels={"backup-volume": volume, "backup-target": "default"},
            finalizers=["longhorn.io"],
        ),
        "spec": {"snapshotName": snapshot, "labels": labels, "backupMode": "incremental"},
        "status": status,
    }


def snapshot(job: str, volume: str, *, created: datetime, ready: bool = True) -> dict[str, Any]:
    name = snapshot_name(job, volume, stamp(created))
    labels = {"RecurringJob": job}
    return {
        "apiVersion": "longhorn.io/v1beta2",
        "kind": "Snapshot",
        "metadata": _lh_meta(
            name,
            created,
            labels={"longhornvolume": volume},
            finalizers=["longhorn.io"],
        ),
        "spec": {"volume": volume, "createSnapshot": True, "labels": labels},
        "status": {
            "ownerID": "node-1",
            "creationTime": stamp(created + timedelta(seconds=2)),
            "readyToUse": ready,
            "labels": labels,
            "userCreated": True,
            "markRemoved": False,
            "size": 2097152,
            "restoreSize": 1073741824,
            "parent": "",
            "children": {"volume-head": True},
            "checksum": "",
            "error": "",
        },
    }


def volume(
    name: str,
    *,
    labels: Mapping[str, str],
    node: str = "node-1",
    state: str = "attached",
    robustness: str = "healthy",
    degraded: datetime | None = None,
    conditions: Iterable[Mapping[str, str]] = (),
) -> dict[str, Any]:
    base_conditions = [
        {"type": "WaitForBackingImage", "status": "False", "reason": "", "message": ""},
        {"type": "Restore", "status": "False", "reason": "", "message": ""},
        {"type": "TooManySnapshots", "status": "False", "reason": "", "message": ""},
        {"type": "Scheduled", "status": "True", "reason": "", "message": ""},
    ]
    override = {c["type"]: c for c in conditions}
    merged = [
        {
            "lastProbeTime": "",
            "lastTransitionTime": stamp(at(3 * 24 * 60)),
            **override.get(c["type"], c),
        }
        for c in base_conditions
    ]
    attached = state == "attached"
    status: dict[str, Any] = {
        "ownerID": node,
        "state": state,
        "robustness": robustness,
        "currentNodeID": node if attached else "",
        "currentImage": "longhornio/longhorn-engine:v1.9.1",
        "frontendDisabled": False,
        "isStandby": False,
        "restoreRequired": False,
        "restoreInitiated": False,
        "expansionRequired": False,
        "actualSize": 41943040,
        "lastBackup": "",
        "lastBackupAt": "",
        "shareState": "",
        "shareEndpoint": "",
        "remountRequestedAt": stamp(at(3 * 24 * 60)),
        "cloneStatus": {"snapshot": "", "sourceVolume": "", "state": "", "attemptCount": 0},
        "kubernetesStatus": {
            "namespace": "lhsoak",
            "pvName": f"pvc-{uid('pv', name)}",
            "pvStatus": "Bound",
            "pvcName": name,
            "lastPVCRefAt": "",
            "lastPodRefAt": "",
            "workloadsStatus": [
                {
                    "podName": f"{name}-writer-0",
                    "podStatus": "Running",
                    "workloadName": f"{name}-writer",
                    "workloadType": "StatefulSet",
                }
            ],
        },
        "conditions": merged,
    }
    if degraded is not None:
        status["lastDegradedAt"] = stamp(degraded)
    return {
        "apiVersion": "longhorn.io/v1beta2",
        "kind": "Volume",
        "metadata": _lh_meta(
            name,
            at(30 * 24 * 60),
            labels={"longhornvolume": name, **labels},
            finalizers=["longhorn.io"],
        ),
        "spec": {
            "size": "1073741824",
            "numberOfReplicas": 3,
            "frontend": "blockdev",
            "dataEngine": "v1",
            "accessMode": "rwo",
            "backupTargetName": "default",
            "nodeID": node if attached else "",
            "dataLocality": "disabled",
            "staleReplicaTimeout": 30,
            "revisionCounterDisabled": True,
            "snapshotMaxCount": 250,
            "snapshotMaxSize": "0",
            "replicaAutoBalance": "ignored",
            "snapshotDataIntegrity": "ignored",
            "unmapMarkSnapChainRemoved": "ignored",
            "freezeFilesystemForSnapshot": "ignored",
            "backupCompressionMethod": "lz4",
            "encrypted": False,
            "migratable": False,
            "image": "longhornio/longhorn-engine:v1.9.1",
        },
        "status": status,
    }


def backup_target(
    *,
    available: bool = True,
    reason: str = "",
    message: str = "",
    since: datetime | None = None,
) -> dict[str, Any]:
    return {
        "apiVersion": "longhorn.io/v1beta2",
        "kind": "BackupTarget",
        "metadata": _lh_meta("default", at(30 * 24 * 60), finalizers=["longhorn.io"]),
        "spec": {
            "backupTargetURL": "s3://lhsoak-backups@us-east-1/",
            "credentialSecret": "lhsoak-s3-secret",
            "pollInterval": "5m0s",
            "syncRequestedAt": stamp(at(1)),
        },
        "status": {
            "ownerID": "node-1",
            "available": available,
            "lastSyncedAt": stamp(at(1) if available else at(25)),
            "conditions": [
                {
                    "type": "Unavailable",
                    "status": "False" if available else "True",
                    "reason": reason,
                    "message": message,
                    "lastProbeTime": "",
                    "lastTransitionTime": stamp(since or at(3 * 24 * 60)),
                }
            ],
        },
    }


# --------------------------------------------------------------------------- the world


@dataclass
class World:
    """A cluster's objects by kind; tests put() broken objects over healthy ones."""

    objects: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    node_restarts: dict[str, float] = field(default_factory=dict)
    """What the harness proved: node -> when its last reboot (a changed bootID) started."""

    _LIST_OF_KIND: ClassVar[Mapping[str, str]] = diagnosis.SNAPSHOT_FIELD_OF_KIND

    def put(self, *objs: dict[str, Any]) -> World:
        for obj in objs:
            items = self.objects.setdefault(self._LIST_OF_KIND[obj["kind"]], [])
            items[:] = [o for o in items if o["metadata"]["name"] != obj["metadata"]["name"]]
            items.append(obj)
        return self

    def block_cronjob(
        self,
        recurring_job_name: str,
        *,
        scheduled: datetime,
        phase: str,
        node: str | None,
        created: datetime | None = None,
        already_active: tuple[int, datetime, datetime] | None = None,
        **pod_fields: Any,
    ) -> dict[str, Any]:
        """Make the recurring job's CronJob list its Job of `scheduled` in status.active, that Job's
        pod (created at `created`, default `scheduled`) in `phase` on `node`, in place of the healthy
        12:00 Job; `already_active` is the (count, first, last) of the JobAlreadyActive events the
        CronJob logged since. Returns the Job."""
        active = job(recurring_job_name, scheduled=scheduled)
        schedule = next(spec.cron for spec in JOBS if spec.name == recurring_job_name)
        blocked = cronjob(recurring_job_name, schedule=schedule, last_scheduled=scheduled, active=[active])
        self.remove("Job", job_name(recurring_job_name, clock("12:00")))
        started = pod(active, phase=phase, node=node, created=created or scheduled, **pod_fields)
        self.put(blocked, active, started)
        if already_active is not None:
            count, first, last = already_active
            self.put(
                event(
                    blocked,
                    reason="JobAlreadyActive",
                    message=diagnosis.JOB_ALREADY_ACTIVE_MESSAGE,
                    count=count,
                    first=first,
                    last=last,
                )
            )
        return active

    def remove(self, kind: str, name: str) -> World:
        items = self.objects.get(self._LIST_OF_KIND[kind], [])
        items[:] = [o for o in items if o["metadata"]["name"] != name]
        return self

    def get(self, kind: str, name: str) -> dict[str, Any]:
        items = self.objects.get(self._LIST_OF_KIND[kind], [])
        return next(o for o in items if o["metadata"]["name"] == name)

    def all(self) -> list[dict[str, Any]]:
        return [obj for items in self.objects.values() for obj in items]

    def snapshot(self) -> diagnosis.ClusterSnapshot:
        return diagnosis.ClusterSnapshot(
            taken_at_s=NOW_S,
            node_restarts=dict(self.node_restarts),
            **{name: tuple(self.objects.get(name, ())) for name in self._LIST_OF_KIND.values()},
        )

    def diagnose(self, **kwargs: Any) -> list[diagnosis.Finding]:
        kwargs.setdefault("jobs", JOBS)
        return diagnosis.diagnose(self.snapshot(), **kwargs)


VOLUME_LABELS = {
    "soak-vol-1": {
        "recurring-job.longhorn.io/soak-snap": "enabled",
        "recurring-job.longhorn.io/soak-bak": "enabled",
    },
    "soak-vol-2": {"recurring-job-group.longhorn.io/soak": "enabled"},
    "other-vol": {"recurring-job-group.longhorn.io/default": "enabled"},
}


def only(findings: Iterable[diagnosis.Finding], category: diagnosis.Category) -> diagnosis.Finding:
    """The one finding of `category`; fails showing every finding when there is not exactly one."""
    found = list(findings)
    matching = [finding for finding in found if finding.category == category]
    assert len(matching) == 1, diagnosis.render(found)
    return matching[0]


def healthy_world() -> World:
    world = World()
    world.put(*(node(name, since=at(6 * 60)) for name in BOOT_IDS))
    world.put(
        recurring_job("soak-snap", task="snapshot", cron="*/2 * * * *", retain=3),
        recurring_job("soak-bak", task="backup", cron="*/5 * * * *", retain=2, groups=["soak"]),
        backup_target(),
    )
    world.put(
        volume("soak-vol-1", labels=VOLUME_LABELS["soak-vol-1"], node="node-1"),
        volume("soak-vol-2", labels=VOLUME_LABELS["soak-vol-2"], node="node-2"),
        volume("other-vol", labels=VOLUME_LABELS["other-vol"], node="node-3"),
    )
    tick = clock("12:00")
    for name, schedule in (("soak-snap", "*/2 * * * *"), ("soak-bak", "*/5 * * * *")):
        done = job(name, scheduled=tick, outcome="complete")
        cj = cronjob(name, schedule=schedule, last_scheduled=tick)
        world.put(cj, done, pod(done, phase="Succeeded", node="node-1", created=tick))
        world.put(
            event(
                cj, reason="SuccessfulCreate", message=f"Created job {done['metadata']['name']}", first=tick
            ),
            event(
                cj,
                reason="SawCompletedJob",
                message=f"Saw completed job: {done['metadata']['name']}, condition: Complete",
                first=tick + timedelta(seconds=26),
            ),
        )
    old_failure = job("soak-snap", scheduled=clock("11:50"), outcome="failed", failed=1)
    world.put(
        old_failure,
        pod(
            old_failure,
            phase="Failed",
            node="node-2",
            created=clock("11:50"),
            suffix="q9z4m",
            restarts=3,
            last_exit=(1, "Error", "failed to create snapshot: context deadline exceeded"),
        ),
    )
    for vol in ("soak-vol-1", "soak-vol-2"):
        world.put(
            backup("soak-bak", vol, created=clock("11:55:02")),
            backup("soak-bak", vol, created=clock("12:00:02")),
            snapshot("soak-bak", vol, created=clock("12:00:02")),
        )
    world.put(
        backup(
            "soak-bak",
            "soak-vol-1",
            created=clock("11:45:02"),
            state="Error",
            error="failed lock backupstore/volumes/5e/0c/soak-vol-1/locks/lock-7f3a.lck type 2 acquisition",
        )
    )
    for minute in ("11:56", "11:58", "12:00"):
        world.put(snapshot("soak-snap", "soak-vol-1", created=clock(minute)))
    return world


@pytest.fixture
def world() -> World:
    """A healthy cluster to break."""
    return healthy_world()


@pytest.fixture
def make() -> SimpleNamespace:
    """The object builders and constants, for tests that break the healthy world."""
    return SimpleNamespace(
        NS=NS,
        NOW=NOW,
        NOW_S=NOW_S,
        JOBS=JOBS,
        BOOT_IDS=BOOT_IDS,
        VOLUME_LABELS=VOLUME_LABELS,
        at=at,
        clock=clock,
        stamp=stamp,
        cronjob=cronjob,
        job=job,
        job_name=job_name,
        pod=pod,
        event=event,
        node=node,
        recurring_job=recurring_job,
        backup=backup,
        snapshot=snapshot,
        volume=volume,
        backup_target=backup_target,
        healthy_world=healthy_world,
    )
