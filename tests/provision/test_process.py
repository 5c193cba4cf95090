"""Running tools: output, failures, time limits, and interruption (SIGTERM) unwinding with the
child stopped. Real processes (sh, sleep), no stand-ins."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from lhsoak.provision import process
from lhsoak.provision.process import Command, CommandFailed, Interrupted, Runner

from ..support.waits import wait_until


def runner(said: list[str] | None = None) -> Runner:
    return Runner(say=(said if said is not None else []).append)


def test_a_command_is_shown_then_run_with_its_environment() -> None:
    said: list[str] = []
    command = Command(argv=("sh", "-c", 'echo "$GREETING"'), what="greet", env={"GREETING": "hello there"})

    outcome = runner(said).run(command, capture=True)

    assert outcome.stdout == "hello there\n"
    assert said == ["$ GREETING='hello there' sh -c 'echo \"$GREETING\"'"]


def test_a_failure_says_what_was_done_and_ends_with_stderr() -> None:
    command = Command(
        argv=("sh", "-c", "echo progress; echo 'no such cluster' >&2; exit 3"), what="delete it"
    )

    with pytest.raises(CommandFailed) as caught:
        runner().run(command, capture=True)

    assert str(caught.value) == (
        "delete it: `sh -c 'echo progress; echo '\"'\"'no such cluster'\"'\"' >&2; exit 3'` "
        "failed with exit status 3: no such cluster"
    )
    assert runner().run(command, capture=True, check=False).returncode == 3


def test_a_missing_program_is_a_clear_failure() -> None:
    with pytest.raises(CommandFailed, match=r"^install: cannot run lhsoak-no-such-tool: No such file"):
        runner().run(Command(argv=("lhsoak-no-such-tool",), what="install"))


def test_an_overdue_command_is_stopped(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    command = Command(argv=("sh", "-c", f"echo $$ > {pid_file}; exec sleep 30"), what="hang", timeout_s=0.5)
    started = time.monotonic()

    with pytest.raises(CommandFailed, match=r"did not finish within 0\.5s"):
        runner().run(command, capture=True)

    assert time.monotonic() - started < 10
    assert not _alive(int(pid_file.read_text()))


def test_sigterm_unwinds_and_stops_the_running_command(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    command = Command(argv=("sh", "-c", f"echo $$ > {pid_file}; exec sleep 30"), what="create", timeout_s=60)
    _signal_when(pid_file, signal.SIGTERM)

    with pytest.raises(Interrupted) as caught, process.interruptible():
        runner().run(command)

    assert caught.value.signum == signal.SIGTERM
    assert isinstance(caught.value, KeyboardInterrupt)  # the CLI's exit 130 path
    assert not _alive(int(pid_file.read_text()))


def test_a_shielded_teardown_notes_signals_and_finishes() -> None:
    said: list[str] = []
    with process.shielded(said.append) as received:
        os.kill(os.getpid(), signal.SIGTERM)
        # A signal handler runs between bytecodes of the main thread: this loop gives it the chance.
        deadline = time.monotonic() + 5
        while not received and time.monotonic() < deadline:
            time.sleep(0.01)
        finished = True
    assert finished
    assert received == [signal.SIGTERM]
    assert said == ["SIGTERM received: finishing the teardown first"]


def _signal_when(pid_file: Path, signum: int) -> None:
    """Send `signum` to this process once the child has written its pid (from another thread)."""

    def watch() -> None:
        wait_until(lambda: pid_file.exists() and bool(pid_file.read_text().strip()), what="the child's pid")
        os.kill(os.getpid(), signum)

    threading.Thread(target=watch, daemon=True).start()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
