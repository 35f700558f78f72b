"""A value a task note and the vault config both take is checked the same way in each."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from vaultsched.adapters.config import Config, parse_config
from vaultsched.core.errors import VaultschedError
from vaultsched.core.taskfile import parse_task

TASK = "command: x\n"


def task_message(key: str, value: str) -> str:
    parsed = parse_task("Tasks/T.md", f"{TASK}{key}: {value}\n", Config(ZoneInfo("UTC")))
    (problem,) = parsed.problems
    return problem.message


def config_message(raw: dict[str, object]) -> str:
    with pytest.raises(VaultschedError) as caught:
        parse_config(raw)
    return str(caught.value)


@pytest.mark.parametrize(
    ("task_line", "config", "message"),
    [
        ('enabled: "yes"', {"enabled": "yes"}, "enabled must be true or false, got 'yes'"),
        ("keep_runs: 0", {"keep_runs": 0}, "keep_runs must be a whole number >= 1, got 0"),
        (
            "notify: loud",
            {"notify": {"on": "loud"}},
            "on must be one of failure, always, never, got 'loud'",
        ),
    ],
)
def test_same_check_same_words(task_line: str, config: dict[str, object], message: str) -> None:
    key, value = task_line.split(": ")
    assert task_message(key, value) == f"{key}: {message.partition(' ')[2]}"
    assert config_message(config) == f".vaultsched/config.toml: {message}"


def test_an_unknown_zone_is_named_alike() -> None:
    message = "timezone: unknown timezone 'Mars/Olympus' (use an IANA name such as Europe/Warsaw)"
    assert task_message("timezone", "Mars/Olympus") == message
    assert config_message({"timezone": "Mars/Olympus"}) == f".vaultsched/config.toml: {message}"


def test_groups_take_a_max_parallel_each() -> None:
    config = parse_config({"timezone": "UTC", "groups": {"api": {"max_parallel": 3}, "x": {}}})
    assert config.groups == {"api": 3, "x": 1}
    assert "[groups.api] must be a table" in config_message({"groups": {"api": 2}})
    assert "max_parallel must be a whole number >= 1, got 0" in config_message(
        {"groups": {"api": {"max_parallel": 0}}}
    )
    assert "[groups.api] has unknown keys: max" in config_message({"groups": {"api": {"max": 2}}})
