"""categories.json, environment.properties, executor.json and history: the files Allure reads beside results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lhsoak import ledger
from lhsoak.report import allure_files, categories


def test_the_metadata_files_are_written(tmp_path: Path) -> None:
    env = {"Longhorn": "v1.9.1", "Lag bound (s)": "120", "Schedules": "soak-snap=*/2 * * * *"}
    executor = {"name": "GitHub Actions", "type": "github", "buildOrder": 42, "buildUrl": "https://ci/42"}
    written = allure_files.write_allure_metadata(tmp_path / "allure-results", env, executor)
    assert sorted(p.name for p in written) == ["categories.json", "environment.properties", "executor.json"]
    results = tmp_path / "allure-results"
    assert json.loads((results / "categories.json").read_text()) == categories.allure_categories()
    assert json.loads((results / "executor.json").read_text()) == executor
    assert (results / "environment.properties").read_text() == (
        "Longhorn=v1.9.1\nLag\\ bound\\ (s)=120\nSchedules=soak-snap\\=*/2 * * * *\n"
    )


def test_properties_escape_what_java_would_misread() -> None:
    text = allure_files.properties_text({"a:b": "x\\y", "#key": "multi\nline", "k": " lead", "vol": "µ → ✓"})
    assert text.splitlines() == [
        "a\\:b=x\\\\y",
        "\\#key=multi\\nline",
        "k=\\ lead",
        "vol=\\u00b5 \\u2192 \\u2713",
    ]
    text.encode("ascii")  # no charset question for the reader


def test_without_an_executor_none_is_written(tmp_path: Path) -> None:
    written = allure_files.write_allure_metadata(tmp_path, {"Plan": "cluster"}, None)
    assert not (tmp_path / "executor.json").exists()
    assert len(written) == 2


def test_the_environment_comes_from_the_run_record(stalled_ledger: ledger.Ledger) -> None:
    env = allure_files.environment_from_run(stalled_ledger.run, Longhorn="v1.9.1")
    assert env["Longhorn"] == "v1.9.1"
    assert env["Kubernetes"] == "unknown"
    assert env["Nodes"] == "3"
    assert env["Plan"] == "mixed"
    assert env["Profile"] == "stuck-pending"
    assert env["Schedules"] == "soak-snap=*/2 * * * *, soak-backup=*/2 * * * *"
    assert env["Retain"] == "soak-snap=2, soak-backup=1"
    assert env["Lag bound (s)"] == "120"
    assert env["Volumes"] == "2"


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        (
            {
                "GITHUB_RUN_ID": "777",
                "GITHUB_RUN_NUMBER": "12",
                "GITHUB_REPOSITORY": "qa/lhsoak",
                "GITHUB_WORKFLOW": "nightly",
                "LHSOAK_REPORT_URL": "https://qa.example/reports/12/",
            },
            {
                "name": "GitHub Actions",
                "type": "github",
                "buildName": "nightly #12",
                "buildOrder": 12,
                "buildUrl": "https://github.com/qa/lhsoak/actions/runs/777",
                "reportUrl": "https://qa.example/reports/12/",
            },
        ),
        (
            {"CI_PIPELINE_ID": "900", "CI_PIPELINE_IID": "31", "CI_PIPELINE_URL": "https://gl/p/900"},
            {
                "name": "GitLab CI",
                "type": "gitlab",
                "buildName": "pipeline #900",
                "buildOrder": 31,
                "buildUrl": "https://gl/p/900",
            },
        ),
        (
            {"BUILD_URL": "https://jenkins/job/soak/5/", "BUILD_NUMBER": "5", "BUILD_TAG": "jenkins-soak-5"},
            {
                "name": "Jenkins",
                "type": "jenkins",
                "buildName": "jenkins-soak-5",
                "buildOrder": 5,
                "buildUrl": "https://jenkins/job/soak/5/",
            },
        ),
        ({"CI": "true", "HOME": "/root"}, None),
    ],
    ids=["github", "gitlab", "jenkins", "unknown-ci"],
)
def test_the_executor_names_the_ci_build(environ: dict[str, str], expected: dict[str, object] | None) -> None:
    assert allure_files.executor_from_environ(environ) == expected


def test_history_is_copied_only_from_a_report_that_has_one(tmp_path: Path) -> None:
    previous = tmp_path / "old" / "allure-report"
    results = tmp_path / "new" / "allure-results"
    results.mkdir(parents=True)
    assert not allure_files.copy_history(previous, results)
    assert not allure_files.copy_history(None, results)
    (previous / "history").mkdir(parents=True)
    (previous / "history" / "history.json").write_text("{}")
    (previous / "history" / "history-trend.json").write_text('[{"data": {"failed": 1}}]')
    assert allure_files.copy_history(previous, results)
    assert sorted(p.name for p in (results / "history").iterdir()) == ["history-trend.json", "history.json"]


def test_a_result_can_be_written_without_pytest(tmp_path: Path) -> None:
    picture = tmp_path / "timeline.png"
    picture.write_bytes(b"\x89PNG\r\n\x1a\nfake")
    results = tmp_path / "allure-results"
    path = allure_files.write_result(
        results,
        name="both jobs keep firing",
        full_name="lhsoak.report#verdict",
        status="failed",
        message="lhsoak-category: stuck-pending-job",
        start_s=1000.0,
        stop_s=1060.5,
        attachments=[allure_files.Attachment("timeline.png", picture, "image/png")],
        parameters={"run id": "soak-1"},
    )
    document = json.loads(path.read_text())
    assert path.name == f"{document['uuid']}-result.json"
    assert (document["status"], document["start"], document["stop"]) == ("failed", 1_000_000, 1_060_500)
    assert document["statusDetails"] == {"message": "lhsoak-category: stuck-pending-job"}
    (attachment,) = document["attachments"]
    assert attachment["name"] == "timeline.png"
    assert attachment["type"] == "image/png"
    assert (results / attachment["source"]).read_bytes() == picture.read_bytes()
    assert document["parameters"] == [{"name": "run id", "value": "soak-1", "excluded": True}]
    again = allure_files.write_result(
        results,
        name="both jobs keep firing",
        full_name="lhsoak.report#verdict",
        status="passed",
        message="",
        start_s=2000.0,
        stop_s=2001.0,
        attachments=[],
        parameters={"run id": "soak-2"},
    )
    assert json.loads(again.read_text())["historyId"] == document["historyId"]
