"""An Azure Resource Manager endpoint whose virtual machines are the lab's machines.

One subscription (`SUBSCRIPTION_ID`), one resource group (`RESOURCE_GROUP`), one VM per machine,
named after it. Under /subscriptions/{s}/resourceGroups/{rg}/providers/Microsoft.Compute:

    GET  …/virtualMachines/{vm}/instanceView   statuses: ProvisioningState/…, PowerState/… following the machine
    POST …/virtualMachines/{vm}/restart        machine.reboot()             ┐ 202 Accepted with
    POST …/virtualMachines/{vm}/powerOff       graceful machine.power_off() │ Azure-AsyncOperation and
    POST …/virtualMachines/{vm}/start          machine.power_on()           ┘ Location pointing back here
    GET  /subscriptions/{s}/providers/Microsoft.Compute/locations/{l}/operations/{id}
         the Azure-AsyncOperation: InProgress, then Succeeded once the machine got there (`cloudapi`);
         with monitor=true (the Location): 202 while in progress, then 200

PowerState as on Azure: running throughout a restart (ProvisioningState/updating meanwhile); stopping
while a powered-off machine shuts down; stopped while off; starting while it boots. Errors come in
ARM's format, {"error": {"code", "message"}}: 404 SubscriptionNotFound, ResourceGroupNotFound,
ResourceNotFound; 409 OperationNotAllowed for a restart of a VM that is not running or a start of one
stopping; 400 MissingApiVersionParameter; 401 AuthenticationFailed / InvalidAuthenticationToken.

Credentials, the App Service managed identity protocol (what azure-identity's ManagedIdentityCredential
uses when IDENTITY_ENDPOINT and IDENTITY_HEADER are set):

    GET  /msi/token?api-version=2019-08-01&resource=…   with X-IDENTITY-HEADER → an access token for ARM

The resource must be this endpoint's URL: a client that sent the lab's tokens to another ARM, or
asked for public Azure's scope, is refused. `write_client_files` returns the environment that makes
DefaultAzureCredential take that path and nothing else (AZURE_TOKEN_CREDENTIALS names the one
credential). A second token path answers as the instance metadata service of a VM that has no
managed identity ("Identity not found"), for clients whose AZURE_POD_IDENTITY_AUTHORITY_HOST points
here: that is how a client without credentials fails fast on loopback instead of probing
169.254.169.254.
"""

from __future__ import annotations

import collections
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from lhsoak.lab import cloudapi, pki
from lhsoak.lab.cloudapi import PowerAction, PowerOperation, PowerOperations, PowerRefused
from lhsoak.lab.machine import Machine, MachineFleet

logger = logging.getLogger(__name__)

SUBSCRIPTION_ID = "00000000-0000-4000-8000-6c68736f616b"
RESOURCE_GROUP = "lhsoak-lab"
LOCATION = "westeurope"
MANAGED_IDENTITY_CLIENT_ID = "00000000-0000-4000-8000-6c61626d7369"
ACCESS_TOKEN_LIFETIME_S = 3600
APP_SERVICE_API_VERSION = "2019-08-01"
TOKEN_PATH = "/msi/token"
IMDS_TOKEN_PATH = "/metadata/identity/oauth2/token"
"""Where azure-identity asks the instance metadata service (under AZURE_POD_IDENTITY_AUTHORITY_HOST)."""
_ACTIONS: dict[str, PowerAction] = {"restart": "restart", "powerOff": "stop", "start": "start"}
_DISPLAY = {
    "running": "VM running",
    "stopping": "VM stopping",
    "stopped": "VM stopped",
    "starting": "VM starting",
}


def power_state_of(machine: Machine) -> str:
    """The `PowerState/…` code of the Azure VM that matches the machine right now."""
    if machine.rebooting or machine.state == "running":
        return "PowerState/running"
    if machine.state == "shutting-down":
        return "PowerState/stopping"
    if machine.state == "booting":
        return "PowerState/starting"
    return "PowerState/stopped"


class ArmError(cloudapi.CloudError):
    """An error answer in ARM's format."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> web.Response:
        headers = {}
        if self.status == 401:
            headers["WWW-Authenticate"] = f'Bearer error="invalid_token", error_description="{self.message}"'
        return web.json_response(
            {"error": {"code": self.code, "message": self.message}}, status=self.status, headers=headers
        )


class ArmEndpoint:
    """The running endpoint; `serve()` first, `close()` last, both in the lab's loop."""

    def __init__(
        self, fleet: MachineFleet, *, authority: pki.Pki, clock: Callable[[], float] = time.time
    ) -> None:
        self.fleet = fleet
        self.authority = authority
        self.clock = clock
        self.subscription_id = SUBSCRIPTION_ID
        self.resource_group = RESOURCE_GROUP
        self.operations = PowerOperations(fleet, clock=clock)
        self.tokens_issued: collections.Counter[str] = collections.Counter()
        """Access tokens handed out, by the path that asked: "app-service"."""
        self._identity_header = secrets.token_urlsafe(24)
        self._access_tokens: dict[str, float] = {}
        self._site: cloudapi.HttpsSite | None = None

    @property
    def url(self) -> str:
        """The ARM base URL, https://127.0.0.1:<port> (the client's base_url)."""
        port = self._site.port if self._site is not None else 0
        return f"https://{cloudapi.LOOPBACK}:{port}"

    def write_client_files(self, directory: Path) -> dict[str, str]:
        """Write the lab CA into `directory`; returns the environment a client process needs:
        DefaultAzureCredential reduced to the App Service managed identity this endpoint serves,
        and REQUESTS_CA_BUNDLE."""
        ca = cloudapi.write_ca(directory, self.authority)
        return {
            "AZURE_TOKEN_CREDENTIALS": "ManagedIdentityCredential",
            "IDENTITY_ENDPOINT": f"{self.url}{TOKEN_PATH}",
            "IDENTITY_HEADER": self._identity_header,
            "REQUESTS_CA_BUNDLE": str(ca),
        }

    async def serve(self) -> None:
        """Listen on an ephemeral loopback port and follow the machines."""
        self._site = cloudapi.HttpsSite(self._application(), authority=self.authority)
        await self._site.start()
        self.operations.follow()
        logger.info("arm endpoint at %s (subscription %s)", self.url, self.subscription_id)

    async def close(self) -> None:
        """Stop following the machines and stop listening."""
        self.operations.close()
        if self._site is not None:
            await self._site.close()

    def _application(self) -> web.Application:
        app = web.Application(middlewares=[cloudapi.answer_errors, self._authenticate])
        vm = "/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.Compute/virtualMachines/{vm}"
        app.router.add_get(TOKEN_PATH, self._app_service_token)
        app.router.add_get(IMDS_TOKEN_PATH, self._no_identity)
        app.router.add_get(vm + "/instanceView", self._instance_view)
        app.router.add_post(vm + "/{action:restart|powerOff|start}", self._power)
        app.router.add_get(
            "/subscriptions/{subscription}/providers/Microsoft.Compute/locations/{location}/operations/{operation}",
            self._get_operation,
        )
        return app

    # -- middlewares --

    @web.middleware
    async def _authenticate(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path.startswith("/subscriptions/"):
            token = cloudapi.bearer_token(request)
            if token is None:
                raise ArmError(
                    401,
                    "AuthenticationFailed",
                    "Authentication failed. The 'Authorization' header is missing.",
                )
            if self._access_tokens.get(token, 0.0) <= self.clock():
                raise ArmError(401, "InvalidAuthenticationToken", "The access token is invalid.")
            if "api-version" not in request.query:
                raise ArmError(
                    400,
                    "MissingApiVersionParameter",
                    "The api-version query parameter (?api-version=) is required for all requests.",
                )
        return await handler(request)

    # -- credentials --

    async def _app_service_token(self, request: web.Request) -> web.Response:
        if request.headers.get("X-IDENTITY-HEADER") != self._identity_header:
            return web.json_response(
                {"statusCode": 401, "message": "Unauthorized: wrong X-IDENTITY-HEADER"}, status=401
            )
        if request.query.get("api-version") != APP_SERVICE_API_VERSION:
            return web.json_response(
                {"statusCode": 400, "message": f"api-version must be {APP_SERVICE_API_VERSION}"}, status=400
            )
        resource = request.query.get("resource", "")
        if resource.rstrip("/") != self.url:
            return web.json_response(
                {
                    "statusCode": 400,
                    "message": f"this identity has no access to {resource!r}; ask for {self.url}",
                },
                status=400,
            )
        token = secrets.token_urlsafe(32)
        expires_on = int(self.clock()) + ACCESS_TOKEN_LIFETIME_S
        self._access_tokens[token] = float(expires_on)
        self.tokens_issued["app-service"] += 1
        return web.json_response(
            {
                "access_token": token,
                "expires_on": str(expires_on),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": MANAGED_IDENTITY_CLIENT_ID,
            }
        )

    async def _no_identity(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {"error": "invalid_request", "error_description": "Identity not found"}, status=400
        )

    # -- virtual machines --

    async def _instance_view(self, request: web.Request) -> web.Response:
        machine = self._machine(request)
        return web.json_response(self._view(machine))

    async def _power(self, request: web.Request) -> web.Response:
        machine = self._machine(request)
        verb = request.match_info["action"]
        try:
            operation = self.operations.begin(_ACTIONS[verb], machine.name, operation_id=str(uuid.uuid4()))
        except PowerRefused:
            raise ArmError(
                409,
                "OperationNotAllowed",
                f"Operation '{verb}' is not allowed on VM '{machine.name}' since the VM is {machine.state}.",
            ) from None
        logger.info("arm %s %s → operation %s", verb, machine.name, operation.id)
        api_version = request.query["api-version"]
        status_url = self._operation_url(operation, api_version=api_version)
        return web.Response(
            status=202,
            headers={
                "Azure-AsyncOperation": status_url,
                "Location": f"{status_url}&monitor=true",
            },
        )

    async def _get_operation(self, request: web.Request) -> web.Response:
        self._check_subscription(request)
        operation = self.operations.get(request.match_info["operation"])
        if operation is None:
            raise ArmError(404, "NotFound", f"Operation {request.match_info['operation']} was not found.")
        if request.query.get("monitor") == "true":
            return web.Response(status=200 if operation.done else 202)
        return web.json_response(self._operation_status(operation))

    # -- helpers --

    def _check_subscription(self, request: web.Request) -> None:
        subscription = request.match_info["subscription"]
        if subscription != self.subscription_id:
            raise ArmError(
                404, "SubscriptionNotFound", f"The subscription '{subscription}' could not be found."
            )

    def _machine(self, request: web.Request) -> Machine:
        self._check_subscription(request)
        group, name = request.match_info["group"], request.match_info["vm"]
        # ARM compares resource group names case-insensitively.
        if group.lower() != self.resource_group.lower():
            raise ArmError(404, "ResourceGroupNotFound", f"Resource group '{group}' could not be found.")
        if name not in self.fleet:
            raise ArmError(
                404,
                "ResourceNotFound",
                f"The Resource 'Microsoft.Compute/virtualMachines/{name}' under resource group '{group}' was not found.",
            )
        return self.fleet[name]

    def _operation_url(self, operation: PowerOperation, *, api_version: str) -> str:
        return (
            f"{self.url}/subscriptions/{self.subscription_id}/providers/Microsoft.Compute/locations/{LOCATION}"
            f"/operations/{operation.id}?api-version={api_version}"
        )

    def _view(self, machine: Machine) -> dict[str, Any]:
        power = power_state_of(machine)
        provisioning = "updating" if self.operations.in_progress(machine.name) else "succeeded"
        return {
            "computerName": machine.name,
            "osName": "ubuntu",
            "osVersion": "24.04",
            "statuses": [
                {
                    "code": f"ProvisioningState/{provisioning}",
                    "level": "Info",
                    "displayStatus": f"Provisioning {provisioning}",
                },
                {
                    "code": power,
                    "level": "Info",
                    "displayStatus": _DISPLAY[power.removeprefix("PowerState/")],
                },
            ],
        }

    @staticmethod
    def _operation_status(operation: PowerOperation) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "name": operation.id,
            "status": "Succeeded" if operation.done else "InProgress",
            "startTime": cloudapi.rfc3339(operation.started_at),
        }
        if operation.ended_at is not None:
            answer["endTime"] = cloudapi.rfc3339(operation.ended_at)
        return answer


async def start_arm_endpoint(fleet: MachineFleet, *, authority: pki.Pki) -> ArmEndpoint:
    """Start an ARM endpoint with one VM per machine of `fleet`."""
    endpoint = ArmEndpoint(fleet, authority=authority)
    try:
        await endpoint.serve()
    except BaseException:
        await endpoint.close()
        raise
    return endpoint
