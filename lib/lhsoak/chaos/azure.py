"""The azure driver: restart or power-cycle an Azure VM (azure-mgmt-compute, azure-identity).

- mode `restart`: `virtual_machines.begin_restart`. Going down is observable only through
  ssh beside it; without ssh the proof is left to the Kubernetes bootID (`Evidence.proven` False).
- mode `power-cycle`: `begin_power_off` (a clean shutdown; the VM stays allocated), wait until
  "PowerState/stopped", `begin_start`, wait until "PowerState/running". `restore()` starts a VM this
  driver powered off.

The power state is the `PowerState/…` status of `virtual_machines.instance_view`. Credentials come
from `DefaultAzureCredential` (environment, managed identity, Azure CLI). The SDK is an optional
extra: `pip install 'lhsoak[azure]'`. It is not installed in the project's own test environment, so
this module is exercised only through the shared `CloudDriver` logic (tested with EC2) and the
missing-SDK message; the calls follow the SDK's documented API.
"""

from __future__ import annotations

import logging
from typing import Any

import azure.core.exceptions
from azure.identity import DefaultAzureCredential
from azure.mgmt.compute import ComputeManagementClient

from lhsoak import inventory
from lhsoak.chaos import cloud, driver
from lhsoak.chaos.cloud import Power, PowerState
from lhsoak.chaos.driver import AccessError, DriverError, DriverOptions

logger = logging.getLogger(__name__)

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
        return ComputeManagementClient(
            DefaultAzureCredential(),
            self.target.subscription_id,
            connection_timeout=timeout_s,
            read_timeout=timeout_s,
            retry_total=2,
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
        """`begin_restart` (accepted once it returns a poller; not awaited, like stop and start)."""
        self._call("restart", lambda: self.vms.begin_restart(self.target.resource_group, self.target.vm_name))

    def stop(self) -> None:
        """`begin_power_off` (not awaited: the driver polls the power state)."""
        self._call(
            "power_off", lambda: self.vms.begin_power_off(self.target.resource_group, self.target.vm_name)
        )

    def start(self) -> None:
        """`begin_start` (not awaited: the driver polls the power state)."""
        self._call("start", lambda: self.vms.begin_start(self.target.resource_group, self.target.vm_name))

    def _translate(self, action: str, error: Exception) -> DriverError | None:
        if isinstance(error, azure.core.exceptions.ClientAuthenticationError):
            return AccessError(
                f"{action} {self.description}: Azure refused the credentials: {error.message}",
                node=self.node,
            )
        if isinstance(error, azure.core.exceptions.ResourceNotFoundError):
            return AccessError(
                f"{action}: {self.description} not found in subscription {self.target.subscription_id}",
                node=self.node,
            )
        if isinstance(error, azure.core.exceptions.HttpResponseError):
            return DriverError(f"{action} {self.description}: {error.message}", node=self.node)
        if isinstance(error, azure.core.exceptions.AzureError):
            return DriverError(f"{action} {self.description}: {error}", node=self.node)
        return None


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
