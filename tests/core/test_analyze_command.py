"""`lhsoak analyze`: the acceptance scenario, exit codes, and the installed command."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from tests.report import conftest as report_fixtures

from lhsoak import cli, diagnosis, timestamps
from lhsoak.ledger_synth import Builder, job_spec

VOLUMES = ("vol-1", "vol-2")


def at(clock: str) -> float:
    return timestamps.parse_rfc3339(f"2026-11-27T{clock}Z")


def iso(clock: str) -> str:
    return timestamps.to_rfc3339(at(clock))


def _every_two_minutes(first: str, last: str) -> list[float]:
    return [at(first) + 120 * n for n in range(int((at(last) - at(first)) // 120) + 1)]


def _stalled_backup_run(tmp_path: Path) -> Path:
    """A 1-hour run: 2-minute snapshot and backup jobs on two volumes, worker-1 rebooted at 07:20:10.

    The reboot leaves vol-1's 07:20 backup InProgress forever (longhorn#9168); the backup job's pod
    waits on it, so with concurrencyPolicy Forbid no backup is made again. Snapshots carry on.
    The outage (07:20:10 → ready 07:24:00 + 60 s settle) excuses the 07:20 tick (its backup was still
    due when the reboot began), 07:22 and 07:24; every backup tick after it, 07:26 … 07:58, is missed.
    """
    b = Builder(
        start_s=at("07:00:00"),
        jobs=[job_spec("soak-snap", task="snapshot"), job_spec("soak-backup", task="backup")],
        volumes=list(VOLUMES),
        run_id="accept-1",
    )
    for volume in VOLUMES:
        previous = None
        for tick in _every_two_minutes("07:00:00", "07:58:00"):
            if tick == at("07:22:00"):
                continue  # node down: that snapshot was never made (excused)
            name = b.fire(job="soak-snap", volume=volume, started_s=tick + 4, done_s=tick + 6)
            if previous is not None:
                b.gone(job="soak-snap", volume=volume, name=previous, ts_s=tick + 7)
            previous = name
        previous = None
        for tick in _every_two_minutes("07:00:00", "07:20:00"):
            stuck = tick == at("07:20:00") and volume == "vol-1"
            done = None if stuck else tick + 35
            name = b.fire_progress(job="soak-backup", volume=volume, started_s=tick + 5, done_s=done)
            if previous is not None and not stuck:
                b.gone(job="soak-backup", volume=volume, name=previous, ts_s=tick + 36)
            previous = name
    b.reboot(node="worker-1", phase="start", ts_s=at("07:20:10"), boot_id="b-1")
    b.reboot(node="worker-1", phase="down", ts_s=at("07:20:15"))
    b.reboot(node="worker-1", phase="up", ts_s=at("07:23:30"), boot_id="b-2")
    b.reboot(node="worker-1", phase="ready", ts_s=at("07:24:00"), boot_id="b-2")
    b.end(ts_s=at("08:00:00"))
    return b.write(tmp_path / "reports" / "accept-1" / "ledger.jsonl")


def _analyze_json(path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, object]]:
    code = cli.main(["analyze", str(path), "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_acceptance_reports_exactly_the_missed_backup_ticks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, document = _analyze_json(_stalled_backup_run(tmp_path), capsys)
    assert code == 1
    assert document["passed"] is False
    jobs = document["jobs"]
    assert isinstance(jobs, dict)
    after_outage = [timestamps.to_rfc3339(t) for t in _every_two_minutes("07:26:00", "07:58:00")]
    backup = jobs["soak-backup"]["volumes"]
    for volume in VOLUMES:
        assert backup[volume]["missed_ticks"] == after_outage  # the backup stopped after the reboot
        assert (backup[volume]["ticks"], backup[volume]["excused"]) == (30, 3)
    assert [backup[v]["missed"] for v in VOLUMES] == [17, 17]
    assert [backup[v]["fired"] for v in VOLUMES] == [10, 11]  # vol-2's 07:20 backup finished
    # vol-1's stuck 07:20 backup is an excused miss, with 07:22 and 07:24
    assert [backup[v]["excused_missed"] for v in VOLUMES] == [3, 2]
    assert backup["vol-1"]["missed_causes"] == {"no_fire": 17, "late": 0, "error": 0}
    for volume in VOLUMES:
        snap = jobs["soak-snap"]["volumes"][volume]
        assert (snap["ticks"], snap["excused"], snap["fired"], snap["missed"]) == (30, 3, 29, 0)
        assert snap["passed"] is True
        assert (snap["lag_p50_s"], snap["lag_max_s"]) == (6.0, 6.0)
        assert snap["retain_violations"] == 0
        assert backup[volume]["passed"] is False
    assert jobs["soak-snap"]["passed"] is True
    assert document["reboots"] == [
        {
            "node": "worker-1",
            "start": iso("07:20:10"),
            "ready": iso("07:24:00"),
            "downtime_s": 230.0,
            "recovery_s": None,  # the backup job never fired on time again
            "failed": False,
            "outage_end": iso("07:25:00"),
        }
    ]
    failures = document["failures"]
    assert isinstance(failures, list)
    assert [(f["job"], f["volume"]) for f in failures] == [
        ("soak-backup", "vol-1"),
        ("soak-backup", "vol-1"),
        ("soak-backup", "vol-2"),
        ("soak-backup", "vol-2"),
    ]
    assert failures[0]["reason"] == (
        f"17 missed ticks outside outages (first {iso('07:26:00')}; 17 with no fire); "
        f"last on-time fire before it: tick {iso('07:18:00')}, done {iso('07:18:35')}"
    )
    assert failures[2]["reason"].endswith(f"tick {iso('07:20:00')}, done {iso('07:20:35')}")
    assert failures[1]["reason"] == f"did not fire after the last outage (ended {iso('07:25:00')})"


def test_acceptance_through_the_installed_command(tmp_path: Path) -> None:
    path = _stalled_backup_run(tmp_path)
    command = Path(sys.executable).with_name("lhsoak")
    done = subprocess.run(
        [str(command), "analyze", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.split()[:2] == ["soak-snap", "vol-1"] and line.endswith("yes") for line in lines)
    assert any(line.split()[:6] == ["soak-backup", "vol-1", "30", "3", "10", "17"] for line in lines)
    assert lines[-1] == "FAILED (4 failures)"


def test_a_passing_run_exits_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    b = Builder(start_s=at("07:00:00"), jobs=[job_spec("soak-snap", task="snapshot")])
    b.regular_fires(job="soak-snap", volumes=list(VOLUMES), until_s=at("07:30:00"))
    b.end(ts_s=at("07:30:00"))
    assert cli.main(["analyze", str(b.write(tmp_path / "ledger.jsonl"))]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "PASSED"


def test_a_compressed_soak_with_a_seconds_cron_is_judged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    b = Builder(
        start_s=at("07:00:00"),
        jobs=[job_spec("soak-backup", task="backup", cron="*/15 * * * * *")],
        lag_bound_s=10,
        settle_s=5,
    )
    b.regular_fires(
        job="soak-backup",
        volumes=["vol-1"],
        until_s=at("07:03:00"),
        delay_s=1,
        duration_s=3,
        skip=lambda t, _v: t == at("07:02:00"),
    )
    b.end(ts_s=at("07:03:00"))
    code, document = _analyze_json(b.write(tmp_path / "ledger.jsonl"), capsys)
    assert code == 1
    row = document["jobs"]["soak-backup"]["volumes"]["vol-1"]  # type: ignore[index]
    assert (row["ticks"], row["fired"], row["missed_ticks"]) == (12, 11, [iso("07:02:00")])


def test_a_bad_ledger_exits_2_naming_the_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _stalled_backup_run(tmp_path)
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[6] = lines[6].replace('"state":', '"stat":')
    path.write_text("".join(lines), encoding="utf-8")
    assert cli.main(["analyze", str(path)]) == 2
    error = capsys.readouterr().err
    assert error == f"lhsoak analyze: bad ledger: {path}:7: fire record has no 'state'\n"


def test_a_missing_ledger_or_argument_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["analyze", str(tmp_path / "nope.jsonl")]) == 2
    assert "cannot read ledger" in capsys.readouterr().err
    assert cli.main(["analyze"]) == 2
    assert "LEDGER" in capsys.readouterr().err


def _interrupted_mid_reboot(tmp_path: Path, *, miss: str | None = None) -> Path:
    """Two jobs on time on two volumes until worker-1 reboots at 07:21:00; the soak is stopped then:
    its teardown brings the node back (Ready 07:22:30) and ends the ledger 10 ms later, before
    ready + settle (07:23:30). With `miss`, vol-2's snapshot of that tick was never made."""
    b = Builder(
        start_s=at("07:00:00"),
        jobs=[job_spec("soak-snap", task="snapshot"), job_spec("soak-backup", task="backup")],
        volumes=list(VOLUMES),
    )
    for job in ("soak-snap", "soak-backup"):
        b.regular_fires(
            job=job,
            volumes=list(VOLUMES),
            until_s=at("07:20:05"),
            skip=lambda t, v, j=job: miss is not None and (j, v, t) == ("soak-snap", "vol-2", at(miss)),
        )
    b.reboot_cycle(node="worker-1", start_s=at("07:21:00"), ready_s=at("07:22:30"))
    b.end(ts_s=at("07:22:30.01"), reason="interrupted")
    return b.write(tmp_path / "ledger.jsonl")


def test_an_interrupted_run_without_failures_exits_130_saying_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _interrupted_mid_reboot(tmp_path)
    assert cli.main(["analyze", str(path)]) == 130
    out = capsys.readouterr().out
    assert "did not fire after the last outage" not in out
    assert out.splitlines()[-1] == "INTERRUPTED: the run was stopped before its verdict could be reached"
    code, document = _analyze_json(path, capsys)
    assert (code, document["outcome"], document["failures"]) == (130, "interrupted", [])
    assert document["passed"] is False, "a script reading only `passed` must not see a stopped run as green"


def test_an_interrupted_run_with_a_miss_well_before_the_interrupt_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, document = _analyze_json(_interrupted_mid_reboot(tmp_path, miss="07:10:00"), capsys)
    assert (code, document["outcome"]) == (1, "failed")
    failures = document["failures"]
    assert isinstance(failures, list)
    assert [(f["job"], f["volume"]) for f in failures] == [("soak-snap", "vol-2")]
    assert cli.main(["analyze", str(tmp_path / "ledger.jsonl")]) == 1
    assert capsys.readouterr().out.splitlines()[-1] == "FAILED (1 failure) before the run was INTERRUPTED"


def _note_with_cause(b: Builder, clock: str, summary: str) -> None:
    b.add(
        at(clock),
        {
            "type": "note",
            "level": "error",
            "text": summary,
            "data": {"category": "stuck-pending-job", "job": "soak-backup"},
        },
    )


def test_the_causes_the_soak_diagnosed_are_shown_the_latest_of_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    b = Builder(start_s=at("07:00:00"), jobs=[job_spec("soak-snap", task="snapshot")])
    b.regular_fires(job="soak-snap", volumes=list(VOLUMES), until_s=at("07:30:00"))
    _note_with_cause(b, "07:10:00", "job pod x Pending for 16s")
    _note_with_cause(b, "07:12:00", "job pod x Pending for 2m16s")
    b.note(ts_s=at("07:13:00"), text="BackupTarget/default: available")
    b.end(ts_s=at("07:30:00"))
    path = b.write(tmp_path / "ledger.jsonl")
    cli.main(["analyze", str(path)])
    out = capsys.readouterr().out
    assert "[stuck-pending-job] job pod x Pending for 2m16s" in out
    assert "Pending for 16s" not in out
    assert "BackupTarget/default" not in out
    cli.main(["analyze", "--json", str(path)])
    found = json.loads(capsys.readouterr().out)["causes"]
    assert [(c["category"], c["job"], c["summary"]) for c in found] == [
        ("stuck-pending-job", "soak-backup", "job pod x Pending for 2m16s")
    ]


def _note_finding(b: Builder, clock: str, finding: diagnosis.Finding) -> None:
    """The note the soak writes for a finding at the end of its run (lhsoak.soak, diagnose)."""
    data = {"category": finding.category, "job": finding.job, "detail": finding.detail, **finding.data}
    b.add(at(clock), {"type": "note", "level": "error", "text": finding.summary, "data": data})


def _stuck_pending_finding() -> diagnosis.Finding:
    (finding, *_) = diagnosis.diagnose(
        report_fixtures.snapshot_from(report_fixtures.cluster_snapshot()),
        jobs=report_fixtures.SOAK_JOBS,
        stalled={"soak-backup"},
    )
    assert finding.category == "stuck-pending-job"
    return finding


def _error_backups_finding(volume: str, count: int) -> diagnosis.Finding:
    return diagnosis.Finding(
        category="error-backups-beyond-retain",
        job="soak-backup",
        summary=f"soak-backup: {count} Error backups of volume {volume} (retain 1)",
        detail=f"Error backups of recurring job soak-backup on volume {volume}: {count} > retain 1.\n"
        "Upstream: longhorn#7854.\n"
        "Workaround: delete the Error backups or lower failed-backup-ttl.",
        data={"volume": volume, "error_backups": count},
    )


def test_each_cause_carries_its_evidence_upstream_issues_and_workaround(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    b = Builder(start_s=at("07:00:00"), jobs=[job_spec("soak-backup", task="backup")])
    b.regular_fires(job="soak-backup", volumes=list(VOLUMES), until_s=at("07:30:00"))
    pending = _stuck_pending_finding()
    _note_finding(b, "07:29:00", pending)
    for count, volume in enumerate(VOLUMES, start=3):
        _note_finding(b, "07:29:01", _error_backups_finding(volume, count))
    b.end(ts_s=at("07:30:00"))
    path = b.write(tmp_path / "ledger.jsonl")

    cli.main(["analyze", "--json", str(path)])
    found = json.loads(capsys.readouterr().out)["causes"]
    # The same cause on two volumes is two causes.
    assert [(c["category"], c["data"].get("volume")) for c in found] == [
        ("stuck-pending-job", None),
        ("error-backups-beyond-retain", "vol-1"),
        ("error-backups-beyond-retain", "vol-2"),
    ]
    cause = found[0]
    assert (cause["job"], cause["level"], cause["summary"]) == ("soak-backup", "error", pending.summary)
    assert cause["ts"] == iso("07:29:00")
    assert cause["evidence"][0].startswith("Pod longhorn-system/soak-backup-")
    assert any("JobAlreadyActive" in line for line in cause["evidence"])
    assert not any(line.startswith(("Workaround:", "Upstream:")) for line in cause["evidence"])
    assert cause["upstream"].startswith("longhorn#7956, longhorn#9185")
    assert cause["workaround"].startswith("kubectl -n longhorn-system delete pod soak-backup-")
    assert (cause["data"]["pod"], cause["data"]["node"]) == (pending.data["pod"], "node-2")
    shown = [*cause["evidence"], f"Upstream: {cause['upstream']}", f"Workaround: {cause['workaround']}"]
    assert sorted(shown) == sorted(pending.detail.splitlines())
    assert found[2]["workaround"] == "delete the Error backups or lower failed-backup-ttl."

    cli.main(["analyze", str(path)])
    out = capsys.readouterr().out.split("causes the soak diagnosed", 1)[1].splitlines()
    start = out.index(f"  [stuck-pending-job] {pending.summary}")
    block = out[start + 1 : start + 1 + len(pending.detail.splitlines())]
    assert all(line.startswith("    ") for line in block)
    assert f"    Workaround: {cause['workaround']}" in block
    assert f"    {cause['evidence'][0]}" in block
