"""Paths of the shipped infra files."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
INFRA = REPO / "infra"
SHARED_CRDS = REPO.parent / "shared" / "longhorn" / "crds-v1.12.1.yaml"
