"""The gcp driver through google-cloud-compute against the lab's Compute Engine endpoint: the right
instance, and only it, resets or power-cycles, and no request leaves loopback.

The SDK finds its credentials as it would anywhere (Application Default Credentials): the key file
GOOGLE_APPLICATION_CREDENTIALS names, made by the lab, with its token_uri on the lab. Where it would
look further (the metadata server, when no credentials are found) GCE_METADATA_IP sends it to a
loopback port nothing listens on, and `NoEgress` fails any test in which anything tried to leave
loopback.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import google.auth.transport.requests
import google.oauth2.credentials
import pytest
import tenacity
from google.cloud import compute_v1
from google.oauth2 import service_account

from lhsoak import inventory
from lhsoak.chaos import driver
from lhsoak.chaos.driver import DriverOptions
from lhsoak.lab import cluster, gce, pki

from ..support.loop import LoopThread
from .cloud_lab import (
    Events,
    build,
    clear_environment,
    closed_port,
    lab_spec,
    recorded_events,
    started_lab_cluster,
)
from .conftest import Lab
from .no_egress import NoEgress

COMPUTE_SCOPE = "https://www.googleapis.com/auth/compute"


@pytest.fixture(autouse=True)
def no_egress() -> Iterator[NoEgress]:
    with NoEgress() as guard:
        yield guard
    assert guard.attempts == [], f"something tried to leave loopback: {guard.attempts}"


@pytest.fixture
def events(lab: Lab) -> Iterator[Events]:
    with recorded_events(lab) as recorded:
        yield recorded


@pytest.fixture
def gce_endpoint(lab: Lab) -> Iterator[gce.GceEndpoint]:
    """The lab's Compute Engine endpoint, one instance per lab machine."""
    endpoint = lab.run(gce.start_gce_endpoint(lab.fleet, authority=pki.generate()))
    yield endpoint
    lab.run(endpoint.close())


@pytest.fixture
def google_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gce_endpoint: gce.GceEndpoint
) -> Iterator[dict[str, str]]:
    """Application Default Credentials = the lab's key file; no gcloud login; the metadata server
    on a loopback port that refuses connections."""
    clear_environment(monkeypatch, prefixes=("GOOGLE_", "GCE_", "GCLOUD_", "CLOUDSDK_"))
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))
    with closed_port() as port:
        # google-auth's metadata-server probe goes to GCE_METADATA_IP (read at each probe); its
        # other requests to GCE_METADATA_HOST (read when that module is first imported).
        monkeypatch.setenv("GCE_METADATA_IP", f"127.0.0.1:{port}")
        monkeypatch.setenv("GCE_METADATA_HOST", f"127.0.0.1:{port}")
        variables = gce_endpoint.write_client_files(tmp_path / "gce")
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        yield variables


def node(
    endpoint: gce.GceEndpoint, name: str, *, ssh: inventory.SshAccess | None = None, **gcp_fields: Any
) -> inventory.Node:
    target = inventory.GcpTarget(
        project=endpoint.project, zone=endpoint.zone, instance=name, endpoint=endpoint.url
    )
    return inventory.Node(name=name, role="worker", gcp=dataclasses.replace(target, **gcp_fields), ssh=ssh)


def description(name: str) -> str:
    return f"GCE instance {name} ({gce.PROJECT}/{gce.ZONE})"


def compute_client(
    endpoint: gce.GceEndpoint, kind: type[Any] = compute_v1.InstancesClient, **kwargs: Any
) -> Any:
    return kind(client_options={"api_endpoint": endpoint.url}, **kwargs)


def test_power_cycle_stops_and_starts_only_that_instance(
    lab: Lab,
    gce_endpoint: gce.GceEndpoint,
    google_env: dict[str, str],
    events: Events,
    options: DriverOptions,
) -> None:
    before = {name: lab.boot_id(name) for name in lab.fleet.names}
    chosen = build(node(gce_endpoint, "worker-1", mode="power-cycle"), options)
    chosen.check()

    proof = driver.prove_reboot(chosen, down_deadline_s=5, up_deadline_s=5)

    assert proof.down == driver.Evidence(proven=True, detail=f"{description('worker-1')} stopped")
    assert (proof.old_boot_id, proof.new_boot_id) == (None, None), "no ssh: no boot id"
    assert events.kinds("worker-1")[:5] == [
        "shutdown-started",
        "kubelet-stopped",
        "powered-off",
        "boot-started",
        "booted",
    ]
    assert lab.boot_id("worker-1") != before["worker-1"]
    for other in ("cp-1", "worker-2", "stuck-1"):
        assert events.kinds(other) == [], f"{other} was touched"
        assert lab.boot_id(other) == before[other]


def test_reset_with_ssh_beside_proves_the_new_boot_id(
    lab: Lab,
    gce_endpoint: gce.GceEndpoint,
    google_env: dict[str, str],
    events: Events,
    options: DriverOptions,
) -> None:
    chosen = build(node(gce_endpoint, "cp-1", ssh=lab.ssh("cp-1")), options)
    before = lab.boot_id("cp-1")

    proof = driver.prove_reboot(chosen, down_deadline_s=5, up_deadline_s=5)

    assert proof.old_boot_id == before
    assert proof.new_boot_id == lab.boot_id("cp-1") != before
    assert proof.down.proven
    assert proof.down.detail.startswith("ssh: ")
    assert "powered-off" in events.kinds("cp-1")
    assert all(events.kinds(other) == [] for other in ("worker-1", "worker-2", "stuck-1"))


def test_reset_without_ssh_says_the_machine_level_proof_is_missing(
    lab: Lab,
    gce_endpoint: gce.GceEndpoint,
    google_env: dict[str, str],
    events: Events,
    options: DriverOptions,
) -> None:
    before = lab.boot_id("worker-2")
    proof = driver.prove_reboot(
        build(node(gce_endpoint, "worker-2"), options), down_deadline_s=5, up_deadline_s=5
    )

    assert not proof.machine_proven
    assert proof.down == driver.Evidence(
        proven=False,
        detail=f"{description('worker-2')} stays 'running' through a restart and the node has no ssh to see it go down",
    )
    lab.wait_for(
        "worker-2", lambda m: m.state == "running" and m.boot_id != before, "the lab reboot to finish"
    )
    assert "shutdown-started" in events.kinds("worker-2"), "the reset did happen"


def test_restore_starts_an_instance_this_driver_stopped_and_only_once(
    lab: Lab, gce_endpoint: gce.GceEndpoint, google_env: dict[str, str], options: DriverOptions
) -> None:
    chosen = build(node(gce_endpoint, "worker-1", mode="power-cycle"), options)
    chosen.reboot()
    assert chosen.wait_down(deadline_s=5).proven
    assert lab.machine("worker-1").state == "off"

    chosen.restore()

    lab.wait_for("worker-1", lambda m: m.state == "running", "worker-1 to boot after restore")
    chosen.restore()  # idempotent: nothing left to start
    assert lab.machine("worker-1").state == "running"


def test_a_stopped_instance_fails_the_check(
    lab: Lab, gce_endpoint: gce.GceEndpoint, google_env: dict[str, str], options: DriverOptions
) -> None:
    lab.call(lambda: lab.machine("worker-2").power_off())
    with pytest.raises(
        driver.DriverError,
        match=r"\(lhsoak-lab/lab-zone-a\) is TERMINATED; lhsoak reboots running instances only",
    ):
        build(node(gce_endpoint, "worker-2"), options).check()


def test_an_unknown_instance_is_an_access_error(
    gce_endpoint: gce.GceEndpoint, google_env: dict[str, str], options: DriverOptions
) -> None:
    with pytest.raises(driver.AccessError) as caught:
        build(node(gce_endpoint, "worker-9"), options).check()
    assert str(caught.value) == (
        f"node worker-9: get: {description('worker-9')} not found: "
        "The resource 'projects/lhsoak-lab/zones/lab-zone-a/instances/worker-9' was not found"
    )


def test_another_project_is_an_access_error(
    gce_endpoint: gce.GceEndpoint, google_env: dict[str, str], options: DriverOptions
) -> None:
    chosen = build(node(gce_endpoint, "worker-1", project="someone-elses"), options)
    with pytest.raises(
        driver.AccessError,
        match=r"reset GCE instance worker-1 \(someone-elses/lab-zone-a\): Required 'compute.instances.reset' "
        r"permission for 'projects/someone-elses/zones/lab-zone-a/instances/worker-1'$",
    ):
        chosen.reboot()


def test_missing_credentials_are_an_access_error_found_on_loopback_only(
    gce_endpoint: gce.GceEndpoint,
    google_env: dict[str, str],
    options: DriverOptions,
    monkeypatch: pytest.MonkeyPatch,
    no_egress: NoEgress,
) -> None:
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS")
    with pytest.raises(driver.AccessError) as caught:
        build(node(gce_endpoint, "worker-1"), options).check()
    assert str(caught.value) == (
        "node worker-1: credentials: no Google Cloud credentials found: set GOOGLE_APPLICATION_CREDENTIALS "
        "to a service account key file, run `gcloud auth application-default login`, or run on "
        "Compute Engine with a service account"
    )
    assert no_egress.attempts == [], "the metadata server was looked for on loopback only"


def test_a_key_file_that_is_not_there_is_an_access_error_naming_it(
    gce_endpoint: gce.GceEndpoint,
    google_env: dict[str, str],
    options: DriverOptions,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(tmp_path / "nowhere.json"))
    with pytest.raises(
        driver.AccessError,
        match=r"^node worker-1: credentials: the key file GOOGLE_APPLICATION_CREDENTIALS names cannot be used: "
        r"File .*nowhere.json was not found",
    ):
        build(node(gce_endpoint, "worker-1"), options).check()


def test_a_key_the_endpoint_does_not_know_is_an_access_error(
    gce_endpoint: gce.GceEndpoint,
    google_env: dict[str, str],
    options: DriverOptions,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    stranger = gce.ServiceAccountKey.generate(gce.SERVICE_ACCOUNT)
    key_file = tmp_path / "stranger.json"
    key_file.write_text(json.dumps(stranger.key_file(project=gce.PROJECT, token_uri=gce_endpoint.token_uri)))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    with pytest.raises(
        driver.AccessError,
        match=r"get GCE instance worker-1 .*: Request had invalid authentication credentials",
    ):
        build(node(gce_endpoint, "worker-1"), options).check()


def test_the_sdk_signs_its_own_jwt_and_the_token_uri_answers_a_grant(
    gce_endpoint: gce.GceEndpoint, google_env: dict[str, str], options: DriverOptions
) -> None:
    build(node(gce_endpoint, "worker-1"), options).check()
    assert set(gce_endpoint.auth_seen) == {"self-signed-jwt"}, "google-cloud-compute never calls token_uri"

    # Scoped credentials refreshed by hand take the JWT-bearer grant to the key file's token_uri.
    scoped = service_account.Credentials.from_service_account_file(
        google_env["GOOGLE_APPLICATION_CREDENTIALS"], scopes=[COMPUTE_SCOPE]
    )
    scoped.refresh(google.auth.transport.requests.Request())
    client = compute_client(gce_endpoint, credentials=google.oauth2.credentials.Credentials(scoped.token))
    instance = client.get(project=gce.PROJECT, zone=gce.ZONE, instance="worker-1", timeout=5)

    assert (instance.name, instance.status, instance.id) == (
        "worker-1",
        "RUNNING",
        gce.numeric_id("worker-1"),
    )
    assert gce_endpoint.auth_seen["access-token"] == 1


def test_operations_are_done_once_the_machine_got_there(
    lab: Lab, gce_endpoint: gce.GceEndpoint, google_env: dict[str, str]
) -> None:
    instances = compute_client(gce_endpoint)
    operations = compute_client(gce_endpoint, compute_v1.ZoneOperationsClient)
    place = {"project": gce.PROJECT, "zone": gce.ZONE}

    # stuck-1 stays off once it went down: its reset never gets it running again.
    reset = instances.reset(**place, instance="stuck-1", timeout=5)
    lab.wait_for("stuck-1", lambda m: m.state == "off", "stuck-1 to go down")
    assert (
        operations.get(**place, operation=reset.name, timeout=5).status == compute_v1.Operation.Status.RUNNING
    )

    stop = instances.stop(**place, instance="worker-1", timeout=5)

    def stop_status() -> Any:
        return operations.get(**place, operation=stop.name, timeout=5)

    done = tenacity.Retrying(
        retry=tenacity.retry_if_result(
            lambda operation: operation.status != compute_v1.Operation.Status.DONE
        ),
        wait=tenacity.wait_fixed(0.05),
        stop=tenacity.stop_after_delay(5),
    )(stop_status)
    assert lab.machine("worker-1").state == "off"
    assert (done.operation_type, done.target_link, done.end_time != "") == (
        "stop",
        f"{gce_endpoint.url}/compute/v1/projects/{gce.PROJECT}/zones/{gce.ZONE}/instances/worker-1",
        True,
    )
    status = instances.get(**place, instance="worker-1", timeout=5).status
    assert status == "TERMINATED"


def test_lab_up_with_gce_gives_an_inventory_and_credentials_the_driver_uses(
    lab_loop: LoopThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: DriverOptions
) -> None:
    clear_environment(monkeypatch, prefixes=("GOOGLE_", "GCE_", "GCLOUD_", "CLOUDSDK_"))
    with started_lab_cluster(lab_loop, lab_spec(tmp_path / "lab", gce=True)) as lab:
        variables = cluster.read_env_file(lab.cloud_env_path)
        assert set(variables) == {"GOOGLE_APPLICATION_CREDENTIALS", "REQUESTS_CA_BUNDLE"}
        for name, value in variables.items():
            monkeypatch.setenv(name, value)
        worker = inventory.load(lab.inventory_path).node("worker-1")
        assert worker.power_driver == "gcp"
        assert lab.gce is not None
        assert worker.gcp == inventory.GcpTarget(
            project=gce.PROJECT, zone=gce.ZONE, instance="worker-1", endpoint=lab.gce.url
        )

        proof = driver.prove_reboot(build(worker, options), down_deadline_s=5, up_deadline_s=10)

    assert proof.machine_proven, "reset through the lab's endpoint, proven by ssh beside it"
    assert proof.new_boot_id != proof.old_boot_id
