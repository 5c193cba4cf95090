"""With the lhsoak plugin, Allure's set-up and tear-down list only the fixtures that say something.

A small suite runs in a fresh pytest with `--alluredir`, with and without the plugin: allure-pytest
alone lists every fixture and finalizer; with the plugin, the silent ones are gone and a step, an
attachment or a failure keeps a fixture in.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

SUITE = textwrap.dedent(
    """
    import allure
    import pytest


    @pytest.fixture
    def says_nothing():
        yield


    @pytest.fixture
    def tells_a_step():
        with allure.step("cluster adopted"):
            pass
        yield


    @pytest.fixture
    def attaches():
        allure.attach("run dir", name="where")


    @pytest.fixture
    def breaks_in_teardown():
        yield
        raise RuntimeError("could not restore RecurringJob soak-snap")


    def test_uses_them(says_nothing, tells_a_step, attaches, breaks_in_teardown):
        pass
    """
)


def _fixture_names(tmp_path: Path, *plugin: str) -> tuple[set[str], set[str]]:
    """Run SUITE; the fixture names of every set-up and tear-down entry Allure got (finalizers as
    their fixture's name)."""
    (tmp_path / "test_suite.py").write_text(SUITE)
    results = tmp_path / "allure-results"
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *plugin]
    run = subprocess.run(
        [*command, f"--alluredir={results}", "test_suite.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    # The teardown error makes it exit 1; anything else (a usage error, a crash) is not this test's.
    assert run.returncode == 1, run.stdout + run.stderr
    befores: set[str] = set()
    afters: set[str] = set()
    for path in results.glob("*-container.json"):
        container = json.loads(path.read_text())
        befores |= {entry["name"] for entry in container.get("befores", [])}
        afters |= {entry["name"].split("::")[0] for entry in container.get("afters", [])}
    return befores, afters


def test_allure_alone_lists_every_fixture(tmp_path: Path) -> None:
    befores, afters = _fixture_names(tmp_path)

    assert {"says_nothing", "tells_a_step", "attaches", "breaks_in_teardown"} <= befores
    assert {"says_nothing", "breaks_in_teardown"} <= afters


def test_with_the_plugin_only_fixtures_that_say_something_are_listed(tmp_path: Path) -> None:
    befores, afters = _fixture_names(tmp_path, "-p", "lhsoak.pytest_plugin")

    assert befores == {"tells_a_step", "attaches"}
    assert afters == {"breaks_in_teardown"}
