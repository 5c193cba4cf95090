"""The lhsoak pytest plugin: soak options, the `soak_run` fixture, one test per chaos step.

The suites under `suites/` use it; the library does the work (`lhsoak.soak`). Bad input ends the session
with exit code 2 before anything on the cluster is touched; a dry run prints the plan and exits 0.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import os
import re
import secrets
import signal
import sys
import threading
from collections.abc import Generator, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from lhsoak import config, diagnosis, errors, ledger, plan, report, schedule, soak

log = logging.getLogger("lhsoak")
_MAX_STEPS = 1000
_INTERRUPTED = pytest.StashKey[bool]()
_SESSION = pytest.StashKey["_SoakSession"]()
# pytest_keyboard_interrupt gets no config; keep the one pytest_configure saw.
_CONFIG: list[pytest.Config] = []


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("lhsoak", "Longhorn recurring-job soak")
    add = group.addoption
    add(
        "--kubeconfig",
        type=Path,
        default=None,
        help="kubeconfig of the target cluster (default: $KUBECONFIG)",
    )
    add("--context", default=None, help="kube context (default: the kubeconfig's current one)")
    add("--allow-context", action="append", default=[], help="a context the soak may use (repeatable)")
    add("--inventory", type=Path, default=None, help="inventory YAML: nodes, roles, how to reboot each")
    add("--insecure-host-keys", action="store_true", help="do not check SSH host keys (loudly)")
    add("--plan", default="cluster", choices=config.PLAN_KINDS, help="which nodes each step reboots")
    add("--iterations", type=int, default=None, help="chaos steps (default 3 unless --duration)")
    add("--duration", type=float, default=None, help="stop starting chaos steps after this many seconds")
    add("--pause", type=float, default=0.0, help="seconds between a step's recovery and the next step")
    add("--phase", default="any", choices=config.PHASES, help="when to reboot relative to the schedule")
    add("--seed", type=int, default=0, help="seed for random plans")
    add("--volumes", type=int, default=2, help="test volumes (default 2)")
    add(
        "--volume-mode",
        default="auto",
        choices=config.VOLUME_MODES,
        help="pvc + writer pod, or a bare volume",
    )
    add("--storage-class", default="longhorn", help="StorageClass of the test PVCs (default longhorn)")
    add("--writer-image", default="busybox:1.36", help="image of the writer pods (default busybox:1.36)")
    add("--cron", default="*/2 * * * *", help="cron of both recurring jobs (default */2 * * * *)")
    add("--snapshot-cron", default=None, help="cron of the snapshot job (default --cron)")
    add("--backup-cron", default=None, help="cron of the backup job (default --cron)")
    add(
        "--job-prefix",
        default="soak",
        help="the soak's RecurringJobs are PREFIX-snap and PREFIX-backup (default soak)",
    )
    add("--retain", type=int, default=1, help="retain count of both jobs (default 1)")
    add("--concurrency", type=int, default=1, help="concurrency of both jobs (default 1)")
    add("--lag-bound", type=float, default=120.0, help="seconds a tick's artifact may take (default 120)")
    add(
        "--settle",
        type=float,
        default=60.0,
        help="seconds after Ready that ticks are still excused (default 60)",
    )
    add("--ticks-after", type=int, default=2, help="ticks to watch after the last step (default 2)")
    add(
        "--health-deadline",
        type=float,
        default=300.0,
        help="seconds Longhorn may take to be healthy before the soak starts (default 300)",
    )
    add("--down-deadline", type=float, default=300.0, help="seconds a node may take to go down")
    add("--ready-deadline", type=float, default=900.0, help="seconds a node may take to be Ready again")
    add(
        "--probe-interval",
        type=float,
        default=2.0,
        help="seconds between SSH/cloud probes of a rebooting node",
    )
    add("--allow-seconds-cron", action="store_true", help="accept 6-field crons (seconds first): lab only")
    add("--run-id", default=None, help="run id (default: time-based)")
    add("--reports-dir", type=Path, default=Path("reports"), help="where <run-id>/ goes (default reports)")
    add("--keep", action="store_true", help="leave the soak's objects on the cluster")
    add("--keep-going", action="store_true", help="run every step even after one failed")
    add("--remediate", action="store_true", help="apply the documented workaround after a stall is recorded")
    add("--dry-run", action="store_true", help="print the plan and touch nothing")
    add("--env", action="append", default=[], metavar="KEY=VALUE", help="a fact for the report (repeatable)")
    add(
        "--progress-every",
        type=float,
        default=soak.PROGRESS_EVERY_S,
        help=f"seconds between progress lines of a long wait (default {soak.PROGRESS_EVERY_S:g})",
    )


def new_run_id() -> str:
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
    return f"soak-{stamp}-{secrets.token_hex(2)}"


# A RecurringJob's name becomes its CronJob's, which Kubernetes keeps to 52 characters (a Job name
# adds 11): a DNS-1123 label, so the longest, PREFIX-backup, leaves 45 for the prefix.
_JOB_PREFIX = re.compile(r"[a-z0-9]([a-z0-9-]{0,43}[a-z0-9])?")


def _job_names(prefix: str) -> tuple[str, str]:
    if not _JOB_PREFIX.fullmatch(prefix):
        raise errors.UsageError(
            f"--job-prefix {prefix!r}: lowercase letters, digits and '-', at most 45 characters, "
            "starting and ending with a letter or digit"
        )
    return f"{prefix}-snap", f"{prefix}-backup"


def _run_id(option: str | None) -> str:
    return option or new_run_id()


def _environment(pairs: list[str]) -> dict[str, str]:
    environment = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise errors.UsageError(f"--env wants KEY=VALUE, got {pair!r}")
        environment[key] = value
    return environment


def _positive(value: float, option: str) -> float:
    if not value > 0:
        raise errors.UsageError(f"{option} must be a positive number of seconds, got {value:g}")
    return value


def build_run(options: pytest.Config, *, progress: Any) -> soak.SoakRun:
    get = options.getoption
    cron: str = get("cron")
    snap, backup = _job_names(get("job_prefix"))
    jobs = (
        config.JobSpec(snap, "snapshot", get("snapshot_cron") or cron, get("retain"), get("concurrency")),
        config.JobSpec(backup, "backup", get("backup_cron") or cron, get("retain"), get("concurrency")),
    )
    kubeconfig = get("kubeconfig") or (
        Path(os.environ["KUBECONFIG"]) if os.environ.get("KUBECONFIG") else None
    )
    iterations = get("iterations")
    if iterations is None and get("duration") is None:
        iterations = 3
    return soak.SoakRun(
        soak=config.Soak(
            run_id=_run_id(get("run_id")),
            jobs=jobs,
            volumes=get("volumes"),
            volume_mode=get("volume_mode"),
            storage_class=get("storage_class"),
            writer_image=get("writer_image"),
            lag_bound_s=get("lag_bound"),
            settle_s=get("settle"),
            ticks_after_chaos=get("ticks_after"),
            health_deadline_s=get("health_deadline"),
            reports_dir=get("reports_dir"),
            keep=get("keep"),
            remediate=get("remediate"),
            allow_seconds_cron=get("allow_seconds_cron"),
        ),
        target=config.Target(
            kubeconfig=kubeconfig,
            context=get("context"),
            allowed_contexts=tuple(get("allow_context")),
            inventory=get("inventory"),
            insecure_host_keys=get("insecure_host_keys"),
        ),
        chaos=config.Plan(
            kind=get("plan"),
            iterations=iterations,
            duration_s=get("duration"),
            pause_s=get("pause"),
            phase=get("phase"),
            seed=get("seed"),
            down_deadline_s=get("down_deadline"),
            ready_deadline_s=get("ready_deadline"),
            poll_interval_s=get("probe_interval"),
        ),
        progress=progress,
        narrator=report.Narration(),
        progress_every_s=_positive(get("progress_every"), "--progress-every"),
        environment=_environment(get("env")),
    )


def _progress_writer(pytest_config: pytest.Config) -> Any:
    """Live progress on the terminal, past pytest's output capture (as its live logging does)."""
    reporter = pytest_config.pluginmanager.get_plugin("terminalreporter")
    capture = pytest_config.pluginmanager.get_plugin("capturemanager")
    lock = threading.Lock()

    def write(text: str) -> None:
        stamp = dt.datetime.now().strftime("%H:%M:%S")
        line = f"[lhsoak {stamp}] {text}"
        log.info("%s", text)
        with lock, capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
            if reporter is not None:
                reporter.write_line(line)
            else:
                print(line, file=sys.stderr, flush=True)

    return write


class _SoakSession:
    """Per-session state: the run, which step failed, and when chaos must stop."""

    def __init__(self, run: soak.SoakRun) -> None:
        self.run = run
        self.steps: list[plan.Step] = []
        self.failed_step: str | None = None
        self.chaos_started_s: float | None = None


def _interrupt(signum: int, _frame: FrameType | None) -> None:
    # SIGTERM ends the soak like Ctrl-C: pytest unwinds, fixture teardown restores the cluster.
    # The interrupt is recorded here, not only in pytest_keyboard_interrupt: a terminal's Ctrl-C
    # reaches both `lhsoak soak` and this pytest, which then gets a second SIGINT from lhsoak while
    # it is still unwinding from the first, and never calls that hook.
    config = _CONFIG[0] if _CONFIG else None
    if config is not None and config.stash.get(_INTERRUPTED, False):
        name = signal.Signals(signum).name
        os.write(2, f"lhsoak: {name}: already stopping, restoring the cluster first\n".encode())
        return
    if config is not None:
        config.stash[_INTERRUPTED] = True
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


@pytest.fixture(scope="session")
def soak_session(pytestconfig: pytest.Config) -> Iterator[_SoakSession]:
    progress = _progress_writer(pytestconfig)
    run = None
    try:
        run = build_run(pytestconfig, progress=progress)
        run.open()
    except errors.UsageError as error:
        if run is not None:
            run.teardown()
        pytest.exit(f"lhsoak: {error}", returncode=errors.EXIT_USAGE)
    except BaseException:
        if run is not None:
            run.teardown()
        raise
    session = _SoakSession(run)
    pytestconfig.stash[_SESSION] = session
    if pytestconfig.getoption("dry_run"):
        progress("dry run: nothing will be touched\n" + run.describe_plan())
        run.teardown()
        pytest.exit("dry run", returncode=0)
    # SIGINT too: a soak started in the background of a script inherits SIGINT ignored, and Python
    # then installs no Ctrl-C handler of its own — `kill -INT` would be silently dropped.
    previous = {signum: signal.signal(signum, _interrupt) for signum in (signal.SIGTERM, signal.SIGINT)}
    interrupted = False
    refused: errors.UsageError | None = None
    try:
        try:
            run.start()
            session.steps = run.steps()
        except errors.UsageError as error:
            # What only the cluster can tell (a RecurringJob of the soak's name that lhsoak did not
            # make): refused like bad input, after teardown has undone whatever set-up did.
            refused = error
        else:
            yield session
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        # pytest tears session fixtures down after an interrupt too; the stash says whether there was one.
        interrupted = interrupted or pytestconfig.stash.get(_INTERRUPTED, False)
        run.teardown(reason="interrupted" if interrupted else "error" if refused else "completed")
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    if refused is not None:
        pytest.exit(f"lhsoak: {refused}", returncode=errors.EXIT_USAGE)


@pytest.fixture(scope="session")
def soak_run(soak_session: _SoakSession) -> soak.SoakRun:
    return soak_session.run


def pytest_keyboard_interrupt(excinfo: pytest.ExceptionInfo[BaseException]) -> None:
    # pytest calls this for pytest.exit() too (the suite's own bad-input exit): not an interrupt.
    if _CONFIG and excinfo.errisinstance(KeyboardInterrupt):
        _CONFIG[0].stash[_INTERRUPTED] = True


# Set-up and tear-down in Allure: the soak's own fixture under these titles, the thin ones left out.
FIXTURE_TITLES = {
    "soak_session": (
        "set up the soak: cluster adopted, Longhorn healthy, recurring jobs configured",
        "tear down the soak: nodes up, recurring jobs restored, test objects removed unless --keep",
    ),
}


def pytest_configure(config: pytest.Config) -> None:
    _CONFIG[:] = [config]
    if getattr(config.option, "allure_report_dir", None):
        quiet = report.QuietFixtures(FIXTURE_TITLES)
        quiet.register()
        config.add_cleanup(quiet.unregister)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "soak_step_index" not in metafunc.fixturenames:
        return
    get = metafunc.config.getoption
    count = get("iterations")
    if count is None:
        duration_s = get("duration")
        count = 3 if duration_s is None else _steps_within(duration_s, metafunc.config)
    if get("plan") == "none":
        count = 0
    if count == 0:
        # Without it pytest reports an empty parametrization as "test_chaos_step[NOTSET] SKIPPED".
        no_steps = pytest.mark.skip(
            reason="no chaos step: the plan reboots no node (--plan=none or --iterations=0)"
        )
        metafunc.parametrize("soak_step_index", [pytest.param(0, id="no-steps", marks=no_steps)])
        return
    metafunc.parametrize(
        "soak_step_index", range(1, count + 1), ids=[f"step-{i:02d}" for i in range(1, count + 1)]
    )


def _steps_within(duration_s: float, config_: pytest.Config) -> int:
    """How many steps can start within `duration_s`: each waits for every job to fire again at a
    tick later than the previous step's, so the slowest job's period bounds how often they come.
    Collected as tests, the ones the duration leaves out are skipped; a bound keeps them few."""
    get = config_.getoption
    crons = [get("snapshot_cron") or get("cron"), get("backup_cron") or get("cron")]
    try:
        period_s = max(schedule.parse(cron).period_s for cron in crons)
    except ValueError:
        return _MAX_STEPS  # a bad cron is refused, with its reason, when the soak starts
    return min(_MAX_STEPS, math.ceil(duration_s / period_s) + 1)


def run_step(session: _SoakSession, index: int, *, keep_going: bool, clock: Any) -> plan.Step:
    """Run step `index` of the plan; skips when the plan is exhausted, its duration is up, or a step failed."""
    run = session.run
    if index > len(session.steps):
        pytest.skip(f"the plan has {len(session.steps)} steps")
    step = session.steps[index - 1]
    # Titled before any skip, so a step not run is listed under what it would have done.
    report.describe_test(run_id=run.soak.run_id, seed=run.chaos.seed, title=step.title)
    if session.failed_step and not keep_going:
        pytest.skip(f"not run: {session.failed_step} failed (use --keep-going to run every step)")
    duration = run.chaos.duration_s
    if session.chaos_started_s is None:
        session.chaos_started_s = clock()
    elif duration is not None and clock() - session.chaos_started_s >= duration:
        pytest.skip(f"the plan's duration of {duration:.0f}s is over")
    try:
        # The run tells its phases and evidence to the report as they happen (report.Narration).
        run.run_step(step)
    except soak.StepFailed as error:
        failure = str(error)
    else:
        return step
    session.failed_step = step.title
    # Outside the except block, so pytest shows the diagnosis once (no chained "During handling …"),
    # and without the harness's source lines, which would only bury it.
    pytest.fail(failure, pytrace=False)


@pytest.fixture(autouse=True)
def _describe_soak_test(request: pytest.FixtureRequest) -> None:
    """Run id and seed are parameters of every soak test, left out of Allure's history id."""
    if "soak_session" in request.fixturenames:
        session: _SoakSession = request.getfixturevalue("soak_session")
        report.describe_test(run_id=session.run.soak.run_id, seed=session.run.chaos.seed)


def assert_verdict(run: soak.SoakRun) -> None:
    """The final assessment: decide over the whole ledger, attach the evidence, fail with the cause."""
    findings = run.diagnose()
    result = run.finish()
    parsed = ledger.read(run.soak.run_dir / "ledger.jsonl")
    report.attach_run(
        run.soak.run_dir, result, findings, snapshot=run.last_snapshot, logs=run.last_logs or None
    )
    print(report.summary_text(result, parsed))
    if not result.passed:
        pytest.fail(report.failure_text(result, findings, parsed), pytrace=False)


def pytest_sessionfinish(session: pytest.Session) -> None:
    config_ = session.config
    if config_.stash.get(_INTERRUPTED, False):
        # pytest says 2 for an interrupt, which lhsoak means as bad input; 130 is the shell's Ctrl-C.
        session.exitstatus = errors.EXIT_INTERRUPTED
    soak_session = config_.stash.get(_SESSION, None)
    alluredir = getattr(config_.option, "allure_report_dir", None)
    if soak_session is None or not alluredir or hasattr(config_, "workerinput"):
        return
    ledger_path = soak_session.run.soak.run_dir / "ledger.jsonl"
    if not ledger_path.exists():
        return
    run_record = ledger.read(ledger_path).run
    report.write_allure_metadata(
        Path(alluredir), report.environment_from_run(run_record), report.executor_from_environ()
    )


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter: Any) -> Generator[None, None, None]:
    # The outermost wrapper writes after pytest's short test summary, so the cause closes the run
    # even where pytest prints whole failure messages there (on CI, or with -vv).
    result = yield
    _write_soak_summary(terminalreporter)
    return result


def _write_soak_summary(terminalreporter: Any) -> None:
    soak_session = terminalreporter.config.stash.get(_SESSION, None)
    if soak_session is None or soak_session.run.result is None:
        return
    run = soak_session.run
    terminalreporter.write_sep("=", "lhsoak")
    terminalreporter.write_line(report.headline(run.result))
    if not run.result.passed:
        for finding in run.findings():
            _write_finding(terminalreporter, finding)
    terminalreporter.write_line(f"ledger: {run.soak.run_dir / 'ledger.jsonl'}")
    terminalreporter.write_line(f"verdict: {run.soak.run_dir / 'verdict.json'}")


FINDING_DETAIL_LINES = 12
"""Lines of a finding's detail shown at the end of the run (all of it is in attachments/diagnosis.txt)."""


def _write_finding(terminalreporter: Any, finding: diagnosis.Finding) -> None:
    """Why, at the very end of the run: category, summary, evidence and the workaround."""
    terminalreporter.write_line(f"[{finding.category}] {finding.summary}", bold=True)
    lines = finding.detail.splitlines()
    for line in lines[:FINDING_DETAIL_LINES]:
        terminalreporter.write_line(f"  {line}")
    if len(lines) > FINDING_DETAIL_LINES:
        terminalreporter.write_line(
            f"  … ({len(lines) - FINDING_DETAIL_LINES} more lines in attachments/diagnosis.txt)"
        )
