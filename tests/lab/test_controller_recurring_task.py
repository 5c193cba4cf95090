"""The job pod's task, as `longhorn-manager recurring-job`: volume selection, snapshots, backups,
retention, executionCount — and every Longhorn object the lab writes fits the real CRDs."""

from __future__ import annotations

import asyncio

import pytest

from lhsoak.lab import kinds, profiles
from lhsoak.lab.controllers.meta import Obj
from lhsoak.lab.controllers.testing import CRDS, InProcessLab, crd_validator
from lhsoak.lab.store import WatchEvent

DEADLINE_S = 15.0
EVERY_SECOND = "* * * * * *"


def of_job(objects: list[Obj], job: str, *, in_status: bool = False) -> list[Obj]:
    part = "status" if in_status else "spec"
    return [o for o in objects if ((o.get(part) or {}).get("labels") or {}).get("RecurringJob") == job]


def snapshots(lab: InProcessLab, job: str, volume: str | None = None) -> list[Obj]:
    found = of_job(lab.items(kinds.LH_SNAPSHOT), job)
    return [s for s in found if volume is None or s["spec"]["volume"] == volume]


def execution_count(lab: InProcessLab, job: str) -> int:
    rj = lab.store.get(kinds.LH_RECURRING_JOB, job, namespace="longhorn-system")
    return int((rj.get("status") or {}).get("executionCount", 0))


def test_volumes_are_selected_by_job_label_group_label_or_the_default_group() -> None:
    async def scenario() -> None:
        async with InProcessLab(profiles.get("healthy")) as lab:
            lab.volume("plain")
            lab.volume("picked", labels={"recurring-job.longhorn.io/only": "enabled"})
            lab.volume("golden", labels={"recurring-job-group.longhorn.io/gold": "enabled"})
            lab.recurring_job("dflt", task="snapshot", cron=EVERY_SECOND, groups=["default"])
            lab.recurring_job("only", task="snapshot", cron=EVERY_SECOND, groups=[])
            lab.recurring_job("gold", task="snapshot", cron=EVERY_SECOND, groups=["gold"])
            await lab.wait(
                lambda: all(snapshots(lab, job) for job in ("dflt", "only", "gold")),
                timeout_s=DEADLINE_S,
                what="a snapshot from each job",
            )
            assert {s["spec"]["volume"] for s in snapshots(lab, "dflt")} == {"plain"}
            assert {s["spec"]["volume"] for s in snapshots(lab, "only")} == {"picked"}
            assert {s["spec"]["volume"] for s in snapshots(lab, "gold")} == {"golden"}
            plain = lab.store.get(kinds.LH_VOLUME, "plain", namespace="longhorn-system")
            assert plain["metadata"]["labels"] == {"recurring-job-group.longhorn.io/default": "enabled"}
            picked = lab.store.get(kinds.LH_VOLUME, "picked", namespace="longhorn-system")
            assert "recurring-job-group.longhorn.io/default" not in picked["metadata"]["labels"]

    asyncio.run(scenario())


def test_snapshot_job_keeps_retain_snapshots_per_volume_and_counts_executions() -> None:
    async def scenario() -> None:
        async with InProcessLab(profiles.get("healthy")) as lab:
            lab.volume("vol-a")
            lab.volume("vol-b")
            lab.recurring_job("snap", task="snapshot", cron=EVERY_SECOND, retain=2)
            await lab.wait(
                lambda: (
                    execution_count(lab, "snap") >= 4
                    and not [p for p in lab.items(kinds.POD) if p["status"].get("phase") != "Succeeded"]
                ),
                timeout_s=DEADLINE_S,
                what="four runs of snap, none running",
                seen=lambda: execution_count(lab, "snap"),
            )
            for volume in ("vol-a", "vol-b"):
                kept = snapshots(lab, "snap", volume)
                assert len(kept) == 2, f"retain 2 on {volume}"
                for snapshot in kept:
                    assert snapshot["metadata"]["name"].startswith("snap-")
                    assert snapshot["spec"]["createSnapshot"] is True
                    status = snapshot["status"]
                    assert status["readyToUse"] is True
                    assert status["creationTime"]
                    assert status["labels"] == {"RecurringJob": "snap"}
            created = lab.event_count("SuccessfulCreate", involved="snap")
            assert execution_count(lab, "snap") == created, "one execution per job, none failed"

    asyncio.run(scenario())


def test_backup_goes_new_pending_inprogress_completed_and_old_ones_are_deleted() -> None:
    async def scenario() -> None:
        async with InProcessLab(profiles.get("healthy")) as lab:
            states: dict[str, list[str]] = {}

            def record(event: WatchEvent) -> None:
                if event.kind == kinds.LH_BACKUP and event.type != "DELETED":
                    seen = states.setdefault(event.object["metadata"]["name"], [])
                    state = (event.object.get("status") or {}).get("state", "")
                    if not seen or seen[-1] != state:
                        seen.append(state)

            lab.store.listen(record)
            lab.volume("vol-a")
            lab.recurring_job("bak", task="backup", cron=EVERY_SECOND, retain=2)
            await lab.wait(
                lambda: sum(1 for s in states.values() if s[-1] == "Completed") >= 4,
                timeout_s=DEADLINE_S,
                what="four completed backups",
                seen=lambda: states,
            )
            finished = [s for s in states.values() if s[-1] == "Completed"]
            assert all(s == ["", "New", "Pending", "InProgress", "Completed"] for s in finished)
            await lab.wait(
                lambda: len(lab.items(kinds.LH_BACKUP)) <= 3,
                timeout_s=DEADLINE_S,
                what="old backups cleaned up to retain (2) plus the one in progress",
            )
            completed = [b for b in lab.items(kinds.LH_BACKUP) if b["status"].get("state") == "Completed"]
            assert 1 <= len(completed) <= 2
            for backup in completed:
                assert backup["metadata"]["labels"] == {"backup-volume": "vol-a", "backup-target": "default"}
                status = backup["status"]
                assert status["labels"] == {"RecurringJob": "bak"}
                assert (status["volumeName"], status["progress"]) == ("vol-a", 100)
                assert status["snapshotName"].startswith("bak-")
                assert status["backupCreatedAt"]
            volume = lab.store.get(kinds.LH_VOLUME, "vol-a", namespace="longhorn-system")
            assert volume["status"]["lastBackup"] in {
                b["metadata"]["name"] for b in lab.items(kinds.LH_BACKUP)
            } | set(states)
            assert len(snapshots(lab, "bak")) <= 2, (
                "only the latest backup's snapshot (and one in flight) stay"
            )

    asyncio.run(scenario())


@pytest.mark.skipif(not CRDS.exists(), reason=f"Longhorn CRDs not found at {CRDS}")
def test_every_longhorn_object_the_lab_writes_fits_the_real_crds_without_pruning() -> None:
    validator = crd_validator()
    assert validator is not None

    async def scenario() -> None:
        async with InProcessLab(profiles.get("healthy")) as lab:
            written: list[tuple[kinds.Kind, Obj]] = []
            lab.store.listen(
                lambda e: (
                    written.append((e.kind, e.object))
                    if e.kind in kinds.LONGHORN and e.type != "DELETED"
                    else None
                )
            )
            lab.volume("vol-a")
            lab.recurring_job("snap", task="snapshot", cron=EVERY_SECOND)
            lab.recurring_job("bak", task="backup", cron=EVERY_SECOND)
            await lab.wait(
                lambda: any(b["status"].get("state") == "Completed" for b in lab.items(kinds.LH_BACKUP)),
                timeout_s=DEADLINE_S,
                what="a completed backup",
            )
            seeded = [(k, o) for k in kinds.LONGHORN for o in lab.items(k)]
            for kind, obj in [*seeded, *written]:
                check = validator.check(kind, obj)
                assert (check.errors, check.unknown_fields) == ([], []), (
                    f"{kind.kind} {obj['metadata']['name']}"
                )
            assert {k.kind for k, _ in written} >= {"Volume", "RecurringJob", "Snapshot", "Backup"}

    asyncio.run(scenario())


def test_a_volumes_snapshots_are_owned_by_it_and_go_with_it() -> None:
    """Longhorn's snapshot webhook makes the volume each Snapshot's owner, so a soak that deletes its
    volumes leaves no Snapshot behind."""

    async def scenario() -> None:
        async with InProcessLab(profiles.get("healthy")) as lab:
            volume = lab.volume("vol-a")
            lab.recurring_job("snap", task="snapshot", cron=EVERY_SECOND, retain=2)
            await lab.wait(
                lambda: any(s["metadata"].get("ownerReferences") for s in snapshots(lab, "snap")),
                timeout_s=DEADLINE_S,
                what="a snapshot of vol-a owned by its volume",
            )
            owned = next(s for s in snapshots(lab, "snap") if s["metadata"].get("ownerReferences"))
            (owner,) = owned["metadata"]["ownerReferences"]
            assert (owner["kind"], owner["name"], owner["uid"]) == (
                "Volume",
                "vol-a",
                volume["metadata"]["uid"],
            )
            lab.store.delete(kinds.LH_RECURRING_JOB, "snap", namespace="longhorn-system")
            # A job pod still running could take one more snapshot after the volume is gone.
            await lab.wait(
                lambda: not lab.items(kinds.POD),
                timeout_s=DEADLINE_S,
                what="snap's job pods deleted with it",
                seen=lambda: [p["metadata"]["name"] for p in lab.items(kinds.POD)],
            )
            lab.store.delete(kinds.LH_VOLUME, "vol-a", namespace="longhorn-system")
            await lab.wait(
                lambda: not lab.items(kinds.LH_SNAPSHOT),
                timeout_s=DEADLINE_S,
                what="vol-a's snapshots deleted with it",
                seen=lambda: [s["metadata"]["name"] for s in lab.items(kinds.LH_SNAPSHOT)],
            )

    asyncio.run(scenario())
