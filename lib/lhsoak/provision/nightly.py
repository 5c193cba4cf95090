"""The nightly flow: a throwaway cluster, Longhorn really ready, the soak, the report, no cluster left.

    preflight → build the node image → create the cluster → install Longhorn (Helm) → MinIO and its
    secrets → wait: nodes, manager, driver, CSI, instance managers, MinIO → BackupTarget `default` →
    wait until available → a test volume attaches → write the inventory → soak → report → delete

The cluster is deleted however the run ends (passed, failed, a wait ran out, SIGINT or SIGTERM) unless
`keep_cluster`; a cluster of the same name that existed before is never touched (preflight refuses).
When provisioning fails, what the cluster looked like is saved in `<work dir>/diagnostics/`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import shutil
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from lhsoak import cluster, errors, inventory
from lhsoak.provision import backupstore, draft, helm, kubectl, process, providers, readiness
from lhsoak.provision.process import Command, CommandFailed, ProvisionError, Runner
from lhsoak.provision.readiness import Probe
from lhsoak.provision.waits import Pace, until

DEFAULT_CLUSTER = "lhsoak-nightly"

NIGHTLY_SOAK_ARGS: tuple[str, ...] = (
    # One worker container restarted per step, three steps, each timed to land while a backup runs
    # (where longhorn#9168 and #9185 bite); real 5-field crons every 2 minutes (longhorn#7854 made
    # */2 the e2e default); bounds sized for a CI runner where 4 nodes share 4 cores.
    "--plan=worker",
    "--iterations=3",
    "--phase=during-backup",
    "--cron=*/2 * * * *",
    "--lag-bound=240",
    "--settle=120",
    "--ticks-after=2",
    "--down-deadline=180",
    "--ready-deadline=600",
)
"""The nightly plan; any option given after `--` replaces the one of the same name."""


@dataclass(frozen=True)
class Deadlines:
    """How long each readiness wait may take, in seconds (first image pulls dominate)."""

    nodes_s: float = 600.0
    """Every node Ready; default 600."""
    manager_s: float = 900.0
    """longhorn-manager on every node; default 900."""
    driver_s: float = 600.0
    """longhorn-driver-deployer available; default 600."""
    csi_s: float = 900.0
    """CSI attacher, provisioner, resizer, snapshotter and plugin; default 900."""
    instance_managers_s: float = 900.0
    """A running instance manager per Longhorn node; default 900."""
    minio_s: float = 600.0
    """The MinIO Deployment available; default 600."""
    backup_target_s: float = 300.0
    """BackupTarget `default` available; default 300."""
    attach_s: float = 600.0
    """The test volume bound, attached, healthy and mounted; default 600."""
    soak_s: float = 6 * 3600.0
    """The whole soak run; default 6 hours."""
    report_s: float = 600.0
    """Building the report; default 600."""


@dataclass(frozen=True)
class NightlyConfig:
    """One nightly run."""

    provider: providers.ProviderName
    """kind or k3d."""
    repo: Path
    """The lhsoak checkout (infra/, suites/)."""
    run_id: str
    """The soak's run id: the report is in `<reports_dir>/<run_id>/`."""
    cluster: str = DEFAULT_CLUSTER
    """The cluster name; default lhsoak-nightly."""
    reports_dir: Path = Path("reports")
    """Where runs are written; default reports."""
    work_dir: Path | None = None
    """Kubeconfig, inventory, secrets, diagnostics (default <reports_dir>/provision/<cluster>)."""
    soak: bool = True
    """Run the soak and the report; False provisions only (`lhsoak provision up`)."""
    keep_cluster: bool = False
    """Leave the cluster running however the run ends, for inspection; default off. Without a soak
    (`up`) a ready cluster is left running anyway; a failed one is deleted unless this is set."""
    build_image: bool = True
    """Build the node image first; off when it was built already."""
    check_host: bool = True
    """Refuse to start when the iscsi_tcp kernel module is not loaded; default on."""
    history: Path | None = None
    """An earlier HTML report whose history/ the new report carries (trend charts)."""
    soak_args: tuple[str, ...] = ()
    """Soak options given by the user; they replace NIGHTLY_SOAK_ARGS of the same name."""
    deadlines: Deadlines = field(default_factory=Deadlines)
    """Readiness wait deadlines."""
    pace: Pace = field(default_factory=Pace)
    """How often waits look and report."""

    @property
    def work(self) -> Path:
        return self.work_dir or self.reports_dir / "provision" / self.cluster

    @property
    def run_dir(self) -> Path:
        return self.reports_dir / self.run_id


def default_run_id(provider: str, *, now: dt.datetime | None = None) -> str:
    """nightly-<provider>-<UTC time>: a DNS label, as the soak wants run ids."""
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%d-%H%M%S")
    return f"nightly-{provider}-{stamp}"


def soak_arguments(user: Sequence[str]) -> list[str]:
    """The nightly plan with the user's options in front of it, minus the defaults they replace."""
    given = {arg.split("=", 1)[0] for arg in user if arg.startswith("--")}
    return [*(arg for arg in NIGHTLY_SOAK_ARGS if arg.split("=", 1)[0] not in given), *user]


class Nightly:
    """Runs one nightly (or `provision up`) from start to teardown."""

    def __init__(self, config: NightlyConfig, *, say: Callable[[str], None], runner: Runner) -> None:
        self.config = config
        self._say = say
        self._runner = runner
        self.kubeconfig = config.work.absolute() / "kubeconfig"
        self.inventory_path = config.work.absolute() / "inventory.yaml"
        self.provider = providers.make(
            config.provider,
            cluster=config.cluster,
            infra=config.repo / "infra",
            kubeconfig=self.kubeconfig,
        )
        self._owns_cluster = False
        self._leave_running = False

    # -- the flow ---------------------------------------------------------------------------------

    def run(self) -> int:
        """0 when the soak passed (or, without a soak, the cluster is ready); 1 when it failed."""
        with process.interruptible():
            try:
                self._preflight()
                self._provision()
                if not self.config.soak:
                    self._leave_running = True
                    self._say(f"cluster ready: KUBECONFIG={self.kubeconfig} INVENTORY={self.inventory_path}")
                    return errors.EXIT_PASSED
                soak_status = self._soak()
                report_status = self._report()
                return soak_status or report_status
            finally:
                if self._owns_cluster and not (self.config.keep_cluster or self._leave_running):
                    with process.shielded(self._say):
                        self._teardown()

    def _provision(self) -> None:
        self.config.work.mkdir(parents=True, exist_ok=True)
        if self.config.build_image:
            self._step("build the node image", self.provider.image_build())
        self._owns_cluster = True
        for command in self.provider.create():
            self._step(command.what, command)
        try:
            api = cluster.Cluster.connect(
                kubeconfig=self.kubeconfig, context=None, allowed=(self.provider.context,)
            )
        except errors.UsageError as error:
            raise ProvisionError(f"cannot use the new cluster's kubeconfig: {error}") from None
        try:
            self._install(api)
            self._write_inventory(api)
        except (ProvisionError, cluster.ClusterError):
            self._save_diagnostics()
            raise
        finally:
            api.close()

    def _install(self, api: cluster.Cluster) -> None:
        deadlines = self.config.deadlines
        self._wait(
            "every node Ready",
            readiness.nodes_probe(api, expected=len(self.provider.node_names())),
            deadlines.nodes_s,
        )
        values = self.config.repo / "infra" / "helm" / "longhorn-values.yaml"
        self._step(
            "install Longhorn",
            helm.install_longhorn(kubeconfig=self.kubeconfig, context=self.provider.context, values=values),
        )
        self._apply_backupstore()
        self._wait(
            "longhorn-manager on every node",
            readiness.daemonset_probe(api, readiness.MANAGER_DAEMONSET),
            deadlines.manager_s,
        )
        self._wait(
            "the Longhorn driver deployer",
            readiness.deployment_probe(api, readiness.DRIVER_DEPLOYER),
            deadlines.driver_s,
        )
        self._wait("the CSI components", readiness.csi_probe(api), deadlines.csi_s)
        self._wait(
            "an instance manager on every Longhorn node",
            readiness.instance_managers_probe(api),
            deadlines.instance_managers_s,
        )
        minio = readiness.deployment_probe(
            api, backupstore.MINIO_DEPLOYMENT, namespace=backupstore.MINIO_NAMESPACE
        )
        self._wait("the MinIO backup store", minio, deadlines.minio_s)
        # longhorn-manager creates BackupTarget `default` itself (with an empty URL) when it starts.
        self._wait(
            "BackupTarget default to exist",
            readiness.backup_target_exists_probe(api),
            deadlines.backup_target_s,
        )
        self._say(f"pointing BackupTarget default at {backupstore.TARGET_URL}")
        api.patch(
            cluster.BACKUP_TARGETS, "default", backupstore.backup_target_patch(), namespace=readiness.NS
        )
        self._wait(
            "BackupTarget default available",
            readiness.backup_target_probe(api, url=backupstore.TARGET_URL),
            deadlines.backup_target_s,
        )
        self._prove_attach(api)

    def _apply_backupstore(self) -> None:
        secrets_file = self.config.work / "minio-secret.yaml"
        objects = [
            backupstore.namespace_object(readiness.NS),
            *backupstore.secret_objects(backupstore.new_credentials()),
        ]
        secrets_file.touch(mode=0o600, exist_ok=True)
        secrets_file.chmod(0o600)  # before the credentials go in, also when the file was there
        secrets_file.write_text(backupstore.manifest(objects), encoding="utf-8")
        manifest = self.config.repo / "infra" / "backupstore" / "minio-backupstore.yaml"
        command = kubectl.apply(
            kubeconfig=self.kubeconfig,
            context=self.provider.context,
            files=[secrets_file, manifest],
            what="create the MinIO backup store and its credentials",
        )
        self._step(command.what, command)

    def _prove_attach(self, api: cluster.Cluster) -> None:
        test = backupstore.AttachTest()
        for obj in test.objects():
            resource = (
                readiness.PERSISTENT_VOLUME_CLAIMS if obj["kind"] == "PersistentVolumeClaim" else cluster.PODS
            )
            try:
                api.create(resource, obj, namespace=test.namespace)
            except cluster.ConflictError:
                self._say(f"{obj['kind']} {obj['metadata']['name']} exists already: reusing it")
        probe = readiness.attach_probe(api, claim=test.claim, pod=test.pod, namespace=test.namespace)
        self._wait("a test volume to attach and take a write", probe, self.config.deadlines.attach_s)
        for resource, name in ((cluster.PODS, test.pod), (readiness.PERSISTENT_VOLUME_CLAIMS, test.claim)):
            with contextlib.suppress(cluster.NotFoundError):
                api.delete(resource, name, namespace=test.namespace)

    def _write_inventory(self, api: cluster.Cluster) -> None:
        nodes = [draft.facts(node) for node in api.list(cluster.NODES).items]
        drafted = draft.draft(
            nodes,
            context=self.provider.context,
            kubeconfig=self.kubeconfig,
            driver=self.provider.draft_driver,
        )
        inventory.dump(drafted, self.inventory_path)
        inventory.load(self.inventory_path)  # what the soak will read must load
        self._say(f"inventory written: {self.inventory_path} ({len(drafted.nodes)} nodes)")

    def _soak(self) -> int:
        argv = (
            sys.executable,
            "-m",
            "lhsoak",
            "soak",
            f"--kubeconfig={self.kubeconfig}",
            f"--inventory={self.inventory_path}",
            f"--reports-dir={self.config.reports_dir}",
            "--",
            f"--run-id={self.config.run_id}",
            *soak_arguments(self.config.soak_args),
        )
        # SIGINT, not SIGTERM: the soak then restores what it changed and closes its ledger.
        command = Command(
            argv=argv,
            what="run the nightly soak",
            timeout_s=self.config.deadlines.soak_s,
            stop_signal=signal.SIGINT,
            stop_grace_s=120.0,
        )
        self._say(f"soak {self.config.run_id}: {self.config.run_dir}")
        return self._runner.run(command, check=False).returncode

    def _report(self) -> int:
        if not (self.config.run_dir / "ledger.jsonl").is_file():
            self._say(f"no ledger in {self.config.run_dir}: the soak did not start, no report")
            return errors.EXIT_FAILED
        argv = [
            sys.executable,
            "-m",
            "lhsoak",
            "report",
            str(self.config.run_dir),
            "--html",
            f"--reports-dir={self.config.reports_dir}",
        ]
        history = self.config.history
        if history is not None and (history / "history").is_dir():
            argv.append(f"--history={history}")
        elif history is not None:
            self._say(f"no earlier report history in {history}: the trend starts with this run")
        command = Command(
            argv=tuple(argv), what="build the Allure report", timeout_s=self.config.deadlines.report_s
        )
        return self._runner.run(command, check=False).returncode

    def _teardown(self) -> None:
        command = self.provider.delete()
        try:
            self._runner.run(command)
            self._say(f"cluster {self.config.cluster} deleted")
        except CommandFailed as error:
            self._say(f"TEARDOWN FAILED, delete it by hand ({command.shown}): {error}")

    # -- preflight --------------------------------------------------------------------------------

    def _preflight(self) -> None:
        missing = [tool for tool in self.provider.tools if shutil.which(tool) is None]
        if missing:
            raise errors.UsageError(
                f"missing on PATH: {', '.join(missing)}; install them with "
                f"infra/ci/install-tools.sh {self.provider.name} (docker: your distribution's package)"
            )
        if self.config.check_host and not Path("/sys/module/iscsi_tcp").exists():
            raise errors.UsageError(
                "the iscsi_tcp kernel module is not loaded, so no Longhorn volume could attach: "
                "run `sudo infra/ci/prepare-host.sh` (or pass --skip-host-check)"
            )
        listing = self._runner.run(self.provider.list_clusters(), capture=True).stdout
        if self.config.cluster in self.provider.cluster_names(listing):
            raise errors.UsageError(
                f"a {self.provider.name} cluster named {self.config.cluster} exists already; lhsoak "
                f"deletes only clusters it made: delete it (`{self.provider.delete().shown}`) or pass "
                "another --cluster-name"
            )

    # -- helpers ----------------------------------------------------------------------------------

    def _step(self, title: str, command: Command) -> None:
        self._say(f"== {title}")
        self._runner.run(command)

    def _wait(self, what: str, probe: Probe, deadline_s: float) -> None:
        until(probe, what=what, deadline_s=deadline_s, say=self._say, pace=self.config.pace)

    def _save_diagnostics(self) -> None:
        target = self.config.work / "diagnostics"
        target.mkdir(parents=True, exist_ok=True)
        for name, command in kubectl.diagnostics(
            kubeconfig=self.kubeconfig, context=self.provider.context
        ).items():
            try:
                outcome = self._runner.run(command, capture=True, check=False)
                (target / name).write_text(outcome.stdout + outcome.stderr, encoding="utf-8")
            except CommandFailed as error:
                (target / name).write_text(f"{error}\n", encoding="utf-8")
        self._say(f"cluster state saved in {target}")
