"""Cron schedules as the CronJob controller reads them, with an optional seconds field.

Kubernetes parses `spec.schedule` with robfig/cron `ParseStandard` (5 fields). The lab, whose time is
compressed, also accepts 6 fields with the SECONDS FIRST (robfig's `WithSeconds` order, the one
Longhorn's own cron code uses); that is an extension of the lab, not of Kubernetes.

Job names: upstream appends the scheduled time in MINUTES since the epoch (`getTimeHashInMinutes`),
which would give two sub-minute ticks the same Job name; for a 6-field schedule the lab appends
SECONDS since the epoch instead.
"""

from __future__ import annotations

from functools import lru_cache

from croniter import croniter


class ScheduleError(ValueError):
    """A schedule that does not parse."""


class Schedule:
    """One parsed cron schedule; times are epoch seconds, UTC."""

    def __init__(self, expression: str) -> None:
        fields = expression.split()
        self.expression = expression
        self.has_seconds = len(fields) == 6
        if len(fields) not in (5, 6) and not expression.startswith("@"):
            raise ScheduleError(f"expected exactly 5 or 6 fields, found {len(fields)}: {expression}")
        if not croniter.is_valid(expression, second_at_beginning=self.has_seconds):
            raise ScheduleError(f"unparseable schedule: {expression}")

    def next_after(self, epoch_s: float) -> float:
        """The first activation strictly after `epoch_s` (robfig `Schedule.Next`)."""
        it = croniter(self.expression, epoch_s, second_at_beginning=self.has_seconds)
        return float(it.get_next(float))

    def job_suffix(self, scheduled_s: float) -> int:
        """The number appended to a Job's name for this scheduled time."""
        return int(scheduled_s) if self.has_seconds else int(scheduled_s) // 60


@lru_cache(maxsize=256)
def parse(expression: str) -> Schedule:
    """A parsed schedule (cached); ScheduleError if it does not parse."""
    return Schedule(expression)
