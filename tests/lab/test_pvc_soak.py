"""The harness in pvc mode against a lab, end to end: `longhorn.Setup` makes its test volumes as users
have them — a PVC of StorageClass `longhorn` mounted by a writer pod (`lhsoak.workload.Writers`) — the
recurring jobs fire on the CSI-made `pvc-<uid>` volumes, the verdict passes, and teardown leaves no
claim, writer pod, PV or Longhorn volume behind."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes import config as kube_config

from lhsoak import config as soak_config
from lhsoak import soak, verdict
from lhsoak.lab.process import LabProcess

from ..support.lab_cluster import NotYet, eventually

# Every 2 s: two ticks of each job after setup take a few seconds.
CRON = "*/2 * * * * *"
RUN_ID = "pvc-e2e"


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[LabProcess]:
    started = LabProcess.start(state_dir=tmp_path / "lab", profile="healthy")
    try:
        yield started
    finally:
        started.stop()


def test_a_soak_in_pvc_mode_runs_on_csi_volumes_and_cleans_up(lab: LabProcess, tmp_path: Path) -> None:
    run = soak.SoakRun(
        soak=soak_config.Soak(
            run_id=RUN_ID,
            jobs=soak_config.default_jobs(CRON),
            volume_mode="pvc",
            lag_bound_s=8,
            settle_s=4,
            ticks_after_chaos=2,
            reports_dir=tmp_path / "reports",
            allow_seconds_cron=True,
        ),
        target=soak_config.Target(
            kubeconfig=lab.kubeconfig, inventory=lab.inventory, allowed_contexts=(lab.context,)
        ),
        chaos=soak_config.Plan(kind="none", iterations=0, ready_deadline_s=60, poll_interval_s=0.1),
    )
    try:
        run.open()
        run.start()
        for step in run.steps():
            run.run_step(step)
        run.settle()
        result = run.finish()
        assert run.setup is not None
        volumes = list(run.setup.volumes)
    finally:
        problems = run.teardown()

    assert problems == []
    assert result.passed, verdict.render_table(result)
    assert len(volumes) == 2
    assert all(name.startswith("pvc-") for name in volumes), volumes
    ledger = (run.soak.run_dir / "ledger.jsonl").read_text()
    assert any(name in ledger for name in volumes)
    assert_nothing_left(lab, volumes)


def assert_nothing_left(lab: LabProcess, volumes: list[str]) -> None:
    api_client = kube_config.new_client_from_config(config_file=str(lab.kubeconfig))
    try:
        core, custom = client.CoreV1Api(api_client), client.CustomObjectsApi(api_client)
        selector = f"{soak_config.RUN_LABEL}={RUN_ID}"

        def left() -> None:
            remaining = {
                "claims": [
                    c.metadata.name
                    for c in core.list_persistent_volume_claim_for_all_namespaces(
                        label_selector=selector
                    ).items
                ],
                "pods": [
                    p.metadata.name for p in core.list_pod_for_all_namespaces(label_selector=selector).items
                ],
                "pvs": [
                    v.metadata.name for v in core.list_persistent_volume().items if v.metadata.name in volumes
                ],
                "volumes": [
                    v["metadata"]["name"]
                    for v in custom.list_namespaced_custom_object(
                        "longhorn.io", "v1beta2", "longhorn-system", "volumes"
                    )["items"]
                    if v["metadata"]["name"] in volumes
                ],
                "namespaces": [n.metadata.name for n in core.list_namespace(label_selector=selector).items],
            }
            if any(remaining.values()):
                raise NotYet(json.dumps(remaining))

        eventually(left, what="the run's claims, writer pods, PVs, Longhorn volumes and namespace deleted")
    finally:
        api_client.close()
