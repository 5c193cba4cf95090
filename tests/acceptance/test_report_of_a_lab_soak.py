"""The QA report of a real (lab) soak that caught a bug: the HTML report, opened in headless Chromium,
shows the failed verdict under its category with the timeline picture. The screenshot is kept at
reports/report-check/lab-soak-stuck-pending.png for a person to look at."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from tests.report import test_html_report_in_chromium as chromium_check

from lhsoak import cli
from lhsoak.report import categories

from .conftest import REPO, lhsoak

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
SCREENSHOT = REPO / "reports" / "report-check" / "lab-soak-stuck-pending.png"
VERDICT_TEST = "test_both_jobs_keep_firing_with_bounded_lag"


def test_the_report_of_a_lab_soak_that_caught_a_stuck_pending_pod(tmp_path: Path) -> None:
    chromium_check._require_tools()
    reports = tmp_path / "reports"
    soak = lhsoak("soak", "--lab-profile=stuck-pending", f"--reports-dir={reports}", "--", "--run-id=caught")
    output, _ = soak.communicate(timeout=400)
    assert soak.returncode == 1, output
    run_dir = reports / "caught"

    assert cli.main(["report", str(run_dir), "--html", "--allure", str(chromium_check.ALLURE)]) == 0
    report = run_dir / "allure-report"
    tree = chromium_check._category_tree(report)
    stuck_pending = categories.TITLES["stuck-pending-job"]
    assert VERDICT_TEST in tree[stuck_pending], tree
    environment = json.loads((report / "widgets" / "environment.json").read_text())
    assert {"name": "Profile", "values": ["stuck-pending"]} in environment

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    with chromium_check._serve(report) as url:
        check = subprocess.run(
            [
                "node",
                str(chromium_check.CHECK_SCRIPT),
                *("--url", url, "--category", stuck_pending, "--test", VERDICT_TEST),
                *("--attachment", "timeline.png", "--screenshot", str(SCREENSHOT)),
                *("--chromium", str(chromium_check.CHROMIUM)),
            ],
            cwd=chromium_check.TOOLS,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    seen = json.loads(check.stdout.strip().splitlines()[-1]) if check.stdout.strip() else {}
    assert check.returncode == 0, f"{check.stdout}\n{check.stderr}"
    assert seen["ok"] is True
    assert seen["status"] == "Failed"
    assert "soak-backup stopped firing" in seen["message"]
