"""`lhsoak report [RUN_DIR] [--html [OUT]]`: the QA report of a soak run.

Builds `RUN_DIR/attachments/` (timeline and lag pictures, per-tick table, summary, diagnosis notes)
from `RUN_DIR/ledger.jsonl`, completes `RUN_DIR/allure-results/` (categories, environment, executor;
a result carrying the attachments when no pytest session wrote one) and, with `--html`, runs the
Allure command line into OUT (default `RUN_DIR/allure-report`), carrying the previous run's history so
the trend charts span nightly runs. Exit 0 when the report was built (whatever the verdict), 2 when it
could not be (no such run, bad ledger, no Allure or Java).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Literal

from lhsoak import errors, ledger, verdict
from lhsoak.report import allure_files, files, html, summary

NAME = "report"
HELP = "Build a run's QA report: pictures, tables, Allure results and (with --html) the HTML report."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The run directory, the HTML output and where Allure and the previous history come from."""
    parser.add_argument(
        "run_dir",
        metavar="RUN_DIR",
        type=Path,
        nargs="?",
        default=None,
        help="a run's directory holding ledger.jsonl, or a run id under --reports-dir "
        "(default: the newest run there)",
    )
    parser.add_argument(
        "--html",
        metavar="OUT",
        type=Path,
        nargs="?",
        const=True,
        default=None,
        help=f"generate the HTML report into OUT (default RUN_DIR/{html.REPORT_DIR})",
    )
    parser.add_argument(
        "--history",
        metavar="REPORT",
        type=Path,
        default=None,
        help="an earlier HTML report whose history/ to carry (default: the newest other run's)",
    )
    parser.add_argument(
        "--allure",
        metavar="PATH",
        type=Path,
        default=None,
        help="the Allure command line (default: $LHSOAK_ALLURE, infra/report's npm install, PATH)",
    )
    parser.add_argument(
        "--reports-dir",
        metavar="DIR",
        type=Path,
        default=Path("reports"),
        help="where runs live, to find the newest run and earlier reports (default reports)",
    )


def _newest_run(reports_dir: Path) -> Path:
    runs = [path.parent for path in reports_dir.glob(f"*/{files.LEDGER_FILE}")]
    if not runs:
        raise errors.UsageError(f"no run under {reports_dir} (no */{files.LEDGER_FILE}); pass RUN_DIR")
    return max(runs, key=lambda run: (run / files.LEDGER_FILE).stat().st_mtime)


def _run_dir(given: Path | None, *, reports_dir: Path) -> Path:
    """RUN_DIR as given, or a run id under --reports-dir (what `make report RUN=<run-id>` passes)."""
    if given is None:
        return _newest_run(reports_dir)
    if not (given / files.LEDGER_FILE).is_file() and (reports_dir / given / files.LEDGER_FILE).is_file():
        return reports_dir / given
    return given


def _build(run_dir: Path) -> files.RunFiles:
    if not (run_dir / files.LEDGER_FILE).is_file():
        raise errors.UsageError(f"{run_dir} is not a run directory: it has no {files.LEDGER_FILE}")
    try:
        return files.build(run_dir)
    except ledger.LedgerError as error:
        raise errors.UsageError(f"bad ledger: {error}") from None
    except OSError as error:
        raise errors.UsageError(f"cannot build the report in {run_dir}: {error}") from None


_ALLURE_STATUS: dict[verdict.RunOutcome, Literal["passed", "failed", "broken"]] = {
    "passed": "passed",
    "failed": "failed",
    # Stopped before a verdict: neither a pass nor a caught failure.
    "interrupted": "broken",
}


def _complete_results(run_dir: Path, built: files.RunFiles) -> Path:
    """Make RUN_DIR/allure-results complete; returns it."""
    results = run_dir / html.RESULTS_DIR
    has_results = results.is_dir() and any(results.glob("*-result.json"))
    result = built.verdict
    if not has_results:
        allure_files.write_result(
            results,
            name="both jobs keep firing with bounded lag",
            full_name="lhsoak.report#verdict",
            status=_ALLURE_STATUS[result.outcome],
            message=built.failure_message,
            start_s=result.window_start_s,
            stop_s=result.window_end_s,
            attachments=built.attachments,
            parameters={"run id": result.run_id},
        )
    # A pytest session's own environment.properties and executor.json know more (versions): keep them.
    if not (results / allure_files.ENVIRONMENT_FILE).is_file():
        allure_files.write_allure_metadata(results, allure_files.environment_from_run(built.run))
    allure_files.write_categories(results)
    executor = allure_files.executor_from_environ(os.environ)
    if executor is not None and not (results / allure_files.EXECUTOR_FILE).is_file():
        allure_files.write_executor(results, executor)
    return results


def _allure(explicit: Path | None) -> Path:
    """The Allure command line, and Java to run it, checked before anything is built."""
    try:
        allure = html.find_allure(explicit)
        html.require_java()
    except html.ReportToolError as error:
        raise errors.UsageError(str(error)) from None
    return allure


def run(args: argparse.Namespace) -> int:
    """Build the report; print where it is."""
    run_dir = _run_dir(args.run_dir, reports_dir=args.reports_dir)
    allure = _allure(args.allure) if args.html is not None else None
    built = _build(run_dir)
    results = _complete_results(run_dir, built)
    print(summary.headline(built.verdict))
    print(f"attachments: {built.directory}")
    print(f"allure results: {results}")
    if allure is None:
        return errors.EXIT_PASSED
    out: Path = run_dir / html.REPORT_DIR if args.html is True else args.html
    history_from = args.history or html.previous_report(run_dir, reports_dir=args.reports_dir)
    try:
        index = html.generate(results, out, allure=allure, history_from=history_from)
    except html.ReportToolError as error:
        raise errors.UsageError(str(error)) from None
    carried = f" (history from {history_from})" if history_from is not None else ""
    print(f"html report: {index}{carried}")
    return errors.EXIT_PASSED
