"""A lab cluster in-process — store, machines, controllers in the running event loop — for the
lab's own tests and benches (no API server, no SSH). Waits are event-driven with deadlines."""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from lhsoak.lab import apiserver, kinds
from lhsoak.lab.controllers.assembly import LabControllers
from lhsoak.lab.controllers.longhorn_manager import NAMESPACE
from lhsoak.lab.controllers.meta import Obj
from lhsoak.lab.controllers.seed import seed, seed_volume
from lhsoak.lab.machine import MachineEvent, MachineFleet, Role
from lhsoak.lab.profiles import Profile
from lhsoak.lab.store import Store, WatchEvent

T = TypeVar("T")

CRDS = Path(__file__).resolve().parents[5] / "shared" / "longhorn" / "crds-v1.12.1.yaml"
"""The real Longhorn CRDs, next to the repository (absent in some checkouts)."""


@functools.lru_cache(maxsize=2)
def _crds(path: Path) -> dict[kinds.Kind, Obj]:
    return kinds.load_crds(path)


def crd_validator(path: Path | None = CRDS) -> kinds.SchemaValidator | None:
    """A validator for the real Longhorn CRDs, or None when the file is absent."""
    if path is None or not path.exists():
        return None
    return kinds.SchemaValidator.from_crds(_crds(path))


def _store(crd_path: Path | None, clock: Callable[[], float]) -> Store:
    # apiserver.lab_store, with the CRD file parsed once per process.
    loaded = _crds(crd_path) if crd_path is not None and crd_path.exists() else {}
    validator = kinds.SchemaValidator.from_crds(loaded) if loaded else None
    store = Store(clock=clock, validator=validator)
    for namespace in apiserver.SYSTEM_NAMESPACES:
        store.create(kinds.NAMESPACE, {"metadata": {"name": namespace}})
    apiserver.install_crds(store, kinds.crds_for(kinds.LONGHORN, loaded))
    return store


class InProcessLab:
    """`async with InProcessLab(profile) as lab:` a seeded cluster with running controllers."""

    def __init__(
        self,
        profile: Profile,
        *,
        workers: int = 3,
        control_planes: int = 1,
        crd_path: Path | None = CRDS,
        clock: Callable[[], float] = time.time,
        settings: Mapping[str, str] | None = None,
    ) -> None:
        self.profile = profile
        self.clock = clock
        self.store = _store(crd_path, clock)
        roles: dict[str, Role] = {f"control-plane-{i + 1}": "control-plane" for i in range(control_planes)}
        roles.update({f"worker-{i + 1}": "worker" for i in range(workers)})
        self.fleet = MachineFleet.build(
            roles, timings=profile.machine_timings(), seed=profile.seed, clock=clock
        )
        seed(self.store, self.fleet, profile, clock=clock, settings=settings)
        self.controllers = LabControllers(self.store, self.fleet, profile, clock=clock)

    async def __aenter__(self) -> InProcessLab:
        self.controllers.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.controllers.stop()
        for machine in self.fleet:
            machine.power_off()
        await asyncio.sleep(0)

    # -- objects --

    def volume(self, name: str, *, labels: Mapping[str, str] | None = None, node: str = "") -> Obj:
        """Create a Longhorn Volume."""
        return seed_volume(self.store, name, labels=labels, node=node)

    def recurring_job(
        self,
        name: str,
        *,
        task: str,
        cron: str,
        retain: int = 2,
        groups: Iterable[str] = ("default",),
        concurrency: int = 2,
        labels: Mapping[str, str] | None = None,
    ) -> Obj:
        """Create a RecurringJob in longhorn-system."""
        return self.store.create(
            kinds.LH_RECURRING_JOB,
            {
                "apiVersion": kinds.LH_RECURRING_JOB.api_version,
                "kind": kinds.LH_RECURRING_JOB.kind,
                "metadata": {"name": name, "namespace": NAMESPACE},
                "spec": {
                    "name": name,
                    "task": task,
                    "cron": cron,
                    "retain": retain,
                    "groups": list(groups),
                    "concurrency": concurrency,
                    "labels": dict(labels or {}),
                },
            },
        )

    def cronjob(
        self,
        name: str,
        *,
        schedule: str,
        command: Iterable[str],
        concurrency_policy: str = "Forbid",
        restart_policy: str = "OnFailure",
        backoff_limit: int = 3,
        history: tuple[int, int] = (1, 1),
        namespace: str = "default",
    ) -> Obj:
        """Create a plain CronJob whose one container runs `command` (see assembly's built-ins)."""
        return self.store.create(
            kinds.CRONJOB,
            {
                "apiVersion": kinds.CRONJOB.api_version,
                "kind": kinds.CRONJOB.kind,
                "metadata": {"name": name, "namespace": namespace},
                "spec": {
                    "schedule": schedule,
                    "concurrencyPolicy": concurrency_policy,
                    "successfulJobsHistoryLimit": history[0],
                    "failedJobsHistoryLimit": history[1],
                    "jobTemplate": {
                        "spec": {
                            "backoffLimit": backoff_limit,
                            "template": {
                                "metadata": {"labels": {"app": name}},
                                "spec": {
                                    "restartPolicy": restart_policy,
                                    "containers": [
                                        {"name": "main", "image": "busybox:1.36", "command": list(command)}
                                    ],
                                },
                            },
                        }
                    },
                },
            },
        )

    def items(
        self, kind: kinds.Kind, *, namespace: str | None = NAMESPACE, label_selector: str | None = None
    ) -> list[Obj]:
        """Current objects of a kind (namespaced kinds: longhorn-system by default)."""
        items, _ = self.store.list(
            kind, namespace=namespace if kind.namespaced else None, label_selector=label_selector
        )
        return items

    def events(self, reason: str, *, involved: str | None = None) -> list[Obj]:
        """Events with this reason (about the object named `involved`), in every namespace."""
        items, _ = self.store.list(kinds.EVENT)
        return [
            e
            for e in items
            if e.get("reason") == reason and (involved is None or e["involvedObject"].get("name") == involved)
        ]

    def event_count(self, reason: str, *, involved: str | None = None) -> int:
        """Sum of `count` over matching events (repeats are aggregated into one Event)."""
        return sum(int(e.get("count", 1)) for e in self.events(reason, involved=involved))

    # -- waiting --

    async def wait(
        self,
        check: Callable[[], T | None],
        *,
        timeout_s: float,
        what: str,
        seen: Callable[[], Any] | None = None,
    ) -> T:
        """The first truthy `check()`, re-evaluated after every store change and machine event.

        TimeoutError after `timeout_s` names what was awaited and what `seen()` showed last.
        """
        loop = asyncio.get_running_loop()
        result: asyncio.Future[T] = loop.create_future()
        scheduled = False

        def evaluate() -> None:
            nonlocal scheduled
            scheduled = False
            if result.done():
                return
            value = check()
            if value:
                result.set_result(value)

        def poke(_event: WatchEvent | MachineEvent) -> None:
            nonlocal scheduled
            if not scheduled:
                scheduled = True
                loop.call_soon(evaluate)

        unsubscribe_store = self.store.listen(poke)
        unsubscribe_fleet = self.fleet.subscribe(poke)
        try:
            evaluate()
            async with asyncio.timeout(timeout_s):
                return await result
        except TimeoutError:
            last = seen() if seen is not None else check()
            raise TimeoutError(f"waited {timeout_s}s for {what}; last seen: {last!r}") from None
        finally:
            unsubscribe_store()
            unsubscribe_fleet()
