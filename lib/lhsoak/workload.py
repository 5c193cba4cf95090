"""Test volumes as a user has them: a PVC of the Longhorn StorageClass and a pod that keeps writing to it.

On a real cluster a recurring job skips a detached volume (unless the setting
`allow-recurring-job-while-volume-detached` is on), so each soak volume is a PVC mounted by a small writer
pod: the volume is attached, has data that changes between ticks, and is the Longhorn volume the CSI
driver made (`pvc-<uid>`, the PV's name). Everything here carries the run label, so cleanup finds it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

import tenacity

from lhsoak import cluster, config
from lhsoak.cluster import Obj

log = logging.getLogger(__name__)

# Appends a timestamp and syncs every few seconds: each snapshot and backup has new data in it.
WRITER_SCRIPT = "while true; do date >> /data/lhsoak.log; sync; sleep 5; done"


@dataclass(frozen=True)
class Workload:
    """Where and how the writer pods run."""

    namespace: str = "lhsoak"
    """Namespace of the PVCs and writer pods (created when missing, deleted if the soak made it)."""
    storage_class: str = "longhorn"
    """StorageClass of the PVCs; default longhorn."""
    image: str = "busybox:1.36"
    """Image of the writer pods (needs sh, date, sync, sleep); default busybox:1.36."""
    ready_deadline_s: float = 600.0
    """How long a PVC may take to be bound and its writer Running with the volume attached; seconds."""


def pvc_object(name: str, *, run_id: str, workload: Workload, size_bytes: int) -> Obj:
    return {
        "metadata": {"name": name, "namespace": workload.namespace, "labels": {config.RUN_LABEL: run_id}},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "storageClassName": workload.storage_class,
            "resources": {"requests": {"storage": str(size_bytes)}},
        },
    }


def writer_pod_object(name: str, *, claim: str, run_id: str, workload: Workload) -> Obj:
    return {
        "metadata": {
            "name": name,
            "namespace": workload.namespace,
            "labels": {config.RUN_LABEL: run_id, "app.kubernetes.io/name": "lhsoak-writer"},
        },
        "spec": {
            "restartPolicy": "Always",
            "terminationGracePeriodSeconds": 5,
            "containers": [
                {
                    "name": "writer",
                    "image": workload.image,
                    "command": ["sh", "-c", WRITER_SCRIPT],
                    "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                }
            ],
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": claim}}],
        },
    }


def has_storage_class(api: cluster.Cluster, name: str) -> bool:
    try:
        api.get(cluster.STORAGE_CLASSES, name)
    except cluster.ClusterError:
        return False
    return True


class Writers:
    """Creates the PVCs and writer pods, waits until each volume is attached, and removes them."""

    def __init__(
        self,
        api: cluster.Cluster,
        *,
        run_id: str,
        workload: Workload,
        on_step: Callable[[str], None] = log.info,
    ) -> None:
        self._api = api
        self._run_id = run_id
        self._workload = workload
        self._on_step = on_step
        self._made_namespace = False

    def create(self, claims: list[str], *, size_bytes: int) -> list[str]:
        """Make one PVC + writer per claim name; return the Longhorn volume names, in order."""
        self._ensure_namespace()
        ns = self._workload.namespace
        for claim in claims:
            pvc = pvc_object(claim, run_id=self._run_id, workload=self._workload, size_bytes=size_bytes)
            self._create(cluster.PVCS, pvc, namespace=ns)
            writer = writer_pod_object(
                f"{claim}-writer", claim=claim, run_id=self._run_id, workload=self._workload
            )
            self._create(cluster.PODS, writer, namespace=ns)
        return [self._wait_attached(claim) for claim in claims]

    def _ensure_namespace(self) -> None:
        ns = self._workload.namespace
        if self._api.find(cluster.NAMESPACES, ns) is None:
            self._api.create(
                cluster.NAMESPACES, {"metadata": {"name": ns, "labels": {config.RUN_LABEL: self._run_id}}}
            )
            self._made_namespace = True
            self._on_step(f"created namespace {ns}")

    def _create(self, resource: cluster.Resource, obj: Obj, *, namespace: str) -> None:
        try:
            self._api.create(resource, obj, namespace=namespace)
            self._on_step(f"created {resource.kind} {namespace}/{obj['metadata']['name']}")
        except cluster.ConflictError:
            self._on_step(f"reused {resource.kind} {namespace}/{obj['metadata']['name']} from an earlier run")

    def _wait_attached(self, claim: str) -> str:
        """The PVC's Longhorn volume, once bound, attached and written to by a Running pod."""
        ns = self._workload.namespace
        seen: list[str] = ["nothing yet"]

        def attached() -> str:
            pvc = self._api.get(cluster.PVCS, claim, namespace=ns)
            volume_name = (pvc.get("spec") or {}).get("volumeName")
            phase = (pvc.get("status") or {}).get("phase")
            pod = self._api.find(cluster.PODS, f"{claim}-writer", namespace=ns)
            pod_phase = ((pod or {}).get("status") or {}).get("phase")
            volume = (
                self._api.find(cluster.VOLUMES, volume_name, namespace=config.LONGHORN_NAMESPACE)
                if volume_name
                else None
            )
            state = ((volume or {}).get("status") or {}).get("state")
            seen[0] = f"PVC {phase}, volume {volume_name or '-'} {state or '-'}, writer {pod_phase or '-'}"
            if phase != "Bound" or not volume_name or state != "attached" or pod_phase != "Running":
                raise LookupError(seen[0])
            return str(volume_name)

        def progress(state: tenacity.RetryCallState) -> None:
            if state.attempt_number % 10 == 0:
                self._on_step(f"attempt {state.attempt_number}: waiting for {ns}/{claim}: {seen[0]}")

        try:
            return tenacity.Retrying(
                retry=tenacity.retry_if_exception_type((LookupError, cluster.UnreachableError)),
                wait=tenacity.wait_exponential(multiplier=0.2, max=3),
                stop=tenacity.stop_after_delay(self._workload.ready_deadline_s),
                before_sleep=progress,
                reraise=True,
            )(attached)
        except (LookupError, cluster.UnreachableError):
            raise cluster.ClusterError(
                f"timed out after {self._workload.ready_deadline_s:.0f}s waiting for PVC {ns}/{claim} to be "
                f"bound to an attached Longhorn volume with its writer Running; saw {seen[0]}"
            ) from None

    def revive(self, claims: list[str]) -> list[str]:
        """Recreate writers a reboot ended (Failed by graceful node shutdown, or evicted): a bare pod
        is not replaced by anyone, and its volume stays detached — which a recurring job skips.
        Returns the writers recreated."""
        ns = self._workload.namespace
        revived = []
        for claim in claims:
            name = f"{claim}-writer"
            pod = self._api.find(cluster.PODS, name, namespace=ns)
            phase = ((pod or {}).get("status") or {}).get("phase")
            if pod is not None and phase not in ("Failed", "Succeeded"):
                continue
            if pod is not None:
                with contextlib.suppress(cluster.NotFoundError):
                    self._api.delete(cluster.PODS, name, namespace=ns)
            writer = writer_pod_object(name, claim=claim, run_id=self._run_id, workload=self._workload)
            self._wait_created(writer)
            revived.append(name)
            self._on_step(f"writer {ns}/{name} was {phase or 'gone'} after the reboot: recreated it")
        return revived

    def _wait_created(self, writer: Obj) -> None:
        # The old pod's name may still be taken for a moment while it is being deleted.
        tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(cluster.ConflictError),
            wait=tenacity.wait_fixed(0.2),
            stop=tenacity.stop_after_delay(30),
            reraise=True,
        )(self._api.create, cluster.PODS, writer, namespace=self._workload.namespace)

    def claims(self) -> list[str]:
        """The soak's PVC names (the run label finds them)."""
        selector = f"{config.RUN_LABEL}={self._run_id}"
        items = self._api.list(
            cluster.PVCS, namespace=self._workload.namespace, label_selector=selector
        ).items
        return sorted(obj["metadata"]["name"] for obj in items)

    def remove(self) -> list[str]:
        """Delete the writers and PVCs (Longhorn deletes the volumes with them), and a namespace we made."""
        problems = []
        ns = self._workload.namespace
        selector = f"{config.RUN_LABEL}={self._run_id}"
        for resource in (cluster.PODS, cluster.PVCS):
            try:
                items = self._api.list(resource, namespace=ns, label_selector=selector).items
            except cluster.NotFoundError:
                continue
            for obj in items:
                try:
                    self._api.delete(resource, obj["metadata"]["name"], namespace=ns)
                    self._on_step(f"deleted {resource.kind} {ns}/{obj['metadata']['name']}")
                except cluster.NotFoundError:
                    pass
                except cluster.ClusterError as error:
                    problems.append(f"could not delete {resource.kind} {obj['metadata']['name']}: {error}")
        if self._made_namespace:
            try:
                self._api.delete(cluster.NAMESPACES, ns)
            except cluster.ClusterError as error:
                problems.append(f"could not delete namespace {ns}: {error}")
        return problems
