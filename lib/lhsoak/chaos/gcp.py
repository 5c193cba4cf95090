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
from collections.abc import Callable
from typing import Any, TypeVar

import google.api_core.exceptions
import google.auth.exceptions
from google.cloud import compute_v1

from lhsoak import inventory
from lhsoak.chaos import driver, ssh
from lhsoak.chaos.driver import AccessError, CloudDriver, DriverError, DriverOptions, Power, PowerState

logger = logging.getLogger(__name__)

T = TypeVar("T")
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


class GceInstance:
    """One Compute Engine instance, seen and powered through `InstancesClient`."""

    def __init__(self, node: str, target: inventory.GcpTarget, *, options: DriverOptions) -> None:
        self.node = node
        self.target = target
        self.options = options
        self._client: Any = None

    @property
    def description(self) -> str:
        """ "GCE instance name (project/zone)"."""
        return f"GCE instance {self.target.instance} ({self.target.project}/{self.target.zone})"

    @property
    def client(self) -> Any:
        """The InstancesClient, made at first use (it looks for credentials then)."""
        if self._client is None:
            self._client = self._call("credentials", compute_v1.InstancesClient)
        return self._client

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

    def _call(self, action: str, call: Callable[[], T]) -> T:
        try:
            return call()
        except google.auth.exceptions.DefaultCredentialsError:
            raise AccessError(
                f"{action}: no Google Cloud credentials (Application Default Credentials) found",
                node=self.node,
            ) from None
        except (google.api_core.exceptions.Forbidden, google.api_core.exceptions.NotFound) as error:
            raise AccessError(f"{action} {self.description}: {error.message}", node=self.node) from None
        except google.api_core.exceptions.GoogleAPIError as error:
            raise DriverError(f"{action} {self.description}: {error}", node=self.node) from None


def build(node: inventory.Node, *, options: DriverOptions) -> driver.RebootDriver:
    """The driver for a node whose power driver is gcp (ssh beside it reads the boot id)."""
    assert node.gcp is not None, f"node {node.name} has no gcp section"
    return CloudDriver(
        node.name,
        kind="gcp",
        machine=GceInstance(node.name, node.gcp, options=options),
        power_cycle=node.gcp.mode == "power-cycle",
        watch=ssh.watch_for(node, options=options),
        options=options,
    )
