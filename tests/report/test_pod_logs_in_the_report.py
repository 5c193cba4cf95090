"""The container logs the soak read for its evidence land in attachments/logs/, one file each, whether
handed to the report or kept with the run (pod-logs.json) for `lhsoak report` to find later."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from lhsoak import verdict
from lhsoak.report import files

MANAGER_LOG = (
    "# kubectl -n longhorn-system logs longhorn-manager-worker-2 -c longhorn-manager --tail=200\n"
    "# longhorn-manager of worker-2, the node of job pod soak-backup-29000000-abcde; read at 2026-01-01T00:00:00Z\n"
    'time="2026-01-01T00:00:00.5Z" level=info msg="Enable backup monitor for backup backup-1" '
    'func="controller.(*BackupController).enableBackupMonitor" file="backup_controller.go:1020" '
    "controller=longhorn-backup node=worker-2\n"
)
JOB_POD_LOG = (
    "# kubectl -n longhorn-system logs soak-backup-29000000-abcde --tail=200\n"
    '(no log: container "soak-backup" in pod "soak-backup-29000000-abcde" is waiting to start: ContainerCreating)\n'
)
LOGS = {"longhorn-manager-worker-2 (previous)": MANAGER_LOG, "soak-backup-29000000-abcde": JOB_POD_LOG}


def test_logs_given_to_the_report_are_one_file_and_one_attachment_each(
    stalled_run_dir: Path, stalled_verdict: verdict.Verdict
) -> None:
    built = files.build(stalled_run_dir, result=stalled_verdict, logs=LOGS)

    manager = built.path("logs: longhorn-manager-worker-2 (previous)")
    job_pod = built.path("logs: soak-backup-29000000-abcde")
    assert manager == stalled_run_dir / "attachments" / "logs" / "longhorn-manager-worker-2_previous.log"
    assert manager.read_text() == MANAGER_LOG
    assert job_pod.read_text() == JOB_POD_LOG
    kinds = {a.name: a.mime for a in built.attachments if a.name.startswith("logs: ")}
    assert set(kinds.values()) == {"text/plain"}


def test_logs_kept_with_a_failed_run_are_attached_by_a_later_build(
    stalled_run_dir: Path, stalled_verdict: verdict.Verdict
) -> None:
    assert not stalled_verdict.passed
    saved = files.save_logs(stalled_run_dir, LOGS)

    built = files.build(stalled_run_dir)

    assert saved == stalled_run_dir / "pod-logs.json"
    assert files.saved_logs(stalled_run_dir) == LOGS
    assert built.path("logs: longhorn-manager-worker-2 (previous)").read_text() == MANAGER_LOG


def test_a_passed_run_attaches_no_kept_logs(stalled_run_dir: Path, stalled_verdict: verdict.Verdict) -> None:
    files.save_logs(stalled_run_dir, LOGS)

    built = files.build(stalled_run_dir, result=dataclasses.replace(stalled_verdict, passed=True))

    assert not [a for a in built.attachments if a.name.startswith("logs: ")]


def test_an_unreadable_kept_file_is_no_logs(stalled_run_dir: Path) -> None:
    (stalled_run_dir / "pod-logs.json").write_text("{not json")

    assert files.saved_logs(stalled_run_dir) == {}
    assert files.saved_logs(stalled_run_dir / "elsewhere") == {}
