"""Scale: 10, 100 and 500 volumes with both jobs — recorder CPU and peak memory, verdict time.

The lab cannot run 500 volumes on this machine: its one event loop needs more than 20 CPU-seconds
for one tick of 500 volumes (measured once: 23 s per tick with a 30-second cron, and still
behind), so the jobs overrun and the recorder would be measured on a fraction of the work. The
sizes are therefore fed by a synthetic cluster: the lab's own API server (HTTPS, watches, bookmarks)
over its store, with no controllers; a feeder in the server's process writes, at every tick of a
10-second cron and for every volume, the changes the lab's recurring-job emulation makes for one
tick of both jobs with retain 1 (`_one_volume_tick`: 17 watch events per volume, counted on the
lab). The lab itself runs 100 volumes as a cross-check of the synthetic figure.

For each size the recorder runs alone in a spawned child process for exactly 2 ticks (from 0.5 s
before a tick to 0.5 s before the tick after the last). The child reports its own `getrusage` (every
thread, user + system) from just before `Recorder.start()` to after `stop()` (per tick: without the
first list, reported apart), and its peak resident memory (VmHWM, reset just before `start()`).
The bench then times `ledger.read` + `verdict.analyse` on the ledger the child wrote (best of 3).
A last run prices the ledger's per-record fsync: the same 500 volumes with `os.fsync` a no-op in
the recorder's process.
Goal: every figure grows linearly or better with the volumes; 500 volumes under 1 CPU-second per tick.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import math
import multiprocessing
import queue
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any, TypeVar

from bench import _lab
from lhsoak import config, ledger, longhorn, schedule, verdict
from lhsoak.lab import apiserver, kinds, kubeconfig, pki
from lhsoak.lab.store import Obj, Store

T = TypeVar("T")

SIZES = (10, 100, 500)
LAB_CROSS_CHECK_VOLUMES = 100
CRON = "*/10 * * * * *"
CONCURRENCY = 50
"""Volumes each job works on at once in the lab (upstream's `concurrency`; the soak's default of 1
would make a 100-volume backup run outlast the period)."""
TICKS = 2
REPEATS = 3
NAMESPACE = config.LONGHORN_NAMESPACE
JOBS = (
    config.JobSpec(name="soak-snap", task="snapshot", cron=CRON, retain=1, concurrency=CONCURRENCY),
    config.JobSpec(name="soak-backup", task="backup", cron=CRON, retain=1, concurrency=CONCURRENCY),
)
START_DEADLINE_S = 60.0


def run() -> dict[str, object]:
    rows = {size: measure_synthetic(size) for size in SIZES}
    figures: dict[str, object] = {f"synthetic_{size}_volumes": row for size, row in rows.items()}
    figures[f"synthetic_{SIZES[-1]}_volumes_without_fsync"] = measure_synthetic(SIZES[-1], fsync=False)
    figures[f"lab_{LAB_CROSS_CHECK_VOLUMES}_volumes"] = measure_lab(LAB_CROSS_CHECK_VOLUMES)
    figures["growth_exponent"] = _growth(rows)
    figures["goal_500_under_1_cpu_s_per_tick"] = rows[SIZES[-1]]["recorder_cpu_s_per_tick"] < 1.0
    return figures


# -- the two sources ------------------------------------------------------------------------------


def measure_synthetic(volumes: int, *, fsync: bool = True) -> dict[str, Any]:
    """`fsync=False`: the ledger's per-record fsync made a no-op in the recorder's process, to
    price it (what batching the fsyncs could save at most)."""
    run_id = f"bench-scale-{volumes}"
    names = tuple(longhorn.volume_names(run_id, volumes))
    with tempfile.TemporaryDirectory(prefix="lhsoak-scale-") as tmp:
        what = "" if fsync else ", ledger fsync off"
        _lab.say(f"{volumes} volumes (synthetic feed{what}): recorder in a child process for {TICKS} ticks")
        spec = FeedSpec(state_dir=Path(tmp), run_id=run_id, volumes=names)
        job = dataclasses.replace(_recorder_job(spec.kubeconfig, kubeconfig.DEFAULT_NAME, spec), fsync=fsync)
        with SyntheticCluster(spec) as synthetic:
            cost = _lab.record_in_child(job)
        row = _row(cost, spec.ledger_path, volumes=volumes)
    feed = synthetic.stats
    return row | {
        "feed_max_seconds_per_tick": round(max(feed.seconds_per_tick, default=0.0), 2),
        "feed_kept_up": bool(feed.seconds_per_tick)
        and max(feed.seconds_per_tick) < schedule.parse(CRON).period_s,
    }


def measure_lab(volumes: int) -> dict[str, Any]:
    run_id = f"bench-scale-lab-{volumes}"
    with _lab.running_lab() as lab, tempfile.TemporaryDirectory(prefix="lhsoak-scale-") as tmp:
        _lab.say(f"{volumes} volumes (lab): creating them and the two recurring jobs")
        soak = config.Soak(
            run_id=run_id,
            jobs=JOBS,
            volumes=volumes,
            volume_mode="volume",
            reports_dir=Path(tmp),
            allow_seconds_cron=True,
        )
        api = _lab.connect(lab)
        setup = longhorn.Setup(api, soak, on_step=lambda _text: None)
        setup.apply()
        api.close()
        _lab.say(f"{volumes} volumes (lab): recorder in a child process for {TICKS} ticks")
        spec = FeedSpec(state_dir=Path(tmp), run_id=run_id, volumes=tuple(setup.volumes))
        lab_cpu_before = _lab.process_cpu_s(lab.pid)
        cost = _lab.record_in_child(_recorder_job(lab.kubeconfig, lab.context, spec))
        lab_cpu_s = _lab.process_cpu_s(lab.pid) - lab_cpu_before
        row = _row(cost, spec.ledger_path, volumes=volumes)
    return row | {"lab_cpu_s_per_tick": _per_tick(lab_cpu_s, row["ticks"])}


def _recorder_job(kubeconfig_path: Path, context: str, spec: FeedSpec) -> _lab.RecorderJob:
    return _lab.RecorderJob(
        kubeconfig=kubeconfig_path,
        context=context,
        ledger_path=spec.ledger_path,
        run_id=spec.run_id,
        jobs=JOBS,
        volumes=spec.volumes,
        cron=CRON,
        ticks=TICKS,
        lag_bound_s=schedule.parse(CRON).period_s,
        settle_s=0.0,
    )


def _row(cost: _lab.RecorderCost, path: Path, *, volumes: int) -> dict[str, Any]:
    read_s, parsed = _best_of(lambda: ledger.read(path))
    analyse_s, result = _best_of(lambda: verdict.analyse(parsed))
    ticks = _lab.ticks_between(CRON, cost.started_s, cost.stopped_s)
    judged = [row for job in result.jobs for row in job.volumes]
    return {
        "ticks": ticks,
        "artifacts_recorded": len({fire.object for fire in parsed.fires}),
        "ledger_records": parsed.record_count,
        "ledger_fsyncs_per_tick": _per_tick(cost.fsyncs, ticks),
        "ledger_mb": round(path.stat().st_size / 1e6, 2),
        "ticks_fired": sum(row.fired for row in judged),
        "ticks_missed": sum(row.missed for row in judged),
        "recorder_cpu_s": round(cost.cpu_s, 2),
        "recorder_sync_cpu_s": round(cost.sync_cpu_s, 2),
        "recorder_cpu_s_per_tick": _per_tick(cost.cpu_s - cost.sync_cpu_s, ticks),
        "recorder_cpu_ms_per_volume_tick": round(1000 * (cost.cpu_s - cost.sync_cpu_s) / (ticks * volumes), 2)
        if ticks
        else None,
        "recorder_rss_before_mb": round(cost.rss_before_mb, 1),
        "recorder_peak_rss_mb": round(cost.peak_rss_mb, 1),
        "recorder_peak_growth_mb": round(cost.peak_rss_mb - cost.rss_before_mb, 1),
        "peak_reset": cost.peak_reset,
        "verdict_seconds": round(read_s + analyse_s, 3),
    }


def _per_tick(seconds: float, ticks: int) -> float | None:
    return round(seconds / ticks, 3) if ticks else None


def _best_of(action: Callable[[], T]) -> tuple[float, T]:
    timings = []
    for _ in range(REPEATS):
        began = time.perf_counter()
        result = action()
        timings.append(time.perf_counter() - began)
    return min(timings), result


def _growth(rows: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Per step in size, the exponent k of `figure ∝ volumes^k` (1 = linear, < 1 = better)."""
    growth: dict[str, Any] = {}
    for figure in ("recorder_cpu_s_per_tick", "recorder_peak_growth_mb", "verdict_seconds"):
        for small, big in itertools.pairwise(SIZES):
            low, high = rows[small][figure], rows[big][figure]
            exponent = math.log(high / low) / math.log(big / small) if low and high else None
            growth[f"{figure}_{small}_to_{big}"] = _lab.rounded(exponent)
    return growth


# -- the synthetic cluster ------------------------------------------------------------------------


@dataclass(frozen=True)
class FeedSpec:
    """What the synthetic cluster serves: the soak's volumes and what its two jobs make per tick."""

    state_dir: Path
    run_id: str
    volumes: tuple[str, ...]

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def ledger_path(self) -> Path:
        return self.state_dir / "ledger.jsonl"


@dataclass
class FeedStats:
    """What the feeder did: wall seconds per tick's writes."""

    seconds_per_tick: list[float] = field(default_factory=list)
    error: str | None = None
    """Why the feeder stopped before it was told to, if it did."""


class SyntheticCluster:
    """The lab's API server fed by `_feed`, in a spawned process of its own."""

    def __init__(self, spec: FeedSpec) -> None:
        context = multiprocessing.get_context("spawn")
        self.kubeconfig = spec.kubeconfig
        self.stats = FeedStats()
        self._ready = context.Event()
        self._stop = context.Event()
        self._results: multiprocessing.Queue[FeedStats] = context.Queue()
        self._process = context.Process(
            target=serve_synthetic, args=(spec, self._ready, self._stop, self._results), daemon=True
        )

    def __enter__(self) -> SyntheticCluster:
        self._process.start()
        if not self._ready.wait(timeout=START_DEADLINE_S):
            self._process.kill()
            raise RuntimeError(
                f"the synthetic cluster was not serving within {START_DEADLINE_S:.0f}s "
                f"(process exit code {self._process.exitcode})"
            )
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        try:
            self.stats = self._results.get(timeout=START_DEADLINE_S)
        except queue.Empty:
            raise RuntimeError("the synthetic cluster sent no figures (see its traceback above)") from None
        finally:
            self._process.join(timeout=30)
            if self._process.is_alive():
                self._process.kill()
        if self.stats.error:
            raise RuntimeError(f"the synthetic cluster's feeder failed: {self.stats.error}")


def serve_synthetic(
    spec: FeedSpec, ready: Event, stop: Event, results: multiprocessing.Queue[FeedStats]
) -> None:
    """The child's work: serve and feed until `stop`, then report the feed's figures."""
    stats = FeedStats()
    asyncio.run(_serve_and_feed(spec, ready, stop, stats))
    results.put(stats)


async def _serve_and_feed(spec: FeedSpec, ready: Event, stop: Event, stats: FeedStats) -> None:
    authority, token = pki.generate(), pki.new_token()
    store = apiserver.lab_store()
    server = apiserver.ApiServer(store, pki_=authority, token=token)
    await server.start()
    kubeconfig.write(spec.kubeconfig, url=server.url, ca_pem=authority.ca_pem, token=token)
    store.create(kinds.NAMESPACE, {"metadata": {"name": NAMESPACE}})
    for name in spec.volumes:
        _create_volume(store, name, run_id=spec.run_id)
    ready.set()
    feeder = asyncio.create_task(_feed(store, spec, stats))
    await asyncio.get_running_loop().run_in_executor(None, stop.wait)
    feeder.cancel()
    try:
        await feeder
    except asyncio.CancelledError:
        pass
    except Exception as error:
        stats.error = f"{type(error).__name__}: {error}"
    await server.stop()


def _create_volume(store: Store, name: str, *, run_id: str) -> None:
    volume = longhorn.volume_object(name, run_id=run_id, size_bytes=1 << 30, jobs=JOBS)
    store.create(kinds.LH_VOLUME, {"apiVersion": kinds.LH_VOLUME.api_version, "kind": "Volume", **volume})
    status = {
        "currentNodeID": "worker-1",
        "ownerID": "worker-1",
        "state": "attached",
        "robustness": "healthy",
    }
    _set_status(store, kinds.LH_VOLUME, name, status)


@dataclass
class _Made:
    """One volume's artifacts of the last tick, deleted at the next (retain 1)."""

    snapshot: str
    backup_snapshot: str
    backup: str


async def _feed(store: Store, spec: FeedSpec, stats: FeedStats) -> None:
    sched = schedule.parse(CRON)
    tick = sched.next_after(time.time())
    made: dict[str, _Made] = {}
    while True:
        # A timer: the next tick of the schedule, as the CronJob controller fires it.
        await asyncio.sleep(max(0.0, tick - time.time()))
        began = time.perf_counter()
        for index, volume in enumerate(spec.volumes):
            made[volume] = _one_volume_tick(store, volume, made.get(volume))
            if index % 10 == 9:
                await asyncio.sleep(0)  # let the server stream what was written
        stats.seconds_per_tick.append(time.perf_counter() - began)
        tick = sched.next_after(tick)


def _one_volume_tick(store: Store, volume: str, last: _Made | None) -> _Made:
    """The 17 changes the lab makes for one volume in one tick of both jobs (retain 1)."""
    snap_job, backup_job = (job.name for job in JOBS)
    snapshot = _snapshot(store, volume, snap_job)
    if last is not None:
        store.delete(kinds.LH_SNAPSHOT, last.snapshot, namespace=NAMESPACE)
    backup_snapshot = _snapshot(store, volume, backup_job)
    backup = f"backup-{uuid.uuid4().hex[:16]}"
    _backup(store, backup, volume=volume, snapshot=backup_snapshot, job=backup_job)
    if last is not None:
        store.delete(kinds.LH_BACKUP, last.backup, namespace=NAMESPACE)
        store.delete(kinds.LH_SNAPSHOT, last.backup_snapshot, namespace=NAMESPACE)
    now = _now()

    def last_backup(obj: Obj) -> None:
        obj.setdefault("status", {}).update(lastBackup=backup, lastBackupAt=now)

    store.mutate(kinds.LH_VOLUME, volume, last_backup, namespace=NAMESPACE, subresource="status")
    return _Made(snapshot=snapshot, backup_snapshot=backup_snapshot, backup=backup)


def _snapshot(store: Store, volume: str, job: str) -> str:
    name = f"{job[:8]}-{uuid.uuid4()}"
    store.create(
        kinds.LH_SNAPSHOT,
        {
            "apiVersion": kinds.LH_SNAPSHOT.api_version,
            "kind": "Snapshot",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"volume": volume, "createSnapshot": True, "labels": {"RecurringJob": job}},
        },
    )
    status = {
        "ownerID": "worker-1",
        "creationTime": _now(),
        "readyToUse": True,
        "userCreated": True,
        "markRemoved": False,
        "labels": {"RecurringJob": job},
        "size": 2097152,
        "restoreSize": 2147483648,
        "parent": "",
        "children": {"volume-head": True},
        "error": "",
    }
    _set_status(store, kinds.LH_SNAPSHOT, name, status)
    return name


def _backup(store: Store, name: str, *, volume: str, snapshot: str, job: str) -> None:
    store.create(
        kinds.LH_BACKUP,
        {
            "apiVersion": kinds.LH_BACKUP.api_version,
            "kind": "Backup",
            "metadata": {
                "name": name,
                "namespace": NAMESPACE,
                "labels": {"backup-target": "default", "backup-volume": volume},
            },
            "spec": {"snapshotName": snapshot, "labels": {"RecurringJob": job}, "backupMode": "incremental"},
        },
    )
    base = {
        "ownerID": "worker-1",
        "snapshotName": snapshot,
        "volumeName": volume,
        "backupTargetName": "default",
        "messages": {},
    }
    steps: list[dict[str, Any]] = [
        {"state": "New", "progress": 0},
        {"state": "Pending", "progress": 0},
        {"state": "InProgress", "progress": 0, "replicaAddress": "10.42.1.11:10000"},
        {"state": "InProgress", "progress": 34, "replicaAddress": "10.42.1.11:10000"},
        {"state": "InProgress", "progress": 68, "replicaAddress": "10.42.1.11:10000"},
    ]
    for index, step in enumerate(steps):
        _set_status(store, kinds.LH_BACKUP, name, base | step)
        if index == 2:
            _volume_event(store, volume, "InProgress", f"Snapshot {snapshot} backup {name} is in progress")
    now = _now()
    completed = base | {
        "state": "Completed",
        "progress": 100,
        "replicaAddress": "10.42.1.11:10000",
        "url": f"s3://backupbucket@us-east-1/?backup={name}&volume={volume}",
        "snapshotCreatedAt": now,
        "backupCreatedAt": now,
        "size": "2097152",
        "labels": {"RecurringJob": job},
        "volumeSize": "2147483648",
        "lastSyncedAt": now,
        "compressionMethod": "lz4",
        "newlyUploadDataSize": "2097152",
        "reUploadedDataSize": "0",
        "error": "",
    }
    _set_status(store, kinds.LH_BACKUP, name, completed)
    _volume_event(
        store, volume, "Completed", f"Snapshot {snapshot} backup {name} label map[RecurringJob:{job}]"
    )


def _set_status(store: Store, kind: kinds.Kind, name: str, status: dict[str, Any]) -> None:
    store.mutate(kind, name, lambda obj: obj.update(status=status), namespace=NAMESPACE, subresource="status")


def _volume_event(store: Store, volume: str, reason: str, message: str) -> None:
    now = _now()
    store.create(
        kinds.EVENT,
        {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"namespace": NAMESPACE, "name": f"{volume}.{uuid.uuid4().hex[:16]}"},
            "involvedObject": {
                "kind": "Volume",
                "namespace": NAMESPACE,
                "name": volume,
                "apiVersion": kinds.LH_VOLUME.api_version,
            },
            "reason": reason,
            "message": message,
            "source": {"component": "longhorn-backup-controller"},
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "type": "Normal",
            "eventTime": None,
            "reportingComponent": "longhorn-backup-controller",
            "reportingInstance": "",
        },
    )


def _now() -> str:
    # Longhorn's own timestamps in these fields have whole seconds, as the lab writes them.
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


if __name__ == "__main__":
    print(_lab.dumps(run()))
