"""`lhsoak lab up|down`: the built-in lab cluster, for tests, demos and `make soak` without a cluster."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path

from lhsoak import errors

NAME = "lab"
HELP = "start or stop the built-in lab cluster (a local stand-in for a Longhorn cluster)"
DEFAULT_STATE_DIR = Path(".lab")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="lab_action", metavar="ACTION", required=True)
    up = actions.add_parser("up", help="start a lab; writes DIR/kubeconfig and DIR/inventory.yaml")
    up.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="lab files (default .lab)")
    up.add_argument("--control-planes", type=int, default=1, help="control-plane nodes (default 1)")
    up.add_argument("--workers", type=int, default=3, help="worker nodes (default 3)")
    up.add_argument("--profile", default="healthy", help="fault profile (default healthy)")
    up.add_argument("--seed", type=int, default=0, help="seed of the lab's jitter (default 0)")
    cloud = up.add_mutually_exclusive_group()
    cloud.add_argument("--ec2", action="store_true", help="also serve an EC2 endpoint (needs the dev extra)")
    cloud.add_argument(
        "--gce",
        action="store_true",
        help="also serve a Compute Engine endpoint; credentials in DIR/cloud.env",
    )
    cloud.add_argument(
        "--azure",
        action="store_true",
        help="also serve an Azure Resource Manager; credentials in DIR/cloud.env",
    )
    up.add_argument(
        "--crds", type=Path, default=None, help="Longhorn CRDs YAML to serve and validate against"
    )
    up.add_argument("--detach", action="store_true", help="start in the background and return when ready")
    down = actions.add_parser("down", help="stop the lab started from DIR")
    down.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR, help="lab files (default .lab)")


def run(args: argparse.Namespace) -> int:
    if args.lab_action == "down":
        return _down(args.state_dir)
    _check_shape(args)
    _tell_about_crds(args)
    if args.detach:
        return _detach(args)
    return _foreground(args)


def _tell_about_crds(args: argparse.Namespace) -> None:
    from lhsoak.lab import cluster

    if args.crds is not None and not args.crds.is_file():
        raise errors.UsageError(f"--crds {args.crds}: no such file")
    found = cluster.default_crd_path()
    if args.crds is None and found is not None and not found.is_file():
        raise errors.UsageError(f"LHSOAK_LAB_CRDS={found}: no such file")
    if args.crds is None and found is None:
        # A clone without ../shared: the lab still works, but a kubectl user would wonder why.
        print(
            "lab up: no Longhorn CRDs found (../shared/longhorn/crds-v1.12.1.yaml, LHSOAK_LAB_CRDS or "
            "--crds): Longhorn objects are not validated against their schemas and kubectl shows "
            "only NAME and AGE for them",
            file=sys.stderr,
        )


def _check_shape(args: argparse.Namespace) -> None:
    from lhsoak.lab import profiles

    if args.control_planes < 1 or args.workers < 1:
        raise errors.UsageError("a lab needs at least 1 control-plane node and 1 worker")
    profiles.get(args.profile)  # UsageError naming the known profiles


def _detach(args: argparse.Namespace) -> int:
    from lhsoak.lab.process import LabProcess, LabStartError

    try:
        lab = LabProcess.start(
            state_dir=args.state_dir,
            profile=args.profile,
            workers=args.workers,
            control_planes=args.control_planes,
            seed=args.seed,
            ec2=args.ec2,
            gce=args.gce,
            azure=args.azure,
            crds=args.crds,
        )
    except LabStartError as error:
        raise errors.UsageError(str(error)) from None
    credentials = f"; cloud credentials: set -a; . {lab.cloud_env}" if lab.cloud_env else ""
    print(
        f"lab up (pid {lab.pid}): export KUBECONFIG={lab.kubeconfig}; inventory {lab.inventory}{credentials}"
    )
    return 0


def _down(state_dir: Path) -> int:
    from lhsoak.lab import process

    pid = process.running_lab(state_dir)
    process.stop_pid(pid, deadline_s=20)
    (state_dir / process.PID_FILE).unlink(missing_ok=True)
    (state_dir / process.READY_FILE).unlink(missing_ok=True)
    print(f"lab down (pid {pid})")
    return 0


def _foreground(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(_serve(args))


async def _serve(args: argparse.Namespace) -> int:
    from lhsoak.lab import cluster, process, profiles

    state_dir: Path = args.state_dir
    spec = cluster.LabSpec(
        state_dir=state_dir,
        profile=profiles.get(args.profile, seed=args.seed),
        control_planes=args.control_planes,
        workers=args.workers,
        crd_path=args.crds or cluster.default_crd_path(),
        ec2=args.ec2,
        gce=args.gce,
        azure=args.azure,
    )
    lab = cluster.LabCluster(spec)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await lab.start()
    # ready.json means what a user expects of a cluster: Longhorn's managers Running, nodes Ready.
    await lab.settled()
    ready = {
        "kubeconfig": str(lab.kubeconfig_path.resolve()),
        "inventory": str(lab.inventory_path.resolve()),
        "context": cluster.CONTEXT,
        "profile": args.profile,
    }
    if lab.ec2 is not None:
        ready["ec2_url"] = lab.ec2.url
    if lab.gce is not None:
        ready["gce_url"] = lab.gce.url
    if lab.azure is not None:
        ready["azure_url"] = lab.azure.url
    if lab.cloud_env_path.exists():
        ready["cloud_env"] = str(lab.cloud_env_path.resolve())
    (state_dir / process.PID_FILE).write_text(f"{os.getpid()}\n")
    (state_dir / process.READY_FILE).write_text(json.dumps(ready, indent=2) + "\n")
    credentials = f"; cloud credentials: set -a; . {ready['cloud_env']}" if "cloud_env" in ready else ""
    print(
        f"lab up: export KUBECONFIG={ready['kubeconfig']}; inventory {ready['inventory']}{credentials}",
        flush=True,
    )
    try:
        await stop.wait()
    finally:
        await lab.stop()
        (state_dir / process.PID_FILE).unlink(missing_ok=True)
        (state_dir / process.READY_FILE).unlink(missing_ok=True)
    return 0
