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
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lhsoak import inventory
from lhsoak.lab import arm, cloudapi, gce, kinds, kubeconfig, pki, sshd
from lhsoak.lab.apiserver import ApiServer, ApiServerConfig, lab_store
from lhsoak.lab.controllers import daemonset, storage
from lhsoak.lab.controllers.assembly import LabControllers
from lhsoak.lab.controllers.longhorn_manager import MANAGER_IMAGE
from lhsoak.lab.controllers.seed import seed
from lhsoak.lab.machine import MachineFleet, Role
from lhsoak.lab.profiles import Profile
from lhsoak.lab.store import AlreadyExists, Store

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


LONGHORN_VERSION = MANAGER_IMAGE.rsplit(":", 1)[1]
CSI_DRIVER = storage.DRIVER
# The images Longhorn's v1.12.1 manifest gives longhorn-driver-deployer for the CSI sidecars.
CSI_SIDECAR_IMAGES = {
    "csi-attacher": "longhornio/csi-attacher:v4.12.0",
    "csi-provisioner": "longhornio/csi-provisioner:v5.3.0",
    "csi-resizer": "longhornio/csi-resizer:v2.2.1",
    "csi-snapshotter": "longhornio/csi-snapshotter:v8.6.0",
}
CSI_SIDECAR_REPLICAS = 3
"""longhorn-manager's DefaultCSI*ReplicaCount: each sidecar Deployment runs three pods."""
_CHART_LABELS = {
    "app.kubernetes.io/name": "longhorn",
    "app.kubernetes.io/instance": "longhorn",
    "app.kubernetes.io/version": LONGHORN_VERSION,
}
# What the API server defaults in every pod template a client sends.
_POD_SPEC_DEFAULTS: dict[str, Any] = {
    "restartPolicy": "Always",
    "terminationGracePeriodSeconds": 30,
    "dnsPolicy": "ClusterFirst",
    "schedulerName": "default-scheduler",
    "securityContext": {},
}


def manager_pod(node: str) -> dict[str, Any]:
    """A longhorn-manager daemon pod bound to `node`, so health checks find Longhorn running; the
    DaemonSet controller adopts it into the longhorn-manager DaemonSet it makes from it."""
    return _daemon_pod(
        "longhorn-manager",
        node,
        # As Longhorn's manifest labels the manager's pod template (longhorn.labels + app).
        labels={**_CHART_LABELS, "app": "longhorn-manager"},
        container={
            "name": "longhorn-manager",
            "image": MANAGER_IMAGE,
            "command": ["longhorn-manager", "daemon"],
        },
    )


def csi_plugin_pod(node: str) -> dict[str, Any]:
    """A longhorn-csi-plugin daemon pod bound to `node`, as longhorn-driver-deployer's DaemonSet
    runs one per node; adopted into the longhorn-csi-plugin DaemonSet by its controller."""
    return _daemon_pod(
        "longhorn-csi-plugin",
        node,
        labels={"app": "longhorn-csi-plugin"},
        # Upstream's pod also runs node-driver-registrar and longhorn-liveness-probe; the lab's
        # kubelet runs one container per pod, so only the plugin is here (READY reads 1/1).
        container={
            "name": "longhorn-csi-plugin",
            "image": MANAGER_IMAGE,
            "args": [
                "longhorn-manager",
                "-d",
                "csi",
                "--nodeid=$(NODE_ID)",
                "--endpoint=$(CSI_ENDPOINT)",
                f"--drivername={CSI_DRIVER}",
                "--manager-url=http://longhorn-backend:9500/v1",
            ],
            "securityContext": {"privileged": True, "capabilities": {"add": ["SYS_ADMIN"]}},
        },
        service_account="longhorn-service-account",
    )


def _daemon_pod(
    daemon: str,
    node: str,
    *,
    labels: Mapping[str, str],
    container: dict[str, Any],
    service_account: str | None = None,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "nodeName": node,
        # As the DaemonSet controller stamps its pods: never evicted from a NotReady node.
        "tolerations": daemonset.daemon_tolerations(),
        "affinity": daemonset.node_affinity(node),
        "restartPolicy": "Always",
        "containers": [container],
    }
    if service_account:
        spec["serviceAccountName"] = service_account
    return {
        "metadata": {"name": f"{daemon}-{node}", "namespace": NAMESPACE, "labels": dict(labels)},
        "spec": spec,
    }


def csi_sidecar_deployment(name: str) -> dict[str, Any]:
    """One CSI sidecar Deployment (csi-attacher, -provisioner, -resizer, -snapshotter) as
    longhorn-driver-deployer makes it (longhorn-manager csi/deployment_util.go getCommonDeployment):
    three replicas preferring distinct nodes, at most one unavailable during a rollout."""
    anti_affinity = {
        "preferredDuringSchedulingIgnoredDuringExecution": [
            {
                "weight": 1,
                "podAffinityTerm": {
                    "labelSelector": {
                        "matchExpressions": [{"key": "app", "operator": "In", "values": [name]}]
                    },
                    "topologyKey": "kubernetes.io/hostname",
                },
            }
        ]
    }
    container = {
        "name": name,
        "image": CSI_SIDECAR_IMAGES[name],
        "args": [
            "--v=2",
            "--csi-address=$(ADDRESS)",
            "--timeout=1m50s",
            "--leader-election",
            "--leader-election-namespace=$(POD_NAMESPACE)",
            "--http-endpoint=:8000",
        ],
        "env": [
            {"name": "ADDRESS", "value": "/csi/csi.sock"},
            {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        ],
        "ports": [{"name": name, "containerPort": 8000, "protocol": "TCP"}],
        "volumeMounts": [{"name": "socket-dir", "mountPath": "/csi/"}],
    }
    socket_dir = {
        "name": "socket-dir",
        "hostPath": {"path": f"/var/lib/kubelet/plugins/{CSI_DRIVER}", "type": "DirectoryOrCreate"},
    }
    return _deployment(
        name,
        replicas=CSI_SIDECAR_REPLICAS,
        labels={"longhorn.io/managed-by": "longhorn-manager", "app": name},
        annotations={
            f"{CSI_DRIVER}/pod-anti-affinity-preset": "soft",
            f"{CSI_DRIVER}/version": LONGHORN_VERSION,
        },
        template_labels={"app": name},
        pod_spec={
            "serviceAccountName": "longhorn-service-account",
            "priorityClassName": "longhorn-critical",
            "affinity": {"podAntiAffinity": anti_affinity},
            "containers": [container],
            "volumes": [socket_dir],
        },
        max_unavailable=1,
    )


def driver_deployer_deployment() -> dict[str, Any]:
    """longhorn-driver-deployer as Longhorn's manifest has it (its init container, which waits for
    the manager's API, left out: the lab's kubelet runs one container per pod)."""
    return _deployment(
        "longhorn-driver-deployer",
        replicas=1,
        labels=_CHART_LABELS,
        template_labels={**_CHART_LABELS, "app": "longhorn-driver-deployer"},
        pod_spec={
            "serviceAccountName": "longhorn-service-account",
            "priorityClassName": "longhorn-critical",
            "securityContext": {"runAsUser": 0},
            "containers": [
                {
                    "name": "longhorn-driver-deployer",
                    "image": MANAGER_IMAGE,
                    "command": [
                        "longhorn-manager",
                        "-d",
                        "deploy-driver",
                        "--manager-image",
                        MANAGER_IMAGE,
                        "--manager-url",
                        "http://longhorn-backend:9500/v1",
                    ],
                }
            ],
        },
    )


def ui_deployment() -> dict[str, Any]:
    """longhorn-ui as Longhorn's manifest has it: two replicas."""
    return _deployment(
        "longhorn-ui",
        replicas=2,
        labels={**_CHART_LABELS, "app": "longhorn-ui"},
        template_labels={**_CHART_LABELS, "app": "longhorn-ui"},
        pod_spec={
            "serviceAccountName": "longhorn-ui-service-account",
            "priorityClassName": "longhorn-critical",
            "containers": [
                {
                    "name": "longhorn-ui",
                    "image": f"longhornio/longhorn-ui:{LONGHORN_VERSION}",
                    "ports": [{"containerPort": 8000, "name": "http", "protocol": "TCP"}],
                }
            ],
        },
    )


def _deployment(
    name: str,
    *,
    replicas: int,
    labels: Mapping[str, str],
    template_labels: Mapping[str, str],
    pod_spec: Mapping[str, Any],
    annotations: Mapping[str, str] | None = None,
    max_unavailable: int | str = "25%",
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name, "namespace": NAMESPACE, "labels": dict(labels)}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {
        "apiVersion": kinds.DEPLOYMENT.api_version,
        "kind": kinds.DEPLOYMENT.kind,
        "metadata": metadata,
        # With what the API server defaults: strategy, revisionHistoryLimit, progressDeadlineSeconds.
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": template_labels["app"]}},
            "template": {
                "metadata": {"labels": dict(template_labels)},
                "spec": {**_POD_SPEC_DEFAULTS, **pod_spec},
            },
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxUnavailable": max_unavailable, "maxSurge": "25%"},
            },
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        },
    }


def longhorn_deployments() -> list[dict[str, Any]]:
    """The Deployments of a Longhorn install once its driver deployer ran."""
    return [
        driver_deployer_deployment(),
        ui_deployment(),
        *(csi_sidecar_deployment(name) for name in CSI_SIDECAR_IMAGES),
    ]


def install_longhorn(store: Store, workers: Iterable[str]) -> None:
    """What installing Longhorn leaves on a cluster: on each of `workers` a longhorn-manager and a
    longhorn-csi-plugin pod (their DaemonSet controllers adopt them), and the Deployments of
    `longhorn_deployments` (the Deployment controller makes their pods). Objects already there are
    left alone."""
    objects = [(kinds.DEPLOYMENT, deployment) for deployment in longhorn_deployments()]
    for node in workers:
        objects += [(kinds.POD, manager_pod(node)), (kinds.POD, csi_plugin_pod(node))]
    for kind, obj in objects:
        try:
            store.create(kind, obj)
        except AlreadyExists:
            continue


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
        install_longhorn(self.store, [name for name, role in roles.items() if role == "worker"])
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
        """Until every longhorn-manager and longhorn-csi-plugin pod is Running, every Deployment of
        the install has all its replicas available and every node is Ready, as a fresh install is
        once its daemons have started; TimeoutError naming what is still missing."""
        store = self.store
        assert store is not None
        changed = asyncio.Event()
        unsubscribe = store.listen(
            lambda _event: changed.set(), only=(kinds.POD, kinds.NODE, kinds.DEPLOYMENT)
        )
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
            if pod["metadata"]["name"].startswith(("longhorn-manager-", "longhorn-csi-plugin-"))
            and (pod.get("status") or {}).get("phase") != "Running"
        ]
        deployments, _ = self.store.list(kinds.DEPLOYMENT, namespace=NAMESPACE)
        for deployment in deployments:
            wanted = int(deployment["spec"].get("replicas", 1))
            available = int((deployment.get("status") or {}).get("availableReplicas") or 0)
            if available < wanted:
                missing.append(f"deployment {deployment['metadata']['name']} {available}/{wanted} available")
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
