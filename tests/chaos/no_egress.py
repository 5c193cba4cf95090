"""A guard for the no-egress rule: while it is on, a test's process reaches loopback and nothing else.

Cloud SDKs look for credentials in places of their own (Google's metadata server, Azure's IMDS at
169.254.169.254, login.microsoftonline.com, the Azure CLI) and swallow the failures, so a test that
only checks the driver's answer cannot tell whether one of them went out. `NoEgress` is an audit
hook (PEP 578, so it sees every library's sockets, whichever HTTP stack opened them): a name lookup
or a connection to anything outside 127.0.0.0/8, ::1 and "localhost", and any subprocess (which the
hook could not follow), fails at once with `EgressBlocked` and is recorded, and the test asserts
the record is empty. Unix sockets are local and allowed.

An audit hook cannot be removed, so one is installed for the life of the process and does nothing
unless a guard is on.
"""

from __future__ import annotations

import ipaddress
import sys
import threading
from types import TracebackType

_ADDRESS_EVENTS = frozenset({"socket.connect", "socket.sendto", "socket.sendmsg"})
_NAME_EVENTS = frozenset({"socket.getaddrinfo", "socket.gethostbyname", "socket.gethostbyname_ex"})
_SPAWN_EVENTS = frozenset({"subprocess.Popen", "os.posix_spawn", "os.exec", "os.system"})

_lock = threading.Lock()
_active: NoEgress | None = None
_installed = False


class EgressBlocked(ConnectionRefusedError):
    """Raised in place of a lookup, connection or subprocess that would leave loopback."""


class NoEgress:
    """While entered, everything that would leave loopback fails and lands in `attempts`."""

    def __init__(self) -> None:
        self.attempts: list[str] = []

    def __enter__(self) -> NoEgress:
        global _active, _installed
        with _lock:
            if not _installed:
                sys.addaudithook(_audit)
                _installed = True
            _active = self
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        global _active
        with _lock:
            _active = None


def _audit(event: str, args: tuple[object, ...]) -> None:
    guard = _active
    if guard is None:
        return
    if event in _NAME_EVENTS:
        escape = None if is_loopback(args[0]) else f"{event} {args[0]!r}"
    elif event in _ADDRESS_EVENTS:
        escape = None if _is_local_address(args[1]) else f"{event} {args[1]!r}"
    elif event in _SPAWN_EVENTS:
        escape = f"{event} {args[0]!r}"
    else:
        return
    if escape is not None:
        guard.attempts.append(escape)
        raise EgressBlocked(f"no-egress guard: {escape}")


def is_loopback(host: object) -> bool:
    """Whether `host` (a name or an address, str or bytes; None is the local wildcard) is loopback."""
    if host is None:
        return True
    name = host.decode() if isinstance(host, bytes) else str(host)
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def _is_local_address(address: object) -> bool:
    if isinstance(address, str | bytes):
        return True  # a Unix socket path
    if isinstance(address, tuple) and address:
        return is_loopback(address[0])
    return False
