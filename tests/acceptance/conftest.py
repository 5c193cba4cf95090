"""Acceptance tests drive the real command line against a lab started per test."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from lhsoak.lab import ec2
from lhsoak.lab.process import LabProcess

REPO = Path(__file__).resolve().parents[2]

# A compressed soak: 4-second ticks, deadlines in seconds.
LAB_SOAK_OPTIONS = (
    "--allow-seconds-cron",
    "--cron=*/4 * * * * *",
    "--lag-bound=8",
    "--settle=4",
    "--down-deadline=30",
    "--ready-deadline=60",
)


# The lab's EC2 endpoint takes any key; the AWS driver still wants credentials from its usual chain.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": ec2.FAKE_ACCESS_KEY_ID,
    "AWS_SECRET_ACCESS_KEY": ec2.FAKE_SECRET_ACCESS_KEY,
    "AWS_DEFAULT_REGION": ec2.REGION,
}


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[LabProcess]:
    started = LabProcess.start(state_dir=tmp_path / "lab", ec2=True)
    yield started
    started.stop()


def lhsoak(
    *arguments: str,
    env: dict[str, str] | None = None,
    ignore_sigint: bool = False,
    own_process_group: bool = False,
) -> subprocess.Popen[str]:
    """`python -m lhsoak ARGUMENTS`; `ignore_sigint` starts it as a shell's background job does,
    with SIGINT ignored (inherited across exec); `own_process_group` as a shell's foreground job,
    so a signal to its group reaches it and its children as a terminal's Ctrl-C does."""
    command = [sys.executable, "-m", "lhsoak", *arguments]
    if ignore_sigint:
        command = ["sh", "-c", 'trap "" INT; exec "$@"', "sh", *command]
    return subprocess.Popen(
        command,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, **(env or {})},
        process_group=0 if own_process_group else None,
    )
