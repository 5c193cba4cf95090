"""API load on the lab endpoint: N watchers and a steady write rate; nothing lost, order kept.

`run()` is the `make bench` figure set: 20 watchers, 200 writes/s, 30 s. `measure()` is the same
with other sizes (the test suite runs a 3 s version). The server runs in its own thread and event
loop, as in the lab; writers and watchers are HTTP clients in the calling thread's loop.
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import tenacity

from lhsoak.lab import apiserver, pki

NAMESPACE = "default"
WRITERS = 4
DRAIN_TIMEOUT_S = 20.0
START_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class LoadResult:
    """What one load run measured."""

    duration_s: float
    watchers: int
    target_writes_per_s: float
    writes: int
    writes_per_s: float
    events_expected: int
    """Events every watcher should see: one per write (all writes go to the watched kind)."""
    events_delivered: int
    """Events delivered, summed over watchers."""
    lost: int
    """Events missing, summed over watchers (must be 0)."""
    out_of_order: int
    """Watchers whose versions were not exactly the write versions in order (must be 0)."""
    write_p50_ms: float
    write_p99_ms: float
    delivery_p50_ms: float
    """From sending a write to a watcher receiving its event."""
    delivery_p99_ms: float
    requests: dict[str, int] = field(default_factory=dict)
    """Requests the server counted, by verb."""

    def figures(self) -> dict[str, object]:
        return asdict(self)


def run() -> dict[str, object]:
    """The `make bench` figures: 20 watchers, 200 writes/s for 30 s."""
    return measure(duration_s=30.0, watchers=20, writes_per_s=200.0).figures()


def measure(*, duration_s: float, watchers: int, writes_per_s: float) -> LoadResult:
    """Run the load against a fresh lab API server and report what the watchers saw."""
    with tempfile.TemporaryDirectory(prefix="lhsoak-api-bench-") as tmp:
        server = _ServerProcess(Path(tmp))
        try:
            return asyncio.run(
                _load(server, duration_s=duration_s, watchers=watchers, writes_per_s=writes_per_s)
            )
        finally:
            server.close()


class _ServerProcess:
    """The lab API server in a child process (as `lhsoak lab up` runs it, apart from its clients),
    so the figures are not those of one interpreter sharing its GIL between server and clients."""

    def __init__(self, directory: Path) -> None:
        info = directory / "server.json"
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", str(info)], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL
        )
        for attempt in tenacity.Retrying(
            stop=tenacity.stop_after_delay(START_TIMEOUT_S), wait=tenacity.wait_fixed(0.05), reraise=True
        ):
            with attempt:
                if self.process.poll() is not None:
                    raise RuntimeError(f"the API server process exited with {self.process.returncode}")
                assert info.exists(), f"the API server wrote no {info} within {START_TIMEOUT_S}s"
        data = json.loads(info.read_text())
        self.url, self.token, self.ca_pem = data["url"], data["token"], data["ca_pem"]

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=START_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _serve(info: Path) -> None:
    async def main() -> None:
        lab_pki, token = pki.generate(), pki.new_token()
        server = apiserver.ApiServer(apiserver.lab_store(), pki_=lab_pki, token=token)
        await server.start()
        partial = info.with_suffix(".tmp")
        partial.write_text(json.dumps({"url": server.url, "token": token, "ca_pem": lab_pki.ca_pem.decode()}))
        partial.rename(info)
        # Serve until the parent closes our stdin.
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await server.stop()

    asyncio.run(main())


@dataclass
class _Watcher:
    versions: list[int] = field(default_factory=list)
    received_at: dict[int, float] = field(default_factory=dict)
    done: asyncio.Event = field(default_factory=asyncio.Event)
    target: int = 0


async def _load(
    server: _ServerProcess, *, duration_s: float, watchers: int, writes_per_s: float
) -> LoadResult:
    context = ssl.create_default_context(cadata=server.ca_pem)
    headers = {"Authorization": f"Bearer {server.token}"}
    connector = aiohttp.TCPConnector(ssl=context, limit=0)
    async with aiohttp.ClientSession(base_url=server.url, headers=headers, connector=connector) as session:
        async with session.get(f"/api/v1/namespaces/{NAMESPACE}/pods") as response:
            start_rv = int((await response.json())["metadata"]["resourceVersion"])
        states = [_Watcher() for _ in range(watchers)]
        tasks = [asyncio.create_task(_watch(session, start_rv, state)) for state in states]
        sent_at: dict[int, float] = {}
        latencies: list[float] = []
        started = time.monotonic()
        await asyncio.gather(
            *(
                _write(session, writer, writes_per_s / WRITERS, started + duration_s, sent_at, latencies)
                for writer in range(WRITERS)
            )
        )
        elapsed = time.monotonic() - started
        requests = await _request_counts(session)
        expected = sorted(sent_at)
        for state in states:
            state.target = expected[-1] if expected else start_rv
            if state.versions and state.versions[-1] >= state.target:
                state.done.set()
        if states:
            waits = [asyncio.create_task(s.done.wait()) for s in states]
            _, pending = await asyncio.wait(waits, timeout=DRAIN_TIMEOUT_S)
            for task in pending:
                task.cancel()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return _result(
        states,
        expected,
        sent_at,
        latencies,
        elapsed=elapsed,
        target_rate=writes_per_s,
        requests=requests,
    )


async def _request_counts(session: aiohttp.ClientSession) -> dict[str, int]:
    """Requests by verb, read from the server's /metrics as a Prometheus scraper would."""
    async with session.get("/metrics") as response:
        text = await response.text()
    by_verb: dict[str, int] = {}
    for line in text.splitlines():
        # WATCH requests count when they end; the open ones are in the long-running gauge.
        match = re.match(r'apiserver_(request_total|longrunning_requests)\{verb="([A-Z]+)".*\} (\d+)$', line)
        if match:
            verb = match[2] if match[1] == "request_total" else f"{match[2]} (open)"
            by_verb[verb] = by_verb.get(verb, 0) + int(match[3])
    return by_verb


async def _watch(session: aiohttp.ClientSession, start_rv: int, state: _Watcher) -> None:
    params = {"watch": "true", "resourceVersion": str(start_rv), "allowWatchBookmarks": "true"}
    async with session.get(
        f"/api/v1/namespaces/{NAMESPACE}/pods", params=params, timeout=aiohttp.ClientTimeout(total=None)
    ) as response:
        async for line in response.content:
            event = json.loads(line)
            if event["type"] == "BOOKMARK":
                continue
            version = int(event["object"]["metadata"]["resourceVersion"])
            state.versions.append(version)
            state.received_at.setdefault(version, time.monotonic())
            if state.target and version >= state.target:
                state.done.set()


async def _write(
    session: aiohttp.ClientSession,
    writer: int,
    rate: float,
    until: float,
    sent_at: dict[int, float],
    latencies: list[float],
) -> None:
    # Each writer cycles its own pods through create, two label patches and delete, so the
    # watchers see ADDED, MODIFIED and DELETED; pacing is by schedule, not by sleeping a fixed gap.
    base = f"/api/v1/namespaces/{NAMESPACE}/pods"
    step = 0
    next_at = time.monotonic()
    while next_at < until:
        delay = next_at - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        name = f"w{writer}-{step // 4}"
        sent = time.monotonic()
        phase = step % 4
        if phase == 0:
            body: Any = {
                "metadata": {"name": name},
                "spec": {"containers": [{"name": "c", "image": "busybox"}]},
            }
            request = session.post(base, json=body)
        elif phase in (1, 2):
            patch = json.dumps({"metadata": {"labels": {"step": str(step)}}})
            request = session.patch(
                f"{base}/{name}", data=patch, headers={"Content-Type": "application/merge-patch+json"}
            )
        else:
            request = session.delete(f"{base}/{name}")
        async with request as response:
            obj = await response.json()
            if response.status >= 300:
                raise RuntimeError(f"write {step} of writer {writer} failed: {response.status} {obj}")
        latencies.append(time.monotonic() - sent)
        sent_at[int(obj["metadata"]["resourceVersion"])] = sent
        step += 1
        next_at += 1.0 / rate


def _result(
    states: list[_Watcher],
    expected: list[int],
    sent_at: dict[int, float],
    latencies: list[float],
    *,
    elapsed: float,
    target_rate: float,
    requests: dict[str, int],
) -> LoadResult:
    lost = sum(len(set(expected) - set(s.versions)) for s in states)
    out_of_order = sum(1 for s in states if s.versions != expected)
    delivery = [s.received_at[v] - sent_at[v] for s in states for v in s.received_at if v in sent_at]
    return LoadResult(
        duration_s=round(elapsed, 2),
        watchers=len(states),
        target_writes_per_s=target_rate,
        writes=len(expected),
        writes_per_s=round(len(expected) / elapsed, 1) if elapsed else 0.0,
        events_expected=len(expected),
        events_delivered=sum(len(s.versions) for s in states),
        lost=lost,
        out_of_order=out_of_order,
        write_p50_ms=_ms(_quantile(latencies, 0.5)),
        write_p99_ms=_ms(_quantile(latencies, 0.99)),
        delivery_p50_ms=_ms(_quantile(delivery, 0.5)),
        delivery_p99_ms=_ms(_quantile(delivery, 0.99)),
        requests=requests,
    )


def _quantile(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[min(98, int(q * 100) - 1)]


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--serve":
        _serve(Path(sys.argv[2]))
    else:
        print(json.dumps(run(), indent=2))
