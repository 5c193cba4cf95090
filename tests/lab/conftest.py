"""Fixtures that run the lab's API server in a background thread (its own event loop) for tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ..support.lab_api import CRDS, LabApi, running_lab_api


@pytest.fixture
def lab_api(tmp_path: Path) -> Iterator[LabApi]:
    """A lab API server with the real Longhorn CRDs when available."""
    with running_lab_api(tmp_path, crd_path=CRDS) as lab:
        yield lab


@pytest.fixture
def kube_client(lab_api: LabApi) -> Iterator[Any]:
    """A `kubernetes.client.ApiClient` for `lab_api`."""
    api_client = lab_api.api_client()
    yield api_client
    api_client.close()
