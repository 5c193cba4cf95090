"""Files Allure 2 reads from a results directory beside the test results.

- `categories.json`: how failures are sorted by cause (`lhsoak.report.categories`);
- `environment.properties`: the run's setting (Longhorn and Kubernetes versions, nodes, plan,
  schedules, retain, lag bound, profile), shown on the Overview page;
- `executor.json`: the CI build that ran it (name, build URL and order), which the Overview page links
  and the trend chart labels its points with;
- `history/`: the previous report's history, copied in before generation so the trend charts span runs.

`write_result` writes a minimal test result (allure2 model: `<uuid>-result.json` and its attachments)
for a run that had no pytest session, so `lhsoak report` can show any ledger.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from lhsoak import ledger
from lhsoak.report import categories

__all__ = [
    "Attachment",
    "copy_history",
    "environment_from_run",
    "executor_from_environ",
    "properties_text",
    "write_allure_metadata",
    "write_categories",
    "write_executor",
    "write_result",
]

CATEGORIES_FILE = "categories.json"
ENVIRONMENT_FILE = "environment.properties"
EXECUTOR_FILE = "executor.json"
HISTORY_DIR = "history"


def _escape(text: str, *, key: bool) -> str:
    """Java .properties escaping; anything past ASCII as \\uXXXX, so any reader's charset agrees."""
    out = []
    for index, char in enumerate(text):
        if char == "\\":
            out.append("\\\\")
        elif char == "\n":
            out.append("\\n")
        elif char == "\r":
            out.append("\\r")
        elif char == "\t":
            out.append("\\t")
        elif char in "=:#!" or (char == " " and (key or index == 0)):
            out.append("\\" + char)
        elif ord(char) > 0x7E or ord(char) < 0x20:
            out.append("".join(f"\\u{unit:04x}" for unit in _utf16_units(char)))
        else:
            out.append(char)
    return "".join(out)


def _utf16_units(char: str) -> list[int]:
    data = char.encode("utf-16-be")
    return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]


def properties_text(env: Mapping[str, str]) -> str:
    """`env` as a Java properties file, keys in the given order."""
    return "".join(f"{_escape(k, key=True)}={_escape(v, key=False)}\n" for k, v in env.items())


def write_allure_metadata(
    alluredir: Path,
    env: Mapping[str, str],
    executor: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Write categories.json, environment.properties and (when given) executor.json into `alluredir`."""
    written = [write_categories(alluredir), alluredir / ENVIRONMENT_FILE]
    written[1].write_bytes(properties_text(env).encode("ascii"))
    if executor is not None:
        written.append(write_executor(alluredir, executor))
    return written


def write_categories(alluredir: Path) -> Path:
    """Write categories.json (`lhsoak.report.categories.allure_categories`) into `alluredir`."""
    alluredir.mkdir(parents=True, exist_ok=True)
    path = alluredir / CATEGORIES_FILE
    path.write_text(json.dumps(categories.allure_categories(), indent=2) + "\n", encoding="utf-8")
    return path


def write_executor(alluredir: Path, executor: Mapping[str, Any]) -> Path:
    """Write executor.json into `alluredir`."""
    alluredir.mkdir(parents=True, exist_ok=True)
    path = alluredir / EXECUTOR_FILE
    path.write_text(json.dumps(dict(executor), indent=2) + "\n", encoding="utf-8")
    return path


def _jobs_text(jobs: Iterable[ledger.Job], attribute: Literal["cron", "retain"]) -> str:
    return ", ".join(f"{job.name}={getattr(job, attribute)}" for job in jobs)


def environment_from_run(run: ledger.Run, **extra: str) -> dict[str, str]:
    """The environment shown for a run: what its run record says, plus `extra` (e.g. versions).

    Versions and the lab profile come from the run record's `target` when the soak put them there
    (`longhorn_version`, `kubernetes_version`, `profile`); `extra` overrides.
    """
    target = run.target
    nodes = target.get("nodes")
    env = {
        "Longhorn": str(target.get("longhorn_version") or "unknown"),
        "Kubernetes": str(target.get("kubernetes_version") or "unknown"),
        "Nodes": str(len(nodes)) if isinstance(nodes, Mapping | list) else "unknown",
        "Plan": str(target.get("plan") or "unknown"),
        "Phase": str(target.get("phase") or "any"),
        "Schedules": _jobs_text(run.jobs, "cron"),
        "Retain": _jobs_text(run.jobs, "retain"),
        "Lag bound (s)": f"{run.lag_bound_s:g}",
        "Settle (s)": f"{run.settle_s:g}",
        "Volumes": str(len(run.volumes)) if run.volumes is not None else "unknown",
        "Profile": str(target.get("profile") or "none"),
        "Context": str(target.get("context") or "unknown"),
    }
    env.update(extra)
    return env


def _github(environ: Mapping[str, str]) -> dict[str, Any] | None:
    if not environ.get("GITHUB_RUN_ID"):
        return None
    server = environ.get("GITHUB_SERVER_URL", "https://github.com")
    build_url = f"{server}/{environ.get('GITHUB_REPOSITORY', '')}/actions/runs/{environ['GITHUB_RUN_ID']}"
    return {
        "name": "GitHub Actions",
        "type": "github",
        "buildName": f"{environ.get('GITHUB_WORKFLOW', 'workflow')} #{environ.get('GITHUB_RUN_NUMBER', '?')}",
        "buildOrder": _int(environ.get("GITHUB_RUN_NUMBER")),
        "buildUrl": build_url,
    }


def _gitlab(environ: Mapping[str, str]) -> dict[str, Any] | None:
    if not environ.get("CI_PIPELINE_ID"):
        return None
    return {
        "name": "GitLab CI",
        "type": "gitlab",
        "buildName": f"{environ.get('CI_PROJECT_PATH', 'pipeline')} #{environ['CI_PIPELINE_ID']}",
        "buildOrder": _int(environ.get("CI_PIPELINE_IID") or environ.get("CI_PIPELINE_ID")),
        "buildUrl": environ.get("CI_PIPELINE_URL") or environ.get("CI_JOB_URL"),
    }


def _jenkins(environ: Mapping[str, str]) -> dict[str, Any] | None:
    if not environ.get("BUILD_URL"):
        return None
    return {
        "name": "Jenkins",
        "type": "jenkins",
        "buildName": environ.get("BUILD_TAG") or environ.get("JOB_NAME") or "build",
        "buildOrder": _int(environ.get("BUILD_NUMBER")),
        "buildUrl": environ["BUILD_URL"],
    }


def _int(text: str | None) -> int | None:
    try:
        return int(text) if text else None
    except ValueError:
        return None


def executor_from_environ(
    environ: Mapping[str, str] = os.environ, *, report_url: str | None = None
) -> dict[str, Any] | None:
    """executor.json for the CI system `environ` shows (GitHub Actions, GitLab CI, Jenkins), or None.

    `LHSOAK_REPORT_URL` (or `report_url`) is where the published report will live; Allure links it.
    """
    for detect in (_github, _gitlab, _jenkins):
        executor = detect(environ)
        if executor is not None:
            url = report_url or environ.get("LHSOAK_REPORT_URL")
            if url:
                executor["reportUrl"] = url
            return {key: value for key, value in executor.items() if value is not None}
    return None


def copy_history(previous_report: Path | None, alluredir: Path) -> bool:
    """Copy `previous_report`/history into `alluredir`/history; False when there is none to copy."""
    if previous_report is None:
        return False
    source = previous_report / HISTORY_DIR
    if not (source / "history.json").is_file():
        return False
    target = alluredir / HISTORY_DIR
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)
    return True


@dataclass(frozen=True)
class Attachment:
    """A file to show under a result: its title, path and MIME type."""

    name: str
    path: Path
    mime: str


def write_result(
    alluredir: Path,
    *,
    name: str,
    full_name: str,
    status: Literal["passed", "failed", "broken"],
    message: str,
    start_s: float,
    stop_s: float,
    attachments: Sequence[Attachment],
    parameters: Mapping[str, str] = {},
) -> Path:
    """One test result (allure2 `*-result.json`) with its attachments copied in; returns its path.

    The history id is the full name only, so the same test of every run lines up in the trends.
    """
    alluredir.mkdir(parents=True, exist_ok=True)
    links = []
    for attachment in attachments:
        source = f"{uuid.uuid4()}-attachment{attachment.path.suffix}"
        shutil.copyfile(attachment.path, alluredir / source)
        links.append({"name": attachment.name, "source": source, "type": attachment.mime})
    result_uuid = str(uuid.uuid4())
    document = {
        "uuid": result_uuid,
        "historyId": uuid.uuid5(uuid.NAMESPACE_URL, f"lhsoak:{full_name}").hex,
        "name": name,
        "fullName": full_name,
        "status": status,
        "statusDetails": {"message": message} if message else {},
        "stage": "finished",
        "start": round(start_s * 1000),
        "stop": round(stop_s * 1000),
        "attachments": links,
        "parameters": [{"name": key, "value": value, "excluded": True} for key, value in parameters.items()],
        "labels": [
            {"name": "suite", "value": "lhsoak report"},
            {"name": "framework", "value": "lhsoak"},
        ],
    }
    path = alluredir / f"{result_uuid}-result.json"
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return path
