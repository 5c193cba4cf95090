"""What the lab's cloud endpoints (Compute Engine in `gce`, Azure Resource Manager in `arm`) share.

- `HttpsSite`: an aiohttp application on 127.0.0.1, on an ephemeral port, behind the lab's TLS
  certificate (both SDKs send bearer tokens, and azure-core refuses to send one over plain http).
- `PowerOperations`: the providers' long-running power operations. Each is applied to its machine
  at once, as the EC2 endpoint does with RebootInstances/StopInstances/StartInstances, and is done
  once the machine got there, latched from the machine's events (so an operation nobody polls
  still finishes, and stays finished when the machine moves on):

      restart → machine.reboot()                    done when running with a new boot id
      stop    → machine.power_off(graceful=True)    done when off
      start   → machine.power_on()                  done when running

  A restart of a machine that is not running, or a start of one that is shutting down, is
  refused (`PowerRefused`); the endpoint answers it in its provider's words. A stop of a machine
  that is already off, or a start of one already running or booting, is an operation that is done
  at once or soon, as both providers treat them.

All of it runs in the lab's event loop, like the machines.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from aiohttp import web

from lhsoak.lab import pki
from lhsoak.lab.machine import Machine, MachineEvent, MachineFleet

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
CA_FILE = "lab-ca.pem"
SHUTDOWN_TIMEOUT_S = 1.0
"""How long closing an endpoint waits for requests in flight (they all answer at once), in seconds."""

PowerAction = Literal["restart", "stop", "start"]


class PowerRefused(Exception):
    """The machine is in no state for the action (the provider's "not ready" or "conflict")."""


@dataclass
class PowerOperation:
    """One power operation on one machine, from request until the machine got there."""

    id: str
    """The provider's operation name."""
    action: PowerAction
    """What was asked."""
    machine: str
    """The machine's name (the instance or VM name)."""
    boot_id_before: str
    """The machine's boot id when it was asked (a restart is done once it changed)."""
    started_at: float
    """When it was asked, epoch seconds."""
    ended_at: float | None = None
    """When the machine got there, epoch seconds (None while in progress)."""

    @property
    def done(self) -> bool:
        """Whether the machine got there."""
        return self.ended_at is not None


def reached(operation: PowerOperation, machine: Machine) -> bool:
    """Whether `machine` is where `operation` takes it."""
    if operation.action == "stop":
        return machine.state == "off"
    if operation.action == "start":
        return machine.state == "running"
    return machine.state == "running" and machine.boot_id != operation.boot_id_before


class PowerOperations:
    """The power operations of one endpoint, applied to the machines of `fleet`."""

    def __init__(self, fleet: MachineFleet, *, clock: Callable[[], float] = time.time) -> None:
        self.fleet = fleet
        self.clock = clock
        self._operations: dict[str, PowerOperation] = {}
        self._unsubscribe: Callable[[], None] = lambda: None

    def follow(self) -> None:
        """Finish operations from the machines' events from now on."""
        self._unsubscribe = self.fleet.subscribe(self._on_machine_event)

    def close(self) -> None:
        """Stop following the machines."""
        self._unsubscribe()

    def get(self, operation_id: str) -> PowerOperation | None:
        """The operation of that name, or None."""
        return self._operations.get(operation_id)

    def in_progress(self, machine_name: str) -> bool:
        """Whether an operation on that machine has not got there yet."""
        return any(op.machine == machine_name and not op.done for op in self._operations.values())

    def begin(self, action: PowerAction, machine_name: str, *, operation_id: str) -> PowerOperation:
        """Apply `action` to the machine and return its operation; PowerRefused if it cannot be."""
        machine = self.fleet[machine_name]
        operation = PowerOperation(
            id=operation_id,
            action=action,
            machine=machine_name,
            boot_id_before=machine.boot_id,
            started_at=self.clock(),
        )
        self._apply(action, machine)
        self._operations[operation_id] = operation
        self._finish_if_reached(operation, machine)
        return operation

    @staticmethod
    def _apply(action: PowerAction, machine: Machine) -> None:
        # A machine in the middle of a reboot counts as running for both providers: a restart or
        # a start asked meanwhile is absorbed by the reboot in flight.
        if action == "restart":
            if not machine.reboot() and not machine.rebooting:
                raise PowerRefused(f"{machine.name} is {machine.state}, not running")
        elif action == "stop":
            machine.power_off(graceful=True)
        elif machine.state == "shutting-down" and not machine.rebooting:
            raise PowerRefused(f"{machine.name} is shutting down")
        else:
            machine.power_on()
        logger.info("%s %s → %s", action, machine.name, machine.state)

    def _on_machine_event(self, event: MachineEvent) -> None:
        machine = self.fleet[event.machine]
        for operation in self._operations.values():
            if operation.machine == event.machine:
                self._finish_if_reached(operation, machine)

    def _finish_if_reached(self, operation: PowerOperation, machine: Machine) -> None:
        if not operation.done and reached(operation, machine):
            operation.ended_at = self.clock()


class CloudError(Exception):
    """An error the endpoint answers in its provider's format (`response`)."""

    def response(self) -> web.Response:
        raise NotImplementedError


@web.middleware
async def answer_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Turn a `CloudError` raised by a handler or a later middleware into its answer."""
    try:
        return await handler(request)
    except CloudError as error:
        return error.response()


def rfc3339(epoch_s: float) -> str:
    """An instant as both providers write it: RFC 3339 in UTC with milliseconds."""
    instant = dt.datetime.fromtimestamp(epoch_s, tz=dt.UTC)
    return instant.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def bearer_token(request: web.Request) -> str | None:
    """The token of an `Authorization: Bearer …` header, or None."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


class HttpsSite:
    """`app` served over TLS (the lab's serving certificate) on an ephemeral loopback port.

    `close` cuts the connections still open rather than saying TLS goodbye to each: a keep-alive
    client that never reads again would hold the shutdown up, and the transports left behind would
    be reported unclosed when collected.
    """

    def __init__(self, app: web.Application, *, authority: pki.Pki) -> None:
        app.middlewares.insert(0, self._track)
        self._app = app
        self._authority = authority
        self._runner: web.AppRunner | None = None
        self._transports: weakref.WeakSet[asyncio.Transport] = weakref.WeakSet()
        self.port = 0

    async def start(self) -> None:
        """Listen; `port` is the ephemeral port chosen."""
        runner = web.AppRunner(self._app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await runner.setup()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.bind((LOOPBACK, 0))
            self.port = int(listener.getsockname()[1])
            await web.SockSite(runner, listener, ssl_context=self._authority.server_context()).start()
        except BaseException:
            listener.close()
            await runner.cleanup()
            raise
        self._runner = runner

    async def close(self) -> None:
        """Stop listening and cut every open connection."""
        runner, self._runner = self._runner, None
        for transport in list(self._transports):
            transport.abort()
        if runner is not None:
            await runner.cleanup()

    @web.middleware
    async def _track(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.transport is not None:
            self._transports.add(request.transport)
        return await handler(request)


def write_ca(directory: Path, authority: pki.Pki) -> Path:
    """Write the lab CA certificate (what REQUESTS_CA_BUNDLE names for a client) into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / CA_FILE
    path.write_bytes(authority.ca_pem)
    return path


def write_secret(path: Path, content: str) -> Path:
    """Write `content` to `path`, readable by its owner only from the start."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(content)
    return path
