"""Schedule math against cronie's rules, with an injected start time and cronsim as a check."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import islice
from zoneinfo import ZoneInfo

import pytest
from cronsim import CronSim
from hypothesis import given, settings
from hypothesis import strategies as st
from schedule_cases import CASES

from vaultsched.schedules import ScheduleError, next_fires, parse_schedule

UTC = ZoneInfo("UTC")
WARSAW = ZoneInfo("Europe/Warsaw")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")  # a 30-minute DST shift


def fires(text: str, tz: ZoneInfo, after: datetime, count: int = 5) -> list[str]:
    return [f.isoformat() for f in next_fires([parse_schedule(text)], tz, after, count)]


def at(text: str, tz: ZoneInfo) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=tz)


def test_intervals_align_to_the_unix_epoch_in_utc() -> None:
    after = datetime(2026, 3, 1, 10, 7, 13, tzinfo=UTC)
    assert fires("every 15m", UTC, after, 3) == [
        "2026-03-01T10:15:00+00:00",
        "2026-03-01T10:30:00+00:00",
        "2026-03-01T10:45:00+00:00",
    ]
    assert fires("every 1h30m", UTC, after, 1) == ["2026-03-01T10:30:00+00:00"]
    assert fires("every 1s", UTC, after, 2) == [
        "2026-03-01T10:07:14+00:00",
        "2026-03-01T10:07:15+00:00",
    ]


def test_intervals_ignore_dst() -> None:
    # Spring forward in Warsaw: 02:00 -> 03:00 on 2026-03-29; an hourly interval keeps ticking.
    got = fires("every 1h", WARSAW, at("2026-03-29T00:30", WARSAW), 3)
    assert got == [
        "2026-03-29T01:00:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-29T04:00:00+02:00",
    ]


@pytest.mark.parametrize(
    ("macro", "cron"),
    [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
    ],
)
def test_macros_are_their_cron_lines(macro: str, cron: str) -> None:
    after = datetime(2026, 5, 17, 13, 0, tzinfo=UTC)
    assert fires(macro, UTC, after) == fires(cron, UTC, after)


def test_names_and_both_sundays() -> None:
    after = datetime(2026, 1, 1, tzinfo=UTC)
    assert fires("0 9 * JAN-MAR MON-FRI", UTC, after) == fires("0 9 * 1-3 1-5", UTC, after)
    assert (
        fires("0 0 * * 7", UTC, after)
        == fires("0 0 * * 0", UTC, after)
        == fires("0 0 * * SUN", UTC, after)
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0 0 31 2 *", "never fires"),
        ("0 0 30 2 *", "never fires"),
        ("0 0 31 4,6,9,11 *", "never fires"),
        ("0 0 0 * * *", "6 fields"),
        ("0 0 0 * * * 2026", "7 fields"),
        ("0 0 L * *", "not supported"),
        ("0 0 * * 1#2", "not cron syntax"),
        ("61 * * * *", "not a valid cron line"),
        ("0 0 * * FOO", "not valid in the day-of-week field"),
        ("every 0s", "every 1s"),
        ("every fortnight", "every"),
        ("@reboot", "not supported"),
        ("@often", "unknown macro"),
        ("", "empty schedule"),
    ],
)
def test_bad_schedules_say_why(text: str, message: str) -> None:
    with pytest.raises(ScheduleError, match=message):
        parse_schedule(text)


def test_one_value_ranges_are_that_value() -> None:
    # croniter reads `5-5` as `*`; cronie reads it as 5.
    after = datetime(2026, 1, 1, tzinfo=UTC)
    assert fires("5-5 * * * *", UTC, after) == fires("5 * * * *", UTC, after)
    assert fires("0-0/5 0 * * *", UTC, after) == fires("0 0 * * *", UTC, after)
    assert fires("0 0 1-31 * MON", UTC, after, 3) == fires("0 0 * * *", UTC, after, 3)


def test_reversed_ranges_are_refused() -> None:
    with pytest.raises(ScheduleError, match="reversed range"):
        parse_schedule("0 0 * * FRI-MON")
    with pytest.raises(ScheduleError, match="reversed range"):
        parse_schedule("30-10 * * * *")
    assert parse_schedule("0 0 * * 5-7")  # up to Sunday as 7 is fine


def test_a_leap_day_schedule_finds_the_next_leap_year() -> None:
    assert fires("0 0 29 2 *", UTC, datetime(2026, 3, 1, tzinfo=UTC), 2) == [
        "2028-02-29T00:00:00+00:00",
        "2032-02-29T00:00:00+00:00",
    ]


@pytest.mark.parametrize(("zone", "schedule", "start", "expected"), CASES)
def test_known_answers(zone: str, schedule: str, start: str, expected: list[str]) -> None:
    tz = ZoneInfo(zone)
    assert fires(schedule, tz, at(start, tz), len(expected)) == expected


def test_several_schedules_merge_without_duplicates() -> None:
    schedules = [parse_schedule("0 * * * *"), parse_schedule("every 30m")]
    got = next_fires(schedules, UTC, datetime(2026, 1, 1, tzinfo=UTC), 3)
    assert [f.isoformat() for f in got] == [
        "2026-01-01T00:30:00+00:00",
        "2026-01-01T01:00:00+00:00",
        "2026-01-01T01:30:00+00:00",
    ]


# -- against cronsim, an independent implementation of cronie's rules ---------------------------


def _field(low: int, high: int, names: list[str] | None = None) -> st.SearchStrategy[str]:
    value = st.integers(low, high)
    pairs = st.lists(value, min_size=2, max_size=2, unique=True).map(sorted)
    atoms = [
        st.just("*"),
        st.builds(lambda s: f"*/{s}", st.integers(1, max(1, high - low))),
        value.map(str),
        # Proper ranges only: a one-value range with a step (`0-0/1`) is where cronsim and
        # cronie part ways; test_one_value_ranges pins cronie's reading.
        pairs.map(lambda ab: f"{ab[0]}-{ab[1]}"),
        st.builds(lambda ab, s: f"{ab[0]}-{ab[1]}/{s}", pairs, st.integers(1, 5)),
        st.lists(value, min_size=2, max_size=4, unique=True).map(
            lambda vs: ",".join(map(str, sorted(vs)))
        ),
    ]
    if names:
        atoms.append(st.sampled_from(names))
    return st.one_of(atoms)


MONTH_NAMES = ["JAN", "MAR", "JUN", "DEC"]
DAY_NAMES = ["MON", "FRI", "SUN"]
EXPRESSIONS = st.builds(
    lambda *fields: " ".join(fields),
    _field(0, 59),
    _field(0, 23),
    _field(1, 31),
    _field(1, 12, MONTH_NAMES),
    _field(0, 6, DAY_NAMES),
)
STARTS = st.datetimes(datetime(2024, 1, 1), datetime(2030, 12, 31))
ZONES = st.sampled_from([UTC, WARSAW, NEW_YORK])


@settings(max_examples=400, deadline=None)
@given(expression=EXPRESSIONS, start=STARTS, zone=ZONES)
def test_agrees_with_cronsim(expression: str, start: datetime, zone: ZoneInfo) -> None:
    try:
        schedule = parse_schedule(expression)
    except ScheduleError as exc:
        assert "never fires" in str(exc)  # the generator only makes well-formed lines
        return
    after = start.replace(tzinfo=zone)
    ours = next_fires([schedule], zone, after, 8)
    theirs = list(islice(CronSim(expression, after), 8))
    assert [f.timestamp() for f in ours] == [f.timestamp() for f in theirs], expression


def test_next_fire_is_strictly_after_the_start() -> None:
    start = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    (first,) = next_fires([parse_schedule("0 12 * * *")], UTC, start, 1)
    assert first == start + timedelta(days=1)
