"""Durations as users write them: `90s`, `15m`, `2h`, `1d`, `1h30m`, or a bare number of seconds."""

from __future__ import annotations

import math
import re
from datetime import datetime, timedelta

_PATTERN = re.compile(
    r"(?:(?P<d>\d+)\s*d)?\s*(?:(?P<h>\d+)\s*h)?\s*(?:(?P<m>\d+)\s*m)?\s*(?:(?P<s>\d+)\s*s)?",
    re.ASCII,  # `\d` would also take other scripts' digits, which int() then reads
)
_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}
# Bounded so that no later arithmetic (deadlines, doubling retry delays) can overflow.
MAX_DURATION = timedelta(days=36525)
_MAX_TEXT = 64  # longer is junk; the cap keeps int() away from thousand-digit numbers
_EXPECTED = "expected a duration such as 90s, 15m or 1h30m"


class DurationError(ValueError):
    """A value that is not a usable duration; the message is fit for `validate`."""


def parse_duration(value: object) -> timedelta:
    """Parse a duration; raise DurationError with a message fit for `validate`."""
    # bool is an int subclass: `timeout: yes` must not become one second.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise DurationError(f"{_EXPECTED}, got {value!r}")
    if isinstance(value, str):
        return _bounded(_seconds_of(value), repr(value))
    if isinstance(value, float) and not math.isfinite(value):
        raise DurationError(f"a duration must be finite, such as 90s or 1h30m; got {value!r}")
    # The number itself stays out of the messages: str() refuses ints over 4,300 digits.
    if value < 0:
        raise DurationError("a duration cannot be negative")
    return _bounded(value, "a larger number of seconds")


def _seconds_of(value: str) -> float:
    text = value.strip().lower()
    if len(text) > _MAX_TEXT:
        raise DurationError(f"not a duration: {value[:_MAX_TEXT]!r}... (too long)")
    if re.fullmatch(r"[0-9]+(\.[0-9]+)?", text):
        return float(text)
    match = _PATTERN.fullmatch(text)
    if not text or match is None or not any(match.groupdict().values()):
        raise DurationError(f"not a duration: {value!r} (use 90s, 15m, 2h, 1d, 1h30m or seconds)")
    return sum(int(n) * _SECONDS[unit] for unit, n in match.groupdict().items() if n)


def _bounded(seconds: float, shown: str) -> timedelta:
    # Compare before building the timedelta, which overflows past 999,999,999 days.
    if seconds > MAX_DURATION.total_seconds():
        raise DurationError(f"a duration is at most 100 years (36525d), got {shown}")
    return timedelta(seconds=seconds)


def format_duration(seconds: float) -> str:
    """Short human form for notes and tables: `0.4s`, `12s`, `3m04s`, `1h02m`."""
    if seconds < 10:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def format_relative(moment: datetime, now: datetime) -> str:
    """How far `moment` is from `now`, as a person says it: `in 12s`, `3m ago`, `in 2h`, then
    in calendar days of `moment`'s zone: `tomorrow`, `yesterday`, `in 3 days`, `2 weeks ago`.
    Both aware; each unit is whole (2h59m is `in 2h`, as a clock's hour hand says)."""
    seconds = (moment - now).total_seconds()
    span = abs(seconds)
    if span < 1:
        return "now"
    if span < 86400:
        amount = next(f"{int(span // size)}{unit}" for size, unit in _UNITS if span >= size)
    else:
        days = max(1, abs((moment.date() - now.astimezone(moment.tzinfo).date()).days))
        if days == 1:
            return "tomorrow" if seconds > 0 else "yesterday"
        amount = _in_days(days)
    return f"in {amount}" if seconds > 0 else f"{amount} ago"


_UNITS = ((3600, "h"), (60, "m"), (1, "s"))


def _in_days(days: int) -> str:
    count, unit = next((days // size, unit) for size, unit in _DAYS if days >= size * 2)
    return f"{count} {unit}s"


# From two of a unit on (`14 days` is `2 weeks`); under two weeks it is days.
_DAYS = ((365, "year"), (30, "month"), (7, "week"), (1, "day"))
