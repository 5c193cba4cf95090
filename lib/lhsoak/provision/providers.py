"""The two throwaway cluster kinds behind one interface (as e2e-framework's cluster providers):
which node image to build, how to create and delete the cluster, its context, its nodes and which
reboot driver the inventory gives them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, get_args

from lhsoak.provision import draft, images, k3d, kind
from lhsoak.provision.process import Command

ProviderName = Literal["kind", "k3d"]
PROVIDERS: tuple[ProviderName, ...] = get_args(ProviderName)
WORKERS = 3
"""Workers of the nightly cluster, as infra/kind/cluster.yaml and infra/k3d/cluster.yaml define them."""


class Provider(Protocol):
    """A way to make the nightly cluster."""

    @property
    def name(self) -> ProviderName: ...

    @property
    def cluster(self) -> str: ...

    @property
    def tools(self) -> tuple[str, ...]: ...

    @property
    def draft_driver(self) -> draft.DraftDriver: ...

    @property
    def context(self) -> str: ...

    def image_build(self) -> Command: ...

    def create(self) -> list[Command]: ...

    def delete(self) -> Command: ...

    def list_clusters(self) -> Command: ...

    def cluster_names(self, listing: str) -> set[str]: ...

    def node_names(self) -> list[str]: ...


@dataclass(frozen=True)
class KindProvider:
    """kind: node containers on a Docker network; rebooted by the docker driver."""

    cluster: str
    """The kind cluster name."""
    infra: Path
    """The repository's infra/ folder."""
    kubeconfig: Path
    """Where kind writes the cluster's kubeconfig."""
    name: ProviderName = "kind"
    tools: tuple[str, ...] = ("docker", "kind", "helm", "kubectl")
    draft_driver: draft.DraftDriver = "docker"

    @property
    def context(self) -> str:
        return kind.context(self.cluster)

    def image_build(self) -> Command:
        return images.kind_node_build(self.infra)

    def create(self) -> list[Command]:
        config = self.infra / "kind" / "cluster.yaml"
        return [kind.create(name=self.cluster, config=config, kubeconfig=self.kubeconfig)]

    def delete(self) -> Command:
        return kind.delete(name=self.cluster, kubeconfig=self.kubeconfig)

    def list_clusters(self) -> Command:
        return kind.list_clusters()

    def cluster_names(self, listing: str) -> set[str]:
        return kind.cluster_names(listing)

    def node_names(self) -> list[str]:
        return kind.node_names(self.cluster, workers=WORKERS)


@dataclass(frozen=True)
class K3dProvider:
    """k3d: k3s node containers; rebooted by the k3d driver (`k3d node stop/start`)."""

    cluster: str
    """The k3d cluster name."""
    infra: Path
    """The repository's infra/ folder."""
    kubeconfig: Path
    """Where the cluster's kubeconfig is written."""
    name: ProviderName = "k3d"
    tools: tuple[str, ...] = ("docker", "k3d", "helm", "kubectl")
    draft_driver: draft.DraftDriver = "k3d"

    @property
    def context(self) -> str:
        return k3d.context(self.cluster)

    def image_build(self) -> Command:
        return images.k3d_node_build(self.infra)

    def create(self) -> list[Command]:
        config = self.infra / "k3d" / "cluster.yaml"
        return [
            k3d.create(name=self.cluster, config=config),
            k3d.write_kubeconfig(name=self.cluster, kubeconfig=self.kubeconfig),
        ]

    def delete(self) -> Command:
        return k3d.delete(name=self.cluster)

    def list_clusters(self) -> Command:
        return k3d.list_clusters()

    def cluster_names(self, listing: str) -> set[str]:
        return k3d.cluster_names(listing)

    def node_names(self) -> list[str]:
        return k3d.node_names(self.cluster, agents=WORKERS)


def make(name: ProviderName, *, cluster: str, infra: Path, kubeconfig: Path) -> Provider:
    """The provider called `name`."""
    if name == "kind":
        return KindProvider(cluster=cluster, infra=infra, kubeconfig=kubeconfig)
    return K3dProvider(cluster=cluster, infra=infra, kubeconfig=kubeconfig)
