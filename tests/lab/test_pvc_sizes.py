"""Resource quantities as the lab's storage controllers read and print them (resource.Quantity)."""

from __future__ import annotations

import pytest

from lhsoak.lab.controllers import storage


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1073741824", 1 << 30),
        ("1Gi", 1 << 30),
        ("1.5Gi", 3 << 29),
        ("500M", 500_000_000),
        ("2k", 2000),
        ("1e3", 1000),
        ("1E", 10**18),
        ("1500m", 2),  # Value() rounds up, away from zero
        (".5Ki", 512),
    ],
)
def test_a_quantity_has_the_value_kubernetes_gives_it(text: str, value: int) -> None:
    assert storage.quantity_value(text) == value


@pytest.mark.parametrize("text", ["", "Gi", "1GB", "1 Gi", "one", "1.2.3"])
def test_a_malformed_quantity_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="quantities must match"):
        storage.quantity_value(text)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (1 << 30, "1Gi"),
        (10 << 20, "10Mi"),
        (1432 << 20, "1432Mi"),
        (1500, "1500"),
        (1023, "1023"),
        (2048, "2Ki"),
    ],
)
def test_a_byte_count_prints_as_a_binary_quantity(value: int, text: str) -> None:
    assert storage.binary_quantity(value) == text
