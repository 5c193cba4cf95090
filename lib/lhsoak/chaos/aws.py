"""The aws driver: reboot or power-cycle an EC2 instance through the EC2 API (boto3).

- mode `reboot`: RebootInstances. EC2 keeps a rebooting instance "running", so going down is
  observable only through ssh (`ssh.BootIdWatch`) when the node has an ssh section; without one,
  `wait_down` says so (`Evidence.proven` False) and the proof is left to the Kubernetes bootID.
- mode `power-cycle`: StopInstances, wait until "stopped" (the proof it went down), StartInstances
  at the start of `wait_up`, wait until "running". `restore()` starts an instance this driver
  stopped and did not start again.

The instance is named by id, or resolved once by its Name tag among live instances (exactly one must
match). Credentials come from boto3's standard chain (environment, `profile`, instance role) and never
appear in messages. `endpoint_url` points boto3 at another endpoint, such as the lab's.
"""

from __future__ import annotations

import logging
from typing import Any

import boto3
import botocore.config
import botocore.exceptions

from lhsoak import inventory
from lhsoak.chaos import cloud, driver
from lhsoak.chaos.cloud import Power, PowerState
from lhsoak.chaos.driver import AccessError, DriverError, DriverOptions

logger = logging.getLogger(__name__)

LIVE_STATES = ("pending", "running", "stopping", "stopped")
"""Instance states a Name tag may resolve to (not shutting-down or terminated)."""
_POWER: dict[str, Power] = {
    "pending": "starting",
    "running": "running",
    "stopping": "stopping",
    "stopped": "stopped",
}
_ACCESS_ERROR_CODES = frozenset(
    {
        "AuthFailure",
        "UnauthorizedOperation",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "InvalidInstanceID.NotFound",
        "InvalidInstanceID.Malformed",
    }
)


class Ec2Instance(cloud.SdkMachine[inventory.AwsTarget]):
    """One EC2 instance, seen and powered through boto3 (a `cloud.CloudMachine`)."""

    def __init__(self, node: str, target: inventory.AwsTarget, *, options: DriverOptions) -> None:
        super().__init__(node, target, options=options)
        self._instance_id = target.instance_id

    @property
    def description(self) -> str:
        """ "EC2 instance i-… (region)", or by Name tag before it is resolved."""
        which = self._instance_id or f"Name={self.target.name_tag}"
        return f"EC2 instance {which} ({self.target.region})"

    @property
    def client(self) -> Any:
        """The boto3 EC2 client, made at first use."""
        return self._sdk_client(self._make_client)

    def _make_client(self) -> Any:
        config = botocore.config.Config(
            connect_timeout=self.options.connect_timeout_s,
            read_timeout=self.options.connect_timeout_s,
            retries={"max_attempts": 2, "mode": "standard"},
        )
        try:
            session = boto3.session.Session(profile_name=self.target.profile, region_name=self.target.region)
        except botocore.exceptions.ProfileNotFound:
            raise AccessError(
                f"AWS profile {self.target.profile!r} is not in the shared AWS config", node=self.node
            ) from None
        return session.client("ec2", endpoint_url=self.target.endpoint_url, config=config)

    def instance_id(self) -> str:
        """The instance id: as configured, or resolved once from the Name tag."""
        if self._instance_id is None:
            self._instance_id = self._resolve_name_tag()
        return self._instance_id

    def state(self) -> PowerState:
        """DescribeInstances → the instance's state."""
        instance_id = self.instance_id()
        answer = self._call(
            "DescribeInstances", lambda: self.client.describe_instances(InstanceIds=[instance_id])
        )
        instances = [i for r in answer.get("Reservations", []) for i in r.get("Instances", [])]
        if not instances:
            raise AccessError(f"{self.description} not found", node=self.node)
        raw = str(instances[0]["State"]["Name"])
        return PowerState(power=_POWER.get(raw, "unknown"), raw=raw)

    def restart(self) -> None:
        """RebootInstances."""
        instance_id = self.instance_id()
        self._call("RebootInstances", lambda: self.client.reboot_instances(InstanceIds=[instance_id]))

    def stop(self) -> None:
        """StopInstances (a clean shutdown, not Force)."""
        instance_id = self.instance_id()
        self._call("StopInstances", lambda: self.client.stop_instances(InstanceIds=[instance_id]))

    def start(self) -> None:
        """StartInstances."""
        instance_id = self.instance_id()
        self._call("StartInstances", lambda: self.client.start_instances(InstanceIds=[instance_id]))

    def _resolve_name_tag(self) -> str:
        name = self.target.name_tag
        filters = [
            {"Name": "tag:Name", "Values": [name]},
            {"Name": "instance-state-name", "Values": list(LIVE_STATES)},
        ]
        pages = self._call(
            "DescribeInstances",
            lambda: list(self.client.get_paginator("describe_instances").paginate(Filters=filters)),
        )
        found = [
            str(instance["InstanceId"])
            for page in pages
            for reservation in page.get("Reservations", [])
            for instance in reservation.get("Instances", [])
        ]
        if len(found) != 1:
            what = "no live instance" if not found else f"{len(found)} live instances ({', '.join(found)})"
            raise AccessError(
                f"{what} tagged Name={name} in {self.target.region}; exactly one must match "
                "(or give aws.instance_id)",
                node=self.node,
            )
        logger.info("node %s: Name=%s is instance %s", self.node, name, found[0])
        return found[0]

    def _translate(self, action: str, error: Exception) -> DriverError | None:
        if isinstance(error, botocore.exceptions.NoCredentialsError):
            return AccessError(
                f"{action}: no AWS credentials found (environment, aws.profile or instance role)",
                node=self.node,
            )
        if isinstance(error, botocore.exceptions.ClientError):
            details = error.response.get("Error", {})
            code = str(details.get("Code", "?"))
            message = f"{action} failed: {code}: {details.get('Message', '')}"
            if code in _ACCESS_ERROR_CODES:
                return AccessError(message, node=self.node)
            return DriverError(message, node=self.node)
        if isinstance(error, botocore.exceptions.BotoCoreError):
            return DriverError(f"{action} failed: {error}", node=self.node)
        return None


def build(node: inventory.Node, *, options: DriverOptions) -> driver.RebootDriver:
    """The driver for a node whose power driver is aws (ssh beside it reads the boot id)."""
    assert node.aws is not None, f"node {node.name} has no aws section"
    return cloud.build(
        node,
        kind="aws",
        machine=Ec2Instance(node.name, node.aws, options=options),
        power_cycle=node.aws.mode == "power-cycle",
        options=options,
    )
