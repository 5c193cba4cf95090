"""The gcp driver: reset or power-cycle a Compute Engine instance (google-cloud-compute).

- mode `reset`: `InstancesClient.reset`, a hard reset. The instance stays RUNNING throughout, so
  going down is observable only through ssh beside it; without ssh the proof is left to the
  Kubernetes bootID (`Evidence.proven` False).
- mode `power-cycle`: `stop`, wait until TERMINATED (Compute Engine's "stopped"), `start`, wait
  until RUNNING. `restore()` starts an instance this driver stopped.

Credentials are Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, gcloud's
application-default login, the metadata server) and never appear in messages. `endpoint` points
the client at another Compute API endpoint (`client_options.api_endpoint`): a Private Service
Connect one, or the lab's (`lhsoak lab up --gce`), which the project's tests drive through this
module and the real SDK. The SDK is an optional extra: `pip install 'lhsoak[gcp]'`.

Operations are not awaited: the driver polls the instance's status instead. (The SDK's
`ExtendedOperation` polls through a zone-operations client of its own that ignores `api_endpoint`
and would ask compute.googleapis.com.) Calls are not retried inside the SDK either (its default for
`get` retries for up to 600 s); the driver's own waits poll again.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import google.api_core.exceptions
import google.auth.exceptions
from google.cloud import compute_v1

from lhsoak import inventory
from lhsoak.chaos import cloud, driver
from lhsoak.chaos.cloud import Power, PowerState
from lhsoak.chaos.driver import AccessError, DriverError, DriverOptions

logger = logging.getLogger(__name__)

CREDENTIALS_VARIABLE = "GOOGLE_APPLICATION_CREDENTIALS"

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
        return self._sdk_client(self._make_client)

    def _make_client(self) -> Any:
        if self.target.endpoint is None:
            return compute_v1.InstancesClient()
        return compute_v1.InstancesClient(client_options={"api_endpoint": self.target.endpoint})

    def state(self) -> PowerState:
        """`instances.get` → its status."""
        instance = self._call("get", lambda: self.client.get(**self._request()))
        raw = str(instance.status)
        return PowerState(power=_POWER.get(raw, "unknown"), raw=raw)

    def restart(self) -> None:
        """`instances.reset` (accepted once the call returns its operation; not awaited)."""
        self._call("reset", lambda: self.client.reset(**self._request()))

    def stop(self) -> None:
        """`instances.stop` (the operation completes when the instance is stopped; not awaited)."""
        self._call("stop", lambda: self.client.stop(**self._request()))

    def start(self) -> None:
        """`instances.start` (not awaited: the driver polls the status)."""
        self._call("start", lambda: self.client.start(**self._request()))

    def _request(self) -> dict[str, Any]:
        return {
            "project": self.target.project,
            "zone": self.target.zone,
            "instance": self.target.instance,
            "timeout": self.options.connect_timeout_s,
            "retry": None,
        }

    def _translate(self, action: str, error: Exception) -> DriverError | None:
        if isinstance(error, google.auth.exceptions.DefaultCredentialsError):
            return AccessError(f"{action}: {_missing_credentials(error)}", node=self.node)
        if isinstance(error, google.auth.exceptions.RefreshError):
            return AccessError(
                f"{action} {self.description}: Google refused the credentials: {error}", node=self.node
            )
        if isinstance(error, google.api_core.exceptions.NotFound):
            return AccessError(
                f"{action}: {self.description} not found: {_google_message(error)}", node=self.node
            )
        if isinstance(error, google.api_core.exceptions.Unauthorized | google.api_core.exceptions.Forbidden):
            return AccessError(f"{action} {self.description}: {_google_message(error)}", node=self.node)
        if isinstance(error, google.api_core.exceptions.GoogleAPICallError):
            return DriverError(f"{action} {self.description}: {_google_message(error)}", node=self.node)
        # The REST transport lets the requests library's errors (OSErrors) through unwrapped.
        if isinstance(
            error, google.api_core.exceptions.GoogleAPIError | google.auth.exceptions.TransportError | OSError
        ):
            return DriverError(f"{action} {self.description}: {error}", node=self.node)
        return None


def _missing_credentials(error: google.auth.exceptions.DefaultCredentialsError) -> str:
    """What is missing, in words a user can act on (google-auth's own message is mostly a URL)."""
    if os.environ.get(CREDENTIALS_VARIABLE):
        return f"the key file {CREDENTIALS_VARIABLE} names cannot be used: {error}"
    return (
        f"no Google Cloud credentials found: set {CREDENTIALS_VARIABLE} to a service account "
        "key file, run `gcloud auth application-default login`, or run on Compute Engine with "
        "a service account"
    )


def _google_message(error: google.api_core.exceptions.GoogleAPICallError) -> str:
    """The API's own message, without the method and URL google-api-core puts in front."""
    for detail in error.errors or ():
        if isinstance(detail, dict) and detail.get("message"):
            return str(detail["message"])
    return str(error.message)


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
