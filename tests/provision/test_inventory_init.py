"""`lhsoak inventory init` drafts a loadable inventory from a cluster's nodes (the lab, over HTTPS)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from lhsoak import cli, errors, inventory

from .conftest import Lab


def lab_cluster(lab: Lab) -> Path:
    lab.add_node("cp-1", control_plane=True, address="127.0.0.1")
    lab.add_node("worker-2", address="127.0.0.3")
    lab.add_node("worker-1", address="127.0.0.2")
    return lab.kubeconfig(context="lab-cluster")


def test_a_bare_metal_cluster_gets_ssh_to_each_internal_ip(lab: Lab, tmp_path: Path) -> None:
    kubeconfig = lab_cluster(lab)
    out = tmp_path / "inventory.yaml"

    status = cli.main(["inventory", "init", f"--kubeconfig={kubeconfig}", f"--output={out}"])

    assert status == errors.EXIT_PASSED
    loaded = inventory.load(out)
    assert loaded.cluster.context == "lab-cluster"
    assert loaded.cluster.kubeconfig == kubeconfig
    assert loaded.names == ("cp-1", "worker-1", "worker-2")
    assert [node.role for node in loaded.nodes] == ["control-plane", "worker", "worker"]
    assert [node.ssh.host for node in loaded.nodes if node.ssh] == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
    assert {node.power_driver for node in loaded.nodes} == {"ssh"}


def test_the_draft_says_what_to_complete(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    kubeconfig = lab_cluster(lab)

    assert cli.main(["inventory", "init", f"--kubeconfig={kubeconfig}"]) == errors.EXIT_PASSED

    text = capsys.readouterr().out
    assert text.startswith("# Drafted by `lhsoak inventory init` from context lab-cluster.")
    assert "make soak KUBECONFIG=<kubeconfig> INVENTORY=<this file>" in text
    assert text.count("# complete: user") == 3  # one under every ssh host
    assert yaml.safe_load(text)["nodes"][0] == {
        "name": "cp-1",
        "role": "control-plane",
        "ssh": {"host": "127.0.0.1"},
    }


def test_kind_k3d_and_cloud_nodes_get_their_power_drivers(lab: Lab, tmp_path: Path) -> None:
    lab.add_node("lab-control-plane", control_plane=True, provider_id="kind://docker/lab/lab-control-plane")
    lab.add_node("k3d-lab-agent-0", provider_id="k3s://k3d-lab-agent-0")
    lab.add_node("vm-1", provider_id="k3s://vm-1", address="127.0.0.5")  # k3s on a VM: ssh
    lab.add_node("ec2-1", provider_id="aws:///us-west-2b/i-0123456789abcdef0", address="127.0.0.6")
    lab.add_node("gce-1", provider_id="gce://proj-1/europe-west1-b/gce-1", address="127.0.0.7")
    lab.add_node(
        "az-1",
        provider_id="azure:///subscriptions/sub-1/resourceGroups/rg-1/providers/"
        "Microsoft.Compute/virtualMachines/az-vm-1",
        address="127.0.0.8",
    )
    out = tmp_path / "inventory.yaml"

    cli.main(["inventory", "init", f"--kubeconfig={lab.kubeconfig(context='mixed')}", f"--output={out}"])

    nodes = {node.name: node for node in inventory.load(out).nodes}
    assert nodes["lab-control-plane"].docker == inventory.DockerTarget(container="lab-control-plane")
    assert nodes["k3d-lab-agent-0"].k3d == inventory.K3dTarget(node="k3d-lab-agent-0")
    assert nodes["vm-1"].power_driver == "ssh"
    assert nodes["ec2-1"].aws == inventory.AwsTarget(region="us-west-2", instance_id="i-0123456789abcdef0")
    assert nodes["ec2-1"].ssh == inventory.SshAccess(host="127.0.0.6")  # beside it: the boot id
    assert nodes["gce-1"].gcp == inventory.GcpTarget(
        project="proj-1", zone="europe-west1-b", instance="gce-1"
    )
    assert nodes["az-1"].azure == inventory.AzureTarget(
        subscription_id="sub-1", resource_group="rg-1", vm_name="az-vm-1"
    )
    assert nodes["lab-control-plane"].ssh is None  # a container has no sshd to reach


def test_a_forced_driver_applies_to_every_node(lab: Lab, tmp_path: Path) -> None:
    lab.add_node("kind-worker", provider_id="kind://docker/kind/kind-worker")
    lab.add_node("kind-worker2", provider_id="kind://docker/kind/kind-worker2")
    out = tmp_path / "inventory.yaml"

    cli.main(
        [
            "inventory",
            "init",
            f"--kubeconfig={lab.kubeconfig(context='kind-kind')}",
            "--driver=docker",
            "--docker-host=unix:///run/user/1000/docker.sock",
            f"--output={out}",
        ]
    )

    loaded = inventory.load(out)
    assert {node.docker.base_url for node in loaded.nodes if node.docker} == {
        "unix:///run/user/1000/docker.sock"
    }


def test_an_existing_file_is_not_replaced_without_force(
    lab: Lab, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kubeconfig = lab_cluster(lab)
    out = tmp_path / "inventory.yaml"
    out.write_text("mine\n")

    assert cli.main(["inventory", "init", f"--kubeconfig={kubeconfig}", f"--output={out}"]) == 2
    assert "exists; pass --force to replace it" in capsys.readouterr().err
    assert out.read_text() == "mine\n"
    assert cli.main(["inventory", "init", f"--kubeconfig={kubeconfig}", f"--output={out}", "--force"]) == 0
    assert inventory.load(out).names == ("cp-1", "worker-1", "worker-2")


def test_a_node_without_an_address_is_named(lab: Lab, capsys: pytest.CaptureFixture[str]) -> None:
    lab.add_node("lonely", address=None)

    status = cli.main(["inventory", "init", f"--kubeconfig={lab.kubeconfig(context='c')}"])

    assert status == errors.EXIT_USAGE
    assert "node lonely reports no InternalIP address" in capsys.readouterr().err


def test_the_command_line_uses_the_current_context_of_kubeconfig(lab: Lab, tmp_path: Path) -> None:
    kubeconfig = lab_cluster(lab)
    out = tmp_path / "inventory.yaml"

    done = subprocess.run(
        [sys.executable, "-m", "lhsoak", "inventory", "init", f"--output={out}"],
        env={"KUBECONFIG": str(kubeconfig), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert f"inventory drafted: {out} (3 nodes)" in done.stdout
    assert inventory.load(out).cluster.context == "lab-cluster"
