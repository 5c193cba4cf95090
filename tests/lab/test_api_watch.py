"""Watches through `kubernetes.watch.Watch`: order, resume, 410 Gone, bookmarks, timeouts, outages."""

from __future__ import annotations

import queue
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import tenacity
import urllib3
from kubernetes import client, watch
from kubernetes.client.rest import ApiException

from lhsoak.lab import apiserver, kinds

from ..support.lab_api import LabApi, start_lab_api

WAIT_S = 10.0


def pod(name: str, **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, **meta}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}


class Collector:
    """Runs watch.Watch over pods in a thread and queues (type, name, resourceVersion)."""

    def __init__(self, api_client: Any, **kwargs: Any) -> None:
        self.events: queue.Queue[tuple[str, str, str]] = queue.Queue()
        self.error: BaseException | None = None
        self.finished = threading.Event()
        self._watch = watch.Watch()
        self._core = client.CoreV1Api(api_client)
        self._kwargs = kwargs
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            for event in self._watch.stream(self._core.list_namespaced_pod, "default", **self._kwargs):
                obj = event["raw_object"]
                self.events.put(
                    (
                        event["type"],
                        obj.get("metadata", {}).get("name", ""),
                        obj["metadata"]["resourceVersion"],
                    )
                )
        except BaseException as exc:
            self.error = exc
        finally:
            self.finished.set()

    def take(self, count: int) -> list[tuple[str, str, str]]:
        got: list[tuple[str, str, str]] = []
        deadline = time.monotonic() + WAIT_S
        while len(got) < count:
            remaining = deadline - time.monotonic()
            assert remaining > 0, (
                f"waited {WAIT_S}s for {count} watch events, saw {got} (error: {self.error!r})"
            )
            try:
                got.append(self.events.get(timeout=remaining))
            except queue.Empty:
                continue
        return got

    def stop(self) -> None:
        self._watch.stop()


def test_watch_streams_changes_in_order_and_deleted_carries_last_state(kube_client: Any) -> None:
    core = client.CoreV1Api(kube_client)
    start = core.list_namespaced_pod("default").metadata.resource_version
    collector = Collector(kube_client, resource_version=start, timeout_seconds=5)
    core.create_namespaced_pod("default", pod("a"))
    core.patch_namespaced_pod("a", "default", {"metadata": {"labels": {"x": "1"}}})
    deleted = core.delete_namespaced_pod("a", "default")
    events = collector.take(3)
    collector.stop()
    assert [e[0] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    versions = [int(e[2]) for e in events]
    assert versions == sorted(versions)
    assert events[2][2] == deleted.metadata.resource_version


def test_watch_without_version_lists_current_objects_first(kube_client: Any) -> None:
    core = client.CoreV1Api(kube_client)
    core.create_namespaced_pod("default", pod("a"))
    core.create_namespaced_pod("default", pod("b"))
    collector = Collector(kube_client, timeout_seconds=5)
    assert [(e[0], e[1]) for e in collector.take(2)] == [("ADDED", "a"), ("ADDED", "b")]
    collector.stop()


def test_watch_from_a_version_replays_what_came_after(kube_client: Any) -> None:
    core = client.CoreV1Api(kube_client)
    first = core.create_namespaced_pod("default", pod("a"))
    core.create_namespaced_pod("default", pod("b"))
    core.delete_namespaced_pod("a", "default")
    collector = Collector(kube_client, resource_version=first.metadata.resource_version, timeout_seconds=5)
    assert [(e[0], e[1]) for e in collector.take(2)] == [("ADDED", "b"), ("DELETED", "a")]
    collector.stop()


def test_watch_from_a_compacted_version_raises_410(tmp_path: Path) -> None:
    lab = start_lab_api(tmp_path, history=5)
    api_client = lab.api_client()
    try:
        core = client.CoreV1Api(api_client)
        for i in range(10):
            core.create_namespaced_pod("default", pod(f"p{i}"))
        with pytest.raises(ApiException) as gone:
            for _ in watch.Watch().stream(core.list_namespaced_pod, "default", resource_version="3"):
                pass
        assert gone.value.status == 410
        assert "Expired" in str(gone.value.reason)
    finally:
        api_client.close()
        lab.close()


def test_bookmarks_carry_the_latest_version(kube_client: Any, lab_api: LabApi) -> None:
    core = client.CoreV1Api(kube_client)
    core.create_namespaced_pod("default", pod("a"))
    version = core.list_namespaced_pod("default").metadata.resource_version
    response = core.list_namespaced_pod(
        "default",
        watch=True,
        resource_version=version,
        allow_watch_bookmarks=True,
        timeout_seconds=1,
        _preload_content=False,
    )
    lines = [line for line in response.stream() if line.strip()]
    response.release_conn()
    bookmarks = [line for line in lines if b'"BOOKMARK"' in line]
    assert bookmarks, f"no BOOKMARK in {lines}"
    assert (
        f'"resourceVersion":"{lab_api.call(lambda: lab_api.store.resource_version)}"'.encode()
        in bookmarks[-1]
    )


def test_timeout_seconds_ends_the_watch(kube_client: Any) -> None:
    core = client.CoreV1Api(kube_client)
    started = time.monotonic()
    events = list(
        watch.Watch().stream(core.list_namespaced_pod, "default", timeout_seconds=1, resource_version="1")
    )
    assert events == []
    assert 0.9 <= time.monotonic() - started < 5


def test_watch_of_one_object_by_name(kube_client: Any) -> None:
    core = client.CoreV1Api(kube_client)
    start = core.list_namespaced_pod("default").metadata.resource_version
    collector = Collector(
        kube_client, resource_version=start, field_selector="metadata.name=b", timeout_seconds=5
    )
    core.create_namespaced_pod("default", pod("a"))
    core.create_namespaced_pod("default", pod("b"))
    assert [(e[0], e[1]) for e in collector.take(1)] == [("ADDED", "b")]
    collector.stop()
    assert collector.events.empty()


def test_outage_refuses_connections_and_keeps_state(lab_api: LabApi, kube_client: Any) -> None:
    core = client.CoreV1Api(kube_client)
    core.create_namespaced_pod("default", pod("a"))
    version = lab_api.call(lambda: lab_api.store.resource_version)
    port = lab_api.server.port
    lab_api.run(lab_api.server.go_down())
    with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
        pass
    lab_api.run(lab_api.server.come_up())
    assert lab_api.server.port == port
    assert lab_api.call(lambda: lab_api.store.resource_version) == version
    assert core.read_namespaced_pod("a", "default").metadata.resource_version == str(version)


def test_outage_cuts_open_watches(lab_api: LabApi, kube_client: Any) -> None:
    core = client.CoreV1Api(kube_client)
    start = core.list_namespaced_pod("default").metadata.resource_version
    collector = Collector(kube_client, resource_version=start, timeout_seconds=30)
    core.create_namespaced_pod("default", pod("a"))
    collector.take(1)
    lab_api.run(lab_api.server.go_down())
    assert collector.finished.wait(WAIT_S), "the watch survived the outage"
    assert isinstance(collector.error, urllib3.exceptions.HTTPError), (
        f"expected a connection error, got {collector.error!r}"
    )
    lab_api.run(lab_api.server.come_up())


class ResumingWatcher:
    """A recorder-style watcher: list, watch from the list's version, on a cut connection resume
    from the last version seen, on 410 re-list. Records every (type, name, version)."""

    def __init__(self, api_client: Any) -> None:
        self.core = client.CoreV1Api(api_client)
        self.seen: list[tuple[str, str, int]] = []
        self.relists = 0
        self.reconnects = 0
        self.stopped = threading.Event()
        self.error: BaseException | None = None
        self.listed = threading.Event()
        self.thread = threading.Thread(target=self._guarded_run, daemon=True)
        self.thread.start()
        assert self.listed.wait(WAIT_S), "the watcher did not list"

    def _guarded_run(self) -> None:
        try:
            self._run()
        except BaseException as exc:
            self.error = exc

    def _run(self) -> None:
        version = self._list()
        while not self.stopped.is_set():
            try:
                stream = watch.Watch().stream(
                    self.core.list_namespaced_pod,
                    "default",
                    resource_version=version,
                    timeout_seconds=1,
                    _request_timeout=5,
                )
                for event in stream:
                    obj = event["raw_object"]
                    version = obj["metadata"]["resourceVersion"]
                    self.seen.append((event["type"], obj["metadata"]["name"], int(version)))
            except ApiException as exc:
                if exc.status != 410:
                    raise
                version = self._list()
            except urllib3.exceptions.HTTPError:
                self.reconnects += 1
                self.stopped.wait(0.05)  # reconnect backoff

    def _list(self) -> str:
        self.relists += 1
        for attempt in tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(urllib3.exceptions.HTTPError),
            stop=tenacity.stop_after_delay(WAIT_S),
            wait=tenacity.wait_fixed(0.05),
            reraise=True,
        ):
            with attempt:
                listed = self.core.list_namespaced_pod("default")
                self.seen += [
                    ("LISTED", p.metadata.name, int(p.metadata.resource_version)) for p in listed.items
                ]
                self.listed.set()
                return str(listed.metadata.resource_version)
        raise AssertionError("unreachable")


def test_a_watch_survives_an_outage_by_resuming_from_its_last_version(
    lab_api: LabApi, kube_client: Any
) -> None:
    watcher = ResumingWatcher(kube_client)
    core = client.CoreV1Api(kube_client)
    core.create_namespaced_pod("default", pod("before"))
    wait_seen(watcher, "before")
    lab_api.run(lab_api.server.go_down())
    # the store keeps changing while the endpoint is down (e.g. in-process controllers)
    lab_api.call(lambda: lab_api.store.create(kinds.POD, pod("during"), namespace="default"))
    lab_api.run(lab_api.server.come_up())
    core.create_namespaced_pod("default", pod("after"))
    wait_seen(watcher, "after")
    watcher.stopped.set()
    watcher.thread.join(WAIT_S)
    names = [name for _, name, _ in watcher.seen]
    assert names == ["before", "during", "after"]
    versions = [v for _, _, v in watcher.seen]
    assert versions == sorted(versions)
    assert watcher.reconnects >= 1
    assert watcher.relists == 1


def test_a_watch_relists_when_its_version_is_compacted_during_an_outage(tmp_path: Path) -> None:
    lab = start_lab_api(tmp_path, history=3, config=apiserver.ApiServerConfig(shutdown_timeout_s=0.5))
    api_client = lab.api_client()
    try:
        watcher = ResumingWatcher(api_client)
        core = client.CoreV1Api(api_client)
        core.create_namespaced_pod("default", pod("before"))
        wait_seen(watcher, "before")
        lab.run(lab.server.go_down())
        for i in range(5):
            lab.call(lambda i=i: lab.store.create(kinds.POD, pod(f"during{i}"), namespace="default"))
        lab.run(lab.server.come_up())
        core.create_namespaced_pod("default", pod("after"))
        wait_seen(watcher, "after")
        watcher.stopped.set()
        watcher.thread.join(WAIT_S)
        assert watcher.relists == 2, "the 410 after the outage should make the watcher list again"
    finally:
        api_client.close()
        lab.close()


def wait_seen(watcher: ResumingWatcher, name: str) -> None:
    for attempt in tenacity.Retrying(
        stop=tenacity.stop_after_delay(WAIT_S), wait=tenacity.wait_fixed(0.02), reraise=True
    ):
        with attempt:
            assert name in [n for _, n, _ in watcher.seen], (
                f"watcher has not seen {name}: {watcher.seen} (error: {watcher.error!r})"
            )


def test_a_watch_whose_client_left_is_released(lab_api: LabApi, kube_client: Any) -> None:
    core = client.CoreV1Api(kube_client)
    response = core.list_namespaced_pod("default", watch=True, resource_version="1", _preload_content=False)
    assert _open_watches(lab_api) == 1
    response.close()
    response.release_conn()
    kube_client.rest_client.pool_manager.clear()
    for attempt in tenacity.Retrying(
        stop=tenacity.stop_after_delay(WAIT_S), wait=tenacity.wait_fixed(0.05), reraise=True
    ):
        with attempt:
            assert _open_watches(lab_api) == 0, "the server still holds the watch of a client that left"


def _open_watches(lab: LabApi) -> int:
    text = lab.call(lab.server.metrics_text)
    return sum(
        int(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("apiserver_longrunning_requests{")
    )
