"""drivers_for picks each node's backend, imports it only when needed, and names the extra to install."""

from __future__ import annotations

import sys

import pytest

from lhsoak import errors, inventory
from lhsoak.chaos import driver

SSH = inventory.SshAccess(host="127.0.0.1", port=1)
INVENTORY = inventory.Inventory(
    cluster=inventory.ClusterTarget(context="lab"),
    nodes=(
        inventory.Node(name="cp-1", role="control-plane", ssh=SSH),
        inventory.Node(
            name="worker-1",
            role="worker",
            aws=inventory.AwsTarget(
                region="us-east-1", name_tag="worker-1", endpoint_url="http://127.0.0.1:1"
            ),
            ssh=SSH,
        ),
        inventory.Node(
            name="worker-2", role="worker", gcp=inventory.GcpTarget(project="p", zone="z", instance="w-2")
        ),
        inventory.Node(
            name="worker-3",
            role="worker",
            azure=inventory.AzureTarget(subscription_id="s", resource_group="g", vm_name="v"),
        ),
        inventory.Node(
            name="kind-worker", role="worker", docker=inventory.DockerTarget(container="kind-worker")
        ),
        inventory.Node(
            name="k3d-lab-agent-0",
            role="worker",
            k3d=inventory.K3dTarget(node="k3d-lab-agent-0", binary="/nonexistent/bin/k3d"),
        ),
    ),
)


def test_ssh_aws_and_docker_drivers_are_built_without_contacting_anything() -> None:
    drivers = driver.drivers_for(INVENTORY, ["cp-1", "worker-1", "kind-worker"])
    assert {name: d.kind for name, d in drivers.items()} == {
        "cp-1": "ssh",
        "worker-1": "aws",
        "kind-worker": "docker",
    }
    assert {name: d.node for name, d in drivers.items()} == {n: n for n in drivers}
    assert drivers["cp-1"].restarts_kernel
    assert not drivers["kind-worker"].restarts_kernel


@pytest.mark.parametrize(
    ("node", "sdk", "backend", "extra"),
    [
        ("worker-1", "boto3", "lhsoak.chaos.aws", "aws"),
        ("worker-2", "google", "lhsoak.chaos.gcp", "gcp"),
        ("worker-3", "azure", "lhsoak.chaos.azure", "azure"),
        ("kind-worker", "docker", "lhsoak.chaos.docker", "docker"),
    ],
)
def test_an_uninstalled_sdk_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, node: str, sdk: str, backend: str, extra: str
) -> None:
    # None in sys.modules makes `import <sdk>` fail as if the package were not installed.
    monkeypatch.setitem(sys.modules, sdk, None)
    monkeypatch.delitem(sys.modules, backend, raising=False)
    with pytest.raises(
        errors.UsageError, match=rf"^node {node} uses the \w+ driver, .*: pip install 'lhsoak\[{extra}\]'$"
    ):
        driver.drivers_for(INVENTORY, [node])


def test_a_missing_k3d_binary_is_a_usage_error() -> None:
    with pytest.raises(errors.UsageError) as caught:
        driver.drivers_for(INVENTORY, ["k3d-lab-agent-0"])
    assert str(caught.value) == (
        "node k3d-lab-agent-0 uses the k3d driver, but the k3d executable '/nonexistent/bin/k3d' was not found: "
        "install k3d (https://k3d.io) or set k3d.binary in the inventory"
    )


def test_an_unknown_node_is_a_usage_error() -> None:
    with pytest.raises(errors.UsageError, match=r"no node 'worker-9'; it has cp-1, worker-1, worker-2"):
        driver.drivers_for(INVENTORY, ["cp-1", "worker-9"])


def test_no_names_means_every_node_that_can_be_built() -> None:
    ssh_only = inventory.Inventory(cluster=INVENTORY.cluster, nodes=INVENTORY.nodes[:2])
    assert list(driver.drivers_for(ssh_only)) == ["cp-1", "worker-1"]
