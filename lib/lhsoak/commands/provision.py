"""`lhsoak provision nightly|up|down --provider kind|k3d`: a throwaway cluster with Longhorn.

`nightly` builds the cluster, waits until Longhorn is really ready, runs the soak with the nightly
plan, builds the Allure report and deletes the cluster (also on failure, SIGINT and SIGTERM). `up`
stops after writing the kubeconfig and inventory and leaves the cluster running; `down` deletes it.
Soak options after `--` replace the nightly plan's options of the same name.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lhsoak import errors
from lhsoak.provision import nightly, providers
from lhsoak.provision.process import ProvisionError, Runner

NAME = "provision"
HELP = "create a kind or k3d cluster with Longhorn, run the nightly soak on it, delete it"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="provision_action", metavar="ACTION", required=True)
    night = actions.add_parser("nightly", help="provision, soak, report, delete (the CI nightly)")
    _common(night)
    night.add_argument("--run-id", default=None, help="the soak's run id (default nightly-<provider>-<time>)")
    night.add_argument(
        "--history", type=Path, default=None, help="an earlier HTML report whose history/ to carry"
    )
    night.add_argument("soak_args", nargs=argparse.REMAINDER, help="-- then soak options")
    up = actions.add_parser("up", help="provision and leave the cluster running (kubeconfig, inventory)")
    _common(up)
    down = actions.add_parser("down", help="delete a cluster made by `up`")
    down.add_argument("--provider", choices=providers.PROVIDERS, required=True, help="kind or k3d")
    down.add_argument("--cluster-name", default=nightly.DEFAULT_CLUSTER, help="cluster name")
    down.add_argument("--reports-dir", type=Path, default=Path("reports"), help="default reports")


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--provider", choices=providers.PROVIDERS, required=True, help="kind or k3d")
    parser.add_argument(
        "--cluster-name", default=nightly.DEFAULT_CLUSTER, help=f"default {nightly.DEFAULT_CLUSTER}"
    )
    parser.add_argument("--reports-dir", type=Path, default=Path("reports"), help="default reports")
    parser.add_argument("--no-build", action="store_true", help="use the node image built before")
    parser.add_argument(
        "--skip-host-check", action="store_true", help="start even without the iscsi_tcp module"
    )
    parser.add_argument(
        "--keep-cluster", action="store_true", help="never delete the cluster, even after a failure"
    )


def _say(text: str) -> None:
    print(f"[lhsoak provision] {text}", flush=True)


def _config(args: argparse.Namespace) -> nightly.NightlyConfig:
    is_nightly = args.provision_action == "nightly"
    repo = Path.cwd()
    if not (repo / "infra" / args.provider).is_dir():
        raise errors.UsageError(f"{repo / 'infra' / args.provider} not found: run from the lhsoak checkout")
    return nightly.NightlyConfig(
        provider=args.provider,
        repo=repo,
        run_id=(getattr(args, "run_id", None) or nightly.default_run_id(args.provider)),
        cluster=args.cluster_name,
        reports_dir=args.reports_dir,
        soak=is_nightly,
        keep_cluster=args.keep_cluster,
        build_image=not args.no_build,
        check_host=not args.skip_host_check,
        history=args.history if is_nightly else None,
        soak_args=tuple(arg for arg in (args.soak_args if is_nightly else []) if arg != "--"),
    )


def run(args: argparse.Namespace) -> int:
    runner = Runner(say=_say)
    try:
        if args.provision_action == "down":
            return _down(args, runner)
        return nightly.Nightly(_config(args), say=_say, runner=runner).run()
    except ProvisionError as error:
        print(f"lhsoak provision: {error}", file=sys.stderr)
        return errors.EXIT_FAILED


def _down(args: argparse.Namespace, runner: Runner) -> int:
    work = args.reports_dir / "provision" / args.cluster_name
    provider = providers.make(
        args.provider, cluster=args.cluster_name, infra=Path.cwd() / "infra", kubeconfig=work / "kubeconfig"
    )
    runner.run(provider.delete())
    _say(f"cluster {args.cluster_name} deleted")
    return errors.EXIT_PASSED
