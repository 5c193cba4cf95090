"""The azure driver through azure-mgmt-compute and azure-identity against the lab's Resource Manager:
the right VM, and only it, restarts or power-cycles; no poller thread outlives a driver call; no
request leaves loopback.

DefaultAzureCredential finds its token as it would on App Service: AZURE_TOKEN_CREDENTIALS keeps
only ManagedIdentityCredential in the chain, and IDENTITY_ENDPOINT / IDENTITY_HEADER make that the
App Service managed identity, served by the lab. Without them (the missing-credentials test) the
chain is AZURE_TOKEN_CREDENTIALS=prod (environment, workload identity, managed identity: no CLI
subprocess) and the managed identity asks the instance metadata service at
AZURE_POD_IDENTITY_AUTHORITY_HOST, the lab, which answers as a VM without an identity.
`NoEgress` fails any test in which anything tried to leave loopback.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.identity import DefaultAzureCredential
from azure.mgmt.compute import ComputeManagementClient

from lhsoak import inventory
from lhsoak.chaos import azure, driver
from lhsoak.chaos.driver import DriverOptions
from lhsoak.lab import arm, cluster, pki

from ..support.loop import LoopThread
from .cloud_lab import Events, build, clear_environment, lab_spec, recorded_events, started_lab_cluster
from .conftest import Lab
from .no_egress import NoEgress


@pytest.fixture(autouse=True)
def no_egress() -> Iterator[NoEgress]:
    with NoEgress() as guard:
        yield guard
    assert guard.attempts == [], f"something tried to leave loopback: {guard.attempts}"


@pytest.fixture
def events(lab: Lab) -> Iterator[Events]:
    with recorded_events(lab) as recorded:
        yield recorded


@pytest.fixture
def arm_endpoint(lab: Lab) -> Iterator[arm.ArmEndpoint]:
    """The lab's Resource Manager, one VM per lab machine."""
    endpoint = lab.run(arm.start_arm_endpoint(lab.fleet, authority=pki.generate()))
    yield endpoint
    lab.run(endpoint.close())


@pytest.fixture
def azure_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, arm_endpoint: arm.ArmEndpoint
) -> dict[str, str]:
    """DefaultAzureCredential = the lab's App Service managed identity, and nothing else."""
    clear_environment(monkeypatch, prefixes=("AZURE_", "MSI_", "IDENTITY_", "IMDS_"))
    variables = arm_endpoint.write_client_files(tmp_path / "arm")
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    return variables


def node(
    endpoint: arm.ArmEndpoint, name: str, *, ssh: inventory.SshAccess | None = None, **azure_fields: Any
) -> inventory.Node:
    target = inventory.AzureTarget(
        subscription_id=endpoint.subscription_id,
        resource_group=endpoint.resource_group,
        vm_name=name,
        endpoint=endpoint.url,
    )
    return inventory.Node(
        name=name, role="worker", azure=dataclasses.replace(target, **azure_fields), ssh=ssh
    )


def description(name: str) -> str:
    return f"Azure VM {name} ({arm.RESOURCE_GROUP})"


def pollers() -> list[str]:
    """azure-core's LRO poller threads still alive."""
    return [thread.name for thread in threading.enumerate() if thread.name.startswith("LROPoller")]


def test_power_cycle_stops_and_starts_only_that_vm_and_leaves_no_thread(
    lab: Lab, arm_endpoint: arm.ArmEndpoint, azure_env: dict[str, str], events: Events, options: DriverOptions
) -> None:
    before = {name: lab.boot_id(name) for name in lab.fleet.names}
    chosen = build(node(arm_endpoint, "worker-1", mode="power-cycle"), options)
    chosen.check()

    proof = driver.prove_reboot(chosen, down_deadline_s=5, up_deadline_s=5)

    assert proof.down == driver.Evidence(proven=True, detail=f"{description('worker-1')} stopped")
    assert (proof.old_boot_id, proof.new_boot_id) == (None, None), "no ssh: no boot id"
    assert events.kinds("worker-1")[:5] == [
        "shutdown-started",
        "kubelet-stopped",
        "powered-off",
        "boot-started",
        "booted",
    ]
    assert lab.boot_id("worker-1") != before["worker-1"]
    for other in ("cp-1", "worker-2", "stuck-1"):
        assert events.kinds(other) == [], f"{other} was touched"
        assert lab.boot_id(other) == before[other]
    assert pollers() == [], "the driver does not leave azure-core polling in the background"
    assert arm_endpoint.tokens_issued == {"app-service": 1}, "one managed-identity token, cached"


def test_restart_with_ssh_beside_proves_the_new_boot_id(
    lab: Lab, arm_endpoint: arm.ArmEndpoint, azure_env: dict[str, str], events: Events, options: DriverOptions
) -> None:
    chosen = build(node(arm_endpoint, "cp-1", ssh=lab.ssh("cp-1")), options)
    before = lab.boot_id("cp-1")

    proof = driver.prove_reboot(chosen, down_deadline_s=5, up_deadline_s=5)

    assert proof.old_boot_id == before
    assert proof.new_boot_id == lab.boot_id("cp-1") != before
    assert proof.down.proven
    assert proof.down.detail.startswith("ssh: ")
    assert "powered-off" in events.kinds("cp-1")
    assert all(events.kinds(other) == [] for other in ("worker-1", "worker-2", "stuck-1"))
    assert pollers() == []


def test_restore_starts_a_vm_this_driver_powered_off_and_only_once(
    lab: Lab, arm_endpoint: arm.ArmEndpoint, azure_env: dict[str, str], options: DriverOptions
) -> None:
    chosen = build(node(arm_endpoint, "worker-1", mode="power-cycle"), options)
    chosen.reboot()
    assert chosen.wait_down(deadline_s=5).proven
    assert lab.machine("worker-1").state == "off"

    chosen.restore()

    lab.wait_for("worker-1", lambda m: m.state == "running", "worker-1 to boot after restore")
    chosen.restore()  # idempotent: nothing left to start
    assert lab.machine("worker-1").state == "running"


def test_a_stopped_vm_fails_the_check(
    lab: Lab, arm_endpoint: arm.ArmEndpoint, azure_env: dict[str, str], options: DriverOptions
) -> None:
    lab.call(lambda: lab.machine("worker-2").power_off())
    with pytest.raises(
        driver.DriverError,
        match=r"\(lhsoak-lab\) is PowerState/stopped; lhsoak reboots running instances only",
    ):
        build(node(arm_endpoint, "worker-2"), options).check()


def test_an_unknown_vm_is_an_access_error(
    arm_endpoint: arm.ArmEndpoint, azure_env: dict[str, str], options: DriverOptions
) -> None:
    with pytest.raises(driver.AccessError) as caught:
        build(node(arm_endpoint, "worker-9"), options).check()
    assert str(caught.value) == (
        f"node worker-9: instance_view: {description('worker-9')} not found in subscription "
        f"{arm.SUBSCRIPTION_ID}: ResourceNotFound: The Resource 'Microsoft.Compute/virtualMachines/worker-9' "
        "under resource group 'lhsoak-lab' was not found."
    )


def test_another_subscription_is_an_access_error(
    arm_endpoint: arm.ArmEndpoint, azure_env: dict[str, str], options: DriverOptions
) -> None:
    other = "11111111-2222-4333-8444-555555555555"
    with pytest.raises(driver.AccessError) as caught:
        build(node(arm_endpoint, "worker-1", subscription_id=other), options).reboot()
    assert str(caught.value) == (
        f"node worker-1: restart: {description('worker-1')} not found in subscription {other}: "
        f"SubscriptionNotFound: The subscription '{other}' could not be found."
    )


def test_missing_credentials_are_an_access_error_found_on_loopback_only(
    arm_endpoint: arm.ArmEndpoint,
    azure_env: dict[str, str],
    options: DriverOptions,
    monkeypatch: pytest.MonkeyPatch,
    no_egress: NoEgress,
) -> None:
    monkeypatch.delenv("IDENTITY_ENDPOINT")
    monkeypatch.delenv("IDENTITY_HEADER")
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "prod")
    monkeypatch.setenv("AZURE_POD_IDENTITY_AUTHORITY_HOST", arm_endpoint.url)

    with pytest.raises(driver.AccessError) as caught:
        build(node(arm_endpoint, "worker-1"), options).check()

    assert str(caught.value) == (
        "node worker-1: instance_view: no Azure credentials found (DefaultAzureCredential tried "
        "EnvironmentCredential, WorkloadIdentityCredential, ManagedIdentityCredential): set "
        "AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, run with a managed or workload "
        "identity, or `az login`"
    )
    assert no_egress.attempts == [], "neither IMDS at 169.254.169.254 nor Entra ID was asked"
    assert arm_endpoint.tokens_issued == {}


def test_the_lab_answers_azure_cores_poller_until_the_vm_got_there(
    lab: Lab, arm_endpoint: arm.ArmEndpoint, azure_env: dict[str, str]
) -> None:
    client = ComputeManagementClient(
        DefaultAzureCredential(),
        arm_endpoint.subscription_id,
        base_url=arm_endpoint.url,
        credential_scopes=azure.credential_scopes(arm_endpoint.url),
        polling_interval=0.05,
    )
    with client:
        client.virtual_machines.begin_power_off(arm.RESOURCE_GROUP, "worker-2").result(timeout=5)
        assert lab.machine("worker-2").state == "off", "Succeeded only once the VM is off"

        with pytest.raises(HttpResponseError, match=r"OperationNotAllowed.*since the VM is off"):
            client.virtual_machines.begin_restart(arm.RESOURCE_GROUP, "worker-2")

        client.virtual_machines.begin_start(arm.RESOURCE_GROUP, "worker-2").result(timeout=5)
        assert lab.machine("worker-2").state == "running"
        view = client.virtual_machines.instance_view(arm.RESOURCE_GROUP, "worker-2")
    assert [status.code for status in view.statuses] == ["ProvisioningState/succeeded", "PowerState/running"]
    assert pollers() == [], "each poller thread ended with its operation"


@pytest.mark.parametrize(
    ("endpoint", "scope"),
    [
        ("https://management.azure.com/", "https://management.azure.com/.default"),
        ("https://management.chinacloudapi.cn", "https://management.chinacloudapi.cn/.default"),
        ("https://management.usgovcloudapi.net/", "https://management.core.usgovcloudapi.net/.default"),
        ("https://127.0.0.1:8443", "https://127.0.0.1:8443/.default"),
    ],
)
def test_an_endpoint_brings_its_own_token_scope(endpoint: str, scope: str) -> None:
    assert azure.credential_scopes(endpoint) == [scope]


def test_the_guard_sees_the_metadata_probe_it_stops(
    arm_endpoint: arm.ArmEndpoint,
    azure_env: dict[str, str],
    options: DriverOptions,
    monkeypatch: pytest.MonkeyPatch,
    no_egress: NoEgress,
) -> None:
    # The same as above without AZURE_POD_IDENTITY_AUTHORITY_HOST: azure-identity probes IMDS.
    monkeypatch.delenv("IDENTITY_ENDPOINT")
    monkeypatch.delenv("IDENTITY_HEADER")
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "prod")

    with pytest.raises(driver.AccessError, match="no Azure credentials found"):
        build(node(arm_endpoint, "worker-1"), options).check()

    assert no_egress.attempts, "the probe was stopped and recorded"
    assert all("169.254.169.254" in attempt for attempt in no_egress.attempts), no_egress.attempts
    no_egress.attempts.clear()


def test_a_bad_credential_choice_is_an_access_error(
    arm_endpoint: arm.ArmEndpoint,
    azure_env: dict[str, str],
    options: DriverOptions,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AZURE_TOKEN_CREDENTIALS", "KeyVaultCredential")
    with pytest.raises(
        driver.AccessError,
        match=r"^node worker-1: credentials: Invalid value for AZURE_TOKEN_CREDENTIALS: keyvaultcredential\. "
        r"Valid values are: dev, prod, ",
    ):
        build(node(arm_endpoint, "worker-1"), options).check()


def test_lab_up_with_azure_gives_an_inventory_and_credentials_the_driver_uses(
    lab_loop: LoopThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: DriverOptions
) -> None:
    clear_environment(monkeypatch, prefixes=("AZURE_", "MSI_", "IDENTITY_", "IMDS_"))
    with started_lab_cluster(lab_loop, lab_spec(tmp_path / "lab", azure=True)) as lab:
        variables = cluster.read_env_file(lab.cloud_env_path)
        assert set(variables) == {
            "AZURE_TOKEN_CREDENTIALS",
            "IDENTITY_ENDPOINT",
            "IDENTITY_HEADER",
            "REQUESTS_CA_BUNDLE",
        }
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        worker = inventory.load(lab.inventory_path).node("worker-1")
        assert worker.power_driver == "azure"

        proof = driver.prove_reboot(build(worker, options), down_deadline_s=5, up_deadline_s=10)

    assert proof.machine_proven, "restart through the lab's ARM, proven by ssh beside it"
    assert proof.new_boot_id != proof.old_boot_id
