"""Running the tools (docker, kind, k3d, helm, kubectl): argument lists, never a shell; every command
has a time limit; an interruption (SIGINT or SIGTERM) stops the running command and unwinds, so the
caller's `finally` can still delete the cluster.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import subprocess
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import FrameType
from typing import TextIO

log = logging.getLogger(__name__)


class ProvisionError(Exception):
    """Provisioning could not go on: the message says what was being done and what was seen."""


class CommandFailed(ProvisionError):
    """A command exited non-zero, could not be started, or ran past its time limit."""


class Interrupted(KeyboardInterrupt):
    """SIGINT or SIGTERM arrived; a KeyboardInterrupt, so the CLI exits 130 after cleaning up."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


@dataclass(frozen=True)
class Command:
    """One tool invocation: its argument list, what it is for, its time limit and extra environment."""

    argv: tuple[str, ...]
    """The program and its arguments (run without a shell)."""
    what: str
    """What the command does, for progress lines and errors ("create the kind cluster")."""
    timeout_s: float = 300.0
    """Seconds before the command is stopped as hung; default 300."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Variables added to the inherited environment; default none."""
    stop_signal: int = signal.SIGTERM
    """What stops it when interrupted or overdue (SIGKILL follows after `stop_grace_s`); SIGTERM."""
    stop_grace_s: float = 15.0
    """Seconds between `stop_signal` and SIGKILL; default 15."""

    @property
    def shown(self) -> str:
        """The command line as a shell would show it."""
        prefix = " ".join(f"{key}={shlex.quote(value)}" for key, value in self.env.items())
        return f"{prefix} {shlex.join(self.argv)}".strip()


@dataclass(frozen=True)
class Outcome:
    """What a finished command printed (captured output only) and its exit status."""

    returncode: int
    stdout: str
    stderr: str


class Runner:
    """Runs commands one at a time, printing each command line before it runs."""

    def __init__(self, *, say: Callable[[str], None], output: TextIO | None = None) -> None:
        self._say = say
        self._output = output

    def run(self, command: Command, *, capture: bool = False, check: bool = True) -> Outcome:
        """Run `command` to the end; CommandFailed if it fails (when `check`) or overruns its limit.

        Without `capture` its output goes straight to this process's output, so a long build or
        install shows its own progress.
        """
        self._say(f"$ {command.shown}")
        # Not captured: the command writes to our stdout/stderr (or `output`) directly.
        stream: int | TextIO | None = subprocess.PIPE if capture else self._output
        try:
            process = subprocess.Popen(
                command.argv,
                stdout=stream,
                stderr=subprocess.PIPE if capture else (subprocess.STDOUT if self._output else None),
                stdin=subprocess.DEVNULL,
                text=True,
                env={**os.environ, **command.env},
            )
        except OSError as error:
            raise CommandFailed(f"{command.what}: cannot run {command.argv[0]}: {error.strerror}") from None
        with process:  # closes the pipes and reaps the child however this block ends
            try:
                stdout, stderr = process.communicate(timeout=command.timeout_s)
            except subprocess.TimeoutExpired:
                stop(process, command)
                raise CommandFailed(
                    f"{command.what}: `{command.shown}` did not finish within {command.timeout_s:g}s"
                ) from None
            except BaseException:
                # Interrupted: the command must not outlive us (a half-made cluster is deleted next).
                stop(process, command)
                raise
        outcome = Outcome(process.returncode, stdout or "", stderr or "")
        if check and outcome.returncode != 0:
            detail = _tail(outcome.stderr or outcome.stdout)
            raise CommandFailed(
                f"{command.what}: `{command.shown}` failed with exit status {outcome.returncode}"
                + (f": {detail}" if detail else "")
            )
        return outcome


def stop(process: subprocess.Popen[str], command: Command) -> None:
    """The command's stop signal, then SIGKILL after its grace period; reaps the process."""
    if process.poll() is not None:
        return
    process.send_signal(command.stop_signal)
    try:
        process.wait(timeout=command.stop_grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def _tail(text: str, *, lines: int = 5) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:] if line.strip())


@contextlib.contextmanager
def interruptible() -> Iterator[None]:
    """Within: SIGINT and SIGTERM raise Interrupted in the main thread (CI cancels with SIGTERM)."""

    def handler(signum: int, _frame: FrameType | None) -> None:
        raise Interrupted(signum)

    previous = {signum: signal.signal(signum, handler) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextlib.contextmanager
def shielded(say: Callable[[str], None]) -> Iterator[list[int]]:
    """Within: SIGINT and SIGTERM are noted, not raised, so a teardown runs to its end; every
    teardown command has its own time limit, so this cannot hang. Yields the signals received."""
    received: list[int] = []

    def handler(signum: int, _frame: FrameType | None) -> None:
        received.append(signum)
        say(f"{signal.Signals(signum).name} received: finishing the teardown first")

    previous = {signum: signal.signal(signum, handler) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield received
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)
