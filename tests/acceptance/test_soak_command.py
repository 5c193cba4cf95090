"""`lhsoak soak` (what `make soak` runs) against the built-in lab: a healthy cluster passes, each
upstream bug fails the run with exit code 1 and its diagnosis in the output; a plan that needs a node
the inventory lacks is refused with exit code 2 before anything is touched."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from kubernetes import client, config

from lhsoak import inventory, ledger
from lhsoak.commands import soak as soak_command
from lhsoak.lab.process import LabProcess

from .conftest import AWS_ENV, LAB_SOAK_OPTIONS, lhsoak


def _soak_on_the_lab(tmp_path: Path, profile: str) -> tuple[int, str]:
    # CI set, as on a CI runner: pytest then prints whole failure messages in its short summary,
    # the case where the cause could stop being the last thing printed.
    process = lhsoak(
        "soak", f"--lab-profile={profile}", f"--reports-dir={tmp_path / 'reports'}", env={"CI": "true"}
    )
    output, _ = process.communicate(timeout=400)
    return process.returncode, output


@pytest.mark.slow
def test_make_soak_passes_on_a_healthy_lab_with_full_cluster_restarts(tmp_path: Path) -> None:
    code, output = _soak_on_the_lab(tmp_path, "healthy")
    assert code == 0, output
    assert "PASSED: every job kept firing on every volume" in output
    assert output.count("cluster reboot of cp-1, worker-1, worker-2, worker-3") >= 3


@pytest.mark.slow
@pytest.mark.parametrize(
    ("profile", "category", "evidence"),
    [
        ("stuck-pending", "stuck-pending-job", "Pending"),
        ("stuck-backup", "stuck-inprogress-backup", "stuck InProgress"),
    ],
)
def test_make_soak_fails_on_an_upstream_bug_and_names_it(
    tmp_path: Path, profile: str, category: str, evidence: str
) -> None:
    code, output = _soak_on_the_lab(tmp_path, profile)
    assert code == 1, output
    assert f"lhsoak-category: {category}" in output
    assert evidence in output
    assert "FAILED: soak-backup stopped firing" in output
    # The cause and what to do about it close the run, after pytest's own failure lines.
    ending = output.split("= lhsoak =", 1)[-1]
    assert f"[{category}] soak-backup" in ending
    assert ending.count(f"[{category}]") == 1, ending
    short_summary = output.split("short test summary info", 1)[-1].split("= lhsoak =", 1)[0]
    assert "cause:" not in short_summary, short_summary
    assert "Workaround:" in ending or "workaround" in ending.lower()
    assert "Traceback" not in output
    assert "def _wait_recovered" not in output


def test_a_plan_needing_a_node_the_inventory_lacks_is_refused(lab: LabProcess, tmp_path: Path) -> None:
    full = inventory.load(lab.inventory)
    partial = dataclasses.replace(full, nodes=tuple(n for n in full.nodes if n.name != "worker-3"))
    path = tmp_path / "partial.yaml"
    inventory.dump(partial, path)
    process = lhsoak(
        "soak",
        f"--kubeconfig={lab.kubeconfig}",
        f"--inventory={path}",
        f"--reports-dir={tmp_path / 'reports'}",
        "--",
        *LAB_SOAK_OPTIONS,
        "--plan=all-workers",
        env=AWS_ENV,
    )
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 2, output
    assert "worker-3" in output
    assert not list((tmp_path / "reports").glob("*/ledger.jsonl")), "a refused soak must not start a run"


def test_a_dry_run_prints_the_plan_and_touches_nothing(lab: LabProcess, tmp_path: Path) -> None:
    process = lhsoak(
        "soak",
        f"--kubeconfig={lab.kubeconfig}",
        f"--inventory={lab.inventory}",
        f"--reports-dir={tmp_path / 'reports'}",
        "--",
        *LAB_SOAK_OPTIONS,
        "--plan=worker",
        "--iterations=4",
        "--dry-run",
        env=AWS_ENV,
    )
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0, output
    for step in ("step 1: worker reboot of worker-1", "step 4: worker reboot of worker-1", "job soak-backup"):
        assert step in output
    # 4 steps and 2 ticks after them, every 4 s; a tick within settle (4 s) of Ready is excused.
    assert "at least 24s: each step spans at least one tick of the slowest job (every 4s)" in output
    assert "expected ticks of soak-backup: at least 6" in output
    assert "within 4s after it is Ready, is excused; any other must be done within 8s" in output
    assert not list((tmp_path / "reports").glob("*/ledger.jsonl"))
    custom = client.CustomObjectsApi(config.new_client_from_config(config_file=str(lab.kubeconfig)))
    jobs = custom.list_namespaced_custom_object("longhorn.io", "v1beta2", "longhorn-system", "recurringjobs")
    assert jobs["items"] == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--lab-profile=nope",), "unknown lab profile 'nope'"),
        (("--", "--cron=61 * * * *"), "minute field '61'"),
    ],
    ids=["unknown-profile", "bad-cron"],
)
def test_bad_input_is_refused_with_exit_2_before_a_lab_starts(
    tmp_path: Path, arguments: tuple[str, ...], message: str
) -> None:
    process = lhsoak("soak", f"--reports-dir={tmp_path / 'reports'}", *arguments)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 2, output
    assert message in output
    assert "Traceback" not in output
    assert "starting the built-in lab" not in output
    assert not (tmp_path / "reports" / "labs").exists()


@pytest.mark.parametrize(
    ("pytest_code", "interrupted", "expected"),
    [
        (0, False, 0),
        (1, False, 1),
        (2, False, 2),
        (4, False, 2),
        (5, False, 2),
        (1, True, 130),
        (2, True, 130),
    ],
)
def test_pytest_exit_codes_become_lhsoak_exit_codes(
    pytest_code: int, interrupted: bool, expected: int
) -> None:
    assert soak_command.exit_code(pytest_code, interrupted=interrupted) == expected


def test_a_recurring_job_of_the_soaks_name_not_made_by_it_is_refused_and_left_alone(
    lab: LabProcess, tmp_path: Path
) -> None:
    api = config.new_client_from_config(config_file=str(lab.kubeconfig))
    custom = client.CustomObjectsApi(api)
    theirs = {
        "apiVersion": "longhorn.io/v1beta2",
        "kind": "RecurringJob",
        "metadata": {"name": "team-backup", "namespace": "longhorn-system"},
        "spec": {
            "name": "team-backup",
            "task": "backup",
            "cron": "0 3 * * *",
            "retain": 7,
            "concurrency": 1,
            "groups": [],
            "labels": {},
        },
    }
    custom.create_namespaced_custom_object(
        "longhorn.io", "v1beta2", "longhorn-system", "recurringjobs", theirs
    )
    try:
        before = custom.get_namespaced_custom_object(
            "longhorn.io", "v1beta2", "longhorn-system", "recurringjobs", "team-backup"
        )
        process = lhsoak(
            "soak",
            f"--kubeconfig={lab.kubeconfig}",
            f"--inventory={lab.inventory}",
            f"--reports-dir={tmp_path / 'reports'}",
            "--",
            *LAB_SOAK_OPTIONS,
            "--plan=none",
            "--job-prefix=team",
            env=AWS_ENV,
        )
        output, _ = process.communicate(timeout=120)
        assert process.returncode == 2, output
        assert "RecurringJob team-backup already exists and was not made by lhsoak" in output
        assert "--job-prefix" in output
        after = custom.get_namespaced_custom_object(
            "longhorn.io", "v1beta2", "longhorn-system", "recurringjobs", "team-backup"
        )
        assert after["spec"] == before["spec"]
        assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
        names = [
            job["metadata"]["name"]
            for job in custom.list_namespaced_custom_object(
                "longhorn.io", "v1beta2", "longhorn-system", "recurringjobs"
            )["items"]
        ]
        assert "team-snap" not in names, "a refused soak creates nothing"
    finally:
        custom.delete_namespaced_custom_object(
            "longhorn.io", "v1beta2", "longhorn-system", "recurringjobs", "team-backup"
        )
        api.close()


@pytest.mark.slow
def test_the_smoke_suite_passes_on_a_healthy_lab_without_rebooting(tmp_path: Path) -> None:
    process = lhsoak("soak", "--suite=smoke", f"--reports-dir={tmp_path / 'reports'}")
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 0, output
    assert "PASSED: every job kept firing on every volume" in output
    (ledger_path,) = (tmp_path / "reports").glob("*/ledger.jsonl")
    assert ledger.read(ledger_path).reboots == (), "the smoke suite rebooted a node"
