"""`lhsoak report RUN_DIR`: the attachments and a complete allure-results for any run; clear errors."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from lhsoak import cli
from lhsoak.report import categories, html

RunMaker = Callable[..., Path]


def test_a_run_without_pytest_results_gets_a_verdict_result(
    stalled_run_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.main(["report", str(stalled_run_dir)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].startswith("lhsoak soak-synthetic: FAILED: soak-backup stopped firing")
    attachments = stalled_run_dir / "attachments"
    for name in (
        "timeline.png",
        "timeline.svg",
        "lag-per-tick.png",
        "ticks.csv",
        "ticks.html",
        "summary.txt",
    ):
        assert (attachments / name).stat().st_size > 0, name
    results = stalled_run_dir / "allure-results"
    (result_file,) = results.glob("*-result.json")
    result = json.loads(result_file.read_text())
    assert result["status"] == "failed"
    # No findings at hand: the category the soak's diagnosis noted in the ledger files the failure.
    assert categories.markers_in(result["statusDetails"]["message"]) == ["stuck-pending-job"]
    assert "timeline.png" in [a["name"] for a in result["attachments"]]
    assert json.loads((results / "categories.json").read_text()) == categories.allure_categories()
    assert "Plan=mixed" in (results / "environment.properties").read_text().splitlines()


def test_a_pytest_session_s_results_and_environment_are_kept(stalled_run_dir: Path) -> None:
    results = stalled_run_dir / "allure-results"
    results.mkdir()
    (results / "0000-result.json").write_text('{"uuid": "0000", "name": "from pytest", "status": "passed"}')
    (results / "environment.properties").write_text("Longhorn=v1.9.1\n")
    assert cli.main(["report", str(stalled_run_dir)]) == 0
    assert [p.name for p in results.glob("*-result.json")] == ["0000-result.json"]
    assert (results / "environment.properties").read_text() == "Longhorn=v1.9.1\n"
    assert (results / "categories.json").is_file()


def test_the_newest_run_is_the_default(
    tmp_path: Path, make_run: RunMaker, capsys: pytest.CaptureFixture[str]
) -> None:
    older = make_run(tmp_path / "reports" / "soak-older", run_id="soak-older")
    newer = make_run(tmp_path / "reports" / "soak-newer", run_id="soak-newer")
    os.utime(older / "ledger.jsonl", (1_000_000, 1_000_000))
    assert cli.main(["report", "--reports-dir", str(tmp_path / "reports")]) == 0
    assert "lhsoak soak-newer:" in capsys.readouterr().out
    assert (newer / "attachments").is_dir()
    assert not (older / "attachments").exists()


def test_a_run_id_names_a_run_under_the_reports_dir(
    tmp_path: Path, make_run: RunMaker, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = make_run(tmp_path / "reports" / "soak-by-id", run_id="soak-by-id")
    monkeypatch.chdir(tmp_path)  # `make report RUN=soak-by-id` runs from the checkout
    assert cli.main(["report", "soak-by-id"]) == 0
    assert "lhsoak soak-by-id:" in capsys.readouterr().out
    assert (run_dir / "attachments").is_dir()


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        ("missing", "is not a run directory: it has no ledger.jsonl"),
        ("bad-ledger", "bad ledger: "),
        ("no-runs", "no run under"),
    ],
)
def test_what_cannot_be_reported_exits_2_with_one_line(
    tmp_path: Path, setup: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = tmp_path / "reports" / "soak-x"
    args = ["report", str(run_dir)]
    if setup == "bad-ledger":
        run_dir.mkdir(parents=True)
        (run_dir / "ledger.jsonl").write_text('{"type": "fire"}\n')
    elif setup == "no-runs":
        (tmp_path / "reports").mkdir()
        args = ["report", "--reports-dir", str(tmp_path / "reports")]
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_without_the_allure_command_line_html_fails_clearly(
    stalled_run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "no-such-allure"
    assert cli.main(["report", str(stalled_run_dir), "--html", "--allure", str(missing)]) == 2
    err = capsys.readouterr().err
    assert "the Allure command line was not found" in err
    assert "npm ci --prefix infra/report" in err
    assert not (stalled_run_dir / "attachments").exists(), "nothing is built when the report cannot be"


def test_the_allure_command_line_is_looked_up_in_order(tmp_path: Path) -> None:
    tool = tmp_path / "bin" / "allure"
    tool.parent.mkdir()
    tool.write_text("#!/bin/sh\n")
    tool.chmod(0o755)
    assert html.find_allure(environ={"LHSOAK_ALLURE": str(tool), "PATH": ""}) == tool
    assert html.find_allure(tool, environ={"LHSOAK_ALLURE": "/nowhere/allure"}) == tool
    with pytest.raises(html.ReportToolError, match="looked at /nowhere/allure"):
        html.find_allure(environ={"LHSOAK_ALLURE": "/nowhere/allure"})
    with pytest.raises(html.ReportToolError, match="needs Java"):
        html.require_java({"PATH": str(tmp_path / "bin")})
