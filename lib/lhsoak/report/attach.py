"""What the pytest plugin puts into Allure while the soak runs: phases as steps, proofs and pictures.

Every call is a no-op when Allure is not recording (pytest ran without `--alluredir`: allure-pytest
then registers no listener, so `allure.attach` and `allure.step` reach no hook implementation); the
functions check `active()` first, so a run without Allure renders no picture and writes no file
(`lhsoak report` builds them later from the ledger). Call them from inside a test or its fixtures:
allure-pytest files an attachment under the test or step running at that moment, and
`describe_test` outside a test would find no test to describe.

`Narration` tells a soak's story as it happens (`lhsoak.soak.Narrator`): phases as steps, each node's
reboot proof inside that node's step, a failed step's evidence inside its tick check. `QuietFixtures`
keeps the pytest fixtures that say nothing (no step, no attachment, passed) out of set-up and tear-down.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import allure
import allure_commons
from allure_commons.types import AttachmentType

from lhsoak import diagnosis, verdict
from lhsoak.report import files
from lhsoak.report.allure_files import Attachment
from lhsoak.timestamps import to_rfc3339

if TYPE_CHECKING:
    from lhsoak import monitor, reboot, soak

__all__ = [
    "Narration",
    "QuietFixtures",
    "active",
    "attach_blocking_state",
    "attach_reboot_proof",
    "attach_run",
    "attach_step",
    "attach_step_failure",
    "attach_text",
    "describe_test",
    "phase",
    "reboot_proof_text",
]

_MIME_TYPES = {kind.mime_type: kind for kind in AttachmentType}
_LEDGER_ATTACH_LIMIT_BYTES = 64 * 1024 * 1024
"""A day's ledger is ~60 MB; past this it stays on disk and the report says where."""


def active() -> bool:
    """Whether allure-pytest is recording (pytest was given `--alluredir`)."""
    return bool(allure_commons.plugin_manager.hook.attach_data.get_hookimpls())


def phase(title: str) -> contextlib.AbstractContextManager[object]:
    """An Allure step around a phase of the soak (`with report.phase("reboot node-1"): ...`)."""
    return allure.step(title)


def describe_test(*, run_id: str, seed: int | None = None, title: str | None = None) -> None:
    """Name the current test and record the run's varying parameters, excluded from its history id.

    Allure's history id hashes the test's full name and its non-excluded parameters; the run id and
    seed change every run, so they are excluded and the trend compares step 2 with step 2.
    """
    if not active():
        return
    if title:
        allure.dynamic.title(title)  # type: ignore[no-untyped-call]
    allure.dynamic.parameter("run id", run_id, excluded=True)
    if seed is not None:
        allure.dynamic.parameter("seed", str(seed), excluded=True)


def _attach_text(text: str, name: str, kind: AttachmentType = AttachmentType.TEXT) -> None:
    allure.attach(text, name=name, attachment_type=kind)


def attach_text(text: str, name: str) -> None:
    """Attach plain text to the step (or test, or fixture) running now."""
    if active():
        _attach_text(text, name)


def _attach_file(attachment: Attachment) -> None:
    kind = _MIME_TYPES.get(attachment.mime, AttachmentType.TEXT)
    allure.attach.file(  # type: ignore[no-untyped-call]
        str(attachment.path),
        name=attachment.name,
        attachment_type=kind,
        extension=attachment.path.suffix.lstrip(".") or kind.extension,
    )


def _clock(epoch_s: float | None) -> str:
    return "-" if epoch_s is None else to_rfc3339(epoch_s)


def reboot_proof_text(proof: reboot.NodeReboot) -> str:
    """What was proven about one node's reboot, phase by phase."""

    def after(epoch_s: float | None) -> str:
        return "" if epoch_s is None else f" (+{epoch_s - proof.started_s:.1f} s)"

    lines = [
        f"node {proof.node}",
        f"reboot issued  {_clock(proof.started_s)}",
        f"went down      {_clock(proof.down_s)}{after(proof.down_s)}",
        f"came up        {_clock(proof.up_s)}{after(proof.up_s)}",
        f"Ready again    {_clock(proof.ready_s)}{after(proof.ready_s)}",
        f"boot id        {proof.old_boot_id or '?'} -> {proof.new_boot_id or '?'}",
        f"result         {'NOT PROVEN: ' + proof.failure if proof.failure else 'proven'}",
    ]
    if proof.seen:
        lines += ["", "seen:", *(f"  {line}" for line in proof.seen)]
    return "\n".join(lines) + "\n"


def _reboot_title(proof: reboot.NodeReboot) -> str:
    if proof.failure:
        return f"reboot of {proof.node} NOT proven: {proof.failure}"
    downtime = f"{proof.downtime_s:.0f} s" if proof.downtime_s is not None else "?"
    return (
        f"reboot of {proof.node} proven: boot id {proof.old_boot_id or '?'} -> "
        f"{proof.new_boot_id or '?'}, Ready after {downtime}"
    )


def _misses_text(misses: Sequence[monitor.Miss]) -> str:
    return "".join(
        f"{miss.job}/{miss.volume} tick {to_rfc3339(miss.tick_s)}: {miss.reason}\n" for miss in misses
    )


def attach_step(
    outcome: soak.StepOutcome,
    *,
    snapshot: diagnosis.ClusterSnapshot | None = None,
    logs: Mapping[str, str] | None = None,
) -> None:
    """Attach a chaos step's proofs: one Allure step per node reboot, the missed ticks, the diagnosis.

    With `snapshot` (the cluster state the diagnosis read) the blocking objects' YAML and events are
    attached too; `logs` maps a title (e.g. a longhorn-manager pod) to its log text.
    """
    if not active():
        return
    for proof in outcome.reboots:
        with allure.step(_reboot_title(proof)):
            attach_reboot_proof(proof)
    attach_step_failure(outcome, snapshot=snapshot, logs=logs)


def attach_reboot_proof(proof: reboot.NodeReboot) -> None:
    """Attach one node's reboot proof (`reboot_proof_text`) to the step running now."""
    if active():
        _attach_text(reboot_proof_text(proof), f"reboot proof: {proof.node}")


def attach_step_failure(
    outcome: soak.StepOutcome,
    *,
    snapshot: diagnosis.ClusterSnapshot | None = None,
    logs: Mapping[str, str] | None = None,
) -> None:
    """Attach why a chaos step failed: its missed ticks (as a step), the diagnosis, the blocking state."""
    if not active():
        return
    if outcome.misses:
        with allure.step(f"{len(outcome.misses)} missed ticks"):
            _attach_text(_misses_text(outcome.misses), "missed ticks")
    if outcome.findings:
        _attach_text(diagnosis.render(outcome.findings), "diagnosis")
        if snapshot is not None:
            attach_blocking_state(outcome.findings, snapshot, logs=logs)


def attach_blocking_state(
    findings: Sequence[diagnosis.Finding],
    snapshot: diagnosis.ClusterSnapshot,
    *,
    logs: Mapping[str, str] | None = None,
) -> None:
    """Attach the findings' objects (CronJob, Job, Pod, Node, Backup ...) as YAML, their events, and
    `logs` (title → text: the longhorn-manager and job pods the findings point at), one attachment
    "logs: <title>" each."""
    if not active():
        return
    refs = [ref for finding in findings for ref in finding.objects]
    unique = list(dict.fromkeys(refs))
    _attach_text(files.blocking_objects_yaml(unique, snapshot), "blocking objects.yaml", AttachmentType.YAML)
    _attach_text(files.events_text(unique, snapshot), "blocking objects events.txt")
    for name, text in sorted((logs or {}).items()):
        _attach_text(text, f"logs: {name}")


def attach_run(
    run_dir: Path,
    result: verdict.Verdict,
    findings: Sequence[diagnosis.Finding] = (),
    *,
    snapshot: diagnosis.ClusterSnapshot | None = None,
    logs: Mapping[str, str] | None = None,
) -> files.RunFiles | None:
    """Build the run's files (`lhsoak.report.files.build`) and attach them to the current test.

    Returns the files, or None when Allure is not recording (nothing is rendered then).
    """
    if not active():
        return None
    built = files.build(run_dir, result=result, findings=findings, snapshot=snapshot, logs=logs)
    for attachment in built.attachments:
        if attachment.name == "ledger.jsonl" and attachment.path.stat().st_size > _LEDGER_ATTACH_LIMIT_BYTES:
            _attach_text(f"the ledger is too large to attach; it is at {attachment.path}\n", "ledger.jsonl")
            continue
        _attach_file(attachment)
    return built


class Narration:
    """A soak's story in Allure as it happens (satisfies `lhsoak.soak.Narrator`)."""

    def phase(self, title: str) -> contextlib.AbstractContextManager[object]:
        return phase(title)

    def evidence(self, text: str, name: str) -> None:
        attach_text(text, name)

    def reboot_proven(self, proof: reboot.NodeReboot) -> None:
        attach_reboot_proof(proof)

    def step_failed(
        self,
        outcome: soak.StepOutcome,
        snapshot: diagnosis.ClusterSnapshot | None,
        logs: Mapping[str, str] | None = None,
    ) -> None:
        attach_step_failure(outcome, snapshot=snapshot, logs=logs)


class QuietFixtures:
    """An allure-commons plugin: set-up and tear-down show only the fixtures that say something.

    allure-pytest reports every fixture a test uses, and every finalizer pytest registers (its own
    `<lambda>`s included), as a set-up or tear-down entry. Entries with no step, no attachment and a
    passed status tell a QA reader nothing and are dropped before the container is written; a failed
    one always stays. `titles` renames what stays: fixture name -> (set-up title, tear-down title).
    Register it with `register()` once allure-pytest is configured, and `unregister()` at the end.
    """

    def __init__(self, titles: Mapping[str, tuple[str, str]] | None = None) -> None:
        self._titles = dict(titles or {})

    def register(self) -> None:
        allure_commons.plugin_manager.register(self)

    def unregister(self) -> None:
        if allure_commons.plugin_manager.is_registered(self):
            allure_commons.plugin_manager.unregister(self)

    # tryfirst: the file writer (allure-pytest's) must see the container as trimmed here.
    @allure_commons.hookimpl(tryfirst=True)
    def report_container(self, container: Any) -> None:
        container.befores = [self._titled(item, setup=True) for item in container.befores if _says(item)]
        container.afters = [self._titled(item, setup=False) for item in container.afters if _says(item)]

    def _titled(self, item: Any, *, setup: bool) -> Any:
        # A finalizer's entry is named "<fixture>::<finalizer>" (allure-pytest's convention).
        fixture = str(item.name).split("::", 1)[0]
        if fixture in self._titles:
            item.name = self._titles[fixture][0 if setup else 1]
        return item


def _says(item: Any) -> bool:
    """Whether a fixture's entry tells something: a step, an attachment, or anything but a pass."""
    return bool(item.steps or item.attachments) or item.status not in (None, "passed")
