"""The soak suite collects one test per chaos step; a plan that reboots nothing gets one skipped
`no-steps` test that says why, not pytest's bare `[NOTSET]`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lhsoak.commands import soak as soak_command

REPO = Path(__file__).resolve().parents[2]


def _collected(*options: str) -> list[str]:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "suites/soak", "--collect-only", "-q", *options],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return [line.split("::")[-1] for line in result.stdout.splitlines() if "::" in line]


def test_each_chaos_step_is_a_test() -> None:
    steps = [name for name in _collected("--iterations=2") if name.startswith("test_chaos_step")]
    assert steps == ["test_chaos_step[step-01]", "test_chaos_step[step-02]"]


@pytest.mark.parametrize("option", ["--plan=none", "--iterations=0"])
def test_a_plan_without_steps_collects_one_named_skip(option: str) -> None:
    steps = [name for name in _collected(option) if name.startswith("test_chaos_step")]
    assert steps == ["test_chaos_step[no-steps]"]


def test_a_duration_collects_only_the_steps_that_can_start_within_it() -> None:
    # Every step waits for a tick later than the previous step's: at most 60/4 + 1 in 60 s.
    seconds = _collected("--duration=60", "--allow-seconds-cron", "--cron=*/4 * * * * *")
    assert len([name for name in seconds if name.startswith("test_chaos_step")]) == 16
    minutes = _collected("--duration=600")  # the default */2 minutes
    assert len([name for name in minutes if name.startswith("test_chaos_step")]) == 6


def test_a_lab_soak_keeps_the_duration_it_was_given() -> None:
    assert "--iterations=3" in soak_command.lab_defaults("healthy", [])
    flags = soak_command.lab_defaults("healthy", ["--duration=600"])
    assert not [flag for flag in flags if flag.startswith("--iterations")], flags
    assert "--lag-bound=8" in flags
