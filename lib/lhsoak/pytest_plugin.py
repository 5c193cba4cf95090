"""The lhsoak pytest plugin: options, fixtures and reporting hooks for the chaos suites."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("lhsoak", "Longhorn recurring-job soak")
