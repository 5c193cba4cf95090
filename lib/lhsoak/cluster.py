"""Cluster access: the one module that talks to the `kubernetes` client.

Objects travel as the raw JSON dicts the API server sends (no typed models), so the recorder, the
diagnosis and the report see exactly what `kubectl get -o json` would show, and a watch of 500 volumes
is not slowed down by model deserialisation.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from lhsoak import errors

log = logging.getLogger(__name__)

Obj = dict[str, Any]
EventType = Literal["ADDED", "MODIFIED", "DELETED", "BOOKMARK"]


@dataclass(frozen=True)
class Resource:
    """A Kubernetes resource type, addressed the way the REST API addresses it."""

    plural: str
    kind: str
    group: str = ""
    version: str = "v1"
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, *, namespace: str | None, name: str | None = None, sub: str | None = None) -> str:
        root = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        parts = [root]
        if self.namespaced and namespace:
            parts.append(f"namespaces/{namespace}")
        parts.append(self.plural)
        if name:
            parts.append(name)
        if sub:
            parts.append(sub)
        return "/".join(parts)


NAMESPACES = Resource("namespaces", "Namespace", namespaced=False)
NODES = Resource("nodes", "Node", namespaced=False)
PODS = Resource("pods", "Pod")
EVENTS = Resource("events", "Event")
JOBS = Resource("jobs", "Job", group="batch")
CRONJOBS = Resource("cronjobs", "CronJob", group="batch")
VOLUMES = Resource("volumes", "Volume", group="longhorn.io", version="v1beta2")
RECURRING_JOBS = Resource("recurringjobs", "RecurringJob", group="longhorn.io", version="v1beta2")
SNAPSHOTS = Resource("snapshots", "Snapshot", group="longhorn.io", version="v1beta2")
BACKUPS = Resource("backups", "Backup", group="longhorn.io", version="v1beta2")
BACKUP_TARGETS = Resource("backuptargets", "BackupTarget", group="longhorn.io", version="v1beta2")
SETTINGS = Resource("settings", "Setting", group="longhorn.io", version="v1beta2")
LONGHORN_NODES = Resource("nodes", "Node", group="longhorn.io", version="v1beta2")
PVCS = Resource("persistentvolumeclaims", "PersistentVolumeClaim")
STORAGE_CLASSES = Resource("storageclasses", "StorageClass", group="storage.k8s.io", namespaced=False)
DAEMONSETS = Resource("daemonsets", "DaemonSet", group="apps")
DEPLOYMENTS = Resource("deployments", "Deployment", group="apps")


class ClusterError(Exception):
    """The API answered with an error we did not expect."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class NotFoundError(ClusterError):
    """404: the object is not there."""


class ConflictError(ClusterError):
    """409: exists already, or a stale resourceVersion."""


class ExpiredError(ClusterError):
    """410: the resourceVersion a watch asked for is older than the server keeps."""


class UnreachableError(ClusterError):
    """The API server did not answer (connection refused, reset or timed out)."""


@dataclass(frozen=True)
class ObjectList:
    items: list[Obj]
    resource_version: str


@dataclass(frozen=True)
class WatchEvent:
    type: EventType
    object: Obj

    @property
    def resource_version(self) -> str:
        return str(self.object.get("metadata", {}).get("resourceVersion", ""))


def allowed_context(*, kubeconfig: Path | None, context: str | None, allowed: tuple[str, ...]) -> str:
    """The context to use, refusing one the user did not allow (so a soak never hits the wrong cluster)."""
    try:
        contexts, active = k8s_config.list_kube_config_contexts(
            config_file=str(kubeconfig) if kubeconfig else None
        )
    except (ConfigException, OSError) as error:
        where = kubeconfig or os.environ.get("KUBECONFIG") or "~/.kube/config"
        raise errors.UsageError(f"cannot read kubeconfig {where}: {error}") from None
    names = [entry["name"] for entry in contexts]
    chosen = context or (active or {}).get("name")
    if not chosen:
        raise errors.UsageError("kubeconfig has no current context; pass --context")
    if chosen not in names:
        raise errors.UsageError(f"context {chosen!r} is not in the kubeconfig ({', '.join(names)})")
    if chosen not in allowed:
        hint = ", ".join(allowed) if allowed else "none"
        raise errors.UsageError(
            f"context {chosen!r} is not allowed (allowed: {hint}); "
            "pass --allow-context or set cluster.context in the inventory"
        )
    return chosen


class Cluster:
    """A connection to one cluster's API server, speaking raw JSON through the kubernetes client."""

    def __init__(self, api: k8s_client.ApiClient, *, context: str) -> None:
        self._api = api
        self.context = context

    @classmethod
    def connect(
        cls,
        *,
        kubeconfig: Path | None,
        context: str | None,
        allowed: tuple[str, ...],
        request_timeout_s: float = 10.0,
    ) -> Cluster:
        chosen = allowed_context(kubeconfig=kubeconfig, context=context, allowed=allowed)
        configuration = k8s_client.Configuration()
        k8s_config.load_kube_config(
            config_file=str(kubeconfig) if kubeconfig else None,
            context=chosen,
            client_configuration=configuration,
        )
        # Retries are ours (with a deadline and a log line each); urllib3's silent ones would hide outages.
        configuration.retries = False
        # One connection per watch (a dozen) plus requests: the default pool (5 per core) would drop
        # connections with a "pool is full" warning on a 2-core machine.
        configuration.connection_pool_maxsize = 32
        cluster = cls(k8s_client.ApiClient(configuration), context=chosen)
        cluster.request_timeout_s = request_timeout_s
        return cluster

    request_timeout_s: float = 10.0

    @property
    def server(self) -> str:
        return str(self._api.configuration.host)

    def close(self) -> None:
        self._api.close()

    # -- plumbing --------------------------------------------------------------------------------

    def _call(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, Any] | None = None,
        body: Any = None,
        content_type: str = "application/json",
        stream: bool = False,
        timeout_s: float | None = None,
    ) -> Any:
        params = [(key, value) for key, value in (query or {}).items() if value is not None]
        try:
            response = self._api.call_api(
                path,
                method,
                query_params=params,
                header_params={"Accept": "application/json", "Content-Type": content_type},
                body=body,
                auth_settings=["BearerToken"],
                _preload_content=False,
                _return_http_data_only=True,
                _request_timeout=timeout_s or self.request_timeout_s,
            )
        except ApiException as error:
            raise _api_error(error, method=method, path=path) from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise UnreachableError(f"{method} {path}: {error}") from None
        if stream:
            return response
        try:
            return json.loads(response.data)
        finally:
            response.release_conn()

    # -- verbs -----------------------------------------------------------------------------------

    def version(self) -> Obj:
        return dict(self._call("GET", "/version"))

    def list(
        self,
        resource: Resource,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        field_selector: str | None = None,
    ) -> ObjectList:
        data = self._call(
            "GET",
            resource.path(namespace=namespace),
            query={"labelSelector": label_selector, "fieldSelector": field_selector},
        )
        items = [_with_kind(item, resource) for item in data.get("items", [])]
        return ObjectList(items=items, resource_version=data["metadata"]["resourceVersion"])

    def get(self, resource: Resource, name: str, *, namespace: str | None = None) -> Obj:
        return dict(self._call("GET", resource.path(namespace=namespace, name=name)))

    def find(self, resource: Resource, name: str, *, namespace: str | None = None) -> Obj | None:
        try:
            return self.get(resource, name, namespace=namespace)
        except NotFoundError:
            return None

    def create(self, resource: Resource, obj: Obj, *, namespace: str | None = None) -> Obj:
        body = {"apiVersion": resource.api_version, "kind": resource.kind, **obj}
        return dict(self._call("POST", resource.path(namespace=namespace), body=body))

    def replace(self, resource: Resource, obj: Obj, *, namespace: str | None = None) -> Obj:
        name = obj["metadata"]["name"]
        path = resource.path(namespace=namespace, name=name)
        return dict(self._call("PUT", path, body=obj))

    def patch(
        self,
        resource: Resource,
        name: str,
        patch: Obj,
        *,
        namespace: str | None = None,
        subresource: str | None = None,
    ) -> Obj:
        path = resource.path(namespace=namespace, name=name, sub=subresource)
        return dict(self._call("PATCH", path, body=patch, content_type="application/merge-patch+json"))

    def delete(
        self,
        resource: Resource,
        name: str,
        *,
        namespace: str | None = None,
        propagation: Literal["Background", "Foreground", "Orphan"] = "Background",
    ) -> None:
        body = {"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation}
        self._call("DELETE", resource.path(namespace=namespace, name=name), body=body)

    def pod_log(
        self,
        namespace: str,
        name: str,
        *,
        container: str | None = None,
        tail_lines: int | None = None,
        since_s: float | None = None,
        previous: bool = False,
    ) -> str:
        """A pod's container log, as `kubectl logs` prints it (CoreV1Api.read_namespaced_pod_log).

        When the server has no log to give — 400 for a container waiting to start, no previous
        run or a container the pod lacks; 404 for a pod that is gone — the answer is one line
        saying why, "(no log: <the server's message>)", not an exception: a missing log is
        evidence too. Other errors raise as `ClusterError`/`UnreachableError`.
        """
        options: dict[str, Any] = {"previous": previous}
        if container is not None:
            options["container"] = container
        if tail_lines is not None:
            options["tail_lines"] = tail_lines
        if since_s is not None:
            options["since_seconds"] = max(1, math.ceil(since_s))
        path = PODS.path(namespace=namespace, name=name, sub="log")
        try:
            # Raw bytes: with content preloaded the client json-decodes a log that happens to be
            # JSON and hands back its Python repr.
            response = k8s_client.CoreV1Api(self._api).read_namespaced_pod_log(
                name,
                namespace,
                _preload_content=False,
                _request_timeout=self.request_timeout_s,
                **options,
            )
        except ApiException as error:
            if error.status in (400, 404):
                return f"(no log: {_server_message(error)})\n"
            raise _api_error(error, method="GET", path=path) from None
        except (urllib3.exceptions.HTTPError, OSError) as error:
            raise UnreachableError(f"GET {path}: {error}") from None
        try:
            return bytes(response.data).decode("utf-8", errors="replace")
        finally:
            response.release_conn()

    def watch(
        self,
        resource: Resource,
        *,
        resource_version: str,
        namespace: str | None = None,
        label_selector: str | None = None,
        timeout_s: int = 60,
    ) -> WatchStream:
        """Events after `resource_version`, until the server ends the watch or `close()` is called.

        Iterating raises ExpiredError on 410 (re-list), UnreachableError when the connection breaks.
        """
        response = self._call(
            "GET",
            resource.path(namespace=namespace),
            query={
                "watch": "true",
                "resourceVersion": resource_version,
                "allowWatchBookmarks": "true",
                "timeoutSeconds": timeout_s,
                "labelSelector": label_selector,
            },
            stream=True,
            # The read timeout is the inactivity timeout: a silent half-open connection must not
            # blind the recorder forever.
            timeout_s=timeout_s + 15,
        )
        return WatchStream(response, resource)


class WatchStream:
    """One open watch; `close()` may be called from another thread to end a blocked read."""

    def __init__(self, response: Any, resource: Resource) -> None:
        self._response = response
        self._resource = resource
        self.closed = False

    def __iter__(self) -> Iterator[WatchEvent]:
        for batch in self.batches():
            yield from batch

    def batches(self) -> Iterator[list[WatchEvent]]:
        """The events, as they arrived together: one list per chunk the server sent.

        The API server flushes the events it has pending in one chunk, so a burst comes as one
        batch; a consumer can finish its work on a batch (an fsync) before it waits for the next.
        """
        try:
            yield from _decode_watch(self._response, self._resource)
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as error:
            if self.closed:
                return
            raise UnreachableError(f"watch {self._resource.plural}: {error}") from None
        except AttributeError:
            # close() from another thread can pull the socket from under urllib3 mid-read.
            if self.closed:
                return
            raise
        finally:
            self._response.release_conn()

    def close(self) -> None:
        self.closed = True
        # urllib3's shutdown() unblocks a read in progress on another thread; close() alone does not.
        # The reading thread may have closed the socket or released the connection already (the
        # watch just ended; urllib3 then raises RuntimeError or ValueError): that is fine.
        with contextlib.suppress(OSError, AttributeError, RuntimeError, ValueError):
            self._response.shutdown()
        with contextlib.suppress(OSError, AttributeError, RuntimeError, ValueError):
            self._response.close()


def _decode_watch(response: Any, resource: Resource) -> Iterator[list[WatchEvent]]:
    # One split per chunk: the client library's line reader copies the rest of a chunk for every
    # line, quadratic in a burst of hundreds of events.
    partial = b""
    for segment in response.stream(amt=None, decode_content=False):
        *lines, partial = (partial + _as_bytes(segment)).split(b"\n")
        batch = [_decode_event(line, resource) for line in lines if line.strip()]
        if batch:
            yield batch
    # A line cut off by the connection's end is dropped, as the client library does: the watch
    # resumes from the last whole event's resourceVersion and the server sends it again.


def _as_bytes(segment: bytes | str) -> bytes:
    return segment.encode() if isinstance(segment, str) else segment


def _decode_event(line: bytes, resource: Resource) -> WatchEvent:
    event = json.loads(line)
    kind = event.get("type")
    obj = event.get("object") or {}
    if kind == "ERROR":
        code = obj.get("code")
        message = obj.get("message", "watch error")
        if code == 410:
            raise ExpiredError(message, status=410)
        raise ClusterError(f"watch {resource.plural}: {message}", status=code)
    return WatchEvent(type=kind, object=_with_kind(obj, resource))


def _with_kind(obj: Obj, resource: Resource) -> Obj:
    # List items come without apiVersion/kind; the report and diagnosis want them.
    obj.setdefault("apiVersion", resource.api_version)
    obj.setdefault("kind", resource.kind)
    return obj


def _server_message(error: ApiException) -> str:
    """The message of the Status the server answered with (its reason phrase if none)."""
    message = str(error.reason or "error")
    with contextlib.suppress(ValueError, AttributeError):
        message = str(json.loads(error.body or "{}").get("message", message))
    return message


def _api_error(error: ApiException, *, method: str, path: str) -> ClusterError:
    message = _server_message(error)
    text = f"{method} {path}: {error.status} {message}"
    status = error.status
    if status == 404:
        return NotFoundError(text, status=status)
    if status == 409:
        return ConflictError(text, status=status)
    if status == 410:
        return ExpiredError(text, status=status)
    if status == 0 or status is None:
        return UnreachableError(text, status=status)
    return ClusterError(text, status=status)
