"""The tools' command lines: kubectl's are run for real (against the lab); kind, k3d and helm are
not obtainable here (no Debian package, no registry release), so their command lines are checked
against the flags and argument counts their sources define, listed below with where they come from.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from lhsoak.provision import backupstore, helm, images, k3d, kind, kubectl, providers, versions
from lhsoak.provision.process import Command

from .conftest import Lab


@dataclass(frozen=True)
class CliSpec:
    """A cobra command's argument rules: flags taking a value, boolean flags, positional bounds."""

    path: tuple[str, ...]
    valued: frozenset[str] = frozenset()
    boolean: frozenset[str] = frozenset()
    positional: tuple[int, int | None] = (0, 0)
    shorthands: dict[str, str] = field(default_factory=dict)

    def problems(self, argv: tuple[str, ...]) -> list[str]:
        """What a cobra parser with these rules would reject in `argv` (empty: accepted)."""
        if argv[: len(self.path)] != self.path:
            return [f"not a `{' '.join(self.path)}` command: {argv}"]
        found: list[str] = []
        positional = 0
        rest = list(argv[len(self.path) :])
        while rest:
            arg = rest.pop(0)
            if not arg.startswith("-"):
                positional += 1
                continue
            name, has_value, value = arg.lstrip("-").partition("=")
            name = self.shorthands.get(name, name) if not arg.startswith("--") else name
            if name in self.boolean:
                if has_value and value not in ("true", "false"):
                    found.append(f"--{name} takes true or false, got {value!r}")
            elif name in self.valued:
                if not has_value and (not rest or rest.pop(0).startswith("--")):
                    found.append(f"--{name} needs a value")
            else:
                found.append(f"unknown flag --{name}")
        low, high = self.positional
        if positional < low or (high is not None and positional > high):
            found.append(f"{positional} positional arguments, allowed {low}..{high}")
        return found


# kind v0.32.0: pkg/cmd/kind/root.go (persistent --verbosity/-v, --quiet/-q) and the subcommands.
KIND_GLOBAL = {"verbosity", "quiet"}
KIND_CREATE = CliSpec(
    path=("kind", "create", "cluster"),  # pkg/cmd/kind/create/cluster/createcluster.go: cobra.NoArgs
    valued=frozenset({"name", "config", "image", "wait", "kubeconfig", "verbosity"}),
    boolean=frozenset({"retain", "quiet"}),
)
KIND_DELETE = CliSpec(
    path=("kind", "delete", "cluster"),  # pkg/cmd/kind/delete/cluster/deletecluster.go: cobra.NoArgs
    valued=frozenset({"name", "kubeconfig", "verbosity"}),
    boolean=frozenset({"quiet"}),
)
KIND_GET_CLUSTERS = CliSpec(path=("kind", "get", "clusters"), valued=frozenset({"verbosity"}))

# k3d v5.9.0: cmd/root.go (persistent --verbose, --trace, --timestamps) and the subcommands.
K3D_GLOBAL_BOOL = frozenset({"verbose", "trace", "timestamps"})
K3D_CREATE = CliSpec(
    path=("k3d", "cluster", "create"),  # cmd/cluster/clusterCreate.go: RangeArgs(0, 1)
    valued=frozenset(
        {
            "config",
            "api-port",
            "env",
            "volume",
            "port",
            "runtime-label",
            "runtime-ulimit",
            "registry-create",
            "host-alias",
            "servers",
            "agents",
            "image",
            "network",
            "subnet",
            "token",
            "timeout",
            "gpus",
            "servers-memory",
            "agents-memory",
            "registry-use",
            "registry-config",
            "lb-config-override",
            "k3s-arg",
            "k3s-node-label",
        }
    ),
    boolean=frozenset(
        {
            "wait",
            "kubeconfig-update-default",
            "kubeconfig-switch-context",
            "no-lb",
            "no-rollback",
            "host-pid-mode",
            "no-image-volume",
            "enforce-registry-port-match",
        }
    )
    | K3D_GLOBAL_BOOL,
    positional=(0, 1),
)
K3D_WRITE_KUBECONFIG = CliSpec(
    path=("k3d", "kubeconfig", "write"),  # cmd/kubeconfig/kubeconfigMerge.go (alias "write")
    valued=frozenset({"output"}),
    boolean=frozenset({"kubeconfig-merge-default", "update", "kubeconfig-switch-context", "overwrite", "all"})
    | K3D_GLOBAL_BOOL,
    positional=(0, None),
)
K3D_DELETE = CliSpec(
    path=("k3d", "cluster", "delete"),  # cmd/cluster/clusterDelete.go: MinimumNArgs(0)
    valued=frozenset({"config"}),
    boolean=frozenset({"all"}) | K3D_GLOBAL_BOOL,
    positional=(0, None),
)
K3D_LIST = CliSpec(
    path=("k3d", "cluster", "list"),  # cmd/cluster/clusterList.go
    valued=frozenset({"output"}),
    boolean=frozenset({"no-headers", "token"}) | K3D_GLOBAL_BOOL,
    positional=(0, None),
)

# Helm 3 (v3.19.0): cmd/helm/upgrade.go (--install/-i, --create-namespace), its chart path options
# (--repo, --version: addChartPathOptionsFlags) and values options (--values/-f), and the global
# flags of pkg/cli/environment.go (--namespace/-n, --kube-context, --kubeconfig).
HELM_UPGRADE = CliSpec(
    path=("helm", "upgrade"),
    valued=frozenset({"repo", "version", "namespace", "values", "kubeconfig", "kube-context", "timeout"}),
    boolean=frozenset({"install", "create-namespace", "wait", "atomic", "debug"}),
    positional=(2, 2),  # RELEASE CHART
)


def test_kind_command_lines_follow_kinds_argument_rules(tmp_path: Path) -> None:
    create = kind.create(name="nightly", config=tmp_path / "c.yaml", kubeconfig=tmp_path / "kc")
    delete = kind.delete(name="nightly", kubeconfig=tmp_path / "kc")
    assert KIND_CREATE.problems(create.argv) == []
    assert KIND_DELETE.problems(delete.argv) == []
    assert KIND_GET_CLUSTERS.problems(kind.list_clusters().argv) == []
    # The rules bite: kind takes the cluster name only as --name.
    assert KIND_DELETE.problems(("kind", "delete", "cluster", "nightly")) == [
        "1 positional arguments, allowed 0..0"
    ]
    assert create.argv[create.argv.index("--wait") + 1] == "300s"  # a Go duration
    assert create.argv[create.argv.index("--kubeconfig") + 1] == str(tmp_path / "kc")


def test_k3d_command_lines_follow_k3ds_argument_rules(tmp_path: Path) -> None:
    create = k3d.create(name="nightly", config=tmp_path / "c.yaml")
    assert K3D_CREATE.problems(create.argv) == []
    assert create.env == {"K3D_FIX_MOUNTS": "1"}
    assert (
        K3D_WRITE_KUBECONFIG.problems(k3d.write_kubeconfig(name="nightly", kubeconfig=tmp_path / "kc").argv)
        == []
    )
    assert K3D_DELETE.problems(k3d.delete(name="nightly").argv) == []
    assert K3D_LIST.problems(k3d.list_clusters().argv) == []
    assert K3D_CREATE.problems(("k3d", "cluster", "create", "a", "b")) == [
        "2 positional arguments, allowed 0..1"
    ]
    assert K3D_CREATE.problems(("k3d", "cluster", "create", "--kubeconfig-update")) == [
        "unknown flag --kubeconfig-update"
    ]


def test_the_helm_install_pins_the_chart_and_touches_only_its_context(tmp_path: Path) -> None:
    command = helm.install_longhorn(kubeconfig=tmp_path / "kc", context="kind-n", values=tmp_path / "v.yaml")
    argv = command.argv

    assert HELM_UPGRADE.problems(argv) == []
    assert argv[2:6] == ("--install", "longhorn", "longhorn", "--repo")
    assert argv[argv.index("--version") + 1] == versions.LONGHORN_CHART_VERSION == "1.12.1"
    assert argv[argv.index("--repo") + 1] == "https://charts.longhorn.io"
    assert argv[argv.index("--namespace") + 1] == "longhorn-system"
    assert argv[argv.index("--kube-context") + 1] == "kind-n"
    assert argv[argv.index("--kubeconfig") + 1] == str(tmp_path / "kc")


def test_cluster_listings_are_read_as_the_tools_print_them() -> None:
    assert kind.cluster_names("kind\nlhsoak-nightly\n") == {"kind", "lhsoak-nightly"}
    assert kind.cluster_names("") == set()  # "No kind clusters found." goes to stderr
    listing = '[{"name":"lhsoak-nightly","serversCount":1,"agentsCount":3,"nodes":[]}]'
    assert k3d.cluster_names(listing) == {"lhsoak-nightly"}
    assert k3d.cluster_names("[]\n") == k3d.cluster_names("") == set()


def test_node_names_are_the_ones_the_tools_give() -> None:
    assert kind.node_names("n", workers=3) == ["n-control-plane", "n-worker", "n-worker2", "n-worker3"]
    assert k3d.node_names("n", agents=3) == [
        "k3d-n-server-0",
        "k3d-n-agent-0",
        "k3d-n-agent-1",
        "k3d-n-agent-2",
    ]


def test_the_image_builds_pass_the_pinned_bases(tmp_path: Path) -> None:
    kind_build = images.kind_node_build(tmp_path)
    k3d_build = images.k3d_node_build(tmp_path)
    assert kind_build.argv == (
        "docker",
        "build",
        "--tag",
        versions.KIND_NODE_IMAGE,
        "--build-arg",
        f"KIND_NODE_BASE={versions.KIND_BASE_IMAGE}",
        str(tmp_path / "kind"),
    )
    assert f"K3S_IMAGE={versions.K3S_IMAGE}" in k3d_build.argv
    assert k3d_build.argv[-1] == str(tmp_path / "k3d")


@pytest.mark.parametrize("name", providers.PROVIDERS)
def test_each_provider_deletes_the_cluster_it_creates(name: providers.ProviderName, tmp_path: Path) -> None:
    provider = providers.make(name, cluster="nightly-7", infra=tmp_path, kubeconfig=tmp_path / "kc")
    assert "nightly-7" in provider.create()[0].argv
    assert "nightly-7" in provider.delete().argv
    assert provider.context == f"{name}-nightly-7"
    assert len(provider.node_names()) == 1 + providers.WORKERS


# -- kubectl: the real binary, against the lab --------------------------------------------------

needs_kubectl = pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
FLAG_ERRORS = ("unknown flag", "unknown shorthand flag", "unknown command", "invalid argument", "flag needs")


def run_kubectl(command: Command) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command.argv,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, **command.env},
    )


@needs_kubectl
def test_kubectl_applies_a_generated_manifest_to_a_real_api(lab: Lab, tmp_path: Path) -> None:
    kubeconfig = lab.kubeconfig(context="kind-n")
    manifest = tmp_path / "namespace.yaml"
    manifest.write_text(backupstore.manifest([backupstore.namespace_object("lhsoak-apply-test")]))

    done = run_kubectl(kubectl.apply(kubeconfig=kubeconfig, context="kind-n", files=[manifest], what="apply"))

    assert done.returncode == 0, done.stderr
    assert "namespace/lhsoak-apply-test" in done.stdout


@needs_kubectl
def test_every_diagnostics_command_parses_and_the_core_ones_answer(lab: Lab) -> None:
    lab.add_node("n-control-plane", control_plane=True)
    kubeconfig = lab.kubeconfig(context="kind-n")

    results = {
        name: run_kubectl(command)
        for name, command in kubectl.diagnostics(kubeconfig=kubeconfig, context="kind-n").items()
    }

    for name, done in results.items():
        assert not any(error in done.stderr for error in FLAG_ERRORS), f"{name}: {done.stderr}"
    for name in ("nodes.txt", "pods.txt", "events.txt"):
        assert results[name].returncode == 0, results[name].stderr
    assert "n-control-plane" in results["nodes.txt"].stdout
