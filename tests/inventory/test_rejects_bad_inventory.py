"""Every inventory mistake is one UsageError that names the file, the node and the field."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from lhsoak import errors, inventory

HEAD = "cluster: {context: lab}\nnodes:\n"
SSH = "{host: 127.0.0.1, port: 2222, key_file: keys/id_ed25519}"


def load_error(path: Path) -> str:
    with pytest.raises(errors.UsageError) as caught:
        inventory.load(path)
    message = str(caught.value)
    assert "\n" not in message, "one line"
    assert message.startswith(str(path)), "names the file first"
    return message


@pytest.mark.parametrize(
    ("nodes", "expected"),
    [
        pytest.param(
            f"  - {{name: w-1, role: master, ssh: {SSH}}}\n",
            "node 'w-1': role: must be one of control-plane | worker, got 'master'",
            id="unknown-role",
        ),
        pytest.param(
            f"  - {{name: w-1, ssh: {SSH}}}\n",
            "node 'w-1': role: is required: control-plane | worker",
            id="missing-role",
        ),
        pytest.param(
            "  - {name: w-1, role: worker}\n",
            "node 'w-1': has no driver: give one of ssh, aws, gcp, azure, docker, k3d",
            id="no-driver",
        ),
        pytest.param(
            "  - name: w-1\n    role: worker\n    aws: {instance_id: i-0123456789abcdef0, region: r}\n"
            "    gcp: {project: p, zone: z, instance: w-1}\n",
            "node 'w-1': has two power drivers (aws and gcp): give exactly one",
            id="two-power-drivers",
        ),
        pytest.param(
            "  - {name: w-1, role: worker, ssh: {host: h, key_file: keys/missing}}\n",
            "node 'w-1': ssh.key_file: key file {folder}/keys/missing does not exist",
            id="missing-key-file",
        ),
        pytest.param(
            "  - {name: w-1, role: worker, ssh: {host: h, known_hosts: keys}}\n",
            "node 'w-1': ssh.known_hosts: known_hosts file {folder}/keys is not a file",
            id="known-hosts-is-a-folder",
        ),
        pytest.param(
            "  - {name: w-1, role: worker, ssh: {host: h, known_hosts: nowhere}}\n",
            "node 'w-1': ssh.known_hosts: known_hosts file {folder}/nowhere does not exist",
            id="known-hosts-missing",
        ),
        pytest.param(
            "  - {name: w-1, role: worker, ssh: {host: h, port: 70000}}\n",
            "node 'w-1': ssh.port: must be an integer 1-65535, got 70000",
            id="port-too-big",
        ),
        pytest.param(
            "  - {name: w-1, role: worker, ssh: {host: h, port: '22'}}\n",
            "node 'w-1': ssh.port: must be an integer 1-65535, got '22'",
            id="port-as-string",
        ),
        pytest.param(
            "  - {name: w-1, role: worker, ssh: {host: h, port: true}}\n",
            "node 'w-1': ssh.port: must be an integer 1-65535, got true",
            id="port-as-bool",
        ),
        pytest.param(
            f"  - {{name: w-1, role: worker, ssh: {SSH}}}\n  - {{name: w-2, role: worker, ssh: {SSH}}}\n"
            f"  - {{name: w-1, role: worker, ssh: {SSH}}}\n",
            "node 'w-1': listed twice (nodes[0] and nodes[2])",
            id="duplicate-node",
        ),
        pytest.param(
            "  - {name: w-1, role: worker, ssh: {host: h, reboot_comand: reboot}}\n",
            "node 'w-1': ssh: unknown key 'reboot_comand' (did you mean 'reboot_command'?)",
            id="typo-in-ssh",
        ),
        pytest.param(
            f"  - {{name: w-1, rol: worker, role: worker, ssh: {SSH}}}\n",
            "node 'w-1': unknown key 'rol' (did you mean 'role'?)",
            id="typo-in-node",
        ),
        pytest.param(
            "  - {name: w-1, role: worker, aws: {region: r, instance_id: i-1, mode: reboot}}\n",
            "node 'w-1': aws.instance_id: is not an EC2 instance id (i-…): 'i-1'",
            id="bad-instance-id",
        ),
        pytest.param(
            "  - {name: w-1, role: worker, aws: {region: r}}\n",
            "node 'w-1': aws: give exactly one of instance_id and name_tag",
            id="aws-without-instance",
        ),
        pytest.param(
            "  - {name: w-1, role: worker, aws: {region: r, name_tag: w-1, mode: hard}}\n",
            "node 'w-1': aws.mode: must be one of reboot | power-cycle, got 'hard'",
            id="aws-bad-mode",
        ),
        pytest.param(
            "  - {name: w-1, role: worker, aws: {name_tag: w-1}}\n",
            "node 'w-1': aws.region: is required",
            id="aws-without-region",
        ),
        pytest.param(
            "  - {name: w-1, role: worker, gcp: {project: p, instance: w-1}}\n",
            "node 'w-1': gcp.zone: is required",
            id="gcp-without-zone",
        ),
        pytest.param(
            "  - {name: w-1, role: worker, azure: {subscription_id: s, resource_group: g, vm_name: v, mode: reset}}\n",
            "node 'w-1': azure.mode: must be one of restart | power-cycle, got 'reset'",
            id="azure-bad-mode",
        ),
        pytest.param(
            "  - {name: w-1, role: worker, gcp: {project: p, zone: z, instance: w-1, endpoint: 'http://127.0.0.1:1'}}\n",
            "node 'w-1': gcp.endpoint: must be an https URL, got 'http://127.0.0.1:1'",
            id="gcp-plain-http-endpoint",
        ),
        pytest.param(
            "  - {name: w-1, role: worker, azure: {subscription_id: s, resource_group: g, vm_name: v, endpoint: management.azure.com}}\n",
            "node 'w-1': azure.endpoint: must be an https URL, got 'management.azure.com'",
            id="azure-endpoint-without-scheme",
        ),
        pytest.param(
            "  - {name: w-1, role: worker, docker: {}}\n",
            "node 'w-1': docker.container: is required",
            id="docker-without-container",
        ),
        pytest.param(
            "  - {name: w-1, role: worker, k3d: {node: ''}}\n",
            "node 'w-1': k3d.node: must be a non-empty string, got ''",
            id="k3d-empty-node",
        ),
        pytest.param(
            "  - {name: Worker_1, role: worker, docker: {container: c}}\n",
            "node 'Worker_1': name: is not a valid Kubernetes node name: 'Worker_1'",
            id="bad-node-name",
        ),
        pytest.param(
            "  - {role: worker, docker: {container: c}}\n",
            "nodes[0]: name: is required",
            id="node-without-name",
        ),
        pytest.param(
            "  - {name: w-1, role: worker, ssh: {host: h, sudo: 'yes'}}\n",
            "node 'w-1': ssh.sudo: must be true or false, got 'yes'",
            id="sudo-not-a-bool",
        ),
        pytest.param(
            "  - {name: w-1, role: worker, ssh: {host: h, host_key: 'AAAAC3NzaC1lZDI1NTE5'}}\n",
            "node 'w-1': ssh.host_key: must be a public key line, 'ssh-ed25519 AAAA…'",
            id="host-key-without-type",
        ),
        pytest.param(
            "  - {name: w-1, role: worker, ssh: {host: h, host_key: 'ssh-ed25519 not*base64'}}\n",
            "node 'w-1': ssh.host_key: the key after the type is not valid base64",
            id="host-key-not-base64",
        ),
        pytest.param(
            "  - {name: w-1, role: worker, ssh: {host: h, host_key: 'ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIA=='}}\n",
            "node 'w-1': ssh.host_key: the key data is not a ssh-rsa key",
            id="host-key-type-mismatch",
        ),
        pytest.param(
            "  - {name: w-1, role: worker, ssh: {host: h, key_file: keys/id_ed25519}, docker: {container: c},"
            " k3d: {node: n}}\n",
            "node 'w-1': has two power drivers (docker and k3d)",
            id="docker-and-k3d",
        ),
    ],
)
def test_node_mistakes(write: Callable[[str], Path], folder: Path, nodes: str, expected: str) -> None:
    message = load_error(write(HEAD + nodes))
    assert expected.format(folder=folder) in message


def test_host_key_and_known_hosts_together(write: Callable[[str], Path], host_key: str) -> None:
    path = write(
        HEAD
        + f"  - {{name: w-1, role: worker, ssh: {{host: h, known_hosts: known_hosts, host_key: '{host_key}'}}}}\n"
    )
    assert "node 'w-1': ssh: give host_key or known_hosts, not both" in load_error(path)


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_known_hosts(write: Callable[[str], Path], folder: Path) -> None:
    (folder / "known_hosts").chmod(0)
    path = write(HEAD + "  - {name: w-1, role: worker, ssh: {host: h, known_hosts: known_hosts}}\n")
    assert f"ssh.known_hosts: known_hosts file {folder}/known_hosts is not readable" in load_error(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("", "the inventory is empty", id="empty"),
        pytest.param("cluster: [\n", "not valid YAML at line 2", id="bad-yaml"),
        pytest.param("- a\n- b\n", "must be a mapping, got a list", id="not-a-mapping"),
        pytest.param("nodes: []\n", "cluster: is required", id="no-cluster"),
        pytest.param("cluster: {}\nnodes: []\n", "cluster.context: is required", id="no-context"),
        pytest.param(
            "cluster: {context: c, kubecontext: x}\nnodes: []\n",
            "cluster: unknown key 'kubecontext'",
            id="typo-in-cluster",
        ),
        pytest.param(
            "cluster: {context: c}\nnodes: []\n", "nodes: must be a non-empty list of nodes", id="no-nodes"
        ),
        pytest.param("cluster: {context: c}\n", "nodes: is required", id="nodes-missing"),
        pytest.param(
            "cluster: {context: c}\nnode:\n  - {name: a, role: worker, k3d: {node: a}}\n",
            "unknown key 'node' (did you mean 'nodes'?)",
            id="typo-at-top",
        ),
        pytest.param(
            "cluster: {context: c}\nnodes:\n  - just-a-name\n",
            "nodes[0]: must be a mapping",
            id="node-not-mapping",
        ),
    ],
)
def test_file_mistakes(write: Callable[[str], Path], text: str, expected: str) -> None:
    assert expected in load_error(write(text))


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(errors.UsageError, match=r"inventory.yaml: cannot read the inventory: No such file"):
        inventory.load(tmp_path / "inventory.yaml")
