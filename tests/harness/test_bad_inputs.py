"""Bad input ends a soak with one clear message and exit code 2, before the cluster is touched.

Each case runs the real command line (`lhsoak soak --kubeconfig … -- <suite options>`) against a
kubeconfig whose server is a closed loopback port: whatever the case, nothing can be touched.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    server = f"https://127.0.0.1:{_closed_port()}"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "lab-ctx", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "lab-ctx",
            }
        )
    )
    return path


def _soak(tmp_path: Path, kubeconfig: Path, *suite_options: str) -> subprocess.CompletedProcess[str]:
    command = [
        sys.executable,
        "-m",
        "lhsoak",
        "soak",
        f"--kubeconfig={kubeconfig}",
        f"--reports-dir={tmp_path / 'reports'}",
        "--",
        "-p",
        "no:randomly",
        *suite_options,
    ]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)


def _assert_usage_error(
    result: subprocess.CompletedProcess[str], expected: str, *, refused_before_pytest_in: Path | None = None
) -> None:
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    messages = [
        line
        for line in output.splitlines()
        if ("lhsoak:" in line or line.startswith("lhsoak soak:")) and expected in line
    ]
    assert messages, f"no message containing {expected!r} in:\n{output}"
    if refused_before_pytest_in is not None:
        # Refused by `lhsoak soak` itself: one line, no pytest session, no report directory.
        assert "test session starts" not in output, output
        assert not (refused_before_pytest_in / "reports").exists()


def test_an_invalid_cron_is_refused(tmp_path: Path, kubeconfig: Path) -> None:
    result = _soak(tmp_path, kubeconfig, "--allow-context=lab-ctx", "--cron=*/2 * * *")
    _assert_usage_error(result, "cron", refused_before_pytest_in=tmp_path)


def test_a_seconds_cron_is_refused_unless_allowed(tmp_path: Path, kubeconfig: Path) -> None:
    result = _soak(tmp_path, kubeconfig, "--allow-context=lab-ctx", "--cron=*/3 * * * * *")
    _assert_usage_error(result, "cron", refused_before_pytest_in=tmp_path)


def test_a_job_prefix_kubernetes_would_refuse_is_refused(tmp_path: Path, kubeconfig: Path) -> None:
    result = _soak(tmp_path, kubeconfig, "--allow-context=lab-ctx", "--job-prefix=QA_Team")
    _assert_usage_error(result, "--job-prefix 'QA_Team': lowercase letters, digits and '-'")


def test_retain_zero_is_refused(tmp_path: Path, kubeconfig: Path) -> None:
    result = _soak(tmp_path, kubeconfig, "--allow-context=lab-ctx", "--retain=0")
    _assert_usage_error(result, "retain must be at least 1")


def test_a_context_that_was_not_allowed_is_refused(tmp_path: Path, kubeconfig: Path) -> None:
    result = _soak(tmp_path, kubeconfig, "--allow-context=production")
    _assert_usage_error(result, "context 'lab-ctx' is not allowed", refused_before_pytest_in=tmp_path)


def test_an_unreachable_api_server_is_refused(tmp_path: Path, kubeconfig: Path) -> None:
    result = _soak(tmp_path, kubeconfig, "--allow-context=lab-ctx", "--plan=none")
    _assert_usage_error(result, "unreachable")


def test_an_inventory_with_a_missing_key_file_is_refused(tmp_path: Path, kubeconfig: Path) -> None:
    inventory = tmp_path / "inventory.yaml"
    inventory.write_text(
        yaml.safe_dump(
            {
                "cluster": {"context": "lab-ctx"},
                "nodes": [
                    {
                        "name": "worker-1",
                        "role": "worker",
                        "ssh": {"host": "127.0.0.1", "user": "lab", "key_file": str(tmp_path / "absent")},
                    }
                ],
            }
        )
    )
    result = _soak(tmp_path, kubeconfig, f"--inventory={inventory}")
    _assert_usage_error(result, "absent", refused_before_pytest_in=tmp_path)


def test_a_missing_kubeconfig_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-kubeconfig"
    result = _soak(tmp_path, missing, "--allow-context=lab-ctx")
    _assert_usage_error(result, f"cannot read kubeconfig {missing}", refused_before_pytest_in=tmp_path)


def test_a_progress_interval_of_zero_is_refused(tmp_path: Path, kubeconfig: Path) -> None:
    result = _soak(tmp_path, kubeconfig, "--allow-context=lab-ctx", "--progress-every=0")
    _assert_usage_error(result, "--progress-every must be a positive number of seconds")
