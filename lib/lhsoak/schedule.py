"""Cron schedules: which ticks a recurring job is expected to fire on, computed with croniter, in UTC.

Accepted expressions (`parse`) are the ones robfig/cron v3 accepts, which is what Longhorn
(`cron.ParseStandard`) and the Kubernetes CronJob controller run on:

- the standard 5 fields `minute hour day-of-month month day-of-week`;
- 6 fields with SECONDS FIRST (robfig's `WithSeconds` order), so a compressed soak against the lab
  can use periods of seconds. croniter reads that order with `second_at_beginning=True`;
- the descriptors `@yearly @annually @monthly @weekly @daily @midnight @hourly`.

Each field is a comma list of `*`, `?`, `N`, `N-M`, with an optional `/STEP` (`N/STEP` means
`N-max/STEP`, as in robfig); months and weekdays also take 3-letter names. croniter extensions that
robfig refuses (`L`, `W`, `#`, `H`, a 7th year field, weekday 7) are refused here too, so the lab never
accepts a cron that a real cluster would reject.

Refused although robfig parses them:

- `@every <duration>`: `ParseStandard` accepts it, but its ticks are relative to when the CronJob
  last ran rather than aligned to the clock (see kubernetes#104012), so no one can predict them;
- a `TZ=`/`CRON_TZ=` prefix: the harness computes every tick in UTC, and Kubernetes' API validation
  refuses time zones in `spec.schedule` (it has `spec.timeZone` for that).

`require_standard` is the check for a job the harness configures on a real Longhorn: Longhorn validates
`RecurringJob.spec.cron` with `cron.ParseStandard` (5 fields or a descriptor, never seconds), so a
6-field cron is refused there.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import re
from collections.abc import Sequence

from croniter import CroniterBadDateError, CroniterError, croniter

__all__ = ["Schedule", "ScheduleError", "parse", "require_standard"]

_DAY_S = 86_400
# A fixed reference, so period_s does not depend on when it is computed.
_PERIOD_SAMPLE_FROM_S = 978_307_200.0  # 2001-01-01T00:00:00Z
_PERIOD_SAMPLE_TICKS = 64

_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DOW_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
_RANGE = re.compile(
    r"^(?:(?P<star>[*?])|(?P<low>[0-9A-Za-z]+)(?:-(?P<high>[0-9A-Za-z]+))?)(?:/(?P<step>[0-9]+))?$"
)


class ScheduleError(ValueError):
    """A cron expression that lhsoak (or Longhorn) does not accept."""


@dataclasses.dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: Sequence[str] = ()
    name_base: int = 0


_SECOND = _Field("second", 0, 59)
_MINUTE = _Field("minute", 0, 59)
_HOUR = _Field("hour", 0, 23)
_DOM = _Field("day-of-month", 1, 31)
_MONTH = _Field("month", 1, 12, _MONTH_NAMES, 1)
_DOW = _Field("day-of-week", 0, 6, _DOW_NAMES, 0)
_STANDARD_FIELDS = (_MINUTE, _HOUR, _DOM, _MONTH, _DOW)


@dataclasses.dataclass(frozen=True)
class Schedule:
    """A parsed cron expression; build it with `schedule.parse`."""

    expr: str
    """The expression as given."""
    canonical: str
    """The expression as croniter reads it (numbers only, seconds first when `has_seconds`)."""
    has_seconds: bool
    """True for the 6-field form with seconds first."""
    period_s: float
    """Nominal period in seconds: the shortest gap between consecutive ticks over a sample."""
    # Not compared, hashed or shown: it can hold 86,400 entries (a per-second cron) and follows
    # from `canonical` anyway.
    day_offsets_s: tuple[int, ...] = dataclasses.field(compare=False, repr=False)
    """Seconds after midnight UTC of every tick on a day the schedule fires on."""

    def ticks(self, start_s: float, end_s: float) -> list[float]:
        """Every tick in [start_s, end_s), ascending, as epoch seconds."""
        return list(_ticks(self, start_s, end_s))

    def next_after(self, t_s: float) -> float:
        """The first tick strictly after `t_s`."""
        # Ticks fall on whole seconds; croniter mis-rounds fractional starts (119.9999999 → 240).
        return _croniter_next(self, float(math.floor(t_s)))


def parse(expr: str) -> Schedule:
    """Parse a 5-field cron, a 6-field cron with seconds first, or a descriptor such as `@hourly`."""
    if not isinstance(expr, str):
        raise ScheduleError(f"a cron expression must be a string, got {type(expr).__name__}")
    return _parse_cached(expr)


def require_standard(expr: str) -> Schedule:
    """Parse `expr`, refusing what Longhorn's `cron.ParseStandard` refuses (e.g. a seconds field)."""
    parsed = parse(expr)
    if parsed.has_seconds:
        raise ScheduleError(
            f"invalid cron {expr!r} for Longhorn: it has 6 fields (seconds first); Longhorn "
            "validates RecurringJob crons with robfig cron.ParseStandard, which takes exactly 5 "
            "fields (minute hour day-of-month month day-of-week) or a descriptor like @hourly"
        )
    return parsed


@functools.lru_cache(maxsize=256)
def _parse_cached(expr: str) -> Schedule:
    canonical, has_seconds = _canonical(expr)
    schedule = Schedule(
        expr=expr,
        canonical=canonical,
        has_seconds=has_seconds,
        period_s=0.0,
        day_offsets_s=(),
    )
    try:
        iterator = _croniter(schedule, _PERIOD_SAMPLE_FROM_S)
        sample = [iterator.get_next(float) for _ in range(_PERIOD_SAMPLE_TICKS)]
        offsets = _day_offsets(iterator.expanded, has_seconds=has_seconds)
    except CroniterBadDateError:
        raise ScheduleError(f"invalid cron {expr!r}: it never fires (no date matches)") from None
    except CroniterError as error:
        raise ScheduleError(f"invalid cron {expr!r}: {error}") from None
    period_s = min(later - earlier for earlier, later in itertools.pairwise(sample))
    return dataclasses.replace(schedule, period_s=period_s, day_offsets_s=offsets)


def _canonical(expr: str) -> tuple[str, bool]:
    text = expr.strip()
    if not text:
        raise ScheduleError("invalid cron '': empty expression")
    if text.startswith(("TZ=", "CRON_TZ=")):
        raise ScheduleError(
            f"invalid cron {expr!r}: time-zone prefixes are not supported (ticks are computed in "
            "UTC; Kubernetes takes a CronJob's zone from spec.timeZone)"
        )
    if text.startswith("@"):
        return _descriptor(expr, text), False
    fields = text.split()
    if len(fields) == 5:
        return _canonical_fields(expr, fields, _STANDARD_FIELDS), False
    if len(fields) == 6:
        return _canonical_fields(expr, fields, (_SECOND, *_STANDARD_FIELDS)), True
    raise ScheduleError(
        f"invalid cron {expr!r}: expected 5 fields (minute hour day-of-month month day-of-week) "
        f"or 6 with seconds first, got {len(fields)}"
    )


def _descriptor(expr: str, text: str) -> str:
    if text.startswith("@every"):
        raise ScheduleError(
            f"invalid cron {expr!r}: @every is not supported: its ticks follow the CronJob's last "
            "run instead of the clock (kubernetes#104012), so they cannot be predicted"
        )
    try:
        return _DESCRIPTORS[text.lower()]
    except KeyError:
        known = " ".join(sorted(_DESCRIPTORS))
        raise ScheduleError(f"invalid cron {expr!r}: unknown descriptor (known: {known})") from None


def _canonical_fields(expr: str, fields: Sequence[str], kinds: Sequence[_Field]) -> str:
    parts = []
    for text, kind in zip(fields, kinds, strict=True):
        try:
            parts.append(",".join(_canonical_range(item, kind) for item in text.split(",")))
        except ScheduleError as error:
            raise ScheduleError(f"invalid cron {expr!r}: {kind.name} field {text!r}: {error}") from None
    return " ".join(parts)


def _canonical_range(item: str, kind: _Field) -> str:
    match = _RANGE.match(item)
    if match is None:
        raise ScheduleError(f"{item!r} is not *, N, N-M or one of those with /STEP")
    step = int(match["step"]) if match["step"] is not None else None
    if step == 0:
        raise ScheduleError("a step must be a positive number")
    if match["star"] is not None:
        return "*" if step is None else f"*/{step}"
    low = _value(match["low"], kind)
    # robfig reads "N/STEP" as "N-max/STEP".
    high = _value(match["high"], kind) if match["high"] is not None else None
    if high is None and step is not None:
        high = kind.high
    if high is not None and low > high:
        raise ScheduleError(f"range start {low} is after its end {high}")
    text = str(low) if high is None else f"{low}-{high}"
    return text if step is None else f"{text}/{step}"


def _value(token: str, kind: _Field) -> int:
    lowered = token.lower()
    if lowered in kind.names:
        return kind.names.index(lowered) + kind.name_base
    if not token.isdigit():
        raise ScheduleError(f"{token!r} is not a number")
    value = int(token)
    if not kind.low <= value <= kind.high:
        raise ScheduleError(f"{value} is outside {kind.low}-{kind.high}")
    return value


def _croniter(schedule: Schedule, start_s: float) -> croniter:
    return croniter(schedule.canonical, start_s, ret_type=float, second_at_beginning=schedule.has_seconds)


def _croniter_next(schedule: Schedule, start_s: float) -> float:
    try:
        return float(_croniter(schedule, start_s).get_next(float))
    except CroniterError as error:
        raise ScheduleError(f"cron {schedule.expr!r}: {error}") from None


def _day_offsets(expanded: Sequence[Sequence[int | str]], *, has_seconds: bool) -> tuple[int, ...]:
    # croniter's `expanded` is [minute, hour, dom, month, dow(, second)] whatever the input order;
    # '*' stands for the whole range.
    minutes = _expand(expanded[0], 60)
    hours = _expand(expanded[1], 24)
    seconds = _expand(expanded[5], 60) if has_seconds else [0]
    return tuple(sorted(h * 3600 + m * 60 + s for h in hours for m in minutes for s in seconds))


def _expand(values: Sequence[int | str], size: int) -> list[int]:
    if list(values) == ["*"]:
        return list(range(size))
    return sorted({int(value) for value in values})


@functools.lru_cache(maxsize=1024)
def _ticks(schedule: Schedule, start_s: float, end_s: float) -> tuple[float, ...]:
    # Within a UTC day the ticks are the same product of hour × minute × second sets; only which
    # days fire depends on the calendar. So ask croniter for the first tick of each firing day and
    # lay the day's offsets out directly: one croniter step per day instead of one per tick.
    found: list[float] = []
    day_s = float(math.floor(start_s / _DAY_S) * _DAY_S)
    while day_s < end_s:
        first = _croniter_next(schedule, day_s - 1.0)
        day_s = float(math.floor(first / _DAY_S) * _DAY_S)
        found.extend(tick for offset in schedule.day_offsets_s if start_s <= (tick := day_s + offset) < end_s)
        day_s += _DAY_S
    return tuple(found)
