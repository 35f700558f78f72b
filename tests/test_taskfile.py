"""Front matter reading and task validation: every problem with its line, nothing raised."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaultsched.adapters import notefile
from vaultsched.adapters.config import Config
from vaultsched.adapters.notefile import read_front_matter
from vaultsched.core.model import Window
from vaultsched.core.taskfile import (
    NOT_A_TASK,
    front_matter_span,
    front_matter_text,
    may_be_task,
    near_miss,
    parse_task,
)

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


@pytest.mark.parametrize(
    "text",
    [
        "",
        "tags: [note]\n",
        "title: hello\n",
        "command: x\n",
        "schedule: '@daily'\n",
        "title: command\n",
        "comand: x\nschedules: y\n",
        "x: [unclosed\n",
        "a: 'schedule'\n",
    ],
)
def test_front_matter_that_may_not_be_a_task_is_none(text: str) -> None:
    """The walk of a cold index takes `may_be_task` false as NOT_A_TASK without parsing: only
    where `parse_task` would say so itself."""
    assert may_be_task(text) or parse(text) is NOT_A_TASK
    assert may_be_task(text) == ("command" in text or "schedule" in text)


def test_a_typo_of_command_is_flagged_where_the_note_has_no_command() -> None:
    parsed = parse("schedule: '@daily'\ncomand: echo hi\n")
    assert not parsed.is_task
    assert [str(p) for p in parsed.problems] == [
        "Tasks/T.md:2: note: has a schedule but no command: not a task",
        "Tasks/T.md:3: warning: unknown key 'comand': did you mean 'command'? "
        "(without it, not a task)",
    ]
    assert [str(p) for p in parse("schedule: '@daily'\ntags: [x]\n").problems] == [
        "Tasks/T.md:2: note: has a schedule but no command: not a task"
    ]


@pytest.mark.parametrize(
    ("front", "key"),
    [
        ('command: "echo a\\0b"\n', "command"),
        ('command: [echo, "a\\0"]\n', "command"),
        ('command: x\ncheck: "test\\0"\n', "check"),
        ('command: x\nenv: {A: "1\\0"}\n', "env"),
        ('command: x\ncwd: "sub\\0dir"\n', "cwd"),
    ],
)
def test_a_nul_that_no_command_line_can_carry_is_a_problem(front: str, key: str) -> None:
    parsed = parse(front)
    assert parsed.is_task and parsed.task is None
    (problem,) = parsed.errors
    assert problem.message.startswith(f"{key}: ") and "NUL character" in problem.message


def test_a_command_that_is_not_a_string_or_list_is_not_clearly_meant() -> None:
    plugin = parse("command: {name: Undo last commit}\n")
    assert plugin.is_task and plugin.task is None and plugin.errors  # listed as invalid
    assert not plugin.meant  # but the pre-commit hook does not refuse it
    assert parse("command: {name: x}\nschedule: '@daily'\n").meant
    assert parse("command: [1, {a: b}]\n").meant and parse("command: ''\n").meant


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


# -- workflow keys ----------------------------------------------------------------------------

WARSAW = ZoneInfo("Europe/Warsaw")


def test_workflow_keys() -> None:
    parsed = parse(
        "command: ./publish.sh\n"
        'schedule: "@daily"\n'
        "check: [test, -f, out/ready]\n"
        "if_changed: [Drafts/**, 'Notes/*.md']\n"
        'after: ["[[Draft report|the draft]]", Tasks/Fetch.md, Other]\n'
        "on: failure\n"
        "output: Results/{task} {date:YYYY-MM}\n"
        "group: gpu\n"
        "max_runs: 3\n"
        "until: 2025-06-30\n"
        "window: 22:00-06:30\n"
    )
    task = parsed.task
    assert task is not None, parsed.problems
    assert parsed.problems == ()
    assert task.check == ("test", "-f", "out/ready")
    assert task.if_changed == ("Drafts/**", "Notes/*.md")
    assert task.after == ("Draft report", "Tasks/Fetch", "Other")
    assert (task.on, task.output) == ("failure", "Results/{task} {date:YYYY-MM}")
    assert (task.group, task.max_runs) == ("gpu", 3)
    assert task.until == datetime(2025, 6, 30, 23, 59, 59, 999999, tzinfo=WARSAW)
    assert task.window == Window(time(22), time(6, 30))
    assert (task.key_lines["after"], task.key_lines["window"]) == (6, 12)


@pytest.mark.parametrize("text", ["on: always\n", "'on': always\n", '"on": always\n'])
def test_on_unquoted_is_the_key_yaml_would_make_a_boolean(text: str) -> None:
    parsed = parse("command: x\nafter: Other\n" + text)
    assert parsed.task is not None and parsed.task.on == "always"
    assert parsed.problems == ()


def test_on_problems() -> None:
    assert messages("command: x\nafter: A\non: sometimes\n") == [
        "Tasks/T.md:4: on: must be one of success, failure, always, got 'sometimes'"
    ]
    (message,) = messages("command: x\nafter: A\non: yes\n")
    assert message.startswith("Tasks/T.md:4: on: must be one of") and "boolean" in message
    assert messages("command: x\non: failure\n") == [
        "Tasks/T.md:3: warning: on: has no effect without after"
    ]


def test_other_boolean_keys_do_not_become_on() -> None:
    parsed = parse("command: x\nyes: failure\n")
    assert parsed.task is not None and parsed.task.on == "success"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("check: ''\n", "check: must not be empty"),
        ("check: true\n", 'check: YAML reads true as a boolean: quote it, e.g. check: "true"'),
        ("check: {a: 1}\n", "check: must be a string"),
        ("check: [test, [x]]\n", "check: each item of a check list must be a string"),
        ("if_changed: /etc/passwd\n", "if_changed: '/etc/passwd' is not inside the vault"),
        ("if_changed: ~/notes/*\n", "if_changed: '~/notes/*' is not inside the vault"),
        ("if_changed: [ok/*, Notes/../../x]\n", "if_changed: 'Notes/../../x' climbs out"),
        ("if_changed: ''\n", "if_changed: a glob must not be empty"),
        ("if_changed: **/*.md\n", 'if_changed starts with "*", which YAML reads as an alias'),
        ("after: [[Other task]]\n", "after: YAML reads [[Other task]] unquoted as a list in a"),
        ("after: '[[Other'\n", "after: '[[Other' opens a link with [[ and does not close it"),
        ("after: '[[ ]]'\n", "after: '[[ ]]' names no task"),
        ("after: [A, {b: 1}]\n", "after: each item must be a string"),
        ("output: Results/{nope}\n", "output: unknown placeholder {nope}"),
        ("output: ../Outside/{task}\n", "output: '../Outside/T' climbs out with '..'"),
        ("output: .obsidian/{date}\n", "output: '.obsidian/2024-12-31' names a hidden"),
        ("output: ''\n", "output: must be a non-empty string"),
        ("group: ' '\n", "group: must be a non-empty string"),
        ("group: 3\n", "group: must be a non-empty string, got 3"),
        ("max_runs: 0\n", "max_runs: must be a whole number >= 1, got 0"),
        ("max_runs: yes\n", "max_runs: must be a whole number >= 1, got True"),
        ("max_runs: '3'\n", "max_runs: must be a whole number >= 1, got '3'"),
        ("until: soon\n", "until: expected a date or a date and time"),
        ("until: 5\n", "until: expected a date or a date and time, e.g. 2025-06-30"),
        ("until: 9999-12-31\n", "until: 9999-12-31 is too near the ends of the calendar"),
        (
            "window: 9:00\n",
            'window: YAML reads 9:00 as a number; write a start and an end, e.g. "9',
        ),
        ("window: 09:00-09:00\n", "window: '09:00-09:00' starts and ends at the same time"),
        ("window: 22:00-24:00\n", "window: '22:00-24:00' is not a time of day"),
        ("window: 9-17\n", 'window: write "HH:MM-HH:MM" in the task\'s zone'),
        ("window: [09:00, 17:00]\n", 'window: write "HH:MM-HH:MM"'),
    ],
)
def test_workflow_key_problems(text: str, message: str) -> None:
    zone = "timezone: America/New_York\n" if "9999" in text else ""
    parsed = parse('command: x\nschedule: "@daily"\n' + zone + text)
    assert parsed.task is None
    (problem,) = parsed.errors
    assert problem.line == (5 if zone else 4)
    assert problem.message.startswith(message), problem.message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('"[[Draft]]"', ("Draft",)),
        ('"[[Tasks/Draft.md|shown]]"', ("Tasks/Draft",)),
        ('"[[Draft#Heading]]"', ("Draft",)),
        ('"[[Draft#^block]]"', ("Draft",)),
        ("Tasks/Draft", ("Tasks/Draft",)),
        ("2024", ("2024",)),
        ('["[[A]]", "[[B]]"]', ("A", "B")),
        ("\n  - '[[A]]'\n  - B.md", ("A", "B")),
    ],
)
def test_after_references_keep_only_the_target(value: str, expected: tuple[str, ...]) -> None:
    task = parse(f"command: x\nafter: {value}\n").task
    assert task is not None and task.after == expected


@pytest.mark.parametrize(
    ("value", "zone", "expected"),
    [
        ("2025-06-30", "Europe/Warsaw", datetime(2025, 6, 30, 23, 59, 59, 999999)),
        ("'2025-06-30'", "Europe/Warsaw", datetime(2025, 6, 30, 23, 59, 59, 999999)),
        ("2025-06-30 18:00:00", "Europe/Warsaw", datetime(2025, 6, 30, 18)),
        ('"2025-06-30 18:00"', "America/New_York", datetime(2025, 6, 30, 18)),
        ("2025-06-30T16:00:00Z", "Europe/Warsaw", datetime(2025, 6, 30, 18)),
        ('"2025-06-30T18:00+02:00"', "Europe/Warsaw", datetime(2025, 6, 30, 18)),
        # A time the clock skips: read with the offset before the change, an hour on.
        ('"2025-03-30 02:30"', "Europe/Warsaw", datetime(2025, 3, 30, 3, 30)),
    ],
)
def test_until(value: str, zone: str, expected: datetime) -> None:
    task = parse(f"command: x\ntimezone: {zone}\nuntil: {value}\n").task
    assert task is not None and task.until is not None
    assert task.until.tzinfo is ZoneInfo(zone)
    assert task.until.replace(tzinfo=None) == expected


def test_until_a_date_whose_last_hour_repeats_is_the_later_one() -> None:
    # Sao Paulo, 2018-02-18 00:00 BRST became 2018-02-17 23:00 BRT: 23:xx came twice.
    task = parse("command: x\ntimezone: America/Sao_Paulo\nuntil: 2018-02-17\n").task
    assert task is not None and task.until is not None
    assert task.until.astimezone(UTC) == datetime(2018, 2, 18, 2, 59, 59, 999999, tzinfo=UTC)


@pytest.mark.parametrize("value", ["22:00-06:00", "7:00-9:30", " 09:00 - 17:00 ", "'23:59-00:00'"])
def test_windows(value: str) -> None:
    parsed = parse(f'command: x\nschedule: "@hourly"\nwindow: {value}\n')
    assert parsed.task is not None and parsed.task.window is not None, parsed.problems


def test_a_window_without_a_schedule_is_a_warning() -> None:
    parsed = parse("command: x\nwindow: 09:00-17:00\n")
    assert parsed.task is not None
    assert [str(p) for p in parsed.problems] == [
        "Tasks/T.md:3: warning: window: has no effect without a schedule: it only defers "
        "scheduled fires"
    ]


def test_the_output_template_is_tried_with_the_note_name() -> None:
    assert parse_task("Tasks/a\\b.md", "command: x\noutput: 'R/{task}'\n", CONFIG).errors
    assert parse_task("Tasks/Ok.md", "command: x\noutput: 'R/{task}'\n", CONFIG).task


def test_workflow_keys_are_known_and_their_typos_are_caught() -> None:
    for key in ("check", "if_changed", "after", "output", "group", "max_runs", "until"):
        assert near_miss(key) is None
    assert near_miss("afer") == "after"
    assert near_miss("max_run") == "max_runs"
    assert near_miss("windows") == "window"


VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text(max_size=30)
    | st.dates()
    | st.datetimes(timezones=st.none() | st.just(UTC)),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=6,
)
WORKFLOW_KEYS = st.sampled_from(
    ["check", "if_changed", "after", "on", "output", "group", "max_runs", "until", "window", "ping"]
)


@given(st.dictionaries(WORKFLOW_KEYS, VALUES, max_size=4))
def test_any_workflow_values_give_a_task_or_problems_never_an_exception(
    front: dict[str, object],
) -> None:
    text = yaml.safe_dump({"command": "x", "schedule": "@daily", **front})
    parsed = parse(text)
    assert parsed.is_task
    assert (parsed.task is None) == bool(parsed.errors)
    for problem in parsed.errors:
        key = problem.message.split(":")[0]
        assert key in front or problem.message.startswith("YAML reads"), problem
