"""The azure driver: restart or power-cycle an Azure VM (azure-mgmt-compute, azure-identity).

- mode `restart`: `virtual_machines.begin_restart`. Going down is observable only through
  ssh beside it; without ssh the proof is left to the Kubernetes bootID (`Evidence.proven` False).
- mode `power-cycle`: `begin_power_off` (a clean shutdown; the VM stays allocated), wait until
  "PowerState/stopped", `begin_start`, wait until "PowerState/running". `restore()` starts a VM this
  driver powered off.

The power state is the `PowerState/…` status of `virtual_machines.instance_view`. The long-running
operations are started with `polling=False`: the driver polls the power state itself, and no
azure-core poller thread outlives the call.

Credentials come from `DefaultAzureCredential` (environment, workload identity, managed identity,
Azure CLI, …; AZURE_TOKEN_CREDENTIALS narrows the chain) and never appear in messages. `endpoint`
points the client at another Resource Manager (`base_url`), with the token scope that goes with it:
a sovereign cloud's own (China, US Government), or `<endpoint>/.default` for any other, such as
the lab's (`lhsoak lab up --azure`), which the project's tests drive through this module and the
real SDK. The SDK is an optional extra: `pip install 'lhsoak[azure]'`.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import azure.core.exceptions
from azure.identity import DefaultAzureCredential
from azure.mgmt.compute import ComputeManagementClient

from lhsoak import inventory
from lhsoak.chaos import cloud, driver
from lhsoak.chaos.cloud import Power, PowerState
from lhsoak.chaos.driver import AccessError, DriverError, DriverOptions

logger = logging.getLogger(__name__)

# Resource Manager endpoints → token scopes, as azure-mgmt-core's get_arm_endpoints lists them
# (kept here: the `azure` extra allows SDK versions older than that function).
_KNOWN_CLOUD_SCOPES = {
    "https://management.azure.com": "https://management.azure.com/.default",
    "https://management.chinacloudapi.cn": "https://management.chinacloudapi.cn/.default",
    "https://management.usgovcloudapi.net": "https://management.core.usgovcloudapi.net/.default",
}
_POWER_PREFIX = "PowerState/"
_POWER: dict[str, Power] = {
    "PowerState/starting": "starting",
    "PowerState/running": "running",
    "PowerState/stopping": "stopping",
    "PowerState/stopped": "stopped",
    "PowerState/deallocating": "stopping",
    "PowerState/deallocated": "stopped",
}


class AzureVm(cloud.SdkMachine[inventory.AzureTarget]):
    """One Azure VM, seen and powered through `ComputeManagementClient.virtual_machines`."""

    @property
    def description(self) -> str:
        """ "Azure VM name (resource group)"."""
        return f"Azure VM {self.target.vm_name} ({self.target.resource_group})"

    @property
    def vms(self) -> Any:
        """The `virtual_machines` operations, with a client made at first use."""
        return self._sdk_client(self._make_client).virtual_machines

    def _make_client(self) -> Any:
        # azure-core waits up to 300 s to connect and to read, and retries 10 times, unless told.
        timeout_s = self.options.connect_timeout_s
        endpoint: dict[str, Any] = {}
        if self.target.endpoint is not None:
            endpoint = {
                "base_url": self.target.endpoint,
                "credential_scopes": credential_scopes(self.target.endpoint),
            }
        return ComputeManagementClient(
            DefaultAzureCredential(),
            self.target.subscription_id,
            connection_timeout=timeout_s,
            read_timeout=timeout_s,
            retry_total=2,
            **endpoint,
        )

    def state(self) -> PowerState:
        """The `PowerState/…` status of the instance view."""
        view = self._call(
            "instance_view",
            lambda: self.vms.instance_view(self.target.resource_group, self.target.vm_name),
        )
        codes = [str(status.code) for status in (view.statuses or []) if status.code]
        raw = next((code for code in codes if code.startswith(_POWER_PREFIX)), "PowerState/unknown")
        return PowerState(power=_POWER.get(raw, "unknown"), raw=raw)

    def restart(self) -> None:
        """`begin_restart` (accepted once ARM answers 202; not awaited, like stop and start)."""
        self._call("restart", lambda: self.vms.begin_restart(*self._names(), polling=False))

    def stop(self) -> None:
        """`begin_power_off` (not awaited: the driver polls the power state)."""
        self._call("power_off", lambda: self.vms.begin_power_off(*self._names(), polling=False))

    def start(self) -> None:
        """`begin_start` (not awaited: the driver polls the power state)."""
        self._call("start", lambda: self.vms.begin_start(*self._names(), polling=False))

    def _names(self) -> tuple[str, str]:
        return self.target.resource_group, self.target.vm_name

    def _translate(self, action: str, error: Exception) -> DriverError | None:
        # A credential that found no token raises ClientAuthenticationError without an HTTP
        # response; ARM refusing a token raises it with ARM's 401.
        if isinstance(error, azure.core.exceptions.ClientAuthenticationError) and error.response is None:
            return AccessError(f"{action}: {_missing_credentials(error)}", node=self.node)
        if isinstance(error, azure.core.exceptions.ClientAuthenticationError):
            return AccessError(
                f"{action} {self.description}: Azure refused the credentials: {_arm_message(error)}",
                node=self.node,
            )
        if isinstance(error, azure.core.exceptions.ResourceNotFoundError):
            return AccessError(
                f"{action}: {self.description} not found in subscription {self.target.subscription_id}: "
                f"{_arm_message(error)}",
                node=self.node,
            )
        if isinstance(error, azure.core.exceptions.HttpResponseError) and error.status_code == 403:
            return AccessError(f"{action} {self.description}: {_arm_message(error)}", node=self.node)
        if isinstance(error, azure.core.exceptions.HttpResponseError):
            return DriverError(f"{action} {self.description}: {_arm_message(error)}", node=self.node)
        if isinstance(error, azure.core.exceptions.AzureError):
            return DriverError(f"{action} {self.description}: {error}", node=self.node)
        if isinstance(error, ValueError) and action == "credentials":
            # DefaultAzureCredential refuses a bad AZURE_TOKEN_CREDENTIALS value this way.
            return AccessError(f"{action}: {error}", node=self.node)
        return None


def credential_scopes(endpoint: str) -> list[str]:
    """The token scopes for a Resource Manager at `endpoint`: a known cloud's own (US Government's
    is not its endpoint's), else the endpoint's `/.default`."""
    wanted = endpoint.rstrip("/")
    return [_KNOWN_CLOUD_SCOPES.get(wanted, f"{wanted}/.default")]


def _missing_credentials(error: azure.core.exceptions.ClientAuthenticationError) -> str:
    """Which credentials DefaultAzureCredential tried, and what a user can do about it."""
    # azure-identity lists each attempt as a tab-indented "CredentialName: why" line.
    tried = re.findall(r"^\t(\w+Credential):", str(error.message), flags=re.MULTILINE)
    return (
        "no Azure credentials found"
        + (f" (DefaultAzureCredential tried {', '.join(tried)})" if tried else "")
        + ": set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET, run with a managed or "
        "workload identity, or `az login`"
    )


def _arm_message(error: azure.core.exceptions.HttpResponseError) -> str:
    """ARM's own "Code: message", on one line."""
    detail = error.error
    if detail is not None and detail.code:
        return f"{detail.code}: {detail.message}"
    return " ".join(str(error.message).split())


def build(node: inventory.Node, *, options: DriverOptions) -> driver.RebootDriver:
    """The driver for a node whose power driver is azure (ssh beside it reads the boot id)."""
    assert node.azure is not None, f"node {node.name} has no azure section"
    return cloud.build(
        node,
        kind="azure",
        machine=AzureVm(node.name, node.azure, options=options),
        power_cycle=node.azure.mode == "power-cycle",
        options=options,
    )
