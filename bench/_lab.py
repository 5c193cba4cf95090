"""What the lab benches share: a lab in its own process, a soak driven against it, the API server's
request counters, an outside observer of the Nodes, the lab's own log, and a recorder in a child process.

Everything here measures from outside the library: the counters come from the lab's `/metrics`, node
readiness from a watch of our own, machine events from the lab's log, CPU from `getrusage` in a child.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import datetime as dt
import json
import logging
import multiprocessing
import os
import re
import resource
import ssl
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tenacity
import yaml

from lhsoak import cluster, config, ledger, longhorn, recorder, schedule, soak, verdict
from lhsoak.lab.process import LabProcess

RequestKey = tuple[str, str]
"""(verb, resource) of an `apiserver_request_total` series."""

WATCHED = (
    cluster.SNAPSHOTS,
    cluster.BACKUPS,
    cluster.CRONJOBS,
    cluster.JOBS,
    cluster.PODS,
    cluster.EVENTS,
    cluster.NODES,
    cluster.VOLUMES,
    cluster.BACKUP_TARGETS,
    cluster.RECURRING_JOBS,
)
"""The resources the recorder lists and watches (`recorder.Recorder`; the API-load bench checks
that the recorder's own LISTs are exactly these)."""


def quiet_library_logs() -> None:
    """The recorder warns on every watch a control-plane reboot cuts: expected here, not news."""
    logging.getLogger("lhsoak").setLevel(logging.ERROR)


def say(text: str) -> None:
    """A progress line on stderr, so the runner's table on stdout stays readable."""
    print(f"   … {text}", file=sys.stderr, flush=True)


# -- a lab in its own process --------------------------------------------------------------------


@contextlib.contextmanager
def running_lab(*, profile: str = "healthy", workers: int = 3) -> Iterator[LabProcess]:
    """`lhsoak lab up` in its own process (as a real cluster is apart from the harness), stopped after."""
    with tempfile.TemporaryDirectory(prefix=f"lhsoak-bench-{profile}-") as tmp:
        lab = LabProcess.start(state_dir=Path(tmp) / "lab", profile=profile, workers=workers)
        try:
            yield lab
        finally:
            lab.stop()


def connect(lab: LabProcess) -> cluster.Cluster:
    return cluster.Cluster.connect(kubeconfig=lab.kubeconfig, context=lab.context, allowed=(lab.context,))


# -- the API server's request counters -----------------------------------------------------------


_SERIES = re.compile(r"^apiserver_(request_total|longrunning_requests)\{(?P<labels>[^}]*)\} (?P<value>\d+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class Counters:
    """One scrape of `/metrics`: completed resource requests and open long-running ones (watches)."""

    completed: Counter[RequestKey]
    open: Counter[RequestKey]

    def minus(self, before: Counters) -> Counter[RequestKey]:
        """Requests completed since `before`, by (verb, resource)."""
        delta = Counter(self.completed)
        delta.subtract(before.completed)
        return +delta


class ApiCounters:
    """Reads the lab API server's `/metrics` over HTTPS with the lab kubeconfig's CA and token,
    as a Prometheus scraper would. Non-resource requests (the scrapes themselves) are left out."""

    def __init__(self, kubeconfig: Path) -> None:
        document = yaml.safe_load(kubeconfig.read_text())
        server = document["clusters"][0]["cluster"]
        self._url = server["server"] + "/metrics"
        ca_pem = base64.b64decode(server["certificate-authority-data"]).decode()
        self._context = ssl.create_default_context(cadata=ca_pem)
        self._token = document["users"][0]["user"]["token"]

    def read(self) -> Counters:
        request = urllib.request.Request(self._url, headers={"Authorization": f"Bearer {self._token}"})
        with urllib.request.urlopen(request, context=self._context, timeout=10) as response:
            text = response.read().decode()
        completed: Counter[RequestKey] = Counter()
        still_open: Counter[RequestKey] = Counter()
        for line in text.splitlines():
            match = _SERIES.match(line)
            if not match:
                continue
            labels = dict(_LABEL.findall(match["labels"]))
            if not labels.get("resource"):
                continue
            bucket = completed if match[1] == "request_total" else still_open
            bucket[(labels["verb"], labels["resource"])] += int(match["value"])
        return Counters(completed=completed, open=still_open)

    def read_when_no_watch_is_open(self, *, deadline_s: float = 15.0) -> Counters:
        """A scrape taken once every watch has ended (a WATCH counts when it ends, as upstream);
        the server notices a closed watch at its next write or liveness check (2 s)."""

        def scrape() -> Counters:
            counters = self.read()
            if sum(counters.open.values()):
                raise _StillOpen(f"{sum(counters.open.values())} watches still open")
            return counters

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(_StillOpen),
            wait=tenacity.wait_fixed(0.2),
            stop=tenacity.stop_after_delay(deadline_s),
            reraise=True,
        )
        return retrying(scrape)


class _StillOpen(Exception):
    """The API server still counts open watches."""


# -- a soak against the lab, driven as the regression suite drives it ------------------------------


@dataclass(frozen=True)
class SoakSettings:
    """One lab soak's configuration (the compressed lab schedule by default)."""

    profile: str = "healthy"
    """Lab fault profile ("healthy")."""
    cron: str = "*/4 * * * * *"
    """Both jobs' schedule, seconds first ("*/4 * * * * *": every 4 s)."""
    lag_bound_s: float = 8.0
    """Seconds a tick's artifact may take (8)."""
    settle_s: float = 4.0
    """Seconds after Ready still excused (4)."""
    kind: config.PlanKind = "cluster"
    """Chaos plan ("cluster": every node at once)."""
    phase: config.Phase = "during-backup"
    """When to reboot ("during-backup")."""
    iterations: int = 2
    """Chaos steps (2)."""
    poll_interval_s: float = 0.1
    """SSH probe interval of the reboot driver, seconds (0.1, as the regression suite)."""
    volumes: int = 2
    """Soak volumes (2)."""
    volume_mode: config.VolumeMode = "volume"
    """Test volumes ("volume": bare Longhorn volumes). Not `make soak`'s "auto" (PVCs with writer
    pods in the lab): a writer pod failed by a node's graceful shutdown is a bare Pod nobody
    recreates, so its volume stays detached and a healthy soak fails (seen at commit 964124a)."""
    ticks_after_chaos: int = 2
    """Ticks watched after the last reboot (2)."""

    @property
    def period_s(self) -> float:
        return schedule.parse(self.cron).period_s


@dataclass(frozen=True)
class StepTiming:
    """When one chaos step ran, by the bench's clock (epoch seconds)."""

    index: int
    nodes: tuple[str, ...]
    began_s: float
    ended_s: float
    failed: bool


@dataclass
class SoakOutcome:
    """What a driven soak left behind."""

    settings: SoakSettings
    started_s: float
    """When the soak's setup began."""
    steps: list[StepTiming]
    step_failure: str | None
    failed_at_s: float | None
    """When StepFailed reached the caller (None: no step failed)."""
    ended_s: float
    """When the verdict was written."""
    verdict: verdict.Verdict
    ledger: ledger.Ledger


def drive_soak(
    lab: LabProcess,
    settings: SoakSettings,
    *,
    run_id: str,
    reports_dir: Path,
) -> SoakOutcome:
    """open → start → steps (a StepFailed ends the steps) → settle → finish → teardown."""
    run = soak.SoakRun(
        soak=config.Soak(
            run_id=run_id,
            jobs=config.default_jobs(settings.cron),
            volumes=settings.volumes,
            volume_mode=settings.volume_mode,
            lag_bound_s=settings.lag_bound_s,
            settle_s=settings.settle_s,
            ticks_after_chaos=settings.ticks_after_chaos,
            reports_dir=reports_dir,
            allow_seconds_cron=True,
        ),
        target=config.Target(
            kubeconfig=lab.kubeconfig, inventory=lab.inventory, allowed_contexts=(lab.context,)
        ),
        chaos=config.Plan(
            kind=settings.kind,
            iterations=settings.iterations,
            phase=settings.phase,
            down_deadline_s=30,
            ready_deadline_s=60,
            poll_interval_s=settings.poll_interval_s,
        ),
    )
    started_s = time.time()
    steps: list[StepTiming] = []
    failure: str | None = None
    failed_at_s: float | None = None
    try:
        run.open()
        run.start()
        for step in run.steps():
            began_s = time.time()
            try:
                run.run_step(step)
            except soak.StepFailed as error:
                failed_at_s = time.time()
                failure = str(error)
            done = run.outcomes[-1].step
            steps.append(StepTiming(step.index, done.nodes, began_s, time.time(), failure is not None))
            if failure is not None:
                break
        run.settle()
        result = run.finish()
    finally:
        run.teardown()
    ended_s = time.time()
    return SoakOutcome(
        settings=settings,
        started_s=started_s,
        steps=steps,
        step_failure=failure,
        failed_at_s=failed_at_s,
        ended_s=ended_s,
        verdict=result,
        ledger=ledger.read(run.soak.run_dir / "ledger.jsonl"),
    )


# -- an outside observer of the Nodes -----------------------------------------------------------


class NodeObserver:
    """Watches Nodes on its own connection and notes when each (node, boot id) was first seen Ready.

    The measuring instrument for reboot overhead: it re-connects every `retry_s` while the API
    server is down (no backoff, unlike the recorder), so it sees a node Ready as soon as anyone can.
    """

    def __init__(self, lab: LabProcess, *, retry_s: float = 0.05) -> None:
        self._api = connect(lab)
        self._retry_s = retry_s
        self._stop = threading.Event()
        self._stream: cluster.WatchStream | None = None
        self._thread = threading.Thread(target=self._run, name="bench-node-observer", daemon=True)
        self._lock = threading.Lock()
        self._ready_seen: dict[tuple[str, str], float] = {}

    def __enter__(self) -> NodeObserver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        stream = self._stream
        if stream is not None:
            stream.close()
        self._thread.join(timeout=10)
        self._api.close()

    def snapshot(self) -> dict[tuple[str, str], float]:
        with self._lock:
            return dict(self._ready_seen)

    def _note(self, obj: cluster.Obj) -> None:
        if not longhorn.node_ready(obj):
            return
        boot_id = ((obj.get("status") or {}).get("nodeInfo") or {}).get("bootID") or ""
        with self._lock:
            self._ready_seen.setdefault((obj["metadata"]["name"], boot_id), time.time())

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                listed = self._api.list(cluster.NODES)
                for obj in listed.items:
                    self._note(obj)
                self._stream = self._api.watch(cluster.NODES, resource_version=listed.resource_version)
                for event in self._stream:
                    if event.type in ("ADDED", "MODIFIED"):
                        self._note(event.object)
            except cluster.ClusterError:
                # A control-plane reboot cuts the watch: try again at once, then every `retry_s`.
                self._stop.wait(self._retry_s)
            finally:
                self._stream = None


# -- the lab's own log ----------------------------------------------------------------------------


_LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \w+ ([\w.]+): (.*)$")


@dataclass(frozen=True)
class LabLogLine:
    """One line of `lab.log`: when (epoch seconds, millisecond resolution), which logger, what."""

    ts_s: float
    logger: str
    text: str


def lab_log(lab: LabProcess) -> list[LabLogLine]:
    """The lab's log lines (its `logging` asctime is local time, on this same machine's clock)."""
    lines = []
    for raw in (lab.state_dir / "lab.log").read_text(errors="replace").splitlines():
        match = _LOG_LINE.match(raw)
        if match:
            moment = dt.datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S,%f")
            lines.append(LabLogLine(moment.timestamp(), match[2], match[3]))
    return lines


def sshd_listening(lines: Sequence[LabLogLine]) -> dict[str, list[float]]:
    """Per node, every moment its sshd started listening (at boot: "SSH answers" from then on)."""
    found: dict[str, list[float]] = {}
    for line in lines:
        match = re.match(r"^([\w-]+): sshd listening on ", line.text)
        if match and line.logger == "lhsoak.lab.sshd":
            found.setdefault(match[1], []).append(line.ts_s)
    return found


# -- the full-cluster restart soak (throughput and reboot overhead read the same run) -----------------


RESTARTS = SoakSettings(
    cron="*/2 * * * * *",
    lag_bound_s=4.0,
    settle_s=2.0,
    kind="cluster",
    phase="any",
    iterations=20,
    poll_interval_s=0.1,
)
"""The lab issue's figure: 1 control plane + 3 workers, 2-second snapshot and backup schedules,
20 full-cluster restarts back to back (each step waits until every job fired again on every volume)."""


@dataclass
class RestartSoak:
    """A restart soak and what was seen around it from outside the harness."""

    outcome: SoakOutcome
    ready_seen: dict[tuple[str, str], float]
    """(node, boot id) → when the outside observer first saw it Ready."""
    sshd_listening: dict[str, list[float]]
    """Node → every moment its sshd started listening (the lab's log)."""
    lab_cpu_s: float
    """CPU the lab process used during the soak (user + system, /proc/<pid>/stat)."""
    harness_cpu_s: float
    """CPU this process (harness and observer) used during the soak."""


_restart_soaks: dict[SoakSettings, RestartSoak] = {}


def restart_soak(settings: SoakSettings = RESTARTS) -> RestartSoak:
    """Run (once per process and settings) a restart soak against a fresh lab, observed from outside."""
    if settings not in _restart_soaks:
        _restart_soaks[settings] = _run_restart_soak(settings)
    return _restart_soaks[settings]


def _run_restart_soak(settings: SoakSettings) -> RestartSoak:
    quiet_library_logs()
    say(f"lab soak: {settings.iterations} {settings.kind} restarts, cron {settings.cron!r}")
    with running_lab(profile=settings.profile) as lab, tempfile.TemporaryDirectory() as reports:
        lab_cpu_before, cpu_before = process_cpu_s(lab.pid), cpu_s()
        with NodeObserver(lab) as observer:
            outcome = drive_soak(lab, settings, run_id="bench-restarts", reports_dir=Path(reports))
            ready_seen = observer.snapshot()
        lab_cpu_s, harness_cpu_s = process_cpu_s(lab.pid) - lab_cpu_before, cpu_s() - cpu_before
        return RestartSoak(
            outcome=outcome,
            ready_seen=ready_seen,
            sshd_listening=sshd_listening(lab_log(lab)),
            lab_cpu_s=lab_cpu_s,
            harness_cpu_s=harness_cpu_s,
        )


def process_cpu_s(pid: int) -> float:
    """User + system CPU of another process so far (proc(5): fields 14 and 15, in clock ticks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- the recorder alone in a child process --------------------------------------------------------


@dataclass(frozen=True)
class RecorderJob:
    """What a child process records: which cluster, which jobs and volumes, for how many ticks.

    The recording starts `LEAD_S` before a tick of `cron` and stops `LEAD_S` before the tick after
    the last one: exactly `ticks` ticks, each with the rest of its period to finish its work.
    """

    kubeconfig: Path
    context: str
    ledger_path: Path
    run_id: str
    jobs: tuple[config.JobSpec, ...]
    volumes: tuple[str, ...]
    cron: str
    ticks: int
    lag_bound_s: float = 8.0
    settle_s: float = 4.0
    fsync: bool = True
    """False: a diagnostic run with `os.fsync` a no-op in the child, to price the ledger's
    per-record fsync (the child is a throwaway process; nothing else is touched)."""

    def window(self, now_s: float) -> tuple[float, float]:
        """When to start and stop recording, from `now_s`."""
        sched = schedule.parse(self.cron)
        first = sched.next_after(now_s + LEAD_S)
        after_last = first
        for _ in range(self.ticks):
            after_last = sched.next_after(after_last)
        return first - LEAD_S, after_last - LEAD_S


LEAD_S = 0.5


@dataclass(frozen=True)
class RecorderCost:
    """What recording cost its process, from `getrusage` and /proc/self/status."""

    cpu_s: float
    """User + system CPU of every thread, from just before `start()` to after `stop()`."""
    sync_cpu_s: float
    """The part spent until the first list of every resource was in (`wait_synced`)."""
    wall_s: float
    rss_before_mb: float
    """Resident memory before the recorder started (interpreter, kubernetes client)."""
    peak_rss_mb: float
    """Peak resident memory while recording (VmHWM, reset just before `start()`)."""
    peak_reset: bool
    """Whether VmHWM could be reset (if not, the peak includes start-up)."""
    started_s: float
    stopped_s: float
    fsyncs: int = 0
    """fsync calls while recording (0 when they were made no-ops)."""


def open_ledger(
    path: Path,
    *,
    run_id: str,
    jobs: Sequence[config.JobSpec],
    volumes: Sequence[str],
    lag_bound_s: float,
    settle_s: float,
) -> ledger.Writer:
    """A ledger with its run record written, ready for a recorder on its own."""
    writer = ledger.Writer.open(path, clock=time.time)
    writer.append(
        {
            "type": "run",
            "version": 1,
            "run_id": run_id,
            "target": {"bench": "the recorder alone"},
            "jobs": [spec.as_record() for spec in jobs],
            "volumes": list(volumes),
            "lag_bound_s": lag_bound_s,
            "settle_s": settle_s,
        }
    )
    return writer


def record_in_child(job: RecorderJob) -> RecorderCost:
    """Run `record` in a fresh spawned interpreter, so its rusage is the recorder's alone."""
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        start_s, stop_s = job.window(time.time())
        return pool.submit(record, job).result(timeout=stop_s - start_s + 180)


def record(job: RecorderJob) -> RecorderCost:
    """The child's work: connect, write the run record, record the window, end the ledger."""
    # Replacing a function of the os module on purpose, in this throwaway process only: to count
    # the ledger's fsyncs, or to price them (a no-op).
    fsyncs = _FsyncCount(os.fsync)
    os.fsync = _no_fsync if not job.fsync else fsyncs  # type: ignore[assignment]
    api = cluster.Cluster.connect(kubeconfig=job.kubeconfig, context=job.context, allowed=(job.context,))
    start_at_s, stop_at_s = job.window(time.time())
    timer = threading.Event()  # never set: its waits are for time itself
    timer.wait(max(0.0, start_at_s - time.time()))
    # The run record opens the verdict's window: exactly the ticks recorded.
    writer = open_ledger(
        job.ledger_path,
        run_id=job.run_id,
        jobs=job.jobs,
        volumes=job.volumes,
        lag_bound_s=job.lag_bound_s,
        settle_s=job.settle_s,
    )
    rec = recorder.Recorder(
        api, writer, jobs={spec.name: spec.task for spec in job.jobs}, volumes=job.volumes
    )
    rss_before = _proc_status_kb("VmRSS")
    peak_reset = _reset_peak_rss()
    cpu_before, wall_before = cpu_s(), time.perf_counter()
    fsyncs.calls = 0
    started_s = time.time()
    rec.start()
    rec.wait_synced(deadline_s=60)
    sync_cpu_s = cpu_s() - cpu_before
    # The recorder works on its own threads meanwhile.
    timer.wait(max(0.0, stop_at_s - time.time()))
    rec.stop()
    stopped_s = time.time()
    cost = RecorderCost(
        cpu_s=cpu_s() - cpu_before,
        sync_cpu_s=sync_cpu_s,
        wall_s=time.perf_counter() - wall_before,
        rss_before_mb=rss_before / 1024,
        peak_rss_mb=_proc_status_kb("VmHWM") / 1024,
        peak_reset=peak_reset,
        started_s=started_s,
        stopped_s=stopped_s,
        fsyncs=fsyncs.calls,
    )
    writer.append({"type": "end", "reason": "completed"})
    writer.close()
    api.close()
    return cost


class _FsyncCount:
    """os.fsync, counted."""

    def __init__(self, real: Callable[[int], None]) -> None:
        self.real = real
        self.calls = 0

    def __call__(self, fd: int) -> None:
        self.calls += 1
        self.real(fd)


def _no_fsync(_fd: object) -> None:
    """Stands in for os.fsync in a diagnostic child (see RecorderJob.fsync)."""


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _proc_status_kb(field_name: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field_name}:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field_name}")


def _reset_peak_rss() -> bool:
    # Linux: writing 5 to clear_refs resets VmHWM to the current RSS (proc(5)).
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


# -- small figures helpers ------------------------------------------------------------------------


def ticks_between(cron: str, start_s: float, end_s: float) -> int:
    """How many ticks of `cron` fall in [start, end)."""
    sched = schedule.parse(cron)
    count, tick = 0, sched.next_after(start_s - 1e-6)
    while tick < end_s:
        count += 1
        tick = sched.next_after(tick)
    return count


def rounded(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


def summary(values: Sequence[float], digits: int = 3) -> dict[str, Any]:
    """n, median, p90 and max of `values` (None when empty)."""
    if not values:
        return {"n": 0, "median": None, "p90": None, "max": None}
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, round(0.9 * (len(ordered) - 1)))]
    return {
        "n": len(ordered),
        "median": round(statistics.median(ordered), digits),
        "p90": round(p90, digits),
        "max": round(ordered[-1], digits),
    }


def dumps(figures: dict[str, Any]) -> str:
    return json.dumps(figures, indent=2, sort_keys=True, default=str)
