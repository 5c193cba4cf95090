"""The mission scenario: recurring jobs under repeated node reboots, one test per chaos step.

Run against any cluster: `pytest suites/soak --kubeconfig … --inventory …` (or `make soak`).
The final test is the verdict engine's decision over the whole ledger.
"""

from __future__ import annotations

import time

import pytest

from lhsoak import pytest_plugin
from lhsoak.soak import SoakRun


def test_longhorn_is_ready_and_the_jobs_are_configured(soak_run: SoakRun) -> None:
    assert soak_run.health is not None
    assert soak_run.health.healthy, soak_run.health.problems
    assert soak_run.setup is not None
    assert soak_run.setup.volumes


def test_chaos_step(
    soak_session: pytest_plugin._SoakSession, soak_step_index: int, request: pytest.FixtureRequest
) -> None:
    pytest_plugin.run_step(
        soak_session,
        soak_step_index,
        keep_going=request.config.getoption("keep_going"),
        clock=time.monotonic,
    )


def test_both_jobs_keep_firing_with_bounded_lag(soak_run: SoakRun) -> None:
    soak_run.settle()
    pytest_plugin.assert_verdict(soak_run)
