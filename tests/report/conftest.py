"""A synthetic soak for the report: two jobs × two volumes, three reboots, a backup job that stalls.

One hour from 2026-11-27T00:00:00Z, both jobs every 2 minutes (`*/2 * * * *`), lag bound 120 s,
settle 60 s, nodes node-1..3:

- 00:09:30 node-1 reboots (Ready 00:12:30);
- 00:23:30 the whole cluster reboots (Ready 00:27:00 / 00:27:30 / 00:28:00);
- 00:41:30 node-2 reboots (Ready 00:44:00).

soak-snap (snapshot, retain 2) fires every tick outside the outages, slower right after each reboot;
soak-backup (backup, retain 1) fires until the full-cluster reboot and never again (its job pod is
stuck Pending on node-2): a stuck-pending-job diagnosis note at 00:30:05; the recorder was blind on
backups 00:24:10-00:24:40. `cluster_snapshot` is the cluster state at 00:31:00 that the diagnosis
explains the stall from.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from lhsoak import diagnosis, ledger, ledger_synth, timestamps, verdict

START_S = timestamps.parse_rfc3339("2026-11-27T00:00:00Z")
END_S = START_S + 3600.0
NODES = ("node-1", "node-2", "node-3")
VOLUMES = ("vol-a", "vol-b")
REBOOTS: tuple[tuple[str, float, float], ...] = (
    ("node-1", 9 * 60 + 30, 12 * 60 + 30),
    ("node-1", 23 * 60 + 30, 27 * 60),
    ("node-2", 23 * 60 + 30, 27 * 60 + 30),
    ("node-3", 23 * 60 + 30, 28 * 60),
    ("node-2", 41 * 60 + 30, 44 * 60),
)
STALL_FROM_S = START_S + 22 * 60 + 30
"""No backup starts after this."""
DIAGNOSED_AT_S = START_S + 30 * 60 + 5


def _in_outage(t_s: float, *, settle_s: float = 60.0) -> bool:
    return any(START_S + a <= t_s <= START_S + b + settle_s for _node, a, b in REBOOTS)


def _after_reboot_lag(tick_s: float) -> float:
    """Slower fires in the first minutes after each node is back (as a real cluster is)."""
    since = [tick_s - (START_S + ready) for _node, _start, ready in REBOOTS if tick_s >= START_S + ready]
    return 70.0 if since and min(since) < 200.0 else 0.0


def build_run(run_id: str = "soak-synthetic") -> ledger_synth.Builder:
    b = ledger_synth.Builder(
        start_s=START_S,
        jobs=[
            ledger_synth.job_spec("soak-snap", task="snapshot", retain=2),
            ledger_synth.job_spec("soak-backup", task="backup", retain=1),
        ],
        lag_bound_s=120.0,
        settle_s=60.0,
        volumes=list(VOLUMES),
        run_id=run_id,
    )
    for node, start, ready in REBOOTS:
        b.reboot_cycle(node=node, start_s=START_S + start, ready_s=START_S + ready, down_s=20.0)
    snap_ticks = [START_S + 120.0 * k for k in range(30)]
    for index, tick in enumerate(snap_ticks):
        if _in_outage(tick):
            continue
        for shift, volume in enumerate(VOLUMES):
            jitter = (index * 7 + shift * 3) % 11
            started = tick + 2.0 + shift
            b.fire(
                job="soak-snap",
                volume=volume,
                started_s=started,
                done_s=started + 2.0 + jitter + _after_reboot_lag(tick),
            )
    for index, tick in enumerate(snap_ticks):
        if _in_outage(tick) or tick + 5.0 >= STALL_FROM_S:
            continue
        for shift, volume in enumerate(VOLUMES):
            started = tick + 5.0 + shift
            duration = 30.0 + (index * 13 + shift * 5) % 40 + _after_reboot_lag(tick) / 2
            b.fire_progress(job="soak-backup", volume=volume, started_s=started, done_s=started + duration)
    b.blind(from_s=START_S + 24 * 60 + 10, to_s=START_S + 24 * 60 + 40, resource="backups")
    b.add(
        DIAGNOSED_AT_S,
        {
            "type": "note",
            "level": "error",
            "text": "soak-backup: job pod soak-backup-29400000-x7k2p Pending for 6m35s on node-2, "
            "bound before the node restarted; the Forbid CronJob has skipped 3 ticks (longhorn#9185)",
            "data": {"category": "stuck-pending-job", "job": "soak-backup"},
        },
    )
    b.note(ts_s=START_S + 44 * 60 + 5, level="warn", text="node-2 Ready again; backup still stalled")
    b.end(ts_s=END_S)
    return b


TARGET = {
    "context": "lab",
    "nodes": dict.fromkeys(NODES, "worker"),
    "plan": "mixed",
    "profile": "stuck-pending",
}
"""The run record's target as the soak writes it (the Builder writes a bare one)."""


def write_run(run_dir: Path, *, run_id: str = "soak-synthetic") -> Path:
    """Write the run's ledger.jsonl, verdict.json and cluster-snapshot.json into `run_dir`."""
    records = build_run(run_id).records()
    records[0]["target"] = TARGET
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "ledger.jsonl").write_text("".join(ledger.format_record(r) for r in records))
    result = verdict.analyse(ledger.read(run_dir / "ledger.jsonl"))
    (run_dir / "verdict.json").write_text(json.dumps(result.to_json(), indent=2) + "\n")
    (run_dir / "cluster-snapshot.json").write_text(json.dumps(cluster_snapshot(), indent=2) + "\n")
    return run_dir


@pytest.fixture
def stalled_run_dir(tmp_path: Path) -> Path:
    return write_run(tmp_path / "reports" / "soak-synthetic")


@pytest.fixture
def stalled_ledger(stalled_run_dir: Path) -> ledger.Ledger:
    return ledger.read(stalled_run_dir / "ledger.jsonl")


@pytest.fixture
def stalled_verdict(stalled_ledger: ledger.Ledger) -> verdict.Verdict:
    return verdict.analyse(stalled_ledger)


def _ts(offset_s: float) -> str:
    return timestamps.to_rfc3339(START_S + offset_s).replace(".000000", "")


def cluster_snapshot() -> dict[str, Any]:
    """The stalled backup CronJob at 00:31:00: its Job's pod Pending on node-2 since before the reboot."""
    job_name = f"soak-backup-{int((START_S + 22 * 60) // 60)}"
    cronjob_uid, job_uid = "0b8c1e2a-cron", "4f2d9a71-job"
    pod_name = f"{job_name}-x7k2p"
    return {
        "taken_at_s": START_S + 31 * 60,
        "cronjobs": [
            {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "metadata": {
                    "name": "soak-snap",
                    "namespace": "longhorn-system",
                    "uid": "7a1d-cron-snap",
                    "creationTimestamp": _ts(-60),
                    "labels": {"recurring-job.longhorn.io": "soak-snap"},
                },
                "spec": {"schedule": "*/2 * * * *", "concurrencyPolicy": "Forbid"},
                "status": {"lastScheduleTime": _ts(30 * 60), "lastSuccessfulTime": _ts(30 * 60 + 12)},
            },
            {
                "apiVersion": "batch/v1",
                "kind": "CronJob",
                "metadata": {
                    "name": "soak-backup",
                    "namespace": "longhorn-system",
                    "uid": cronjob_uid,
                    "creationTimestamp": _ts(-60),
                    "labels": {"recurring-job.longhorn.io": "soak-backup"},
                },
                "spec": {"schedule": "*/2 * * * *", "concurrencyPolicy": "Forbid"},
                "status": {
                    "active": [
                        {"kind": "Job", "name": job_name, "namespace": "longhorn-system", "uid": job_uid}
                    ],
                    "lastScheduleTime": _ts(22 * 60),
                },
            },
        ],
        "jobs": [
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": {
                    "name": job_name,
                    "namespace": "longhorn-system",
                    "uid": job_uid,
                    "creationTimestamp": _ts(22 * 60),
                    "ownerReferences": [{"kind": "CronJob", "name": "soak-backup", "uid": cronjob_uid}],
                },
                "status": {"active": 1},
            }
        ],
        "pods": [
            {
                "apiVersion": "v1",
                "kind": "Pod",
                "metadata": {
                    "name": pod_name,
                    "namespace": "longhorn-system",
                    "uid": "pod-uid-1",
                    "creationTimestamp": _ts(22 * 60 + 1),
                    "labels": {"recurring-job.longhorn.io": "soak-backup", "job-name": job_name},
                    "ownerReferences": [{"kind": "Job", "name": job_name, "uid": job_uid}],
                },
                "spec": {"nodeName": "node-2", "restartPolicy": "OnFailure"},
                "status": {"phase": "Pending"},
            }
        ],
        "events": [
            {
                "apiVersion": "v1",
                "kind": "Event",
                "metadata": {"name": "soak-backup.1", "namespace": "longhorn-system"},
                "involvedObject": {"kind": "CronJob", "name": "soak-backup", "namespace": "longhorn-system"},
                "reason": "JobAlreadyActive",
                "type": "Normal",
                "count": 3,
                "lastTimestamp": _ts(30 * 60),
                "message": diagnosis.JOB_ALREADY_ACTIVE_MESSAGE,
            }
        ],
        "nodes": [
            {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": name, "creationTimestamp": _ts(-86400)},
                "status": {
                    "nodeInfo": {"bootID": f"boot-{name}-2"},
                    "conditions": [
                        {
                            "type": "Ready",
                            "status": "True",
                            "reason": "KubeletReady",
                            "lastTransitionTime": _ts(27 * 60 + 30),
                        }
                    ],
                },
            }
            for name in NODES
        ],
    }


def snapshot_from(raw: Mapping[str, Any]) -> diagnosis.ClusterSnapshot:
    lists = {key: tuple(value) for key, value in raw.items() if key != "taken_at_s"}
    return diagnosis.ClusterSnapshot(taken_at_s=float(raw["taken_at_s"]), **lists)


SOAK_JOBS = (
    diagnosis.JobSpec(name="soak-snap", task="snapshot", cron="*/2 * * * *", retain=2),
    diagnosis.JobSpec(name="soak-backup", task="backup", cron="*/2 * * * *", retain=1),
)


@pytest.fixture
def stuck_pending_findings() -> list[diagnosis.Finding]:
    return diagnosis.diagnose(snapshot_from(cluster_snapshot()), jobs=SOAK_JOBS, stalled={"soak-backup"})


STANDIN = Path(__file__).with_name("standin_suite.py")


def run_standin(
    workdir: Path, run_dir: Path, *pytest_args: str, run_id: str = "soak-synthetic", seed: int = 7
) -> subprocess.CompletedProcess[str]:
    """Run standin_suite.py (copied into `workdir`) on `run_dir` in a fresh pytest process."""
    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(STANDIN, workdir / "test_standin_soak.py")
    env = {
        **os.environ,
        "LHSOAK_STANDIN_RUN_DIR": str(run_dir),
        "LHSOAK_STANDIN_RUN_ID": run_id,
        "LHSOAK_STANDIN_SEED": str(seed),
    }
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "-q",
        *pytest_args,
        "test_standin_soak.py",
    ]
    return subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="session")
def standin() -> Callable[..., subprocess.CompletedProcess[str]]:
    """`standin(workdir, run_dir, *pytest_args, run_id=..., seed=...)`: see run_standin."""
    return run_standin


@pytest.fixture(scope="session")
def make_run() -> Callable[..., Path]:
    """`make_run(run_dir, run_id=...)`: see write_run."""
    return write_run
