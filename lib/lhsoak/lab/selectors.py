"""Label and field selectors, parsed and matched as the real API server does.

Label selectors: `k=v`, `k==v`, `k!=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`, `k>1`, `k<1`
(apimachinery `labels.Parse`); `!=` and `notin` also match objects without the label. Field
selectors: `f=v`, `f==v`, `f!=v` over the fields each kind supports, with `\\`-escapes in values.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

LabelOp = Literal["=", "!=", "in", "notin", "exists", "!", "gt", "lt"]
FieldOp = Literal["=", "!="]

_KEY_RE = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)
_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_TOKEN_RE = re.compile(r"\s*(==|!=|=|!|\(|\)|,|>|<|[^\s=!(),<>]+)")


class SelectorError(ValueError):
    """A selector that does not parse, or names a field the kind does not support."""


@dataclass(frozen=True)
class LabelRequirement:
    """One comma-separated term of a label selector."""

    key: str
    op: LabelOp
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        """True when `labels` satisfy this term."""
        present = self.key in labels
        value = labels.get(self.key)
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op in ("=", "in"):
            return present and value in self.values
        if self.op in ("!=", "notin"):
            return not present or value not in self.values
        if not present or value is None:
            return False
        try:
            number = int(value)
        except ValueError:
            return False
        limit = int(self.values[0])
        return number > limit if self.op == "gt" else number < limit


@dataclass(frozen=True)
class LabelSelector:
    """A parsed label selector; the empty selector matches everything."""

    requirements: tuple[LabelRequirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        """True when every requirement holds for `labels`."""
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)


@dataclass(frozen=True)
class FieldRequirement:
    """One comma-separated term of a field selector."""

    field: str
    op: FieldOp
    value: str


@dataclass(frozen=True)
class FieldSelector:
    """A parsed field selector; the empty selector matches everything."""

    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, obj: Mapping[str, Any]) -> bool:
        """True when every requirement holds for `obj`."""
        for req in self.requirements:
            equal = field_value(obj, req.field) == req.value
            if equal != (req.op == "="):
                return False
        return True


EVERYTHING = LabelSelector()
ALL_FIELDS = FieldSelector()


def parse_labels(text: str | None) -> LabelSelector:
    """Parse a label selector string; SelectorError with the real API's wording on bad input."""
    if not text or not text.strip():
        return EVERYTHING
    tokens = _tokenize(text)
    requirements: list[LabelRequirement] = []
    pos = 0
    while pos < len(tokens):
        requirement, pos = _parse_requirement(tokens, pos, text)
        requirements.append(requirement)
        if pos < len(tokens):
            if tokens[pos] != ",":
                raise SelectorError(f"unable to parse requirement: found '{tokens[pos]}', expected: ','")
            pos += 1
            if pos == len(tokens):
                raise SelectorError(f"unable to parse requirement: trailing ',' in {text!r}")
    return LabelSelector(tuple(requirements))


def _tokenize(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            raise SelectorError(f"unable to parse requirement: {text!r}")
        tokens.append(match.group(1))
        pos = match.end()
    return tokens


def _parse_requirement(tokens: Sequence[str], pos: int, text: str) -> tuple[LabelRequirement, int]:
    if tokens[pos] == "!":
        key = _key(tokens, pos + 1)
        return LabelRequirement(key, "!"), pos + 2
    key = _key(tokens, pos)
    pos += 1
    if pos == len(tokens) or tokens[pos] == ",":
        return LabelRequirement(key, "exists"), pos
    op_token = tokens[pos]
    if op_token in ("=", "==", "!="):
        value, pos = _single_value(tokens, pos + 1)
        return LabelRequirement(key, "!=" if op_token == "!=" else "=", (value,)), pos
    if op_token in (">", "<"):
        value, pos = _single_value(tokens, pos + 1)
        if not re.fullmatch(r"-?\d+", value):
            raise SelectorError(f"for 'gt', 'lt' operators, exactly one integer value is required: {value!r}")
        return LabelRequirement(key, "gt" if op_token == ">" else "lt", (value,)), pos
    if op_token in ("in", "notin"):
        values, pos = _value_set(tokens, pos + 1, text)
        return LabelRequirement(key, "in" if op_token == "in" else "notin", values), pos
    raise SelectorError(
        f"unable to parse requirement: found '{op_token}', expected: in, notin, =, ==, !=, gt, lt"
    )


def _key(tokens: Sequence[str], pos: int) -> str:
    if pos >= len(tokens) or not _KEY_RE.match(tokens[pos]) or len(tokens[pos].rsplit("/", 1)[-1]) > 63:
        found = tokens[pos] if pos < len(tokens) else "end of string"
        raise SelectorError(f"unable to parse requirement: invalid label key {found!r}")
    return tokens[pos]


def _single_value(tokens: Sequence[str], pos: int) -> tuple[str, int]:
    if pos >= len(tokens) or tokens[pos] == ",":
        return "", pos
    return _checked_value(tokens[pos]), pos + 1


def _value_set(tokens: Sequence[str], pos: int, text: str) -> tuple[tuple[str, ...], int]:
    if pos >= len(tokens) or tokens[pos] != "(":
        raise SelectorError(f"unable to parse requirement: expected '(' in {text!r}")
    pos += 1
    values: list[str] = []
    while pos < len(tokens) and tokens[pos] != ")":
        if tokens[pos] == ",":
            pos += 1
            continue
        values.append(_checked_value(tokens[pos]))
        pos += 1
    if pos >= len(tokens):
        raise SelectorError(f"unable to parse requirement: expected ')' in {text!r}")
    if not values:
        raise SelectorError("for 'in', 'notin' operators, values set can't be empty")
    return tuple(values), pos + 1


def _checked_value(value: str) -> str:
    if len(value) > 63 or not _VALUE_RE.match(value):
        raise SelectorError(f"invalid label value: {value!r}")
    return value


# --- field selectors ------------------------------------------------------------------------------


def parse_fields(text: str | None, *, supported: Sequence[str]) -> FieldSelector:
    """Parse a field selector over the `supported` field labels of a kind."""
    if not text or not text.strip():
        return ALL_FIELDS
    requirements: list[FieldRequirement] = []
    for term in _split_unescaped(text, ","):
        requirements.append(_field_term(term.strip(), supported))
    return FieldSelector(tuple(requirements))


_FIELD_TERM_RE = re.compile(r"^(?P<field>[^=!]+?)\s*(?P<op>!=|==|=)(?P<value>.*)$", re.DOTALL)


def _field_term(term: str, supported: Sequence[str]) -> FieldRequirement:
    match = _FIELD_TERM_RE.match(term)
    if match is None:
        raise SelectorError(f"invalid selector: '{term}'; can't understand '{term}'")
    field = match["field"].strip()
    if field not in supported:
        raise SelectorError(f"field label not supported: {field}")
    op: FieldOp = "!=" if match["op"] == "!=" else "="
    return FieldRequirement(field, op, _unescape(match["value"].strip()))


def _split_unescaped(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    pos = 0
    while pos < len(text):
        if text[pos] == "\\" and pos + 1 < len(text):
            current.append(text[pos : pos + 2])
            pos += 2
        elif text[pos] == sep:
            parts.append("".join(current))
            current = []
            pos += 1
        else:
            current.append(text[pos])
            pos += 1
    parts.append("".join(current))
    return parts


def _unescape(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


_FIELD_GETTERS: dict[str, Callable[[Mapping[str, Any]], Any]] = {
    "source": lambda obj: (obj.get("source") or {}).get("component", ""),
}


def field_value(obj: Mapping[str, Any], field: str) -> str:
    """The string value of a field label on an object ("" when unset), as the real field sets give it."""
    getter = _FIELD_GETTERS.get(field)
    value: Any = getter(obj) if getter else _path(obj, field)
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _path(obj: Mapping[str, Any], dotted: str) -> Any:
    current: Any = obj
    for part in dotted.split("."):
        if not isinstance(current, Mapping):
            return None
        current = current.get(part)
    return current
