"""Front matter reading and task validation: every problem with its line, nothing raised."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaultsched.adapters import notefile
from vaultsched.adapters.config import Config
from vaultsched.adapters.notefile import read_front_matter
from vaultsched.core.taskfile import front_matter_span, front_matter_text, near_miss, parse_task

CONFIG = Config(timezone=ZoneInfo("Europe/Warsaw"))


def parse(yaml_text: str):  # type: ignore[no-untyped-def]
    return parse_task("Tasks/T.md", yaml_text, CONFIG)


def messages(yaml_text: str) -> list[str]:
    return [str(p) for p in parse(yaml_text).problems]


def test_full_task() -> None:
    parsed = parse(
        'schedule: ["0 9 * * MON-FRI", "every 15m"]\n'
        "command: [python, scripts/x.py, 5]\n"
        "timezone: America/New_York\n"
        "enabled: no\n"
        "timeout: 1h30m\n"
        "retries: 2\n"
        "retry_delay: 10s\n"
        "catch_up: false\n"
        "overlap: queue\n"
        "jitter: 5s\n"
        "cwd: ~/work\n"
        "env: {A: x, PORT: 8080}\n"
        "stdin: body\n"
        "host: server\n"
        "notify: always\n"
        "keep_runs: 3\n"
        "approval: required\n"
        "tags: [mine]\n"
    )
    task = parsed.task
    assert task is not None, parsed.problems
    assert task.id == "Tasks/T"
    assert task.command == ("python", "scripts/x.py", "5")
    assert [s.text for s in task.schedules] == ["0 9 * * MON-FRI", "every 15m"]
    assert task.timezone == ZoneInfo("America/New_York")
    assert task.enabled is False
    assert task.timeout == timedelta(minutes=90)
    assert (task.retries, task.retry_delay, task.catch_up) == (2, timedelta(seconds=10), False)
    assert (task.overlap, task.jitter, task.cwd) == ("queue", timedelta(seconds=5), "~/work")
    assert task.env == {"A": "x", "PORT": "8080"}
    assert (task.stdin, task.hosts, task.notify) == ("body", ("server",), "always")
    assert (task.keep_runs, task.approval) == (3, "required")
    assert parsed.problems == ()


def test_defaults_come_from_config() -> None:
    task = parse("command: echo hi\n").task
    assert task is not None
    assert task.manual
    assert task.timezone == ZoneInfo("Europe/Warsaw")
    assert task.timeout == timedelta(hours=1)
    assert task.keep_runs == 10


def test_not_a_task() -> None:
    assert not parse("title: hello\n").is_task
    assert not parse_task("a.md", None, CONFIG).is_task
    parsed = parse("title: x\nschedule: '@daily'\n")
    assert not parsed.is_task
    assert [str(p) for p in parsed.problems] == [
        "Tasks/T.md:3: note: has a schedule but no command: not a task"
    ]


def test_unquoted_star_is_explained_with_the_fix() -> None:
    parsed = parse("command: echo hi\nschedule: */5 * * * *\n")
    assert parsed.is_task and parsed.task is None
    (problem,) = parsed.problems
    assert problem.line == 3
    assert "quote it" in problem.message
    assert 'schedule: "*/5 * * * *"' in problem.message


def test_sexagesimal_timeout_is_an_error() -> None:
    (message,) = messages("command: x\ntimeout: 1:30\n")
    assert message.startswith("Tasks/T.md:3: timeout: 1:30 is read by YAML as a base-60 number")


def test_every_problem_is_reported_with_its_line() -> None:
    found = messages(
        "command: x\n"
        "schedule: '0 0 31 2 *'\n"
        "timezone: Mars/Olympus\n"
        "enabled: maybe\n"
        "timeout: soon\n"
        "retries: -1\n"
        "overlap: off\n"
        "comand: typo\n"
        "env: [1, 2]\n"
    )
    lines = {m.split(":")[1]: m for m in found}
    assert set(lines) == {"3", "4", "5", "6", "7", "8", "9", "10"}
    assert "never" in lines["3"]
    assert "unknown timezone 'Mars/Olympus'" in lines["4"]
    assert "true or false" in lines["5"]
    assert "not a duration" in lines["6"]
    assert ">= 0" in lines["7"]
    assert "YAML read a boolean" in lines["8"]
    assert lines["9"] == "Tasks/T.md:9: warning: unknown key 'comand': did you mean 'command'?"
    assert "map" in lines["10"]


def test_bad_yaml_in_a_task_note_is_a_problem() -> None:
    parsed = parse("command: echo\nschedule: [unclosed\n")
    assert parsed.is_task and parsed.task is None
    assert parsed.problems[0].message.startswith("invalid YAML")


def test_bad_yaml_in_an_ordinary_note_is_ignored() -> None:
    assert parse("title: [unclosed\n").problems == ()


@pytest.mark.parametrize(
    ("text", "line", "shown"),
    [
        ("command: x\ncreated: 2024-02-30\n", 3, "2024-02-30"),
        ("command: x\nnested: {when: [2024-13-01]}\n", 3, "2024-13-01"),
        ("command: x\ndone: 2024-05-01 25:00:00\n", 3, "2024-05-01 25:00:00"),
    ],
)
def test_a_date_that_does_not_exist_is_a_problem_at_its_line(
    text: str, line: int, shown: str
) -> None:
    parsed = parse(text)
    assert parsed.is_task and parsed.task is None
    (problem,) = parsed.problems
    assert problem.line == line
    assert problem.message.startswith(f"YAML reads {shown} as a date, and it is not one (")
    assert parse(text.replace("command: x\n", "title: x\n")).problems == ()


@pytest.mark.parametrize("bad", ["command: ''\n", "command: []\n", "command: {a: 1}\n"])
def test_bad_commands(bad: str) -> None:
    assert parse(bad).task is None
    assert parse(bad).problems


@pytest.mark.parametrize(
    ("key", "guess"),
    [("comand", "command"), ("schedul", "schedule"), ("timout", "timeout"), ("hosts", "host")],
)
def test_near_miss(key: str, guess: str) -> None:
    assert near_miss(key) == guess


@pytest.mark.parametrize("key", ["tags", "aliases", "dev", "key", "created", "cssclasses"])
def test_not_near_miss(key: str) -> None:
    assert near_miss(key) is None


def test_read_front_matter_reads_only_the_header(tmp_path: Path) -> None:
    note = tmp_path / "n.md"
    note.write_bytes(b"---\r\ncommand: x\r\n---\r\n" + b"\xff\xfe not utf8 body" * 1000)
    assert read_front_matter(note) == "command: x\r\n"


def test_read_front_matter_none_cases(tmp_path: Path) -> None:
    note = tmp_path / "n.md"
    note.write_text("# title\n---\ncommand: x\n---\n")
    assert read_front_matter(note) is None
    note.write_text("---\ncommand: x\nno closing fence\n")
    assert read_front_matter(note) is None
    note.write_text("")
    assert read_front_matter(note) is None


def _line_by_line(data: bytes) -> str | None:
    """The plain reading of the rule, one line at a time, as the reference for the fast reader."""
    lines = data.removeprefix(b"\xef\xbb\xbf").split(b"\n")
    pieces = [line + b"\n" for line in lines[:-1]] + ([lines[-1]] if lines[-1] else [])
    strip = notefile._strip_eol
    if not pieces or not pieces[0].endswith(b"\n") or strip(pieces[0]) != b"---":
        return None
    for n, line in enumerate(pieces[1:], 1):
        if strip(line) in (b"---", b"..."):
            return b"".join(pieces[1:n]).decode("utf-8")
    return None


LINES = st.sampled_from(
    [
        "---",
        "...",
        "----",
        "--- ",
        "---\r",
        "... \t",
        "-- -",
        "k: v",
        "command: x",
        "",
        "\r",
        "x" * 50,
    ]
)


@settings(max_examples=400, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lines=st.lists(LINES, max_size=30),
    newline=st.sampled_from(["\n", "\r\n"]),
    bom=st.booleans(),
    trailing=st.booleans(),
    chunk=st.integers(1, 64),
)
def test_block_reader_agrees_with_reading_line_by_line(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    lines: list[str],
    newline: str,
    bom: bool,
    trailing: bool,
    chunk: int,
) -> None:
    # Tiny chunks put chunk edges inside fences, CRLFs and the BOM.
    monkeypatch.setattr(notefile, "READ_CHUNK", chunk)
    data = ("\ufeff" if bom else "") + newline.join(lines) + (newline if trailing else "")
    note = tmp_path / "n.md"
    note.write_bytes(data.encode("utf-8"))
    assert read_front_matter(note) == _line_by_line(data.encode("utf-8"))


def test_front_matter_too_large(tmp_path: Path) -> None:
    note = tmp_path / "n.md"
    note.write_text("---\n" + "k: v\n" * 20000 + "---\n")
    with pytest.raises(ValueError, match="larger than"):
        read_front_matter(note)


def test_front_matter_span_of_text() -> None:
    text = "---\ncommand: x\n---\nbody\n"
    span = front_matter_span(text)
    assert span is not None
    assert text[span.yaml_start : span.yaml_end] == "command: x\n"
    assert text[span.body_start :] == "body\n"
    assert front_matter_text("---\n---\n") == ""
    assert front_matter_text("no front matter") is None
