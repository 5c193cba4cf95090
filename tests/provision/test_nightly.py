"""The nightly flow deletes the cluster it made on failure and on SIGTERM, never one it did not make.

kind, helm and docker are not obtainable here, so small stand-in executables take their place on
PATH: each records its arguments, `kind create cluster` writes a kubeconfig of the lab (a real
Kubernetes API on 127.0.0.1) where the flow then waits for real. kubectl is the real one.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lhsoak import cli, errors
from lhsoak.provision import nightly
from lhsoak.provision.process import ProvisionError, Runner
from lhsoak.provision.waits import Pace

from ..support.waits import wait_until
from .conftest import Lab

REPO = Path(__file__).resolve().parents[2]
FAKE_TOOL = """\
#!/bin/sh
# Stand-in for {name}: records its arguments; see the test module's docstring.
echo "{name} $*" >> "$LHSOAK_TOOL_LOG"
case "{name} $1 $2" in
  "kind get clusters") cat "$LHSOAK_EXISTING_CLUSTERS" 2>/dev/null; exit 0 ;;
  "kind create cluster")
    while [ "$#" -gt 0 ]; do
      if [ "$1" = "--kubeconfig" ]; then cp "$LHSOAK_LAB_KUBECONFIG" "$2"; fi
      shift
    done
    if [ -n "$LHSOAK_CREATE_HANGS" ]; then echo $$ > "$LHSOAK_CREATE_HANGS"; exec sleep 60; fi ;;
esac
exit 0
"""


@pytest.fixture
def tools(tmp_path: Path, lab: Lab, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Stand-ins for docker, kind and helm first on PATH; returns the log of their calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("docker", "kind", "helm"):
        tool = bin_dir / name
        tool.write_text(FAKE_TOOL.format(name=name))
        tool.chmod(0o755)
    log = tmp_path / "tools.log"
    log.touch()
    for index, name in enumerate(["control-plane", "worker", "worker2", "worker3"]):
        lab.add_node(f"lhsoak-test-{name}", control_plane=index == 0)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("LHSOAK_TOOL_LOG", str(log))
    monkeypatch.setenv("LHSOAK_LAB_KUBECONFIG", str(lab.kubeconfig(context="kind-lhsoak-test")))
    return log


def config(tmp_path: Path, **changes: object) -> nightly.NightlyConfig:
    fields: dict[str, object] = {
        "provider": "kind",
        "repo": REPO,
        "run_id": "nightly-kind-test",
        "cluster": "lhsoak-test",
        "reports_dir": tmp_path / "reports",
        "check_host": False,
        "deadlines": nightly.Deadlines(nodes_s=10, manager_s=0.3),
        "pace": Pace(poll_s=0.05, progress_every_s=0.1),
    }
    fields.update(changes)
    return nightly.NightlyConfig(**fields)  # type: ignore[arg-type]


def calls(log: Path) -> list[str]:
    return log.read_text().splitlines()


needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")


@pytest.mark.parametrize("soak", [True, False], ids=["nightly", "up"])
def test_a_failed_readiness_wait_saves_diagnostics_and_deletes_the_cluster(
    tools: Path, tmp_path: Path, soak: bool
) -> None:
    kubectl_log = tmp_path / "kubectl.log"
    fake_kubectl = tmp_path / "bin" / "kubectl"
    fake_kubectl.write_text(f'#!/bin/sh\necho "kubectl $*" >> {kubectl_log}\necho "state of $*"\n')
    fake_kubectl.chmod(0o755)
    said: list[str] = []
    run = nightly.Nightly(config(tmp_path, soak=soak), say=said.append, runner=Runner(say=said.append))

    with pytest.raises(ProvisionError) as caught:
        run.run()

    assert str(caught.value) == (
        "longhorn-manager on every node: not reached within 0.3s; "
        "last seen: DaemonSet longhorn-manager does not exist yet"
    )
    made = calls(tools)
    assert made[0] == "kind get clusters"
    assert made[1].startswith("docker build --tag lhsoak/kind-node:v1.36.1-lh1 ")
    assert made[2].startswith("kind create cluster --name lhsoak-test --config ")
    assert made[3].startswith("helm upgrade --install longhorn longhorn ")
    assert made[-1] == f"kind delete cluster --name lhsoak-test --kubeconfig {run.kubeconfig}"
    assert any(line.startswith("every node Ready: 4/4 nodes Ready") for line in said)
    diagnostics = tmp_path / "reports" / "provision" / "lhsoak-test" / "diagnostics"
    assert (diagnostics / "pods.txt").read_text().startswith("state of --kubeconfig ")
    assert {path.name for path in diagnostics.iterdir()} >= {
        "nodes.txt",
        "events.txt",
        "longhorn-manager.log",
    }
    secrets_file = diagnostics.parent / "minio-secret.yaml"
    assert secrets_file.stat().st_mode & 0o077 == 0  # credentials readable by the owner only


@needs_kubectl
def test_a_failed_command_deletes_the_cluster_and_says_what_failed(tools: Path, tmp_path: Path) -> None:
    # The real kubectl applies the MinIO manifest to the lab, which serves no Secrets: it fails.
    said: list[str] = []
    run = nightly.Nightly(config(tmp_path), say=said.append, runner=Runner(say=said.append))

    with pytest.raises(
        ProvisionError, match=r"^create the MinIO backup store and its credentials: `kubectl "
    ):
        run.run()

    assert calls(tools)[-1].startswith("kind delete cluster --name lhsoak-test")
    assert any(line == "cluster lhsoak-test deleted" for line in said)


def test_a_cluster_that_existed_before_is_refused_and_left_alone(
    tools: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    existing = tmp_path / "existing"
    existing.write_text("kind\nlhsoak-test\n")
    monkeypatch.setenv("LHSOAK_EXISTING_CLUSTERS", str(existing))
    run = nightly.Nightly(config(tmp_path), say=lambda _t: None, runner=Runner(say=lambda _t: None))

    with pytest.raises(errors.UsageError, match="a kind cluster named lhsoak-test exists already"):
        run.run()

    assert calls(tools) == ["kind get clusters"]  # no build, no create, and above all no delete


def test_missing_tools_are_named_before_anything_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    run = nightly.Nightly(
        config(tmp_path, provider="k3d"), say=lambda _t: None, runner=Runner(say=lambda _t: None)
    )

    with pytest.raises(errors.UsageError) as caught:
        run.run()

    assert str(caught.value).startswith("missing on PATH: docker, k3d, helm, kubectl; install them with ")
    assert "infra/ci/install-tools.sh k3d" in str(caught.value)


def test_sigterm_during_cluster_creation_stops_it_and_deletes_the_cluster(
    tools: Path, tmp_path: Path
) -> None:
    hung = tmp_path / "create.pid"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lhsoak",
            "provision",
            "nightly",
            "--provider=kind",
            "--cluster-name=lhsoak-test",
            f"--reports-dir={tmp_path / 'reports'}",
            "--skip-host-check",
        ],
        cwd=REPO,
        env={**os.environ, "LHSOAK_CREATE_HANGS": str(hung)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_until(
            lambda: hung.exists() and bool(hung.read_text().strip()),
            what="the hung `kind create cluster` to write its pid",
            deadline_s=30,
            interval_s=0.05,
        )
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()

    assert process.returncode == errors.EXIT_INTERRUPTED, output
    assert calls(tools)[-1].startswith("kind delete cluster --name lhsoak-test")
    assert "cluster lhsoak-test deleted" in output
    assert "lhsoak provision: interrupted" in output
    pid = int(hung.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the hung `kind create` was stopped, not left behind


def test_down_deletes_the_named_cluster(tools: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    assert cli.main(["provision", "down", "--provider=kind", "--cluster-name=lhsoak-up"]) == 0
    assert calls(tools)[-1].startswith("kind delete cluster --name lhsoak-up --kubeconfig ")


def test_user_soak_options_replace_the_nightly_ones_of_the_same_name() -> None:
    merged = nightly.soak_arguments(["--plan=cluster", "--keep-going"])
    assert merged[-2:] == ["--plan=cluster", "--keep-going"]
    assert "--plan=worker" not in merged
    assert "--iterations=3" in merged
    assert nightly.soak_arguments([]) == list(nightly.NIGHTLY_SOAK_ARGS)


def test_nightly_crons_are_the_five_field_kind_a_real_longhorn_accepts() -> None:
    crons = [arg.split("=", 1)[1] for arg in nightly.NIGHTLY_SOAK_ARGS if arg.startswith("--cron")]
    assert crons == ["*/2 * * * *"]


def test_the_default_run_id_is_a_dns_label() -> None:
    run_id = nightly.default_run_id("k3d")
    assert re.fullmatch(r"nightly-k3d-\d{8}-\d{6}", run_id)
