"""Root conftest: registers the lhsoak pytest plugin for the suites and the project's own tests."""

pytest_plugins = ["lhsoak.pytest_plugin"]
