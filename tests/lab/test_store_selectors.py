"""Label and field selectors parse and match as apimachinery's do."""

from __future__ import annotations

import pytest

from lhsoak.lab import kinds, selectors


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ("", {}, True),
        ("a=1", {"a": "1"}, True),
        ("a==1", {"a": "2"}, False),
        ("a!=1", {}, True),
        ("a!=1", {"a": "1"}, False),
        ("a in (1, 2)", {"a": "2"}, True),
        ("a in (1,2)", {}, False),
        ("a notin (1,2)", {}, True),
        ("a notin (1,2)", {"a": "1"}, False),
        ("a", {"a": ""}, True),
        ("!a", {"a": ""}, False),
        ("a,b=2", {"a": "x", "b": "2"}, True),
        ("a,b=2", {"b": "2"}, False),
        ("recurring-job.longhorn.io/snap=enabled", {"recurring-job.longhorn.io/snap": "enabled"}, True),
        ("a>3", {"a": "4"}, True),
        ("a<3", {"a": "4"}, False),
        ("a=", {"a": ""}, True),
    ],
)
def test_label_selector(text: str, labels: dict[str, str], expected: bool) -> None:
    assert selectors.parse_labels(text).matches(labels) is expected


@pytest.mark.parametrize("text", ["a in 1", "a in ()", "a=b=c", "=x", "a,", "a in (1"])
def test_bad_label_selector_is_an_error(text: str) -> None:
    with pytest.raises(selectors.SelectorError):
        selectors.parse_labels(text)


def test_field_selector_over_pod_fields() -> None:
    pod = {
        "metadata": {"name": "p", "namespace": "ns"},
        "spec": {"nodeName": "n1"},
        "status": {"phase": "Pending"},
    }
    parse = selectors.parse_fields
    assert parse("spec.nodeName=n1,status.phase==Pending", supported=kinds.POD.field_selectors).matches(pod)
    assert not parse("spec.nodeName!=n1", supported=kinds.POD.field_selectors).matches(pod)
    assert parse("spec.nodeName=", supported=kinds.POD.field_selectors).matches({"metadata": {"name": "q"}})
    assert parse(r"metadata.name=a\,b", supported=kinds.POD.field_selectors).matches(
        {"metadata": {"name": "a,b"}}
    )


def test_field_selector_refuses_fields_the_kind_does_not_support() -> None:
    with pytest.raises(selectors.SelectorError, match=r"field label not supported: spec\.nodeName"):
        selectors.parse_fields("spec.nodeName=x", supported=kinds.LH_VOLUME.field_selectors)
