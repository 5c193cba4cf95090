"""What the soak's tests put into allure-results, and that nothing happens without --alluredir.

Each test runs standin_suite.py (the soak's phases as tests, making the report's calls) in its own
pytest process, as a soak run would.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

StandinRunner = Callable[..., subprocess.CompletedProcess[str]]
RunMaker = Callable[..., Path]


def _results(directory: Path) -> Iterator[dict[str, Any]]:
    for path in sorted(directory.glob("*-result.json")):
        yield json.loads(path.read_text())


def _by_name(directory: Path) -> dict[str, dict[str, Any]]:
    return {result["name"]: result for result in _results(directory)}


def _attachment_names(node: dict[str, Any]) -> list[str]:
    names = [attachment["name"] for attachment in node.get("attachments", [])]
    for step in node.get("steps", []):
        names += _attachment_names(step)
    return names


def test_without_alluredir_the_report_calls_do_nothing(
    tmp_path: Path, standin: StandinRunner, make_run: RunMaker
) -> None:
    run_dir = make_run(tmp_path / "run")
    done = standin(tmp_path / "work", run_dir)
    assert "3 failed, 2 passed, 1 skipped" in done.stdout, done.stdout + done.stderr
    assert not (run_dir / "attachments").exists(), "attach_run drew nothing: Allure was not recording"
    assert "lhsoak-category: stuck-pending-job" in done.stdout


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory, standin: StandinRunner, make_run: RunMaker) -> Path:
    """allure-results of one stand-in soak run (run soak-20261127-a, seed 7); shared, it takes seconds."""
    base = tmp_path_factory.mktemp("recorded")
    run_dir = make_run(base / "soak-20261127-a", run_id="soak-20261127-a")
    results = run_dir / "allure-results"
    done = standin(base / "work", run_dir, "--alluredir", str(results), run_id="soak-20261127-a", seed=7)
    assert "3 failed, 2 passed, 1 skipped" in done.stdout, done.stdout + done.stderr
    return results


def test_the_verdict_test_carries_the_run_s_files(recorded: Path) -> None:
    verdict_test = _by_name(recorded)["test_both_jobs_keep_firing_with_bounded_lag"]
    assert verdict_test["status"] == "failed"
    assert "lhsoak-category: stuck-pending-job" in verdict_test["statusDetails"]["message"]
    names = _attachment_names(verdict_test)
    for expected in (
        "timeline.png",
        "timeline.svg",
        "lag per tick.png",
        "ticks.html",
        "ticks.csv",
        "summary.txt",
        "diagnosis notes.txt",
        "verdict.json",
        "ledger.jsonl",
        "blocking objects.yaml",
        "blocking objects events.txt",
        "stdout",
    ):
        assert expected in names, expected
    for attachment in verdict_test["attachments"]:
        assert (recorded / attachment["source"]).stat().st_size > 0, attachment["name"]
    assert [step["name"] for step in verdict_test["steps"]] == [
        "diagnose the stalled jobs from the cluster state"
    ]


def test_a_failed_step_shows_its_reboot_proofs_and_blocking_objects(recorded: Path) -> None:
    step = _by_name(recorded)["step 2: cluster reboot of node-1, node-2, node-3"]
    assert step["status"] == "failed"
    assert step["statusDetails"]["message"].splitlines()[1] == "lhsoak-category: stuck-pending-job"
    titles = [s["name"] for s in step["steps"]]
    assert "reboot of node-3 proven: boot id boot-a -> boot-b, Ready after 270 s" in titles
    assert "2 missed ticks" in titles
    proof = next(s for s in step["steps"] if s["name"].startswith("reboot of node-3"))
    text = (recorded / proof["attachments"][0]["source"]).read_text()
    assert "went down      2026-11-27T00:23:50.000000Z (+20.0 s)" in text
    names = _attachment_names(step)
    assert {"diagnosis", "blocking objects.yaml", "blocking objects events.txt"} <= set(names)
    blocking = next(a for a in step["attachments"] if a["name"] == "blocking objects.yaml")
    yaml_text = (recorded / blocking["source"]).read_text()
    assert "kind: Pod" in yaml_text
    assert "phase: Pending" in yaml_text
    assert "concurrencyPolicy: Forbid" in yaml_text


def test_run_id_and_seed_do_not_change_the_history_id(
    tmp_path: Path, recorded: Path, standin: StandinRunner, make_run: RunMaker
) -> None:
    run_dir = make_run(tmp_path / "soak-20261128-b", run_id="soak-20261128-b")
    results = run_dir / "allure-results"
    standin(tmp_path / "work", run_dir, "--alluredir", str(results), run_id="soak-20261128-b", seed=8)
    histories = []
    for directory, run_id in ((recorded, "soak-20261127-a"), (results, "soak-20261128-b")):
        tests = _by_name(directory)
        parameters = {
            p["name"]: p for p in tests["step 2: cluster reboot of node-1, node-2, node-3"]["parameters"]
        }
        assert parameters["run id"] == {"name": "run id", "value": f"'{run_id}'", "excluded": True}
        assert parameters["seed"]["excluded"] is True
        assert not parameters["index"].get("excluded")
        histories.append({name: result["historyId"] for name, result in tests.items()})
    assert histories[0] == histories[1]
    assert len(set(histories[0].values())) == len(histories[0]), "each test keeps its own history"
