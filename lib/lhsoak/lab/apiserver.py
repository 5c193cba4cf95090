"""The lab's Kubernetes API endpoint: HTTPS on 127.0.0.1, bearer token, the real REST API over a Store.

Serves discovery (legacy and aggregated), the kinds in `kinds.ALL` with get, list, watch, create,
update, patch, delete and deletecollection, the status subresource, pods/log (what `kubectl logs`
reads, from `lhsoak.lab.logs`), Tables for kubectl, a minimal OpenAPI v3 (so kubectl sends
server-side field validation instead of validating client-side) and `/metrics` with
`apiserver_request_total` as upstream names it. `go_down()`/`come_up()` emulate the control-plane
node rebooting: connections refused, watches cut, state and versions kept.

pods/log answers as the API server and the kubelet behind it do: text/plain; `container`,
`tailLines`, `sinceSeconds`, `sinceTime`, `timestamps`, `previous`, `limitBytes` and `follow`;
422 for invalid options, 400 for a container the pod does not have or a pod with no node, the
kubelet's 400s for a container with no log to show ("is waiting to start: ContainerCreating",
"previous terminated container … not found"), 500 while the node's kubelet is unreachable.

Not served (a clean error, never a wrong answer): protobuf and CBOR request bodies (415; kubectl's
typed commands such as `kubectl create namespace` send protobuf, `kubectl create -f`/`apply` send
JSON), server-side apply (415; kubectl says so), exec, eviction and other subresources (404), CRDs
created at run time (stored, but they add no served kind), writes to kinds whose discovery lists
only get, list and watch (405; apps/v1 DaemonSets, which the lab's DaemonSet controller alone
writes).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import datetime as dt
import hmac
import json
import logging
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NamedTuple

import yaml
from aiohttp import web

from lhsoak.lab import kinds, logs, pki, store
from lhsoak.lab.kinds import Kind
from lhsoak.lab.store import ApiError, Obj, Store

log = logging.getLogger(__name__)

JSON = "application/json"
AGGREGATED_DISCOVERY = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
PATCH_TYPES: dict[str, store.PatchType] = {
    "application/merge-patch+json": "merge",
    "application/json-patch+json": "json",
    "application/strategic-merge-patch+json": "strategic",
}
# batch/v1 Jobs keep orphaning their pods when a client names no propagationPolicy (kept upstream
# for backwards compatibility: jobStrategy.DefaultGarbageCollectionPolicy); others cascade.
DEFAULT_PROPAGATION: dict[Kind, store.Propagation] = {kinds.JOB: "Orphan"}
STATUS_VERBS = ("get", "patch", "update")
# The verb a request needs, by method and whether it names one object (DELETE on a collection is
# deletecollection); a kind whose discovery lacks it answers 405, as a real server for such a kind.
_WRITE_VERBS = {
    ("POST", False): "create",
    ("PUT", True): "update",
    ("PATCH", True): "patch",
    ("DELETE", True): "delete",
    ("DELETE", False): "deletecollection",
}
SYSTEM_NAMESPACES = ("default", "kube-system", "kube-public", "kube-node-lease")


@dataclass(frozen=True)
class ApiServerConfig:
    """How the lab's API endpoint behaves."""

    bookmark_interval_s: float = 60.0
    """Seconds between BOOKMARK events on an idle watch that asked for them (upstream: ~60 s)."""
    watch_timeout_s: float = 1800.0
    """Watch duration when the client names no timeoutSeconds (upstream: 1800-3600 s)."""
    watch_liveness_check_s: float = 2.0
    """Seconds between checks that an idle watch's client is still connected."""
    shutdown_timeout_s: float = 2.0
    """Seconds `stop()`/`go_down()` give in-flight requests before cutting them."""
    kubernetes_version: str = "v1.32.0"
    """gitVersion reported by /version."""


class RequestKey(NamedTuple):
    """The labels of one `apiserver_request_total` series."""

    verb: str
    group: str
    version: str
    resource: str
    subresource: str
    scope: str
    code: int


@dataclass(frozen=True)
class Target:
    """What a URL names: a kind, a namespace, a name and a subresource (any may be empty)."""

    kind: Kind
    namespace: str | None
    name: str | None
    subresource: str | None

    @property
    def scope(self) -> str:
        if self.name:
            return "resource"
        return "namespace" if self.namespace else "cluster"


def resolve(path: str) -> Target | None:
    """The Target of a resource URL (/api/v1/..., /apis/{group}/{version}/...); None otherwise."""
    parts = [p for p in path.split("/") if p]
    if len(parts) >= 3 and parts[0] == "api":
        group, rest = "", parts[2:]
        if parts[1] != "v1":
            return None
    elif len(parts) >= 4 and parts[0] == "apis":
        group, rest = parts[1], parts[3:]
    else:
        return None
    version = parts[1] if group == "" else parts[2]
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces" and rest[2] not in ("status", "finalize"):
        namespace, rest = rest[1], rest[2:]
    if not 1 <= len(rest) <= 3:
        return None
    try:
        kind = kinds.by_plural(group, rest[0])
    except KeyError:
        return None
    if kind.version != version or (namespace is not None and not kind.namespaced):
        return None
    name = rest[1] if len(rest) > 1 else None
    subresource = rest[2] if len(rest) > 2 else None
    return Target(kind, namespace, name, subresource)


# --- the server ----------------------------------------------------------------------------------


class ApiServer:
    """The HTTPS endpoint over a Store; one instance per lab, run in the store's event loop."""

    def __init__(
        self,
        store_: Store,
        *,
        pki_: pki.Pki,
        token: str,
        host: str = "127.0.0.1",
        port: int = 0,
        config: ApiServerConfig | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store_
        self.config = config or ApiServerConfig()
        self._pki = pki_
        self._token = token
        self._host = host
        self._port = port
        self._clock = clock
        self._ssl = pki_.server_context()
        self._runner: web.AppRunner | None = None
        self._watches: set[store.WatchStream] = set()
        self._transports: weakref.WeakSet[asyncio.Transport] = weakref.WeakSet()
        self._counts: collections.Counter[RequestKey] = collections.Counter()
        self._long_running: collections.Counter[RequestKey] = collections.Counter()
        self._encoded: collections.OrderedDict[tuple[int, str], bytes] = collections.OrderedDict()
        self._routes = self._route_table()

    # -- lifecycle --

    @property
    def port(self) -> int:
        """The TCP port (known after the first `start()`)."""
        return self._port

    @property
    def url(self) -> str:
        """https://127.0.0.1:<port>"""
        return f"https://{self._host}:{self._port}"

    @property
    def is_up(self) -> bool:
        """True while the endpoint accepts connections."""
        return self._runner is not None

    async def start(self) -> None:
        """Listen (on an ephemeral port the first time when port=0)."""
        if self._runner is not None:
            return
        runner = web.AppRunner(
            self._application(), access_log=None, shutdown_timeout=self.config.shutdown_timeout_s
        )
        await runner.setup()
        site = web.TCPSite(runner, self._host, self._port, ssl_context=self._ssl, reuse_address=True)
        await site.start()
        if self._port == 0:
            self._port = _bound_port(runner)
        self._runner = runner
        log.info("lab API server listening on %s", self.url)

    async def stop(self) -> None:
        """Stop listening and cut every connection (no TLS goodbye: as when the node vanishes)."""
        runner, self._runner = self._runner, None
        for stream in list(self._watches):
            stream.close()
        for transport in list(self._transports):
            transport.abort()
        if runner is not None:
            await runner.cleanup()

    async def go_down(self) -> None:
        """API outage: new connections are refused, open watches and keep-alives are cut; the
        store (objects, resourceVersion sequence) is untouched."""
        await self.stop()
        log.info("lab API server down (port %d refuses connections)", self._port)

    async def come_up(self) -> None:
        """End the outage: listen again on the same port."""
        await self.start()

    # -- request accounting --

    def request_counts(self) -> dict[RequestKey, int]:
        """Completed requests by verb, group, version, resource, subresource, scope and code."""
        return dict(self._counts)

    def request_total(self, *, verb: str | None = None, resource: str | None = None) -> int:
        """Completed requests, optionally of one verb (e.g. "LIST") and/or one resource."""
        return sum(
            n
            for key, n in self._counts.items()
            if (verb is None or key.verb == verb) and (resource is None or key.resource == resource)
        )

    def metrics_text(self) -> str:
        """The counters in Prometheus text format, as upstream names them."""
        lines = [
            "# HELP apiserver_request_total Counter of apiserver requests broken out for each verb, "
            "dry run value, group, version, resource, scope, component, and HTTP response code.",
            "# TYPE apiserver_request_total counter",
        ]
        lines += [f"apiserver_request_total{{{_labels(key)}}} {n}" for key, n in sorted(self._counts.items())]
        lines += [
            "# HELP apiserver_longrunning_requests Gauge of all active long-running apiserver requests.",
            "# TYPE apiserver_longrunning_requests gauge",
        ]
        lines += [
            f"apiserver_longrunning_requests{{{_labels(key, with_code=False)}}} {n}"
            for key, n in sorted(self._long_running.items())
        ]
        return "\n".join(lines) + "\n"

    # -- routing --

    def _application(self) -> web.Application:
        app = web.Application(client_max_size=8 * 1024 * 1024)
        app.router.add_route("*", "/{path:.*}", self._dispatch)
        return app

    def _route_table(self) -> dict[str, Callable[[web.Request], Awaitable[web.StreamResponse]]]:
        return {
            "/version": self._version,
            "/healthz": self._ok,
            "/livez": self._ok,
            "/readyz": self._ok,
            "/metrics": self._metrics,
            "/api": self._core_versions,
            "/apis": self._groups,
            "/openapi/v2": self._openapi_v2,
            "/openapi/v3": self._openapi_v3_root,
        }

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        if request.transport is not None:
            self._transports.add(request.transport)
        if not self._authorized(request):
            return _status_response(ApiError("Unauthorized", code=401, reason="Unauthorized"))
        path = request.path.rstrip("/") or "/"
        target = resolve(path)
        key_base = self._key_base(request, target)
        try:
            response = await self._handle(request, path, target)
        except ApiError as exc:
            response = _status_response(exc)
        except web.HTTPException:
            raise
        except Exception as exc:
            log.exception("lab API server: %s %s failed", request.method, request.path_qs)
            response = _status_response(ApiError(f"internal error: {exc}"))
        self._counts[key_base._replace(code=response.status)] += 1
        return response

    async def _handle(self, request: web.Request, path: str, target: Target | None) -> web.StreamResponse:
        if target is not None:
            return await self._resource(request, target)
        handler = self._routes.get(path)
        if handler is not None and request.method == "GET":
            return await handler(request)
        if request.method == "GET" and path.startswith("/openapi/v3/"):
            return await self._openapi_v3_doc(request, path.removeprefix("/openapi/v3/"))
        if request.method == "GET":
            discovery = self._discovery_document(path)
            if discovery is not None:
                return _json_response(discovery)
        return web.Response(status=404, text="404 page not found\n", content_type="text/plain")

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        return scheme.lower() == "bearer" and _equal_secret(value.strip(), self._token)

    def _key_base(self, request: web.Request, target: Target | None) -> RequestKey:
        verb = request.method
        query = request.query
        if target is None:
            return RequestKey(verb, "", "", "", "", "", 0)
        if verb == "GET" and not target.name:
            verb = "WATCH" if _truthy(query.get("watch")) else "LIST"
        elif verb == "GET" and _truthy(query.get("watch")):
            verb = "WATCH"
        elif verb == "DELETE" and not target.name:
            verb = "DELETECOLLECTION"
        elif verb == "PATCH" and request.content_type == "application/apply-patch+yaml":
            verb = "APPLY"
        kind = target.kind
        return RequestKey(
            verb, kind.group, kind.version, kind.plural, target.subresource or "", target.scope, 0
        )

    # -- non-resource endpoints --

    async def _ok(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text="ok", content_type="text/plain")

    async def _version(self, request: web.Request) -> web.StreamResponse:
        version = self.config.kubernetes_version
        major, minor = version.lstrip("v").split(".")[:2]
        return _json_response(
            {
                "major": major,
                "minor": minor,
                "gitVersion": version,
                "gitCommit": "0000000000000000000000000000000000000000",
                "gitTreeState": "clean",
                "buildDate": "2024-12-11T00:00:00Z",
                "goVersion": "go1.23.4",
                "compiler": "gc",
                "platform": "linux/amd64",
            }
        )

    async def _metrics(self, request: web.Request) -> web.StreamResponse:
        return web.Response(text=self.metrics_text(), content_type="text/plain")

    async def _core_versions(self, request: web.Request) -> web.StreamResponse:
        if _wants_aggregated(request):
            return _aggregated_response(_aggregated_list([""]))
        return _json_response(
            {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": f"{self._host}:{self._port}"}
                ],
            }
        )

    async def _groups(self, request: web.Request) -> web.StreamResponse:
        groups = [g for g in kinds.group_versions() if g]
        if _wants_aggregated(request):
            return _aggregated_response(_aggregated_list(groups))
        return _json_response(
            {"kind": "APIGroupList", "apiVersion": "v1", "groups": [_api_group(g) for g in groups]}
        )

    def _discovery_document(self, path: str) -> Obj | None:
        parts = [p for p in path.split("/") if p]
        group_versions = kinds.group_versions()
        if parts == ["api", "v1"]:
            return _resource_list("", "v1")
        if len(parts) == 2 and parts[0] == "apis" and parts[1] in group_versions:
            return _api_group(parts[1]) | {"kind": "APIGroup", "apiVersion": "v1"}
        if len(parts) == 3 and parts[0] == "apis" and parts[2] in group_versions.get(parts[1], ()):
            return _resource_list(parts[1], parts[2])
        return None

    async def _openapi_v2(self, request: web.Request) -> web.StreamResponse:
        # kubectl reads v3 first; a 404 here is what an apiserver with v2 disabled answers.
        raise store.NotFound("the server could not find the requested resource")

    async def _openapi_v3_root(self, request: web.Request) -> web.StreamResponse:
        paths = {
            _gv_path(group, version): {"serverRelativeURL": f"/openapi/v3/{_gv_path(group, version)}"}
            for group, versions in kinds.group_versions().items()
            for version in versions
        }
        return _json_response({"paths": paths})

    async def _openapi_v3_doc(self, request: web.Request, gv_path: str) -> web.StreamResponse:
        for group, versions in kinds.group_versions().items():
            for version in versions:
                if _gv_path(group, version) == gv_path:
                    return _json_response(_openapi_document(group, version))
        raise store.NotFound("the server could not find the requested resource")

    # -- resource endpoints --

    async def _resource(self, request: web.Request, target: Target) -> web.StreamResponse:
        if target.subresource == "log" and target.kind == kinds.POD and target.name:
            if request.method != "GET":
                raise _method_not_allowed(request.method)
            return await self._pod_log(request, target)
        if target.subresource not in (None, "status") or (
            target.subresource == "status" and not target.kind.has_status
        ):
            raise store.NotFound("the server could not find the requested resource")
        method = request.method
        verb = _WRITE_VERBS.get((method, target.name is not None))
        if verb is not None and verb not in target.kind.verbs:
            raise _method_not_allowed(method)
        if target.name is None:
            if method == "GET":
                if _truthy(request.query.get("watch")):
                    return await self._watch(request, target)
                return await self._list(request, target)
            if method == "POST":
                return await self._create(request, target)
            if method == "DELETE":
                return await self._delete_collection(request, target)
        else:
            if method == "GET":
                if _truthy(request.query.get("watch")):
                    return await self._watch(request, target)
                return self._get(request, target)
            if method == "PUT":
                return await self._update(request, target)
            if method == "PATCH":
                return await self._patch(request, target)
            if method == "DELETE" and target.subresource is None:
                return await self._delete(request, target)
        raise _method_not_allowed(method)

    def _get(self, request: web.Request, target: Target) -> web.StreamResponse:
        obj = self.store.get(target.kind, _name(target), namespace=target.namespace)
        table = _table_request(request)
        if table is not None:
            return _json_response(self._table(target.kind, [obj], request, headers=True))
        return _json_response(obj)

    async def _list(self, request: web.Request, target: Target) -> web.StreamResponse:
        query = request.query
        page = self.store.list_page(
            target.kind,
            namespace=target.namespace,
            label_selector=query.get("labelSelector"),
            field_selector=query.get("fieldSelector"),
            limit=_int_param(query, "limit"),
            continue_token=query.get("continue") or None,
            copy_objects=False,
        )
        metadata: Obj = {"resourceVersion": str(page.resource_version)}
        if page.continue_token:
            metadata["continue"] = page.continue_token
        if page.remaining_item_count is not None:
            metadata["remainingItemCount"] = page.remaining_item_count
        if _table_request(request) is not None:
            table = self._table(target.kind, page.items, request, headers=True)
            table["metadata"] = metadata
            return _json_response(table)
        kind = target.kind
        return _json_response(
            {
                "kind": kind.list_kind,
                "apiVersion": kind.api_version,
                "metadata": metadata,
                "items": page.items,
            }
        )

    async def _create(self, request: web.Request, target: Target) -> web.StreamResponse:
        body = await _read_body(request)
        self._check_fields(request, target.kind, body, None)
        created = self.store.create(target.kind, body, namespace=target.namespace)
        return _json_response(created, status=201, headers=self._warnings(target.kind, body))

    async def _update(self, request: web.Request, target: Target) -> web.StreamResponse:
        body = await _read_body(request)
        meta = body.setdefault("metadata", {})
        name = _name(target)
        if meta.get("name", name) != name:
            raise store.BadRequest(
                f"the name of the object ({meta['name']}) does not match the name on the URL ({name})"
            )
        if target.kind.namespaced and meta.get("namespace", target.namespace) != target.namespace:
            raise store.BadRequest(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        meta["name"] = name
        if target.kind.namespaced:
            meta["namespace"] = target.namespace
        self._check_fields(request, target.kind, body, target)
        updated = self.store.update(target.kind, body, subresource=_subresource(target))
        return _json_response(updated, headers=self._warnings(target.kind, body))

    async def _patch(self, request: web.Request, target: Target) -> web.StreamResponse:
        patch_type = PATCH_TYPES.get(request.content_type)
        if patch_type is None:
            raise store.UnsupportedMediaType(
                f"the body of the request was in an unknown format - accepted media types include: "
                f"{', '.join(PATCH_TYPES)}"
            )
        try:
            patch = json.loads(await request.read() or b"null")
        except ValueError as exc:
            raise store.BadRequest(f"error decoding patch: {exc}") from exc
        patched = self.store.patch(
            target.kind,
            _name(target),
            patch,
            patch_type=patch_type,
            namespace=target.namespace,
            subresource=_subresource(target),
        )
        return _json_response(patched)

    async def _delete(self, request: web.Request, target: Target) -> web.StreamResponse:
        options = await _delete_options(request)
        propagation = self._propagation(target.kind, request, options)
        last = self.store.delete(
            target.kind,
            _name(target),
            namespace=target.namespace,
            propagation=propagation,
            preconditions=options.get("preconditions"),
            grace_period_s=_grace_period(request, options),
        )
        still_there = bool(last["metadata"].get("deletionTimestamp")) and self._exists(target)
        return _json_response(last, status=202 if still_there else 200)

    async def _delete_collection(self, request: web.Request, target: Target) -> web.StreamResponse:
        options = await _delete_options(request)
        propagation = self._propagation(target.kind, request, options)
        items, list_rv = self.store.list(
            target.kind,
            namespace=target.namespace,
            label_selector=request.query.get("labelSelector"),
            field_selector=request.query.get("fieldSelector"),
        )
        deleted = []
        for item in items:
            with contextlib.suppress(store.NotFound):
                deleted.append(
                    self.store.delete(
                        target.kind,
                        item["metadata"]["name"],
                        namespace=item["metadata"].get("namespace"),
                        propagation=propagation,
                    )
                )
        kind = target.kind
        return _json_response(
            {
                "kind": kind.list_kind,
                "apiVersion": kind.api_version,
                "metadata": {"resourceVersion": str(list_rv)},
                "items": deleted,
            }
        )

    def _exists(self, target: Target) -> bool:
        try:
            self.store.get(target.kind, _name(target), namespace=target.namespace)
        except store.NotFound:
            return False
        return True

    def _propagation(self, kind: Kind, request: web.Request, options: Mapping[str, Any]) -> store.Propagation:
        value = options.get("propagationPolicy") or request.query.get("propagationPolicy")
        if options.get("orphanDependents") is True or _truthy(request.query.get("orphanDependents")):
            value = value or "Orphan"
        if value is None:
            return DEFAULT_PROPAGATION.get(kind, "Background")
        policies: dict[str, store.Propagation] = {
            "Background": "Background",
            "Foreground": "Foreground",
            "Orphan": "Orphan",
        }
        if value not in policies:
            raise store.BadRequest(f'propagationPolicy: Unsupported value: "{value}"')
        return policies[value]

    # -- pods/log --

    async def _pod_log(self, request: web.Request, target: Target) -> web.StreamResponse:
        name = _name(target)
        pod = self.store.get(kinds.POD, name, namespace=target.namespace)
        options = LogOptions.parse(request.query, pod_name=name)
        container = _log_container(pod, options.container)
        node = str((pod.get("spec") or {}).get("nodeName") or "")
        if not node:
            raise store.BadRequest(f"pod {name} does not have a host assigned")
        pod_logs = logs.of(self.store, clock=self._clock)
        if not pod_logs.node_reachable(node):
            # What the API server's dial to the kubelet says; not a Status from REST storage.
            address = f"{_kubelet_host(self.store, node)}:{logs.KUBELET_PORT}"
            raise ApiError(
                f'Get "https://{address}/containerLogs/{target.namespace}/{name}/{container}": '
                f"dial tcp {address}: connect: connection refused",
                code=500,
                reason="",
            )
        run = pod_logs.run(pod, container, _log_container_id(pod, container, previous=options.previous))
        selected = options.select(run.lines() if run is not None else [], now_s=self._clock())
        if not options.follow or run is None or not run.running:
            return web.Response(body=options.limit(selected), content_type="text/plain")
        return await self._follow(request, run, options, first=selected)

    async def _follow(
        self, request: web.Request, run: logs.ContainerRun, options: LogOptions, *, first: bytes
    ) -> web.StreamResponse:
        """Stream the run's log until it ends, the client goes or limitBytes is spent."""
        response = web.StreamResponse(status=200, headers={"Content-Type": "text/plain"})
        await response.prepare(request)
        budget = options.limit_bytes
        written = run.written

        async def send(chunk: bytes) -> bool:
            nonlocal budget
            if budget is not None:
                chunk, budget = chunk[:budget], budget - len(chunk[:budget])
            if chunk:
                await response.write(chunk)
            return budget is None or budget > 0

        with contextlib.suppress(ConnectionResetError, asyncio.CancelledError):
            going = await send(first)
            while going and run.running:
                if request.transport is None or request.transport.is_closing():
                    return response
                await run.changed(timeout_s=self.config.watch_liveness_check_s)
                fresh, written = run.lines_after(written), run.written
                going = await send(options.format(fresh))
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await response.write_eof()
        return response

    # -- field validation (unknown fields of custom resources) --

    def _check_fields(self, request: web.Request, kind: Kind, body: Obj, target: Target | None) -> None:
        if request.query.get("fieldValidation") != "Strict":
            return
        unknown = self._unknown_fields(kind, body)
        if unknown:
            raise store.BadRequest(
                "strict decoding error: " + ", ".join(f'unknown field "{f}"' for f in unknown)
            )

    def _warnings(self, kind: Kind, body: Obj) -> dict[str, str]:
        unknown = self._unknown_fields(kind, body)
        if not unknown:
            return {}
        return {"Warning": ", ".join(f'299 - "unknown field \\"{f}\\""' for f in unknown)}

    def _unknown_fields(self, kind: Kind, body: Obj) -> list[str]:
        validator = self.store.validator
        if not isinstance(validator, kinds.SchemaValidator) or not validator.knows(kind):
            return []
        return validator.check(kind, body).unknown_fields

    # -- tables --

    def _table(self, kind: Kind, objs: list[Obj], request: web.Request, *, headers: bool) -> Obj:
        include = request.query.get("includeObject", "Metadata")
        crd = None
        if kind.is_custom:
            with contextlib.suppress(store.NotFound):
                crd = self.store.get(kinds.CRD, f"{kind.plural}.{kind.group}")
        return table(kind, objs, crd=crd, include_object=include, headers=headers, now=self._clock())

    # -- watch --

    async def _watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        query = request.query
        field_selector = query.get("fieldSelector")
        if target.name:
            by_name = f"metadata.name={target.name}"
            field_selector = f"{field_selector},{by_name}" if field_selector else by_name
        send_initial = _truthy(query.get("sendInitialEvents"))
        resource_version = _int_param(query, "resourceVersion")
        response = web.StreamResponse(status=200, headers={"Content-Type": JSON})
        response.enable_chunked_encoding()
        try:
            stream = self.store.watch(
                target.kind,
                namespace=target.namespace,
                resource_version=None if send_initial else resource_version,
                label_selector=query.get("labelSelector"),
                field_selector=field_selector,
                copy_objects=False,
            )
        except store.Gone as exc:
            # As the real server: 200, then one ERROR event carrying the 410 Status.
            await response.prepare(request)
            await response.write(_line({"type": "ERROR", "object": exc.status()}))
            await response.write_eof()
            return response
        key = self._key_base(request, target)._replace(code=0)
        self._watches.add(stream)
        self._long_running[key] += 1
        try:
            await response.prepare(request)
            await self._pump(response, stream, target, request, send_initial=send_initial)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            stream.close()
            self._watches.discard(stream)
            self._long_running[key] -= 1
            if not self._long_running[key]:
                del self._long_running[key]
        with contextlib.suppress(ConnectionResetError, RuntimeError):
            await response.write_eof()
        return response

    async def _pump(
        self,
        response: web.StreamResponse,
        stream: store.WatchStream,
        target: Target,
        request: web.Request,
        *,
        send_initial: bool,
    ) -> None:
        query = request.query
        timeout_s = float(_int_param(query, "timeoutSeconds") or self.config.watch_timeout_s)
        bookmarks = _truthy(query.get("allowWatchBookmarks"))
        deadline = asyncio.get_running_loop().time() + timeout_s
        as_table = _table_request(request) is not None
        first = True
        if send_initial:
            chunk = self._encode_events(stream.drain_nowait(), target, request, as_table, first=first)
            first = False
            chunk += _line(_bookmark(target.kind, stream.bookmark_version(), initial_events_end=True))
            await response.write(chunk)
        loop = asyncio.get_running_loop()
        next_bookmark = loop.time() + self.config.bookmark_interval_s
        while (now := loop.time()) < deadline:
            if request.transport is None or request.transport.is_closing():
                return  # the client went away: free the stream now, not at the timeout
            wake_at = min(
                deadline, next_bookmark if bookmarks else deadline, now + self.config.watch_liveness_check_s
            )
            event = await stream.next_event(timeout_s=max(0.0, wake_at - now))
            if event is not None:
                events = [event, *stream.drain_nowait()]
                await response.write(self._encode_events(events, target, request, as_table, first=first))
                first = False
            elif stream.closed:
                return
            if bookmarks and loop.time() >= next_bookmark:
                await response.write(_line(_bookmark(target.kind, stream.bookmark_version())))
                next_bookmark = loop.time() + self.config.bookmark_interval_s

    def _encode_events(
        self,
        events: Iterable[store.WatchEvent],
        target: Target,
        request: web.Request,
        as_table: bool,
        *,
        first: bool,
    ) -> bytes:
        chunks = []
        for event in events:
            if as_table:
                table = self._table(target.kind, [event.object], request, headers=first)
                chunks.append(_line({"type": event.type, "object": table}))
                first = False
            else:
                chunks.append(self._encoded_event(event))
        return b"".join(chunks)

    def _encoded_event(self, event: store.WatchEvent) -> bytes:
        # One change reaches many watchers: encode it once. (version, type) names the line exactly,
        # since every change has its own resourceVersion.
        key = (event.resource_version, event.type)
        line = self._encoded.get(key)
        if line is None:
            line = _line({"type": event.type, "object": event.object})
            self._encoded[key] = line
            if len(self._encoded) > 4096:
                self._encoded.popitem(last=False)
        return line


# --- pods/log ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LogOptions:
    """core/v1 PodLogOptions, from a pods/log request's query."""

    container: str = ""
    follow: bool = False
    previous: bool = False
    timestamps: bool = False
    tail_lines: int | None = None
    since_seconds: int | None = None
    since_time_s: float | None = None
    limit_bytes: int | None = None

    @classmethod
    def parse(cls, query: Mapping[str, str], *, pod_name: str) -> LogOptions:
        """The options, validated as ValidatePodLogOptions does (422 Invalid naming the fields)."""
        since_time = query.get("sinceTime")
        options = cls(
            container=query.get("container", ""),
            follow=_truthy(query.get("follow")),
            previous=_truthy(query.get("previous")),
            timestamps=_truthy(query.get("timestamps")),
            tail_lines=_int_param(query, "tailLines"),
            since_seconds=_int_param(query, "sinceSeconds"),
            since_time_s=_rfc3339_param("sinceTime", since_time) if since_time else None,
            limit_bytes=_int_param(query, "limitBytes"),
        )
        problems = options._problems()
        if problems:
            shown = problems[0] if len(problems) == 1 else "[" + ", ".join(problems) + "]"
            raise store.Invalid(f'PodLogOptions "{pod_name}" is invalid: {shown}')
        return options

    def _problems(self) -> list[str]:
        problems = []
        if self.tail_lines is not None and self.tail_lines < 0:
            problems.append(
                f"tailLines: Invalid value: {self.tail_lines}: must be greater than or equal to 0"
            )
        if self.limit_bytes is not None and self.limit_bytes < 1:
            problems.append(f"limitBytes: Invalid value: {self.limit_bytes}: must be greater than 0")
        if self.since_seconds is not None and self.since_time_s is not None:
            problems.append(": Forbidden: at most one of `sinceTime` or `sinceSeconds` may be specified")
        elif self.since_seconds is not None and self.since_seconds < 1:
            problems.append(f"sinceSeconds: Invalid value: {self.since_seconds}: must be greater than 0")
        return problems

    def select(self, lines: list[logs.Line], *, now_s: float) -> bytes:
        """The kubelet's reading of a log: the last `tailLines`, then those since the cut-off."""
        if self.tail_lines is not None:
            lines = lines[len(lines) - self.tail_lines :] if self.tail_lines else []
        since_s = self.since_time_s
        if self.since_seconds is not None:
            since_s = now_s - self.since_seconds
        if since_s is not None:
            lines = [line for line in lines if line.at_s >= since_s]
        return self.format(lines)

    def format(self, lines: list[logs.Line]) -> bytes:
        if self.timestamps:
            return "".join(f"{logs.rfc3339_nano(line.at_s)} {line.text}\n" for line in lines).encode()
        return "".join(f"{line.text}\n" for line in lines).encode()

    def limit(self, text: bytes) -> bytes:
        return text if self.limit_bytes is None else text[: self.limit_bytes]


def _rfc3339_param(name: str, value: str) -> float:
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError as exc:
        raise store.BadRequest(f'{name}: Invalid value: "{value}": must be an RFC 3339 time') from exc


def _log_container(pod: Obj, container: str) -> str:
    """The container a pods/log request names, as the API server validates it (400 otherwise)."""
    spec = pod.get("spec") or {}
    names = [str(c.get("name", "")) for c in spec.get("containers") or ()]
    name = pod["metadata"]["name"]
    if not container:
        if len(names) == 1:
            return names[0]
        if not names:
            raise store.BadRequest(f"a container name must be specified for pod {name}")
        every = [*names, *(str(c.get("name", "")) for c in spec.get("initContainers") or ())]
        raise store.BadRequest(
            f"a container name must be specified for pod {name}, choose one of: [{' '.join(every)}]"
        )
    known = {*names, *(str(c.get("name", "")) for c in spec.get("initContainers") or ())}
    if container not in known:
        raise store.BadRequest(f"container {container} is not valid for pod {name}")
    return container


def _log_container_id(pod: Obj, container: str, *, previous: bool) -> str:
    """The run whose log the kubelet reads, from the pod's status (validateContainerLogStatus);
    400 with the kubelet's words when there is none."""
    pod_name = pod["metadata"]["name"]
    statuses = (pod.get("status") or {}).get("containerStatuses") or ()
    found = [s for s in statuses if s.get("name") == container]
    if not found:
        raise store.BadRequest(f'container "{container}" in pod "{pod_name}" is not available')
    status = found[0]
    last = (status.get("lastState") or {}).get("terminated")
    state = status.get("state") or {}
    if previous:
        if not last or not last.get("containerID"):
            raise store.BadRequest(
                f'previous terminated container "{container}" in pod "{pod_name}" not found'
            )
        return str(last["containerID"])
    if state.get("running") is not None:
        return str(status.get("containerID", ""))
    terminated = state.get("terminated")
    if terminated is not None:
        if terminated.get("containerID"):
            return str(terminated["containerID"])
        if last and last.get("containerID"):
            return str(last["containerID"])
        raise store.BadRequest(f'container "{container}" in pod "{pod_name}" is terminated')
    if last is not None:
        if not last.get("containerID"):
            raise store.BadRequest(f'container "{container}" in pod "{pod_name}" is terminated')
        return str(last["containerID"])
    waiting = state.get("waiting")
    if waiting is not None:
        reason = {
            "ErrImagePull": "image can't be pulled",
            "ImagePullBackOff": "trying and failing to pull image",
        }.get(str(waiting.get("reason")), str(waiting.get("reason", "")))
        raise store.BadRequest(f'container "{container}" in pod "{pod_name}" is waiting to start: {reason}')
    raise store.BadRequest(f'container "{container}" in pod "{pod_name}" is waiting to start - no logs yet')


def _kubelet_host(lab: Store, node: str) -> str:
    """The address the API server dials for a node's kubelet: its InternalIP."""
    try:
        obj = lab.get(kinds.NODE, node)
    except store.NotFound:
        return node
    for address in (obj.get("status") or {}).get("addresses") or ():
        if address.get("type") == "InternalIP":
            return str(address.get("address"))
    return node


# --- the store a fresh lab cluster starts with ------------------------------------------------------


def lab_store(
    *,
    crd_path: Path | None = None,
    clock: Callable[[], float] = time.time,
    history: int = 20000,
    graceful_pod_deletion: bool = False,
) -> Store:
    """A store as a fresh cluster has it: the system namespaces and the longhorn.io CRDs (the
    real ones from `crd_path` when given, validating every Longhorn object written; else minimal
    ones from kinds.py that accept any shape). `graceful_pod_deletion`: see `Store`."""
    loaded = kinds.load_crds(crd_path) if crd_path is not None else {}
    validator = kinds.SchemaValidator.from_crds(loaded) if loaded else None
    lab = Store(
        clock=clock, history=history, validator=validator, graceful_pod_deletion=graceful_pod_deletion
    )
    for namespace in SYSTEM_NAMESPACES:
        lab.create(kinds.NAMESPACE, {"metadata": {"name": namespace}})
    install_crds(lab, kinds.crds_for(kinds.LONGHORN, loaded))
    return lab


def install_crds(lab: Store, crds: Iterable[Obj]) -> None:
    """Create CRD objects and mark them Established, as the apiextensions controllers do."""
    for crd in crds:
        body = {k: v for k, v in crd.items() if k != "status"}
        created = lab.create(kinds.CRD, body)
        names = crd["spec"]["names"]
        status = {
            "acceptedNames": {k: v for k, v in names.items() if k != "categories" or v},
            "storedVersions": [v["name"] for v in crd["spec"]["versions"] if v.get("storage")],
            "conditions": [
                _condition("NamesAccepted", "NoConflicts", "no conflicts found", created),
                _condition(
                    "Established", "InitialNamesAccepted", "the initial names have been accepted", created
                ),
            ],
        }
        lab.update(kinds.CRD, {**created, "status": status}, subresource="status")


def _condition(type_: str, reason: str, message: str, obj: Obj) -> Obj:
    return {
        "type": type_,
        "status": "True",
        "reason": reason,
        "message": message,
        "lastTransitionTime": obj["metadata"]["creationTimestamp"],
    }


# --- discovery documents ---------------------------------------------------------------------------


def _bookmark(kind: Kind, resource_version: int, *, initial_events_end: bool = False) -> Obj:
    metadata: Obj = {"resourceVersion": str(resource_version)}
    if initial_events_end:
        metadata["annotations"] = {"k8s.io/initial-events-end": "true"}
    return {
        "type": "BOOKMARK",
        "object": {"kind": kind.kind, "apiVersion": kind.api_version, "metadata": metadata},
    }


def _api_group(group: str) -> Obj:
    versions = kinds.group_versions()[group]
    entries = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": entries, "preferredVersion": entries[0]}


def _resource_list(group: str, version: str) -> Obj:
    resources: list[Obj] = []
    for kind in kinds.kinds_in(group, version):
        entry: Obj = {
            "name": kind.plural,
            "singularName": kind.singular,
            "namespaced": kind.namespaced,
            "kind": kind.kind,
            "verbs": list(kind.verbs),
        }
        if kind.short_names:
            entry["shortNames"] = list(kind.short_names)
        if kind.categories:
            entry["categories"] = list(kind.categories)
        resources.append(entry)
        if kind.has_status:
            resources.append(
                {
                    "name": f"{kind.plural}/status",
                    "singularName": "",
                    "namespaced": kind.namespaced,
                    "kind": kind.kind,
                    "verbs": _status_verbs(kind),
                }
            )
        if kind == kinds.POD:
            resources.append(
                {"name": "pods/log", "singularName": "", "namespaced": True, "kind": "Pod", "verbs": ["get"]}
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


def _aggregated_list(groups: Iterable[str]) -> Obj:
    items = []
    for group in groups:
        versions = [
            {
                "version": version,
                "resources": [_aggregated_resource(k) for k in kinds.kinds_in(group, version)],
                "freshness": "Current",
            }
            for version in kinds.group_versions()[group]
        ]
        items.append({"metadata": {"name": group, "creationTimestamp": None}, "versions": versions})
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": "apidiscovery.k8s.io/v2",
        "metadata": {},
        "items": items,
    }


def _aggregated_resource(kind: Kind) -> Obj:
    response_kind = {"group": kind.group, "version": kind.version, "kind": kind.kind}
    entry: Obj = {
        "resource": kind.plural,
        "responseKind": response_kind,
        "scope": "Namespaced" if kind.namespaced else "Cluster",
        "singularResource": kind.singular,
        "verbs": list(kind.verbs),
    }
    if kind.short_names:
        entry["shortNames"] = list(kind.short_names)
    if kind.categories:
        entry["categories"] = list(kind.categories)
    if kind.has_status:
        entry["subresources"] = [
            {"subresource": "status", "responseKind": response_kind, "verbs": _status_verbs(kind)}
        ]
    if kind == kinds.POD:
        entry.setdefault("subresources", []).append(
            {"subresource": "log", "responseKind": response_kind, "verbs": ["get"]}
        )
    return entry


def _status_verbs(kind: Kind) -> list[str]:
    return [verb for verb in STATUS_VERBS if verb in kind.verbs]


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _openapi_document(group: str, version: str) -> Obj:
    # Just enough for kubectl's QueryParamVerifierV3: every write operation of every kind, tagged
    # with its group/version/kind and declaring the fieldValidation parameter.
    field_validation = {
        "name": "fieldValidation",
        "in": "query",
        "schema": {"type": "string", "uniqueItems": True},
    }
    paths: Obj = {}
    for kind in kinds.kinds_in(group, version):
        if "create" not in kind.verbs:
            continue
        gvk = {"group": kind.group, "version": kind.version, "kind": kind.kind}
        base = f"/{_gv_path(group, version)}"
        collection = (
            f"{base}/namespaces/{{namespace}}/{kind.plural}" if kind.namespaced else f"{base}/{kind.plural}"
        )
        operation = {
            "parameters": [field_validation],
            "x-kubernetes-group-version-kind": gvk,
            "responses": {},
        }
        paths[collection] = {"post": {**operation, "x-kubernetes-action": "post"}}
        paths[f"{collection}/{{name}}"] = {
            "put": {**operation, "x-kubernetes-action": "put"},
            "patch": {**operation, "x-kubernetes-action": "patch"},
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": "v1.32.0"},
        "paths": paths,
        "components": {"schemas": {}},
    }


# --- HTTP helpers ----------------------------------------------------------------------------------


def _json_response(body: Any, *, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status,
        content_type=JSON,
        headers=headers,
    )


def _aggregated_response(body: Obj) -> web.Response:
    response = web.Response(body=json.dumps(body, separators=(",", ":")).encode(), status=200)
    response.headers["Content-Type"] = AGGREGATED_DISCOVERY
    return response


def _method_not_allowed(method: str) -> ApiError:
    return ApiError(
        f"the server does not allow this method on the requested resource ({method})",
        code=405,
        reason="MethodNotAllowed",
    )


def _status_response(error: ApiError) -> web.Response:
    body = error.status()
    if not body.get("reason"):
        del body["reason"]  # metav1.Status omits an empty (unknown) reason
    return _json_response(body, status=error.code)


def _line(obj: Obj) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode() + b"\n"


def _wants_aggregated(request: web.Request) -> bool:
    accept = request.headers.get("Accept", "")
    return "as=APIGroupDiscoveryList" in accept and "v=v2;" in accept.replace(" ", "") + ";"


def _table_request(request: web.Request) -> str | None:
    accept = request.headers.get("Accept", "")
    for part in accept.split(","):
        params = dict(p.strip().partition("=")[::2] for p in part.split(";")[1:])
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io" and params.get("v") == "v1":
            return "v1"
    return None


def _truthy(value: str | None) -> bool:
    return value is not None and value.lower() in ("true", "1")


def _int_param(query: Mapping[str, str], name: str) -> int | None:
    value = query.get(name)
    if not value:
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise store.BadRequest(f'{name}: Invalid value: "{value}": must be an integer') from exc


def _name(target: Target) -> str:
    assert target.name is not None
    return target.name


def _subresource(target: Target) -> Literal["status"] | None:
    return "status" if target.subresource == "status" else None


async def _read_body(request: web.Request) -> Obj:
    _check_media_type(request)
    raw = await request.read()
    try:
        body = yaml.safe_load(raw) if "yaml" in request.content_type else json.loads(raw)
    except (ValueError, yaml.YAMLError) as exc:
        raise store.BadRequest(f"error decoding the request body: {exc}") from exc
    if not isinstance(body, dict):
        raise store.BadRequest("the body of the request must be a JSON object")
    return body


def _check_media_type(request: web.Request) -> None:
    # Only JSON (and YAML) bodies: a protobuf or CBOR body gets 415, as from a real server without
    # that codec; client-go then retries with JSON.
    if request.content_type not in (JSON, "application/yaml", "application/octet-stream") and (
        request.can_read_body
    ):
        raise store.UnsupportedMediaType(
            f"the body of the request was in an unknown format - accepted media types include: "
            f"{JSON}, application/yaml"
        )


async def _delete_options(request: web.Request) -> Obj:
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        options = json.loads(raw)
    except ValueError as exc:
        raise store.BadRequest(f"error decoding DeleteOptions: {exc}") from exc
    return options if isinstance(options, dict) else {}


def _grace_period(request: web.Request, options: Mapping[str, Any]) -> int | None:
    value = options.get("gracePeriodSeconds")
    if value is None:
        return _int_param(request.query, "gracePeriodSeconds")
    return int(value)


def _equal_secret(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _labels(key: RequestKey, *, with_code: bool = True) -> str:
    pairs = [
        ("verb", key.verb),
        ("group", key.group),
        ("version", key.version),
        ("resource", key.resource),
        ("subresource", key.subresource),
        ("scope", key.scope),
        ("component", "apiserver"),
    ]
    if with_code:
        pairs.append(("code", str(key.code)))
    return ",".join(f'{k}="{v}"' for k, v in pairs)


def _bound_port(runner: web.AppRunner) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple):
            return int(address[1])
    raise RuntimeError("the API server is not listening on a TCP port")


# --- tables (what `kubectl get` prints) ----------------------------------------------------------


@dataclass(frozen=True)
class Column:
    """One Table column: its definition and how a cell is computed from an object."""

    name: str
    cell: Callable[[Obj, float], Any]
    type: str = "string"
    priority: int = 0
    format: str = ""
    description: str = ""

    def definition(self) -> Obj:
        return {
            "name": self.name,
            "type": self.type,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        }


def table(
    kind: Kind,
    objs: Iterable[Obj],
    *,
    crd: Obj | None = None,
    include_object: str = "Metadata",
    headers: bool = True,
    now: float,
) -> Obj:
    """A meta.k8s.io/v1 Table of `objs`, with the columns the real server prints for the kind
    (for custom resources: Name plus the CRD's additionalPrinterColumns, else Age)."""
    columns = _crd_columns(kind, crd) if kind.is_custom else _BUILTIN_COLUMNS.get(kind, _DEFAULT_COLUMNS)
    rows = [
        {"cells": [c.cell(obj, now) for c in columns], "object": _row_object(obj, include_object)}
        for obj in objs
    ]
    out: Obj = {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": {}, "rows": rows}
    out["columnDefinitions"] = [c.definition() for c in columns] if headers else []
    return out


def _row_object(obj: Obj, include_object: str) -> Obj | None:
    if include_object == "None":
        return None
    if include_object == "Object":
        return obj
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": obj["metadata"]}


def human_duration(seconds: float) -> str:
    """A duration as kubectl prints ages ("45s", "5m30s", "3h20m", "2d4h"), after apimachinery's
    duration.HumanDuration."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    days = hours // 24
    if hours < 24 * 8:
        return f"{days}d{hours % 24}h" if hours % 24 else f"{days}d"
    if days < 365 * 2:
        return f"{days}d"
    years = days // 365
    if days < 365 * 8:
        return f"{years}y{days % 365}d" if days % 365 else f"{years}y"
    return f"{years}y"


def _since(timestamp: Any, now: float) -> str:
    if not timestamp:
        return "<unknown>"
    try:
        moment = dt.datetime.fromisoformat(str(timestamp).replace("Z", "+00:00"))
    except ValueError:
        return "<invalid>"
    return human_duration(now - moment.timestamp())


def _path(obj: Any, dotted: str) -> Any:
    for part in dotted.lstrip(".").replace("[", ".[").split("."):
        if part.startswith("[") and part.endswith("]") and isinstance(obj, list):
            index = int(part[1:-1])
            obj = obj[index] if -len(obj) <= index < len(obj) else None
        elif isinstance(obj, dict):
            obj = obj.get(part)
        else:
            return None
        if obj is None:
            return None
    return obj


def _age(obj: Obj, now: float) -> str:
    return _since(obj["metadata"].get("creationTimestamp"), now)


def _name_cell(obj: Obj, now: float) -> str:
    return str(obj["metadata"]["name"])


NAME = Column("Name", _name_cell, format="name", description="Name must be unique within a namespace.")
AGE = Column(
    "Age",
    _age,
    description="CreationTimestamp is a timestamp representing the server time when this object was created.",
)
_DEFAULT_COLUMNS = [NAME, AGE]


def _pod_ready(obj: Obj, now: float) -> str:
    statuses = (obj.get("status") or {}).get("containerStatuses") or []
    total = len((obj.get("spec") or {}).get("containers") or [])
    return f"{sum(1 for c in statuses if c.get('ready'))}/{total}"


def _pod_status(obj: Obj, now: float) -> str:
    status = obj.get("status") or {}
    reason = status.get("reason") or status.get("phase") or "Unknown"
    for container in status.get("containerStatuses") or []:
        state = container.get("state") or {}
        if (state.get("waiting") or {}).get("reason"):
            reason = state["waiting"]["reason"]
        elif (state.get("terminated") or {}).get("reason"):
            reason = state["terminated"]["reason"]
    if obj["metadata"].get("deletionTimestamp"):
        reason = "Terminating"
    return str(reason)


def _pod_restarts(obj: Obj, now: float) -> int:
    return sum(
        int(c.get("restartCount", 0)) for c in (obj.get("status") or {}).get("containerStatuses") or []
    )


def _field(path: str, default: Any = "<none>") -> Callable[[Obj, float], Any]:
    def cell(obj: Obj, now: float) -> Any:
        value = _path(obj, path)
        return default if value in (None, "") else value

    return cell


def _node_status(obj: Obj, now: float) -> str:
    conditions = {c.get("type"): c.get("status") for c in (obj.get("status") or {}).get("conditions") or []}
    ready = {"True": "Ready", "False": "NotReady"}.get(conditions.get("Ready") or "", "Unknown")
    return f"{ready},SchedulingDisabled" if (obj.get("spec") or {}).get("unschedulable") else ready


def _node_roles(obj: Obj, now: float) -> str:
    prefix = "node-role.kubernetes.io/"
    roles = sorted(
        k.removeprefix(prefix) for k in obj["metadata"].get("labels") or {} if k.startswith(prefix)
    )
    return ",".join(roles) or "<none>"


def _node_address(kind: str) -> Callable[[Obj, float], str]:
    def cell(obj: Obj, now: float) -> str:
        for address in (obj.get("status") or {}).get("addresses") or []:
            if address.get("type") == kind:
                return str(address.get("address"))
        return "<none>"

    return cell


def _job_status(obj: Obj, now: float) -> str:
    conditions = {c.get("type"): c.get("status") for c in (obj.get("status") or {}).get("conditions") or []}
    for condition, shown in (("Complete", "Complete"), ("Failed", "Failed"), ("Suspended", "Suspended")):
        if conditions.get(condition) == "True":
            return shown
    return "Running"


def _job_completions(obj: Obj, now: float) -> str:
    completions = (obj.get("spec") or {}).get("completions", 1)
    return f"{(obj.get('status') or {}).get('succeeded', 0)}/{completions}"


def _job_duration(obj: Obj, now: float) -> str:
    status = obj.get("status") or {}
    if not status.get("startTime"):
        return ""
    end = status.get("completionTime")
    start = dt.datetime.fromisoformat(str(status["startTime"]).replace("Z", "+00:00")).timestamp()
    finish = dt.datetime.fromisoformat(str(end).replace("Z", "+00:00")).timestamp() if end else now
    return human_duration(finish - start)


def _cronjob_active(obj: Obj, now: float) -> int:
    return len((obj.get("status") or {}).get("active") or [])


def _cronjob_last(obj: Obj, now: float) -> str:
    last = (obj.get("status") or {}).get("lastScheduleTime")
    return _since(last, now) if last else "<none>"


def _int_field(path: str) -> Callable[[Obj, float], int]:
    # DaemonSetStatus omits zero counts (omitempty): absent prints 0, as kubectl shows it.
    def cell(obj: Obj, now: float) -> int:
        return int(_path(obj, path) or 0)

    return cell


def _ready_of_replicas(obj: Obj, now: float) -> str:
    """A Deployment's READY as kubectl prints it: "readyReplicas/spec.replicas"."""
    return f"{int(_path(obj, '.status.readyReplicas') or 0)}/{int(_path(obj, '.spec.replicas') or 0)}"


def _node_selector(obj: Obj, now: float) -> str:
    selector = _path(obj, ".spec.template.spec.nodeSelector") or {}
    return ",".join(f"{key}={selector[key]}" for key in sorted(selector)) or "<none>"


def _label_selector(obj: Obj, now: float) -> str:
    """spec.selector as metav1.FormatLabelSelector writes it ("app=longhorn-manager")."""
    selector = _path(obj, ".spec.selector") or {}
    parts = [(key, f"{key}={value}") for key, value in (selector.get("matchLabels") or {}).items()]
    for expression in selector.get("matchExpressions") or ():
        key, operator = expression.get("key", ""), expression.get("operator", "")
        values = ",".join(sorted(expression.get("values") or ()))
        text = {"In": f"{key} in ({values})", "NotIn": f"{key} notin ({values})", "Exists": key}
        parts.append((key, text.get(operator, f"!{key}")))
    return ",".join(text for _, text in sorted(parts)) or "<none>"


def _event_object(obj: Obj, now: float) -> str:
    involved = obj.get("involvedObject") or {}
    return f"{str(involved.get('kind', '')).lower()}/{involved.get('name', '')}"


def _event_last_seen(obj: Obj, now: float) -> str:
    stamp = obj.get("lastTimestamp") or obj.get("eventTime") or obj["metadata"].get("creationTimestamp")
    return _since(stamp, now)


def _containers(path: str, key: str) -> Callable[[Obj, float], str]:
    def cell(obj: Obj, now: float) -> str:
        return ",".join(str(c.get(key, "")) for c in _path(obj, path) or []) or "<none>"

    return cell


_POD_TEMPLATE_WIDE = [
    Column("Containers", _containers(".spec.template.spec.containers", "name"), priority=1),
    Column("Images", _containers(".spec.template.spec.containers", "image"), priority=1),
    Column("Selector", _label_selector, priority=1),
]
"""`-o wide` of the kinds that run pods from a template (DaemonSet, Deployment, ReplicaSet)."""

_BUILTIN_COLUMNS: dict[Kind, list[Column]] = {
    kinds.NAMESPACE: [NAME, Column("Status", _field(".status.phase")), AGE],
    kinds.NODE: [
        NAME,
        Column("Status", _node_status),
        Column("Roles", _node_roles),
        AGE,
        Column("Version", _field(".status.nodeInfo.kubeletVersion", "")),
        Column("Internal-IP", _node_address("InternalIP"), priority=1),
        Column("External-IP", _node_address("ExternalIP"), priority=1),
        Column("OS-Image", _field(".status.nodeInfo.osImage", "<unknown>"), priority=1),
        Column("Kernel-Version", _field(".status.nodeInfo.kernelVersion", "<unknown>"), priority=1),
        Column(
            "Container-Runtime", _field(".status.nodeInfo.containerRuntimeVersion", "<unknown>"), priority=1
        ),
    ],
    kinds.POD: [
        NAME,
        Column("Ready", _pod_ready),
        Column("Status", _pod_status),
        Column("Restarts", _pod_restarts, type="string"),
        AGE,
        Column("IP", _field(".status.podIP"), priority=1),
        Column("Node", _field(".spec.nodeName"), priority=1),
        Column("Nominated Node", _field(".status.nominatedNodeName"), priority=1),
        Column("Readiness Gates", lambda obj, now: "<none>", priority=1),
    ],
    kinds.EVENT: [
        Column("Last Seen", _event_last_seen),
        Column("Type", _field(".type", "")),
        Column("Reason", _field(".reason", "")),
        Column("Object", _event_object),
        Column("Subobject", _field(".involvedObject.fieldPath", ""), priority=1),
        Column("Source", _field(".source.component", ""), priority=1),
        Column("Message", _field(".message", "")),
        Column("First Seen", lambda obj, now: _since(obj.get("firstTimestamp"), now), priority=1),
        Column("Count", _field(".count", 1), type="integer", priority=1),
        Column("Name", _name_cell, priority=1),
    ],
    kinds.JOB: [
        NAME,
        Column("Status", _job_status),
        Column("Completions", _job_completions),
        Column("Duration", _job_duration),
        AGE,
        Column("Containers", _containers(".spec.template.spec.containers", "name"), priority=1),
        Column("Images", _containers(".spec.template.spec.containers", "image"), priority=1),
    ],
    kinds.CRONJOB: [
        NAME,
        Column("Schedule", _field(".spec.schedule", "")),
        Column("Timezone", _field(".spec.timeZone")),
        Column(
            "Suspend",
            lambda obj, now: "True" if (obj.get("spec") or {}).get("suspend") else "False",
            type="boolean",
        ),
        Column("Active", _cronjob_active, type="integer"),
        Column("Last Schedule", _cronjob_last),
        AGE,
        Column(
            "Containers", _containers(".spec.jobTemplate.spec.template.spec.containers", "name"), priority=1
        ),
        Column("Images", _containers(".spec.jobTemplate.spec.template.spec.containers", "image"), priority=1),
    ],
    kinds.DAEMONSET: [
        NAME,
        Column("Desired", _int_field(".status.desiredNumberScheduled"), type="integer"),
        Column("Current", _int_field(".status.currentNumberScheduled"), type="integer"),
        Column("Ready", _int_field(".status.numberReady"), type="integer"),
        Column("Up-to-date", _int_field(".status.updatedNumberScheduled"), type="integer"),
        Column("Available", _int_field(".status.numberAvailable"), type="integer"),
        Column("Node Selector", _node_selector),
        AGE,
        *_POD_TEMPLATE_WIDE,
    ],
    kinds.DEPLOYMENT: [
        NAME,
        Column("Ready", _ready_of_replicas),
        Column("Up-to-date", _int_field(".status.updatedReplicas"), type="integer"),
        Column("Available", _int_field(".status.availableReplicas"), type="integer"),
        AGE,
        *_POD_TEMPLATE_WIDE,
    ],
    kinds.REPLICASET: [
        NAME,
        Column("Desired", _int_field(".spec.replicas"), type="integer"),
        Column("Current", _int_field(".status.replicas"), type="integer"),
        Column("Ready", _int_field(".status.readyReplicas"), type="integer"),
        AGE,
        *_POD_TEMPLATE_WIDE,
    ],
    kinds.CRD: [NAME, Column("Created At", _field(".metadata.creationTimestamp", ""), type="date")],
}


def _crd_columns(kind: Kind, crd: Obj | None) -> list[Column]:
    if crd is None:
        return _DEFAULT_COLUMNS
    try:
        printer = kinds.crd_version(crd, kind.version).get("additionalPrinterColumns") or []
    except KeyError:
        printer = []
    if not printer:
        return _DEFAULT_COLUMNS
    return [NAME, *(_printer_column(p) for p in printer)]


def _printer_column(spec: Mapping[str, Any]) -> Column:
    path, type_ = str(spec["jsonPath"]), str(spec.get("type", "string"))

    def cell(obj: Obj, now: float) -> Any:
        value = _path(obj, path)
        if value is None:
            return None
        if type_ == "date":
            return _since(value, now)
        if type_ == "string" and not isinstance(value, str):
            return json.dumps(value, separators=(",", ":"))
        return value

    return Column(
        str(spec["name"]),
        cell,
        type=type_,
        priority=int(spec.get("priority", 0)),
        format=str(spec.get("format", "")),
        description=str(spec.get("description", "")),
    )
