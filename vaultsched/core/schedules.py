"""Schedule math: cron (cronie's rules), macros and `every` intervals. Pure: time is an argument.

croniter reads and expands the cron fields. Where cronie reads a field differently, the text is
refused or rewritten before croniter sees it, one named rule per difference (`_for_croniter`).
Fire times are computed here on local wall-clock dates, because that is where cronie's
daylight-saving rules live (`cron.c`); croniter's own iteration differs there.
"""

from __future__ import annotations

import calendar
import re
from bisect import bisect_right
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import MAXYEAR, UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from vaultsched.core.durations import parse_duration

if TYPE_CHECKING:
    from croniter import croniter

INTERVAL_MIN = timedelta(seconds=1)
# The Gregorian calendar, weekdays included, repeats every 400 years (146,097 days, a whole
# number of weeks): a cron line with no fire time in 400 years never fires.
CYCLE_YEARS = 400

MACROS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_MAX_DAY = {1: 31, 2: 29, 3: 31, 4: 30, 5: 31, 6: 30, 7: 31, 8: 31, 9: 30, 10: 31, 11: 30, 12: 31}
# One list item's shape, as cronie takes it: `*`, `*/step`, `n`, `n-m` or `n-m/step`, where n and
# m are numbers or names (croniter reads them). ASCII only: `\d` would take `٣` for 3.
_TERM = re.compile(r"(?:(\*)|([0-9A-Za-z]+)(?:-([0-9A-Za-z]+))?)(?:/([0-9]+))?")
_FOREIGN = re.compile(r"[^0-9A-Za-z*,/-]")
# Words croniter gives a meaning that cronie does not have: L and W (last day, nearest
# weekday), H (hashed) and R (random).
_OTHER_CRONS = re.compile(r"[0-9]*(l|w|lw|h|r)[0-9]*", re.IGNORECASE)
_OTHER_CRONS_HINT = " (L, W, H, R, #, ? and ~ belong to other crons and are not supported)"


@dataclass(frozen=True)
class _Field:
    index: int  # croniter's position of the field
    name: str
    low: int  # cronie's bounds, for messages
    high: int


_FIELDS = (
    _Field(0, "minute", 0, 59),
    _Field(1, "hour", 0, 23),
    _Field(2, "day-of-month", 1, 31),
    _Field(3, "month", 1, 12),
    _Field(4, "day-of-week", 0, 7),  # 0 and 7 are both Sunday
)
_DOW = _FIELDS[4]


class ScheduleError(ValueError):
    """A schedule that cannot be used; the message is one line, fit for `validate`."""


@dataclass(frozen=True)
class Schedule:
    text: str

    def next_after(self, after: datetime, tz: ZoneInfo) -> datetime | None:
        """The first fire strictly after `after`; None if there is none before the end of
        the calendar (year 9999)."""
        try:
            return self._next_after(after, tz)
        except ScheduleError:
            raise
        except (OverflowError, ValueError):
            # datetime's way of saying a result would fall past year 9999 (or before year 1).
            return None

    def _next_after(self, after: datetime, tz: ZoneInfo) -> datetime | None:
        raise NotImplementedError


@dataclass(frozen=True)
class IntervalSchedule(Schedule):
    period: timedelta

    def _next_after(self, after: datetime, tz: ZoneInfo) -> datetime | None:
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
    days: frozenset[int]  # day of month
    months: tuple[int, ...]
    weekdays: frozenset[int]  # 0 = Monday (Python's)
    day_or: bool  # both day fields restricted: either matching fires (cronie)
    wildcard: bool  # minute or hour starts with `*`: cronie's DST rules for wildcard jobs

    def _next_after(self, after: datetime, tz: ZoneInfo) -> datetime | None:
        local = after.astimezone(tz)
        # A fall-back repeat of the day before can still lie ahead of `local` (in UTC).
        start = local.date() - timedelta(days=1) if local.date() > date.min else local.date()
        for day in self._matching_days(start):
            fire = self._first_on(day, tz, local)
            if fire is not None:
                return fire
        if start.year + CYCLE_YEARS >= MAXYEAR:
            return None  # the calendar ended before a whole cycle was searched
        raise ScheduleError(f"{self.text!r} never fires: no fire time within {CYCLE_YEARS} years")

    def _matching_days(self, start: date) -> Iterator[date]:
        """Days on and after `start`, for one whole Gregorian cycle, that the day and month
        fields allow; a month at a time, so a sparse line skips years in a few steps."""
        last_year = min(start.year + CYCLE_YEARS, MAXYEAR)
        for year in range(start.year, last_year + 1):
            for month in self.months:
                if (year, month) < (start.year, start.month):
                    continue
                for dom in _month_days(self, *calendar.monthrange(year, month)):
                    day = date(year, month, dom)
                    if day >= start:
                        yield day

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


@lru_cache(maxsize=1024)  # a month is one of 14 shapes: 7 first weekdays, 28 to 31 days
def _month_days(schedule: CronSchedule, first_weekday: int, length: int) -> tuple[int, ...]:
    """The days of a month of `length` days starting on `first_weekday` that `schedule` allows."""
    matches = []
    for dom in range(1, length + 1):
        in_dom = dom in schedule.days
        in_dow = (first_weekday + dom - 1) % 7 in schedule.weekdays
        if (in_dom or in_dow) if schedule.day_or else (in_dom and in_dow):
            matches.append(dom)
    return tuple(matches)


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
            for fire in _real_instants(wall, tz, schedule.wildcard):
                fires.setdefault(fire.timestamp(), fire)
    stamps = tuple(sorted(fires))
    return stamps, tuple(fires[k] for k in stamps)


def _micros(delta: timedelta) -> int:
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


@lru_cache(maxsize=4096)
def _plain_day(day: date, tz: ZoneInfo) -> bool:
    """True when the zone's UTC offset does not change during this local date."""
    moments = [datetime.combine(day, t, tzinfo=tz) for t in _PROBES]
    # fold=1 differs from fold=0 only inside a repeated or skipped hour, which catches a
    # fall-back from 24:00 to 23:00 (Santiago) that every fold=0 probe would miss.
    offsets = {m.replace(fold=f).utcoffset() for m in moments for f in (0, 1)}
    return len(offsets) == 1


# A transition and its reversal on one day (rare, but tzdata has them) would fool two probes.
_PROBES = (time(0), time(6), time(12), time(18), time(23, 59, 59))


def _real_instants(wall: datetime, tz: ZoneInfo, wildcard: bool) -> list[datetime]:
    """The instants a naive wall-clock time denotes in `tz`, by cronie's DST rules."""
    first = wall.replace(tzinfo=tz, fold=0)
    second = wall.replace(tzinfo=tz, fold=1)
    if first.utcoffset() == second.utcoffset():
        return [first]
    as_utc = first.astimezone(UTC)
    if as_utc.astimezone(tz).replace(tzinfo=None) != wall:
        # Skipped by spring-forward: cronie runs a fixed-time job once right after the gap,
        # and a wildcard job not at all (its next time after the gap comes soon enough).
        return [] if wildcard else [gap_end(wall, tz)]
    # Repeated by fall-back: a fixed-time job once (the first), a wildcard job at both.
    return [first, second] if wildcard else [first]


def gap_end(wall: datetime, tz: ZoneInfo) -> datetime:
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
    specs = [_for_croniter(text, field, spec) for field, spec in zip(_FIELDS, fields, strict=True)]
    minutes, hours, days, months, weekdays = _expand(text, fields, specs)
    minute, hour, dom, _, dow = fields
    schedule = CronSchedule(
        text=text,
        minutes=minutes,
        hours=hours,
        days=frozenset(days),
        months=months,
        # cron counts Sunday as 0 (and 7); Python's weekday() counts Monday as 0.
        weekdays=frozenset((v - 1) % 7 for v in weekdays),
        # From the text as written, not croniter's values: cronie looks only at a field's
        # first character, so `*,3` is unrestricted and `3,*` is not.
        day_or=not dom.startswith("*") and not dow.startswith("*"),
        wildcard=minute.startswith("*") or hour.startswith("*"),
    )
    _check_reachable(schedule)
    return schedule


# -- What cronie reads differently from croniter: refused or rewritten before croniter ---------


def _for_croniter(text: str, field: _Field, spec: str) -> str:
    """One field as croniter should see it, or ScheduleError where cronie refuses it."""
    terms = spec.split(",")
    return ",".join(_term_for_croniter(text, field, term, len(terms) > 1) for term in terms)


def _term_for_croniter(text: str, field: _Field, term: str, in_list: bool) -> str:
    """One list item for croniter: each call below is one way cronie differs from it."""
    match = _TERM.fullmatch(term)
    if match is None:
        # croniter refuses these too, but its message names neither the field nor the term.
        raise _syntax_error(text, field, term)
    star, first, last, step = match.groups()
    _refuse_other_crons(text, field, first, last)
    _refuse_zero_step(text, field, term, step)
    if star:
        return _whole_field(field, step) if in_list else term
    if last is None:
        return _single(text, field, term, first, step)
    return _range(text, field, term, first, last)


def _refuse_other_crons(text: str, field: _Field, *words: str | None) -> None:
    """croniter takes L, 15W, H and R (last day, nearest weekday, hashed, random); cronie
    refuses them."""
    for word in words:
        if word is not None and _OTHER_CRONS.fullmatch(word):
            raise ScheduleError(
                f"{text!r}: {word!r} is not valid in the {field.name} field{_OTHER_CRONS_HINT}"
            )


def _refuse_zero_step(text: str, field: _Field, term: str, step: str | None) -> None:
    """croniter refuses a step of 0 too, but not after `5-5/0` has become `5` (`_range`)."""
    if step is not None and not step.strip("0"):
        raise ScheduleError(f"{text!r}: {term!r} in the {field.name} field has a step of 0")


def _whole_field(field: _Field, step: str | None) -> str:
    """`*` or `*/n` inside a list, as croniter's full range for the field (`0-59/n`).

    croniter keeps a listed `*` as the string '*' beside the numbers; cronie reads it as the
    whole field. For day-of-week croniter's range is 0-6: with any step that is cronie's 0-7,
    whose 7 is Sunday, 0, again.
    """
    low, high = _croniter().RANGES[field.index]
    return f"{low}-{high}" if step is None else f"{low}-{high}/{step}"


def _single(text: str, field: _Field, term: str, word: str, step: str | None) -> str:
    if step is not None:
        # croniter reads `5/15` as `5-59/15`; cronie refuses a step after a single value.
        raise ScheduleError(
            f"{text!r}: {term!r} in the {field.name} field has a step but no range; "
            f"write {word}-{field.high}/{step} (cronie refuses {term!r} too)"
        )
    _value(text, field, word)  # refused here, the word named, if croniter refuses it
    return term


def _range(text: str, field: _Field, term: str, first: str, last: str) -> str:
    low, high = _value(text, field, first), _value(text, field, last)
    if field is _DOW and high == 0 < low:
        # cronie: a day-of-week range ending on Sunday ends on 7 (`SAT-SUN`). croniter wraps
        # it round the week, which gives the same days: the term goes through unchanged.
        high = 7
    if low > high:
        # croniter wraps any reversed range (`FRI-MON`: Friday to Monday); cronie refuses it.
        raise ScheduleError(
            f"{text!r}: {term!r} in the {field.name} field is a reversed range; write it low-high"
        )
    if low == high:
        # croniter reads a one-value range (`5-5`, `5-5/2`) as the whole field; cronie as
        # that one value.
        return first
    return term


def _value(text: str, field: _Field, word: str) -> int:
    """One number or name as croniter reads it; ScheduleError naming the word if it refuses."""
    try:
        (value,) = _croniter_field(field.index, word)
    except ValueError:  # croniter's errors are ValueErrors, and it wraps int()'s as its own
        raise _bad_value(text, field, word) from None
    # croniter makes day-of-week 7 Sunday's 0 at once; cronie keeps it 7 in a range's bounds,
    # where it matters: `0-7` is the whole week, `7-0` (read as `7-7`) only Sunday.
    return 7 if field is _DOW and value == 0 and word.isdigit() and word.strip("0") else value


def _bad_value(text: str, field: _Field, word: str) -> ScheduleError:
    if word.isdigit():
        return ScheduleError(
            f"{text!r}: {word} is out of range in the {field.name} field ({field.low}-{field.high})"
        )
    return ScheduleError(f"{text!r}: {word!r} is not valid in the {field.name} field")


def _syntax_error(text: str, field: _Field, term: str) -> ScheduleError:
    if not term:
        return ScheduleError(
            f"{text!r}: an empty list item in the {field.name} field (a comma too many)"
        )
    foreign = "".join(sorted(set(_FOREIGN.findall(term))))
    hint = _OTHER_CRONS_HINT if set(foreign) & set("#?~") else ""
    return ScheduleError(
        f"{text!r}: {foreign or term!r} in the {field.name} field is not cron syntax{hint}"
    )


# -- croniter's expansion ------------------------------------------------------------------


def _croniter() -> type[croniter]:
    """croniter (and dateutil with it) is imported when a cron line is first read: it is slow
    to import, and `--help`, an `every` schedule or a vault with no task never need it."""
    from croniter import croniter

    return croniter


def _expand(text: str, fields: list[str], specs: list[str]) -> list[tuple[int, ...]]:
    """croniter's values for the rewritten fields, each sorted."""
    try:
        expanded, _ = _croniter().expand(" ".join(specs))  # no nth weekdays: `#` was refused
    except ValueError:
        raise _refused_by_croniter(text, fields, specs) from None
    return [_numbers(index, values) for index, values in enumerate(expanded)]


@lru_cache(maxsize=1024)
def _croniter_field(index: int, spec: str) -> tuple[int, ...]:
    """croniter's values for one field, alone in a line of `*`."""
    line = ["*"] * len(_FIELDS)
    line[index] = spec
    expanded, _ = _croniter().expand(" ".join(line))
    return _numbers(index, expanded[index])


def _numbers(index: int, values: list[int | str]) -> tuple[int, ...]:
    """croniter's expansion of a field as numbers: it says `*` for a field it found whole."""
    if values == ["*"]:
        low, high = _croniter().RANGES[index]
        return tuple(range(low, high + 1))
    return tuple(sorted(int(v) for v in values))


def _refused_by_croniter(text: str, fields: list[str], specs: list[str]) -> ScheduleError:
    """croniter's messages name the line, not the field: expand each field alone to find it.

    Every word has been read by croniter already (`_value`); what is left is a step too long
    for int() (thousands of digits).
    """
    for field, written, spec in zip(_FIELDS, fields, specs, strict=True):
        try:
            _croniter_field(field.index, spec)
        except ValueError:
            return ScheduleError(f"{text!r}: {written!r} in the {field.name} field is not valid")
    return ScheduleError(f"{text!r} is not a valid cron line")


def _check_reachable(schedule: CronSchedule) -> None:
    """Refuse day/month combinations that never exist (`0 0 31 2 *`).

    This is the only way a cron line can have no fire time in a whole Gregorian cycle. If
    either day field is restricted alone, the other starts with `*` and so allows day 1 (for
    day-of-month) or Sunday (for day-of-week); every day of a month falls on every weekday
    within 400 years (29 February on a Sunday: 2032, 2060, 2088, 2128).
    """
    if schedule.day_or:
        return
    if any(day <= _MAX_DAY[month] for month in schedule.months for day in schedule.days):
        return
    months = ", ".join(calendar.month_name[m] for m in schedule.months)
    days = ", ".join(str(d) for d in sorted(schedule.days))
    raise ScheduleError(f"{schedule.text!r} never fires: {months} never has day {days}")


def next_fires(
    schedules: Sequence[Schedule], tz: ZoneInfo, after: datetime, count: int
) -> list[datetime]:
    """The next `count` fire times of all `schedules`, merged, de-duplicated, in order; fewer
    when the calendar ends first (year 9999).

    Instants are compared as timestamps: within one zone Python compares wall times and
    ignores `fold`, which would merge the two 01:30s of a fall-back night.
    """
    fires: list[datetime] = []
    cursors = dict.fromkeys(schedules, after)
    while len(fires) < count and cursors:
        upcoming = {s: s.next_after(c, tz) for s, c in cursors.items()}
        live = {s: n for s, n in upcoming.items() if n is not None}
        if not live:
            break
        soonest = min(live.values(), key=datetime.timestamp)
        fires.append(soonest.astimezone(tz))
        cursors = {
            s: soonest if n.timestamp() == soonest.timestamp() else cursors[s]
            for s, n in live.items()
        }
    return fires
