"""A failure's category marker files it under exactly its cause in Allure; a bare error is a harness error.

`categories.matches` applies a categories.json entry the way Allure 2 does (the whole message against
the regex with DOTALL, then the status); test_html_report_in_chromium.py checks the real Allure agrees.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from lhsoak import diagnosis
from lhsoak.report import categories

STEP_FAILED = (
    "lhsoak.soak.StepFailed: step 2: cluster reboot of node-1, node-2: missed ticks: soak-backup/vol-a\n"
    "{marker}\n"
    "cause: [stuck-pending-job] soak-backup: job pod soak-backup-29928982-x7k2p Pending for 8m59s"
)


def _filed_under(*, status: str, message: str) -> list[str]:
    return [
        entry["name"]
        for entry in categories.allure_categories()
        if categories.matches(entry, status=status, message=message)
    ]


def _entry(name: str) -> dict[str, Any]:
    return next(entry for entry in categories.allure_categories() if entry["name"] == name)


@pytest.mark.parametrize("category", list(categories.TITLES))
def test_a_marked_failure_is_filed_under_its_category_only(category: str) -> None:
    message = STEP_FAILED.format(marker=categories.category_marker(category))
    assert _filed_under(status="failed", message=message) == [categories.TITLES[category]]
    assert _filed_under(status="broken", message=message) == [categories.TITLES[category]]


def test_every_diagnosis_category_and_harness_verdict_has_a_category() -> None:
    assert set(diagnosis.CATEGORY_TITLES) <= set(categories.TITLES)
    assert {"node-not-back", "reboot-not-proven", "missed-ticks"} <= set(categories.TITLES)
    names = [entry["name"] for entry in categories.allure_categories()]
    assert len(names) == len(set(names)) == len(categories.TITLES) + 1


def test_the_marker_is_one_line_naming_the_category() -> None:
    assert categories.category_marker("stuck-pending-job") == "lhsoak-category: stuck-pending-job"
    with pytest.raises(ValueError, match="unknown report category 'stuck'"):
        categories.category_marker("stuck")


def test_a_longer_slug_does_not_match_a_category_it_starts_with() -> None:
    message = STEP_FAILED.format(marker="lhsoak-category: node-not-ready-yet")
    assert _filed_under(status="failed", message=message) == []


def test_a_marker_on_the_first_line_still_counts() -> None:
    message = "AssertionError: lhsoak-category: backup-target-unavailable\nmore"
    assert _filed_under(status="failed", message=message) == [categories.TITLES["backup-target-unavailable"]]


def test_two_markers_file_the_failure_under_both_causes() -> None:
    message = "\n".join(
        [
            "Failed: lhsoak run: FAILED",
            categories.category_marker("stuck-pending-job"),
            categories.category_marker("stuck-inprogress-backup"),
        ]
    )
    assert _filed_under(status="failed", message=message) == [
        categories.TITLES["stuck-pending-job"],
        categories.TITLES["stuck-inprogress-backup"],
    ]


def test_a_broken_test_without_a_marker_is_a_harness_error() -> None:
    message = "RuntimeError: teardown: could not restore RecurringJob soak-snap: 409 Conflict\nline two"
    assert _filed_under(status="broken", message=message) == [categories.HARNESS_ERROR]
    # A failed assertion without a marker is left to Allure's own "Product defects".
    assert _filed_under(status="failed", message=message) == []
    assert not categories.matches(_entry(categories.HARNESS_ERROR), status="passed", message=message)


def test_markers_in_reads_back_the_categories_of_a_message() -> None:
    message = STEP_FAILED.format(marker=categories.category_marker("node-not-back")) + (
        "\nlhsoak-category: node-not-back\nlhsoak-category: missed-ticks"
    )
    assert categories.markers_in(message) == ["node-not-back", "missed-ticks"]


def _finding(category: diagnosis.Category, job: str | None, jobs: tuple[str, ...] = ()) -> diagnosis.Finding:
    return diagnosis.Finding(
        category=category, job=job, summary=f"{category} of {job}", detail="", data={"jobs": list(jobs)}
    )


def test_finding_markers_name_the_most_specific_cause_of_each_job() -> None:
    findings = [
        _finding("stuck-pending-job", "soak-backup"),
        _finding("cronjob-not-scheduling", "soak-backup"),  # the same job: already explained
        _finding("error-backups-beyond-retain", "soak-snap"),
        _finding("node-not-ready", None, jobs=("soak-backup", "soak-snap")),  # both jobs covered
    ]
    assert categories.finding_markers(findings) == [
        "lhsoak-category: stuck-pending-job",
        "lhsoak-category: error-backups-beyond-retain",
    ]


def test_a_finding_tied_to_no_job_still_files_the_failure() -> None:
    findings = [_finding("backup-target-unavailable", None)]
    assert categories.finding_markers(findings) == ["lhsoak-category: backup-target-unavailable"]
    assert categories.finding_markers([]) == []


def test_the_reports_readme_lists_every_category_as_allure_shows_it() -> None:
    readme = (Path(__file__).resolve().parents[2] / "reports" / "README.md").read_text()
    rows = dict(re.findall(r"^\| `([a-z-]+)` \| (.+?) \|$", readme, flags=re.M))
    assert rows == dict(categories.TITLES)
