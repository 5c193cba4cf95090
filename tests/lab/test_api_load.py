"""Under load (20 watchers, 200 writes/s) every watcher sees every resourceVersion, in order."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

BENCH = Path(__file__).resolve().parents[2] / "bench" / "api_bench.py"


def load_bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lhsoak_api_bench", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_twenty_watchers_lose_no_event_and_keep_order_under_200_writes_per_second() -> None:
    # The short version of `make bench`'s 30 s run, to keep `make test` fast.
    result = load_bench().measure(duration_s=3.0, watchers=20, writes_per_s=200.0)
    assert result.writes >= 300, f"the load was not applied: {result}"
    assert result.lost == 0, f"watchers lost events: {result}"
    assert result.out_of_order == 0, f"watchers saw versions out of order or twice: {result}"
    assert result.events_delivered == result.writes * 20
    assert result.requests["POST"] + result.requests["PATCH"] + result.requests["DELETE"] == result.writes
    assert result.requests["WATCH (open)"] == 20
