"""Run every benchmark module and write reports/bench/<date>.json plus a short table."""

from __future__ import annotations

import datetime as dt
import importlib
import json
import pkgutil
import sys
from pathlib import Path

import bench


def main(argv: list[str]) -> int:
    wanted = set(argv)
    results: dict[str, object] = {}
    for info in sorted(pkgutil.iter_modules(bench.__path__), key=lambda i: i.name):
        if not info.name.endswith("_bench"):
            continue
        short = info.name.removesuffix("_bench")
        if wanted and short not in wanted:
            continue
        module = importlib.import_module(f"bench.{info.name}")
        print(f"== {short}", flush=True)
        figures = module.run()
        results[short] = figures
        for key, value in figures.items():
            print(f"  {key:<40} {value}")
    out_dir = Path("reports/bench")
    out_dir.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H%M%SZ")
    out = out_dir / f"{stamp}.json"
    out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
