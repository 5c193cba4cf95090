"""How fast `lhsoak analyze` reads and judges a day-long ledger of 100 volumes × 2 jobs."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from lhsoak import ledger, ledger_synth, verdict

START_S = 1_795_737_600.0  # 2026-11-27T00:00:00Z
HOURS = 24.0
VOLUMES = 100
REPEATS = 3

T = TypeVar("T")


def _best_of(repeats: int, action: Callable[[], T]) -> tuple[float, T]:
    """The shortest of `repeats` timings of `action`, and its last result."""
    timings = []
    for _ in range(repeats):
        began = time.perf_counter()
        result = action()
        timings.append(time.perf_counter() - began)
    return min(timings), result


def run() -> dict[str, object]:
    """Generate the ledger to a temp file, then time `ledger.read` and `verdict.analyse`."""
    began = time.perf_counter()
    builder = ledger_synth.soak(start_s=START_S, hours=HOURS, volumes=VOLUMES)
    with tempfile.TemporaryDirectory(prefix="lhsoak-bench-") as tmp:
        path = builder.write(Path(tmp) / "ledger.jsonl")
        generate_s = time.perf_counter() - began
        size = path.stat().st_size
        read_s, parsed = _best_of(REPEATS, lambda: ledger.read(path))
    analyse_s, result = _best_of(REPEATS, lambda: verdict.analyse(parsed))
    if not result.passed:
        raise RuntimeError(f"the synthetic run must pass, got failures: {result.failures[:3]}")
    return {
        "records": parsed.record_count,
        "ledger_mb": round(size / 1e6, 1),
        "ticks_judged": sum(row.ticks for job in result.jobs for row in job.volumes),
        "seconds_generate": round(generate_s, 2),
        "seconds_read": round(read_s, 3),
        "seconds_analyse": round(analyse_s, 3),
        "records_per_s": round(parsed.record_count / (read_s + analyse_s)),
    }
