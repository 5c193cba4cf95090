"""The QA report: Allure attachments, categories and metadata, pictures, tables and plain-text summaries.

What the pytest plugin calls (`from lhsoak import report`):

- `report.describe_test(run_id=..., seed=..., title=...)`, `report.phase(title)` — test names and
  phases as Allure steps; varying parameters excluded from history ids;
- `report.Narration()` — told by the soak as it goes (`soak.Narrator`): each phase as an Allure step
  opened when it starts, each node's reboot proof inside its node's step, a failed step's misses,
  diagnosis and blocking objects; `report.QuietFixtures(titles)` keeps only the set-up and tear-down
  entries a QA reader needs; `report.attach_step(outcome, snapshot=...)` — the same evidence after
  the fact, for a step that ran without a narrator;
- `report.attach_run(run_dir, verdict, findings, snapshot=...)` — timeline and lag pictures, the per-tick
  table, summary, diagnosis notes, verdict and ledger;
- `report.write_allure_metadata(alluredir, env, executor)` — categories.json, environment.properties,
  executor.json;
- `report.category_marker(category)` / `report.finding_markers(findings)` — the lines that file a failure
  under its cause; `report.failure_text(verdict, findings, ledger)`, `report.step_failure_text(what,
  findings=..., reboots=...)` — short failure messages carrying them; `report.summary_text(verdict,
  ledger)` — the per-job tables for the end of the run.

`lhsoak report RUN_DIR --html` (lhsoak.commands.report) builds the same files and the HTML report.
"""

from __future__ import annotations

from lhsoak.report.allure_files import (
    environment_from_run,
    executor_from_environ,
    write_allure_metadata,
)
from lhsoak.report.attach import (
    Narration,
    QuietFixtures,
    active,
    attach_blocking_state,
    attach_run,
    attach_step,
    describe_test,
    phase,
)
from lhsoak.report.categories import category_marker, finding_markers, markers_in
from lhsoak.report.summary import failure_text, headline, step_failure_text, summary_text

__all__ = [
    "Narration",
    "QuietFixtures",
    "active",
    "attach_blocking_state",
    "attach_run",
    "attach_step",
    "category_marker",
    "describe_test",
    "environment_from_run",
    "executor_from_environ",
    "failure_text",
    "finding_markers",
    "headline",
    "markers_in",
    "phase",
    "step_failure_text",
    "summary_text",
    "write_allure_metadata",
]
