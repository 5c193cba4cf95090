"""The acceptance check: a failing soak's HTML report, opened in headless Chromium, shows the failed test
under its category with the timeline picture; the trend carries over to the next night's report.

The soak is standin_suite.py on the synthetic stalled run (conftest.py), which runs in seconds; the
same check on a real lab soak that caught a bug is tests/acceptance/test_report_of_a_lab_soak.py. The Allure command line (npm allure-commandline, Java 17) and playwright-core
come from infra/report (`npm ci --prefix infra/report`); Chromium is Debian's. Without them the test
is skipped on a developer's machine and fails in CI (CI=true), which must have them. The screenshot
is kept at reports/report-check/allure-categories.png.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import shutil
import subprocess
import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from lhsoak import cli, ledger
from lhsoak.report import allure_files, categories

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

REPO = Path(__file__).resolve().parents[2]
TOOLS = REPO / "infra" / "report"
ALLURE = TOOLS / "node_modules" / ".bin" / "allure"
CHECK_SCRIPT = TOOLS / "check-report.mjs"
CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = REPO / "reports" / "report-check" / "allure-categories.png"
STUCK_PENDING = categories.TITLES["stuck-pending-job"]

StandinRunner = Callable[..., subprocess.CompletedProcess[str]]
RunMaker = Callable[..., Path]


def _require_tools() -> None:
    missing = [
        what
        for what, present in (
            ("java (apt-get install openjdk-17-jre-headless)", shutil.which("java") is not None),
            ("node (Node.js 20)", shutil.which("node") is not None),
            ("chromium (apt-get install chromium)", CHROMIUM.is_file()),
            ("the Allure command line (npm ci --prefix infra/report)", ALLURE.is_file()),
            (
                "playwright-core (npm ci --prefix infra/report)",
                (TOOLS / "node_modules" / "playwright-core").is_dir(),
            ),
        )
        if not present
    ]
    if missing:
        reason = "the HTML report check needs " + ", ".join(missing)
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}: CI must install them (.ci/run)")
        pytest.skip(reason)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        del format, args


@contextlib.contextmanager
def _serve(directory: Path) -> Iterator[str]:
    """Serve `directory` on 127.0.0.1 (an ephemeral port): Allure's page fetches its data over http."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="report-http", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _category_tree(report: Path) -> dict[str, list[str]]:
    """Allure's Categories tab as data: category name → the names of the tests under it."""
    tree = json.loads((report / "data" / "categories.json").read_text())
    return {
        category["name"]: sorted(test["name"] for group in category["children"] for test in group["children"])
        for category in tree["children"]
    }


def _write_metadata(run_dir: Path, *, build: int) -> None:
    """What the pytest plugin writes at the end of a soak: environment and executor (a CI build)."""
    env = allure_files.environment_from_run(
        ledger.read(run_dir / "ledger.jsonl").run, Longhorn="v1.9.1", Kubernetes="v1.31.4+k3s1"
    )
    executor = allure_files.executor_from_environ(
        {
            "GITHUB_RUN_ID": str(4200 + build),
            "GITHUB_RUN_NUMBER": str(build),
            "GITHUB_REPOSITORY": "qa/lhsoak",
        }
    )
    allure_files.write_allure_metadata(run_dir / "allure-results", env, executor)


@pytest.fixture(scope="module")
def first_night(tmp_path_factory: pytest.TempPathFactory, standin: StandinRunner, make_run: RunMaker) -> Path:
    """A failing nightly soak (the stand-in suite) with Allure results and JUnit XML: its run dir."""
    reports = tmp_path_factory.mktemp("nightly") / "reports"
    run_dir = make_run(reports / "soak-nightly-1", run_id="soak-nightly-1")
    done = standin(
        reports.parent / "work",
        run_dir,
        "--alluredir",
        str(run_dir / "allure-results"),
        "--junitxml",
        str(run_dir / "junit.xml"),
        "-o",
        "junit_logging=system-out",
        run_id="soak-nightly-1",
    )
    assert "3 failed, 2 passed, 1 skipped" in done.stdout, done.stdout + done.stderr
    _write_metadata(run_dir, build=1)
    return run_dir


@pytest.fixture(scope="module")
def report_tools() -> None:
    """Skip (fail in CI) before the soak runs when the tools are missing."""
    _require_tools()


def test_the_failing_soak_report_shows_the_stall_in_chromium(
    report_tools: None, first_night: Path, make_run: RunMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    reports = first_night.parent
    assert (
        cli.main(
            ["report", str(first_night), "--html", "--allure", str(ALLURE), "--reports-dir", str(reports)]
        )
        == 0
    )
    report = first_night / "allure-report"
    tree = _category_tree(report)
    assert tree[STUCK_PENDING] == [
        "step 2: cluster reboot of node-1, node-2, node-3",
        "test_both_jobs_keep_firing_with_bounded_lag",
    ]
    assert tree[categories.HARNESS_ERROR] == ["test_teardown_restores_the_recurring_jobs"]
    environment = json.loads((report / "widgets" / "environment.json").read_text())
    assert {"name": "Longhorn", "values": ["v1.9.1"]} in environment

    # The next night fails the same way; its report carries the first one's history: two trend points.
    second = make_run(reports / "soak-nightly-2", run_id="soak-nightly-2")
    shutil.copytree(
        first_night / "allure-results", second / "allure-results", ignore=shutil.ignore_patterns("history")
    )
    _write_metadata(second, build=2)
    capsys.readouterr()
    assert (
        cli.main(["report", str(second), "--html", "--allure", str(ALLURE), "--reports-dir", str(reports)])
        == 0
    )
    assert f"(history from {report})" in capsys.readouterr().out
    trend = json.loads((second / "allure-report" / "widgets" / "history-trend.json").read_text())
    assert [point["buildOrder"] for point in trend] == [2, 1]

    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    with _serve(second / "allure-report") as url:
        check = subprocess.run(
            [
                "node",
                str(CHECK_SCRIPT),
                "--url",
                url,
                "--category",
                STUCK_PENDING,
                "--test",
                "test_both_jobs_keep_firing_with_bounded_lag",
                "--attachment",
                "timeline.png",
                "--screenshot",
                str(SCREENSHOT),
                "--chromium",
                str(CHROMIUM),
            ],
            cwd=TOOLS,
            capture_output=True,
            text=True,
            timeout=90,
            check=False,
        )
    seen = json.loads(check.stdout.strip().splitlines()[-1]) if check.stdout.strip() else {}
    assert check.returncode == 0, f"{check.stdout}\n{check.stderr}"
    assert seen["ok"] is True
    assert seen["status"] == "Failed"
    assert seen["message"].startswith("Failed: lhsoak soak-nightly-1: FAILED: soak-backup stopped firing")
    assert seen["image"]["width"] > 1000
    assert SCREENSHOT.stat().st_size > 50_000


def test_junit_xml_carries_the_cause_and_the_tables(first_night: Path) -> None:
    cases = {case.get("name"): case for case in ET.parse(first_night / "junit.xml").iter("testcase")}
    verdict_case = cases["test_both_jobs_keep_firing_with_bounded_lag"]
    failure = verdict_case.find("failure")
    assert failure is not None
    assert "lhsoak-category: stuck-pending-job" in (failure.get("message") or "")
    out = verdict_case.find("system-out")
    assert out is not None
    assert "soak-backup (backup, '*/2 * * * *', retain 1): FAILED" in (out.text or "")
    assert "missed on vol-a: 00:30:00 (no fire)" in (out.text or "")
    step = cases["test_chaos_step[step-02]"].find("failure")
    assert step is not None
    assert "lhsoak-category: stuck-pending-job" in (step.get("message") or "")
