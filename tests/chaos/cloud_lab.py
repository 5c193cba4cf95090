"""What the gcp and azure driver tests share: the machines' events recorded, a loopback port nothing
listens on, an environment cleared of a provider's variables, a driver built for one node, and a
whole lab started as `lhsoak lab up --gce|--azure` starts it."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from lhsoak import inventory
from lhsoak.chaos import driver
from lhsoak.chaos.driver import DriverOptions
from lhsoak.lab import cluster, profiles
from lhsoak.lab.machine import MachineEvent

from ..support.loop import LoopThread
from ..support.ssh_lab import SshLab

# Proxies would carry loopback requests elsewhere; the guard would stop them, but the failure would
# then say "proxy" instead of what the test is about.
LAB_START_DEADLINE_S = 30.0
"""Starting a whole lab (keys, API server, controllers) on a busy 2-core machine, in seconds."""
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


class Events:
    """Every machine transition in the lab, recorded from the lab loop."""

    def __init__(self) -> None:
        self.seen: list[MachineEvent] = []

    def kinds(self, machine: str) -> list[str]:
        return [event.kind for event in list(self.seen) if event.machine == machine]


@contextmanager
def recorded_events(lab: SshLab) -> Iterator[Events]:
    """The machines' transitions while the block runs."""
    recorded = Events()
    unsubscribe = lab.call(lambda: lab.fleet.subscribe(recorded.seen.append))
    try:
        yield recorded
    finally:
        lab.call(unsubscribe)


@contextmanager
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections at once: bound, so nobody else takes it, and not
    listening."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        holder.bind(("127.0.0.1", 0))
        yield int(holder.getsockname()[1])
    finally:
        holder.close()


def clear_environment(monkeypatch: pytest.MonkeyPatch, *, prefixes: Iterable[str]) -> None:
    """Drop every variable starting with one of `prefixes`, the proxies and any CA bundle."""
    wanted = tuple(prefixes)
    for name in list(os.environ):
        if (
            name.startswith(wanted)
            or name in PROXY_VARIABLES
            or name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE")
        ):
            monkeypatch.delenv(name)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def build(node: inventory.Node, options: DriverOptions) -> driver.RebootDriver:
    """The driver the inventory picks for `node`."""
    return driver.drivers_for(
        inventory.Inventory(cluster=inventory.ClusterTarget(context="lab"), nodes=(node,)),
        [node.name],
        options=options,
    )[node.name]


@contextmanager
def started_lab_cluster(loop: LoopThread, spec: cluster.LabSpec) -> Iterator[cluster.LabCluster]:
    """A whole lab as `lhsoak lab up` runs it (API server, controllers, SSH, the cloud endpoint),
    in `loop`, for the block."""
    lab = cluster.LabCluster(spec)
    try:
        loop.run(lab.start(), timeout_s=LAB_START_DEADLINE_S)
        yield lab
    finally:
        loop.run(lab.stop(), timeout_s=LAB_START_DEADLINE_S)


def lab_spec(state_dir: Path, **cloud: bool) -> cluster.LabSpec:
    """One control plane and one worker with sub-second reboots, serving `cloud` (gce=True, …)."""
    fast = profiles.get("healthy", shutdown_s=0.05, down_s=0.2, boot_s=0.05, kubelet_start_s=0.05)
    return cluster.LabSpec(state_dir=state_dir, profile=fast, workers=1, **cloud)
