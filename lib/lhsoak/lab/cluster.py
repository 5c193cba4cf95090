"""One lab cluster, assembled: store + API endpoint + machines with SSH + controllers (+ a cloud).

Everything runs in one asyncio loop. What the harness gets is what a real cluster gives it: a
kubeconfig (HTTPS, CA, bearer token) and an inventory (node names, roles, SSH endpoints with their host
keys, the EC2, Compute Engine or Azure endpoint when asked for; for the last two, `cloud.env` holds
the credentials' environment: GOOGLE_APPLICATION_CREDENTIALS, or Azure's managed identity, and the
lab CA as REQUESTS_CA_BUNDLE). Rebooting a control-plane machine takes the API endpoint down
(connections refused, watches cut) until its kubelet is back; the controllers pause meanwhile and catch
up after, as the real ones do.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shlex
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lhsoak import inventory
from lhsoak.lab import arm, cloudapi, gce, kinds, kubeconfig, pki, sshd
from lhsoak.lab.apiserver import ApiServer, ApiServerConfig, lab_store
from lhsoak.lab.controllers import daemonset
from lhsoak.lab.controllers.assembly import LabControllers
from lhsoak.lab.controllers.longhorn_manager import MANAGER_IMAGE
from lhsoak.lab.controllers.seed import seed
from lhsoak.lab.machine import MachineFleet, Role
from lhsoak.lab.profiles import Profile
from lhsoak.lab.store import Store

log = logging.getLogger(__name__)

CONTEXT = kubeconfig.DEFAULT_NAME
NAMESPACE = "longhorn-system"
PORTS_FILE = "ports.json"
CLOUD_ENV_FILE = "cloud.env"


@dataclass(frozen=True)
class LabSpec:
    """The shape of a lab cluster."""

    state_dir: Path
    """Where the kubeconfig, inventory, keys and logs go."""
    profile: Profile
    """Durations and fault switches (see lhsoak.lab.profiles)."""
    control_planes: int = 1
    """Control-plane machines (1)."""
    workers: int = 3
    """Worker machines (3)."""
    crd_path: Path | None = None
    """The real Longhorn CRDs to serve and validate against (None: minimal CRDs)."""
    ec2: bool = False
    """Also serve an EC2 endpoint whose reboot/stop/start act on the machines (needs moto)."""
    gce: bool = False
    """Also serve a Compute Engine endpoint whose reset/stop/start act on the machines."""
    azure: bool = False
    """Also serve an Azure Resource Manager whose restart/powerOff/start act on the machines."""

    def __post_init__(self) -> None:
        clouds = [name for name in ("ec2", "gce", "azure") if getattr(self, name)]
        if len(clouds) > 1:
            raise ValueError(
                f"a lab serves one cloud endpoint, not {' and '.join(clouds)}: its inventory gives "
                "each node one power driver"
            )


def machine_roles(*, control_planes: int, workers: int) -> dict[str, Role]:
    roles: dict[str, Role] = {f"cp-{index}": "control-plane" for index in range(1, control_planes + 1)}
    roles.update({f"worker-{index}": "worker" for index in range(1, workers + 1)})
    return roles


def default_crd_path() -> Path | None:
    """The shared Longhorn CRDs beside the checkout (`../shared/longhorn`), when present."""
    override = os.environ.get("LHSOAK_LAB_CRDS")
    if override:
        return Path(override)
    candidate = Path(__file__).resolve().parents[4] / "shared" / "longhorn" / "crds-v1.12.1.yaml"
    return candidate if candidate.exists() else None


def manager_pod(node: str) -> dict[str, Any]:
    """A longhorn-manager daemon pod bound to `node`, so health checks find Longhorn running; the
    DaemonSet controller adopts it into the longhorn-manager DaemonSet it makes from it."""
    return {
        "metadata": {
            "name": f"longhorn-manager-{node}",
            "namespace": NAMESPACE,
            # As Longhorn's manifest labels the manager's pod template (longhorn.labels + app).
            "labels": {
                "app.kubernetes.io/name": "longhorn",
                "app.kubernetes.io/instance": "longhorn",
                "app.kubernetes.io/version": MANAGER_IMAGE.rsplit(":", 1)[1],
                "app": "longhorn-manager",
            },
        },
        "spec": {
            "nodeName": node,
            # As the DaemonSet controller stamps its pods: never evicted from a NotReady node.
            "tolerations": daemonset.daemon_tolerations(),
            "affinity": daemonset.node_affinity(node),
            "restartPolicy": "Always",
            "containers": [
                {
                    "name": "longhorn-manager",
                    "image": MANAGER_IMAGE,
                    "command": ["longhorn-manager", "daemon"],
                }
            ],
        },
    }


class LabCluster:
    """A running lab. `await start()`, then `await stop()`; both from the lab's event loop."""

    def __init__(self, spec: LabSpec, *, clock: Callable[[], float] = time.time) -> None:
        self.spec = spec
        self.clock = clock
        self.store: Store | None = None
        self.api: ApiServer | None = None
        self.fleet: MachineFleet | None = None
        self.controllers: LabControllers | None = None
        self.ssh: dict[str, sshd.SshServer] = {}
        self.ec2: Any = None
        self.gce: gce.GceEndpoint | None = None
        self.azure: arm.ArmEndpoint | None = None
        self._api_transition: asyncio.Task[None] | None = None

    @property
    def kubeconfig_path(self) -> Path:
        return self.spec.state_dir / "kubeconfig"

    @property
    def inventory_path(self) -> Path:
        return self.spec.state_dir / "inventory.yaml"

    async def start(self) -> None:
        spec = self.spec
        spec.state_dir.mkdir(parents=True, exist_ok=True)
        roles = machine_roles(control_planes=spec.control_planes, workers=spec.workers)
        self.store = lab_store(crd_path=spec.crd_path, clock=self.clock)
        self.fleet = MachineFleet.build(
            roles, timings=spec.profile.machine_timings(), seed=spec.profile.seed, clock=self.clock
        )
        seed(self.store, self.fleet, spec.profile, clock=self.clock)
        ports = self._saved_ports()
        authority = pki.generate()
        token = pki.new_token()
        self.api = ApiServer(
            self.store,
            pki_=authority,
            token=token,
            port=ports.get("api", 0),
            config=ApiServerConfig(bookmark_interval_s=5.0),
            clock=self.clock,
        )
        await self.api.start()
        self.controllers = LabControllers(
            self.store, self.fleet, spec.profile, clock=self.clock, on_api_change=self._on_api_change
        )
        self.controllers.start()
        for name in roles:
            if roles[name] == "worker":
                self.store.create(kinds.POD, manager_pod(name))
        for machine in self.fleet:
            self.ssh[machine.name] = await sshd.start_ssh_server(
                machine, state_dir=spec.state_dir, port=ports.get(machine.name, 0)
            )
        if spec.ec2:
            from lhsoak.lab import ec2  # moto is a dev dependency: only loaded when asked for

            self.ec2 = await ec2.start_ec2_endpoint(self.fleet)
        self.cloud_env_path.unlink(missing_ok=True)
        if spec.gce:
            self.gce = await gce.start_gce_endpoint(self.fleet, authority=authority)
            self._write_cloud_env(self.gce.write_client_files(spec.state_dir.resolve()))
        if spec.azure:
            self.azure = await arm.start_arm_endpoint(self.fleet, authority=authority)
            self._write_cloud_env(self.azure.write_client_files(spec.state_dir.resolve()))
        self._save_ports()
        kubeconfig.write(self.kubeconfig_path, url=self.api.url, ca_pem=authority.ca_pem, token=token)
        inventory.dump(self._inventory(), self.inventory_path)
        log.info("lab up: API %s, %d machines, profile %s", self.api.url, len(self.fleet), spec.profile.name)

    async def settled(self, *, deadline_s: float = 60.0) -> None:
        """Until every longhorn-manager pod is Running and every node Ready, as a fresh install is
        once its daemons have started; TimeoutError naming what is still missing."""
        store = self.store
        assert store is not None
        changed = asyncio.Event()
        unsubscribe = store.listen(lambda _event: changed.set(), only=(kinds.POD, kinds.NODE))
        try:
            async with asyncio.timeout(deadline_s):
                while self._not_settled():
                    changed.clear()  # no await since the check: no change can slip in between
                    await changed.wait()
        except TimeoutError:
            raise TimeoutError(
                f"the lab did not settle within {deadline_s:.0f}s: {', '.join(self._not_settled())}"
            ) from None
        finally:
            unsubscribe()

    def _not_settled(self) -> list[str]:
        assert self.store is not None
        pods, _ = self.store.list(kinds.POD, namespace=NAMESPACE)
        missing = [
            f"pod {pod['metadata']['name']} {(pod.get('status') or {}).get('phase', 'unknown')}"
            for pod in pods
            if pod["metadata"]["name"].startswith("longhorn-manager-")
            and (pod.get("status") or {}).get("phase") != "Running"
        ]
        nodes, _ = self.store.list(kinds.NODE)
        for node in nodes:
            ready = [
                c for c in (node.get("status") or {}).get("conditions") or [] if c.get("type") == "Ready"
            ]
            if not ready or ready[0].get("status") != "True":
                missing.append(f"node {node['metadata']['name']} not Ready")
        return missing

    def _on_api_change(self, up: bool) -> None:
        api = self.api
        if api is None:
            return
        previous = self._api_transition

        async def switch() -> None:
            if previous is not None:
                await previous
            await (api.come_up() if up else api.go_down())

        self._api_transition = asyncio.get_running_loop().create_task(switch())

    def _inventory(self) -> inventory.Inventory:
        assert self.fleet is not None
        nodes = []
        for machine in self.fleet:
            server = self.ssh[machine.name]
            access = inventory.SshAccess(
                host=server.host,
                port=server.port,
                user=server.user,
                key_file=server.user_key.path.resolve(),
                host_key=server.host_key_public,
                reboot_command="systemctl reboot",
                sudo=True,
            )
            aws = gcp = azure = None
            if self.ec2 is not None:
                aws = inventory.AwsTarget(
                    region=self.ec2.region, name_tag=machine.name, endpoint_url=self.ec2.url
                )
            if self.gce is not None:
                gcp = inventory.GcpTarget(
                    project=self.gce.project, zone=self.gce.zone, instance=machine.name, endpoint=self.gce.url
                )
            if self.azure is not None:
                azure = inventory.AzureTarget(
                    subscription_id=self.azure.subscription_id,
                    resource_group=self.azure.resource_group,
                    vm_name=machine.name,
                    endpoint=self.azure.url,
                )
            nodes.append(
                inventory.Node(
                    name=machine.name, role=machine.role, ssh=access, aws=aws, gcp=gcp, azure=azure
                )
            )
        return inventory.Inventory(
            cluster=inventory.ClusterTarget(context=CONTEXT, kubeconfig=self.kubeconfig_path.resolve()),
            nodes=tuple(nodes),
        )

    @property
    def cloud_env_path(self) -> Path:
        return self.spec.state_dir / CLOUD_ENV_FILE

    def _write_cloud_env(self, variables: dict[str, str]) -> None:
        # Sourceable by a shell (`set -a; . DIR/cloud.env`) and readable by `read_env_file`.
        lines = [f"{name}={shlex.quote(value)}" for name, value in variables.items()]
        cloudapi.write_secret(self.cloud_env_path, "\n".join(lines) + "\n")

    def _saved_ports(self) -> dict[str, int]:
        # The same ports across `lab up` restarts of one state dir keep known_hosts and kubeconfigs valid.
        path = self.spec.state_dir / PORTS_FILE
        return {k: int(v) for k, v in json.loads(path.read_text()).items()} if path.exists() else {}

    def _save_ports(self) -> None:
        assert self.api is not None
        ports = {"api": self.api.port, **{name: server.port for name, server in self.ssh.items()}}
        (self.spec.state_dir / PORTS_FILE).write_text(json.dumps(ports, indent=2) + "\n")

    async def stop(self) -> None:
        if self.controllers is not None:
            self.controllers.stop()
        for server in self.ssh.values():
            await server.close()
        if self.ec2 is not None:
            await self.ec2.close()
        if self.gce is not None:
            await self.gce.close()
        if self.azure is not None:
            await self.azure.close()
        if self._api_transition is not None:
            await asyncio.gather(self._api_transition, return_exceptions=True)
        if self.api is not None:
            await self.api.stop()
        log.info("lab stopped")


def read_env_file(path: Path) -> dict[str, str]:
    """The variables of a `cloud.env` file, as the lab wrote them."""
    variables = {}
    for line in path.read_text().splitlines():
        name, separator, quoted = line.partition("=")
        if separator:
            words = shlex.split(quoted)
            variables[name] = words[0] if words else ""
    return variables
