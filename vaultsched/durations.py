"""Durations as users write them: `90s`, `15m`, `2h`, `1d`, `1h30m`, or a bare number of seconds."""

from __future__ import annotations

import re
from datetime import timedelta

_PATTERN = re.compile(
    r"(?:(?P<d>\d+)\s*d)?\s*(?:(?P<h>\d+)\s*h)?\s*(?:(?P<m>\d+)\s*m)?\s*(?:(?P<s>\d+)\s*s)?"
)
_SECONDS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def parse_duration(value: object) -> timedelta:
    """Parse a duration; raise ValueError with a message fit for `validate`."""
    # bool is an int subclass: `timeout: yes` must not become one second.
    if isinstance(value, bool) or value is None:
        raise ValueError(f"expected a duration such as 90s, 15m or 1h30m, got {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a duration cannot be negative: {value}")
        return timedelta(seconds=value)
    if not isinstance(value, str):
        raise ValueError(f"expected a duration such as 90s, 15m or 1h30m, got {value!r}")
    text = value.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return timedelta(seconds=float(text))
    match = _PATTERN.fullmatch(text)
    if not text or match is None or not any(match.groupdict().values()):
        raise ValueError(f"not a duration: {value!r} (use 90s, 15m, 2h, 1d, 1h30m or seconds)")
    seconds = sum(int(n) * _SECONDS[unit] for unit, n in match.groupdict().items() if n)
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
