"""A real SSH server per emulated machine (asyncssh), listening on 127.0.0.1 only while it runs.

Keys live in the lab state dir and survive reboots and lab restarts, so known_hosts stays valid:

    <state_dir>/id_ed25519, id_ed25519.pub      the lab user's key pair (OpenSSH format, 0600)
    <state_dir>/ssh-host-keys/<machine>_ed25519  each machine's host key

The listener follows the machine: it closes on "shutdown-started"/"powered-off" (new connections get
ECONNREFUSED) and every open connection is dropped at once, as when a host goes down; it reopens on
the same port on "booted". Only public-key auth for the one lab user is accepted.

Exec requests understand a handful of simple commands (no pipes, no `;`/`&&`): the ones a reboot
driver and a human poking at a node need; see `interpret`. The lab user has passwordless sudo; like
on a real host, reboot commands need it unless the user is root (`reboot -f` as `lab` answers
"reboot: must be superuser.", exit 1). Interactive shells are refused.

A reboot command answers exit status 0 and the reboot starts right after, dropping the connection:
like on a real host the client may read the exit status or may only see the connection close
first. Drivers must accept both and prove the reboot by the boot id changing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shlex
import socket
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import tenacity

from lhsoak.lab.machine import Machine, MachineEvent

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
USER_KEY_NAME = "id_ed25519"
HOST_KEY_DIR = "ssh-host-keys"
LISTEN_BACKLOG = 100
REBIND_DEADLINE_S = 5.0
"""How long sshd keeps trying to rebind its port after a boot (another process may hold it)."""

_REBOOT_COMMANDS = (
    ("reboot",),
    ("reboot", "-f"),
    ("systemctl", "reboot"),
    ("shutdown", "-r", "now"),
)
_KUBELET_UNITS = ("kubelet", "kubelet.service")
_SSHD_UNITS = ("ssh", "sshd", "ssh.service", "sshd.service")


@dataclass(frozen=True)
class CommandResult:
    """What an exec request printed and returned."""

    exit_status: int
    """The process exit status."""
    stdout: str = ""
    """Standard output."""
    stderr: str = ""
    """Standard error."""
    reboots: bool = False
    """True when the command starts a reboot of the machine."""


@dataclass(frozen=True)
class UserKey:
    """The lab user's key pair on disk."""

    path: Path
    """The private key file (OpenSSH format, mode 0600); the public key is next to it, `.pub`."""
    public_openssh: str
    """The public key as one OpenSSH line, `ssh-ed25519 AAAA... comment`."""


def interpret(command: str, *, machine: Machine, user: str) -> CommandResult:
    """Run `command` against `machine`'s emulated userland, as `user` (root needs no sudo).

    Understood, optionally behind `sudo [-flags]`: `cat /proc/sys/kernel/random/boot_id`,
    `cat /proc/uptime`, `cat /etc/hostname`, `hostname`, `uptime`, `uptime -s`,
    `systemctl is-active <unit>...` (kubelet follows the machine, sshd is active, others inactive),
    `true`, `false`, `echo ...`, and the reboots `reboot`, `reboot -f`, `systemctl reboot`,
    `shutdown -r now`. Anything else: `bash: <cmd>: command not found`, exit 127.
    """
    try:
        words = shlex.split(command)
    except ValueError as error:
        return CommandResult(2, stderr=f"bash: -c: syntax error: {error}\n")
    if not words:
        return CommandResult(0)
    if words[0] != "sudo":
        return _run(words, machine=machine, privileged=user == "root", under_sudo=False)
    words = words[1:]
    while words and words[0].startswith("-"):
        words = words[1:]
    if not words:
        return CommandResult(1, stderr="usage: sudo command\n")
    return _run(words, machine=machine, privileged=True, under_sudo=True)


def _run(words: list[str], *, machine: Machine, privileged: bool, under_sudo: bool) -> CommandResult:
    program, args = words[0], words[1:]
    if tuple(words) in _REBOOT_COMMANDS:
        return _reboot(program, privileged=privileged)
    if program == "true":
        return CommandResult(0)
    if program == "false":
        return CommandResult(1)
    if program == "echo":
        return CommandResult(0, stdout=" ".join(args) + "\n")
    if program == "hostname" and not args:
        return CommandResult(0, stdout=machine.name + "\n")
    if program == "uptime":
        return _uptime(args, machine=machine)
    if program == "cat" and args:
        return _cat(args, machine=machine)
    if program == "systemctl" and len(args) >= 2 and args[0] == "is-active":
        return _is_active(args[1:], machine=machine)
    if program in ("reboot", "shutdown", "systemctl", "cat", "hostname"):
        return CommandResult(2, stderr=f"{program}: arguments not emulated by the lab: {args}\n")
    if under_sudo:
        return CommandResult(1, stderr=f"sudo: {program}: command not found\n")
    return CommandResult(127, stderr=f"bash: {program}: command not found\n")


def _reboot(program: str, *, privileged: bool) -> CommandResult:
    if privileged:
        return CommandResult(0, reboots=True)
    if program == "systemctl":
        message = "Failed to reboot system via logind: Interactive authentication required.\n"
        return CommandResult(1, stderr=message)
    return CommandResult(1, stderr=f"{program}: must be superuser.\n")


def _uptime(args: list[str], *, machine: Machine) -> CommandResult:
    if args == ["-s"]:
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(machine.booted_at))
        return CommandResult(0, stdout=since + "\n")
    if args:
        return CommandResult(1, stderr=f"uptime: arguments not emulated by the lab: {args}\n")
    now = time.strftime("%H:%M:%S", time.localtime(machine.clock()))
    line = f" {now} up {format_uptime(machine.uptime_s())},  1 user,  load average: 0.08, 0.03, 0.01"
    return CommandResult(0, stdout=line + "\n")


def format_uptime(uptime_s: float) -> str:
    """The "up ..." part of uptime(1): `5 min`, ` 2:05`, `3 days,  2:05`, `1 day, 5 min`."""
    minutes_total = int(uptime_s) // 60
    days, minutes_of_day = divmod(minutes_total, 24 * 60)
    hours, minutes = divmod(minutes_of_day, 60)
    clock = f"{hours:2d}:{minutes:02d}" if hours else f"{minutes} min"
    if not days:
        return clock
    return f"{days} day{'s' if days != 1 else ''}, {clock}"


def _cat(paths: list[str], *, machine: Machine) -> CommandResult:
    files = {
        "/proc/sys/kernel/random/boot_id": machine.boot_id + "\n",
        "/proc/uptime": f"{machine.uptime_s():.2f} {machine.uptime_s() * 1.9:.2f}\n",
        "/etc/hostname": machine.name + "\n",
    }
    stdout, stderr = [], []
    for path in paths:
        if path in files:
            stdout.append(files[path])
        else:
            stderr.append(f"cat: {path}: No such file or directory\n")
    return CommandResult(1 if stderr else 0, stdout="".join(stdout), stderr="".join(stderr))


def _is_active(units: list[str], *, machine: Machine) -> CommandResult:
    states = []
    for unit in units:
        if unit in _KUBELET_UNITS:
            states.append("active" if machine.kubelet_active else "inactive")
        else:
            states.append("active" if unit in _SSHD_UNITS else "inactive")
    # systemd: exit 0 only when every unit is active; 3 is "inactive" in the LSB sense.
    status = 0 if all(state == "active" for state in states) else 3
    return CommandResult(status, stdout="".join(f"{state}\n" for state in states))


def ensure_user_key(state_dir: Path) -> UserKey:
    """The lab user's key pair in `state_dir`, generated on first use and reused afterwards."""
    path = state_dir / USER_KEY_NAME
    key = _load_or_generate_key(path, comment="lab@lhsoak")
    public = key.export_public_key("openssh").decode().strip()
    public_path = path.with_name(path.name + ".pub")
    if not public_path.exists():
        _write_private(public_path, (public + "\n").encode(), mode=0o644)
    return UserKey(path=path, public_openssh=public)


def _load_or_generate_key(path: Path, *, comment: str) -> asyncssh.SSHKey:
    if path.exists():
        return asyncssh.read_private_key(path)
    key = asyncssh.generate_private_key("ssh-ed25519", comment=comment)
    _write_private(path, key.export_private_key("openssh"), mode=0o600)
    logger.info("generated %s", path)
    return key


def _write_private(path: Path, data: bytes, *, mode: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(descriptor, "wb") as file:
        file.write(data)
    os.chmod(partial, mode)
    os.replace(partial, path)


class SshServer:
    """The SSH endpoint of one machine; its listener opens and closes with the machine's power."""

    def __init__(
        self,
        machine: Machine,
        *,
        port: int,
        user: str,
        host_key_path: Path,
        user_key: UserKey,
    ) -> None:
        self.machine = machine
        self.host = LOOPBACK
        self.port = port
        self.user = user
        self.host_key_path = host_key_path
        self.user_key = user_key
        self._host_key = asyncssh.read_private_key(host_key_path)
        self._authorized_key = asyncssh.import_public_key(user_key.public_openssh)
        self._socket: socket.socket | None = None
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._connections: set[asyncssh.SSHServerConnection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False
        self._unsubscribe = machine.subscribe(self._on_machine_event)

    @property
    def host_key_public(self) -> str:
        """The host's public key as one OpenSSH line, `ssh-ed25519 AAAA...` (no comment)."""
        algorithm, blob = self._host_key.export_public_key("openssh").decode().split()[:2]
        return f"{algorithm} {blob}"

    @property
    def known_hosts_line(self) -> str:
        """The line an OpenSSH/paramiko known_hosts file needs for this endpoint."""
        return f"[{self.host}]:{self.port} {self.host_key_public}"

    @property
    def listening(self) -> bool:
        """True while the port accepts connections."""
        return self._socket is not None

    @property
    def open_connections(self) -> int:
        """How many SSH connections are open right now."""
        return len(self._connections)

    async def settle(self) -> None:
        """Wait until the listener changes already requested are done."""
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        """Stop following the machine, close the listener and drop every connection."""
        self._closed = True
        self._unsubscribe()
        for task in list(self._tasks):
            task.cancel()
        await self.settle()
        acceptor = self._stop_listening()
        if acceptor is not None:
            await acceptor.wait_closed()

    def _on_machine_event(self, event: MachineEvent) -> None:
        if event.kind in ("shutdown-started", "powered-off"):
            self._stop_listening()
        elif event.kind == "booted":
            self._start_listening()

    def _start_listening(self) -> None:
        # Bind synchronously, inside the "booted" dispatch: whoever sees the event can connect at
        # once; the kernel queues connections until asyncssh serves the socket.
        if self._closed or self._socket is not None:
            return
        try:
            listener = self._bind()
        except OSError as error:
            logger.warning("%s: sshd cannot bind port %d: %s", self.machine.name, self.port, error)
            self._spawn(self._rebind())
            return
        self._serve(listener)

    def _bind(self) -> socket.socket:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((self.host, self.port))
            listener.listen(LISTEN_BACKLOG)
        except OSError:
            listener.close()
            raise
        self.port = listener.getsockname()[1]
        return listener

    async def _rebind(self) -> None:
        retrying = tenacity.AsyncRetrying(
            retry=tenacity.retry_if_exception_type(OSError),
            stop=tenacity.stop_after_delay(REBIND_DEADLINE_S),
            wait=tenacity.wait_exponential(multiplier=0.02, max=0.5),
            before_sleep=self._log_rebind_retry,
            reraise=True,
        )
        try:
            listener: socket.socket | None = await retrying(self._bind_while_running)
        except OSError as error:
            logger.error("%s: sshd cannot listen on port %d: %s", self.machine.name, self.port, error)
            return
        if listener is not None:
            self._serve(listener)

    async def _bind_while_running(self) -> socket.socket | None:
        if self._closed or self._socket is not None or self.machine.state != "running":
            return None
        return self._bind()

    def _serve(self, listener: socket.socket) -> None:
        self._socket = listener
        self._spawn(self._hand_to_asyncssh(listener))
        logger.info("%s: sshd listening on %s:%d", self.machine.name, self.host, self.port)

    async def _hand_to_asyncssh(self, listener: socket.socket) -> None:
        try:
            acceptor = await asyncssh.listen(
                sock=listener,
                server_factory=lambda: _LabSshConnection(self),
                server_host_keys=[self._host_key],
                process_factory=self._handle_process,
                config=None,
                gss_host=None,
                allow_pty=False,
                agent_forwarding=False,
                x11_forwarding=False,
                sftp_factory=None,
            )
        except OSError as error:
            if self._socket is listener:
                logger.error("%s: sshd failed to serve: %s", self.machine.name, error)
                self._stop_listening()
            return
        if self._socket is listener:
            self._acceptor = acceptor
        else:
            acceptor.close()

    def _stop_listening(self) -> asyncssh.SSHAcceptor | None:
        listener, self._socket = self._socket, None
        acceptor, self._acceptor = self._acceptor, None
        if acceptor is not None:
            acceptor.close()
        elif listener is not None:
            listener.close()
        if listener is not None:
            logger.info("%s: sshd stopped listening on port %d", self.machine.name, self.port)
        for connection in list(self._connections):
            connection.abort()
        return acceptor

    def _log_rebind_retry(self, state: tenacity.RetryCallState) -> None:
        logger.warning(
            "%s: attempt %d: listen on port %d → %s",
            self.machine.name,
            state.attempt_number,
            self.port,
            state.outcome.exception() if state.outcome else "?",
        )

    async def _handle_process(self, process: asyncssh.SSHServerProcess[str]) -> None:
        user = str(process.get_extra_info("username"))
        if process.command is None:
            result = CommandResult(1, stderr="this lab host only accepts exec requests\n")
        else:
            result = interpret(process.command, machine=self.machine, user=user)
        logger.debug("%s: %s ran %r → exit %d", self.machine.name, user, process.command, result.exit_status)
        process.stdout.write(result.stdout)
        process.stderr.write(result.stderr)
        process.exit(result.exit_status)
        if result.reboots:
            # Let the exit status reach the socket first; a real host races the same way.
            asyncio.get_running_loop().call_soon(self.machine.reboot)

    def _accept(self, connection: asyncssh.SSHServerConnection) -> None:
        if self._socket is None or self.machine.state != "running":
            connection.abort()
            return
        self._connections.add(connection)

    def _forget(self, connection: asyncssh.SSHServerConnection) -> None:
        self._connections.discard(connection)

    def _authorized(self, username: str, key: asyncssh.SSHKey) -> bool:
        return username == self.user and key.public_data == self._authorized_key.public_data

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


class _LabSshConnection(asyncssh.SSHServer):
    """Per-connection callbacks: public-key auth for the lab user only, connection tracking."""

    def __init__(self, endpoint: SshServer) -> None:
        self._endpoint = endpoint
        self._connection: asyncssh.SSHServerConnection | None = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._connection = conn
        self._endpoint._accept(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._connection is not None:
            self._endpoint._forget(self._connection)

    def begin_auth(self, username: str) -> bool:
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        return self._endpoint._authorized(username, key)


async def start_ssh_server(
    machine: Machine,
    *,
    state_dir: Path,
    port: int = 0,
    user: str = "lab",
) -> SshServer:
    """Start `machine`'s SSH endpoint on 127.0.0.1:`port` (0: ephemeral, kept across reboots).

    Generates the user key and the host key into `state_dir` on first use. If the machine is not
    running, the port is reserved now and the listener opens when it boots.
    """
    user_key = ensure_user_key(state_dir)
    host_key_path = state_dir / HOST_KEY_DIR / f"{machine.name}_ed25519"
    _load_or_generate_key(host_key_path, comment=f"root@{machine.name}")
    if port == 0 and machine.state != "running":
        port = _pick_free_port()
    server = SshServer(machine, port=port, user=user, host_key_path=host_key_path, user_key=user_key)
    if machine.state == "running":
        server._start_listening()
        await server.settle()
        if not server.listening:
            await server.close()
            raise OSError(f"{machine.name}: sshd could not listen on {LOOPBACK}:{port}")
    return server


def _pick_free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((LOOPBACK, 0))
        port: int = probe.getsockname()[1]
        return port
