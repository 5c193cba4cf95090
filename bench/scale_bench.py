"""Scale: 10, 100 and 500 volumes with both jobs — recorder CPU and peak memory, verdict time.

For each size, a fresh healthy lab (its own process) gets the soak's volumes (with the job labels,
`longhorn.volume_object`) and a snapshot and a backup RecurringJob every 10 s, each working on 50
volumes at once (upstream's `concurrency`; the soak's default of 1 would make a 500-volume backup
run take minutes). The recorder runs alone in a spawned child process for 30 s (3 ticks); the child
reports its own `getrusage` (every thread, user + system) from just before `Recorder.start()` to
after `stop()`, and its peak resident memory (VmHWM, reset just before `start()`). The bench then
times `ledger.read` + `verdict.analyse` on the ledger the child wrote (best of 3).
Goal: every figure grows linearly or better with the volumes; 500 volumes under 1 CPU-second per tick.
"""

from __future__ import annotations

import math
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import _lab
from lhsoak import config, ledger, longhorn, schedule, verdict

SIZES = (10, 100, 500)
CRON = "*/10 * * * * *"
CONCURRENCY = 50
DURATION_S = 30.0
REPEATS = 3


def run() -> dict[str, object]:
    rows = {size: measure(size) for size in SIZES}
    figures: dict[str, object] = {f"volumes_{size}": row for size, row in rows.items()}
    figures["growth"] = _growth(rows)
    big = rows[SIZES[-1]]
    figures["goal_500_under_1_cpu_s_per_tick"] = big["recorder_cpu_s_per_tick"] < 1.0
    return figures


def measure(volumes: int) -> dict[str, Any]:
    jobs = tuple(
        config.JobSpec(name=name, task=task, cron=CRON, retain=1, concurrency=CONCURRENCY)
        for name, task in (("soak-snap", "snapshot"), ("soak-backup", "backup"))
    )
    run_id = f"bench-scale-{volumes}"
    with _lab.running_lab() as lab, tempfile.TemporaryDirectory(prefix="lhsoak-scale-") as tmp:
        soak = config.Soak(run_id=run_id, jobs=jobs, volumes=volumes, reports_dir=Path(tmp), allow_seconds_cron=True)
        _lab.say(f"{volumes} volumes: creating them and the two recurring jobs")
        api = _lab.connect(lab)
        setup = longhorn.Setup(api, soak, on_step=lambda _text: None)
        setup.apply()
        api.close()
        _lab.say(f"{volumes} volumes: recorder in a child process for {DURATION_S:.0f}s")
        path = Path(tmp) / "ledger.jsonl"
        lab_cpu_before = _lab.process_cpu_s(lab.pid)
        cost = _lab.record_in_child(
            _lab.RecorderJob(
                kubeconfig=lab.kubeconfig,
                context=lab.context,
                ledger_path=path,
                run_id=run_id,
                jobs=jobs,
                volumes=tuple(setup.volumes),
                duration_s=DURATION_S,
                lag_bound_s=schedule.parse(CRON).period_s,
                settle_s=0.0,
            )
        )
        lab_cpu_s = _lab.process_cpu_s(lab.pid) - lab_cpu_before
        read_s, parsed = _best_of(lambda: ledger.read(path))
        analyse_s, result = _best_of(lambda: verdict.analyse(parsed))
        size_mb = path.stat().st_size / 1e6
    ticks = _lab.ticks_between(CRON, cost.started_s, cost.stopped_s)
    judged = [row for job in result.jobs for row in job.volumes]
    return {
        "ticks": ticks,
        "artifacts_recorded": len({fire.object for fire in parsed.fires}),
        "ledger_records": parsed.record_count,
        "ledger_mb": round(size_mb, 2),
        "ticks_fired": sum(row.fired for row in judged),
        "ticks_missed": sum(row.missed for row in judged),
        "recorder_cpu_s": round(cost.cpu_s, 2),
        "recorder_sync_cpu_s": round(cost.sync_cpu_s, 2),
        "recorder_cpu_s_per_tick": round(cost.cpu_s / ticks, 3) if ticks else None,
        "recorder_cpu_ms_per_volume_tick": round(1000 * cost.cpu_s / (ticks * volumes), 2) if ticks else None,
        "recorder_rss_before_mb": round(cost.rss_before_mb, 1),
        "recorder_peak_rss_mb": round(cost.peak_rss_mb, 1),
        "recorder_peak_growth_mb": round(cost.peak_rss_mb - cost.rss_before_mb, 1),
        "peak_reset": cost.peak_reset,
        "lab_cpu_s_per_tick": round(lab_cpu_s / ticks, 2) if ticks else None,
        "verdict_seconds": round(read_s + analyse_s, 3),
    }


def _best_of(action: Any) -> tuple[float, Any]:
    timings, result = [], None
    for _ in range(REPEATS):
        began = time.perf_counter()
        result = action()
        timings.append(time.perf_counter() - began)
    return min(timings), result


def _growth(rows: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Per step in size, the exponent k of `figure ∝ volumes^k` (1 = linear, < 1 = better)."""
    growth: dict[str, Any] = {}
    for figure in ("recorder_cpu_s_per_tick", "recorder_peak_growth_mb", "verdict_seconds"):
        for small, big in zip(SIZES, SIZES[1:], strict=False):
            low, high = rows[small][figure], rows[big][figure]
            exponent = math.log(high / low) / math.log(big / small) if low and high and low > 0 else None
            growth[f"{figure}_{small}_to_{big}"] = _lab.rounded(exponent)
    return growth


if __name__ == "__main__":
    print(_lab.dumps(run()))
