"""RFC 3339 timestamps: the ledger's exact format out, every RFC 3339 form Kubernetes uses in."""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lhsoak import timestamps


def test_formats_utc_with_z_and_always_six_fraction_digits() -> None:
    assert timestamps.to_rfc3339(1795763723.123456) == "2026-11-27T07:15:23.123456Z"
    assert timestamps.to_rfc3339(1795763723.0) == "2026-11-27T07:15:23.000000Z"


def test_rounding_up_to_a_whole_second_carries_into_the_seconds() -> None:
    assert timestamps.to_rfc3339(1795763723.9999996) == "2026-11-27T07:15:24.000000Z"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-27T07:15:23.123456Z", 1795763723.123456),
        ("2026-11-27T07:15:23Z", 1795763723.0),  # a Kubernetes creationTimestamp
        ("2026-11-27T07:15:23+00:00", 1795763723.0),
        ("2026-11-27T07:15:23.5+00:00", 1795763723.5),
        ("2026-11-27T09:15:23+02:00", 1795763723.0),
        ("2026-11-27T07:15:23.123456789Z", 1795763723.123456),  # Go RFC3339Nano, truncated
        ("2026-11-27t07:15:23z", 1795763723.0),  # RFC 3339 allows lower case
    ],
)
def test_parses_rfc3339_forms(text: str, expected: float) -> None:
    assert timestamps.parse_rfc3339(text) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("2026-11-27T07:15:23", "no UTC offset"),
        ("2026-11-27", "no UTC offset"),
        ("yesterday", "not an RFC 3339 timestamp"),
        ("", "not an RFC 3339 timestamp"),
    ],
)
def test_refuses_times_without_offset_or_garbage(text: str, problem: str) -> None:
    with pytest.raises(timestamps.TimestampError, match=problem):
        timestamps.parse_rfc3339(text)


def test_refuses_non_strings() -> None:
    with pytest.raises(timestamps.TimestampError, match="must be a string"):
        timestamps.parse_rfc3339(1795763723)  # type: ignore[arg-type]


@given(st.integers(min_value=0, max_value=4_102_444_799_999_999))  # up to 2099, in µs
def test_round_trips_to_the_microsecond(micros: int) -> None:
    epoch_s = micros / 1_000_000
    text = timestamps.to_rfc3339(epoch_s)
    assert text.endswith("Z")
    assert len(text) == len("2026-11-27T07:15:23.123456Z")
    assert round(timestamps.parse_rfc3339(text) * 1_000_000) == micros


def test_parses_300k_timestamps_in_seconds() -> None:
    texts = [timestamps.to_rfc3339(1795763723.0 + index * 0.287) for index in range(300_000)]
    began = time.perf_counter()
    parsed = [timestamps.parse_rfc3339(text) for text in texts]
    elapsed_s = time.perf_counter() - began
    assert parsed[-1] == pytest.approx(1795763723.0 + 299_999 * 0.287, abs=1e-6)
    assert elapsed_s < 5.0, f"parsing 300k timestamps took {elapsed_s:.2f}s"
