"""A Compute Engine endpoint (compute v1 REST, JSON) whose instances are the lab's machines.

One project (`PROJECT`), one zone (`ZONE`), one instance per machine, named after it:

    GET  /compute/v1/projects/{p}/zones/{z}/instances/{i}         the Instance; its status follows the machine
    POST /compute/v1/projects/{p}/zones/{z}/instances/{i}/reset   machine.reboot()             → an Operation
    POST …/instances/{i}/stop                                     graceful machine.power_off() → an Operation
    POST …/instances/{i}/start                                    machine.power_on()           → an Operation
    GET  /compute/v1/projects/{p}/zones/{z}/operations/{o}        the zonal Operation: RUNNING, then DONE
                                                                  once the machine got there (`cloudapi`)
    POST /token                                                   the OAuth 2.0 JWT-bearer grant (RFC 7523)

Instance status as on Compute Engine: RUNNING throughout a reset; STOPPING while a stopped machine
shuts down; TERMINATED while it is off; STAGING while it boots; RUNNING once booted. Errors come in
Compute's JSON error format: 404 `notFound` for an unknown instance or operation, 400 `invalid` for
another zone, 403 `forbidden` for another project, 400 `resourceNotReady` for a reset of an instance
that is not running or a start of one that is stopping, 401 for a missing or unknown credential.

Credentials: the endpoint has one service account with a fresh RSA key. `write_client_files` writes
its key file (for GOOGLE_APPLICATION_CREDENTIALS; its `token_uri` is this endpoint's /token) and the
lab CA (for REQUESTS_CA_BUNDLE). A request must carry either a JWT the service account signed
itself for https://compute.googleapis.com/ or with a compute scope, which is what google-cloud-compute
sends (its clients ask google-auth for self-signed JWTs, AIP-4111, and never call `token_uri`), or
an access token this endpoint issued at /token (what google-auth's JWT-bearer grant gets when a
caller refreshes scoped credentials itself). `auth_seen` counts which kind each request carried.
"""

from __future__ import annotations

import base64
import binascii
import collections
import hashlib
import json
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from aiohttp import web
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from lhsoak.lab import cloudapi, pki
from lhsoak.lab.cloudapi import PowerAction, PowerOperation, PowerOperations, PowerRefused
from lhsoak.lab.machine import Machine, MachineFleet

logger = logging.getLogger(__name__)

PROJECT = "lhsoak-lab"
ZONE = "lab-zone-a"
MACHINE_TYPE = "e2-standard-4"
SERVICE_ACCOUNT = f"lhsoak-chaos@{PROJECT}.iam.gserviceaccount.com"
CREDENTIALS_FILE = "gce-service-account.json"
COMPUTE_AUDIENCE = "https://compute.googleapis.com/"
"""The audience of the self-signed JWTs google-cloud-compute sends, whatever its api_endpoint."""
COMPUTE_SCOPES = frozenset(
    {"https://www.googleapis.com/auth/compute", "https://www.googleapis.com/auth/cloud-platform"}
)
GOOGLE_TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
"""The audience google-auth puts in its grant assertions, whatever the key file's token_uri."""
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
ACCESS_TOKEN_LIFETIME_S = 3600
CLOCK_SKEW_S = 300.0
"""How far a JWT's times may be off this endpoint's clock, in seconds (as Google's own check)."""

AuthKind = Literal["self-signed-jwt", "access-token"]
_OPERATION_TYPES: dict[str, PowerAction] = {"reset": "restart", "stop": "stop", "start": "start"}


def gce_status_of(machine: Machine) -> str:
    """The Compute Engine instance status that matches the machine right now."""
    if machine.rebooting or machine.state == "running":
        return "RUNNING"
    if machine.state == "shutting-down":
        return "STOPPING"
    if machine.state == "booting":
        return "STAGING"
    return "TERMINATED"


def numeric_id(name: str) -> int:
    """The numeric id Compute gives the instance or operation `name` (stable across lab restarts)."""
    return int(hashlib.sha256(name.encode()).hexdigest()[:15], 16)


@dataclass(frozen=True)
class ServiceAccountKey:
    """A service account and its RSA key, as Google hands them out in a JSON key file."""

    email: str
    """The service account's email (the JWTs' issuer)."""
    key_id: str
    """The key's id (the JWTs' `kid`)."""
    private_key_pem: str
    """The private key, PKCS#8 PEM."""
    public_key: rsa.RSAPublicKey
    """What signatures are checked against."""

    @classmethod
    def generate(cls, email: str) -> ServiceAccountKey:
        """A fresh 2048-bit key for `email`."""
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return cls(
            email=email,
            key_id=secrets.token_hex(20),
            private_key_pem=pem.decode(),
            public_key=key.public_key(),
        )

    def key_file(self, *, project: str, token_uri: str) -> dict[str, str]:
        """The JSON key file's fields (only those google-auth reads, and no Google URL)."""
        return {
            "type": "service_account",
            "project_id": project,
            "private_key_id": self.key_id,
            "private_key": self.private_key_pem,
            "client_email": self.email,
            "client_id": str(int(hashlib.sha256(self.email.encode()).hexdigest()[:20], 16)),
            "token_uri": token_uri,
            "universe_domain": "googleapis.com",
        }


def verify_rs256(token: str, key: rsa.RSAPublicKey) -> dict[str, Any] | None:
    """The claims of a compact JWT signed with RS256 by `key`, or None if it is not one."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        header = json.loads(_unbase64(parts[0]))
        if not isinstance(header, dict) or header.get("alg") != "RS256":
            return None
        key.verify(
            _unbase64(parts[2]),
            f"{parts[0]}.{parts[1]}".encode("ascii"),
            padding.PKCS1v15(),
            hashes.SHA256(),
        )
        claims = json.loads(_unbase64(parts[1]))
    except (ValueError, binascii.Error, InvalidSignature):
        return None
    return claims if isinstance(claims, dict) else None


def _unbase64(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class ComputeError(cloudapi.CloudError):
    """An error answer in Compute's JSON error format."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.message = message

    def response(self) -> web.Response:
        error: dict[str, Any] = {
            "code": self.status,
            "message": self.message,
            "errors": [{"message": self.message, "domain": "global", "reason": self.reason}],
        }
        if self.status == 401:
            error["status"] = "UNAUTHENTICATED"
        return web.json_response({"error": error}, status=self.status)


class GceEndpoint:
    """The running endpoint; `serve()` first, `close()` last, both in the lab's loop."""

    def __init__(
        self, fleet: MachineFleet, *, authority: pki.Pki, clock: Callable[[], float] = time.time
    ) -> None:
        self.fleet = fleet
        self.authority = authority
        self.clock = clock
        self.project = PROJECT
        self.zone = ZONE
        self.service_account = ServiceAccountKey.generate(SERVICE_ACCOUNT)
        self.operations = PowerOperations(fleet, clock=clock)
        self.auth_seen: collections.Counter[AuthKind] = collections.Counter()
        """How many requests carried each kind of credential."""
        self._access_tokens: dict[str, float] = {}
        self._site: cloudapi.HttpsSite | None = None

    @property
    def url(self) -> str:
        """The endpoint URL, https://127.0.0.1:<port> (a client's api_endpoint)."""
        port = self._site.port if self._site is not None else 0
        return f"https://{cloudapi.LOOPBACK}:{port}"

    @property
    def token_uri(self) -> str:
        """The OAuth 2.0 token endpoint the key file names."""
        return f"{self.url}/token"

    def write_client_files(self, directory: Path) -> dict[str, str]:
        """Write the service account key file and the lab CA into `directory`; returns the
        environment a client process needs (GOOGLE_APPLICATION_CREDENTIALS, REQUESTS_CA_BUNDLE)."""
        key_file = self.service_account.key_file(project=self.project, token_uri=self.token_uri)
        path = cloudapi.write_secret(directory / CREDENTIALS_FILE, json.dumps(key_file, indent=2) + "\n")
        ca = cloudapi.write_ca(directory, self.authority)
        return {"GOOGLE_APPLICATION_CREDENTIALS": str(path), "REQUESTS_CA_BUNDLE": str(ca)}

    async def serve(self) -> None:
        """Listen on an ephemeral loopback port and follow the machines."""
        self._site = cloudapi.HttpsSite(self._application(), authority=self.authority)
        await self._site.start()
        self.operations.follow()
        logger.info("gce endpoint at %s (project %s, zone %s)", self.url, self.project, self.zone)

    async def close(self) -> None:
        """Stop following the machines and stop listening."""
        self.operations.close()
        if self._site is not None:
            await self._site.close()

    def _application(self) -> web.Application:
        app = web.Application(middlewares=[cloudapi.answer_errors, self._authenticate])
        base = "/compute/v1/projects/{project}/zones/{zone}"
        app.router.add_post("/token", self._token)
        app.router.add_get(base + "/instances/{instance}", self._get_instance)
        app.router.add_post(base + "/instances/{instance}/{verb:reset|stop|start}", self._power)
        app.router.add_get(base + "/operations/{operation}", self._get_operation)
        return app

    # -- middlewares --

    @web.middleware
    async def _authenticate(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if request.path.startswith("/compute/"):
            token = cloudapi.bearer_token(request)
            if token is None:
                raise ComputeError(
                    401,
                    "required",
                    "Request is missing required authentication credential. Expected OAuth 2 access "
                    "token, login cookie or other valid authentication credential.",
                )
            kind = self._credential_kind(token)
            if kind is None:
                raise ComputeError(
                    401,
                    "authError",
                    "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                    "login cookie or other valid authentication credential.",
                )
            self.auth_seen[kind] += 1
        return await handler(request)

    def _credential_kind(self, token: str) -> AuthKind | None:
        now = self.clock()
        expiry = self._access_tokens.get(token)
        if expiry is not None:
            return "access-token" if expiry > now else None
        claims = self._signed_by_service_account(token)
        if claims is None:
            return None
        scopes = set(str(claims.get("scope", "")).split())
        if claims.get("aud") != COMPUTE_AUDIENCE and not scopes & COMPUTE_SCOPES:
            return None
        return "self-signed-jwt"

    def _signed_by_service_account(self, token: str) -> dict[str, Any] | None:
        """The claims of a JWT the service account signed, unexpired, or None."""
        claims = verify_rs256(token, self.service_account.public_key)
        if claims is None or claims.get("iss") != self.service_account.email:
            return None
        now = self.clock()
        expires, issued = _number(claims.get("exp")), _number(claims.get("iat"))
        if not (expires > now - CLOCK_SKEW_S and issued < now + CLOCK_SKEW_S):
            return None
        return claims

    # -- handlers --

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != JWT_BEARER_GRANT:
            return _oauth_error("unsupported_grant_type", "Invalid grant_type.")
        claims = self._signed_by_service_account(str(form.get("assertion", "")))
        if claims is None:
            return _oauth_error("invalid_grant", "Invalid JWT Signature.")
        if claims.get("aud") not in (self.token_uri, GOOGLE_TOKEN_AUDIENCE):
            return _oauth_error("invalid_grant", "Invalid JWT: Failed audience check.")
        token = f"ya29.lab-{secrets.token_urlsafe(32)}"
        self._access_tokens[token] = self.clock() + ACCESS_TOKEN_LIFETIME_S
        return web.json_response(
            {"access_token": token, "expires_in": ACCESS_TOKEN_LIFETIME_S, "token_type": "Bearer"}
        )

    async def _get_instance(self, request: web.Request) -> web.Response:
        machine = self._machine(request, permission="compute.instances.get")
        return web.json_response(self._instance(machine))

    async def _power(self, request: web.Request) -> web.Response:
        verb = request.match_info["verb"]
        machine = self._machine(request, permission=f"compute.instances.{verb}")
        operation_id = f"operation-{int(self.clock() * 1000)}-{secrets.token_hex(6)}"
        try:
            operation = self.operations.begin(_OPERATION_TYPES[verb], machine.name, operation_id=operation_id)
        except PowerRefused:
            raise ComputeError(
                400, "resourceNotReady", f"The resource '{self._path(machine.name)}' is not ready"
            ) from None
        logger.info("gce %s %s → operation %s", verb, machine.name, operation.id)
        return web.json_response(self._operation(operation, verb=verb))

    async def _get_operation(self, request: web.Request) -> web.Response:
        name = request.match_info["operation"]
        self._check_place(request, permission="compute.zoneOperations.get", resource=f"operations/{name}")
        operation = self.operations.get(name)
        if operation is None:
            raise ComputeError(
                404,
                "notFound",
                f"The resource 'projects/{self.project}/zones/{self.zone}/operations/{name}' was not found",
            )
        verb = next(verb for verb, action in _OPERATION_TYPES.items() if action == operation.action)
        return web.json_response(self._operation(operation, verb=verb))

    # -- helpers --

    def _check_place(self, request: web.Request, *, permission: str, resource: str) -> None:
        """403 for another project, 400 for another zone; `resource` is "instances/<name>" or
        "operations/<name>"."""
        project, zone = request.match_info["project"], request.match_info["zone"]
        if project != self.project:
            raise ComputeError(
                403,
                "forbidden",
                f"Required '{permission}' permission for 'projects/{project}/zones/{zone}/{resource}'",
            )
        if zone != self.zone:
            raise ComputeError(400, "invalid", f"Invalid value for field 'zone': '{zone}'. Unknown zone.")

    def _machine(self, request: web.Request, *, permission: str) -> Machine:
        name = request.match_info["instance"]
        self._check_place(request, permission=permission, resource=f"instances/{name}")
        if name not in self.fleet:
            raise ComputeError(404, "notFound", f"The resource '{self._path(name)}' was not found")
        return self.fleet[name]

    def _path(self, instance: str) -> str:
        return f"projects/{self.project}/zones/{self.zone}/instances/{instance}"

    def _link(self, path: str) -> str:
        return f"{self.url}/compute/v1/{path}"

    def _instance(self, machine: Machine) -> dict[str, Any]:
        return {
            "kind": "compute#instance",
            "id": str(numeric_id(machine.name)),
            "name": machine.name,
            "zone": self._link(f"projects/{self.project}/zones/{self.zone}"),
            "machineType": self._link(
                f"projects/{self.project}/zones/{self.zone}/machineTypes/{MACHINE_TYPE}"
            ),
            "status": gce_status_of(machine),
            "labels": {"lhsoak-role": machine.role},
            "selfLink": self._link(self._path(machine.name)),
        }

    def _operation(self, operation: PowerOperation, *, verb: str) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "kind": "compute#operation",
            "id": str(numeric_id(operation.id)),
            "name": operation.id,
            "zone": self._link(f"projects/{self.project}/zones/{self.zone}"),
            "operationType": verb,
            "targetLink": self._link(self._path(operation.machine)),
            "targetId": str(numeric_id(operation.machine)),
            "status": "DONE" if operation.done else "RUNNING",
            "user": self.service_account.email,
            "progress": 100 if operation.done else 0,
            "insertTime": cloudapi.rfc3339(operation.started_at),
            "startTime": cloudapi.rfc3339(operation.started_at),
            "selfLink": self._link(f"projects/{self.project}/zones/{self.zone}/operations/{operation.id}"),
        }
        if operation.ended_at is not None:
            answer["endTime"] = cloudapi.rfc3339(operation.ended_at)
        return answer


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else float("nan")


def _oauth_error(error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=400)


async def start_gce_endpoint(fleet: MachineFleet, *, authority: pki.Pki) -> GceEndpoint:
    """Start a Compute Engine endpoint with one instance per machine of `fleet`."""
    endpoint = GceEndpoint(fleet, authority=authority)
    try:
        await endpoint.serve()
    except BaseException:
        await endpoint.close()
        raise
    return endpoint
