"""The kubelet of one machine: runs the pods bound to its node and posts its node's status.

Pods: admitted, then after `pod_start_s` Running with one running container per pod (the lab's job
pods have one); the container's process is given by a `ContainerRunner` (for Longhorn job pods:
the recurring task). Exit 0: Succeeded. Non-zero with restartPolicy OnFailure/Always: the container
restarts after a back-off doubling from `crash_backoff_s` (CrashLoopBackOff, event BackOff),
`restartCount` grows and the pod stays Running; with Never the pod fails.

Node loss, by the profile's `lost_pod_fate`:

- "replaced" (the fixed behaviour): at shutdown the kubelet fails its pods (graceful node shutdown:
  phase Failed, reason Terminated, condition DisruptionTarget) so the Job controller replaces them.
  If the API was unreachable then (a control-plane outage), the pods are still Running in the API
  when the node comes back; the kubelet finds their containers gone and restarts them (restartCount
  +1, lastState terminated with exit code 255, reason Unknown), as a real kubelet does.
- "stuck-pending" (kubernetes#118321, longhorn#7956): no graceful shutdown; after boot the kubelet
  admits the job pods (restartPolicy OnFailure or Never) already bound to its node again but never
  starts them: they show Pending with `spec.nodeName` set, container waiting in ContainerCreating,
  forever. Pods with restartPolicy Always (longhorn-manager's) are not among those the issues
  report: they restart as under "replaced".

The node's status (Ready, bootID) is written when the kubelet starts; heartbeats are implicit (the
node lifecycle controller reads the machine's kubelet state instead of Lease renewals). Every write
goes through the ApiLink: deferred while the API is down, lost if the kubelet dies first.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from lhsoak.lab import kinds, logs
from lhsoak.lab.controllers.events import EventRecorder, EventType
from lhsoak.lab.controllers.meta import Key, Obj, key_of, object_ref, rfc3339, set_condition, uid_of
from lhsoak.lab.controllers.reconciler import Context, Reconciler
from lhsoak.lab.machine import Machine, MachineEvent
from lhsoak.lab.store import NotFound, WatchEvent

logger = logging.getLogger(__name__)

ContainerRunner = Callable[[Obj], Awaitable[int]]
"""Runs the container of a pod (given the pod as bound) and returns its exit code."""

SHUTDOWN_MESSAGE = "Pod was terminated in response to imminent node shutdown."
EXIT_UNKNOWN = 255
EXIT_KILLED = 137


@dataclass
class _Run:
    """One pod's containers as the container runtime of this node knows them."""

    key: Key
    uid: str
    task: asyncio.Task[None] | None = None
    stuck: bool = False


class Kubelet(Reconciler):
    """The kubelet of `machine`; active while the machine's kubelet is."""

    name = "kubelet"
    kinds = (kinds.POD,)

    def __init__(self, ctx: Context, machine: Machine, runner: ContainerRunner) -> None:
        super().__init__(ctx)
        self.machine = machine
        self.node_name = machine.name
        self.writer = f"kubelet:{machine.name}"
        self.recorder = EventRecorder(
            ctx.store,
            component="kubelet",
            host=machine.name,
            profile=ctx.profile,
            clock=ctx.clock,
            link=ctx.link,
        )
        self._runner = runner
        self._logs = logs.of(ctx.store, clock=ctx.clock)
        self._runs: dict[str, _Run] = {}
        self._preexisting: set[str] | None = None
        self._pod_ip_seq = 0
        self._unsubscribe: Callable[[], None] | None = None

    # -- lifecycle --

    def start(self) -> None:
        if self._unsubscribe is None:
            self._unsubscribe = self.machine.subscribe(self._on_machine)
            self.ctx.link.on_up(self._on_api_up)
        self._logs.set_node_reachable(self.node_name, self.machine.kubelet_active)
        if self.machine.kubelet_active:
            self._activate(registering=False)

    def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        self._kill_all()
        super().stop()

    def _activate(self, *, registering: bool) -> None:
        self._running = True
        if registering:
            self.ctx.link.write(self.writer, "node-status", self._post_node_status)
        if self.ctx.link.up:
            self._sync_pods()

    def _on_machine(self, event: MachineEvent) -> None:
        if event.kind == "shutdown-started" and self.ctx.profile.lost_pod_fate == "replaced":
            self._graceful_shutdown()
        elif event.kind == "kubelet-stopped":
            # The API server reaches container logs through the kubelet (port 10250): not now.
            self._logs.set_node_reachable(self.node_name, False)
            self._kill_all()
            self.ctx.link.drop(self.writer)
            self.ctx.link.drop(self.recorder.writer)
            self._preexisting = None
            self.pause()
        elif event.kind == "kubelet-started":
            self._logs.set_node_reachable(self.node_name, True)
            self._activate(registering=True)

    def _on_api_up(self) -> None:
        if self.machine.kubelet_active and self._running:
            self._sync_pods()

    def _sync_pods(self) -> None:
        pods = self._bound_pods()
        if self._preexisting is None:
            # What was bound here before this kubelet (re)started: pods of a previous boot.
            self._preexisting = {uid_of(p) for p in pods if not _terminal(p)}
        for pod in pods:
            self.enqueue(key_of(pod))

    # -- pods --

    def observe(self, event: WatchEvent) -> None:
        pod = event.object
        if (pod.get("spec") or {}).get("nodeName") != self.node_name:
            return
        if event.type == "DELETED":
            self._kill(uid_of(pod))
        elif self.ctx.link.up:
            self.enqueue(key_of(pod))

    def all_keys(self) -> Iterable[Key]:
        return ()

    def reconcile(self, key: Key) -> float | None:
        if not self.ctx.link.up or not self.machine.kubelet_active:
            return None
        namespace, name = key
        try:
            pod = self.ctx.store.get(kinds.POD, name, namespace=namespace)
        except NotFound:
            return None
        uid = uid_of(pod)
        if (pod.get("spec") or {}).get("nodeName") != self.node_name or uid in self._runs:
            return None
        if _terminal(pod):
            return None
        run = self._runs[uid] = _Run(key=key, uid=uid)
        from_previous_boot = uid in (self._preexisting or set())
        if (
            from_previous_boot
            and self.ctx.profile.lost_pod_fate == "stuck-pending"
            and _restart_policy(pod) != "Always"
        ):
            run.stuck = True
            self._write_status(pod, _stuck_pending_status(pod, self.ctx.clock()))
            return None
        restart_count, last_state = _previous_container(pod)
        if from_previous_boot and last_state is not None:
            restart_count += 1
        run.task = self.ctx.loop.create_task(
            self._lifecycle(pod, restart_count, last_state), name=f"pod {namespace}/{name}"
        )
        return None

    async def _lifecycle(self, pod: Obj, restart_count: int, last_state: Obj | None) -> None:
        profile = self.ctx.profile
        pod_ip = self._next_pod_ip()
        await asyncio.sleep(self.ctx.jittered(profile.pod_start_s))
        start_s = self.ctx.clock()
        container = _container_name(pod)
        if restart_count == 0:
            image = _container_image(pod)
            self._event(pod, "Normal", "Pulled", f'Container image "{image}" already present on machine')
        self._event(pod, "Normal", "Created", f"Created container: {container}")
        self._event(pod, "Normal", "Started", f"Started container {container}")
        self._write_status(pod, self._running_status(pod, pod_ip, start_s, restart_count, last_state))
        while True:
            container_id = _container_id(pod, restart_count)
            exit_code = await self._run_process(pod, container, container_id)
            finished_s = self.ctx.clock()
            terminated = _terminated(exit_code, start_s, finished_s, container_id=container_id)
            restart_policy = _restart_policy(pod)
            if exit_code == 0 and restart_policy != "Always":
                self._write_status(
                    pod, self._finished_status(pod, pod_ip, "Succeeded", terminated, restart_count)
                )
                return
            if restart_policy == "Never":
                self._write_status(
                    pod, self._finished_status(pod, pod_ip, "Failed", terminated, restart_count)
                )
                return
            backoff_s = min(profile.crash_backoff_s * 2**restart_count, profile.crash_backoff_max_s)
            self._event(
                pod,
                "Warning",
                "BackOff",
                f"Back-off restarting failed container {container} in pod {_pod_ref(pod)}",
            )
            self._write_status(pod, self._crashloop_status(pod, pod_ip, terminated, restart_count, backoff_s))
            await asyncio.sleep(backoff_s)
            restart_count += 1
            last_state = {"terminated": terminated}
            start_s = self.ctx.clock()
            self._event(pod, "Normal", "Started", f"Started container {container}")
            self._write_status(pod, self._running_status(pod, pod_ip, start_s, restart_count, last_state))

    async def _run_process(self, pod: Obj, container: str, container_id: str) -> int:
        """Run the container's process with its stdout connected to the run's log."""
        output = self._logs.started(pod, container, container_id=container_id)
        token = logs.stdout.set(output)
        try:
            return await self._runner(pod)
        finally:
            logs.stdout.reset(token)
            self._logs.stopped(pod, container, container_id=container_id)

    def _graceful_shutdown(self) -> None:
        if not self.ctx.link.up:
            # Nothing the kubelet reports now can reach the API before the node is gone.
            self._kill_all()
            return
        now_s = self.ctx.clock()
        for run in list(self._runs.values()):
            namespace, name = run.key
            try:
                pod = self.ctx.store.get(kinds.POD, name, namespace=namespace)
            except NotFound:
                continue
            self._write_status(pod, _shutdown_status(pod, now_s))
            self._event(pod, "Normal", "Killing", f"Stopping container {_container_name(pod)}")
        self._kill_all()

    def _kill(self, uid: str) -> None:
        run = self._runs.pop(uid, None)
        if run is not None and run.task is not None:
            run.task.cancel()

    def _kill_all(self) -> None:
        for uid in list(self._runs):
            self._kill(uid)

    # -- writes --

    def _write_status(self, pod: Obj, status: Obj) -> None:
        # The caller's copy follows what was written, so the next status builds on it.
        pod["status"] = status
        namespace, name = key_of(pod)
        uid = uid_of(pod)

        def write() -> None:
            def change(obj: Obj) -> None:
                if uid_of(obj) == uid:
                    obj["status"] = status

            try:
                self.ctx.store.mutate(kinds.POD, name, change, namespace=namespace, subresource="status")
            except NotFound:
                return

        self.ctx.link.write(self.writer, uid, write)

    def _post_node_status(self) -> None:
        now_s = self.ctx.clock()
        now = rfc3339(now_s)
        try:
            node = self.ctx.store.get(kinds.NODE, self.node_name)
        except NotFound:
            return
        status = node.get("status") or {}
        previous_boot = (status.get("nodeInfo") or {}).get("bootID")
        was_ready = any(
            c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or ()
        )

        def post(obj: Obj) -> None:
            node_status = obj.setdefault("status", {})
            conditions = node_status.setdefault("conditions", [])
            for type_, value, reason, message in node_conditions(ready=True):
                set_condition(
                    conditions,
                    type_=type_,
                    status=value,
                    now=now,
                    reason=reason,
                    message=message,
                    heartbeat_field="lastHeartbeatTime",
                )
            node_status.setdefault("nodeInfo", {})["bootID"] = self.machine.boot_id

        self.ctx.store.mutate(kinds.NODE, self.node_name, post, subresource="status")
        ref = node_ref(self.node_name)
        self.recorder.event(ref, "Normal", "Starting", "Starting kubelet.")
        if previous_boot and previous_boot != self.machine.boot_id:
            self.recorder.event(
                ref,
                "Warning",
                "Rebooted",
                f"Node {self.node_name} has been rebooted, boot id: {self.machine.boot_id}",
            )
        if not was_ready:
            self.recorder.event(ref, "Normal", "NodeReady", f"Node {self.node_name} status is now: NodeReady")

    def _event(self, pod: Obj, type_: EventType, reason: str, message: str) -> None:
        ref = object_ref(pod)
        ref["fieldPath"] = f"spec.containers{{{_container_name(pod)}}}"
        self.recorder.event(ref, type_, reason, message)

    # -- statuses --

    def _base_status(self, pod: Obj, pod_ip: str, *, ready: bool, phase: str) -> Obj:
        now = rfc3339(self.ctx.clock())
        status = pod.get("status") or {}
        conditions: list[Obj] = [dict(c) for c in status.get("conditions") or ()]
        not_ready = "PodCompleted" if phase in ("Succeeded", "Failed") else "ContainersNotReady"
        message = (
            None
            if phase in ("Succeeded", "Failed")
            else f"containers with unready status: [{_container_name(pod)}]"
        )
        for type_, value, reason, text in (
            ("PodReadyToStartContainers", phase == "Running", None, None),
            ("Initialized", True, "PodCompleted" if phase == "Succeeded" else None, None),
            ("Ready", ready, None if ready else not_ready, None if ready else message),
            ("ContainersReady", ready, None if ready else not_ready, None if ready else message),
            ("PodScheduled", True, None, None),
        ):
            set_condition(conditions, type_=type_, status=str(value), now=now, reason=reason, message=text)
        for cond in conditions:
            cond.setdefault("lastProbeTime", None)
        host_ip = "127.0.0.1"
        return {
            "phase": phase,
            "conditions": conditions,
            "hostIP": host_ip,
            "hostIPs": [{"ip": host_ip}],
            "podIP": pod_ip,
            "podIPs": [{"ip": pod_ip}],
            "startTime": status.get("startTime") or now,
            "qosClass": status.get("qosClass", "BestEffort"),
        }

    def _container_status(
        self, pod: Obj, *, state: Obj, ready: bool, restart_count: int, last_state: Obj | None
    ) -> Obj:
        return {
            "name": _container_name(pod),
            "state": state,
            "lastState": last_state or {},
            "ready": ready,
            "started": "running" in state,
            "restartCount": restart_count,
            "image": _container_image(pod),
            "imageID": f"docker.io/{_container_image(pod)}@sha256:{'0' * 64}",
            "containerID": _container_id(pod, restart_count),
        }

    def _running_status(
        self, pod: Obj, pod_ip: str, start_s: float, restart_count: int, last_state: Obj | None
    ) -> Obj:
        status = self._base_status(pod, pod_ip, ready=True, phase="Running")
        state = {"running": {"startedAt": rfc3339(start_s)}}
        status["containerStatuses"] = [
            self._container_status(
                pod, state=state, ready=True, restart_count=restart_count, last_state=last_state
            )
        ]
        return status

    def _crashloop_status(
        self, pod: Obj, pod_ip: str, terminated: Obj, restart_count: int, backoff_s: float
    ) -> Obj:
        status = self._base_status(pod, pod_ip, ready=False, phase="Running")
        message = (
            f"back-off {backoff_s:g}s restarting failed container={_container_name(pod)} "
            f"pod={pod['metadata']['name']}_{pod['metadata']['namespace']}({uid_of(pod)})"
        )
        state = {"waiting": {"reason": "CrashLoopBackOff", "message": message}}
        status["containerStatuses"] = [
            self._container_status(
                pod,
                state=state,
                ready=False,
                restart_count=restart_count,
                last_state={"terminated": terminated},
            )
        ]
        return status

    def _finished_status(self, pod: Obj, pod_ip: str, phase: str, terminated: Obj, restart_count: int) -> Obj:
        status = self._base_status(pod, pod_ip, ready=False, phase=phase)
        status["containerStatuses"] = [
            self._container_status(
                pod,
                state={"terminated": terminated},
                ready=False,
                restart_count=restart_count,
                last_state=None,
            )
        ]
        return status

    def _bound_pods(self) -> list[Obj]:
        items, _ = self.ctx.store.list(kinds.POD, field_selector=f"spec.nodeName={self.node_name}")
        return items

    def _next_pod_ip(self) -> str:
        self._pod_ip_seq = self._pod_ip_seq % 250 + 1
        index = self.ctx.fleet.names.index(self.node_name) if self.node_name in self.ctx.fleet else 0
        return f"10.42.{index}.{self._pod_ip_seq + 2}"


def node_ref(node_name: str) -> Obj:
    """The reference kubelets and the node controller use for a Node (uid = the node's name)."""
    return {"kind": "Node", "name": node_name, "uid": node_name, "apiVersion": "v1"}


def node_conditions(*, ready: bool) -> list[tuple[str, str, str, str]]:
    """(type, status, reason, message) of a node's conditions as its kubelet posts them."""
    if not ready:
        message = "Kubelet stopped posting node status."
        return [
            (type_, "Unknown", "NodeStatusUnknown", message)
            for type_ in ("MemoryPressure", "DiskPressure", "PIDPressure", "Ready")
        ]
    return [
        ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
        ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
        ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
        ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
    ]


def _terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _restart_policy(pod: Obj) -> str:
    return str((pod.get("spec") or {}).get("restartPolicy") or "Always")


def _container_name(pod: Obj) -> str:
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    return str(containers[0].get("name", "main"))


def _container_image(pod: Obj) -> str:
    containers = (pod.get("spec") or {}).get("containers") or [{}]
    return str(containers[0].get("image", ""))


def _pod_ref(pod: Obj) -> str:
    return f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"


def _previous_container(pod: Obj) -> tuple[int, Obj | None]:
    """(restartCount, the lastState a restart after a lost boot reports), None if never started."""
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    if not statuses:
        return 0, None
    previous = statuses[0]
    state = previous.get("state") or {}
    started = (state.get("running") or {}).get("startedAt") or ""
    return int(previous.get("restartCount", 0)), {
        "terminated": {
            "exitCode": EXIT_UNKNOWN,
            "reason": "Unknown",
            "startedAt": started or None,
            "finishedAt": None,
            "containerID": previous.get("containerID", ""),
        }
    }


def _container_id(pod: Obj, restart_count: int) -> str:
    """The runtime's ID of run `restart_count` of the pod's container (what pods/log reads)."""
    return f"containerd://{uid_of(pod).replace('-', '')}{restart_count:04x}"


def _terminated(exit_code: int, start_s: float, finished_s: float, *, container_id: str) -> Obj:
    # containerID names the run whose log `kubectl logs --previous` reads after a restart.
    return {
        "containerID": container_id,
        "exitCode": exit_code,
        "reason": "Completed" if exit_code == 0 else "Error",
        "startedAt": rfc3339(start_s),
        "finishedAt": rfc3339(finished_s),
    }


def _shutdown_status(pod: Obj, now_s: float) -> Obj:
    now = rfc3339(now_s)
    status = dict(pod.get("status") or {})
    conditions = [dict(c) for c in status.get("conditions") or ()]
    set_condition(
        conditions,
        type_="DisruptionTarget",
        status="True",
        now=now,
        reason="TerminationByKubelet",
        message=SHUTDOWN_MESSAGE,
    )
    for type_ in ("Ready", "ContainersReady"):
        set_condition(conditions, type_=type_, status="False", now=now, reason="PodFailed")
    containers = []
    for container in status.get("containerStatuses") or ():
        running = (container.get("state") or {}).get("running") or {}
        containers.append(
            {
                **container,
                "ready": False,
                "started": False,
                "state": {
                    "terminated": {
                        "containerID": container.get("containerID", ""),
                        "exitCode": EXIT_KILLED,
                        "reason": "Error",
                        "startedAt": running.get("startedAt"),
                        "finishedAt": now,
                    }
                },
            }
        )
    status.update(
        phase="Failed",
        reason="Terminated",
        message=SHUTDOWN_MESSAGE,
        conditions=conditions,
        containerStatuses=containers,
    )
    return status


def _stuck_pending_status(pod: Obj, now_s: float) -> Obj:
    now = rfc3339(now_s)
    status = dict(pod.get("status") or {})
    conditions = [dict(c) for c in status.get("conditions") or ()]
    for type_, value in (
        ("PodReadyToStartContainers", "False"),
        ("Initialized", "True"),
        ("Ready", "False"),
        ("ContainersReady", "False"),
        ("PodScheduled", "True"),
    ):
        reason = "ContainersNotReady" if type_ in ("Ready", "ContainersReady") else None
        set_condition(conditions, type_=type_, status=value, now=now, reason=reason)
    previous = status.get("containerStatuses") or [
        {"name": _container_name(pod), "image": _container_image(pod), "imageID": "", "lastState": {}}
    ]
    containers = [
        {
            **container,
            "ready": False,
            "started": False,
            "restartCount": int(container.get("restartCount", 0)),
            "state": {"waiting": {"reason": "ContainerCreating"}},
        }
        for container in previous
    ]
    status.update(phase="Pending", conditions=conditions, containerStatuses=containers)
    status.pop("podIP", None)
    status.pop("podIPs", None)
    return status
