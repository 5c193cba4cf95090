"""No chaos: both recurring jobs fire on schedule with bounded lag.

Run with `--plan none`; the tick count comes from `--ticks-after`.
"""

from __future__ import annotations

from lhsoak import pytest_plugin
from lhsoak.soak import SoakRun


def test_longhorn_is_ready_and_the_jobs_are_configured(soak_run: SoakRun) -> None:
    assert soak_run.health is not None
    assert soak_run.health.healthy, soak_run.health.problems


def test_both_jobs_fire_on_schedule(soak_run: SoakRun) -> None:
    soak_run.settle()
    pytest_plugin.assert_verdict(soak_run)
