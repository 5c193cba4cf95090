"""`lhsoak analyze LEDGER [--json]`: judge a soak run's ledger.

Exit 0 passed, 1 failed (also when the failure was found before the run was interrupted), 2 bad
ledger, 130 the run was interrupted and nothing had failed before it stopped: as the soak itself
says, the verdict could not be reached.

After the verdict come the causes the soak diagnosed while it ran (its ledger notes with a
`category`): each with its summary, evidence, upstream issues and workaround, as the soak printed
them at the end of its run; `causes` in the JSON document, one object per cause with those fields.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lhsoak import causes, errors, ledger, verdict

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
    found = causes.causes(parsed)
    if args.json:
        print(json.dumps(causes.verdict_document(result, parsed), indent=2, ensure_ascii=False))
    else:
        print(verdict.render_table(result), end="")
        if found:
            print("\ncauses the soak diagnosed (ledger notes; the latest of each):")
            print("\n".join(line for cause in found for line in _cause_lines(cause)))
    return _EXIT_CODES[result.outcome]


def _cause_lines(cause: Mapping[str, Any]) -> list[str]:
    """As the soak ends its run: `[category] summary`, then its evidence, upstream issues and
    workaround, indented."""
    lines = [f"  [{cause['category']}] {cause['summary']}"]
    lines += [f"    {line}" for line in cause["evidence"]]
    if cause["upstream"] is not None:
        lines.append(f"    {causes.UPSTREAM} {cause['upstream']}")
    if cause["workaround"] is not None:
        lines.append(f"    {causes.WORKAROUND} {cause['workaround']}")
    return lines
