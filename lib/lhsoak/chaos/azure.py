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
from collections.abc import Callable
from typing import Any, TypeVar

import azure.core.exceptions
from azure.identity import DefaultAzureCredential
from azure.mgmt.compute import ComputeManagementClient

from lhsoak import inventory
from lhsoak.chaos import driver, ssh
from lhsoak.chaos.driver import AccessError, CloudDriver, DriverError, DriverOptions, Power, PowerState

logger = logging.getLogger(__name__)

T = TypeVar("T")
_POWER_PREFIX = "PowerState/"
_POWER: dict[str, Power] = {
    "PowerState/starting": "starting",
    "PowerState/running": "running",
    "PowerState/stopping": "stopping",
    "PowerState/stopped": "stopped",
    "PowerState/deallocating": "stopping",
    "PowerState/deallocated": "stopped",
}


class AzureVm:
    """One Azure VM, seen and powered through `ComputeManagementClient.virtual_machines`."""

    def __init__(self, node: str, target: inventory.AzureTarget, *, options: DriverOptions) -> None:
        self.node = node
        self.target = target
        self.options = options
        self._client: Any = None

    @property
    def description(self) -> str:
        """ "Azure VM name (resource group)"."""
        return f"Azure VM {self.target.vm_name} ({self.target.resource_group})"

    @property
    def vms(self) -> Any:
        """The `virtual_machines` operations, with a client made at first use."""
        if self._client is None:
            self._client = self._call(
                "credentials",
                lambda: ComputeManagementClient(DefaultAzureCredential(), self.target.subscription_id),
            )
        return self._client.virtual_machines

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

    def _call(self, action: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except azure.core.exceptions.ClientAuthenticationError as error:
            raise AccessError(
                f"{action} {self.description}: Azure refused the credentials: {error.message}",
                node=self.node,
            ) from None
        except azure.core.exceptions.ResourceNotFoundError:
            raise AccessError(
                f"{action}: {self.description} not found in subscription {self.target.subscription_id}",
                node=self.node,
            ) from None
        except azure.core.exceptions.HttpResponseError as error:
            raise DriverError(f"{action} {self.description}: {error.message}", node=self.node) from None
        except azure.core.exceptions.AzureError as error:
            raise DriverError(f"{action} {self.description}: {error}", node=self.node) from None


def build(node: inventory.Node, *, options: DriverOptions) -> driver.RebootDriver:
    """The driver for a node whose power driver is azure (ssh beside it reads the boot id)."""
    assert node.azure is not None, f"node {node.name} has no azure section"
    return CloudDriver(
        node.name,
        kind="azure",
        machine=AzureVm(node.name, node.azure, options=options),
        power_cycle=node.azure.mode == "power-cycle",
        watch=ssh.watch_for(node, options=options),
        options=options,
    )
