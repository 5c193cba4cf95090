"""Everything the report shows about a run, written as files under `<run dir>/attachments/`.

`build(run_dir)` reads `ledger.jsonl` (and judges it, unless given the verdict), then writes the
timeline and lag pictures (PNG + SVG), the per-tick table (CSV + HTML), the plain-text summary, the
diagnosis notes, `verdict.json` when the run has none, and — when the run failed and the cluster state
is at hand — the blocking objects as YAML with their events; and the container logs the soak read
when it diagnosed a cause (longhorn-manager and blocking job pods, kept with the run in
`pod-logs.json`), one file each under `logs/`. The pytest plugin attaches these files to Allure;
`lhsoak report` builds them for any run directory.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from lhsoak import diagnosis, ledger, verdict
from lhsoak.report import summary, tables
from lhsoak.report import ticks as tick_rows
from lhsoak.report.allure_files import Attachment
from lhsoak.timestamps import to_rfc3339

__all__ = [
    "ATTACHMENTS_DIR",
    "LOGS_FILE",
    "RunFiles",
    "blocking_objects_yaml",
    "build",
    "events_text",
    "notes_text",
    "save_logs",
    "saved_logs",
]

ATTACHMENTS_DIR = "attachments"
LEDGER_FILE = "ledger.jsonl"
VERDICT_FILE = "verdict.json"
LOGS_FILE = "pod-logs.json"
"""The container logs the soak read for its evidence, title → text, kept in the run directory."""


@dataclasses.dataclass(frozen=True)
class RunFiles:
    """The files `build` wrote, and how to show them."""

    directory: Path
    """`<run dir>/attachments`."""
    run: ledger.Run
    """The ledger's run record."""
    verdict: verdict.Verdict
    """The verdict the files show."""
    rows: tuple[tick_rows.TickRow, ...]
    """Every tick, judged."""
    failure_message: str
    """`lhsoak.report.summary.failure_text` of the run; empty when it passed."""
    attachments: tuple[Attachment, ...]
    """In the order a reader wants them: pictures, table, summary, diagnosis, raw data, cluster state."""

    def path(self, name: str) -> Path:
        """The file of the attachment titled `name`; KeyError if there is none."""
        for attachment in self.attachments:
            if attachment.name == name:
                return attachment.path
        raise KeyError(name)


def build(
    run_dir: Path,
    *,
    result: verdict.Verdict | None = None,
    findings: Sequence[diagnosis.Finding] = (),
    snapshot: diagnosis.ClusterSnapshot | None = None,
    logs: Mapping[str, str] | None = None,
) -> RunFiles:
    """Write every attachment of the run in `run_dir`; LedgerError/OSError when its ledger is unreadable.

    `logs` (title → text) defaults, for a failed run, to those the soak kept with it (`saved_logs`).
    """
    # matplotlib takes about a second to import: only a run that draws pays for it.
    from lhsoak.report import timeline

    led = ledger.read(run_dir / LEDGER_FILE)
    result = result if result is not None else verdict.analyse(led)
    verdict_path = run_dir / VERDICT_FILE
    if not verdict_path.exists():
        verdict_path.write_text(json.dumps(result.to_json(), indent=2, sort_keys=True) + "\n")
    out = run_dir / ATTACHMENTS_DIR
    out.mkdir(parents=True, exist_ok=True)
    rows = tick_rows.rows(led, result)
    message = summary.failure_text(result, findings, led)
    timeline_png, timeline_svg = timeline.save(timeline.timeline(led, result, rows), out / "timeline")
    lag_png, lag_svg = timeline.save(timeline.lag_chart(result, rows), out / "lag-per-tick")
    written = [
        Attachment("timeline.png", timeline_png, "image/png"),
        Attachment("timeline.svg", timeline_svg, "image/svg+xml"),
        Attachment("lag per tick.png", lag_png, "image/png"),
        Attachment("lag per tick.svg", lag_svg, "image/svg+xml"),
        Attachment("ticks.html", _write(out / "ticks.html", tables.html_page(rows, result)), "text/html"),
        Attachment("ticks.csv", _write(out / "ticks.csv", tables.csv_text(rows)), "text/csv"),
        Attachment(
            "summary.txt",
            _write(out / "summary.txt", _summary(message, result, led)),
            "text/plain",
        ),
        Attachment(
            "diagnosis notes.txt", _write(out / "diagnosis.txt", notes_text(led, findings)), "text/plain"
        ),
        Attachment("verdict.json", verdict_path, "application/json"),
        Attachment("ledger.jsonl", run_dir / LEDGER_FILE, "text/plain"),
    ]
    if findings and snapshot is not None and not result.passed:
        written += _cluster_state(out, findings, snapshot)
    if logs is None and not result.passed:
        logs = saved_logs(run_dir)
    for name, text in sorted((logs or {}).items()):
        path = _write(out / "logs" / f"{_file_safe(name)}.log", text)
        written.append(Attachment(f"logs: {name}", path, "text/plain"))
    return RunFiles(
        directory=out,
        run=led.run,
        verdict=result,
        rows=tuple(rows),
        failure_message=message,
        attachments=tuple(written),
    )


def save_logs(run_dir: Path, logs: Mapping[str, str]) -> Path:
    """Keep container logs with the run (`pod-logs.json`), for `build` to attach later."""
    path = run_dir / LOGS_FILE
    path.write_text(json.dumps(dict(logs), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return path


def saved_logs(run_dir: Path) -> dict[str, str]:
    """The container logs kept with the run (empty when there are none or the file is unreadable)."""
    try:
        data = json.loads((run_dir / LOGS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(title): str(text) for title, text in data.items()}


def _summary(message: str, result: verdict.Verdict, led: ledger.Ledger) -> str:
    tables = summary.summary_text(result, led)
    return f"{message}\n{tables}" if message else tables


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _file_safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "log"


def notes_text(led: ledger.Ledger, findings: Sequence[diagnosis.Finding] = ()) -> str:
    """The ledger's notes, each with its detail, then the findings of the final diagnosis."""
    lines = []
    for note in led.notes:
        lines.append(f"{to_rfc3339(note.ts_s)} {note.level.upper():5} {note.text}")
        detail = note.data.get("detail")
        if isinstance(detail, str):
            lines += [f"    {line}" for line in detail.splitlines()]
        facts = {k: v for k, v in note.data.items() if k != "detail"}
        if facts:
            lines.append(f"    data: {json.dumps(facts, sort_keys=True, default=str)}")
    if not lines:
        lines.append("(the ledger holds no notes)")
    if findings:
        lines += ["", diagnosis.render(findings)]
    return "\n".join(lines) + "\n"


def _cluster_state(
    out: Path, findings: Sequence[diagnosis.Finding], snapshot: diagnosis.ClusterSnapshot
) -> list[Attachment]:
    refs = _refs(findings)
    return [
        Attachment(
            "blocking objects.yaml",
            _write(out / "blocking-objects.yaml", blocking_objects_yaml(refs, snapshot)),
            "application/yaml",
        ),
        Attachment(
            "blocking objects events.txt",
            _write(out / "blocking-events.txt", events_text(refs, snapshot)),
            "text/plain",
        ),
    ]


def _refs(findings: Iterable[diagnosis.Finding]) -> list[diagnosis.ObjectRef]:
    refs: list[diagnosis.ObjectRef] = []
    for finding in findings:
        refs += [ref for ref in finding.objects if ref not in refs]
    return refs


def _meta(obj: Mapping[str, Any], key: str) -> str:
    value = (obj.get("metadata") or {}).get(key)
    return value if isinstance(value, str) else ""


def _find(ref: diagnosis.ObjectRef, snapshot: diagnosis.ClusterSnapshot) -> Mapping[str, Any] | None:
    for obj in snapshot.objects_of(ref.kind):
        if (
            _meta(obj, "name") == ref.name
            and (_meta(obj, "namespace") or None) == ref.namespace
            and obj.get("apiVersion", ref.api_version) == ref.api_version
        ):
            return obj
    return None


def blocking_objects_yaml(refs: Sequence[diagnosis.ObjectRef], snapshot: diagnosis.ClusterSnapshot) -> str:
    """The objects the findings point at, as a multi-document YAML (what `kubectl get -o yaml` shows)."""
    taken = to_rfc3339(snapshot.taken_at_s)
    documents = []
    for ref in refs:
        obj = _find(ref, snapshot)
        header = f"# {ref} ({ref.api_version}) as listed at {taken}"
        if obj is None:
            documents.append(f"{header}: not in the snapshot\n")
        else:
            documents.append(header + "\n" + yaml.safe_dump(dict(obj), sort_keys=False, allow_unicode=True))
    return "---\n".join(documents) if documents else "# no objects named by the findings\n"


def events_text(refs: Sequence[diagnosis.ObjectRef], snapshot: diagnosis.ClusterSnapshot) -> str:
    """Events about the findings' objects, oldest first, as `kubectl get events` lays them out."""
    wanted = {(ref.kind, ref.namespace, ref.name) for ref in refs}
    rows = []
    for event in snapshot.events:
        involved = event.get("involvedObject") or {}
        namespace = involved.get("namespace") or _meta(event, "namespace") or None
        key = (involved.get("kind"), namespace, involved.get("name"))
        if key in wanted:
            last = str(event.get("lastTimestamp") or event.get("eventTime") or "")
            rows.append(
                (
                    last,
                    str(event.get("type") or "Normal"),
                    str(event.get("reason") or ""),
                    f"{key[0]}/{key[2]}",
                    str(event.get("count") or 1),
                    " ".join(str(event.get("message") or "").split()),
                )
            )
    if not rows:
        return "no events about the blocking objects in the snapshot (events expire after 1 h by default)\n"
    rows.sort()
    header = ("LAST SEEN", "TYPE", "REASON", "OBJECT", "COUNT", "MESSAGE")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    return (
        "\n".join(
            "  ".join(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True))
            + "  "
            + row[-1]
            for row in [header, *rows]
        )
        + "\n"
    )
