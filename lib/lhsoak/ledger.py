"""The tick ledger: everything a soak run observed, one JSON object per line (a user-facing contract).

A run writes `reports/<run-id>/ledger.jsonl`: JSON Lines, UTF-8, one object per line, appended and
flushed as each record is made, so a killed run loses at most the line being written. Each record is
also fsync'd at once (a machine crash loses nothing recorded), except the records of a burst of watch
events the API server sent together: those share one fsync, made before the recorder waits for more.
Timestamps are RFC 3339 UTC strings with fractional seconds (`lhsoak.timestamps`). Every record has
`type` and `ts` (when the harness recorded it). Version 1 defines:

- `run` — the first line: `version` (1), `run_id`, `target` (object), `jobs` (list of
  `{"name", "task", "cron", "retain"}`), `lag_bound_s`, `settle_s`, and optionally `volumes`: the
  volumes under test. With `volumes`, a volume that never fired for a job still gets a verdict row
  (all its ticks missed); without it, rows exist only for volumes seen in `fire` records.
- `fire` — one artifact made by a recurring job: `job`, `volume`, `object` (its name), `started`
  (the cluster's creation time of the artifact), `done` (when it became usable — a snapshot's
  creation time once readyToUse, a backup's time of reaching Completed — or null while not done),
  `state` (e.g. InProgress, Completed, Error). A later record for the same `object` supersedes the
  earlier one.
- `gone` — an artifact was deleted (retain cleanup): `job`, `volume`, `object`.
- `reboot` — a chaos action and what was proven about it: `node`, `phase` (start | down | up |
  ready | failed), optional `boot_id`.
- `note` — diagnostics: `level` (info | warn | error), `text`, optional `data` (object).
- `blind` — a window in which the recorder could not see the cluster (its watch was disconnected):
  `from`, `to` (timestamps, from ≤ to), `resource` (what it was watching). A tick missed while blind
  is still missed (the artifact would have been reconciled on re-list), but the verdict says so.
- `end` — the last line when the run ends cleanly: `reason` (completed | interrupted | error).

Readers ignore unknown record types and unknown fields (forward compatibility); they accept a
truncated last line (no trailing newline and not valid JSON: a run killed mid-write) and report it
as `Ledger.truncated_tail`. Any other bad line is a `LedgerError` naming its line number; blank
lines are skipped. Known records after the `end` record, or a second `run` record, are errors.

A `Writer` opening an existing ledger appends to it. If that ledger ends in a truncated line, the
partial line is cut off first (it is not JSON; had it been kept, the next record would be glued to
it and corrupt a line in the middle of the file).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import gc
import json
import os
import sys
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Literal, NamedTuple, NotRequired, Self, TypedDict, cast

from lhsoak import schedule, timestamps

__all__ = [
    "VERSION",
    "Blind",
    "BlindRecord",
    "End",
    "EndRecord",
    "Fire",
    "FireRecord",
    "Gone",
    "GoneRecord",
    "Job",
    "JobSpec",
    "Ledger",
    "LedgerError",
    "Note",
    "NoteRecord",
    "Reboot",
    "RebootRecord",
    "Record",
    "RecordStream",
    "Run",
    "RunRecord",
    "Writer",
    "format_record",
    "gc_paused",
    "iter_records",
    "parse_lines",
    "read",
    "validate",
]

VERSION = 1

RebootPhase = Literal["start", "down", "up", "ready", "failed"]
NoteLevel = Literal["info", "warn", "error"]
EndReason = Literal["completed", "interrupted", "error"]
_REBOOT_PHASES = frozenset(("start", "down", "up", "ready", "failed"))
_NOTE_LEVELS = frozenset(("info", "warn", "error"))
_END_REASONS = frozenset(("completed", "interrupted", "error"))


# Records as they are on disk. `ts` is NotRequired only because the Writer fills it in.


class JobSpec(TypedDict):
    """One recurring job under test, as listed in the run record."""

    name: str
    task: str
    cron: str
    retain: int


class RunRecord(TypedDict):
    """The first line of a ledger."""

    type: Literal["run"]
    ts: NotRequired[str]
    version: int
    run_id: str
    target: dict[str, Any]
    jobs: list[JobSpec]
    lag_bound_s: float
    settle_s: float
    volumes: NotRequired[list[str]]


class FireRecord(TypedDict):
    """One artifact (snapshot or backup) made by a recurring job, in its latest known state."""

    type: Literal["fire"]
    ts: NotRequired[str]
    job: str
    volume: str
    object: str
    started: str
    done: str | None
    state: str


class GoneRecord(TypedDict):
    """An artifact was deleted."""

    type: Literal["gone"]
    ts: NotRequired[str]
    job: str
    volume: str
    object: str


class RebootRecord(TypedDict):
    """A step of a node reboot."""

    type: Literal["reboot"]
    ts: NotRequired[str]
    node: str
    phase: RebootPhase
    boot_id: NotRequired[str | None]


class NoteRecord(TypedDict):
    """A diagnostic message."""

    type: Literal["note"]
    ts: NotRequired[str]
    level: NoteLevel
    text: str
    data: NotRequired[dict[str, Any]]


class EndRecord(TypedDict):
    """The last line of a run that ended cleanly."""

    type: Literal["end"]
    ts: NotRequired[str]
    reason: EndReason


# `from` is a Python keyword, hence the functional form.
BlindRecord = TypedDict(
    "BlindRecord",
    {"type": Literal["blind"], "ts": NotRequired[str], "from": str, "to": str, "resource": str},
)

Record = RunRecord | FireRecord | GoneRecord | RebootRecord | NoteRecord | EndRecord | BlindRecord


# Records as the verdict reads them: validated, timestamps parsed once to epoch seconds.


class Job(NamedTuple):
    """A recurring job under test."""

    name: str
    task: str
    cron: str
    retain: int


class Run(NamedTuple):
    """The run record."""

    line: int
    ts_s: float
    version: int
    run_id: str
    target: Mapping[str, Any]
    jobs: tuple[Job, ...]
    lag_bound_s: float
    settle_s: float
    volumes: tuple[str, ...] | None


class Fire(NamedTuple):
    """A fire record (the latest one for its object wins; see `Ledger.latest_fires`)."""

    line: int
    ts_s: float
    job: str
    volume: str
    object: str
    started_s: float
    done_s: float | None
    state: str


class Gone(NamedTuple):
    """A gone record."""

    line: int
    ts_s: float
    job: str
    volume: str
    object: str


class Reboot(NamedTuple):
    """A reboot record."""

    line: int
    ts_s: float
    node: str
    phase: RebootPhase
    boot_id: str | None


class Note(NamedTuple):
    """A note record."""

    line: int
    ts_s: float
    level: NoteLevel
    text: str
    data: Mapping[str, Any]


class End(NamedTuple):
    """The end record."""

    line: int
    ts_s: float
    reason: EndReason


class Blind(NamedTuple):
    """A blind record: the recorder could not see `resource` from `from_s` to `to_s`."""

    line: int
    ts_s: float
    from_s: float
    to_s: float
    resource: str


Event = Run | Fire | Gone | Reboot | Note | End | Blind


class LedgerError(ValueError):
    """A ledger that cannot be read: names the file, the line and what was wrong."""

    def __init__(self, source: str, line: int, problem: str) -> None:
        super().__init__(f"{source}:{line}: {problem}")
        self.source = source
        self.line = line
        self.problem = problem


class _InvalidRecordError(Exception):
    """A record failed validation; the caller adds the line number."""


@dataclasses.dataclass(frozen=True)
class Ledger:
    """A whole ledger, validated, with timestamps parsed."""

    source: str
    """Where it was read from (a path, or a label for in-memory lines)."""
    run: Run
    """The run record."""
    fires: tuple[Fire, ...]
    """Every fire record in file order, superseded ones included."""
    gones: tuple[Gone, ...]
    """Every gone record in file order."""
    reboots: tuple[Reboot, ...]
    """Every reboot record in file order."""
    blinds: tuple[Blind, ...]
    """Every blind record in file order."""
    notes: tuple[Note, ...]
    """Every note record in file order."""
    end: End | None
    """The end record; None when the run did not end cleanly."""
    last_ts_s: float
    """The latest `ts` of any known record."""
    record_count: int
    """Number of known records, the run record included."""
    unknown_types: Mapping[str, int]
    """Record types this reader does not know, with how many of each were skipped."""
    truncated_tail: bool
    """True when the last line was cut off mid-write and skipped."""

    def latest_fires(self) -> list[Fire]:
        """One fire per `object` (artifact names are unique in the cluster): its last record."""
        latest: dict[str, Fire] = {}
        for fire in self.fires:
            latest[fire.object] = fire
        return list(latest.values())


# Validation and conversion of one record.


def _label(record: Mapping[str, Any]) -> str:
    kind = record.get("type")
    return f"{kind} record" if isinstance(kind, str) else "entry"


def _field(record: Mapping[str, Any], key: str) -> Any:
    try:
        return record[key]
    except KeyError:
        raise _InvalidRecordError(f"{_label(record)} has no {key!r}") from None


def _str(record: Mapping[str, Any], key: str) -> str:
    value = _field(record, key)
    if not isinstance(value, str):
        raise _InvalidRecordError(f"{_label(record)}: {key!r} must be a string, got {value!r}")
    return sys.intern(value)


def _opt_str(record: Mapping[str, Any], key: str) -> str | None:
    value = record.get(key)
    if value is not None and not isinstance(value, str):
        raise _InvalidRecordError(f"{_label(record)}: {key!r} must be a string or null, got {value!r}")
    return value


def _time(record: Mapping[str, Any], key: str) -> float:
    value = _field(record, key)
    try:
        return timestamps.parse_rfc3339(value)
    except ValueError as error:
        raise _InvalidRecordError(f"{_label(record)}: {key!r}: {error}") from None


def _opt_time(record: Mapping[str, Any], key: str) -> float | None:
    return None if record.get(key) is None else _time(record, key)


def _number(record: Mapping[str, Any], key: str, *, minimum: float) -> float:
    value = _field(record, key)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < minimum:
        raise _InvalidRecordError(f"{_label(record)}: {key!r} must be a number ≥ {minimum:g}, got {value!r}")
    return float(value)


def _choice(record: Mapping[str, Any], key: str, choices: frozenset[str]) -> Any:
    value = _field(record, key)
    if value not in choices:
        allowed = ", ".join(sorted(choices))
        raise _InvalidRecordError(f"{_label(record)}: {key!r} must be one of {allowed}, got {value!r}")
    return value


def _object(record: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = record.get(key, {})
    if not isinstance(value, dict):
        raise _InvalidRecordError(f"{_label(record)}: {key!r} must be an object, got {value!r}")
    return value


def _job(item: Any, index: int) -> Job:
    try:
        if not isinstance(item, dict):
            raise _InvalidRecordError(f"must be an object, got {item!r}")
        name, task, cron = _str(item, "name"), _str(item, "task"), _str(item, "cron")
        retain = _field(item, "retain")
        if isinstance(retain, bool) or not isinstance(retain, int) or retain < 0:
            raise _InvalidRecordError(f"'retain' must be an integer ≥ 0, got {retain!r}")
        schedule.parse(cron)
    except (_InvalidRecordError, schedule.ScheduleError) as error:
        raise _InvalidRecordError(f"run record: jobs[{index}]: {error}") from None
    return Job(name=name, task=task, cron=cron, retain=retain)


def _to_run(record: Mapping[str, Any], line: int) -> Run:
    version = record.get("version")
    if version != VERSION or isinstance(version, bool):
        raise _InvalidRecordError(
            f"unsupported ledger version {version!r} (this lhsoak reads version {VERSION})"
        )
    raw_jobs = _field(record, "jobs")
    if not isinstance(raw_jobs, list):
        raise _InvalidRecordError(f"run record: 'jobs' must be a list, got {raw_jobs!r}")
    jobs = tuple(_job(item, index) for index, item in enumerate(raw_jobs))
    names = [job.name for job in jobs]
    if len(set(names)) != len(names):
        raise _InvalidRecordError(f"run record: job names must be unique, got {names}")
    return Run(
        line=line,
        ts_s=_time(record, "ts"),
        version=VERSION,
        run_id=_str(record, "run_id"),
        target=_object(record, "target"),
        jobs=jobs,
        lag_bound_s=_number(record, "lag_bound_s", minimum=0.0),
        settle_s=_number(record, "settle_s", minimum=0.0),
        volumes=_volumes(record),
    )


def _volumes(record: Mapping[str, Any]) -> tuple[str, ...] | None:
    value = record.get("volumes")
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise _InvalidRecordError(f"run record: 'volumes' must be a list of strings, got {value!r}")
    return tuple(value)


def _to_fire(record: Mapping[str, Any], line: int) -> Fire:
    return Fire(
        line=line,
        ts_s=_time(record, "ts"),
        job=_str(record, "job"),
        volume=_str(record, "volume"),
        object=_str(record, "object"),
        started_s=_time(record, "started"),
        done_s=_opt_time(record, "done"),
        state=_str(record, "state"),
    )


def _to_gone(record: Mapping[str, Any], line: int) -> Gone:
    return Gone(
        line=line,
        ts_s=_time(record, "ts"),
        job=_str(record, "job"),
        volume=_str(record, "volume"),
        object=_str(record, "object"),
    )


def _to_reboot(record: Mapping[str, Any], line: int) -> Reboot:
    return Reboot(
        line=line,
        ts_s=_time(record, "ts"),
        node=_str(record, "node"),
        phase=_choice(record, "phase", _REBOOT_PHASES),
        boot_id=_opt_str(record, "boot_id"),
    )


def _to_note(record: Mapping[str, Any], line: int) -> Note:
    return Note(
        line=line,
        ts_s=_time(record, "ts"),
        level=_choice(record, "level", _NOTE_LEVELS),
        text=_str(record, "text"),
        data=_object(record, "data"),
    )


def _to_end(record: Mapping[str, Any], line: int) -> End:
    return End(line=line, ts_s=_time(record, "ts"), reason=_choice(record, "reason", _END_REASONS))


def _to_blind(record: Mapping[str, Any], line: int) -> Blind:
    blind = Blind(
        line=line,
        ts_s=_time(record, "ts"),
        from_s=_time(record, "from"),
        to_s=_time(record, "to"),
        resource=_str(record, "resource"),
    )
    if blind.to_s < blind.from_s:
        raise _InvalidRecordError("blind record: 'to' is before 'from'")
    return blind


_CONVERTERS: Mapping[str, Callable[[Mapping[str, Any], int], Event]] = {
    "run": _to_run,
    "fire": _to_fire,
    "gone": _to_gone,
    "reboot": _to_reboot,
    "note": _to_note,
    "end": _to_end,
    "blind": _to_blind,
}


# Reading.


class RecordStream:
    """The validated records of a ledger as `(line_number, record)`, unknown types left out.

    Iterate it once; afterwards `truncated_tail` and `unknown_types` tell what was skipped.
    """

    def __init__(self, lines: Iterable[bytes | str], *, source: str) -> None:
        self.source = source
        self.truncated_tail = False
        self.unknown_types: dict[str, int] = {}
        self._lines = lines

    def __iter__(self) -> Iterator[tuple[int, Record]]:
        for line, record, _event in self._events():
            yield line, record

    def _events(self) -> Iterator[tuple[int, Record, Event]]:
        # One loop, no helper generators: this runs for each of a day's 300k+ records.
        first_line = end_line = 0
        for line, text in enumerate(self._lines, start=1):
            record = self._decode(line, text)
            if record is None:
                continue
            kind = record["type"]
            if not first_line:
                if kind != "run":
                    problem = f"the first record must be 'run', got {kind!r}"
                    raise LedgerError(self.source, line, problem)
                first_line = line
            converter = _FAST_CONVERTERS.get(kind)
            if converter is None:
                self.unknown_types[kind] = self.unknown_types.get(kind, 0) + 1
                continue
            self._check_place(line, kind, first_line=first_line, end_line=end_line)
            try:
                event = converter(record, line)
            except _InvalidRecordError as error:
                raise LedgerError(self.source, line, str(error)) from None
            if kind == "end":
                end_line = line
            yield line, cast(Record, record), event
        if not first_line:
            raise LedgerError(self.source, 1, "empty ledger: no run record")

    def _decode(self, line: int, text: bytes | str) -> dict[str, Any] | None:
        """The line's record; None for a blank line or a truncated last line."""
        try:
            record = _decode_json(text.decode() if isinstance(text, bytes) else text)
        except ValueError as error:  # UnicodeDecodeError is a ValueError too
            if not text.strip():
                return None
            if not _ends_line(text):
                # Killed mid-write: only the last line can lack its newline.
                self.truncated_tail = True
                return None
            raise LedgerError(self.source, line, f"not valid JSON: {error}") from None
        if type(record) is not dict:
            shown = text[:60].decode(errors="replace") if isinstance(text, bytes) else text[:60]
            raise LedgerError(self.source, line, f"a record must be a JSON object, got {shown!r}")
        if type(record.get("type")) is not str:
            raise LedgerError(self.source, line, "record has no string 'type'")
        return record

    def _check_place(self, line: int, kind: str, *, first_line: int, end_line: int) -> None:
        if end_line:
            problem = f"{kind!r} record after the end record (line {end_line})"
            raise LedgerError(self.source, line, problem)
        if kind == "run" and line != first_line:
            raise LedgerError(self.source, line, "a second run record (a ledger holds one run)")


_DECODER = json.JSONDecoder()


def _decode_json(text: str) -> Any:
    # raw_decode skips decode()'s two whitespace regex matches; fall back to it for odd lines.
    try:
        value, stop = _DECODER.raw_decode(text)
    except ValueError:
        return _DECODER.decode(text)
    if stop != len(text) and not text[stop:].isspace():
        return _DECODER.decode(text)  # raises "Extra data" with its position
    return value


def _fast_time(text: Any) -> float:
    moment = dt.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("no offset")
    return moment.timestamp()


def _fast_fire(record: Mapping[str, Any], line: int) -> Event:
    """`_to_fire` for well-formed records, without per-field helpers; falls back for the message."""
    try:
        job, volume, name, state = record["job"], record["volume"], record["object"], record["state"]
        done = record["done"]
        if type(job) is str and type(volume) is str and type(name) is str and type(state) is str:
            return Fire(
                line,
                _fast_time(record["ts"]),
                sys.intern(job),
                sys.intern(volume),
                name,
                _fast_time(record["started"]),
                None if done is None else _fast_time(done),
                sys.intern(state),
            )
    except (KeyError, TypeError, ValueError):
        pass
    return _to_fire(record, line)


def _fast_gone(record: Mapping[str, Any], line: int) -> Event:
    """`_to_gone` for well-formed records; falls back for the message."""
    try:
        job, volume, name = record["job"], record["volume"], record["object"]
        if type(job) is str and type(volume) is str and type(name) is str:
            return Gone(line, _fast_time(record["ts"]), sys.intern(job), sys.intern(volume), name)
    except (KeyError, TypeError, ValueError):
        pass
    return _to_gone(record, line)


_FAST_CONVERTERS = {**_CONVERTERS, "fire": _fast_fire, "gone": _fast_gone}


def _ends_line(text: bytes | str) -> bool:
    return text.endswith(b"\n") if isinstance(text, bytes) else text.endswith("\n")


def iter_records(path: str | os.PathLike[str]) -> RecordStream:
    """Validated records of the ledger at `path` as `(line_number, record)`; see `RecordStream`."""
    return RecordStream(_file_lines(Path(path)), source=str(path))


def _file_lines(path: Path) -> Iterator[bytes]:
    with path.open("rb") as stream:
        yield from stream


def read(path: str | os.PathLike[str]) -> Ledger:
    """Read and validate the whole ledger at `path`; raises LedgerError naming the bad line."""
    return parse_lines(_file_lines(Path(path)), source=str(path))


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building a ledger's worth of objects."""
    # Hundreds of thousands of new tuples kept alive trigger full collections that rescan them all
    # again and again; pausing the cyclic GC while loading halves the read time. Nothing made here
    # forms a cycle, so nothing is left for it to collect.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def parse_lines(lines: Iterable[bytes | str], *, source: str = "<ledger>") -> Ledger:
    """Read and validate a ledger from its lines (each ending in a newline, but maybe the last)."""
    stream = RecordStream(lines, source=source)
    collected: dict[type, list[Any]] = {kind: [] for kind in (Run, Fire, Gone, Reboot, Note, End, Blind)}
    last_ts_s = float("-inf")
    count = 0
    with gc_paused():
        for _line, _record, event in stream._events():
            collected[type(event)].append(event)
            if event.ts_s > last_ts_s:
                last_ts_s = event.ts_s
            count += 1
    ends = collected[End]
    return Ledger(
        source=source,
        run=collected[Run][0],
        fires=tuple(collected[Fire]),
        gones=tuple(collected[Gone]),
        reboots=tuple(collected[Reboot]),
        blinds=tuple(collected[Blind]),
        notes=tuple(collected[Note]),
        end=ends[0] if ends else None,
        last_ts_s=last_ts_s,
        record_count=count,
        unknown_types=dict(stream.unknown_types),
        truncated_tail=stream.truncated_tail,
    )


# Writing.


def format_record(record: Mapping[str, object]) -> str:
    """One ledger line for `record` (which must carry `type` and `ts`), newline included."""
    ordered = {"type": record["type"], "ts": record["ts"], **record}
    return json.dumps(ordered, ensure_ascii=False, separators=(",", ":"), allow_nan=False) + "\n"


def validate(record: Mapping[str, Any]) -> None:
    """Raise ValueError if `record` (with `ts`) is not a valid record of a known type."""
    kind = record.get("type")
    if not isinstance(kind, str):
        raise ValueError(f"a record needs a string 'type', got {kind!r}")
    converter = _CONVERTERS.get(kind)
    if converter is None:
        return
    try:
        converter(record, 0)
    except _InvalidRecordError as error:
        raise ValueError(str(error)) from None


class Writer:
    """Appends records to a ledger file, each flushed and fsync'd; safe to share between threads.

    Inside `batch()` a thread's records are written as they come (a killed process loses none of
    them) and fsync'd together when the batch ends: the recorder wraps each chunk of watch events the
    API server sent together, so everything it received is on disk before it waits for more.
    """

    def __init__(self, stream: IO[bytes], *, clock: Callable[[], float], has_records: bool) -> None:
        self._stream = stream
        self._clock = clock
        self._lock = threading.Lock()
        self._has_records = has_records
        self._batch = threading.local()

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, clock: Callable[[], float]) -> Self:
        """Open (creating it and its directories) the ledger at `path` for appending."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        existed = target.exists()
        has_records = _repair_tail(target) if existed else False
        stream = target.open("ab")
        if not existed:
            _fsync_dir(target.parent)
        return cls(stream, clock=clock, has_records=has_records)

    def append(self, record: Mapping[str, object]) -> dict[str, object]:
        """Append `record` (its `ts` filled from the clock when absent); return it as written."""
        with self._lock:
            if self._stream.closed:
                raise ValueError("ledger writer is closed")
            full = dict(record)
            if full.get("ts") is None:
                full["ts"] = timestamps.to_rfc3339(self._clock())
            validate(full)
            if not self._has_records and full["type"] != "run":
                raise ValueError(f"the first record of a ledger must be 'run', got {full['type']!r}")
            self._stream.write(format_record(full).encode())
            self._stream.flush()
            if getattr(self._batch, "depth", 0):
                self._batch.unsynced = True
            else:
                os.fsync(self._stream.fileno())
            self._has_records = True
            return full

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Defer this thread's fsyncs to the end of the block: one for all its records (if any)."""
        depth = getattr(self._batch, "depth", 0)
        self._batch.depth = depth + 1
        try:
            yield
        finally:
            self._batch.depth = depth
            if depth == 0 and getattr(self._batch, "unsynced", False):
                self._batch.unsynced = False
                self._sync()

    def _sync(self) -> None:
        with self._lock:
            if not self._stream.closed:
                os.fsync(self._stream.fileno())

    def close(self) -> None:
        """Close the file; later writes raise ValueError."""
        with self._lock:
            self._stream.close()

    @property
    def closed(self) -> bool:
        """True once closed."""
        return self._stream.closed

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _repair_tail(path: Path) -> bool:
    """End a ledger's last line: cut it off if truncated, add its newline if it is whole JSON.

    Returns whether the file still holds anything.
    """
    with path.open("r+b") as stream:
        size = stream.seek(0, os.SEEK_END)
        if size == 0:
            return False
        stream.seek(size - 1)
        if stream.read(1) == b"\n":
            return True
        cut = _last_line_start(stream, size)
        stream.seek(cut)
        try:
            json.loads(stream.read())
        except ValueError:
            stream.truncate(cut)
        else:
            stream.seek(0, os.SEEK_END)
            stream.write(b"\n")
        stream.flush()
        os.fsync(stream.fileno())
        return stream.seek(0, os.SEEK_END) > 0


def _last_line_start(stream: IO[bytes], size: int) -> int:
    """Offset just after the last newline before the file's final byte (0 if none)."""
    block = 65_536
    end = size - 1  # a newline as the very last byte ends the last line, it does not start one
    while end > 0:
        start = max(0, end - block)
        stream.seek(start)
        chunk = stream.read(end - start)
        found = chunk.rfind(b"\n")
        if found >= 0:
            return start + found + 1
        end = start
    return 0


def _fsync_dir(directory: Path) -> None:
    # The new file's directory entry must survive a crash too, not only its content.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
