"""Container logs of the lab's pods: what `kubectl logs` reads through pods/log.

Each run of a container (one container ID, as the kubelet names it) keeps its lines in a ring
buffer, the lab's stand-in for the file the kubelet writes under /var/log/pods; a pod keeps its two
latest runs per container, so `--previous` reads the run before a restart. Lines are bounded by
count per run (`LINES_PER_RUN`) and runs are forgotten with their pod.

Who writes:

- the kubelet starts and stops runs (`PodLogs.started`/`stopped`) and connects a run to its
  process's stdout (`stdout`, a context variable, as the container runtime connects a process's
  stdout to its log file): the recurring-job task writes what `longhorn-manager recurring-job`
  prints;
- longhorn-manager's controllers, which the lab runs centrally, write to the longhorn-manager pod
  of the node they act for (`PodLogs.manager`), as upstream each node's manager logs what its own
  controllers do. Lines for a node whose manager is not running wait (a bounded number) for its
  next start: upstream, the restarted manager re-lists and reconciles the same objects and logs it
  then.

Lines are in longhorn-manager's format, logrus' TextFormatter with the caller reported and
nanosecond timestamps (main.go of v1.12): `time="…" level=info msg="…" func=… file=… key=value…`.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import datetime as dt
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Literal

from lhsoak.lab import kinds
from lhsoak.lab.store import Obj, Store, WatchEvent

Level = Literal["debug", "info", "warning", "error", "fatal"]

LINES_PER_RUN = 1000
"""Lines kept per container run (the kubelet rotates at 10 MiB; a line count keeps the lab small)."""
PENDING_PER_NODE = 200
"""Lines kept for a node's longhorn-manager while it is not running."""
MANAGER_APP = "longhorn-manager"
"""The `app` label of longhorn-manager's pods (Longhorn's manifest)."""
MANAGER_NAMESPACE = "longhorn-system"
KUBELET_PORT = 10250


@dataclass(frozen=True)
class Caller:
    """Where a line is logged from, as longhorn-manager's CallerPrettyfier names it."""

    func: str
    """path.Base of the Go function ("recurringjob.(*VolumeJob).run")."""
    file: str
    """Base name and line ("volume.go:141")."""


@dataclass(frozen=True)
class Record:
    """One log call, not yet stamped with its time."""

    level: Level
    msg: str
    caller: Caller | None
    fields: tuple[tuple[str, str], ...] = ()


def render(record: Record, at_s: float) -> str:
    """The line logrus' TextFormatter writes: time, level, msg, func, file, then sorted fields."""
    pairs = [("time", rfc3339_nano(at_s)), ("level", record.level), ("msg", record.msg)]
    if record.caller is not None:
        pairs += [("func", record.caller.func), ("file", record.caller.file)]
    pairs += sorted(record.fields)
    return " ".join(f"{key}={_quoted(value)}" for key, value in pairs)


def rfc3339_nano(epoch_s: float) -> str:
    """Go's time.RFC3339Nano in UTC: nanoseconds with trailing zeros dropped."""
    moment = dt.datetime.fromtimestamp(epoch_s, tz=dt.UTC)
    nanos = f"{round(epoch_s * 1e9) % 1_000_000_000:09d}".rstrip("0")
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + (f".{nanos}" if nanos else "") + "Z"


def _quoted(value: str) -> str:
    # logrus quotes a value with any character outside [A-Za-z0-9-._/@^+], with Go's %q.
    if all(ch.isascii() and (ch.isalnum() or ch in "-._/@^+") for ch in value):
        return value
    return go_quote(value)


def go_quote(text: str) -> str:
    """`text` as Go's %q writes it (backslash escapes for quotes, backslashes and control chars)."""
    escapes = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\t": "\\t", "\r": "\\r"}
    out = []
    for ch in text:
        if ch in escapes:
            out.append(escapes[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def go_value(value: object) -> str:
    """A field value as logrus formats it with %v: maps as `map[k:v]`, the rest with str()."""
    if isinstance(value, Mapping):
        return "map[" + " ".join(f"{k}:{value[k]}" for k in sorted(value)) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class Logger:
    """A logrus entry: fields, and a sink its records go to (None: discarded)."""

    def __init__(
        self, sink: Callable[[Record], None] | None, fields: tuple[tuple[str, str], ...] = ()
    ) -> None:
        self._sink = sink
        self._fields = fields

    def with_fields(self, **fields: object) -> Logger:
        """A logger that adds `fields` to every line (logrus WithFields)."""
        merged = dict(self._fields)
        merged.update((key, go_value(value)) for key, value in fields.items())
        return Logger(self._sink, tuple(merged.items()))

    def with_error(self, error: object) -> Logger:
        """logrus WithError: the field `error`."""
        return self.with_fields(error=error)

    def log(self, level: Level, msg: str, *, caller: Caller | None) -> None:
        if self._sink is not None:
            self._sink(Record(level, msg, caller, self._fields))

    def info(self, msg: str, *, caller: Caller | None) -> None:
        self.log("info", msg, caller=caller)

    def warning(self, msg: str, *, caller: Caller | None) -> None:
        self.log("warning", msg, caller=caller)

    def error(self, msg: str, *, caller: Caller | None) -> None:
        self.log("error", msg, caller=caller)

    def fatal(self, msg: str, *, caller: Caller | None) -> None:
        self.log("fatal", msg, caller=caller)


DISCARD = Logger(None)

stdout: contextvars.ContextVar[Logger] = contextvars.ContextVar("lab_container_stdout", default=DISCARD)
"""The log of the container run this code runs in (set by the kubelet; DISCARD outside one)."""


@dataclass(frozen=True)
class Line:
    """One line of a container's log and when it was written."""

    at_s: float
    text: str


class ContainerRun:
    """The log of one run of one container: a ring buffer, and whether the run goes on."""

    def __init__(self, container_id: str, *, capacity: int = LINES_PER_RUN) -> None:
        self.container_id = container_id
        self._lines: collections.deque[Line] = collections.deque(maxlen=capacity)
        self._written = 0
        self.running = True
        self._waiters: list[asyncio.Future[None]] = []

    def append(self, line: Line) -> None:
        self._lines.append(line)
        self._written += 1
        self._wake()

    def end(self) -> None:
        """The process exited or was killed: no more lines come."""
        self.running = False
        self._wake()

    @property
    def written(self) -> int:
        """Lines written since the run started (those the ring dropped included)."""
        return self._written

    def lines(self) -> list[Line]:
        """The lines kept, oldest first."""
        return list(self._lines)

    def lines_after(self, written: int) -> list[Line]:
        """The kept lines written after the first `written` lines."""
        new = self._written - written
        if new <= 0:
            return []
        return list(self._lines)[-new:]

    async def changed(self, *, timeout_s: float) -> None:
        """Until a line is appended or the run ends, at most `timeout_s`."""
        if not self.running:
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await asyncio.wait({waiter}, timeout=timeout_s)
        finally:
            if waiter in self._waiters:
                self._waiters.remove(waiter)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


class PodLogs:
    """The container logs of one lab cluster (see the module docstring); get it with `of(store)`."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        # (pod uid, container) -> its latest runs by container ID: the current one and the previous.
        self._containers: dict[tuple[str, str], collections.OrderedDict[str, ContainerRun]] = {}
        self._managers: dict[str, tuple[str, ContainerRun]] = {}
        self._pending: dict[str, collections.deque[Record]] = {}
        self._unreachable: set[str] = set()
        # Not kept: the unsubscribe function holds the store, which `of` keys weakly.
        store.listen(self._forget_deleted, only=(kinds.POD,))

    # -- the kubelet's side --

    def started(self, pod: Obj, container: str, *, container_id: str) -> Logger:
        """A run of `container` of `pod` started as `container_id`; the logger of its stdout."""
        uid = str(pod["metadata"].get("uid", ""))
        runs = self._containers.setdefault((uid, container), collections.OrderedDict())
        run = runs[container_id] = ContainerRun(container_id)
        while len(runs) > 2:
            runs.popitem(last=False)
        node = str((pod.get("spec") or {}).get("nodeName") or "")
        if _is_manager(pod):
            self._managers[node] = (uid, run)
            self._manager_started(node, run)
        return Logger(lambda record: self._append(run, record))

    def stopped(self, pod: Obj, container: str, *, container_id: str) -> None:
        """The run `container_id` ended (exit or kill)."""
        uid = str(pod["metadata"].get("uid", ""))
        run = self._run(uid, container, container_id)
        if run is None:
            return
        run.end()
        node = str((pod.get("spec") or {}).get("nodeName") or "")
        if self._managers.get(node, ("", None))[1] is run:
            del self._managers[node]

    def set_node_reachable(self, node: str, reachable: bool) -> None:
        """Whether the node's kubelet answers (it does not while the machine is down)."""
        if reachable:
            self._unreachable.discard(node)
        else:
            self._unreachable.add(node)

    def node_reachable(self, node: str) -> bool:
        return node not in self._unreachable

    # -- longhorn-manager's controllers --

    def manager(self, node: str) -> Logger:
        """The logger of the longhorn-manager on `node` (logrus' standard logger there)."""
        return Logger(lambda record: self._to_manager(node, record))

    # -- readers --

    def run(self, pod: Obj, container: str, container_id: str) -> ContainerRun | None:
        """The run `container_id` of a container of `pod`, if the lab still keeps it."""
        return self._run(str(pod["metadata"].get("uid", "")), container, container_id)

    def runs(self) -> Iterator[ContainerRun]:
        """Every run kept (for tests of the bounds)."""
        for runs in self._containers.values():
            yield from runs.values()

    # -- internals --

    def _run(self, uid: str, container: str, container_id: str) -> ContainerRun | None:
        runs = self._containers.get((uid, container))
        return runs.get(container_id) if runs is not None else None

    def _append(self, run: ContainerRun, record: Record) -> None:
        now_s = self._clock()
        run.append(Line(now_s, render(record, now_s)))

    def _to_manager(self, node: str, record: Record) -> None:
        current = self._managers.get(node)
        if current is not None and current[1].running:
            self._append(current[1], record)
            return
        pending = self._pending.setdefault(node, collections.deque(maxlen=PENDING_PER_NODE))
        pending.append(record)

    def _manager_started(self, node: str, run: ContainerRun) -> None:
        node_fields = (("node", node),)
        self._append(
            run,
            Record(
                "info",
                "Starting Longhorn Backup controller",
                BACKUP_CONTROLLER_RUN,
                _CONTROLLER + node_fields,
            ),
        )
        for record in self._pending.pop(node, ()):
            self._append(run, record)

    def _forget_deleted(self, event: WatchEvent) -> None:
        if event.type != "DELETED":
            return
        uid = str(event.object["metadata"].get("uid", ""))
        for key in [key for key in self._containers if key[0] == uid]:
            del self._containers[key]
        for node, (manager_uid, _run) in list(self._managers.items()):
            if manager_uid == uid:
                del self._managers[node]


BACKUP_CONTROLLER_RUN = Caller("controller.(*BackupController).Run", "backup_controller.go:166")
_CONTROLLER = (("controller", "longhorn-backup"),)


def _is_manager(pod: Obj) -> bool:
    meta = pod["metadata"]
    return meta.get("namespace") == MANAGER_NAMESPACE and (meta.get("labels") or {}).get("app") == MANAGER_APP


_REGISTRY: weakref.WeakKeyDictionary[Store, PodLogs] = weakref.WeakKeyDictionary()


def of(store: Store, *, clock: Callable[[], float] = time.time) -> PodLogs:
    """The container logs of the cluster whose store is `store` (made on first use, with `clock`).

    A registry beside the store, not an attribute of it: the kubelets write, the API server reads,
    and both already hold the store."""
    logs = _REGISTRY.get(store)
    if logs is None:
        logs = _REGISTRY[store] = PodLogs(store, clock=clock)
    return logs
