"""Error backups' messages that differ only by generated names count as one message.

The messages below are worded as upstream writes them: longhorn-instance-manager's proxy client
prefixes "proxyServer=<ip>:8501 destination=<ip>:<port>:" and "failed to backup snapshot <snap> to
<backup>"; longhorn-engine "failed to create backup to <url> for volume <volume>"; backupstore's
lock "failed lock <file> type 1 acquisition" (Longhorn 1.7 and before, longhorn#7854) and "failed to
acquire lock <file> when performing backup create/restore, please try again later." (1.8 on,
longhorn#8713); longhorn-manager's backup monitor and backup controller the rest.
"""

import json
import uuid

import pytest

from lhsoak import diagnosis

from .conftest import only


def _old_lock(*, proxy: str, replica: str, snapshot: str, backup: str, volume: str, lock: str) -> str:
    return (
        f"proxyServer={proxy}:8501 destination={replica}:10000: failed to backup snapshot {snapshot} "
        f"to {backup}: rpc error: code = Unknown desc = failed to create backup to "
        f"s3://backupbucket@us-east-1/backupstore for volume {volume}: rpc error: code = Unknown desc = "
        f"failed lock backupstore/volumes/e2/eb/{volume}/locks/lock-{lock}.lck type 1 acquisition"
    )


def _new_lock(*, proxy: str, replica: str, snapshot: str, backup: str, volume: str, lock: str) -> str:
    return (
        f"proxyServer={proxy}:8501 destination={replica}:10000: failed to backup snapshot {snapshot} "
        f"to {backup}: rpc error: code = Unknown desc = failed to create backup to "
        f"s3://backupbucket@us-east-1/backupstore for volume {volume}: rpc error: code = Unknown desc = "
        f"failed to acquire lock backupstore/volumes/3c/a6/{volume}/locks/lock-{lock}.lck when "
        "performing backup create/restore, please try again later."
    )


def _lock_args(n: int, volume: str = "vol-yde769") -> dict[str, str]:
    """The names one run generates: a snapshot <job[:8]>-<uuid>, backup-/lock-<16 hex>, pod IPs."""
    return {
        "proxy": f"10.42.{n}.10",
        "replica": f"10.42.{n + 1}.72",
        "snapshot": f"vol-yde7-{uuid.UUID(int=n * 7919, version=4)}",
        "backup": f"backup-{n:016x}",
        "volume": volume,
        "lock": f"{n * 104729:016x}",
    }


SAME_MESSAGE_PAIRS = {
    "stale lock, Longhorn 1.7 (longhorn#7854)": (_old_lock(**_lock_args(1)), _old_lock(**_lock_args(2))),
    "stale lock, Longhorn 1.8 on (longhorn#8713)": (_new_lock(**_lock_args(3)), _new_lock(**_lock_args(4))),
    "backup status lost with the instance manager": tuple(
        f"proxyServer=10.42.{n}.15:8501 destination=10.42.{n}.15:10000: failed to get "
        f"backup-{n:016x} backup status: rpc error: code = Unavailable desc = connection error: desc = "
        f'"transport: Error while dialing: dial tcp 10.42.{n}.15:8501: connect: connection refused"'
        for n in (5, 6)
    ),
    "engine of a CSI volume never ready": tuple(
        f"Failed waiting for the engine pvc-{uuid.UUID(int=n, version=4)}-e-0 to be ready" for n in (7, 8)
    ),
    "S3 throttling, each request its own id": tuple(
        "failed to list objects with param: operation error S3: ListObjectsV2, https response error "
        f"StatusCode: 503, RequestID: {request}, HostID: {host}, api error SlowDown: Please reduce "
        "your request rate."
        for request, host in (
            ("7VPFQ0Q1JG3GMRJ8", "yZ3tHc6m0Bq1Jv5kqV+9n0Qk1ZyGk0W7Q2H4r7GdK1o="),
            ("4442587FB7D0A2F9", "Qx1mTn8wJ0u2c5A7bV3pL9eR4sD6fG8hK1jZ0xC2vB4="),
        )
    ),
    "expired certificate, each check its own time": tuple(
        'failed to list backup volumes in s3://lhsoak-backups@us-east-1/: Get "https://s3.lab:9000/": '
        f"tls: failed to verify certificate: x509: certificate has expired or is not yet valid: current "
        f"time {now} is after 2025-03-01T00:00:00Z"
        for now in ("2025-03-20T11:40:02Z", "2025-03-20T11:45:07Z")
    ),
}


@pytest.mark.parametrize(("first", "second"), SAME_MESSAGE_PAIRS.values(), ids=SAME_MESSAGE_PAIRS.keys())
def test_messages_that_differ_only_by_generated_names_share_a_pattern(first, second):
    assert first != second
    assert diagnosis.message_pattern(first) == diagnosis.message_pattern(second)


DIFFERENT_MESSAGES = {
    "the two lock wordings": (_old_lock(**_lock_args(1)), _new_lock(**_lock_args(1))),
    "a backup lock and a deletion lock": (
        "failed lock backupstore/volumes/e2/eb/v1/locks/lock-5242291888d04df6.lck type 1 acquisition",
        "failed lock backupstore/volumes/e2/eb/v1/locks/lock-5242291888d04df6.lck type 2 acquisition",
    ),
    "refused and timed out": (
        "failed to list backup volumes: dial tcp 52.216.0.1:443: connect: connection refused",
        "failed to list backup volumes: dial tcp 52.216.0.1:443: i/o timeout",
    ),
    "a lock and the target": (
        _old_lock(**_lock_args(1)),
        "failed to create backup to s3://backupbucket@us-east-1/backupstore for volume vol-yde769: "
        "backup target default is unavailable",
    ),
}


@pytest.mark.parametrize(("first", "second"), DIFFERENT_MESSAGES.values(), ids=DIFFERENT_MESSAGES.keys())
def test_messages_that_say_different_things_keep_apart(first, second):
    assert diagnosis.message_pattern(first) != diagnosis.message_pattern(second)


def test_an_objects_own_names_and_generated_parts_become_placeholders():
    text = _old_lock(**_lock_args(1, volume="soak-vol-1"))
    names = {
        "soak-vol-1": "<volume>",
        _lock_args(1)["snapshot"]: "<snapshot>",
        "backup-" + "0" * 15 + "1": "<backup>",
    }

    pattern = diagnosis.message_pattern(text, names=names)

    assert pattern == (
        "proxyServer=<ip> destination=<ip>: failed to backup snapshot <snapshot> to <backup>: rpc "
        "error: code = Unknown desc = failed to create backup to s3://backupbucket@us-east-1/backupstore "
        "for volume <volume>: rpc error: code = Unknown desc = failed lock "
        "backupstore/volumes/<id>/<volume>/locks/lock-<id>.lck type 1 acquisition"
    )


def test_names_are_replaced_only_as_whole_words_and_short_ones_not_at_all():
    text = "volume soak-vol-1 is not soak-vol-10; db and dbx stay"

    pattern = diagnosis.message_pattern(text, names={"soak-vol-1": "<volume>", "db": "<volume>"})

    assert pattern == "volume <volume> is not soak-vol-10; db and dbx stay"


def test_groups_count_each_message_keep_the_first_and_put_the_most_frequent_first(make):
    def failed(minute, error):
        return make.backup("soak-bak", "soak-vol-2", created=make.clock(minute), state="Error", error=error)

    engine = "Failed waiting for the engine soak-vol-2-e-0 to be ready"
    backups = [
        failed("11:00", engine),
        *_lock_backups(make, ["11:05", "11:10", "11:15"]),
        failed("11:20", engine),
    ]

    groups = diagnosis.group_backup_errors(backups)

    first_lock = backups[1]["status"]["error"]
    assert [(g.example, g.count, g.variants) for g in groups] == [(first_lock, 3, 3), (engine, 2, 1)]
    assert "<snapshot> to <backup>" in groups[0].pattern


def _lock_backups(make, minutes, *, volume="soak-vol-2", wording=_old_lock):
    """Error backups of soak-bak, each failed on a stale lock named after its own snapshot and backup."""
    backups = []
    for n, minute in enumerate(minutes, start=1):
        backup = make.backup("soak-bak", volume, created=make.clock(minute), state="Error")
        backup["status"]["error"] = wording(
            **_lock_args(n, volume=volume)
            | {"snapshot": backup["spec"]["snapshotName"], "backup": backup["metadata"]["name"]}
        )
        backups.append(backup)
    return backups


def test_error_backups_that_differ_by_names_are_one_error_with_a_count(world, make):
    backups = _lock_backups(make, ["11:00", "11:05", "11:10", "11:15", "11:20", "11:25", "11:30"])
    world.put(*backups)
    first = backups[0]["status"]["error"]

    finding = only(world.diagnose(stalled={"soak-bak"}), "error-backups-beyond-retain")

    errors_line = next(line for line in finding.detail.splitlines() if line.startswith("Errors: "))
    # One error said once, its first example clipped in the middle (past 400 characters).
    assert errors_line.startswith(f'Errors: ×7, e.g. "{first[:100]}')
    assert errors_line.endswith(f'{first[-100:]}"')
    assert errors_line.count(" e.g. ") == 1
    assert 'old: "proxyServer=10.42.1.10:8501 ' in finding.summary, "the first, with no count: all are it"
    assert finding.summary.endswith(f'{first[-60:]}" (longhorn#7854)')
    assert finding.data["errors"] == {first: 7}
    assert len(finding.data["error_patterns"]) == 1
    json.dumps(dict(finding.data))


def test_the_most_frequent_error_leads_even_when_no_two_texts_are_equal(world, make):
    # Before grouping, the two identical engine errors outnumbered each (unique) lock error.
    engine = "Failed waiting for the engine soak-vol-2-e-0 to be ready"
    world.put(
        *_lock_backups(make, ["11:05", "11:10", "11:15"]),
        *(
            make.backup("soak-bak", "soak-vol-2", created=make.clock(m), state="Error", error=engine)
            for m in ("11:20", "11:25")
        ),
    )

    finding = only(world.diagnose(), "error-backups-beyond-retain")

    assert ': ×3 of 5 "proxyServer=' in finding.summary
    assert finding.summary.endswith('type 1 acquisition" (longhorn#7854)')
    assert f'; ×2 "{engine}"' in finding.detail
    assert finding.data["stale_lock_errors"] == 3


def test_beyond_three_errors_the_rest_are_counted(world, make):
    world.put(
        *(
            make.backup("soak-bak", "soak-vol-2", created=make.clock(m), state="Error", error=error)
            for m, error in (
                ("11:00", "a"),
                ("11:05", "a"),
                ("11:10", "b"),
                ("11:15", "c"),
                ("11:20", "d"),
                ("11:25", "e"),
            )
        )
    )

    finding = only(world.diagnose(), "error-backups-beyond-retain")

    assert 'Errors: ×2 "a"; ×1 "b"; ×1 "c"; and 2 other errors (×2)' in finding.detail
    assert list(finding.data["errors"]) == ["a", "b", "c", "d", "e"]


def test_the_lock_wording_of_longhorn_1_8_on_is_still_longhorn_7854(world, make):
    # The target is down too: a stale lock is a stale lock, not the target's doing.
    world.put(
        make.backup_target(available=False, reason="Unavailable", message="down", since=make.clock("11:00")),
        *_lock_backups(make, ["11:05", "11:10", "11:15"], wording=_new_lock),
    )

    finding = only(world.diagnose(), "error-backups-beyond-retain")

    assert finding.summary.endswith('please try again later." (longhorn#7854)')
    assert finding.data["stale_lock_errors"] == 3
    assert finding.data["issues"] == ["longhorn#7854"]
    assert "×3, e.g." in finding.detail


def test_an_error_only_in_status_messages_is_quoted_from_there(world, make):
    message = "Failed to delete the backup s3://lhsoak-backups@us-east-1/ in the backupstore, err timeout"
    backups = [
        make.backup("soak-bak", "soak-vol-2", created=make.clock(m), state="Error")
        for m in ("11:05", "11:10")
    ]
    for backup in backups:
        backup["status"]["messages"] = {"error": message}
    world.put(*backups, make.backup("soak-bak", "soak-vol-2", created=make.clock("11:15"), state="Error"))

    finding = only(world.diagnose(), "error-backups-beyond-retain")

    assert f'×2 "(status.messages.error) {message}"; ×1 "(no status.error)"' in finding.detail


def test_a_long_error_is_shortened_between_words(world, make):
    words = [f"layer{n} failed to reach destination{n}" for n in range(40)]
    message = ": ".join(words)
    world.put(
        *(
            make.backup("soak-bak", "soak-vol-1", created=make.clock(m), state="Error", error=message)
            for m in ("11:05", "11:15", "11:25", "11:35")
        )
    )
    (finding,) = [f for f in world.diagnose() if f.category == "error-backups-beyond-retain"]
    quoted = finding.summary.split('"')[1]
    assert "…" in quoted
    assert len(quoted) < len(message)
    head, tail = (part.strip() for part in quoted.split("…"))
    assert message.startswith(head)
    assert message.endswith(tail)
    assert message[len(head)] in " :", f"cut inside a word after {head[-12:]!r}"
    assert message[-len(tail) - 1] == " ", f"cut inside a word before {tail[:12]!r}"
