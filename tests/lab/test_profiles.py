"""Profiles: named, overridable, validated early."""

from __future__ import annotations

import pytest

from lhsoak.errors import UsageError
from lhsoak.lab import profiles


def test_every_named_profile_builds_with_its_fault_switch() -> None:
    assert profiles.NAMES == (
        "healthy",
        "stuck-pending",
        "stuck-backup",
        "error-backups",
        "backup-target-down",
    )
    assert profiles.get("healthy").lost_pod_fate == "replaced"
    assert profiles.get("stuck-pending").lost_pod_fate == "stuck-pending"
    assert profiles.get("stuck-backup").backup_on_node_loss == "stuck"
    assert profiles.get("error-backups").outage_backup_error_s is not None
    assert profiles.get("backup-target-down").target_down_after_first_backup_s is not None
    faults = {
        name: (
            p.lost_pod_fate,
            p.backup_on_node_loss,
            p.outage_backup_error_s,
            p.target_down_after_s,
            p.target_down_after_first_backup_s,
        )
        for name in profiles.NAMES
        for p in [profiles.get(name)]
    }
    assert faults["healthy"] == ("replaced", "error", None, None, None)


def test_overrides_replace_fields_and_feed_the_machine_timings() -> None:
    profile = profiles.get("healthy", seed=7, boot_s=1.5, jitter=0.0)
    assert (profile.seed, profile.boot_s) == (7, 1.5)
    assert profile.machine_timings().boot_s == 1.5
    assert profile.jittered(2.0, profile.rng("x")) == 2.0


def test_same_seed_same_draws() -> None:
    a, b = profiles.get("healthy", seed=3), profiles.get("healthy", seed=3)
    assert a.rng("p").random() == b.rng("p").random()
    assert a.rng("p").random() != profiles.get("healthy", seed=4).rng("p").random()


@pytest.mark.parametrize(
    ("name", "overrides", "message"),
    [
        ("nope", {}, "unknown lab profile 'nope'; known: healthy, stuck-pending"),
        ("healthy", {"bogus": 1}, "unknown lab profile field(s) bogus"),
        ("healthy", {"boot_s": -1}, "profile healthy: boot_s must be >= 0, got -1"),
        ("healthy", {"jitter": 1.5}, "jitter must be in [0, 1)"),
        ("healthy", {"target_down_for_s": 5, "target_down_every_s": 2}, "must exceed target_down_for_s"),
    ],
)
def test_bad_profiles_fail_early_with_one_clear_line(
    name: str, overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        profiles.get(name, **overrides)
