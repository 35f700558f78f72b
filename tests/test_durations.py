import math
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vaultsched.core.durations import (
    MAX_DURATION,
    DurationError,
    format_duration,
    format_relative,
    parse_duration,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("2h", 7200),
        ("1d", 86400),
        ("1h30m", 5400),
        ("1d2h3m4s", 93784),
        ("45", 45),
        (45, 45),
        (1.5, 1.5),
        ("0s", 0),
        (" 10m ", 600),
    ],
)
def test_parses(text: object, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "abc", "10x", "1.5h", "m", "-5", True, None, [1], "30m1h"])
def test_rejects(text: object) -> None:
    with pytest.raises(DurationError, match="duration"):
        parse_duration(text)


def test_negative_number() -> None:
    with pytest.raises(DurationError, match="negative"):
        parse_duration(-1)
    with pytest.raises(DurationError, match="negative"):
        parse_duration(-(10**5000))  # too long for str(): the message must not print it


@pytest.mark.parametrize(
    "value",
    [
        "36526d",
        "3000000d",
        "99999999999d",
        "99999999999",
        "876601h",
        "99999999999.5",
        "9" * 60 + "s",
        36525 * 86400 + 1,
        10**30,
        1e300,
        3.2e9,
    ],
)
def test_at_most_100_years(value: object) -> None:
    with pytest.raises(DurationError, match="at most 100 years"):
        parse_duration(value)


def test_a_number_too_long_to_print_is_refused_without_printing_it() -> None:
    with pytest.raises(DurationError, match="at most 100 years"):
        parse_duration(10**5000)


def test_100_years_itself_is_fine() -> None:
    assert parse_duration("36525d") == MAX_DURATION == parse_duration(36525 * 86400.0)


@pytest.mark.parametrize(
    "value", [math.inf, -math.inf, math.nan, "inf", ".inf", "nan", ".nan", "1e5", "٣s", "9" * 70]
)
def test_infinity_nan_and_junk_are_errors(value: object) -> None:
    with pytest.raises(DurationError, match="duration"):
        parse_duration(value)


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(alphabet="0123456789dhms .-+e_infa\t", max_size=30),
        st.text(max_size=12),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
    )
)
def test_only_duration_errors(value: object) -> None:
    try:
        parsed = parse_duration(value)
    except DurationError:
        return
    assert timedelta(0) <= parsed <= MAX_DURATION


@pytest.mark.parametrize(
    ("seconds", "shown"), [(0.42, "0.4s"), (12, "12s"), (184, "3m04s"), (3720, "1h02m")]
)
def test_format(seconds: float, shown: str) -> None:
    assert format_duration(seconds) == shown


NOW = datetime(2026, 3, 10, 9, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("delta", "shown"),
    [
        (timedelta(0), "now"),
        (timedelta(milliseconds=400), "now"),
        (timedelta(seconds=12), "in 12s"),
        (-timedelta(seconds=59.9), "59s ago"),
        (-timedelta(minutes=3, seconds=20), "3m ago"),
        (timedelta(hours=2, minutes=59), "in 2h"),
        (-timedelta(hours=23), "23h ago"),
        (timedelta(hours=30), "tomorrow"),  # 15:00 the next day
        (-timedelta(hours=25), "yesterday"),
        (-timedelta(hours=34), "2 days ago"),  # 23:00 two days before: a calendar day more
        (timedelta(days=13), "in 13 days"),
        (timedelta(days=15), "in 2 weeks"),
        (-timedelta(days=59), "8 weeks ago"),
        (timedelta(days=300), "in 10 months"),
        (timedelta(days=800), "in 2 years"),
    ],
)
def test_relative(delta: timedelta, shown: str) -> None:
    assert format_relative(NOW + delta, NOW) == shown


def test_relative_days_are_the_calendar_days_of_the_moments_zone() -> None:
    now = datetime(2026, 3, 10, 23, 30, tzinfo=UTC)  # 00:30 on the 11th in Warsaw (UTC+1)
    before = now - timedelta(hours=25)  # 22:30 on the 9th in UTC, 23:30 on the 9th in Warsaw
    assert format_relative(before, now) == "yesterday"
    assert format_relative(before.astimezone(ZoneInfo("Europe/Warsaw")), now) == "2 days ago"
