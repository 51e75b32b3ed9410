"""Printed figures that never round across an alert line.

Each figure is rounded toward the side of its line that means "breach": a four-fifths
ratio of 0.7956 prints as 0.795 (not 0.80, which reads as passing), a flip rate of 5.01%
as 5.1% (not 5.0%), a control flip rate of 0.004% as 0.1% (not 0.0%). Decimal arithmetic
on the shortest repr avoids float artefacts such as 0.29 * 100 == 28.999999999999996.
"""

from __future__ import annotations

import math
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal


def _quantize(value: float, digits: int, rounding: str, scale: int = 0) -> Decimal:
    exact = Decimal(repr(value)).scaleb(scale)
    return exact.quantize(Decimal(1).scaleb(-digits), rounding=rounding)


def ratio(value: float, digits: int = 3) -> str:
    """A ratio whose alert fires *below* a line: floored. ``ratio(0.7956) == "0.795"``."""
    if not math.isfinite(value):
        return str(value)
    return str(_quantize(value, digits, ROUND_FLOOR))


def rate(value: float, digits: int = 1) -> str:
    """A rate whose alert fires *above* a line, as a percentage: ceiled.

    >>> rate(0.0501), rate(0.05), rate(0.00004)
    ('5.1%', '5.0%', '0.1%')
    """
    if not math.isfinite(value):
        return str(value)
    return f"{_quantize(value, digits, ROUND_CEILING, scale=2)}%"


def share(value: float, digits: int = 3) -> str:
    """A unitless gap whose alert fires when its size exceeds a line (``FairgateGap`` on the
    gap ratio): rounded away from zero. ``share(0.1001) == "0.101"``, not "0.100"."""
    if not math.isfinite(value):
        return "n/a"
    return str(_quantize(value, digits, ROUND_CEILING if value >= 0 else ROUND_FLOOR))


def dollars(value: float) -> str:
    """A gap whose alert fires when its size exceeds a line: rounded away from zero."""
    if not math.isfinite(value):
        return "n/a"
    size = math.ceil(abs(value))
    return f"{'-' if value < 0 else ''}${size:,}"


def amount(value: float, unit: str) -> str:
    """A gap in its field's unit, rounded away from zero like ``dollars`` (which it is for
    dollars): ``amount(2.301, "months") == "2.31 months"``, ``amount(13142.2, "") == "13,143"``."""
    if unit == "dollars":
        return dollars(value)
    if not math.isfinite(value):
        return "n/a"
    sign = "-" if value < 0 else ""
    if abs(value) >= 100:
        text = f"{math.ceil(abs(value)):,}"
    else:
        up = ROUND_CEILING if value >= 0 else ROUND_FLOOR
        text = str(abs(_quantize(value, 2, up)))
    return f"{sign}{text}{' ' + unit if unit else ''}"
