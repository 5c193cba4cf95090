"""infra/helm: every key of the Longhorn values file exists in the chart (Helm silently ignores a
misspelt one), and nothing that shapes what the soak measures is changed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from .conftest import INFRA

VALUES = INFRA / "helm" / "longhorn-values.yaml"
CHART_KEYS = Path(__file__).parent / "longhorn-chart-1.12.1-value-keys.txt"
# Settings the soak's verdict depends on: they must stay at Longhorn's defaults.
MEASURED = {
    "defaultSettings.recurringSuccessfulJobsHistoryLimit",
    "defaultSettings.recurringFailedJobsHistoryLimit",
    "defaultSettings.recurringJobMaxRetention",
    "defaultSettings.failedBackupTTL",
    "defaultSettings.backupExecutionTimeout",
    "defaultSettings.nodeDownPodDeletionPolicy",
    "defaultSettings.allowRecurringJobWhileVolumeDetached",
    "defaultBackupStore.backupTarget",
    "defaultBackupStore.backupTargetCredentialSecret",
}


def leaf_paths(node: Any, prefix: str = "") -> list[str]:
    if not isinstance(node, dict):
        return [prefix]
    return [path for key, value in node.items() for path in leaf_paths(value, f"{prefix}.{key}".lstrip("."))]


def chart_keys() -> set[str]:
    return {line for line in CHART_KEYS.read_text().splitlines() if line and not line.startswith("#")}


def test_every_value_is_a_key_of_the_chart() -> None:
    values = yaml.safe_load(VALUES.read_text())
    assert sorted(set(leaf_paths(values)) - chart_keys()) == []


def test_the_check_catches_a_misspelt_key() -> None:
    assert leaf_paths({"defaultSettings": {"storageMinimalAvailablePercent": 10}})[0] not in chart_keys()


def test_nothing_the_soak_measures_is_changed() -> None:
    assert set(leaf_paths(yaml.safe_load(VALUES.read_text()))) & MEASURED == set()
    assert chart_keys() >= MEASURED  # the guard names real keys
