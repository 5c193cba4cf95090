"""The gcp driver: reset or power-cycle a Compute Engine instance (google-cloud-compute).

- mode `reset`: `InstancesClient.reset`, a hard reset. The instance stays RUNNING throughout, so
  going down is observable only through ssh beside it; without ssh the proof is left to the
  Kubernetes bootID (`Evidence.proven` False).
- mode `power-cycle`: `stop`, wait until TERMINATED (Compute Engine's "stopped"), `start`, wait
  until RUNNING. `restore()` starts an instance this driver stopped.

Credentials are Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud, metadata
server). The SDK is an optional extra: `pip install 'lhsoak[gcp]'`. It is not installed in the
project's own test environment, so this module is exercised only through the shared `CloudDriver`
logic (tested with EC2) and the missing-SDK message; the calls follow the SDK's documented API.
"""

from __future__ import annotations

import logging
from typing import Any

import google.api_core.exceptions
import google.auth.exceptions
from google.cloud import compute_v1

from lhsoak import inventory
from lhsoak.chaos import cloud, driver
from lhsoak.chaos.cloud import Power, PowerState
from lhsoak.chaos.driver import AccessError, DriverError, DriverOptions

logger = logging.getLogger(__name__)

# Instance.status values (compute v1); STOPPED is only a transient name, TERMINATED is "stopped".
_POWER: dict[str, Power] = {
    "PROVISIONING": "starting",
    "STAGING": "starting",
    "RUNNING": "running",
    "STOPPING": "stopping",
    "SUSPENDING": "stopping",
    "STOPPED": "stopped",
    "TERMINATED": "stopped",
}


class GceInstance(cloud.SdkMachine[inventory.GcpTarget]):
    """One Compute Engine instance, seen and powered through `InstancesClient`."""

    @property
    def description(self) -> str:
        """ "GCE instance name (project/zone)"."""
        return f"GCE instance {self.target.instance} ({self.target.project}/{self.target.zone})"

    @property
    def client(self) -> Any:
        """The InstancesClient, made at first use (it looks for credentials then)."""
        return self._sdk_client(compute_v1.InstancesClient)

    def state(self) -> PowerState:
        """`instances.get` → its status."""
        instance = self._call("get", lambda: self.client.get(**self._names(), timeout=self._timeout_s))
        raw = str(instance.status)
        return PowerState(power=_POWER.get(raw, "unknown"), raw=raw)

    def restart(self) -> None:
        """`instances.reset` (accepted once the call returns its operation; not awaited)."""
        self._call("reset", lambda: self.client.reset(**self._names(), timeout=self._timeout_s))

    def stop(self) -> None:
        """`instances.stop` (the operation completes when the instance is stopped; not awaited)."""
        self._call("stop", lambda: self.client.stop(**self._names(), timeout=self._timeout_s))

    def start(self) -> None:
        """`instances.start` (not awaited: the driver polls the status)."""
        self._call("start", lambda: self.client.start(**self._names(), timeout=self._timeout_s))

    @property
    def _timeout_s(self) -> float:
        return self.options.connect_timeout_s

    def _names(self) -> dict[str, str]:
        return {"project": self.target.project, "zone": self.target.zone, "instance": self.target.instance}

    def _translate(self, action: str, error: Exception) -> DriverError | None:
        if isinstance(error, google.auth.exceptions.DefaultCredentialsError):
            return AccessError(
                f"{action}: no Google Cloud credentials (Application Default Credentials) found",
                node=self.node,
            )
        if isinstance(error, google.api_core.exceptions.Forbidden | google.api_core.exceptions.NotFound):
            return AccessError(f"{action} {self.description}: {error.message}", node=self.node)
        if isinstance(error, google.api_core.exceptions.GoogleAPIError):
            return DriverError(f"{action} {self.description}: {error}", node=self.node)
        return None


def build(node: inventory.Node, *, options: DriverOptions) -> driver.RebootDriver:
    """The driver for a node whose power driver is gcp (ssh beside it reads the boot id)."""
    assert node.gcp is not None, f"node {node.name} has no gcp section"
    return cloud.build(
        node,
        kind="gcp",
        machine=GceInstance(node.name, node.gcp, options=options),
        power_cycle=node.gcp.mode == "power-cycle",
        options=options,
    )
