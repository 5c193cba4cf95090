"""A ledger ready for a recorder under test: opened, its run record written."""

from __future__ import annotations

import time
from pathlib import Path

from lhsoak import ledger

MINIMAL_RUN = {
    "type": "run",
    "version": 1,
    "run_id": "r",
    "target": {},
    "jobs": [],
    "lag_bound_s": 1,
    "settle_s": 1,
}


def started_ledger(path: Path) -> ledger.Writer:
    """A writer on `path` whose first record, the run record, is written (use it as a context manager)."""
    writer = ledger.Writer.open(path, clock=time.time)
    writer.append(MINIMAL_RUN)
    return writer
