"""The ssh driver: reboot a node with a command over SSH and prove it by its kernel boot id.

Every probe opens a fresh connection (paramiko), runs one command and closes: after a reboot an old
connection is dead anyway, and a fresh handshake is itself the "is it up" question. Host keys are
checked against the inventory's `host_key`, or its `known_hosts` file, or ~/.ssh/known_hosts, and an
unknown or changed key is refused (AccessError, never retried). `--insecure-host-keys` accepts any key
and logs a warning on every connection.

- boot id: `cat /proc/sys/kernel/random/boot_id`, the value the kubelet reports as
  `status.nodeInfo.bootID`.
- reboot: the configured command. Exit status 0, or the connection dropping before any status, means
  accepted; a non-zero exit status (sudo refused, command not found) is a DriverError with stderr.
- down: a connection refused, timing out or dropping, or a boot id different from the one before.
- up: a session that returns a NEW boot id; the old one keeps the wait going until its deadline.

`BootIdWatch` is this proof on its own, for cloud drivers that have ssh beside them.
"""

from __future__ import annotations

import base64
import errno
import logging
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import paramiko
from paramiko.pkey import UnknownKeyType

from lhsoak import inventory
from lhsoak.chaos import driver
from lhsoak.chaos.driver import AccessError, Done, DriverError, DriverOptions, Evidence, NotYet

logger = logging.getLogger(__name__)
# paramiko's transport thread logs a traceback at ERROR for every refused or reset connection; while
# a node reboots those are the expected answers, and the driver reports what it saw itself.
logging.getLogger("paramiko.transport").setLevel(logging.CRITICAL)

BOOT_ID_COMMAND = "cat /proc/sys/kernel/random/boot_id"
_BOOT_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_SHORTEST_PROBE_S = 0.5
"""A probe close to its deadline still gets this long to connect, so the last attempt means something."""


class Unreachable(Exception):
    """The node did not answer over SSH: refused, timed out, or the connection closed."""

    def __init__(self, seen: str) -> None:
        super().__init__(seen)
        self.seen = seen


class ConnectionDropped(Unreachable):
    """The connection was up, then closed or went silent while a command ran."""


class CommandFailed(Exception):
    """A command ran and failed, or printed something unexpected (the message says what)."""


@dataclass(frozen=True)
class CommandResult:
    """What a remote command returned."""

    exit_status: int | None
    """Its exit status; None if the connection closed before the server sent one."""
    stdout: str
    """Standard output, decoded as UTF-8 (bad bytes replaced)."""
    stderr: str
    """Standard error, decoded as UTF-8 (bad bytes replaced)."""


class _RejectUnknownHostKey(paramiko.RejectPolicy):
    """paramiko's RejectPolicy, raising an AccessError that tells the user what to do."""

    def __init__(self, node: str) -> None:
        self._node = node

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> NoReturn:
        raise AccessError(
            f"ssh host key of {hostname} ({key.get_name()} {key.fingerprint}) is not known: put it in "
            "the inventory as ssh.host_key or in ssh.known_hosts, or pass --insecure-host-keys",
            node=self._node,
        )


class _WarnAndAccept(paramiko.MissingHostKeyPolicy):
    """Accepts any host key and says so at WARNING level, every single connection."""

    def __init__(self, node: str) -> None:
        self._node = node

    def missing_host_key(self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey) -> None:
        logger.warning(
            "node %s: INSECURE: accepting ssh host key %s %s of %s without checking it "
            "(--insecure-host-keys)",
            self._node,
            key.get_name(),
            key.fingerprint,
            hostname,
        )


class SshShell:
    """Runs one command per fresh SSH connection to one node, checking its host key."""

    def __init__(self, node: str, access: inventory.SshAccess, *, options: DriverOptions) -> None:
        self.node = node
        self.access = access
        self.options = options

    @property
    def address(self) -> str:
        """host:port, for messages."""
        return f"{self.access.host}:{self.access.port}"

    def run(self, command: str, *, timeout_s: float | None = None) -> CommandResult:
        """Run `command`; Unreachable if no session could be had, ConnectionDropped if it broke."""
        budget_s = timeout_s if timeout_s is not None else self.options.connect_timeout_s
        client = self._connect(budget_s)
        try:
            return _execute(client, command, timeout_s=budget_s)
        finally:
            client.close()

    def read_boot_id(self, *, timeout_s: float | None = None) -> str:
        """The kernel boot id; Unreachable, or CommandFailed if it cannot be read."""
        result = self.run(BOOT_ID_COMMAND, timeout_s=timeout_s)
        boot_id = result.stdout.strip()
        if result.exit_status != 0 or not _BOOT_ID.match(boot_id):
            raise CommandFailed(
                f"{BOOT_ID_COMMAND!r} → exit {result.exit_status}, "
                f"stdout {result.stdout.strip()!r}, stderr {result.stderr.strip()!r}"
            )
        return boot_id

    def _connect(self, timeout_s: float) -> paramiko.SSHClient:
        client = paramiko.SSHClient()
        self._trust(client)
        key_file = self.access.key_file
        try:
            client.connect(
                hostname=self.access.host,
                port=self.access.port,
                username=self.access.user,
                key_filename=str(key_file) if key_file else None,
                look_for_keys=key_file is None,
                allow_agent=key_file is None,
                timeout=timeout_s,
                banner_timeout=timeout_s,
                auth_timeout=timeout_s,
                channel_timeout=timeout_s,
            )
        except BaseException as error:
            # Classified before closing: whether the transport is still up tells an auth refusal
            # from a connection that died during authentication.
            classified = self._classify(error, client)
            client.close()
            raise classified from None
        return client

    def _classify(self, error: BaseException, client: paramiko.SSHClient) -> BaseException:
        if isinstance(error, AccessError):
            return error
        if isinstance(error, paramiko.BadHostKeyException):
            return AccessError(
                f"ssh host key of {self.address} CHANGED: the server offered "
                f"{error.key.get_name()} {error.key.fingerprint}, the inventory expects "
                f"{error.expected_key.get_name()} {error.expected_key.fingerprint}; refusing to connect",
                node=self.node,
            )
        if isinstance(error, paramiko.AuthenticationException):
            transport = client.get_transport()
            if transport is None or not transport.is_active():
                # paramiko reports a connection that died mid-authentication as an auth failure.
                return Unreachable("connection closed during authentication")
            return AccessError(
                f"ssh {self.access.user or 'the local user'}@{self.address} was refused: "
                f"{error}; check ssh.user and ssh.key_file",
                node=self.node,
            )
        if isinstance(error, paramiko.SSHException) and "No authentication methods" in str(error):
            return AccessError(
                f"ssh to {self.address}: no key to log in with: set ssh.key_file", node=self.node
            )
        if isinstance(error, paramiko.SSHException | OSError | EOFError):
            return Unreachable(_describe_connect_error(error))
        return error

    def _trust(self, client: paramiko.SSHClient) -> None:
        if self.options.insecure_host_keys:
            # No known keys at all: paramiko then asks the policy, and so warns, on every connection.
            client.set_missing_host_key_policy(_WarnAndAccept(self.node))
            return
        client.set_missing_host_key_policy(_RejectUnknownHostKey(self.node))
        if self.access.host_key is not None:
            key_type, blob = self.access.host_key.split()[:2]
            try:
                key = paramiko.PKey.from_type_string(key_type, base64.b64decode(blob))
            except UnknownKeyType:
                raise AccessError(
                    f"ssh.host_key is a {key_type} key, which paramiko cannot check; give the host's "
                    "ed25519, ecdsa or rsa key",
                    node=self.node,
                ) from None
            client.get_host_keys().add(self._known_hosts_name, key_type, key)
            return
        known_hosts = self.access.known_hosts or Path("~/.ssh/known_hosts").expanduser()
        if known_hosts.is_file():
            try:
                client.load_system_host_keys(str(known_hosts))
            except OSError as error:
                raise AccessError(
                    f"cannot read known_hosts {known_hosts}: {error.strerror}", node=self.node
                ) from None

    @property
    def _known_hosts_name(self) -> str:
        # OpenSSH's known_hosts spelling: a bare host on port 22, "[host]:port" otherwise.
        if self.access.port == 22:
            return self.access.host
        return f"[{self.access.host}]:{self.access.port}"


def _execute(client: paramiko.SSHClient, command: str, *, timeout_s: float) -> CommandResult:
    try:
        stdin, stdout, stderr = client.exec_command(command, timeout=timeout_s)
        stdin.close()
        out = stdout.read()
        err = stderr.read()
        channel = stdout.channel
        channel.status_event.wait(timeout_s)
    except (paramiko.SSHException, OSError, EOFError) as error:
        raise ConnectionDropped(f"connection lost while running {command!r}: {error!r}") from None
    # paramiko leaves exit_status at -1 when the channel closed without an exit-status message.
    status = channel.exit_status if channel.exit_status_ready() and channel.exit_status >= 0 else None
    return CommandResult(
        exit_status=status,
        stdout=out.decode("utf-8", errors="replace"),
        stderr=err.decode("utf-8", errors="replace"),
    )


def _describe_connect_error(error: BaseException) -> str:
    if isinstance(error, paramiko.ssh_exception.NoValidConnectionsError):
        codes = {getattr(inner, "errno", None) for inner in error.errors.values()}
        if codes == {errno.ECONNREFUSED}:
            return "connection refused"
        return f"no connection: {error}"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, socket.timeout | TimeoutError):
        return "connection timed out"
    if isinstance(error, ConnectionResetError | EOFError):
        return "connection closed by the server"
    return f"{type(error).__name__}: {error}"


class BootIdWatch:
    """Proves a reboot by the kernel boot id over SSH: the before, the down, the new one."""

    def __init__(self, shell: SshShell, *, options: DriverOptions) -> None:
        self.shell = shell
        self.options = options
        self.before: str | None = None
        """The boot id before the reboot in progress (read by `read` or `remember`)."""
        self._after: str | None = None

    def read(self) -> str:
        """The current boot id, remembered as the one before the next reboot."""
        try:
            boot_id = self.shell.read_boot_id()
        except (Unreachable, CommandFailed) as error:
            seen = error.seen if isinstance(error, Unreachable) else str(error)
            raise DriverError(
                f"cannot read the boot id over ssh ({self.shell.address})", node=self.shell.node, seen=[seen]
            ) from None
        self.before = boot_id
        self._after = None
        return boot_id

    def remember(self) -> str:
        """The boot id before the reboot: the one already read, or read now."""
        return self.before if self.before is not None else self.read()

    def wait_down(self, *, deadline_s: float) -> Evidence:
        """Until ssh stops answering or answers with another boot id; RebootNotObserved if never."""
        before = self.remember()

        def probe(remaining_s: float) -> Done[Evidence] | NotYet:
            try:
                current = self.shell.read_boot_id(timeout_s=self._probe_timeout_s(remaining_s))
            except Unreachable as error:
                return Done(Evidence(proven=True, detail=f"ssh: {error.seen}"), seen=error.seen)
            except CommandFailed as error:
                return NotYet(f"ssh answered but {error}")
            if current != before:
                self._after = current
                detail = f"boot id changed {before} → {current}"
                return Done(Evidence(proven=True, detail=detail), seen=detail)
            return NotYet(f"ssh answered, boot id still {before}")

        return driver.wait_for(
            probe,
            node=self.shell.node,
            awaiting="ssh to stop answering or show a new boot id",
            deadline_s=deadline_s,
            options=self.options,
            failure=driver.RebootNotObserved,
        )

    def wait_up(self, *, deadline_s: float) -> str:
        """Until an ssh session returns a boot id other than the one before; NodeNotBack if never."""
        before = self.remember()

        def probe(remaining_s: float) -> Done[str] | NotYet:
            if self._after is not None:
                return Done(self._after, seen=f"new boot id {self._after} (seen while going down)")
            try:
                current = self.shell.read_boot_id(timeout_s=self._probe_timeout_s(remaining_s))
            except Unreachable as error:
                return NotYet(f"ssh: {error.seen}")
            except CommandFailed as error:
                return NotYet(f"ssh answered but {error}")
            if current == before:
                return NotYet(f"ssh answers, but boot id still {before}")
            return Done(current, seen=f"new boot id {current}")

        new = driver.wait_for(
            probe,
            node=self.shell.node,
            awaiting=f"ssh to answer with a new boot id (was {before})",
            deadline_s=deadline_s,
            options=self.options,
            failure=driver.NodeNotBack,
        )
        self.before, self._after = new, None
        return new

    def _probe_timeout_s(self, remaining_s: float) -> float:
        return min(self.options.connect_timeout_s, max(remaining_s, _SHORTEST_PROBE_S))


class SshDriver:
    """Reboots a node by running its reboot command over SSH."""

    kind: inventory.DriverKind = "ssh"
    restarts_kernel = True

    def __init__(self, node: str, access: inventory.SshAccess, *, options: DriverOptions) -> None:
        self.node = node
        self.access = access
        self.shell = SshShell(node, access, options=options)
        self.watch = BootIdWatch(self.shell, options=options)

    def __repr__(self) -> str:
        return f"SshDriver({self.node!r}, {self.access.user or ''}@{self.shell.address})"

    def check(self) -> None:
        """Log in and read the boot id."""
        self.watch.read()

    def boot_id(self) -> str:
        """The current kernel boot id (DriverError if ssh does not answer)."""
        return self.watch.read()

    def reboot(self) -> None:
        """Run the reboot command; a dropped connection counts as accepted."""
        self.watch.remember()
        command = self.access.effective_reboot_command
        try:
            result = self.shell.run(command)
        except ConnectionDropped as error:
            logger.info("node %s: %r: %s, as a reboot does", self.node, command, error.seen)
            return
        except Unreachable as error:
            raise DriverError(
                f"cannot connect to run the reboot command {command!r}",
                node=self.node,
                seen=[error.seen],
            ) from None
        if result.exit_status is None:
            logger.info("node %s: %r: connection closed before an exit status", self.node, command)
            return
        if result.exit_status != 0:
            raise DriverError(
                f"reboot command {command!r} failed with exit status {result.exit_status}",
                node=self.node,
                seen=[result.stderr.strip() or "(no stderr)"],
            )
        logger.info("node %s: %r → exit 0, reboot accepted", self.node, command)

    def wait_down(self, *, deadline_s: float) -> Evidence:
        """Until ssh stops answering or shows a new boot id."""
        return self.watch.wait_down(deadline_s=deadline_s)

    def wait_up(self, *, deadline_s: float) -> str:
        """Until ssh answers with a new boot id; returns it."""
        return self.watch.wait_up(deadline_s=deadline_s)

    def restore(self) -> None:
        """Nothing to do: a command-issued reboot comes back by itself."""


def build(node: inventory.Node, *, options: DriverOptions) -> driver.RebootDriver:
    """The driver for a node whose power driver is ssh."""
    assert node.ssh is not None, f"node {node.name} has no ssh section"
    return SshDriver(node.name, node.ssh, options=options)


def watch_for(node: inventory.Node, *, options: DriverOptions) -> BootIdWatch | None:
    """A boot id watch for a node with ssh beside its power driver, else None."""
    if node.ssh is None:
        return None
    return BootIdWatch(SshShell(node.name, node.ssh, options=options), options=options)
