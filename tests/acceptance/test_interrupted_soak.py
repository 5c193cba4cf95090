"""SIGTERM in the middle of a reboot: the soak stops, brings the node back, restores the recurring jobs that
were there, removes its own objects, ends the ledger as interrupted, and exits non-zero.

The nodes are power-cycled through the AWS driver against the lab's EC2 endpoint (StopInstances, wait,
StartInstances), so a SIGTERM between stop and start leaves a node off unless the harness restores it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import boto3
import pytest
import tenacity
from kubernetes import client, config

from lhsoak import inventory, ledger
from lhsoak.lab import ec2
from lhsoak.lab.process import LabProcess

from .conftest import AWS_ENV, LAB_SOAK_OPTIONS, lhsoak

NS = "longhorn-system"
USER_JOB = {
    "apiVersion": "longhorn.io/v1beta2",
    "kind": "RecurringJob",
    "metadata": {"name": "users-nightly-backup", "namespace": NS},
    "spec": {
        "name": "users-nightly-backup",
        "task": "backup",
        "cron": "0 3 * * *",
        "retain": 7,
        "concurrency": 2,
        "groups": ["default"],
        "labels": {},
    },
}


def _power_cycling_inventory(lab: LabProcess, path: Path) -> Path:
    original = inventory.load(lab.inventory)
    nodes = tuple(
        dataclasses.replace(node, aws=dataclasses.replace(node.aws, mode="power-cycle"))
        if node.aws is not None
        else node
        for node in original.nodes
    )
    inventory.dump(dataclasses.replace(original, nodes=nodes), path)
    return path


def _wait_for_reboot_start(ledger_path: Path) -> None:
    def started() -> None:
        text = ledger_path.read_text() if ledger_path.exists() else ""
        if '"phase":"start"' not in text:
            raise LookupError(f"no reboot started yet in {ledger_path}")

    tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(LookupError),
        wait=tenacity.wait_fixed(0.1),
        stop=tenacity.stop_after_delay(90),
        reraise=True,
    )(started)


def _all_nodes_ready(core: client.CoreV1Api) -> None:
    not_ready = [
        node.metadata.name
        for node in core.list_node().items
        if not any(c.type == "Ready" and c.status == "True" for c in node.status.conditions or [])
    ]
    if not_ready:
        raise AssertionError(f"nodes not Ready: {not_ready}")


def _suite_of(soak: subprocess.Popen[str]) -> int:
    """The pid of the pytest that `lhsoak soak` runs the suite in (its only child)."""
    children = Path(f"/proc/{soak.pid}/task/{soak.pid}/children").read_text().split()
    assert len(children) == 1, f"lhsoak soak has children {children}"
    return int(children[0])


def _interrupt(soak: subprocess.Popen[str], how: str) -> None:
    if how == "sigterm":
        soak.send_signal(signal.SIGTERM)
    elif how == "sigint-to-a-background-job":
        soak.send_signal(signal.SIGINT)
    elif how == "ctrl-c-in-a-terminal":
        # The terminal signals the whole foreground group: lhsoak and its pytest both get SIGINT,
        # and lhsoak passes one more on to the pytest.
        os.killpg(soak.pid, signal.SIGINT)
    else:
        os.kill(_suite_of(soak), signal.SIGINT)


@pytest.mark.slow
@pytest.mark.parametrize(
    "how",
    ["sigterm", "sigint-to-a-background-job", "ctrl-c-in-a-terminal", "sigint-to-the-suite-alone"],
)
def test_an_interrupt_mid_reboot_leaves_the_cluster_as_it_was_found(
    lab: LabProcess, tmp_path: Path, how: str
) -> None:
    api = config.new_client_from_config(config_file=str(lab.kubeconfig))
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    custom.create_namespaced_custom_object("longhorn.io", "v1beta2", NS, "recurringjobs", USER_JOB)
    before = custom.get_namespaced_custom_object(
        "longhorn.io", "v1beta2", NS, "recurringjobs", "users-nightly-backup"
    )
    reports = tmp_path / "reports"
    soak = lhsoak(
        "soak",
        f"--kubeconfig={lab.kubeconfig}",
        f"--inventory={_power_cycling_inventory(lab, tmp_path / 'inventory.yaml')}",
        f"--reports-dir={reports}",
        "--",
        *LAB_SOAK_OPTIONS,
        "--run-id=interrupted",
        "--plan=worker",
        "--iterations=3",
        env=AWS_ENV,
        # A background job of a script has SIGINT ignored: the soak must still stop on it.
        ignore_sigint=how == "sigint-to-a-background-job",
        own_process_group=how == "ctrl-c-in-a-terminal",
    )
    try:
        _wait_for_reboot_start(reports / "interrupted" / "ledger.jsonl")
        _interrupt(soak, how)
        output, _ = soak.communicate(timeout=180)
    finally:
        soak.kill()
    assert soak.returncode == 130, output

    records = ledger.read(reports / "interrupted" / "ledger.jsonl")
    assert records.end is not None
    assert records.end.reason == "interrupted", output
    assert "INTERRUPTED" in output
    assert "Traceback" not in output, output

    jobs = custom.list_namespaced_custom_object("longhorn.io", "v1beta2", NS, "recurringjobs")["items"]
    assert [job["metadata"]["name"] for job in jobs] == ["users-nightly-backup"], output
    assert jobs[0]["spec"] == before["spec"]
    selector = "lhsoak.io/run=interrupted"
    for plural in ("volumes", "recurringjobs"):
        left = custom.list_namespaced_custom_object(
            "longhorn.io", "v1beta2", NS, plural, label_selector=selector
        )
        assert left["items"] == [], f"{plural} left behind: {json.dumps(left['items'])[:500]}"

    # Every machine is powered on again (the harness restores what it stopped) and every node comes back.
    ec2_client: Any = boto3.client(
        "ec2",
        endpoint_url=lab.ec2_url,
        **{k.lower(): v for k, v in AWS_ENV.items() if k != "AWS_DEFAULT_REGION"},
        region_name=ec2.REGION,
    )
    states = {
        instance["State"]["Name"]
        for reservation in ec2_client.describe_instances()["Reservations"]
        for instance in reservation["Instances"]
    }
    assert states <= {"running", "pending"}, states
    tenacity.Retrying(
        retry=tenacity.retry_if_exception_type(AssertionError),
        wait=tenacity.wait_fixed(0.2),
        stop=tenacity.stop_after_delay(60),
        reraise=True,
    )(_all_nodes_ready, core)
