"""infra/k3d: the cluster config against k3d's own JSON schema, the node image's build files."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from lhsoak.provision import k3d, providers, versions

from .conftest import INFRA

SCHEMA = Path(__file__).parent / "schemas" / "k3d-v1alpha5.schema.json"
CONFIG = INFRA / "k3d" / "cluster.yaml"


def validator() -> jsonschema.Draft7Validator:
    return jsonschema.Draft7Validator(
        json.loads(SCHEMA.read_text()), format_checker=jsonschema.Draft7Validator.FORMAT_CHECKER
    )


def test_the_cluster_config_is_valid_for_k3d() -> None:
    errors = [error.message for error in validator().iter_errors(yaml.safe_load(CONFIG.read_text()))]
    assert errors == []


def test_the_schema_rejects_what_k3d_would() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    config["options"]["k3d"]["disableLoadBalancer"] = True  # misspelt: k3d has disableLoadbalancer
    assert any("disableLoadBalancer" in error.message for error in validator().iter_errors(config))


def test_one_server_three_agents_of_the_pinned_image() -> None:
    config = yaml.safe_load(CONFIG.read_text())
    assert (config["servers"], config["agents"]) == (1, providers.WORKERS)
    assert config["image"] == versions.K3D_NODE_IMAGE
    assert config["metadata"]["name"] == "lhsoak-nightly"
    # The user's kubeconfig is not touched; lhsoak writes its own (k3d.write_kubeconfig).
    assert config["options"]["kubeconfig"] == {
        "updateDefaultKubeconfig": False,
        "switchCurrentContext": False,
    }


def test_the_dockerfile_builds_on_the_pinned_k3s() -> None:
    dockerfile = (INFRA / "k3d" / "Dockerfile").read_text()
    assert f"ARG K3S_IMAGE={versions.K3S_IMAGE}\n" in dockerfile
    assert f"ARG ALPINE_IMAGE={versions.ALPINE_IMAGE}\n" in dockerfile
    assert "VOLUME /var/lib/longhorn\n" in dockerfile  # a data path per node container
    assert versions.K3D_NODE_IMAGE in dockerfile  # the build line in its header
    assert versions.K3S_IMAGE.endswith(versions.KUBERNETES_VERSION + "-k3s1")


def test_the_longhorn_preparation_is_one_of_k3ds_entrypoint_hooks() -> None:
    # k3d's /bin/k3d-entrypoint.sh runs every /bin/k3d-entrypoint-*.sh (pkg/types/fixes/assets).
    dockerfile = (INFRA / "k3d" / "Dockerfile").read_text()
    copied = re.findall(r"^COPY (\S+) (/bin/k3d-entrypoint-[\w-]+\.sh)$", dockerfile, re.MULTILINE)
    assert copied == [("k3d-entrypoint-longhorn.sh", "/bin/k3d-entrypoint-longhorn.sh")]
    assert (INFRA / "k3d" / "k3d-entrypoint-longhorn.sh").stat().st_mode & 0o111
    assert "K3D_FIX_MOUNTS" in k3d.FIX_ENVIRONMENT  # the fix that makes k3d use that entrypoint


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="shellcheck is not installed")
def test_the_node_scripts_pass_shellcheck() -> None:
    scripts = sorted(str(path) for path in (INFRA / "k3d").glob("*.sh"))
    done = subprocess.run(["shellcheck", *scripts], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout
