"""The inventory: which cluster lhsoak may touch, and how to reboot each of its nodes.

An inventory is a YAML file. It is a user-facing contract; every key is listed here:

```yaml
cluster:
  context: lab-cluster            # required: the only kube context lhsoak may use with this inventory
  kubeconfig: ~/.kube/config      # optional: the kubeconfig holding it ($KUBECONFIG or ~/.kube/config)
nodes:
  - name: cp-1                    # required: the Kubernetes Node name (an RFC 1123 subdomain)
    role: control-plane           # required: control-plane | worker
    ssh:                          # reboots the node when it is the node's only driver
      host: 10.0.0.10             # required
      port: 22                    # 1-65535 (22)
      user: ubuntu                # login name (the local user name, as ssh does)
      key_file: ~/.ssh/id_ed25519 # private key (ssh-agent and ~/.ssh/id_* keys)
      host_key: "ssh-ed25519 AAAA…"        # the host's public key, "type base64", or:
      known_hosts: ~/.ssh/known_hosts      # a known_hosts file (both absent: ~/.ssh/known_hosts)
      reboot_command: systemctl reboot     # run as given through the login shell (systemctl reboot)
      sudo: true                  # prefix reboot_command with `sudo` unless it starts with it (true)
  - name: worker-1
    role: worker
    aws:                          # EC2, through boto3 (pip install 'lhsoak[aws]')
      instance_id: i-0123456789abcdef0     # exactly one of instance_id and name_tag
      name_tag: worker-1          # the instance's Name tag
      region: us-east-1           # required
      endpoint_url: http://127.0.0.1:5000  # optional: another EC2 endpoint (tests, the lab)
      profile: chaos              # optional: a named profile of the shared AWS config
      mode: reboot                # reboot (RebootInstances) | power-cycle (stop, wait stopped, start)
    ssh: {host: 10.0.0.11, user: ubuntu}   # optional beside a power driver: reads the boot id
  - name: worker-2
    role: worker
    gcp: {project: p, zone: europe-west1-b, instance: worker-2, mode: reset}  # reset | power-cycle
                                  # endpoint: optional, another Compute API endpoint (https://…)
  - name: worker-3
    role: worker
    azure: {subscription_id: "…", resource_group: rg, vm_name: worker-3, mode: restart}
                                  # restart | power-cycle (power off, start)
                                  # endpoint: optional, another ARM endpoint (https://…)
  - name: kind-worker
    role: worker
    docker: {container: kind-worker, base_url: unix:///var/run/docker.sock}  # base_url optional
  - name: k3d-lab-agent-0
    role: worker
    k3d: {node: k3d-lab-agent-0, binary: k3d}   # binary: the k3d executable (k3d, found on PATH)
```

Rules, checked by `load` before anything is touched (a `UsageError` names the file, the node and
the field): each node has exactly one *power driver* (aws, gcp, azure, docker or k3d) or, without
one, ssh; ssh may accompany a power driver to read the machine's boot id. Unknown keys are errors
(typos must not silently disable a setting). `~` is expanded and relative paths are relative to the
inventory file; key files and known_hosts files must exist and be readable.

The inventory holds no secrets: private keys are named by path and never read here; cloud
credentials come from each SDK's standard chain (environment, profile, instance identity).
"""

from __future__ import annotations

import base64
import binascii
import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, TypeVar, cast, get_args

import yaml

from lhsoak import errors

Role = Literal["control-plane", "worker"]
DriverKind = Literal["ssh", "aws", "gcp", "azure", "docker", "k3d"]
AwsMode = Literal["reboot", "power-cycle"]
GcpMode = Literal["reset", "power-cycle"]
AzureMode = Literal["restart", "power-cycle"]

ROLES: tuple[Role, ...] = get_args(Role)
DRIVER_KINDS: tuple[DriverKind, ...] = get_args(DriverKind)
POWER_DRIVERS: tuple[DriverKind, ...] = ("aws", "gcp", "azure", "docker", "k3d")
"""Drivers that reboot a node from outside it; ssh reboots only a node that has none of them."""

# A Kubernetes Node name is an RFC 1123 subdomain.
_NODE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_INSTANCE_ID = re.compile(r"^i-[0-9a-f]{8,17}$")
_HOST_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)


@dataclass(frozen=True)
class ClusterTarget:
    """The one cluster an inventory describes."""

    context: str
    """The only kube context lhsoak may use with this inventory (required)."""
    kubeconfig: Path | None = None
    """The kubeconfig file holding `context` (None: $KUBECONFIG or ~/.kube/config)."""


@dataclass(frozen=True)
class SshAccess:
    """How to log in to a node: to reboot it, or only to read its boot id beside a power driver."""

    host: str
    """Address or DNS name of the node's sshd (required)."""
    port: int = 22
    """TCP port of the node's sshd, 1-65535 (22)."""
    user: str | None = None
    """Login name (None: the local user name, as ssh does)."""
    key_file: Path | None = None
    """Private key file, absolute (None: ssh-agent and the ~/.ssh/id_* keys)."""
    host_key: str | None = None
    """The node's public host key, "type base64" (None: checked against `known_hosts`)."""
    known_hosts: Path | None = None
    """known_hosts file to check the host key against (None and no host_key: ~/.ssh/known_hosts)."""
    reboot_command: str = "systemctl reboot"
    """The command that reboots the node, run through the login shell ("systemctl reboot")."""
    sudo: bool = True
    """Run `reboot_command` through sudo unless it already starts with `sudo` (True)."""

    @property
    def effective_reboot_command(self) -> str:
        """The reboot command as sent: `reboot_command`, with `sudo ` in front when asked for."""
        if self.sudo and self.reboot_command.split(maxsplit=1)[:1] != ["sudo"]:
            return f"sudo {self.reboot_command}"
        return self.reboot_command


@dataclass(frozen=True)
class AwsTarget:
    """An EC2 instance, rebooted through the EC2 API (boto3)."""

    region: str
    """AWS region of the instance (required)."""
    instance_id: str | None = None
    """The instance id, `i-…` (exactly one of instance_id and name_tag)."""
    name_tag: str | None = None
    """The value of the instance's `Name` tag, resolved to one live instance at first use."""
    endpoint_url: str | None = None
    """Another EC2 endpoint, e.g. the lab's (None: the region's public endpoint)."""
    profile: str | None = None
    """A named profile of the shared AWS config files (None: the default credential chain)."""
    mode: AwsMode = "reboot"
    """`reboot` (RebootInstances) or `power-cycle` (stop, wait stopped, start) ("reboot")."""


@dataclass(frozen=True)
class GcpTarget:
    """A Compute Engine instance, reset through the Compute API (google-cloud-compute)."""

    project: str
    """The project id (required)."""
    zone: str
    """The instance's zone (required)."""
    instance: str
    """The instance name (required)."""
    mode: GcpMode = "reset"
    """`reset` (a hard reset) or `power-cycle` (stop, wait terminated, start) ("reset")."""
    endpoint: str | None = None
    """Another Compute API endpoint, e.g. a Private Service Connect one or the lab's, as an https
    URL (None: compute.googleapis.com)."""


@dataclass(frozen=True)
class AzureTarget:
    """An Azure virtual machine, restarted through the Compute API (azure-mgmt-compute)."""

    subscription_id: str
    """The subscription id (required)."""
    resource_group: str
    """The VM's resource group (required)."""
    vm_name: str
    """The VM name (required)."""
    mode: AzureMode = "restart"
    """`restart` or `power-cycle` (power off, wait stopped, start) ("restart")."""
    endpoint: str | None = None
    """Another Azure Resource Manager endpoint, e.g. a sovereign cloud's or the lab's, as an https
    URL (None: management.azure.com)."""


@dataclass(frozen=True)
class DockerTarget:
    """A node that is a Docker container (kind), restarted through the Docker Engine API."""

    container: str
    """The container name or id (required)."""
    base_url: str | None = None
    """The Docker Engine address, e.g. unix:///var/run/docker.sock (None: $DOCKER_HOST or local)."""


@dataclass(frozen=True)
class K3dTarget:
    """A k3d node, stopped and started with the k3d command line."""

    node: str
    """The k3d node name, as `k3d node list` shows it (required)."""
    binary: str = "k3d"
    """The k3d executable: a name looked up on PATH, or a path ("k3d")."""


@dataclass(frozen=True)
class Node:
    """One Kubernetes node and the drivers that can reboot it."""

    name: str
    """The Kubernetes Node name (required)."""
    role: Role
    """`control-plane` or `worker` (required)."""
    ssh: SshAccess | None = None
    """SSH access; the power driver when no other is given, else only to read the boot id."""
    aws: AwsTarget | None = None
    """The EC2 instance behind the node."""
    gcp: GcpTarget | None = None
    """The Compute Engine instance behind the node."""
    azure: AzureTarget | None = None
    """The Azure VM behind the node."""
    docker: DockerTarget | None = None
    """The Docker container that is the node (kind)."""
    k3d: K3dTarget | None = None
    """The k3d node."""

    @property
    def power_driver(self) -> DriverKind:
        """The driver that reboots this node."""
        for kind in POWER_DRIVERS:
            if getattr(self, kind) is not None:
                return kind
        return "ssh"


@dataclass(frozen=True)
class Inventory:
    """A cluster and its nodes, as read from an inventory file."""

    cluster: ClusterTarget
    """The cluster the nodes belong to."""
    nodes: tuple[Node, ...]
    """The nodes, in file order; names are unique."""
    source: Path | None = field(default=None, compare=False)
    """The file this inventory was read from (None: built in code)."""

    @property
    def names(self) -> tuple[str, ...]:
        """The node names, in file order."""
        return tuple(node.name for node in self.nodes)

    def node(self, name: str) -> Node:
        """The node called `name`; UsageError naming the known nodes if there is none."""
        for node in self.nodes:
            if node.name == name:
                return node
        raise errors.UsageError(
            f"{self.source or 'inventory'}: no node {name!r}; it has {', '.join(self.names)}"
        )


def load(path: Path | str) -> Inventory:
    """Read and validate the inventory at `path`; UsageError with one clear message if it is bad."""
    source = Path(path).expanduser().absolute()
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as error:
        raise errors.UsageError(f"{source}: cannot read the inventory: {error.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise errors.UsageError(f"{source}: not valid YAML{where}") from None
    if data is None:
        raise errors.UsageError(f"{source}: the inventory is empty")
    return parse(data, source=source)


def parse(data: object, *, source: Path) -> Inventory:
    """Validate an inventory already parsed from YAML; paths are relative to `source`'s folder."""
    top = _Section(data, source=source, expected=("cluster", "nodes"))
    cluster_section = top.section("cluster", expected=_keys_of(ClusterTarget))
    if cluster_section is None:
        raise top.error("is required", key="cluster")
    cluster = _parse_cluster(cluster_section)
    raw_nodes = top.take("nodes", required=True)
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise top.error("must be a non-empty list of nodes", key="nodes")
    nodes: list[Node] = []
    first_seen: dict[str, int] = {}
    for index, raw in enumerate(raw_nodes):
        node = _parse_node(raw, index=index, source=source)
        if node.name in first_seen:
            raise errors.UsageError(
                f"{source}: node {node.name!r}: listed twice "
                f"(nodes[{first_seen[node.name]}] and nodes[{index}])"
            )
        first_seen[node.name] = index
        nodes.append(node)
    return Inventory(cluster=cluster, nodes=tuple(nodes), source=source)


def dumps(inventory: Inventory) -> str:
    """The inventory as YAML text in the format `load` reads; default values are left out."""
    document = {
        "cluster": _without_defaults(inventory.cluster),
        "nodes": [_node_document(node) for node in inventory.nodes],
    }
    header = "# lhsoak inventory: see the lhsoak README, section 'Inventory'\n"
    return header + yaml.safe_dump(document, sort_keys=False, default_flow_style=False)


def dump(inventory: Inventory, path: Path | str) -> None:
    """Write the inventory to `path` (replaced atomically) in the format `load` reads.

    Paths are written as they are; `load` reads relative ones relative to the file, so give absolute ones.
    """
    target = Path(path)
    partial = target.with_name(f".{target.name}.{os.getpid()}.partial")
    try:
        partial.write_text(dumps(inventory), encoding="utf-8")
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def _node_document(node: Node) -> dict[str, Any]:
    document: dict[str, Any] = {"name": node.name, "role": node.role}
    for kind in DRIVER_KINDS:
        target = getattr(node, kind)
        if target is not None:
            document[kind] = _without_defaults(target)
    return document


def _without_defaults(target: object) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for spec in fields(cast(Any, target)):
        value = getattr(target, spec.name)
        if value is None or value == spec.default:
            continue
        document[spec.name] = str(value) if isinstance(value, Path) else value
    return document


# --- validation ------------------------------------------------------------------------------

_T = TypeVar("_T")


class _Section:
    """One YAML mapping being validated: unknown keys rejected up front, then typed reads."""

    def __init__(
        self,
        raw: object,
        *,
        source: Path,
        expected: tuple[str, ...],
        node: str = "",
        path: str = "",
    ) -> None:
        self.source = source
        self.node = node
        self.path = path
        self.expected = expected
        if not isinstance(raw, Mapping):
            raise self.error(f"must be a mapping, got {_describe(raw)}")
        self._raw: dict[str, object] = {str(key): value for key, value in raw.items()}
        self._reject_unknown_keys()

    def error(self, problem: str, *, key: str | None = None) -> errors.UsageError:
        """The one-line error naming the file, the node and the field."""
        field_path = ".".join(part for part in (self.path, key) if part)
        label = ": ".join(part for part in (str(self.source), self.node, field_path) if part)
        return errors.UsageError(f"{label}: {problem}")

    def has(self, key: str) -> bool:
        return key in self._raw

    def take(self, key: str, *, required: bool = False) -> object:
        if key not in self._raw:
            if required:
                raise self.error("is required", key=key)
            return None
        return self._raw[key]

    def section(self, key: str, *, expected: tuple[str, ...]) -> _Section | None:
        raw = self.take(key)
        if raw is None and not self.has(key):
            return None
        path = f"{self.path}.{key}" if self.path else key
        return _Section(raw, source=self.source, expected=expected, node=self.node, path=path)

    def text(self, key: str) -> str | None:
        value = self.take(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.error(f"must be a non-empty string, got {_describe(value)}", key=key)
        return value

    def required_text(self, key: str) -> str:
        value = self.text(key)
        if value is None:
            raise self.error("is required", key=key)
        return value

    def flag(self, key: str, *, default: bool) -> bool:
        value = self.take(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(f"must be true or false, got {_describe(value)}", key=key)
        return value

    def choice(self, key: str, choices: tuple[_T, ...], *, default: _T) -> _T:
        value = self.take(key)
        if value is None:
            return default
        for choice in choices:
            if value == choice:
                return choice
        allowed = " | ".join(str(choice) for choice in choices)
        raise self.error(f"must be one of {allowed}, got {_describe(value)}", key=key)

    def port(self, key: str, *, default: int) -> int:
        value = self.take(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            raise self.error(f"must be an integer 1-65535, got {_describe(value)}", key=key)
        return value

    def file_path(self, key: str) -> Path | None:
        value = self.text(key)
        if value is None:
            return None
        resolved = Path(value).expanduser()
        if not resolved.is_absolute():
            resolved = self.source.parent / resolved
        return resolved

    def readable_file(self, key: str, *, what: str) -> Path | None:
        path = self.file_path(key)
        if path is None:
            return None
        if not path.exists():
            raise self.error(f"{what} {path} does not exist", key=key)
        if not path.is_file():
            raise self.error(f"{what} {path} is not a file", key=key)
        try:
            # Opened, never read: a key's contents stay out of this process until ssh needs them.
            with path.open("rb"):
                pass
        except OSError as error:
            raise self.error(f"{what} {path} is not readable: {error.strerror}", key=key) from None
        return path

    def _reject_unknown_keys(self) -> None:
        """A typo must not silently drop a setting, nor hide behind a "required" error."""
        unknown = sorted(key for key in self._raw if key not in self.expected)
        if not unknown:
            return
        hint = difflib.get_close_matches(unknown[0], self.expected, n=1)
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
        raise self.error(f"unknown key {unknown[0]!r}{suggestion}; known keys: {', '.join(self.expected)}")


def _describe(value: object) -> str:
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "nothing"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


def _keys_of(cls: type) -> tuple[str, ...]:
    return tuple(spec.name for spec in fields(cls))


def _parse_cluster(section: _Section) -> ClusterTarget:
    return ClusterTarget(context=section.required_text("context"), kubeconfig=section.file_path("kubeconfig"))


def _parse_node(raw: object, *, index: int, source: Path) -> Node:
    name = raw.get("name") if isinstance(raw, Mapping) else None
    label = f"node {name!r}" if isinstance(name, str) and name else f"nodes[{index}]"
    expected = ("name", "role", *DRIVER_KINDS)
    section = _Section(raw, source=source, expected=expected, node=label)
    node_name = section.required_text("name")
    if len(node_name) > 253 or not _NODE_NAME.match(node_name):
        raise section.error(f"is not a valid Kubernetes node name: {node_name!r}", key="name")
    role = section.choice("role", ROLES, default=None)
    if role is None:
        raise section.error(f"is required: {' | '.join(ROLES)}", key="role")
    powers = [kind for kind in POWER_DRIVERS if section.has(kind)]
    if len(powers) > 1:
        raise section.error(
            f"has two power drivers ({' and '.join(powers)}): give exactly one; "
            "ssh may go beside it to read the boot id"
        )
    if not powers and not section.has("ssh"):
        raise section.error(f"has no driver: give one of {', '.join(DRIVER_KINDS)}")
    return Node(
        name=node_name,
        role=role,
        ssh=_parse_ssh(section.section("ssh", expected=_keys_of(SshAccess))),
        aws=_parse_aws(section.section("aws", expected=_keys_of(AwsTarget))),
        gcp=_parse_gcp(section.section("gcp", expected=_keys_of(GcpTarget))),
        azure=_parse_azure(section.section("azure", expected=_keys_of(AzureTarget))),
        docker=_parse_docker(section.section("docker", expected=_keys_of(DockerTarget))),
        k3d=_parse_k3d(section.section("k3d", expected=_keys_of(K3dTarget))),
    )


def _parse_ssh(section: _Section | None) -> SshAccess | None:
    if section is None:
        return None
    if section.has("host_key") and section.has("known_hosts"):
        raise section.error("give host_key or known_hosts, not both")
    return SshAccess(
        host=section.required_text("host"),
        port=section.port("port", default=SshAccess.port),
        user=section.text("user"),
        key_file=section.readable_file("key_file", what="key file"),
        host_key=_host_key(section),
        known_hosts=section.readable_file("known_hosts", what="known_hosts file"),
        reboot_command=section.text("reboot_command") or SshAccess.reboot_command,
        sudo=section.flag("sudo", default=SshAccess.sudo),
    )


def _host_key(section: _Section) -> str | None:
    value = section.text("host_key")
    if value is None:
        return None
    words = value.split()
    if len(words) < 2 or words[0] not in _HOST_KEY_TYPES:
        raise section.error(
            "must be a public key line, 'ssh-ed25519 AAAA…' "
            f"(one of {', '.join(_HOST_KEY_TYPES)}), without a host name in front",
            key="host_key",
        )
    try:
        blob = base64.b64decode(words[1], validate=True)
    except (binascii.Error, ValueError):
        raise section.error("the key after the type is not valid base64", key="host_key") from None
    # The blob starts with its own type name (RFC 4253 section 6.6): catches a pasted mismatch.
    declared = words[0].encode()
    if blob[4 : 4 + len(declared)] != declared:
        raise section.error(f"the key data is not a {words[0]} key", key="host_key")
    return f"{words[0]} {words[1]}"


def _parse_aws(section: _Section | None) -> AwsTarget | None:
    if section is None:
        return None
    instance_id = section.text("instance_id")
    name_tag = section.text("name_tag")
    if (instance_id is None) == (name_tag is None):
        raise section.error("give exactly one of instance_id and name_tag")
    if instance_id is not None and not _INSTANCE_ID.match(instance_id):
        raise section.error(f"is not an EC2 instance id (i-…): {instance_id!r}", key="instance_id")
    endpoint_url = section.text("endpoint_url")
    if endpoint_url is not None and not endpoint_url.startswith(("http://", "https://")):
        raise section.error(f"must be an http(s) URL, got {endpoint_url!r}", key="endpoint_url")
    return AwsTarget(
        region=section.required_text("region"),
        instance_id=instance_id,
        name_tag=name_tag,
        endpoint_url=endpoint_url,
        profile=section.text("profile"),
        mode=section.choice("mode", get_args(AwsMode), default=AwsTarget.mode),
    )


def _parse_gcp(section: _Section | None) -> GcpTarget | None:
    if section is None:
        return None
    return GcpTarget(
        project=section.required_text("project"),
        zone=section.required_text("zone"),
        instance=section.required_text("instance"),
        mode=section.choice("mode", get_args(GcpMode), default=GcpTarget.mode),
        endpoint=_https_url(section, "endpoint"),
    )


def _parse_azure(section: _Section | None) -> AzureTarget | None:
    if section is None:
        return None
    return AzureTarget(
        subscription_id=section.required_text("subscription_id"),
        resource_group=section.required_text("resource_group"),
        vm_name=section.required_text("vm_name"),
        mode=section.choice("mode", get_args(AzureMode), default=AzureTarget.mode),
        endpoint=_https_url(section, "endpoint"),
    )


def _https_url(section: _Section, key: str) -> str | None:
    # Both SDKs send a bearer token to this URL: never over plain http (azure-core refuses it anyway).
    value = section.text(key)
    if value is not None and not value.startswith("https://"):
        raise section.error(f"must be an https URL, got {value!r}", key=key)
    return value


def _parse_docker(section: _Section | None) -> DockerTarget | None:
    if section is None:
        return None
    return DockerTarget(container=section.required_text("container"), base_url=section.text("base_url"))


def _parse_k3d(section: _Section | None) -> K3dTarget | None:
    if section is None:
        return None
    return K3dTarget(
        node=section.required_text("node"),
        binary=section.text("binary") or K3dTarget.binary,
    )
