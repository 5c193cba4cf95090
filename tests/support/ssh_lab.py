"""Lab machines, each with a real SSH server on loopback, driven from the test's thread."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from lhsoak.lab import sshd
from lhsoak.lab.machine import Machine, MachineFleet

from .loop import DEADLINE_S, LoopThread

T = TypeVar("T")
LabT = TypeVar("LabT", bound="SshLab")


@dataclass
class SshLab:
    """Machines and their SSH servers; both belong to the loop's thread, so touch them through
    `run` and `call` only (attribute reads of plain values are fine)."""

    loop: LoopThread
    fleet: MachineFleet
    servers: dict[str, sshd.SshServer]
    state_dir: Path
    """Where the lab user's key and the host keys are."""

    def run(self, coroutine: Coroutine[Any, Any, T], *, timeout_s: float = DEADLINE_S) -> T:
        """Run a coroutine in the lab loop and return its result."""
        return self.loop.run(coroutine, timeout_s=timeout_s)

    def call(self, function: Callable[[], T]) -> T:
        """Call a function in the lab loop (machines are touched only from there)."""
        return self.loop.call(function)

    def machine(self, name: str) -> Machine:
        return self.fleet[name]

    def boot_id(self, name: str) -> str:
        return self.call(lambda: self.fleet[name].boot_id)

    def wait_for(self, name: str, predicate: Callable[[Machine], bool], what: str) -> None:
        """Until `predicate` holds for machine `name`; TimeoutError saying what was seen."""
        self.run(self.fleet.wait_for(name, predicate, timeout_s=DEADLINE_S, what=what))

    def restart_servers(self) -> None:
        """Close every SSH server and start it again on the same port, as a restarted lab does."""
        ports = {name: server.port for name, server in self.servers.items()}
        self.run(close_servers(self.servers))
        self.servers.update(self.run(start_servers(self.fleet, self.state_dir, ports=ports)))


async def start_servers(
    fleet: Iterable[Machine], state_dir: Path, *, ports: Mapping[str, int] | None = None
) -> dict[str, sshd.SshServer]:
    """An SSH server per machine (on `ports[name]`, else an ephemeral port)."""
    chosen = ports or {}
    return {
        machine.name: await sshd.start_ssh_server(
            machine, state_dir=state_dir, port=chosen.get(machine.name, 0)
        )
        for machine in fleet
    }


async def close_servers(servers: Mapping[str, sshd.SshServer]) -> None:
    for server in servers.values():
        await server.close()


@contextmanager
def running_ssh_lab(
    loop: LoopThread, machines: Iterable[Machine], *, state_dir: Path, lab_type: type[LabT]
) -> Iterator[LabT]:
    """The machines with their SSH servers, as a `lab_type`, for the `with` block; the servers are
    closed after it."""
    fleet = MachineFleet(machines)
    servers = loop.run(start_servers(fleet, state_dir))
    lab = lab_type(loop=loop, fleet=fleet, servers=servers, state_dir=state_dir)
    try:
        yield lab
    finally:
        loop.run(close_servers(lab.servers))
