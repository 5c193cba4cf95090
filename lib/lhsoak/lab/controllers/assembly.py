"""The lab cluster's brains, assembled: every controller wired to one store and one fleet.

Control plane (paused while it is down, caught up when it is back): the CronJob, Job, scheduler,
node lifecycle, DaemonSet (longhorn-manager's and longhorn-csi-plugin's pods), Deployment (with its
ReplicaSets: the CSI sidecars, driver deployer and UI), persistent volume and attach-detach
controllers of kube-controller-manager/kube-scheduler, Longhorn's CSI provisioner, and
longhorn-manager's recurring-job, volume, snapshot and backup controllers (they run on the workers
upstream, but see nothing without the API). Node side: one kubelet per machine, which keeps running
its pods while the API is down and queues what it reports (see link.py).

With `follow_control_plane` the assembly watches the control-plane machines itself: the API goes
down when one stops its kubelet and comes back when all run theirs again; `on_api_change(up)` lets
the API server follow (part 1's outage switch).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from lhsoak.lab import kinds
from lhsoak.lab.controllers import daemonset, deployment, recurring_task
from lhsoak.lab.controllers.attach_detach import AttachDetach
from lhsoak.lab.controllers.backups import Backups
from lhsoak.lab.controllers.cronjob import CronJobController
from lhsoak.lab.controllers.csi import PROVISIONER_COMPONENT, LonghornCsi
from lhsoak.lab.controllers.events import EventRecorder
from lhsoak.lab.controllers.job import JobController
from lhsoak.lab.controllers.kubelet import Kubelet
from lhsoak.lab.controllers.link import ApiLink
from lhsoak.lab.controllers.longhorn_manager import LonghornManager
from lhsoak.lab.controllers.longhorn_volumes import LonghornVolumes
from lhsoak.lab.controllers.meta import Obj
from lhsoak.lab.controllers.nodelifecycle import NodeLifecycle
from lhsoak.lab.controllers.persistent_volumes import PersistentVolumeController
from lhsoak.lab.controllers.reconciler import Context, Reconciler
from lhsoak.lab.controllers.scheduler import Scheduler
from lhsoak.lab.controllers.waits import ObjectWaits
from lhsoak.lab.machine import MachineEvent, MachineFleet
from lhsoak.lab.profiles import Profile
from lhsoak.lab.store import Store, WatchEvent

logger = logging.getLogger(__name__)


class LabControllers:
    """Every controller of one lab cluster; start() from inside the lab's event loop."""

    def __init__(
        self,
        store: Store,
        fleet: MachineFleet,
        profile: Profile,
        *,
        clock: Callable[[], float] = time.time,
        follow_control_plane: bool = True,
        on_api_change: Callable[[bool], None] | None = None,
    ) -> None:
        self.store = store
        self.fleet = fleet
        self.profile = profile
        self.clock = clock
        self.link = ApiLink()
        self.waits = ObjectWaits(store)
        self._follow_control_plane = follow_control_plane
        self._on_api_change = on_api_change
        self._unsubscribers: list[Callable[[], None]] = []
        self._started = False
        ctx = Context(
            store=store,
            profile=profile,
            fleet=fleet,
            link=self.link,
            clock=clock,
            rng=profile.rng("controllers"),
        )
        self.task_env = recurring_task.TaskEnv(
            store=store,
            link=self.link,
            waits=self.waits,
            profile=profile,
            clock=clock,
            rng=profile.rng("recurring-task"),
        )
        self.longhorn_manager = LonghornManager(ctx)
        self.cronjobs = CronJobController(ctx, self._recorder("cronjob-controller"))
        self.jobs = JobController(ctx, self._recorder("job-controller"))
        self.scheduler = Scheduler(ctx, self._recorder("default-scheduler"))
        self.node_lifecycle = NodeLifecycle(
            ctx, self._recorder("node-controller"), self._recorder("taint-eviction-controller")
        )
        self.daemonsets = daemonset.DaemonSetController(ctx, self._recorder(daemonset.COMPONENT))
        self.csi_plugin_daemonset = daemonset.DaemonSetController(
            ctx, self._recorder(daemonset.COMPONENT), daemon=daemonset.LONGHORN_CSI_PLUGIN
        )
        self.deployments = deployment.DeploymentController(
            ctx, self._recorder(deployment.COMPONENT), self._recorder(deployment.REPLICASET_COMPONENT)
        )
        self.volumes = LonghornVolumes(ctx)
        self.backups = Backups(ctx, self._recorder("longhorn-backup-controller"))
        self.persistent_volumes = PersistentVolumeController(
            ctx, self._recorder("persistentvolume-controller")
        )
        self.csi = LonghornCsi(ctx, self._recorder(PROVISIONER_COMPONENT))
        self.attach_detach = AttachDetach(ctx, self._recorder("attachdetach-controller"))
        self.control_plane: list[Reconciler] = [
            self.longhorn_manager,
            self.cronjobs,
            self.jobs,
            self.scheduler,
            self.node_lifecycle,
            self.daemonsets,
            self.csi_plugin_daemonset,
            self.deployments,
            self.volumes,
            self.backups,
            self.persistent_volumes,
            self.csi,
            self.attach_detach,
        ]
        self.kubelets = {m.name: Kubelet(ctx, m, self._run_container) for m in fleet}

    # -- lifecycle --

    def start(self) -> None:
        """Start every controller (each first reconciles what exists) and begin following events.

        Call from inside the lab's event loop.
        """
        if self._started:
            return
        self._started = True
        self._unsubscribers.append(self.store.listen(self._dispatch))
        if self._follow_control_plane:
            self._unsubscribers.append(self.fleet.subscribe(self._on_machine))
        api_up = self._control_plane_running()
        self.link.set_up(api_up)
        for kubelet in self.kubelets.values():
            kubelet.start()
        if api_up:
            for controller in self.control_plane:
                controller.start()

    def pause(self) -> None:
        """The control plane went down: the API is unreachable and its controllers stop."""
        if not self.link.up:
            return
        logger.info("control plane down: pausing controllers")
        self.link.set_up(False)
        if self._on_api_change is not None:
            self._on_api_change(False)
        for controller in self.control_plane:
            controller.pause()

    def resume(self) -> None:
        """The control plane is back: queued kubelet writes land, controllers catch up."""
        if self.link.up:
            return
        logger.info("control plane up: resuming controllers")
        if self._on_api_change is not None:
            self._on_api_change(True)
        self.link.set_up(True)
        for controller in self.control_plane:
            controller.resume()

    def stop(self) -> None:
        """Stop everything: listeners, timers and the job pods' tasks."""
        for unsubscribe in self._unsubscribers:
            unsubscribe()
        self._unsubscribers.clear()
        for controller in [*self.control_plane, *self.kubelets.values()]:
            controller.stop()
        self._started = False

    @property
    def paused(self) -> bool:
        """True while the control plane is down."""
        return not self.link.up

    # -- wiring --

    def _recorder(self, component: str) -> EventRecorder:
        return EventRecorder(self.store, component=component, profile=self.profile, clock=self.clock)

    def _dispatch(self, event: WatchEvent) -> None:
        self.waits.observe(event)
        for controller in self.control_plane:
            if controller.running and event.kind in controller.kinds:
                controller.observe(event)
        if event.kind == kinds.POD:
            for kubelet in self.kubelets.values():
                if kubelet.running:
                    kubelet.observe(event)

    def _on_machine(self, event: MachineEvent) -> None:
        if event.role != "control-plane":
            return
        if event.kind == "kubelet-stopped":
            self.pause()
        elif event.kind == "kubelet-started" and self._control_plane_running():
            self.resume()

    def _control_plane_running(self) -> bool:
        planes = [m for m in self.fleet if m.role == "control-plane"]
        return all(m.kubelet_active for m in planes)

    async def _run_container(self, pod: Obj) -> int:
        containers = (pod.get("spec") or {}).get("containers") or [{}]
        command = [str(part) for part in containers[0].get("command") or ()]
        if command[:1] == ["longhorn-manager"] and "recurring-job" in command:
            index = command.index("recurring-job") + 1
            if index < len(command):
                namespace = str(pod["metadata"].get("namespace") or "")
                return await recurring_task.run(self.task_env, command[index], namespace)
        return await _builtin_command(command)


async def _builtin_command(command: list[str]) -> int:
    """A few shell commands, for pods other than Longhorn's: `true`, `false`, `sleep <s>`,
    `exit <code>`; anything else runs until its pod is killed."""
    program = command[0].rsplit("/", 1)[-1] if command else ""
    argument = command[1] if len(command) > 1 else ""
    if program == "true":
        return 0
    if program == "false":
        return 1
    if program == "exit" and argument.isdigit():
        return int(argument)
    if program == "sleep" and argument != "infinity":
        try:
            await asyncio.sleep(float(argument))
        except ValueError:
            return 1
        return 0
    await asyncio.Event().wait()
    return 0
