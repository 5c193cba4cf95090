"""dump writes what load reads: the same inventory comes back; no key contents ever shown."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import yaml

from lhsoak import inventory


def every_driver(folder: Path, host_key: str) -> inventory.Inventory:
    key = folder / "keys" / "id_ed25519"
    return inventory.Inventory(
        cluster=inventory.ClusterTarget(context="lab", kubeconfig=folder / "kubeconfig"),
        nodes=(
            inventory.Node(
                name="cp-1",
                role="control-plane",
                ssh=inventory.SshAccess(
                    host="127.0.0.1", port=2222, user="lab", key_file=key, host_key=host_key
                ),
            ),
            inventory.Node(
                name="worker-1",
                role="worker",
                aws=inventory.AwsTarget(
                    region="us-east-1",
                    name_tag="worker-1",
                    endpoint_url="http://127.0.0.1:1",
                    mode="power-cycle",
                ),
                ssh=inventory.SshAccess(
                    host="127.0.0.1",
                    port=2223,
                    known_hosts=folder / "known_hosts",
                    reboot_command="true",
                    sudo=False,
                ),
            ),
            inventory.Node(
                name="worker-2", role="worker", gcp=inventory.GcpTarget(project="p", zone="z", instance="w-2")
            ),
            inventory.Node(
                name="worker-3",
                role="worker",
                azure=inventory.AzureTarget(
                    subscription_id="s",
                    resource_group="g",
                    vm_name="v",
                    mode="power-cycle",
                    endpoint="https://management.usgovcloudapi.net",
                ),
            ),
            inventory.Node(
                name="kind-worker",
                role="worker",
                docker=inventory.DockerTarget(container="kind-worker", base_url="unix:///run/docker.sock"),
            ),
            inventory.Node(
                name="k3d-a-0", role="worker", k3d=inventory.K3dTarget(node="k3d-a-0", binary="/opt/k3d")
            ),
        ),
    )


def test_dump_then_load_gives_the_same_inventory(folder: Path, host_key: str) -> None:
    original = every_driver(folder, host_key)
    path = folder / "written.yaml"
    inventory.dump(original, path)
    assert inventory.load(path) == original
    assert [p.name for p in folder.iterdir() if p.name.startswith(".")] == [], "no partial file left"


def test_load_then_dump_then_load(write: Callable[[str], Path], folder: Path) -> None:
    path = write("""
        cluster: {context: c}
        nodes:
          - {name: n-1, role: worker, ssh: {host: h, key_file: keys/id_ed25519, port: 2200}}
          - {name: n-2, role: control-plane, aws: {instance_id: i-0123456789abcdef0, region: r}}
    """)
    first = inventory.load(path)
    inventory.dump(first, folder / "again.yaml")
    assert inventory.load(folder / "again.yaml") == first


def test_dump_leaves_defaults_out_and_reads_as_plain_yaml(folder: Path, host_key: str) -> None:
    document = yaml.safe_load(inventory.dumps(every_driver(folder, host_key)))
    assert document["cluster"] == {"context": "lab", "kubeconfig": str(folder / "kubeconfig")}
    assert document["nodes"][2] == {
        "name": "worker-2",
        "role": "worker",
        "gcp": {"project": "p", "zone": "z", "instance": "w-2"},
    }
    assert document["nodes"][1]["ssh"] == {
        "host": "127.0.0.1",
        "port": 2223,
        "known_hosts": str(folder / "known_hosts"),
        "reboot_command": "true",
        "sudo": False,
    }


def test_key_contents_are_never_shown(write: Callable[[str], Path], folder: Path) -> None:
    key_body = (folder / "keys" / "id_ed25519").read_text().splitlines()[1]
    loaded = inventory.load(
        write(
            "cluster: {context: c}\nnodes:\n  - {name: n-1, role: worker, ssh: {host: h, key_file: keys/id_ed25519}}\n"
        )
    )
    shown = repr(loaded) + str(loaded) + inventory.dumps(loaded)
    assert "keys/id_ed25519" in shown, "the key is named by its path"
    assert key_body not in shown
