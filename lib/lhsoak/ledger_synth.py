"""Synthetic ledgers for tests and benchmarks: build records in memory, write them only on request.

`Builder` makes hand-written scenarios readable (`b.fire(...)`, `b.reboot_cycle(...)`);
`Builder.regular_fires` lays out a well-behaved job (one artifact per tick, retain cleanup with `gone`
records) with hooks to break it; `soak` makes a whole multi-volume run for the benchmark.
Times are epoch seconds; records come out ordered by `ts` (stable), the run record first.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from lhsoak import ledger, schedule, timestamps

__all__ = ["Builder", "job_spec", "soak"]

FireSkip = Callable[[float, str], bool]
"""`skip(tick_s, volume)` → True to leave that tick without a fire."""


def job_spec(name: str, *, task: str, cron: str = "*/2 * * * *", retain: int = 1) -> ledger.JobSpec:
    """A run record's job entry."""
    return {"name": name, "task": task, "cron": cron, "retain": retain}


class Builder:
    """Accumulates the records of one synthetic run."""

    def __init__(
        self,
        *,
        start_s: float,
        jobs: Sequence[ledger.JobSpec],
        lag_bound_s: float = 120.0,
        settle_s: float = 60.0,
        volumes: Sequence[str] | None = None,
        run_id: str = "synthetic",
    ) -> None:
        run: dict[str, Any] = {
            "type": "run",
            "version": ledger.VERSION,
            "run_id": run_id,
            "target": {"kind": "synthetic"},
            "jobs": [dict(job) for job in jobs],
            "lag_bound_s": lag_bound_s,
            "settle_s": settle_s,
        }
        if volumes is not None:
            run["volumes"] = list(volumes)
        self.start_s = start_s
        self.jobs = {job["name"]: job for job in jobs}
        self._run = (start_s, run)
        self._records: list[tuple[float, dict[str, Any]]] = []
        self._serial = 0

    def add(self, ts_s: float, record: Mapping[str, Any]) -> None:
        """Add any record (unknown types too) made at `ts_s`."""
        self._records.append((ts_s, dict(record)))

    def fire(
        self,
        *,
        job: str,
        volume: str,
        started_s: float,
        done_s: float | None,
        state: str = "Completed",
        name: str | None = None,
        ts_s: float | None = None,
    ) -> str:
        """Record one fire record; returns the object's name (made up when not given)."""
        if name is None:
            self._serial += 1
            name = f"{job}-{volume}-{self._serial:06d}"
        when = ts_s if ts_s is not None else (done_s if done_s is not None else started_s)
        self.add(
            when,
            {
                "type": "fire",
                "job": job,
                "volume": volume,
                "object": name,
                "started": timestamps.to_rfc3339(started_s),
                "done": timestamps.to_rfc3339(done_s) if done_s is not None else None,
                "state": state,
            },
        )
        return name

    def fire_progress(
        self, *, job: str, volume: str, started_s: float, done_s: float | None, state: str = "Completed"
    ) -> str:
        """An InProgress record at `started_s`, then (if `done_s`) its final record at `done_s`."""
        name = self.fire(job=job, volume=volume, started_s=started_s, done_s=None, state="InProgress")
        if done_s is not None:
            self.fire(job=job, volume=volume, started_s=started_s, done_s=done_s, state=state, name=name)
        return name

    def gone(self, *, job: str, volume: str, name: str, ts_s: float) -> None:
        """Record that an artifact was deleted."""
        self.add(ts_s, {"type": "gone", "job": job, "volume": volume, "object": name})

    def reboot(self, *, node: str, phase: str, ts_s: float, boot_id: str | None = None) -> None:
        """Record one reboot phase."""
        self.add(ts_s, {"type": "reboot", "node": node, "phase": phase, "boot_id": boot_id})

    def reboot_cycle(self, *, node: str, start_s: float, ready_s: float | None, down_s: float = 5.0) -> None:
        """start → down → up → ready (or no `ready` when `ready_s` is None) of one reboot."""
        self.reboot(node=node, phase="start", ts_s=start_s, boot_id="boot-a")
        self.reboot(node=node, phase="down", ts_s=start_s + down_s)
        if ready_s is not None:
            self.reboot(node=node, phase="up", ts_s=ready_s - 1.0, boot_id="boot-b")
            self.reboot(node=node, phase="ready", ts_s=ready_s, boot_id="boot-b")

    def blind(self, *, from_s: float, to_s: float, resource: str = "backups") -> None:
        """Record a window in which the recorder could not see `resource`."""
        self.add(
            to_s,
            {
                "type": "blind",
                "from": timestamps.to_rfc3339(from_s),
                "to": timestamps.to_rfc3339(to_s),
                "resource": resource,
            },
        )

    def note(self, *, ts_s: float, text: str, level: str = "info") -> None:
        """Record a diagnostic note."""
        self.add(ts_s, {"type": "note", "level": level, "text": text, "data": {}})

    def end(self, *, ts_s: float, reason: str = "completed") -> None:
        """Record the end of the run."""
        self.add(ts_s, {"type": "end", "reason": reason})

    def regular_fires(
        self,
        *,
        job: str,
        volumes: Iterable[str],
        until_s: float,
        delay_s: float = 3.0,
        duration_s: float = 5.0,
        skip: FireSkip | None = None,
        in_progress: bool = False,
        cleanup: bool = True,
    ) -> None:
        """One artifact per tick of `job` from the run start to `until_s`, done `duration_s` after
        it started (`delay_s` after the tick); with `cleanup`, artifacts beyond retain are gone a
        second after each new one is done, as Longhorn's job does."""
        spec = self.jobs[job]
        ticks = schedule.parse(spec["cron"]).ticks(self.start_s, until_s)
        for volume in volumes:
            live: list[str] = []
            for tick in ticks:
                if skip is not None and skip(tick, volume):
                    continue
                started, done = tick + delay_s, tick + delay_s + duration_s
                make = self.fire_progress if in_progress else self.fire
                live.append(make(job=job, volume=volume, started_s=started, done_s=done))
                while cleanup and len(live) > spec["retain"]:
                    self.gone(job=job, volume=volume, name=live.pop(0), ts_s=done + 1.0)

    def records(self) -> list[dict[str, Any]]:
        """Every record with its `ts`, the run first, the rest ordered by time (stable)."""
        ordered = [self._run, *sorted(self._records, key=lambda item: item[0])]
        return [{**record, "ts": timestamps.to_rfc3339(ts_s)} for ts_s, record in ordered]

    def lines(self) -> list[str]:
        """The ledger's lines, newline-terminated."""
        return [ledger.format_record(record) for record in self.records()]

    def ledger(self) -> ledger.Ledger:
        """The records parsed as `ledger.read` would."""
        return ledger.parse_lines(self.lines(), source="<synthetic>")

    def write(self, path: str | os.PathLike[str]) -> Path:
        """Write the ledger file (no fsync: synthetic data)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("w", encoding="utf-8") as stream:
            stream.writelines(self.lines())
        return target


def soak(
    *,
    start_s: float,
    hours: float,
    volumes: int,
    cron: str = "*/2 * * * *",
    backup_s: float = 40.0,
) -> Builder:
    """A healthy run of a snapshot and a backup job over `volumes` volumes for `hours` hours.

    Snapshots get one record each, backups an InProgress and a Completed record; every artifact
    beyond retain 1 gets a `gone` record.
    """
    names = [f"vol-{index:03d}" for index in range(volumes)]
    jobs = [
        job_spec("soak-snap", task="snapshot", cron=cron),
        job_spec("soak-backup", task="backup", cron=cron),
    ]
    end_s = start_s + hours * 3600.0
    builder = Builder(start_s=start_s, jobs=jobs, volumes=names, run_id="bench")
    builder.regular_fires(job="soak-snap", volumes=names, until_s=end_s, duration_s=2.0)
    builder.regular_fires(
        job="soak-backup", volumes=names, until_s=end_s, duration_s=backup_s, in_progress=True
    )
    builder.end(ts_s=end_s)
    return builder
