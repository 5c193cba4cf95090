"""`lhsoak analyze LEDGER [--json]`: judge a soak run's ledger.

Exit 0 passed, 1 failed (also when the failure was found before the run was interrupted), 2 bad
ledger, 130 the run was interrupted and nothing had failed before it stopped: as the soak itself
says, the verdict could not be reached.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lhsoak import errors, ledger, timestamps, verdict

NAME = "analyze"
HELP = "Judge a run's tick ledger: did every recurring job keep firing on every volume?"

_EXIT_CODES: dict[verdict.RunOutcome, int] = {
    "passed": errors.EXIT_PASSED,
    "failed": errors.EXIT_FAILED,
    "interrupted": errors.EXIT_INTERRUPTED,
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ledger to read and the output format."""
    parser.add_argument("ledger", metavar="LEDGER", type=Path, help="a run's ledger.jsonl")
    parser.add_argument("--json", action="store_true", help="print the verdict as JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    """Print the verdict; exit 0 passed, 1 failed, 130 interrupted before anything failed."""
    path: Path = args.ledger
    try:
        parsed = ledger.read(path)
    except ledger.LedgerError as error:
        raise errors.UsageError(f"bad ledger: {error}") from None
    except OSError as error:
        raise errors.UsageError(f"cannot read ledger {path}: {error.strerror}") from None
    result = verdict.analyse(parsed)
    found = causes(parsed)
    if args.json:
        print(json.dumps({**result.to_json(), "causes": found}, indent=2, ensure_ascii=False))
    else:
        print(verdict.render_table(result), end="")
        if found:
            print("\ncauses the soak diagnosed (ledger notes; the latest of each):")
            for cause in found:
                print(f"  [{cause['category']}] {cause['text']}")
    return _EXIT_CODES[result.outcome]


def causes(parsed: ledger.Ledger) -> list[dict[str, Any]]:
    """The diagnosis notes the soak wrote (those with a `category`), the latest per category and job."""
    latest: dict[tuple[str, str], dict[str, Any]] = {}
    for note in parsed.notes:
        category = note.data.get("category")
        if not isinstance(category, str):
            continue
        job = str(note.data.get("job") or "")
        latest.pop((category, job), None)
        latest[(category, job)] = {
            "category": category,
            "job": job or None,
            "level": note.level,
            "text": note.text,
            "ts": timestamps.to_rfc3339(note.ts_s),
        }
    return list(latest.values())
