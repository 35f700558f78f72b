"""Schedule math: cron (cronie's rules), macros and `every` intervals. Pure: time is an argument.

croniter expands and validates the cron fields; the fire times are computed here on local
wall-clock dates, because that is where cronie's daylight-saving rules live (croniter's own
iteration fires a fixed-time job twice on a fall-back night).
"""

from __future__ import annotations

import calendar
import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter

from vaultsched.durations import parse_duration

INTERVAL_MIN = timedelta(seconds=1)
# How far ahead a search may look: past the longest gap a valid cron line can have
# (`0 0 29 2 */3`: a 29 February on one of three weekdays; the weekday cycle is 28 years).
_SEARCH_DAYS = 366 * 29

MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_FIELD = re.compile(r"^[0-9A-Za-z*,/-]+$")
_NAMES = re.compile(r"[A-Za-z]+")
_MONTHS = {m.lower() for m in calendar.month_abbr if m}
_DAYS = {d.lower() for d in calendar.day_abbr}
_MAX_DAY = {1: 31, 2: 29, 3: 31, 4: 30, 5: 31, 6: 30, 7: 31, 8: 31, 9: 30, 10: 31, 11: 30, 12: 31}
_FIELD_NAMES = ("minute", "hour", "day-of-month", "month", "day-of-week")
_FULL = (range(60), range(24), range(1, 32), range(1, 13), range(7))
_RANGE = re.compile(r"^([0-9A-Za-z]+)-([0-9A-Za-z]+)(?:/\d+)?$")
_MONTH_ORDER = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAY_ORDER = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


class ScheduleError(ValueError):
    """A schedule that cannot be used; the message is one line, fit for `validate`."""


@dataclass(frozen=True)
class Schedule:
    text: str

    def next_after(self, after: datetime, tz: ZoneInfo) -> datetime:
        raise NotImplementedError


@dataclass(frozen=True)
class IntervalSchedule(Schedule):
    period: timedelta

    def next_after(self, after: datetime, tz: ZoneInfo) -> datetime:
        # Whole microseconds keep the epoch alignment exact (no float drift).
        period = _micros(self.period)
        now = _micros(after.astimezone(UTC) - datetime(1970, 1, 1, tzinfo=UTC))
        step = now // period + 1
        return (
            datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=step * period)
        ).astimezone(tz)


@dataclass(frozen=True)
class CronSchedule(Schedule):
    minutes: tuple[int, ...]
    hours: tuple[int, ...]
    days: frozenset[int]  # day of month; empty means "*"
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Monday (Python's), empty means "*"
    day_or: bool  # both day fields restricted: either matching fires (cronie)
    repeat_on_fold: bool  # minute or hour starts with `*`: every real occurrence fires

    def next_after(self, after: datetime, tz: ZoneInfo) -> datetime:
        local = after.astimezone(tz)
        day = local.date() - timedelta(days=1)  # a fall-back repeat can reach back a day
        for _ in range(_SEARCH_DAYS):
            if self._day_matches(day):
                fire = self._first_on(day, tz, local)
                if fire is not None:
                    return fire
            day += timedelta(days=1)
        raise ScheduleError(f"{self.text!r} never fires")  # ruled out by parse_schedule

    def _first_on(self, day: date, tz: ZoneInfo, local: datetime) -> datetime | None:
        """The first fire on `day` strictly after `local`."""
        if not _plain_day(day, tz):
            # Compare instants: two datetimes in one zone compare by wall time, ignoring fold.
            stamps, fires = _transition_day_fires(self, day, tz)
            index = bisect_right(stamps, local.timestamp())
            return fires[index] if index < len(fires) else None
        if day < local.date():
            return None
        floor = (local.hour, local.minute) if day == local.date() else (-1, -1)
        # On a day without a transition wall-clock order is time order: skip ahead, no list.
        for hour in self.hours[bisect_right(self.hours, floor[0] - 1) :]:
            start = bisect_right(self.minutes, floor[1]) if hour == floor[0] else 0
            if start < len(self.minutes):
                return datetime.combine(day, time(hour, self.minutes[start]), tzinfo=tz)
        return None

    def _day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        dom = not self.days or day.day in self.days
        dow = not self.weekdays or day.weekday() in self.weekdays
        if self.day_or:
            return day.day in self.days or day.weekday() in self.weekdays
        return dom and dow


@lru_cache(maxsize=256)
def _transition_day_fires(
    schedule: CronSchedule, day: date, tz: ZoneInfo
) -> tuple[tuple[float, ...], tuple[datetime, ...]]:
    """Every real instant `schedule` fires on a local date with a DST transition, in order,
    with their timestamps. Cached: each `next_after` across that day meets it again."""
    # Keyed by timestamp: in one zone, datetimes hash and compare by wall time, so a set
    # would merge the two 01:00s of a fall-back night.
    fires: dict[float, datetime] = {}
    for h in schedule.hours:
        for m in schedule.minutes:
            wall = datetime.combine(day, time(h, m))
            for fire in _real_instants(wall, tz, schedule.repeat_on_fold):
                fires.setdefault(fire.timestamp(), fire)
    stamps = tuple(sorted(fires))
    return stamps, tuple(fires[k] for k in stamps)


def _micros(delta: timedelta) -> int:
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


@lru_cache(maxsize=4096)
def _plain_day(day: date, tz: ZoneInfo) -> bool:
    """True when the zone's UTC offset does not change during this local date."""
    offsets = {datetime.combine(day, moment, tzinfo=tz).utcoffset() for moment in _PROBES}
    return len(offsets) == 1


# A transition and its reversal on one day (rare, but tzdata has them) would fool two probes.
_PROBES = (time(0), time(6), time(12), time(18), time(23, 59, 59))


def _real_instants(wall: datetime, tz: ZoneInfo, repeat: bool) -> list[datetime]:
    """The instants a naive wall-clock time denotes in `tz`, by cronie's DST rules."""
    first = wall.replace(tzinfo=tz, fold=0)
    second = wall.replace(tzinfo=tz, fold=1)
    if first.utcoffset() == second.utcoffset():
        return [first]
    as_utc = first.astimezone(UTC)
    if as_utc.astimezone(tz).replace(tzinfo=None) != wall:
        # Skipped by spring-forward: fire once at the first instant after the gap.
        return [_gap_end(wall, tz)]
    # Repeated by fall-back: once at the first occurrence, or at both if a field is starred.
    return [first, second] if repeat else [first]


def _gap_end(wall: datetime, tz: ZoneInfo) -> datetime:
    """The first real instant after the gap that swallowed `wall`: the transition itself."""
    before = wall.replace(tzinfo=tz, fold=0).utcoffset()  # PEP 495: fold=0 is the old offset
    after = wall.replace(tzinfo=tz, fold=1).utcoffset()
    assert before is not None and after is not None
    low = int((wall - after).replace(tzinfo=UTC).timestamp())  # still before the transition
    high = int((wall - before).replace(tzinfo=UTC).timestamp())  # already after it
    while high - low > 1:
        mid = (low + high) // 2
        if datetime.fromtimestamp(mid, tz).utcoffset() == after:
            high = mid
        else:
            low = mid
    return datetime.fromtimestamp(high, tz)


@lru_cache(maxsize=1024)  # schedules are immutable, and a vault repeats a few lines many times
def parse_schedule(text: str) -> Schedule:
    """Parse one schedule entry; raise ScheduleError with a one-line message."""
    if not isinstance(text, str) or not text.strip():
        raise ScheduleError(
            "empty schedule: use a cron line, a macro such as @daily, or `every 5m`"
        )
    stripped = " ".join(text.split())
    lowered = stripped.lower()
    if lowered.startswith("every"):
        return _interval(stripped)
    if lowered.startswith("@"):
        if lowered == "@reboot":
            raise ScheduleError(
                "@reboot is not supported: start the task from `vaultsched run` instead"
            )
        if lowered not in MACROS:
            raise ScheduleError(f"unknown macro {stripped!r}: use one of {', '.join(MACROS)}")
        return _cron(stripped, MACROS[lowered])
    return _cron(stripped, stripped)


def _interval(text: str) -> IntervalSchedule:
    amount = text[len("every") :].strip()
    try:
        period = parse_duration(amount)
    except ValueError as exc:
        raise ScheduleError(f"{text!r}: {exc}") from None
    if period < INTERVAL_MIN:
        raise ScheduleError(f"{text!r}: the shortest interval is every 1s")
    return IntervalSchedule(text, period)


def _cron(text: str, expression: str) -> CronSchedule:
    fields = expression.split()
    if len(fields) in (6, 7):
        raise ScheduleError(
            f"{text!r} has {len(fields)} fields; use 5 (minute hour day month weekday): "
            "tools disagree on whether an extra field is seconds or years"
        )
    if len(fields) != 5:
        raise ScheduleError(f"{text!r} is not a cron line: expected 5 fields, got {len(fields)}")
    for name, field in zip(_FIELD_NAMES, fields, strict=True):
        _check_field(text, name, field)
    fields = [_single_ranges(text, name, f) for name, f in zip(_FIELD_NAMES, fields, strict=True)]
    try:
        expanded, nth = croniter.expand(" ".join(fields))
    except (ValueError, KeyError, TypeError) as exc:
        raise ScheduleError(f"{text!r} is not a valid cron line: {exc}") from None
    if nth:
        raise ScheduleError(f"{text!r}: `#` (nth weekday) is not supported by cron")
    minute, hour, dom, _, dow = fields
    minutes, hours, days, months, weekdays = (
        _values(e, full) for e, full in zip(expanded, _FULL, strict=True)
    )
    schedule = CronSchedule(
        text=text,
        minutes=tuple(sorted(minutes)),
        hours=tuple(sorted(hours)),
        days=frozenset(days),
        months=frozenset(months),
        # croniter counts Sunday as 0 (and 7); Python's weekday() counts Monday as 0.
        weekdays=frozenset((v - 1) % 7 for v in weekdays),
        day_or=not dom.startswith("*") and not dow.startswith("*"),
        repeat_on_fold=minute.startswith("*") or hour.startswith("*"),
    )
    _check_reachable(schedule)
    return schedule


def _values(expanded: list[Any], full: range) -> set[int]:
    """croniter's expansion of one field; it says `*` for any field covering its whole range."""
    return set(full) if expanded == ["*"] else {int(v) for v in expanded}


def _single_ranges(text: str, name: str, field: str) -> str:
    """Rewrite `5-5` (and `5-5/2`) as `5`: croniter reads a one-value range as `*`.

    Also refuses a reversed range (`FRI-MON`), which cronie rejects and croniter wraps.
    """
    parts = []
    for part in field.split(","):
        match = _RANGE.match(part)
        if match is None:
            parts.append(part)
            continue
        low, high = (_number(name, v) for v in match.group(1, 2))
        if low > high:
            raise ScheduleError(f"{text!r}: {part!r} is a reversed range; write it low-high")
        parts.append(match.group(1) if low == high else part)
    return ",".join(parts)


def _number(name: str, value: str) -> int:
    if value.isdigit():
        return int(value)
    names = list(_MONTH_ORDER if name == "month" else _DAY_ORDER)
    return names.index(value.lower()) + (1 if name == "month" else 0)


def _check_field(text: str, name: str, field: str) -> None:
    if not _FIELD.match(field):
        bad = "".join(sorted(set(re.sub(r"[0-9A-Za-z*,/-]", "", field))))
        raise ScheduleError(f"{text!r}: {bad!r} in the {name} field is not cron syntax")
    for word in _NAMES.findall(field):
        lowered = word.lower()
        allowed = _MONTHS if name == "month" else _DAYS if name == "day-of-week" else set()
        if lowered not in allowed:
            hint = (
                " (L, W and H are not supported by cron)"
                if lowered in {"l", "w", "h", "lw"}
                else ""
            )
            raise ScheduleError(f"{text!r}: {word!r} is not valid in the {name} field{hint}")


def _check_reachable(schedule: CronSchedule) -> None:
    """Refuse day/month combinations that never exist (`0 0 31 2 *`)."""
    if schedule.day_or or not schedule.days:
        return
    if any(day <= _MAX_DAY[month] for month in schedule.months for day in schedule.days):
        return
    months = ", ".join(calendar.month_name[m] for m in sorted(schedule.months))
    days = ", ".join(str(d) for d in sorted(schedule.days))
    raise ScheduleError(f"{schedule.text!r} never fires: {months} never has day {days}")


def next_fires(
    schedules: Sequence[Schedule], tz: ZoneInfo, after: datetime, count: int
) -> list[datetime]:
    """The next `count` fire times of all `schedules`, merged, de-duplicated, in order.

    Instants are compared as timestamps: within one zone Python compares wall times and
    ignores `fold`, which would merge the two 01:30s of a fall-back night.
    """
    fires: list[datetime] = []
    cursors = dict.fromkeys(schedules, after)
    while len(fires) < count and cursors:
        upcoming = {s: s.next_after(c, tz) for s, c in cursors.items()}
        soonest = min(upcoming.values(), key=datetime.timestamp)
        fires.append(soonest.astimezone(tz))
        cursors = {
            s: soonest if n.timestamp() == soonest.timestamp() else cursors[s]
            for s, n in upcoming.items()
        }
    return fires
