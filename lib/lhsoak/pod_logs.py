"""The logs an SRE reads first when a recurring job stalls, picked from the diagnosis: the
longhorn-manager pods of the nodes the findings point at and the blocking job pods, their last
`LOG_TAIL_LINES` lines each (and the run before a restart), read through the cluster's API
(`kubectl logs`); each headed by the kubectl command that reads the same log and why it was picked.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lhsoak import artifacts, cluster, diagnosis, longhorn, timestamps

log = logging.getLogger(__name__)

LOG_TAIL_LINES = 200
"""Lines of each container log the evidence carries (`kubectl logs --tail`)."""
LOG_MANAGER_PODS = 4
"""longhorn-manager pods whose logs the evidence carries, at most."""
LOG_JOB_PODS = 3
"""Blocking job pods whose logs the evidence carries, at most."""


@dataclass(frozen=True)
class LogSource:
    """One container log the evidence carries, and why."""

    namespace: str
    pod: str
    container: str | None
    """The container to read (None: the pod's only one)."""
    why: str
    """What makes it evidence ("longhorn-manager of worker-2, the node of job pod …")."""
    previous: bool = False
    """The run before the container's last restart (`kubectl logs --previous`)."""

    @property
    def title(self) -> str:
        """The log's name in the report: the pod, and "(previous)" for the run before a restart."""
        return f"{self.pod} (previous)" if self.previous else self.pod

    def command(self, *, tail_lines: int) -> str:
        """The kubectl command that reads the same log."""
        container = f" -c {self.container}" if self.container else ""
        previous = " --previous" if self.previous else ""
        return f"kubectl -n {self.namespace} logs {self.pod}{container} --tail={tail_lines}{previous}"


def log_sources(
    findings: Sequence[diagnosis.Finding],
    snapshot: diagnosis.ClusterSnapshot,
    *,
    manager_pods: int = LOG_MANAGER_PODS,
    job_pods: int = LOG_JOB_PODS,
) -> list[LogSource]:
    """The logs an SRE reads first about `findings`: the longhorn-manager pods of the nodes they
    point at (a job pod's node, a backup's node, a Node they name, the node of each stalled job's
    latest backup; every manager when they point at none), then the blocking job pods — each also
    as it ran before its last restart, if it restarted. At most `manager_pods` and `job_pods` pods;
    none without findings."""
    if not findings:
        return []
    pods = {(_meta(pod, "namespace"), _meta(pod, "name")): pod for pod in snapshot.pods}
    managers = [pod for pod in snapshot.pods if _is_manager(pod)]
    nodes: dict[str, str] = {}
    blocking: list[Mapping[str, Any]] = []
    for finding in findings:
        for ref in finding.objects:
            found = pods.get((ref.namespace or "", ref.name)) if ref.kind == "Pod" else None
            if found is not None and not _is_manager(found):
                if found not in blocking:
                    blocking.append(found)
                _note_node(nodes, _node_of(found), f"the node of job pod {ref.name}")
            elif ref.kind == "Backup":
                _note_node(nodes, _backup_node(snapshot, ref.name), f"the node of backup {ref.name}")
            elif ref.kind == "Node" and ref.api_version == "v1":
                _note_node(nodes, ref.name, "a node the diagnosis names")
    for job in dict.fromkeys(finding.job for finding in findings if finding.job):
        for backup in _latest_backups(snapshot, job):
            name = _meta(backup, "name")
            _note_node(nodes, _backup_node(snapshot, name), f"the node of {job}'s latest backup {name}")
    chosen = [
        (pod, f"longhorn-manager of {node}, {why}")
        for node, why in nodes.items()
        for pod in managers
        if _node_of(pod) == node
    ]
    if not nodes:
        chosen = [
            (pod, "longhorn-manager (the findings name no node)") for pod in sorted(managers, key=_node_of)
        ]
    sources: list[LogSource] = []
    for pod, why in chosen[:manager_pods]:
        sources += _sources_of(pod, why)
    for pod in blocking[:job_pods]:
        sources += _sources_of(pod, f"job pod on {_node_of(pod) or 'no node'}, named by the diagnosis")
    return sources


def read_logs(
    api: cluster.Cluster,
    sources: Sequence[LogSource],
    *,
    tail_lines: int = LOG_TAIL_LINES,
    now_s: float,
) -> dict[str, str]:
    """Each source's last `tail_lines` lines, under a header saying how to read it again and why it
    is there; a log that cannot be read says why instead. Stops asking once the server is unreachable."""
    logs: dict[str, str] = {}
    unreachable: str | None = None
    for source in sources:
        header = f"# {source.command(tail_lines=tail_lines)}\n# {source.why}; read at {timestamps.to_rfc3339(now_s)}\n"
        if unreachable is not None:
            logs[source.title] = header + unreachable
            continue
        try:
            text = api.pod_log(
                source.namespace,
                source.pod,
                container=source.container,
                tail_lines=tail_lines,
                previous=source.previous,
            )
        except cluster.UnreachableError as error:
            unreachable = text = f"(no log: the API server is unreachable: {error})\n"
        except cluster.ClusterError as error:
            text = f"(no log: {error})\n"
        logs[source.title] = header + (text or "(the log is empty)\n")
    return logs


def _sources_of(pod: Mapping[str, Any], why: str) -> list[LogSource]:
    namespace, name = _meta(pod, "namespace"), _meta(pod, "name")
    container = _main_container(pod)
    sources = [LogSource(namespace, name, container, why)]
    if _restarts(pod, container) > 0:
        sources.append(
            LogSource(namespace, name, container, f"{why}; its run before the last restart", previous=True)
        )
    return sources


def _note_node(nodes: dict[str, str], node: str, why: str) -> None:
    if node:
        nodes.setdefault(node, why)


def _meta(obj: Mapping[str, Any], key: str) -> str:
    return str((obj.get("metadata") or {}).get(key) or "")


def _node_of(pod: Mapping[str, Any]) -> str:
    return str((pod.get("spec") or {}).get("nodeName") or "")


def _is_manager(pod: Mapping[str, Any]) -> bool:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return labels.get("app") == longhorn.MANAGER_APP


def _main_container(pod: Mapping[str, Any]) -> str | None:
    """longhorn-manager's container in its pod (the pod has a second one in newer releases), else
    the pod's first container."""
    names = [str(c.get("name") or "") for c in (pod.get("spec") or {}).get("containers") or ()]
    if longhorn.MANAGER_APP in names:
        return longhorn.MANAGER_APP
    return names[0] if names else None


def _restarts(pod: Mapping[str, Any], container: str | None) -> int:
    for status in (pod.get("status") or {}).get("containerStatuses") or ():
        if container is None or status.get("name") == container:
            return int(status.get("restartCount") or 0)
    return 0


def _backup_node(snapshot: diagnosis.ClusterSnapshot, name: str) -> str:
    for backup in snapshot.backups:
        if _meta(backup, "name") == name:
            return str((backup.get("status") or {}).get("ownerID") or "")
    return ""


def _latest_backups(
    snapshot: diagnosis.ClusterSnapshot, job: str, *, count: int = 2
) -> list[Mapping[str, Any]]:
    """The job's newest backups (one per volume, as a run makes), newest first."""
    mine = [b for b in snapshot.backups if artifacts.backup_job(b) == job]
    mine.sort(key=lambda b: _meta(b, "creationTimestamp"), reverse=True)
    return mine[:count]
