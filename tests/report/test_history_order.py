"""The trend of a report comes from the run before it, never from a later one."""

from __future__ import annotations

import os
from pathlib import Path

from lhsoak.report import html


def _run(reports: Path, name: str, *, at_s: float, with_report: bool = True) -> Path:
    run_dir = reports / name
    run_dir.mkdir(parents=True)
    ledger = run_dir / "ledger.jsonl"
    ledger.write_text("{}\n")
    os.utime(ledger, (at_s, at_s))
    if with_report:
        history = run_dir / html.REPORT_DIR / "history"
        history.mkdir(parents=True)
        (history / "history.json").write_text("{}")
    return run_dir


def test_each_run_takes_the_history_of_the_newest_run_before_it(tmp_path: Path) -> None:
    first = _run(tmp_path, "run-a", at_s=1_000)
    second = _run(tmp_path, "run-b", at_s=2_000)
    third = _run(tmp_path, "run-c", at_s=3_000, with_report=False)
    assert html.previous_report(first, reports_dir=tmp_path) is None
    assert html.previous_report(second, reports_dir=tmp_path) == first / html.REPORT_DIR
    assert html.previous_report(third, reports_dir=tmp_path) == second / html.REPORT_DIR
