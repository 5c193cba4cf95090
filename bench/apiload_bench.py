"""API load: requests per minute the recorder puts on the API server, against 1-second polling.

One healthy lab, the soak's two volumes and two recurring jobs (every 4 s, as `make soak` runs the
lab). Three phases, one after the other, each read from the lab's own `apiserver_request_total`
counters (resource requests only; a WATCH counts when it ends, so each phase is read once every
watch has ended):
- the recorder alone for 30 s, then for 90 s (3× the ticks): list + watch of the 10 resources it
  follows, re-watching when the server ends a watch (the recorder asks for 60 s watches);
- a polling baseline doing the same job the naive way: every 1 s, LIST the same 10 resources in the
  same namespaces, for 30 s (its rate does not depend on the duration: one round per second).
Goal: the recorder's requests do not grow with the ticks, and are at least 20× fewer than polling.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench import _lab
from lhsoak import config, ledger, longhorn, recorder
from lhsoak.lab.process import LabProcess

CRON = "*/4 * * * * *"
RECORDER_DURATIONS_S = (30.0, 90.0)
POLLING_DURATION_S = 30.0
POLL_PERIOD_S = 1.0


def run() -> dict[str, object]:
    _lab.quiet_library_logs()
    with _lab.running_lab() as lab, tempfile.TemporaryDirectory(prefix="lhsoak-apiload-") as tmp:
        soak = config.Soak(
            run_id="bench-apiload",
            jobs=config.default_jobs(CRON),
            volume_mode="volume",
            reports_dir=Path(tmp),
            allow_seconds_cron=True,
        )
        api = _lab.connect(lab)
        setup = longhorn.Setup(api, soak, on_step=lambda _text: None)
        setup.apply()
        api.close()
        counters = _lab.ApiCounters(lab.kubeconfig)
        phases: dict[str, dict[str, Any]] = {}
        for duration_s in RECORDER_DURATIONS_S:
            _lab.say(f"recorder alone for {duration_s:.0f}s")
            phases[f"recorder_{duration_s:.0f}s"] = _recorder_phase(
                lab, soak, setup.volumes, counters, duration_s=duration_s, ledger_dir=Path(tmp)
            )
        _lab.say(f"1-second polling for {POLLING_DURATION_S:.0f}s")
        phases[f"polling_{POLLING_DURATION_S:.0f}s"] = _polling_phase(
            lab, counters, duration_s=POLLING_DURATION_S
        )
    return _compare(phases)


def _recorder_phase(
    lab: LabProcess,
    soak: config.Soak,
    volumes: list[str],
    counters: _lab.ApiCounters,
    *,
    duration_s: float,
    ledger_dir: Path,
) -> dict[str, Any]:
    before = counters.read_when_no_watch_is_open()
    api = _lab.connect(lab)
    path = ledger_dir / f"recorder-{duration_s:.0f}s.jsonl"
    writer = _lab.open_ledger(
        path,
        run_id=soak.run_id,
        jobs=soak.jobs,
        volumes=volumes,
        lag_bound_s=soak.lag_bound_s,
        settle_s=soak.settle_s,
    )
    rec = recorder.Recorder(api, writer, jobs={job.name: job.task for job in soak.jobs}, volumes=volumes)
    started_s = time.time()
    rec.start()
    rec.wait_synced(deadline_s=30)
    # Waiting for time itself: the recorder works on its threads meanwhile.
    threading.Event().wait(max(0.0, started_s + duration_s - time.time()))
    rec.stop()
    stopped_s = time.time()
    writer.close()
    api.close()
    delta = counters.read_when_no_watch_is_open().minus(before)
    _check_same_resources(delta)
    written = ledger.read(path)
    return _phase_figures(delta, seconds=stopped_s - started_s, ticks=_ticks(started_s, stopped_s)) | {
        "artifacts_recorded": len({fire.object for fire in written.fires}),
        "blind_records": len(written.blinds),
    }


def _polling_phase(lab: LabProcess, counters: _lab.ApiCounters, *, duration_s: float) -> dict[str, Any]:
    before = counters.read_when_no_watch_is_open()
    api = _lab.connect(lab)
    timer = threading.Event()  # never set: its wait paces the rounds
    started_s = next_round_s = time.time()
    rounds = 0
    while next_round_s < started_s + duration_s:
        timer.wait(max(0.0, next_round_s - time.time()))
        for resource in _lab.WATCHED:
            api.list(resource, namespace=None if not resource.namespaced else config.LONGHORN_NAMESPACE)
        rounds += 1
        next_round_s += POLL_PERIOD_S
    timer.wait(max(0.0, started_s + duration_s - time.time()))
    stopped_s = time.time()
    api.close()
    delta = counters.read_when_no_watch_is_open().minus(before)
    return _phase_figures(delta, seconds=stopped_s - started_s, ticks=_ticks(started_s, stopped_s)) | {
        "rounds": rounds
    }


def _check_same_resources(recorder_requests: Counter[_lab.RequestKey]) -> None:
    """The baseline must poll what the recorder watches: its LISTs name the same resources."""
    listed = {resource for verb, resource in recorder_requests if verb == "LIST"}
    polled = {resource.plural for resource in _lab.WATCHED}
    if listed != polled:
        raise RuntimeError(
            f"the recorder listed {sorted(listed)} but the baseline polls {sorted(polled)}: "
            "update _lab.WATCHED"
        )


def _phase_figures(delta: Counter[_lab.RequestKey], *, seconds: float, ticks: int) -> dict[str, Any]:
    total = sum(delta.values())
    by_verb: Counter[str] = Counter()
    for (verb, _resource), count in delta.items():
        by_verb[verb] += count
    return {
        "seconds": round(seconds, 1),
        "ticks": ticks,
        "requests": total,
        "by_verb": dict(sorted(by_verb.items())),
        "requests_per_min": round(60 * total / seconds, 1),
        "requests_per_tick": round(total / ticks, 2) if ticks else None,
    }


def _ticks(start_s: float, end_s: float) -> int:
    return _lab.ticks_between(CRON, start_s, end_s)


def _compare(phases: dict[str, dict[str, Any]]) -> dict[str, object]:
    short, long_ = (phases[f"recorder_{d:.0f}s"] for d in RECORDER_DURATIONS_S)
    polling = phases[f"polling_{POLLING_DURATION_S:.0f}s"]
    # The recorder's cost beyond its start-up lists: what each further minute of a soak adds.
    marginal_per_min = 60 * (long_["requests"] - short["requests"]) / (long_["seconds"] - short["seconds"])
    poll_rate = polling["requests_per_min"]
    return {
        **phases,
        "recorder_marginal_requests_per_min": round(marginal_per_min, 1),
        "polling_over_recorder_30s": round(poll_rate / short["requests_per_min"], 1),
        "polling_over_recorder_90s": round(poll_rate / long_["requests_per_min"], 1),
        "polling_over_recorder_marginal": round(poll_rate / marginal_per_min, 1)
        if marginal_per_min
        else None,
        "goal_flat_in_ticks": long_["requests_per_min"] <= short["requests_per_min"],
        "goal_20x_fewer_at_90s": poll_rate >= 20 * long_["requests_per_min"],
    }


if __name__ == "__main__":
    print(_lab.dumps(run()))
