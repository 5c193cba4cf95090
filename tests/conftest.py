"""Fixtures every test topic may use."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .support.loop import LoopThread, running_loop


@pytest.fixture
def lab_loop() -> Iterator[LoopThread]:
    """The lab's event loop in its own thread; the test is a blocking client from the test's thread."""
    with running_loop() as loop:
        yield loop
