"""How a failure names its cause: one marker line per category, and the Allure categories that sort by it.

A failure message (a StepFailed, the verdict's assertion) carries a line
`lhsoak-category: <category>` for each cause it reports; Allure's `categories.json` matches those
lines with `messageRegex`, so the Categories tab groups failures by cause. The categories are the
diagnosis rules' (`lhsoak.diagnosis.CATEGORY_TITLES`) plus three the harness itself decides:
a node that never came back, a reboot that could not be proven, and missed ticks the diagnosis
found no cause for. A broken test (any exception but an assertion) without a marker is a harness
error.

Allure 2 compiles each regex with `Pattern.DOTALL` and requires it to match the *whole* message
(`Matcher.matches`, allure2 CategoriesPlugin); the patterns here are written for that and use
only constructs Java and Python read alike, so `matches` below is exactly Allure's test.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final, Literal

from lhsoak import diagnosis

__all__ = [
    "HARNESS_ERROR",
    "MARKER_PREFIX",
    "TITLES",
    "Category",
    "allure_categories",
    "category_marker",
    "finding_markers",
    "markers_in",
    "matches",
]

MARKER_PREFIX: Final = "lhsoak-category: "
"""What starts a marker line; the category slug follows."""

HarnessCategory = Literal["node-not-back", "reboot-not-proven", "missed-ticks"]
Category = diagnosis.Category | HarnessCategory

_HARNESS_TITLES: Mapping[HarnessCategory, str] = {
    "node-not-back": "Node did not come back after its reboot",
    "reboot-not-proven": "Reboot not proven (the node did not go down or its boot id did not change)",
    "missed-ticks": "Ticks missed, no cause found in the cluster state",
}

TITLES: Mapping[str, str] = {
    str(category): title for category, title in [*diagnosis.CATEGORY_TITLES.items(), *_HARNESS_TITLES.items()]
}
"""Every category with the name Allure shows for it, most specific cause first."""

HARNESS_ERROR: Final = "Harness error (broken without a cause marker)"
"""The Allure category of a broken test whose message names no cause."""

_DESCRIPTIONS: Mapping[str, str] = {
    "stuck-pending-job": "longhorn#7956, #9185, #10204, kubernetes#118321. Workaround: delete the Pending pod.",
    "stuck-inprogress-backup": "longhorn#9168, #9417. Workaround: delete the InProgress backup.",
    "error-backups-beyond-retain": "longhorn#7854. Error backups go only by failed-backup-ttl.",
}

_SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_MARKER_LINE = re.compile(rf"{re.escape(MARKER_PREFIX)}({_SLUG.pattern})(?=\s|$)")


def category_marker(category: str) -> str:
    """The marker line (no newline) that files a failure under `category`; ValueError if unknown."""
    if category not in TITLES:
        known = ", ".join(TITLES)
        raise ValueError(f"unknown report category {category!r} (known: {known})")
    return f"{MARKER_PREFIX}{category}"


def finding_markers(findings: Sequence[diagnosis.Finding]) -> list[str]:
    """Marker lines for the most specific finding of each job the findings bear on.

    `diagnosis.diagnose` orders findings most specific first (stalled jobs' findings first), so the
    first finding naming a job is that job's cause; findings tied to no job count once, as "".
    """
    covered: set[str] = set()
    categories: list[str] = []
    for finding in findings:
        jobs = finding.jobs or frozenset({""})
        if jobs <= covered:
            continue
        covered |= jobs
        if finding.category not in categories:
            categories.append(finding.category)
    return [category_marker(category) for category in categories]


def markers_in(message: str) -> list[str]:
    """The categories a message's marker lines name, in order, without repeats."""
    found: list[str] = []
    for match in _MARKER_LINE.finditer(message):
        if match.group(1) not in found:
            found.append(match.group(1))
    return found


def _message_regex(category: str) -> str:
    return f".*{re.escape(MARKER_PREFIX)}{re.escape(category)}(?=\\s|$).*"


_UNMARKED_REGEX: Final = f"(?!.*{re.escape(MARKER_PREFIX)}).*"


def allure_categories() -> list[dict[str, Any]]:
    """The content of Allure's `categories.json`: one category per cause, then harness errors."""
    entries: list[dict[str, Any]] = []
    for category, title in TITLES.items():
        entry: dict[str, Any] = {
            "name": title,
            "messageRegex": _message_regex(category),
            "matchedStatuses": ["failed", "broken"],
        }
        if category in _DESCRIPTIONS:
            entry["description"] = _DESCRIPTIONS[category]
        entries.append(entry)
    entries.append({"name": HARNESS_ERROR, "messageRegex": _UNMARKED_REGEX, "matchedStatuses": ["broken"]})
    return entries


def matches(entry: Mapping[str, Any], *, status: str, message: str) -> bool:
    """Whether Allure 2 files a result with `status` and `message` under the categories.json `entry`."""
    statuses: Iterable[str] = entry.get("matchedStatuses") or ()
    if statuses and status not in statuses:
        return False
    pattern = entry.get("messageRegex")
    return pattern is None or re.fullmatch(pattern, message, flags=re.DOTALL) is not None
