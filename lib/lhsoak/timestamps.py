"""RFC 3339 timestamps as the ledger writes them, and epoch seconds as the verdict computes with.

The ledger always writes UTC with a `Z` suffix and a microsecond fraction
(`2026-11-27T07:15:23.123456Z`); it reads any RFC 3339 time with an explicit offset, with or without
a fraction, because Kubernetes `creationTimestamp`s have none and Go's `RFC3339Nano` has up to nine
digits (truncated here to microseconds). A time without an offset is refused: its zone is unknown.
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import time

__all__ = ["TimestampError", "parse_rfc3339", "to_rfc3339"]


class TimestampError(ValueError):
    """A string that is not an RFC 3339 time with an offset."""


@functools.lru_cache(maxsize=4096)
def _second_prefix(whole_s: int) -> str:
    # Records made in the same second share this prefix; caching it makes writing 300k records cheap.
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole_s))


def to_rfc3339(epoch_s: float) -> str:
    """Format epoch seconds as UTC RFC 3339 with a microsecond fraction and a `Z` suffix."""
    whole_s = math.floor(epoch_s)
    micros = round((epoch_s - whole_s) * 1_000_000)
    if micros == 1_000_000:
        whole_s, micros = whole_s + 1, 0
    return f"{_second_prefix(whole_s)}.{micros:06d}Z"


def parse_rfc3339(text: str) -> float:
    """Parse an RFC 3339 time (`Z` or a numeric offset, fraction optional) to epoch seconds."""
    try:
        moment = dt.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        moment = _parse_lenient(text)
    if moment.tzinfo is None:
        raise TimestampError(f"timestamp {text!r} has no UTC offset (expected e.g. a trailing Z)")
    return moment.timestamp()


def _parse_lenient(text: object) -> dt.datetime:
    # RFC 3339 allows a lower-case `t` and `z`, which datetime.fromisoformat refuses.
    if not isinstance(text, str):
        raise TimestampError(f"timestamp must be a string, got {type(text).__name__}")
    try:
        return dt.datetime.fromisoformat(text.upper())
    except ValueError:
        raise TimestampError(f"not an RFC 3339 timestamp: {text!r}") from None
