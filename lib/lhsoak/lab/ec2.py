"""An EC2-compatible endpoint whose RebootInstances/StopInstances/StartInstances drive the machines.

moto's server (in a thread of this process) answers the EC2 Query API; a small aiohttp reverse proxy
in the lab's loop forwards every request to it and, when moto accepted one of the three power
actions, applies it to the machines the instance ids name:

    RebootInstances              → machine.reboot()
    StopInstances                → machine.power_off(graceful=True); with Force=true a hard power-off
    StartInstances               → machine.power_on()

Everything else (DescribeInstances, tags, waiters, ...) is plain moto. One moto server runs per
process (a daemon thread, started by the first endpoint, never stopped: werkzeug takes half a second
to stop); each endpoint keeps its own moto account (the proxy sets moto's `x-moto-account-id`
header), so endpoints in one process do not see each other's instances.

Instance states follow the machines, as on AWS: "running" throughout a reboot, "stopping" while a
stopped machine shuts down, "stopped" while off, "pending" while booting, "running" once booted.
The state a Stop/Start response reports is moto's, which matches AWS ("stopping"/"pending").
Requests that moto refuses (unknown instance id, DryRun) touch no machine.

TerminateInstances is left to moto: the instance is terminated there, the machine is not touched.
Credentials are fake; any key is accepted. moto is imported lazily: it is a test/lab dependency.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import socket
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from aiohttp import ClientSession, web

from lhsoak.lab.machine import Machine, MachineEvent, MachineFleet

if TYPE_CHECKING:
    from moto.moto_server.threaded_moto_server import ThreadedMotoServer

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
REGION = "us-east-1"
FAKE_ACCESS_KEY_ID = "AKIALABFAKEKEY000000"
FAKE_SECRET_ACCESS_KEY = "lab-fake-secret-not-a-credential"
IMAGE_ID = "ami-12c6146b"
INSTANCE_TYPE = "t3.medium"
MOTO_ACCOUNT_HEADER = "x-moto-account-id"
# Hop-by-hop and length headers are the proxy's own business; Accept-Encoding is dropped so moto
# answers uncompressed and the body can be passed through unchanged.
_UNFORWARDED_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "accept-encoding", "keep-alive"}
)
_RETURNED_HEADERS = ("Content-Type", "x-amzn-RequestId")
_accounts = itertools.count(100_000_000_001)

PowerAction = Callable[[Machine, Mapping[str, list[str]]], bool]


def _reboot(machine: Machine, _params: Mapping[str, list[str]]) -> bool:
    return machine.reboot()


def _stop(machine: Machine, params: Mapping[str, list[str]]) -> bool:
    force = params.get("Force", ["false"])[0].lower() == "true"
    return machine.power_off(graceful=not force)


def _start(machine: Machine, _params: Mapping[str, list[str]]) -> bool:
    return machine.power_on()


POWER_ACTIONS: dict[str, PowerAction] = {
    "RebootInstances": _reboot,
    "StopInstances": _stop,
    "StartInstances": _start,
}


def ec2_state_of(machine: Machine) -> tuple[str, int]:
    """The EC2 instance state name and code that match the machine right now."""
    if machine.rebooting or machine.state == "running":
        return "running", 16
    if machine.state == "shutting-down":
        return "stopping", 64
    if machine.state == "booting":
        return "pending", 0
    return "stopped", 80


def query_params(body: bytes, query: Mapping[str, str]) -> dict[str, list[str]]:
    """The EC2 Query API parameters of a request: the form body merged over the URL query."""
    params: dict[str, list[str]] = {key: [value] for key, value in query.items()}
    params.update(parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True))
    return params


def instance_ids_of(params: Mapping[str, list[str]]) -> list[str]:
    """The `InstanceId.N` parameters, in N order."""
    numbered = [
        (int(key.split(".", 1)[1]), values[0])
        for key, values in params.items()
        if key.startswith("InstanceId.") and key.split(".", 1)[1].isdigit()
    ]
    return [instance_id for _, instance_id in sorted(numbered)]


@dataclass(frozen=True)
class Ec2Credentials:
    """What a boto3 client needs to talk to the lab endpoint."""

    endpoint_url: str
    """The proxy's URL, http://127.0.0.1:<port>."""
    region_name: str = REGION
    """The one region the lab serves (us-east-1)."""
    aws_access_key_id: str = FAKE_ACCESS_KEY_ID
    """A fake access key; any is accepted."""
    aws_secret_access_key: str = FAKE_SECRET_ACCESS_KEY
    """A fake secret; signatures are not checked."""


class Ec2Endpoint:
    """The running endpoint: one instance per machine, tagged `Name=<machine name>`."""

    def __init__(self, fleet: MachineFleet, *, moto_url: str, account_id: str) -> None:
        self.fleet = fleet
        self.account_id = account_id
        self.instance_ids: dict[str, str] = {}
        """Machine name → instance id."""
        self._moto_url = moto_url
        self._session: ClientSession | None = None
        self._runner: web.AppRunner | None = None
        self._port = 0
        self._unsubscribe: Callable[[], None] = lambda: None

    @property
    def url(self) -> str:
        """The endpoint URL to give boto3 as `endpoint_url`."""
        return f"http://{LOOPBACK}:{self._port}"

    @property
    def region(self) -> str:
        """The region the instances live in."""
        return REGION

    @property
    def credentials(self) -> Ec2Credentials:
        """Keyword arguments for `boto3.client("ec2", **dataclasses.asdict(credentials))`."""
        return Ec2Credentials(endpoint_url=self.url)

    def machine_of(self, instance_id: str) -> Machine | None:
        """The machine behind an instance id, or None for instances the lab did not create."""
        for name, known_id in self.instance_ids.items():
            if known_id == instance_id:
                return self.fleet[name]
        return None

    async def serve(self) -> None:
        """Start the proxy on an ephemeral loopback port."""
        self._session = ClientSession(auto_decompress=False)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._proxy)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.bind((LOOPBACK, 0))
            self._port = listener.getsockname()[1]
            await web.SockSite(self._runner, listener).start()
        except BaseException:
            listener.close()
            raise
        logger.info("ec2 endpoint at %s (moto at %s)", self.url, self._moto_url)

    async def create_instances(self) -> None:
        """Run one moto instance per machine and keep their states in step with the machines."""
        self.instance_ids.update(await asyncio.to_thread(self._run_instances, self.fleet.names))
        for machine in self.fleet:
            self._sync_state(machine)
        self._unsubscribe = self.fleet.subscribe(self._on_machine_event)

    async def close(self) -> None:
        """Stop following the machines and stop the proxy (moto keeps running for the process)."""
        self._unsubscribe()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _proxy(self, request: web.Request) -> web.Response:
        body = await request.read()
        status, payload, headers = await self._forward(request, body)
        params = query_params(body, request.query)
        action = params.get("Action", [""])[0]
        if status == 200 and action in POWER_ACTIONS:
            self._apply(action, instance_ids_of(params), params)
        return web.Response(status=status, body=payload, headers=headers)

    async def _forward(self, request: web.Request, body: bytes) -> tuple[int, bytes, dict[str, str]]:
        assert self._session is not None, "serve() first"
        headers = {
            key: value for key, value in request.headers.items() if key.lower() not in _UNFORWARDED_HEADERS
        }
        headers[MOTO_ACCOUNT_HEADER] = self.account_id
        async with self._session.request(
            request.method, self._moto_url + request.path_qs, data=body, headers=headers
        ) as response:
            payload = await response.read()
            returned = {key: response.headers[key] for key in _RETURNED_HEADERS if key in response.headers}
            return response.status, payload, returned

    def _apply(self, action: str, instance_ids: list[str], params: Mapping[str, list[str]]) -> None:
        for instance_id in instance_ids:
            machine = self.machine_of(instance_id)
            if machine is None:
                continue
            accepted = POWER_ACTIONS[action](machine, params)
            logger.info("ec2 %s %s (%s) → %s", action, instance_id, machine.name, accepted)
            self._sync_state(machine)

    def _on_machine_event(self, event: MachineEvent) -> None:
        self._sync_state(self.fleet[event.machine])

    def _sync_state(self, machine: Machine) -> None:
        from moto.ec2.models import ec2_backends

        instance_id = self.instance_ids.get(machine.name)
        if instance_id is None:
            return
        state = ec2_backends[self.account_id][REGION].get_instance(instance_id).instance_state
        if state.name in ("terminated", "shutting-down"):
            return
        state.name, state.code = ec2_state_of(machine)

    def _run_instances(self, names: list[str]) -> dict[str, str]:
        import boto3

        client: Any = boto3.client("ec2", **dataclasses.asdict(self.credentials))
        try:
            return {name: self._run_instance(client, name) for name in names}
        finally:
            client.close()

    @staticmethod
    def _run_instance(client: Any, name: str) -> str:
        reservation = client.run_instances(
            ImageId=IMAGE_ID,
            InstanceType=INSTANCE_TYPE,
            MinCount=1,
            MaxCount=1,
            TagSpecifications=[{"ResourceType": "instance", "Tags": [{"Key": "Name", "Value": name}]}],
        )
        return str(reservation["Instances"][0]["InstanceId"])


_moto_lock = threading.Lock()
_moto_server: ThreadedMotoServer | None = None


def _shared_moto() -> ThreadedMotoServer:
    """This process's moto server, started on first use; endpoints share it, one account each."""
    global _moto_server
    with _moto_lock:
        if _moto_server is None:
            from moto.server import ThreadedMotoServer

            # werkzeug logs every request at INFO to its own stderr handler unless its logger has a level.
            werkzeug_logger = logging.getLogger("werkzeug")
            if werkzeug_logger.level == logging.NOTSET:
                werkzeug_logger.setLevel(logging.WARNING)
            server = ThreadedMotoServer(ip_address=LOOPBACK, port=0, verbose=False)
            server.start()
            _moto_server = server
        return _moto_server


async def start_ec2_endpoint(fleet: MachineFleet) -> Ec2Endpoint:
    """Start moto and the proxy, and create one running instance per machine of `fleet`."""
    moto_host, moto_port = (await asyncio.to_thread(_shared_moto)).get_host_and_port()
    endpoint = Ec2Endpoint(fleet, moto_url=f"http://{moto_host}:{moto_port}", account_id=str(next(_accounts)))
    try:
        await endpoint.serve()
        await endpoint.create_instances()
    except BaseException:
        await endpoint.close()
        raise
    return endpoint
