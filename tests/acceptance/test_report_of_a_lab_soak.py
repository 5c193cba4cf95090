"""The QA report of a real (lab) soak that caught a bug.

One soak (lab profile stuck-pending: the backup job's pod stays Pending after the reboot) is run once
and shared by every test here, across xdist workers. Its allure-results tell the failed step in the
order it happened — the wait for the phase, each node's reboot and proof, the wait for the jobs to
fire again, the tick check with the diagnosis and the longhorn-manager and job pod logs — with set-up
and tear-down reduced to what a QA reader needs; its terminal output shows progress on the long waits. The HTML report, opened in headless
Chromium, shows the failed verdict under its category with the timeline picture; the screenshot is
kept at reports/report-check/lab-soak-stuck-pending.png for a person to look at.
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from tests.report import test_html_report_in_chromium as chromium_check

from lhsoak import cli, pytest_plugin
from lhsoak.report import categories

from .conftest import REPO, lhsoak

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]
SCREENSHOT = REPO / "reports" / "report-check" / "lab-soak-stuck-pending.png"
VERDICT_TEST = "test_both_jobs_keep_firing_with_bounded_lag"
STEP_ONE = "step 1: cluster reboot of cp-1, worker-1, worker-2, worker-3"
NODES = ("cp-1", "worker-1", "worker-2", "worker-3")
PROGRESS_EVERY_S = 3


@dataclass(frozen=True)
class Soak:
    """The shared soak: its run directory, exit code and terminal output."""

    run_dir: Path
    returncode: int
    output: str

    @property
    def results(self) -> Path:
        return self.run_dir / "allure-results"


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


@pytest.fixture(scope="module")
def caught(tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Soak:
    """The stuck-pending soak, run by whichever xdist worker gets here first (the others wait on
    the lock and read its record)."""
    base = tmp_path_factory.getbasetemp()
    shared = base if worker_id == "master" else base.parent
    reports, record = shared / "lab-soak-reports", shared / "lab-soak.json"
    with _locked(shared / "lab-soak.lock"):
        if not record.exists():
            soak = lhsoak(
                "soak",
                "--lab-profile=stuck-pending",
                f"--reports-dir={reports}",
                "--",
                "--run-id=caught",
                f"--progress-every={PROGRESS_EVERY_S}",
            )
            output, _ = soak.communicate(timeout=400)
            record.write_text(json.dumps({"returncode": soak.returncode, "output": output}))
        seen = json.loads(record.read_text())
    return Soak(run_dir=reports / "caught", returncode=seen["returncode"], output=seen["output"])


def _results(soak: Soak) -> dict[str, dict[str, Any]]:
    documents = [json.loads(path.read_text()) for path in soak.results.glob("*-result.json")]
    return {document["name"]: document for document in documents}


def _names(item: dict[str, Any]) -> list[str]:
    return [step["name"] for step in item.get("steps", [])]


def _step(item: dict[str, Any], prefix: str) -> dict[str, Any]:
    found = [step for step in item.get("steps", []) if step["name"].startswith(prefix)]
    assert len(found) == 1, f"one step starting {prefix!r} expected in {_names(item)}"
    return found[0]


def _attachment_names(item: dict[str, Any]) -> list[str]:
    return [attachment["name"] for attachment in item.get("attachments", [])]


def test_the_soak_caught_the_stuck_pending_pod(caught: Soak) -> None:
    assert caught.returncode == 1, caught.output
    assert "[stuck-pending-job]" in caught.output


def test_steps_not_run_are_listed_under_what_they_would_have_done(caught: Soak) -> None:
    skipped = {name: r for name, r in _results(caught).items() if r["status"] == "skipped"}
    assert sorted(skipped) == [STEP_ONE.replace("step 1", f"step {n}") for n in (2, 3)], sorted(
        _results(caught)
    )
    assert all("step 1" in r["statusDetails"]["message"] for r in skipped.values())


def test_the_failed_step_tells_what_happened_in_the_order_it_happened(caught: Soak) -> None:
    step = _results(caught)[STEP_ONE]

    assert [re.sub(r", at .*", "", name) for name in _names(step)] == [
        "wait for the during-backup phase of the schedule",
        "wait for a backup of the soak's backup job to be InProgress",
        "reboot cp-1, worker-1, worker-2, worker-3 and prove each came back",
        "every job fires again on every volume",
        "no tick of any job missed its lag bound during the step",
    ]
    steps = step["steps"]
    assert all(earlier["stop"] <= later["start"] for earlier, later in itertools.pairwise(steps))
    assert [s["status"] for s in steps[2:]] == ["passed", "failed", "failed"]
    tick_check = steps[-1]
    assert "lhsoak-category: stuck-pending-job" in tick_check["statusDetails"]["message"]
    assert _names(tick_check) == ["2 missed ticks"]
    assert {"diagnosis", "blocking objects.yaml", "blocking objects events.txt"} <= set(
        _attachment_names(tick_check)
    )
    # Nothing is attached to the test after the fact: the evidence is where it was found.
    assert set(_attachment_names(step)) <= {"log", "stdout", "stderr"}


def test_the_failed_step_carries_the_longhorn_manager_logs_about_the_stuck_job(caught: Soak) -> None:
    tick_check = _step(_results(caught)[STEP_ONE], "no tick of any job missed")
    logs = {
        attachment["name"].removeprefix("logs: "): (caught.results / attachment["source"]).read_text()
        for attachment in tick_check["attachments"]
        if attachment["name"].startswith("logs: ")
    }
    managers = {title: text for title, text in logs.items() if title.startswith("longhorn-manager-")}
    job_pods = [title for title in logs if title.startswith("soak-backup-")]

    # The backup the stuck job ran, as its node's manager logged it (client-go's event log line).
    about_the_job = [
        line
        for text in managers.values()
        for line in text.splitlines()
        if "label map[RecurringJob:soak-backup]" in line
    ]
    assert about_the_job, "\n".join(managers.values())
    assert all(
        re.match(r'time="\S+Z" level=\w+ msg="Event\(v1.ObjectReference', line) for line in about_the_job
    )
    assert all(
        text.startswith("# kubectl -n longhorn-system logs longhorn-manager-") for text in managers.values()
    )
    assert len(job_pods) == 1, list(logs)
    assert "is waiting to start: ContainerCreating" in logs[job_pods[0]]
    kept = sorted(path.name for path in (caught.run_dir / "attachments" / "logs").glob("*.log"))
    assert f"{job_pods[0]}.log" in kept, kept


def test_each_node_is_rebooted_and_proven_inside_the_reboot_step(caught: Soak) -> None:
    step = _results(caught)[STEP_ONE]
    reboots = _step(step, "reboot cp-1, worker-1")
    recovery = _step(step, "every job fires again")

    assert sorted(_names(reboots)) == [f"reboot {node} and prove it came back" for node in NODES]
    for node_step in reboots["steps"]:
        node = node_step["name"].split()[1]
        assert node_step["stop"] <= recovery["start"]
        assert _attachment_names(node_step) == [f"reboot proof: {node}"]
        machine, kubernetes = node_step["steps"]
        assert machine["name"] == f"the machine of {node} goes down and comes back"
        assert [re.sub(r" [(\d].*", "", name) for name in _names(machine)] == [
            "reboot issued",
            "went down",
            "came up",
        ]
        assert kubernetes["name"].startswith(f"Kubernetes sees {node} back: Ready")
        proof = _names(kubernetes)
        assert proof[0].startswith("boot id changed: ")
        assert proof[1] in (
            "Ready went False/Unknown, then True",
            "Ready was not seen False/Unknown (a reboot faster than the grace period)",
        )
        assert machine["stop"] <= kubernetes["start"]


def test_set_up_and_tear_down_show_only_what_a_qa_reader_needs(caught: Soak) -> None:
    entries: dict[str, dict[str, Any]] = {}
    for path in caught.results.glob("*-container.json"):
        container = json.loads(path.read_text())
        for entry in container.get("befores", []) + container.get("afters", []):
            entries[entry["name"]] = entry

    set_up, tear_down = pytest_plugin.FIXTURE_TITLES["soak_session"]
    assert set(entries) == {set_up, tear_down}
    assert [re.sub(r":.*", "", name) for name in _names(entries[set_up])] == [
        "cluster adopted",
        "Longhorn is installed and healthy",
        "run directory",
        "recurring jobs soak-snap (snapshot, '*/4 * * * * *'), soak-backup (backup, '*/4 * * * * *') "
        "configured on 2 test volumes",
    ]
    assert _names(entries[tear_down]) == [
        "every node the plan reboots is powered on",
        "the recurring jobs that were there are restored, the soak's are removed; its volumes removed",
    ]
    changed = _step(entries[tear_down], "the recurring jobs")["attachments"][0]
    assert changed["name"] == "what the teardown changed"
    assert "deleted RecurringJob soak-backup" in (caught.results / changed["source"]).read_text()


def test_long_waits_show_progress_until_they_end(caught: Soak) -> None:
    recovery = [
        line for line in caught.output.splitlines() if "waiting for every job to fire on every volume" in line
    ]
    watching = [line for line in caught.output.splitlines() if "more ticks of every job until" in line]

    # step 1's recovery wait lasts until the miss (~12 s), the last watch 16 s; a line every 3 s.
    assert len(recovery) >= 2, caught.output
    assert re.search(
        r"soak-backup: first tick \d\d:\d\d:\d\d \(\d+ s ago\), seen so far: nothing", recovery[-1]
    )
    assert re.search(r"; \d+ s left$", recovery[-1])
    assert len(watching) >= 3, caught.output
    assert re.search(r"\(\d+ s left\); soak-snap: \d+ fires done, next tick ", watching[-1])


def test_the_html_report_files_the_verdict_under_its_cause(caught: Soak) -> None:
    chromium_check._require_tools()
    run_dir = caught.run_dir

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


def test_the_run_leaves_its_ledger_and_the_verdict_analyze_gives(caught: Soak) -> None:
    analyzed = subprocess.run(
        [sys.executable, "-m", "lhsoak", "analyze", str(caught.run_dir / "ledger.jsonl"), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert analyzed.returncode == 1, analyzed.stderr
    written = json.loads((caught.run_dir / "verdict.json").read_text())
    assert written == json.loads(analyzed.stdout)
    assert [cause["category"] for cause in written["causes"]][-1] == "stuck-pending-job", written["causes"]
    assert written["causes"][-1]["workaround"].startswith("kubectl -n longhorn-system delete pod ")


def test_no_secret_of_the_cluster_reaches_the_run_or_its_output(caught: Soak) -> None:
    lab_dir = caught.run_dir.parent / "labs" / caught.run_dir.name
    kubeconfig = yaml.safe_load((lab_dir / "kubeconfig").read_text())
    token = kubeconfig["users"][0]["user"]["token"]
    key_lines = [
        line
        for line in (lab_dir / "id_ed25519").read_text().splitlines()
        if line and not line.startswith("-----")
    ]
    secrets = [token.encode(), *(line.encode() for line in key_lines)]
    assert all(len(secret) >= 16 for secret in secrets)
    files = [path for path in caught.run_dir.rglob("*") if path.is_file()]
    assert len(files) > 10, files
    for path in files:
        data = path.read_bytes()
        leaked = [secret[:6] for secret in secrets if secret in data]
        assert not leaked, f"{path} holds secret material starting {leaked}"
    assert not [secret for secret in secrets if secret.decode() in caught.output]
