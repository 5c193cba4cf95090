"""A valid inventory with every driver loads into frozen dataclasses, paths resolved, defaults filled."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from lhsoak import errors, inventory

FULL = """
cluster:
  context: lab-cluster
  kubeconfig: kube/config
nodes:
  - name: cp-1
    role: control-plane
    ssh: {{host: 127.0.0.1, port: 2222, user: ubuntu, key_file: keys/id_ed25519,
          host_key: "{host_key}", reboot_command: "sudo systemctl reboot", sudo: true}}
  - name: worker-1
    role: worker
    aws: {{name_tag: worker-1, region: us-east-1, endpoint_url: "http://127.0.0.1:5000",
          mode: power-cycle}}
    ssh: {{host: 127.0.0.1, port: 2223, known_hosts: known_hosts, key_file: "{key_file}"}}
  - name: worker-2
    role: worker
    gcp: {{project: p, zone: europe-west1-b, instance: worker-2, endpoint: "https://compute-psc.p.googleapis.com"}}
  - name: worker-3
    role: worker
    azure: {{subscription_id: "0000-1111", resource_group: rg, vm_name: worker-3, mode: power-cycle}}
  - name: kind-worker
    role: worker
    docker: {{container: kind-worker}}
  - name: k3d-lab-agent-0
    role: worker
    k3d: {{node: k3d-lab-agent-0}}
"""


@pytest.fixture
def loaded(write: Callable[[str], Path], folder: Path, host_key: str) -> inventory.Inventory:
    return inventory.load(write(FULL.format(host_key=host_key, key_file=folder / "keys" / "id_ed25519")))


def test_cluster_and_node_order(loaded: inventory.Inventory, folder: Path) -> None:
    assert loaded.cluster == inventory.ClusterTarget(
        context="lab-cluster", kubeconfig=folder / "kube" / "config"
    )
    assert loaded.names == ("cp-1", "worker-1", "worker-2", "worker-3", "kind-worker", "k3d-lab-agent-0")
    assert loaded.source == folder / "inventory.yaml"


def test_each_node_gets_its_power_driver(loaded: inventory.Inventory) -> None:
    drivers = {node.name: node.power_driver for node in loaded.nodes}
    assert drivers == {
        "cp-1": "ssh",
        "worker-1": "aws",
        "worker-2": "gcp",
        "worker-3": "azure",
        "kind-worker": "docker",
        "k3d-lab-agent-0": "k3d",
    }
    assert loaded.node("cp-1").role == "control-plane"


def test_ssh_paths_are_relative_to_the_inventory_and_host_key_kept(
    loaded: inventory.Inventory, folder: Path, host_key: str
) -> None:
    cp = loaded.node("cp-1").ssh
    assert cp is not None
    assert cp.key_file == folder / "keys" / "id_ed25519"
    assert cp.host_key == host_key
    assert (cp.port, cp.user, cp.known_hosts) == (2222, "ubuntu", None)
    beside = loaded.node("worker-1").ssh
    assert beside is not None
    assert beside.known_hosts == folder / "known_hosts"
    assert beside.user is None


def test_defaults(loaded: inventory.Inventory) -> None:
    assert loaded.node("worker-2").gcp == inventory.GcpTarget(
        project="p",
        zone="europe-west1-b",
        instance="worker-2",
        mode="reset",
        endpoint="https://compute-psc.p.googleapis.com",
    )
    azure = loaded.node("worker-3").azure
    assert azure is not None
    assert azure.endpoint is None, "public Azure unless told"
    aws = loaded.node("worker-1").aws
    assert aws is not None
    assert (aws.instance_id, aws.name_tag, aws.mode, aws.profile) == (None, "worker-1", "power-cycle", None)
    assert loaded.node("kind-worker").docker == inventory.DockerTarget(container="kind-worker", base_url=None)
    assert loaded.node("k3d-lab-agent-0").k3d == inventory.K3dTarget(node="k3d-lab-agent-0", binary="k3d")
    beside = loaded.node("worker-1").ssh
    assert beside is not None
    assert (beside.reboot_command, beside.sudo) == ("systemctl reboot", True)


def test_tilde_is_expanded(
    write: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch, folder: Path
) -> None:
    monkeypatch.setenv("HOME", str(folder))
    loaded = inventory.load(
        write("""
            cluster: {context: c}
            nodes:
              - {name: n-1, role: worker, ssh: {host: h, key_file: ~/keys/id_ed25519}}
        """)
    )
    access = loaded.node("n-1").ssh
    assert access is not None
    assert access.key_file == folder / "keys" / "id_ed25519"


@pytest.mark.parametrize(
    ("command", "sudo", "sent"),
    [
        ("systemctl reboot", True, "sudo systemctl reboot"),
        ("sudo systemctl reboot", True, "sudo systemctl reboot"),
        ("sudo -n reboot", True, "sudo -n reboot"),
        ("systemctl reboot", False, "systemctl reboot"),
        ("sudoedit-reboot", True, "sudo sudoedit-reboot"),
    ],
)
def test_effective_reboot_command(command: str, sudo: bool, sent: str) -> None:
    access = inventory.SshAccess(host="h", reboot_command=command, sudo=sudo)
    assert access.effective_reboot_command == sent


def test_dataclasses_are_frozen(loaded: inventory.Inventory) -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        loaded.nodes[0].name = "other"  # type: ignore[misc]


def test_unknown_node_lookup_names_the_known_ones(loaded: inventory.Inventory) -> None:
    with pytest.raises(errors.UsageError, match=r"no node 'worker-9'; it has cp-1, worker-1"):
        loaded.node("worker-9")
