"""`lhsoak soak`: run a soak suite against a cluster, or against the built-in lab when none is given.

With no `--kubeconfig`/`--inventory` it starts a lab (compressed schedules: seconds, not minutes), runs the
suite against it exactly as against a real cluster, and stops the lab. Extra arguments after `--` go to
pytest (and so to the suite's options: `--plan`, `--iterations`, `--phase`, …).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

from lhsoak import cluster, errors, inventory, pytest_plugin, schedule

NAME = "soak"
HELP = "run a soak suite against a cluster (the built-in lab when none is given)"

SUITES = ("soak", "smoke", "regression")

# A compressed schedule for the lab: the same scenario in seconds. Every value can be overridden after `--`.
LAB_DEFAULTS = (
    "--allow-seconds-cron",
    "--cron=*/4 * * * * *",
    "--lag-bound=8",
    "--settle=4",
    "--down-deadline=30",
    "--ready-deadline=60",
    "--health-deadline=60",
    "--probe-interval=0.2",
    "--iterations=3",
    # Reboot while a backup runs: where the upstream bugs bite (a healthy cluster recovers anyway).
    "--phase=during-backup",
)


# Each bug profile's own scenario: longhorn#9168 needs the backup's node to reboot while the job pod,
# elsewhere, survives — a full-cluster restart restarts the pod too, and the next backup completes.
PROFILE_SCENARIOS: dict[str, tuple[str, ...]] = {
    "stuck-backup": ("--plan=backup-node", "--phase=any"),
    # The outage alone, with no reboot to excuse the ticks it fails: watched for four ticks.
    "backup-target-down": ("--plan=none", "--iterations=0", "--ticks-after=4"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kubeconfig", type=Path, help="target cluster (default: start the built-in lab)")
    parser.add_argument("--inventory", type=Path, help="inventory of the target cluster's nodes")
    parser.add_argument("--suite", choices=SUITES, default="soak", help="which suite (default soak)")
    parser.add_argument("--lab-profile", default="healthy", help="lab fault profile (default healthy)")
    parser.add_argument("--lab-workers", type=int, default=3, help="lab worker nodes (default 3)")
    parser.add_argument("--lab-seed", type=int, default=0, help="lab jitter seed (default 0)")
    parser.add_argument("--reports-dir", type=Path, default=Path("reports"), help="output (default reports)")
    parser.add_argument("pytest_args", nargs=argparse.REMAINDER, help="-- then pytest / suite options")


def _suite_path(suite: str) -> Path:
    here = Path.cwd() / "suites" / suite
    if not here.is_dir():
        raise errors.UsageError(f"suite directory {here} not found: run from the lhsoak checkout")
    return here


# pytest's exit codes → lhsoak's (README: 0 passed, 1 failed, 2 bad input, 130 interrupted).
_PYTEST_USAGE_ERROR = 4
_PYTEST_NO_TESTS = 5


def _pytest(args: list[str]) -> int:
    """Run the suite in a child pytest; SIGINT/SIGTERM are passed on so the suite restores the cluster."""
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args]
    process = subprocess.Popen(command)
    signalled: list[int] = []

    def forward(signum: int, _frame: object) -> None:
        signalled.append(signum)
        process.send_signal(signum)

    previous = {signum: signal.signal(signum, forward) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        # The suite handles the signal itself: it stops rebooting, restores, ends the ledger, exits.
        return exit_code(process.wait(), interrupted=bool(signalled))
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def exit_code(pytest_code: int, *, interrupted: bool) -> int:
    """lhsoak's exit code for a suite run that pytest ended with `pytest_code`."""
    if interrupted and pytest_code != errors.EXIT_PASSED:
        return errors.EXIT_INTERRUPTED
    if pytest_code in (_PYTEST_USAGE_ERROR, _PYTEST_NO_TESTS):
        return errors.EXIT_USAGE  # a bad option value, or a selection that matches nothing
    return pytest_code  # 0, 1, 2 (the suite's own usage exit), 3 (a harness error)


def run(args: argparse.Namespace) -> int:
    extra = [arg for arg in args.pytest_args if arg != "--"]
    suite = str(_suite_path(args.suite))
    run_id = _option(extra, "--run-id") or pytest_plugin.new_run_id()
    args.reports_dir = Path(_option(extra, "--reports-dir") or args.reports_dir)
    run_dir = args.reports_dir / run_id
    base = [
        suite,
        "-v",
        # On CI (CI set) pytest repeats every whole failure message in its short summary; the
        # soak's cause already closes the run, so one line per failed test is enough there.
        "--force-short-summary",
        f"--reports-dir={args.reports_dir}",
        f"--run-id={run_id}",
        f"--alluredir={run_dir / 'allure-results'}",
        f"--junitxml={run_dir / 'junit.xml'}",
        "-o",
        "junit_logging=system-out",
    ]
    extra = [arg for arg in extra if not arg.startswith(("--run-id", "--reports-dir"))]
    if args.suite == "smoke" and "--plan" not in _given(extra):
        extra = ["--plan=none", *extra]  # the smoke suite reboots nothing: it needs no node drivers
    if args.kubeconfig or args.inventory:
        kubeconfig = args.kubeconfig or os.environ.get("KUBECONFIG")
        _check_target(
            kubeconfig=Path(kubeconfig) if kubeconfig else None, inventory_path=args.inventory, extra=extra
        )
        _check_crons(extra, seconds_allowed="--allow-seconds-cron" in extra)
        target = [f"--kubeconfig={kubeconfig}"] if kubeconfig else []
        if args.inventory:
            target.append(f"--inventory={args.inventory}")
        return _pytest([*base, *target, *extra])
    return _run_on_lab(args, base, extra)


def _run_on_lab(args: argparse.Namespace, base: list[str], extra: list[str]) -> int:
    # The lab is only imported when it is used.
    from lhsoak.lab import process as lab_process
    from lhsoak.lab import profiles as lab_profiles

    lab_profiles.get(args.lab_profile)  # an unknown profile is bad input: refused before any lab starts
    _check_crons(extra)
    state_dir = args.reports_dir / "labs" / _option(base, "--run-id")
    print(f"lhsoak soak: starting the built-in lab (profile {args.lab_profile}) in {state_dir}", flush=True)
    lab = lab_process.LabProcess.start(
        state_dir=state_dir, profile=args.lab_profile, workers=args.lab_workers, seed=args.lab_seed
    )
    try:
        target = [
            f"--kubeconfig={lab.kubeconfig}",
            f"--inventory={lab.inventory}",
            f"--allow-context={lab.context}",
            f"--env=profile={args.lab_profile}",
        ]
        return _pytest([*base, *target, *lab_defaults(args.lab_profile, extra), *extra])
    finally:
        lab.stop()
        print("lhsoak soak: lab stopped", flush=True)


def _check_crons(extra: list[str], *, seconds_allowed: bool = True) -> None:
    """Crons given after `--` are checked before a lab (or pytest) is started for nothing."""
    for name in ("--cron", "--snapshot-cron", "--backup-cron"):
        cron = _option(extra, name)
        if not cron:
            continue
        try:
            schedule.parse(cron)
        except schedule.ScheduleError as error:
            raise errors.UsageError(f"{name}: {error}") from None
        if len(cron.split()) == 6 and not seconds_allowed:
            raise errors.UsageError(
                f"{name}: {cron!r} has a seconds field, which only the lab understands "
                "(Longhorn's CronJobs take 5 fields); pass --allow-seconds-cron to use it anyway"
            )


def _check_target(*, kubeconfig: Path | None, inventory_path: Path | None, extra: list[str]) -> None:
    """The kubeconfig, its context and the inventory, checked before pytest starts: bad input is one
    line and leaves no report directory behind (the suite checks them again, for its own callers)."""
    allowed = _values(extra, "--allow-context")
    given_after = _option(extra, "--inventory")
    inventory_path = inventory_path or (Path(given_after) if given_after else None)
    if inventory_path is not None:
        allowed.append(inventory.load(inventory_path).cluster.context)
    cluster.allowed_context(
        kubeconfig=kubeconfig, context=_option(extra, "--context") or None, allowed=tuple(allowed)
    )


def _values(arguments: list[str], name: str) -> list[str]:
    """Every value of a repeatable option, given as `NAME=V` or `NAME V`."""
    values = []
    for index, argument in enumerate(arguments):
        if argument.startswith(f"{name}="):
            values.append(argument.split("=", 1)[1])
        elif argument == name and index + 1 < len(arguments):
            values.append(arguments[index + 1])
    return values


def _option(arguments: list[str], name: str) -> str:
    for argument in arguments:
        if argument.startswith(f"{name}="):
            return argument.split("=", 1)[1]
    return ""


def lab_defaults(profile: str, extra: list[str]) -> list[str]:
    """The suite options a lab soak adds: LAB_DEFAULTS, then the profile's scenario, each unless
    the user gave that option."""
    chosen = {flag.split("=", 1)[0]: flag for flag in (*LAB_DEFAULTS, *PROFILE_SCENARIOS.get(profile, ()))}
    given = _given(extra)
    if "--duration" in given:
        given.add("--iterations")  # a duration the user asks for is not cut to the lab's 3 steps
    return [flag for name, flag in chosen.items() if name not in given]


def _given(extra: list[str]) -> set[str]:
    return {arg.split("=", 1)[0] for arg in extra if arg.startswith("--")}
