"""Longhorn on the target cluster: is it healthy, and the soak's own objects (volumes, recurring jobs).

Setup is idempotent and undone at the end: every object the soak creates carries the run label, recurring
jobs that existed before are recorded and put back exactly as they were.
"""

from __future__ import annotations

import copy
import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tenacity

from lhsoak import cluster, config, errors, workload
from lhsoak.cluster import Obj

log = logging.getLogger(__name__)

NS = config.LONGHORN_NAMESPACE
JOB_LABEL_PREFIX = "recurring-job.longhorn.io/"
GROUP_LABEL_PREFIX = "recurring-job-group.longhorn.io/"
MANAGER_APP = "longhorn-manager"
"""The `app` label of longhorn-manager's pods, its DaemonSet's selector (Longhorn's chart and manifest)."""
CSI_DRIVER = "driver.longhorn.io"
"""Longhorn's CSI driver: the provisioner of its StorageClasses."""
CSI_PLUGIN_APP = "longhorn-csi-plugin"
"""The `app` label of the CSI plugin's pods, its DaemonSet's selector (longhorn-driver-deployer)."""
CSI_DEPLOYMENTS = ("csi-attacher", "csi-provisioner", "csi-resizer", "csi-snapshotter")
"""The CSI sidecar Deployments longhorn-driver-deployer makes, each named as its pods' `app` label."""


@dataclass(frozen=True)
class Health:
    """What the readiness check saw; `problems` empty means healthy."""

    problems: tuple[str, ...]
    longhorn_version: str | None
    kubernetes_version: str | None
    nodes: int
    csi_checked: bool = False
    """True when Longhorn's CSI driver was part of the check (see `needs_csi`)."""

    @property
    def healthy(self) -> bool:
        return not self.problems


def check_health(api: cluster.Cluster) -> Health:
    """Longhorn managers running, their DaemonSet ready on every node it schedules to, the default
    BackupTarget available, nodes Ready; and when `needs_csi`, the CSI sidecar Deployments
    available and the CSI plugin DaemonSet ready on every node."""
    problems: list[str] = []
    version = api.version()
    managers = api.list(cluster.PODS, namespace=NS, label_selector=f"app={MANAGER_APP}").items
    running = [pod for pod in managers if (pod.get("status") or {}).get("phase") == "Running"]
    if not running:
        problems.append(f"no longhorn-manager pod is Running in {NS} ({len(managers)} found)")
    csi = needs_csi(api)
    problems += _daemonset_problems_if_readable(api, csi=csi)
    if csi:
        problems += _csi_deployment_problems_if_readable(api)
    target = api.find(cluster.BACKUP_TARGETS, "default", namespace=NS)
    if target is None:
        problems.append("BackupTarget 'default' does not exist: configure a backup target")
    elif not (target.get("status") or {}).get("available"):
        problems.append(f"BackupTarget 'default' is not available: {_condition_message(target)}")
    nodes = api.list(cluster.NODES).items
    not_ready = [node["metadata"]["name"] for node in nodes if not node_ready(node)]
    if not_ready:
        problems.append(f"nodes not Ready: {', '.join(not_ready)}")
    return Health(
        problems=tuple(problems),
        longhorn_version=_longhorn_version(running),
        kubernetes_version=version.get("gitVersion"),
        nodes=len(nodes),
        csi_checked=csi,
    )


def needs_csi(api: cluster.Cluster) -> bool:
    """Whether Longhorn's CSI driver must be healthy: when a StorageClass provisions through it.

    That is what decides the soak's default volume mode (`auto` picks PVCs when the `longhorn`
    class exists) and what every Longhorn PVC on the cluster goes through, so it is decided from
    the cluster, not the soak's mode: a cluster whose Longhorn PVCs cannot attach is not healthy,
    whatever volumes the soak makes. When StorageClasses cannot be listed (403), CSI is checked:
    every Longhorn install deploys it.
    """
    try:
        classes = api.list(cluster.STORAGE_CLASSES).items
    except cluster.ClusterError as error:
        if error.status != 403:
            raise
        log.warning("cannot list StorageClasses (%s): checking Longhorn's CSI driver anyway", error)
        return True
    return any(storage_class.get("provisioner") == CSI_DRIVER for storage_class in classes)


def wait_healthy(
    api: cluster.Cluster,
    *,
    deadline_s: float,
    progress: Callable[[str], None],
    poll_s: float = 2.0,
) -> Health:
    """`check_health` until Longhorn is healthy or `deadline_s` passed; the last look either way.

    A few LISTs per look: polled (nothing is watched yet at this point), saying what is still missing.
    """
    looks = 0

    def report(state: tenacity.RetryCallState) -> None:
        nonlocal looks
        looks += 1
        if state.outcome is None or looks % 5 != 1:
            return
        error = state.outcome.exception()
        seen = f"API unreachable: {error}" if error else "; ".join(state.outcome.result().problems)
        waited_s = state.seconds_since_start or 0.0
        progress(f"waiting for Longhorn to be healthy ({waited_s:.0f}s of {deadline_s:.0f}s): {seen}")

    def last_look(state: tenacity.RetryCallState) -> Health:
        assert state.outcome is not None
        result: Health = state.outcome.result()  # re-raises the last UnreachableError, if that was it
        return result

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_result(lambda health: not health.healthy)
        | tenacity.retry_if_exception_type(cluster.UnreachableError),
        stop=tenacity.stop_after_delay(deadline_s),
        wait=tenacity.wait_fixed(poll_s),
        before_sleep=report,
        retry_error_callback=last_look,
    )
    health: Health = retrying(check_health, api)
    return health


def manager_pod_problems(pods: Iterable[Obj], *, daemonsets: Iterable[Obj] | None = None) -> list[str]:
    """longhorn-manager pods that are not Running, one line each: a DaemonSet pod that does not come
    back after a reboot leaves its node without Longhorn, whatever the recurring jobs do meanwhile.

    With `daemonsets` (those of Longhorn's namespace), also what `manager_daemonset_problems` finds:
    a node left with no manager pod at all, or a Running one that is not Ready, shows only there.
    """
    problems = []
    for pod in pods:
        meta = pod.get("metadata") or {}
        if (meta.get("labels") or {}).get("app") != MANAGER_APP:
            continue
        status = pod.get("status") or {}
        phase = status.get("phase") or "Unknown"
        if phase == "Running":
            continue
        why = status.get("reason") or status.get("message") or ""
        node = (pod.get("spec") or {}).get("nodeName") or "no node"
        problems.append(f"{meta.get('name')} on {node}: {phase}" + (f" ({why})" if why else ""))
    problems.sort()
    if daemonsets is not None:
        problems += manager_daemonset_problems(daemonsets)
    return problems


def _daemonset_problems_if_readable(api: cluster.Cluster, *, csi: bool) -> list[str]:
    checked = "longhorn-manager" + (f" and {CSI_PLUGIN_APP}" if csi else "")
    daemonsets = _list_if_readable(api, cluster.DAEMONSETS, unchecked=f"{checked} DaemonSets")
    if daemonsets is None:
        return []
    problems = manager_daemonset_problems(daemonsets)
    if csi:
        problems += daemonset_problems(daemonsets, app=CSI_PLUGIN_APP)
    return problems


def _csi_deployment_problems_if_readable(api: cluster.Cluster) -> list[str]:
    deployments = _list_if_readable(api, cluster.DEPLOYMENTS, unchecked="CSI sidecar Deployments")
    return [] if deployments is None else csi_deployment_problems(deployments)


def _list_if_readable(
    api: cluster.Cluster, resource: cluster.Resource, *, unchecked: str
) -> list[Obj] | None:
    # A lab account may be allowed pods and Longhorn's CRDs but not apps/v1 DaemonSets or
    # Deployments; the other checks still stand then, so a 403 costs this one check, not the soak.
    try:
        return api.list(resource, namespace=NS).items
    except cluster.ClusterError as error:
        if error.status != 403:
            raise
        log.warning("cannot list %s in %s (%s): %s not checked", resource.plural, NS, error, unchecked)
        return None


def manager_daemonsets(daemonsets: Iterable[Obj]) -> list[Obj]:
    """The longhorn-manager DaemonSets among `daemonsets`: labelled app=longhorn-manager, or selecting
    pods so labelled (an install that renamed or relabelled the DaemonSet still selects them)."""
    return _of_app(daemonsets, MANAGER_APP)


def _of_app(controllers: Iterable[Obj], app: str) -> list[Obj]:
    """The DaemonSets or Deployments among `controllers` labelled app=`app` or selecting pods so
    labelled."""
    found = []
    for controller in controllers:
        labels = (controller.get("metadata") or {}).get("labels") or {}
        selector = ((controller.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        if app in (labels.get("app"), selector.get("app")):
            found.append(controller)
    return found


def manager_daemonset_problems(daemonsets: Iterable[Obj]) -> list[str]:
    """What keeps the longhorn-manager DaemonSet among `daemonsets` from being ready, one line each
    (see `daemonset_problems`)."""
    return daemonset_problems(daemonsets, app=MANAGER_APP)


def daemonset_problems(daemonsets: Iterable[Obj], *, app: str) -> list[str]:
    """What keeps the DaemonSet of pods labelled app=`app` among `daemonsets` from being ready, one
    line each: none found; its controller has not yet acted on its latest spec (observedGeneration
    behind metadata.generation, so its counts describe an older one); fewer pods Ready than nodes it
    schedules to (numberReady != desiredNumberScheduled), as an SRE reads `kubectl get ds`."""
    found = _of_app(daemonsets, app)
    if not found:
        return [f"no {app} DaemonSet in {NS} (none labelled or selecting app={app})"]
    problems = []
    for daemonset in found:
        name = (daemonset.get("metadata") or {}).get("name", "?")
        status = daemonset.get("status") or {}
        # Upstream omits zero counts (omitempty): an absent one is 0.
        desired = int(status.get("desiredNumberScheduled") or 0)
        ready = int(status.get("numberReady") or 0)
        lagging = _generation_lag("DaemonSet", daemonset)
        if lagging:
            problems.append(lagging)
        elif desired == 0:
            problems.append(f"DaemonSet {name} schedules no pod (desiredNumberScheduled 0)")
        elif ready != desired:
            current = int(status.get("currentNumberScheduled") or 0)
            problems.append(f"DaemonSet {name}: {ready}/{desired} pods ready, {current} scheduled")
    return problems


def csi_deployment_problems(deployments: Iterable[Obj]) -> list[str]:
    """What keeps Longhorn's CSI sidecar Deployments (`CSI_DEPLOYMENTS`) among `deployments` from
    serving, one line each: one missing; its controller behind its spec; no replica ready, or
    fewer available than it needs (its Available condition not True: with the driver's 3
    replicas and maxUnavailable 1, fewer than 2), as an SRE reads `kubectl get deploy`."""
    listed = list(deployments)
    problems = []
    for app in CSI_DEPLOYMENTS:
        found = _of_app(listed, app)
        if not found:
            problems.append(f"no {app} Deployment in {NS} (none labelled or selecting app={app})")
        problems += [problem for deployment in found if (problem := _deployment_problem(deployment))]
    return problems


def _deployment_problem(deployment: Obj) -> str | None:
    lagging = _generation_lag("Deployment", deployment)
    if lagging:
        return lagging
    name = (deployment.get("metadata") or {}).get("name", "?")
    spec_replicas = (deployment.get("spec") or {}).get("replicas")
    wanted = 1 if spec_replicas is None else int(spec_replicas)
    status = deployment.get("status") or {}
    ready = int(status.get("readyReplicas") or 0)
    available = _condition(status, "Available")
    if ready >= 1 and available is not None and available.get("status") == "True":
        return None
    if wanted == 0:
        return f"Deployment {name} is scaled to 0 replicas"
    if available is None:
        why = "no Available condition yet"
    else:
        reason = available.get("reason") or "no reason given"
        why = f"Available={available.get('status', 'Unknown')} ({reason})"
    available_count = int(status.get("availableReplicas") or 0)
    return f"Deployment {name}: {ready}/{wanted} replicas ready, {available_count} available; {why}"


def _generation_lag(kind: str, controller: Obj) -> str | None:
    name = (controller.get("metadata") or {}).get("name", "?")
    generation = int((controller.get("metadata") or {}).get("generation") or 0)
    observed = int((controller.get("status") or {}).get("observedGeneration") or 0)
    if observed >= generation:
        return None
    return (
        f"{kind} {name}: generation {generation} not yet observed by its controller "
        f"(observedGeneration {observed})"
    )


def _condition(status: Mapping[str, Any], type_: str) -> Mapping[str, Any] | None:
    for condition in status.get("conditions") or []:
        if condition.get("type") == type_:
            return dict(condition)
    return None


def node_ready(node: Mapping[str, Any]) -> bool:
    return ready_status(node) == "True"


def ready_status(node: Mapping[str, Any]) -> str:
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return str(condition.get("status", "Unknown"))
    return "Unknown"


def _condition_message(target: Obj) -> str:
    for condition in (target.get("status") or {}).get("conditions") or []:
        if condition.get("status") == "True":
            return f"{condition.get('reason', '')} {condition.get('message', '')}".strip()
    return "no condition says why"


def _longhorn_version(manager_pods: list[Obj]) -> str | None:
    for pod in manager_pods:
        for container in (pod.get("spec") or {}).get("containers") or []:
            image = str(container.get("image", ""))
            if "longhorn-manager" in image and ":" in image:
                return image.rsplit(":", 1)[1]
    return None


# -- objects the soak owns ----------------------------------------------------------------------


def run_labels(run_id: str) -> dict[str, str]:
    return {config.RUN_LABEL: run_id}


def recurring_job_object(job: config.JobSpec, *, run_id: str) -> Obj:
    return {
        "metadata": {"name": job.name, "namespace": NS, "labels": run_labels(run_id)},
        "spec": {
            "name": job.name,
            "task": job.task,
            "cron": job.cron,
            "retain": job.retain,
            "concurrency": job.concurrency,
            # No groups: the soak's volumes opt in by the per-job label, so no other volume is touched.
            "groups": [],
            "labels": {},
        },
    }


def volume_object(name: str, *, run_id: str, size_bytes: int, jobs: Iterable[config.JobSpec]) -> Obj:
    labels = run_labels(run_id) | {f"{JOB_LABEL_PREFIX}{job.name}": "enabled" for job in jobs}
    return {
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "spec": {
            "size": str(size_bytes),
            "numberOfReplicas": 1,
            "frontend": "blockdev",
            "dataEngine": "v1",
            "accessMode": "rwo",
        },
    }


def volume_names(run_id: str, count: int) -> list[str]:
    return [f"{run_id}-vol-{index + 1}" for index in range(count)]


class Setup:
    """Creates the soak's volumes and recurring jobs, and puts the cluster back as it was."""

    def __init__(
        self,
        api: cluster.Cluster,
        soak: config.Soak,
        *,
        on_step: Callable[[str], None] = log.info,
    ) -> None:
        self._api = api
        self._soak = soak
        self._on_step = on_step
        self.volumes = volume_names(soak.run_id, soak.volumes)
        self.jobs_before: list[Obj] = []
        self.writers: workload.Writers | None = None

    @property
    def _snapshot_path(self) -> Path:
        return self._soak.run_dir / "recurring-jobs-before.json"

    def apply(self) -> None:
        self.jobs_before = self._record_existing_jobs()
        self._refuse_foreign_names()
        if self._volume_mode() == "pvc":
            self._volumes_with_writers()
        else:
            self._bare_volumes()
        for job in self._soak.jobs:
            self._ensure(cluster.RECURRING_JOBS, recurring_job_object(job, run_id=self._soak.run_id))

    def _volume_mode(self) -> config.VolumeMode:
        mode = self._soak.volume_mode
        if mode == "auto":
            mode = "pvc" if workload.has_storage_class(self._api, self._soak.storage_class) else "volume"
            self._on_step(
                f"test volumes: {mode} mode (StorageClass {self._soak.storage_class} "
                f"{'found' if mode == 'pvc' else 'not found'})"
            )
        return mode

    def _bare_volumes(self) -> None:
        for name in self.volumes:
            self._ensure(
                cluster.VOLUMES,
                volume_object(
                    name,
                    run_id=self._soak.run_id,
                    size_bytes=self._soak.volume_size_bytes,
                    jobs=self._soak.jobs,
                ),
            )

    def _volumes_with_writers(self) -> None:
        self.writers = workload.Writers(
            self._api,
            run_id=self._soak.run_id,
            workload=workload.Workload(storage_class=self._soak.storage_class, image=self._soak.writer_image),
            on_step=self._on_step,
        )
        self.volumes = self.writers.create(self.volumes, size_bytes=self._soak.volume_size_bytes)
        labels = {f"{JOB_LABEL_PREFIX}{job.name}": "enabled" for job in self._soak.jobs}
        for name in self.volumes:
            # The CSI driver made the volume; the soak only opts it in to its jobs.
            self._api.patch(cluster.VOLUMES, name, {"metadata": {"labels": labels}}, namespace=NS)
            self._on_step(f"volume {name} opted in to {', '.join(job.name for job in self._soak.jobs)}")

    def _record_existing_jobs(self) -> list[Obj]:
        existing = self._api.list(cluster.RECURRING_JOBS, namespace=NS).items
        foreign = [job for job in existing if not _owned(job)]
        self._snapshot_path.parent.mkdir(parents=True, exist_ok=True)
        self._snapshot_path.write_text(json.dumps(foreign, indent=2, sort_keys=True) + "\n")
        return foreign

    def _refuse_foreign_names(self) -> None:
        taken = {job["metadata"]["name"] for job in self.jobs_before}
        clash = sorted(taken & {job.name for job in self._soak.jobs})
        if clash:
            raise errors.UsageError(
                f"RecurringJob {', '.join(clash)} already exists and was not made by lhsoak; "
                "choose other job names with --job-prefix"
            )

    def _ensure(self, resource: cluster.Resource, obj: Obj) -> None:
        name = obj["metadata"]["name"]
        try:
            self._api.create(resource, obj, namespace=NS)
            self._on_step(f"created {resource.kind} {name}")
        except cluster.ConflictError:
            current = self._api.get(resource, name, namespace=NS)
            if not _owned(current):
                raise errors.UsageError(f"{resource.kind} {name} exists and was not made by lhsoak") from None
            updated = copy.deepcopy(current)
            updated["metadata"]["labels"] = obj["metadata"]["labels"]
            updated["spec"] = {**current.get("spec", {}), **obj["spec"]}
            self._api.replace(resource, updated, namespace=NS)
            self._on_step(f"reused {resource.kind} {name} from an earlier run")

    def undo(self, *, keep: bool) -> list[str]:
        """Remove the soak's recurring jobs (and its volumes unless `keep`); restore others exactly."""
        problems: list[str] = []
        selector = f"{config.RUN_LABEL}={self._soak.run_id}"
        for resource in (cluster.RECURRING_JOBS, *(() if keep else (cluster.VOLUMES,))):
            problems += self._delete_labelled(resource, selector)
        if not keep:
            problems += self._delete_backups()
            if self.writers is not None:
                problems += self.writers.remove()
        problems += self._restore_jobs()
        return problems

    def _delete_labelled(self, resource: cluster.Resource, selector: str) -> list[str]:
        problems = []
        for obj in self._api.list(resource, namespace=NS, label_selector=selector).items:
            name = obj["metadata"]["name"]
            try:
                self._api.delete(resource, name, namespace=NS)
                self._on_step(f"deleted {resource.kind} {name}")
            except cluster.NotFoundError:
                pass
            except cluster.ClusterError as error:
                problems.append(f"could not delete {resource.kind} {name}: {error}")
        return problems

    def _delete_backups(self) -> list[str]:
        problems = []
        for volume in self.volumes:
            backups = self._api.list(cluster.BACKUPS, namespace=NS, label_selector=f"backup-volume={volume}")
            for backup in backups.items:
                try:
                    self._api.delete(cluster.BACKUPS, backup["metadata"]["name"], namespace=NS)
                except cluster.NotFoundError:
                    pass
                except cluster.ClusterError as error:
                    problems.append(f"could not delete Backup {backup['metadata']['name']}: {error}")
        return problems

    def _restore_jobs(self) -> list[str]:
        problems = []
        for before in self.jobs_before:
            name = before["metadata"]["name"]
            now = self._api.find(cluster.RECURRING_JOBS, name, namespace=NS)
            try:
                if now is None:
                    self._api.create(cluster.RECURRING_JOBS, _clean_for_create(before), namespace=NS)
                    self._on_step(f"restored RecurringJob {name}")
                elif now.get("spec") != before.get("spec"):
                    now["spec"] = before.get("spec")
                    self._api.replace(cluster.RECURRING_JOBS, now, namespace=NS)
                    self._on_step(f"restored RecurringJob {name} spec")
            except cluster.ClusterError as error:
                problems.append(f"could not restore RecurringJob {name}: {error}")
        return problems


def _owned(obj: Mapping[str, Any]) -> bool:
    return config.RUN_LABEL in ((obj.get("metadata") or {}).get("labels") or {})


def _clean_for_create(obj: Obj) -> Obj:
    meta = obj.get("metadata") or {}
    kept = {key: meta[key] for key in ("name", "namespace", "labels", "annotations") if key in meta}
    return {"metadata": kept, "spec": copy.deepcopy(obj.get("spec") or {})}
