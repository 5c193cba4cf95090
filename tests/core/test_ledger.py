"""The ledger file: fsync'd appends, a truncated tail tolerated, every other bad line named."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from lhsoak import ledger, ledger_synth, timestamps

T0 = timestamps.parse_rfc3339("2026-11-27T07:00:00Z")
JOBS = [ledger_synth.job_spec("soak-backup", task="backup")]


def _run_record(**extra: Any) -> dict[str, Any]:
    return {
        "type": "run",
        "version": 1,
        "run_id": "r1",
        "target": {"kind": "lab"},
        "jobs": [dict(job) for job in JOBS],
        "lag_bound_s": 120,
        "settle_s": 60,
        **extra,
    }


def _fire(name: str = "backup-1", **extra: Any) -> dict[str, Any]:
    return {
        "type": "fire",
        "job": "soak-backup",
        "volume": "vol-1",
        "object": name,
        "started": "2026-11-27T07:02:03Z",
        "done": "2026-11-27T07:02:40.5Z",
        "state": "Completed",
        **extra,
    }


def _ticking_clock(start_s: float = T0) -> Callable[[], float]:
    now = [start_s]

    def clock() -> float:
        now[0] += 0.5
        return now[0]

    return clock


def _write_lines(path: Path, records: list[dict[str, Any]], *, tail: str = "") -> Path:
    ts = timestamps.to_rfc3339(T0)
    lines = [ledger.format_record({"ts": ts, **record}) for record in records]
    path.write_text("".join(lines) + tail, encoding="utf-8")
    return path


# Writer


def test_writer_fills_ts_from_the_clock_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "reports" / "r1" / "ledger.jsonl"
    with ledger.Writer.open(path, clock=_ticking_clock()) as writer:
        written = writer.append(_run_record())
        writer.append(_fire())
        writer.append({"type": "end", "reason": "completed", "ts": "2026-11-27T08:00:00Z"})
    assert written["ts"] == "2026-11-27T07:00:00.500000Z"
    first_line = path.read_text(encoding="utf-8").splitlines()[0]
    assert first_line.startswith('{"type":"run","ts":"2026-11-27T07:00:00.500000Z",')
    parsed = ledger.read(path)
    assert parsed.run.run_id == "r1"
    assert parsed.run.jobs == (ledger.Job("soak-backup", "backup", "*/2 * * * *", 1),)
    (fire,) = parsed.fires
    assert fire.line == 2
    assert fire.ts_s == T0 + 1.0
    assert fire.started_s == timestamps.parse_rfc3339("2026-11-27T07:02:03Z")
    assert fire.done_s == pytest.approx(fire.started_s + 37.5)
    assert parsed.end is not None
    assert parsed.end.reason == "completed"
    assert parsed.record_count == 3
    assert not parsed.truncated_tail


def test_writer_refuses_anything_but_run_first_and_invalid_records(tmp_path: Path) -> None:
    with ledger.Writer.open(tmp_path / "ledger.jsonl", clock=_ticking_clock()) as writer:
        with pytest.raises(ValueError, match="first record of a ledger must be 'run'"):
            writer.append(_fire())
        writer.append(_run_record())
        with pytest.raises(ValueError, match="fire record has no 'state'"):
            writer.append({k: v for k, v in _fire().items() if k != "state"})
        with pytest.raises(ValueError, match="'started'"):
            writer.append(_fire(started="yesterday"))
        writer.append({"type": "future-thing", "anything": [1, 2]})  # unknown types pass through
    lines = (tmp_path / "ledger.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["type"] for line in lines] == ["run", "future-thing"]


def test_a_closed_writer_refuses_to_write(tmp_path: Path) -> None:
    writer = ledger.Writer.open(tmp_path / "ledger.jsonl", clock=_ticking_clock())
    writer.close()
    assert writer.closed
    with pytest.raises(ValueError, match="closed"):
        writer.append(_run_record())


def test_each_record_is_on_disk_while_the_writer_is_still_open(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    with ledger.Writer.open(path, clock=_ticking_clock()) as writer:
        writer.append(_run_record())
        writer.append(_fire())
        # Another reader (the live monitor, a human with tail -f) sees both lines already.
        assert ledger.read(path).record_count == 2
        writer.append(_fire("backup-2"))
        assert [fire.object for fire in ledger.read(path).fires] == ["backup-1", "backup-2"]


class FsyncCounter:
    """Counts the fsyncs of one file descriptor (the syscall still runs)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        real = os.fsync

        def counting(fd: int) -> None:
            self.calls += 1
            real(fd)

        monkeypatch.setattr(os, "fsync", counting)


def test_every_record_is_fsynced_at_once_outside_a_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ledger.Writer.open(tmp_path / "ledger.jsonl", clock=_ticking_clock()) as writer:
        fsyncs = FsyncCounter(monkeypatch)
        writer.append(_run_record())
        writer.append(_fire())
        assert fsyncs.calls == 2


def test_a_batch_writes_each_record_at_once_and_fsyncs_them_together_at_its_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "ledger.jsonl"
    with ledger.Writer.open(path, clock=_ticking_clock()) as writer:
        writer.append(_run_record())
        fsyncs = FsyncCounter(monkeypatch)
        with writer.batch():
            for index in range(5):
                writer.append(_fire(f"backup-{index}"))
                # Written, not yet fsync'd: a killed process would still leave the line behind.
                assert ledger.read(path).record_count == index + 2
            with writer.batch():  # nested: still one fsync, at the outer end
                writer.append(_fire("backup-nested"))
            assert fsyncs.calls == 0
        assert fsyncs.calls == 1
        with writer.batch():
            pass  # nothing written: nothing to sync
        assert fsyncs.calls == 1


def test_a_batch_on_one_thread_does_not_defer_another_threads_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ledger.Writer.open(tmp_path / "ledger.jsonl", clock=_ticking_clock()) as writer:
        writer.append(_run_record())
        fsyncs = FsyncCounter(monkeypatch)
        with writer.batch():
            other = threading.Thread(target=lambda: writer.append(_fire("from-another-thread")))
            other.start()
            other.join(timeout=10)
            assert fsyncs.calls == 1


def test_a_batch_ended_by_an_error_still_fsyncs_what_it_wrote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with ledger.Writer.open(tmp_path / "ledger.jsonl", clock=_ticking_clock()) as writer:
        writer.append(_run_record())
        fsyncs = FsyncCounter(monkeypatch)

        def burst_then_break() -> None:
            with writer.batch():
                writer.append(_fire())
                raise RuntimeError("the watch broke mid-burst")

        with pytest.raises(RuntimeError):
            burst_then_break()
        assert fsyncs.calls == 1


def test_opening_an_existing_ledger_appends(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    with ledger.Writer.open(path, clock=_ticking_clock()) as writer:
        writer.append(_run_record())
    with ledger.Writer.open(path, clock=_ticking_clock(T0 + 10)) as writer:
        writer.append(_fire())  # no run record needed: the file has one
    assert ledger.read(path).record_count == 2


def test_appending_after_a_truncated_line_cuts_the_partial_line_off(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "ledger.jsonl", [_run_record()], tail='{"type":"fire","jo')
    with ledger.Writer.open(path, clock=_ticking_clock()) as writer:
        writer.append(_fire())
    parsed = ledger.read(path)
    assert [fire.object for fire in parsed.fires] == ["backup-1"]
    assert not parsed.truncated_tail


def test_appending_after_a_whole_record_without_newline_keeps_it(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "ledger.jsonl", [_run_record()])
    whole_line = ledger.format_record({"ts": "2026-11-27T07:03:00Z", **_fire()})
    path.write_text(path.read_text() + whole_line.rstrip("\n"))
    with ledger.Writer.open(path, clock=_ticking_clock()) as writer:
        writer.append(_fire("backup-2"))
    assert [fire.object for fire in ledger.read(path).fires] == ["backup-1", "backup-2"]


def test_threads_sharing_a_writer_never_interleave_lines(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    threads_n, records_n = 8, 40
    with ledger.Writer.open(path, clock=_ticking_clock()) as writer:
        writer.append(_run_record())
        barrier = threading.Barrier(threads_n)

        def record_many(thread: int) -> None:
            barrier.wait()
            for index in range(records_n):
                writer.append(_fire(f"backup-{thread}-{index}", volume=f"vol-{thread}"))

        workers = [threading.Thread(target=record_many, args=(n,)) for n in range(threads_n)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)
        assert not any(worker.is_alive() for worker in workers), "a writer thread hung"
    parsed = ledger.read(path)
    assert len(parsed.fires) == threads_n * records_n
    for thread in range(threads_n):
        mine = [f.object for f in parsed.fires if f.volume == f"vol-{thread}"]
        assert mine == [f"backup-{thread}-{index}" for index in range(records_n)]
    stamps = [fire.ts_s for fire in parsed.fires]
    assert stamps == sorted(stamps), "ts is taken under the lock, so file order is time order"


# Reader


def test_a_truncated_last_line_is_reported_not_an_error(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "l.jsonl", [_run_record(), _fire()], tail='{"type":"fire","ts":"2026')
    parsed = ledger.read(path)
    assert parsed.truncated_tail
    assert len(parsed.fires) == 1
    stream = ledger.iter_records(path)
    assert [(line, record["type"]) for line, record in stream] == [(1, "run"), (2, "fire")]
    assert stream.truncated_tail


def test_unknown_record_types_and_fields_are_kept_aside(tmp_path: Path) -> None:
    records = [
        _run_record(future_field={"x": 1}),
        {"type": "podstate", "pod": "p"},
        _fire(extra="ignored"),
        {"type": "podstate", "pod": "q"},
        {"type": "metric"},
    ]
    path = _write_lines(tmp_path / "l.jsonl", records)
    parsed = ledger.read(path)
    assert parsed.unknown_types == {"podstate": 2, "metric": 1}
    assert len(parsed.fires) == 1
    stream = ledger.iter_records(path)
    assert [line for line, _ in stream] == [1, 3]
    assert stream.unknown_types == {"podstate": 2, "metric": 1}


def test_blank_lines_are_skipped(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "l.jsonl", [_run_record()], tail="\n  \n")
    assert ledger.read(path).record_count == 1


@pytest.mark.parametrize(
    ("lines", "line", "problem"),
    [
        ([], 1, "empty ledger: no run record"),
        (['{"type":"run","ts":"2026-11-27T07:00:00Z","vers'], 1, "empty ledger"),
        ([_fire()], 1, "the first record must be 'run', got 'fire'"),
        ([{"type": "podstate"}], 1, "the first record must be 'run'"),
        ([_run_record(version=2)], 1, "unsupported ledger version 2"),
        ([_run_record(jobs=[{"name": "j", "task": "backup", "cron": "* * *", "retain": 1}])],
         1, r"jobs\[0\]: invalid cron '\* \* \*'"),
        ([_run_record(jobs=[{"name": "j", "task": "backup", "cron": "* * * * *"}])],
         1, r"jobs\[0\]: entry has no 'retain'"),
        ([_run_record(lag_bound_s="2m")], 1, "'lag_bound_s' must be a number"),
        ([_run_record(), "{not json\n"], 2, "not valid JSON"),
        ([_run_record(), "[1, 2]\n"], 2, "must be a JSON object"),
        ([_run_record(), '{"kind":"fire"}\n'], 2, "no string 'type'"),
        ([_run_record(), _fire(state=None)], 2, "fire record: 'state' must be a string"),
        ([_run_record(), _fire(started="07:02")], 2, "fire record: 'started': not an RFC 3339"),
        ([_run_record(), _fire(done="2026-11-27T07:02:40")], 2, "'done': .* no UTC offset"),
        ([_run_record(), {"type": "reboot", "node": "w1", "phase": "boom"}], 2,
         "'phase' must be one of down, failed, ready, start, up, got 'boom'"),
        ([_run_record(), {"type": "blind", "from": "2026-11-27T07:05:00Z",
                          "to": "2026-11-27T07:04:00Z", "resource": "backups"}], 2,
         "'to' is before 'from'"),
        ([_run_record(), {"type": "end", "reason": "completed"}, _fire()], 3,
         "'fire' record after the end record \\(line 2\\)"),
        ([_run_record(), _run_record()], 2, "a second run record"),
    ],
)  # fmt: skip
def test_bad_lines_name_their_line_and_problem(
    tmp_path: Path, lines: list[dict[str, Any] | str], line: int, problem: str
) -> None:
    ts = timestamps.to_rfc3339(T0)
    text = "".join(
        item if isinstance(item, str) else ledger.format_record({"ts": ts, **item}) for item in lines
    )
    path = tmp_path / "ledger.jsonl"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ledger.LedgerError, match=problem) as caught:
        ledger.read(path)
    assert caught.value.line == line
    assert str(caught.value).startswith(f"{path}:{line}: ")


def test_a_bad_last_line_with_its_newline_is_an_error_not_a_truncation(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "l.jsonl", [_run_record()], tail='{"type":"fire"\n')
    with pytest.raises(ledger.LedgerError, match="not valid JSON") as caught:
        ledger.read(path)
    assert caught.value.line == 2


def test_invalid_utf8_is_a_bad_line(tmp_path: Path) -> None:
    path = _write_lines(tmp_path / "l.jsonl", [_run_record()])
    with path.open("ab") as stream:
        stream.write(b'{"type":"note","text":"\xff"}\n')
    with pytest.raises(ledger.LedgerError, match="not valid JSON") as caught:
        ledger.read(path)
    assert caught.value.line == 2


def test_the_latest_fire_record_of_an_object_supersedes_earlier_ones() -> None:
    builder = ledger_synth.Builder(start_s=T0, jobs=JOBS)
    name = builder.fire_progress(job="soak-backup", volume="vol-1", started_s=T0 + 123, done_s=T0 + 150)
    builder.fire(job="soak-backup", volume="vol-1", started_s=T0 + 124, done_s=None, state="Error",
                 name="backup-x", ts_s=T0 + 130)  # fmt: skip
    builder.fire(job="soak-backup", volume="vol-1", started_s=T0 + 124, done_s=None,
                 name="backup-x", ts_s=T0 + 125)  # fmt: skip
    parsed = builder.ledger()
    assert len(parsed.fires) == 4
    latest = {fire.object: (fire.state, fire.done_s) for fire in parsed.latest_fires()}
    assert latest == {name: ("Completed", T0 + 150), "backup-x": ("Error", None)}
