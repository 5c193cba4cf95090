"""`lhsoak inventory init`: draft an inventory from a cluster's nodes, for the user to complete.

Reads the Node objects of the cluster the kubeconfig's context points at: names, roles
(control-plane when labelled so), the InternalIP as each node's ssh host, and, where the node's
providerID says so, its power driver (kind → docker, k3d → k3d, EC2/GCE/Azure → the cloud driver
with ssh beside it). The draft loads as it is; the comments say what to complete (ssh user, key,
host key). Written to --output (refusing to replace a file unless --force) or printed.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

from lhsoak import cluster, errors
from lhsoak.provision import draft

NAME = "inventory"
HELP = "draft an inventory from a cluster's nodes (`lhsoak inventory init`)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="inventory_action", metavar="ACTION", required=True)
    init = actions.add_parser("init", help="draft an inventory from the cluster's nodes")
    init.add_argument("--kubeconfig", type=Path, default=None, help="default $KUBECONFIG or ~/.kube/config")
    init.add_argument("--context", default=None, help="kube context (default: the current one)")
    init.add_argument(
        "--driver",
        choices=draft.DRAFT_DRIVERS,
        default="auto",
        help="reboot driver of every node (default auto: from each node's providerID, else ssh)",
    )
    init.add_argument("--docker-host", default=None, help="docker driver's engine address (default local)")
    init.add_argument("--output", "-o", type=Path, default=None, help="write here (default: print)")
    init.add_argument("--force", action="store_true", help="replace an existing --output file")


def _kubeconfig(given: Path | None) -> Path | None:
    if given is not None:
        return given.expanduser().absolute()
    from_env = os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    return Path(from_env).expanduser().absolute() if from_env else None


def _current_context(kubeconfig: Path | None) -> str:
    """The kubeconfig's current-context (reading only: this command asks for no other context)."""
    path = kubeconfig or Path("~/.kube/config").expanduser()
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as error:
        raise errors.UsageError(f"cannot read kubeconfig {path}: {error}") from None
    current = loaded.get("current-context") if isinstance(loaded, dict) else None
    if not current:
        raise errors.UsageError(f"kubeconfig {path} has no current context; pass --context")
    return str(current)


def run(args: argparse.Namespace) -> int:
    kubeconfig = _kubeconfig(args.kubeconfig)
    if args.output is not None and args.output.exists() and not args.force:
        raise errors.UsageError(f"{args.output} exists; pass --force to replace it")
    chosen = args.context or _current_context(kubeconfig)
    api = cluster.Cluster.connect(kubeconfig=kubeconfig, context=chosen, allowed=(chosen,))
    try:
        nodes = [draft.facts(node) for node in api.list(cluster.NODES).items]
    except cluster.ClusterError as error:
        raise errors.UsageError(f"cannot list the nodes of context {chosen}: {error}") from None
    finally:
        api.close()
    drafted = draft.draft(
        nodes, context=chosen, kubeconfig=kubeconfig, driver=args.driver, docker_base_url=args.docker_host
    )
    text = draft.render(drafted, source=f"context {chosen}")
    if args.output is None:
        sys.stdout.write(text)
        return errors.EXIT_PASSED
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    print(f"inventory drafted: {args.output} ({len(drafted.nodes)} nodes); complete it, then run the soak")
    return errors.EXIT_PASSED
