"""The HTML report: the Allure 2 command line turns an allure-results directory into a static site.

The project pins the command line in `infra/report/package.json` (npm `allure-commandline`, which bundles
Allure 2 and runs on the machine's Java 17); `make report` installs it with `npm ci --prefix infra/report`.
Trends across nightly runs need the previous report's `history/` copied into the results before
generation: `previous_report` picks it, `generate` copies it and runs `allure generate --clean`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from lhsoak.report import allure_files

__all__ = ["REPORT_DIR", "ReportToolError", "find_allure", "generate", "previous_report", "require_java"]

REPORT_DIR = "allure-report"
"""Where a run's HTML report goes by default: `<run dir>/allure-report`."""
RESULTS_DIR = "allure-results"
_REPO_TOOLS = Path(__file__).resolve().parents[3] / "infra" / "report"
_TOOLS_BIN = Path("node_modules") / ".bin" / "allure"
_OUTPUT_TAIL_CHARS = 2000


class ReportToolError(Exception):
    """The Allure command line or Java is missing, or generation failed: says what and what to do."""


def find_allure(explicit: Path | None = None, *, environ: Mapping[str, str] = os.environ) -> Path:
    """The Allure command line: `explicit`, $LHSOAK_ALLURE, infra/report's npm install, or `allure` on PATH."""
    candidates: list[Path] = []
    if explicit is not None:
        candidates.append(explicit)
    elif environ.get("LHSOAK_ALLURE"):
        candidates.append(Path(environ["LHSOAK_ALLURE"]))
    else:
        candidates += [Path.cwd() / "infra" / "report" / _TOOLS_BIN, _REPO_TOOLS / _TOOLS_BIN]
        on_path = shutil.which("allure", path=environ.get("PATH"))
        if on_path:
            candidates.append(Path(on_path))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    looked = ", ".join(str(c) for c in candidates) or "nothing"
    raise ReportToolError(
        f"the Allure command line was not found (looked at {looked}); install it with "
        "`npm ci --prefix infra/report` (or `make report`), or pass --allure PATH"
    )


def require_java(environ: Mapping[str, str] = os.environ) -> None:
    """ReportToolError unless Java is in JAVA_HOME or on PATH (Allure 2 runs on it)."""
    java_home = environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / "java").is_file():
        return
    if shutil.which("java", path=environ.get("PATH")) is None:
        raise ReportToolError("Allure 2 needs Java (17 or newer) on PATH or in JAVA_HOME; none was found")


def previous_report(run_dir: Path, *, reports_dir: Path | None = None) -> Path | None:
    """The HTML report (with history) of the newest run under `reports_dir` (default: the run's
    parent) that is older than this run: a report rebuilt for an old run must not take its trend from
    runs that came after it. A run's age is its ledger's last write."""
    root = reports_dir if reports_dir is not None else run_dir.parent
    here = run_dir.resolve()
    this_run_s = _run_time_s(run_dir)
    found = [
        history.parent.parent
        for history in root.glob(f"*/{REPORT_DIR}/history/history.json")
        if history.parent.parent.parent.resolve() != here
        and _run_time_s(history.parent.parent.parent) < this_run_s
    ]
    return max(found, key=lambda report: _run_time_s(report.parent), default=None)


def _run_time_s(run_dir: Path) -> float:
    ledger = run_dir / "ledger.jsonl"
    return ledger.stat().st_mtime if ledger.is_file() else float("inf")


def _tail(text: str) -> str:
    return text[-_OUTPUT_TAIL_CHARS:].strip()


def generate(
    results: Path,
    out: Path,
    *,
    allure: Path,
    history_from: Path | None,
    timeout_s: float = 300.0,
    environ: Mapping[str, str] = os.environ,
) -> Path:
    """Run `allure generate --clean -o OUT RESULTS` with `history_from`'s history; returns OUT/index.html.

    Without `history_from`, history already in RESULTS (copied by an earlier generation of the same run)
    is kept, so generating twice does not add the run to its own trend twice.
    """
    require_java(environ)
    allure_files.copy_history(history_from, results)
    command: Sequence[str] = [str(allure), "generate", "--clean", "-o", str(out), str(results)]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, check=False, env=dict(environ)
        )
    except subprocess.TimeoutExpired:
        raise ReportToolError(f"allure generate did not finish within {timeout_s:.0f} s") from None
    index = out / "index.html"
    if done.returncode != 0 or not index.is_file():
        raise ReportToolError(
            f"allure generate failed (exit {done.returncode}): {_tail(done.stderr or done.stdout)}"
        )
    return index
