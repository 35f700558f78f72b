from datetime import timedelta

import pytest

from vaultsched.durations import format_duration, parse_duration


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
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)


def test_negative_number() -> None:
    with pytest.raises(ValueError, match="negative"):
        parse_duration(-1)


@pytest.mark.parametrize(
    ("seconds", "shown"), [(0.42, "0.4s"), (12, "12s"), (184, "3m04s"), (3720, "1h02m")]
)
def test_format(seconds: float, shown: str) -> None:
    assert format_duration(seconds) == shown
