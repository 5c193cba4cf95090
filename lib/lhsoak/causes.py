"""The causes a soak diagnosed while it ran, read back from its ledger, and the verdict document
(`verdict.json`, `lhsoak analyze --json`): the verdict plus those causes.

Each cause is a ledger note with a `category` (the soak writes one per diagnosis finding): its
summary, and its detail split into evidence, upstream issues and workaround.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lhsoak import ledger, timestamps, verdict

# How `lhsoak.diagnosis` starts those lines of a finding's detail.
WORKAROUND = "Workaround:"
UPSTREAM = "Upstream:"
_NOTE_KEYS = frozenset({"category", "job", "detail"})


def _detail_lines(data: Mapping[str, Any]) -> list[str]:
    detail = data.get("detail")
    return [line for line in detail.splitlines() if line.strip()] if isinstance(detail, str) else []


def _after(prefix: str, lines: Sequence[str]) -> str | None:
    found = [line.removeprefix(prefix).strip() for line in lines if line.startswith(prefix)]
    return " ".join(found) if found else None


def _cause(note: ledger.Note, category: str) -> dict[str, Any]:
    """One cause: the finding's summary and the detail the soak noted with it
    (`lhsoak.diagnosis.Finding.detail`) split into evidence, upstream issues and workaround, and
    the finding's other facts (`data`)."""
    detail = _detail_lines(note.data)
    return {
        "category": category,
        "job": note.data.get("job") or None,
        "level": note.level,
        "summary": note.text,
        "evidence": [line for line in detail if not line.startswith((WORKAROUND, UPSTREAM))],
        "upstream": _after(UPSTREAM, detail),
        "workaround": _after(WORKAROUND, detail),
        "data": {key: value for key, value in note.data.items() if key not in _NOTE_KEYS},
        "ts": timestamps.to_rfc3339(note.ts_s),
    }


def causes(parsed: ledger.Ledger) -> list[dict[str, Any]]:
    """The diagnosis notes the soak wrote (those with a `category`), the latest per category, job and
    volume: a cause seen again later (a pod Pending for longer) is one cause, as last seen; the same
    cause on two volumes is two."""
    latest: dict[tuple[str, str, str], dict[str, Any]] = {}
    for note in parsed.notes:
        category = note.data.get("category")
        if not isinstance(category, str):
            continue
        key = (category, str(note.data.get("job") or ""), str(note.data.get("volume") or ""))
        latest.pop(key, None)
        latest[key] = _cause(note, category)
    return list(latest.values())


def verdict_document(result: verdict.Verdict, parsed: ledger.Ledger) -> dict[str, Any]:
    """What `verdict.json` holds and `lhsoak analyze --json` prints: the verdict and the causes."""
    return {**result.to_json(), "causes": causes(parsed)}
