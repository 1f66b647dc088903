"""Durations as users type them: ``30d``, ``12h``, ``2w``, ``1y``.

Strict on purpose: a positive whole number then one unit. Minutes,
fractions, signs, spaces and empty strings are refused; so is anything
beyond the caller's upper bound.
"""

from __future__ import annotations

import re
from datetime import timedelta

_PATTERN = re.compile(r"^([1-9][0-9]{0,5})([hdwy])$")
_UNIT_HOURS = {"h": 1, "d": 24, "w": 24 * 7, "y": 24 * 365}


class DurationError(ValueError):
    pass


def parse_duration(text: str, *, maximum: timedelta, allow_zero: bool = False) -> timedelta:
    if allow_zero and text == "0":
        return timedelta(0)
    match = _PATTERN.match(text)
    if match is None:
        raise DurationError(
            f"Invalid duration {text!r}: use a whole number and a unit h, d, w or y (e.g. 30d)"
        )
    hours = int(match.group(1)) * _UNIT_HOURS[match.group(2)]
    value = timedelta(hours=hours)
    if value > maximum:
        raise DurationError(f"Duration {text!r} exceeds the maximum of {_describe(maximum)}")
    return value


def _describe(value: timedelta) -> str:
    days = value.days
    if days % 365 == 0 and days:
        return f"{days // 365}y"
    if days:
        return f"{days}d"
    return f"{int(value.total_seconds() // 3600)}h"
