"""The docker driver: what needs no engine runs anywhere; a live restart runs on a private engine the test
starts itself (tests/support/docker_engine.py), or on one the environment offers."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lhsoak import inventory
from lhsoak.chaos import driver
from lhsoak.chaos.driver import DriverOptions

from ..support import docker_engine

TEST_IMAGE = os.environ.get("LHSOAK_DOCKER_TEST_IMAGE", "busybox:latest")
"""A local image with `sleep`; the test never pulls (no registry is reachable from CI)."""


def build(container: str, options: DriverOptions, *, base_url: str | None = None) -> driver.RebootDriver:
    node = inventory.Node(
        name="kind-worker",
        role="worker",
        docker=inventory.DockerTarget(container=container, base_url=base_url),
    )
    inv = inventory.Inventory(cluster=inventory.ClusterTarget(context="kind-lab"), nodes=(node,))
    return driver.drivers_for(inv, ["kind-worker"], options=options)["kind-worker"]


def closed_port() -> int:
    with socket.socket() as placeholder:
        placeholder.bind(("127.0.0.1", 0))
        port: int = placeholder.getsockname()[1]
    return port


def test_an_unreachable_engine_is_a_clear_driver_error(options: DriverOptions) -> None:
    port = closed_port()
    node = build("kind-worker", options, base_url=f"tcp://127.0.0.1:{port}")
    with pytest.raises(driver.DriverError) as caught:
        node.check()
    message = str(caught.value)
    assert message.startswith(f"node kind-worker: connect: cannot reach tcp://127.0.0.1:{port}: ")
    assert not isinstance(caught.value, driver.AccessError)


def test_a_container_has_no_kernel_boot_id(options: DriverOptions) -> None:
    node = build("kind-worker", options, base_url=f"tcp://127.0.0.1:{closed_port()}")
    assert node.boot_id() is None
    assert not node.restarts_kernel
    node.restore()  # nothing was touched: no engine call, no error


def engine_answers() -> str | None:
    """Why no engine is reachable, or None if one is (checked with a plain socket: the SDK
    leaks its socket when the engine is missing, which warnings-as-errors would turn into a failure)."""
    address = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    scheme, _, rest = address.partition("://")
    family, target = (socket.AF_UNIX, rest) if scheme == "unix" else (socket.AF_INET, None)
    if target is None:
        host, _, port = rest.partition(":")
        with socket.socket(family) as probe:
            probe.settimeout(5)
            return (
                None if probe.connect_ex((host, int(port or 2375))) == 0 else f"nothing listens at {address}"
            )
    if not Path(target).exists():
        return f"no Docker socket at {target}"
    return None


@dataclasses.dataclass(frozen=True)
class Engine:
    client: Any
    image: str
    base_url: str | None
    """The driver's `base_url` for this engine (None: the environment's)."""


@pytest.fixture
def engine() -> Iterator[Engine]:
    """A private engine the test starts itself (CI: Debian docker.io, no registry), else one the
    environment offers with the test image; a skip that says why neither is there."""
    import docker  # type: ignore[import-untyped]

    with contextlib.ExitStack() as stack:
        try:
            private = stack.enter_context(docker_engine.private_engine())
        except docker_engine.EngineUnavailable as why_not:
            missing = engine_answers()
            if missing is not None:
                pytest.skip(f"no Docker engine: cannot start one ({why_not}), none reachable ({missing})")
            client = stack.enter_context(contextlib.closing(docker.from_env(timeout=10)))
            try:
                client.images.get(TEST_IMAGE)
            except docker.errors.ImageNotFound:
                pytest.skip(
                    f"image {TEST_IMAGE} is not present locally (set LHSOAK_DOCKER_TEST_IMAGE); tests never pull"
                )
            yield Engine(client=client, image=TEST_IMAGE, base_url=None)
            return
        client = stack.enter_context(
            contextlib.closing(docker.DockerClient(base_url=private.host, timeout=10))
        )
        yield Engine(client=client, image=private.image, base_url=private.host)


def test_restart_is_proven_by_a_new_start_time(engine: Engine, options: DriverOptions) -> None:
    container = engine.client.containers.run(
        engine.image,
        ["sleep", "3600"],
        name=f"lhsoak-test-{uuid.uuid4().hex[:8]}",
        detach=True,
        network_mode="none",  # the private engine has no bridge; the driver needs no network either
    )
    try:
        container.reload()
        started_before = container.attrs["State"]["StartedAt"]
        node = build(container.name, options, base_url=engine.base_url)
        proof = driver.prove_reboot(node, down_deadline_s=30, up_deadline_s=30)
        container.reload()
        assert container.attrs["State"]["Running"]
        assert container.attrs["State"]["StartedAt"] != started_before
        assert proof.down.proven
        assert proof.down.detail.startswith("container restarted: StartedAt ")
    finally:
        container.remove(force=True)
