"""How long records are kept, and durations as the CLI takes them (``30d``, ``25mo``, ``2y``).

The default is 25 months: US ECOA / Regulation B (12 CFR 1002.12(b)) has a creditor keep the
records of a credit application for 25 months after notifying the applicant; the EU AI Act
has deployers keep the automatically generated logs of a high-risk system at least six months
(Art. 19 and 26(6)). 25 months satisfies both.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

DEFAULT_RETENTION = "25mo"
_DURATION = re.compile(r"^\s*(\d+)\s*(d|w|mo|y)\s*$")


class DurationError(ValueError):
    pass


@dataclass(frozen=True)
class Duration:
    """A span of days or of calendar months (months are not a fixed number of days)."""

    days: int = 0
    months: int = 0

    def before(self, moment: datetime) -> datetime:
        """``moment`` minus this span; a day past a short month's end clamps to its last day."""
        moment -= timedelta(days=self.days)
        if not self.months:
            return moment
        index = moment.year * 12 + moment.month - 1 - self.months
        year, month = divmod(index, 12)
        last_day = calendar.monthrange(year, month + 1)[1]
        return moment.replace(year=year, month=month + 1, day=min(moment.day, last_day))


def parse_duration(text: str) -> Duration:
    """``'30d'``, ``'2w'``, ``'25mo'`` or ``'2y'``.

    >>> parse_duration("25mo")
    Duration(days=0, months=25)
    """
    match = _DURATION.match(text)
    if not match:
        raise DurationError(
            f"{text!r} is not a duration: write a whole number and a unit, d (days), "
            "w (weeks), mo (months) or y (years), e.g. 30d or 25mo"
        )
    count, unit = int(match.group(1)), match.group(2)
    return {
        "d": Duration(days=count),
        "w": Duration(days=7 * count),
        "mo": Duration(months=count),
        "y": Duration(months=12 * count),
    }[unit]


def parse_moment(text: str, now: datetime) -> datetime:
    """A point in time: an ISO date or datetime (UTC unless it says otherwise), or a duration
    before ``now`` (``30d`` is thirty days ago).

    >>> parse_moment("2026-01-31", datetime(2026, 3, 1, tzinfo=UTC)).isoformat()
    '2026-01-31T00:00:00+00:00'
    """
    try:
        return parse_duration(text).before(now)
    except DurationError:
        pass
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise DurationError(
            f"{text!r} is neither a date (2026-01-31, 2026-01-31T12:00:00Z) nor a duration "
            "before now (30d, 2w, 6mo, 1y)"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
