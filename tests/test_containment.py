"""No note can stop vaultsched: whatever one note holds, or whatever bug a parser has, reading,
parsing and planning it ends in a problem on that note, and the rest of the vault goes on.
Commands exit 0 or 1 (never 3, "internal error"); the daemon stays up."""

from __future__ import annotations

import json
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import HOST, Cli, CommandLine, DaemonProcess, InProcess, runs, wait_for, write_note

from vaultsched.adapters.config import load_config
from vaultsched.adapters.vault import Vault, build_index, planned_index, read_note
from vaultsched.cli.validate import validate_vault
from vaultsched.core import planner, schedules
from vaultsched.core.durations import MAX_DURATION
from vaultsched.core.model import Run, Status, Task
from vaultsched.core.schedules import Schedule, parse_schedule
from vaultsched.runtime import dispatch
from vaultsched.runtime.daemon import Daemon
from vaultsched.runtime.messages import Invalid, Job

NOW = datetime(2026, 3, 14, 12, 0, tzinfo=UTC)  # any fixed instant: nothing here reads the clock
GOOD = "---\nschedule: '@daily'\ncommand: echo good\n---\nA good task.\n"
# The read-only commands, and one pass of the daemon. Run in-process (`vs`) where a note's
# content is the attack; as real processes (`cli`, 60 s each) where it is a file that could hang.
COMMANDS = (("validate",), ("list", "--json"), ("next",), ("run", "--once"))


def note(front_matter: str, body: str = "") -> str:
    return f"---\n{front_matter}\n---\n{body}"


def load(root: Path) -> Vault:
    return Vault(root.resolve(), load_config(root), HOST)


def assert_never_internal(cli: CommandLine) -> None:
    for args in COMMANDS:
        result = cli(*args)
        assert result.code in (0, 1), (args, result.code, result.err)
        assert "internal error:" not in result.err and "Traceback" not in result.err, result.err


def validate_json(cli: CommandLine) -> dict[str, list[dict[str, Any]]]:
    result = cli("validate", "--json")
    assert result.code in (0, 1), result.err
    found: dict[str, list[dict[str, Any]]] = {}
    for problem in json.loads(result.out):
        found.setdefault(problem["path"], []).append(problem)
    return found


# -- cron lines the parser used to crash on --------------------------------------------------


@pytest.mark.parametrize("line", ["0 *,3 * * *", "* * * * *,0", "0 0 13 * *,3"])
def test_star_inside_a_list_never_exits_3(vault_root: Path, vs: InProcess, line: str) -> None:
    """Whether the cron parser accepts these (cronie does) or not, no command exits 3."""
    write_note(vault_root, "Tasks/Good.md", GOOD)
    write_note(vault_root, "Tasks/Star.md", note(f'schedule: "{line}"\ncommand: echo star'))
    assert_never_internal(vs)
    listed = {row["task"]: row for row in vs.json("list")}
    assert listed["Tasks/Good"]["valid"] and listed["Tasks/Good"]["next_run"]
    star = listed["Tasks/Star"]
    assert star["valid"] or star["errors"], star  # accepted, or refused with a reason


def _raising_parse(text: str) -> Schedule:
    if "boom" in text:
        raise RuntimeError("a bug in the schedule parser")
    return parse_schedule(text)


def trusted(_task: Task) -> str | None:
    return None


def test_a_parser_that_raises_is_a_problem_on_its_note_only(
    vault_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The boundary does not depend on which parser has the bug: any exception while parsing
    one note is a problem on that note."""
    write_note(vault_root, "Tasks/Good.md", GOOD)
    write_note(vault_root, "Tasks/Boom.md", note("schedule: boom\ncommand: echo"))
    monkeypatch.setattr(schedules, "parse_schedule", _raising_parse)  # taskfile imports it late
    vault = load(vault_root)
    index = build_index(vault)
    assert "Tasks/Good" in index.tasks
    (problem,) = index.invalid["Tasks/Boom"]
    assert problem.path == "Tasks/Boom.md" and "RuntimeError: a bug in the schedule parser" in (
        problem.message
    )
    assert "test_containment.py:" in problem.message  # where it happened: enough for a bug
    checked, problems = validate_vault(vault, NOW)
    assert checked == 2 and [p.path for p in problems] == ["Tasks/Boom.md"]


class _Exploding(Schedule):
    def next_after(self, after: datetime, tz: Any) -> datetime:
        raise OverflowError("date value out of range")


@pytest.fixture
def exploding_task(vault_root: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Vault]:
    """`Tasks/Boom` parses, but computing its next fire time raises (as a parser bug would)."""
    write_note(vault_root, "Tasks/Good.md", note("schedule: every 1s\ncommand: echo good"))
    write_note(vault_root, "Tasks/Boom.md", note("schedule: boom\ncommand: echo boom"))
    monkeypatch.setattr(
        schedules,  # taskfile imports it when it parses a note
        "parse_schedule",
        lambda text: _Exploding(text) if text == "boom" else parse_schedule(text),
    )
    yield load(vault_root)


def test_a_task_whose_next_fire_time_raises_is_invalid_and_not_scheduled(
    exploding_task: Vault,
) -> None:
    index = planned_index(exploding_task, NOW)
    assert "Tasks/Good" in index.tasks and "Tasks/Boom" not in index.tasks
    (problem,) = index.invalid["Tasks/Boom"]
    assert "while planning" in problem.message and "OverflowError" in problem.message


def test_the_daemon_drops_a_task_it_cannot_plan_and_plans_the_others(
    exploding_task: Vault,
) -> None:
    daemon = Daemon(exploding_task, clock=lambda: NOW)
    assert daemon.run(once=True) == 0
    assert "Tasks/Boom" in daemon.index.invalid and "Tasks/Good" in daemon.index.tasks
    # The good task's next fire, less the lead its run is prepared with.
    assert daemon._deadline() == NOW + timedelta(seconds=1) - dispatch.LEAD


def test_a_retry_that_cannot_be_planned_drops_only_that_task(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Planning a retry that raises (an injected fault: no note can make it raise any more)
    makes the task invalid; the daemon goes on."""
    write_note(vault.root, "Tasks/Fails.md", note("command: 'false'\nretries: 3"))
    task = read_note(vault, "Tasks/Fails.md").task
    assert task is not None

    def broken(*args: object) -> None:
        raise OverflowError("date value out of range")

    monkeypatch.setattr(dispatch, "_Retry", broken)
    dispatcher = dispatch.Dispatcher(running={task.id})
    failed = Run("r", task.id, Status.FAILED, planner.Trigger.SCHEDULE, NOW, "h")
    (invalid,) = dispatcher.done(
        Job(task, planner.Trigger.SCHEDULE), failed, NOW, {task.id: task}, trusted
    )
    assert isinstance(invalid, Invalid) and invalid.task_id == task.id
    assert "OverflowError" in invalid.problem.message
    assert not dispatcher.retries and not dispatcher.running
    daemon = Daemon(vault, clock=lambda: NOW)  # which takes the task out of its index
    daemon.index.tasks[task.id] = task
    daemon.actor.carry_out([invalid])
    assert task.id in daemon.index.invalid and task.id not in daemon.index.tasks
    daemon.landing.close()


def test_a_huge_retry_delay_doubles_up_to_the_bound_not_past_it(vault: Vault) -> None:
    """`retry_delay` at its 100-year bound, doubled by many attempts, stays at the bound
    (it once overflowed the daemon's clock arithmetic after the first failure)."""
    write_note(vault.root, "Tasks/Fails.md", note("command: 'false'\nretries: 500"))
    parsed = read_note(vault, "Tasks/Fails.md").task
    assert parsed is not None
    task = Task(**{**parsed.__dict__, "retry_delay": MAX_DURATION})
    dispatcher = dispatch.Dispatcher(running={task.id})
    failed = Run("r", task.id, Status.FAILED, planner.Trigger.RETRY, NOW, "h", attempt=300)
    dispatcher.done(
        Job(task, planner.Trigger.RETRY, attempt=300), failed, NOW, {task.id: task}, trusted
    )
    (retry,) = dispatcher.retries
    assert retry.at == NOW + MAX_DURATION


# -- durations: bounded, finite ----------------------------------------------------------------

DURATIONS = {
    "timeout: 99999999999d": "100 years",
    "timeout: .inf": "finite",
    "timeout: .nan": "finite",
    "schedule: every 3000000d": "100 years",
    "retry_delay: 3000000d": "100 years",
    "jitter: .inf": "finite",
}


@pytest.mark.parametrize("line", list(DURATIONS))
def test_durations_past_100_years_or_infinite_are_problems_on_the_note(
    vault_root: Path, vs: InProcess, line: str
) -> None:
    write_note(vault_root, "Tasks/Good.md", GOOD)
    write_note(vault_root, "Tasks/Long.md", note(f"command: 'false'\nretries: 1\n{line}"))
    assert_never_internal(vs)
    result = vs("validate")
    assert result.code == 1
    (problem,) = [p for p in result.out.splitlines() if p.startswith("Tasks/Long.md:")]
    assert problem.startswith("Tasks/Long.md:4:") and DURATIONS[line] in problem, problem


def test_durations_at_the_bound_are_accepted(vault: Vault) -> None:
    text = "command: echo\ntimeout: 36525d\nretry_delay: 36525d\njitter: 36525d\n"
    text += "schedule: every 36525d"
    write_note(vault.root, "Tasks/Long.md", note(text))
    task = planned_index(vault, NOW).tasks["Tasks/Long"]
    assert task.timeout == task.retry_delay == task.jitter == timedelta(days=36525)


# -- YAML alias expansion: bounded before anything is built -----------------------------------


def laughs(levels: int, key: str) -> str:
    """A billion laughs: 9 aliases per level, so `levels` lines stand for 9**levels values."""
    lines = ["l0: &l0 lol"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]" for i in range(1, levels + 1)]
    value = f"{{A: *l{levels}}}" if key == "env" else f"*l{levels}"
    return note("\n".join(["command: echo", *lines, f"{key}: {value}"]))


@pytest.mark.parametrize("key", ["command", "env"])
def test_a_billion_laughs_is_a_problem_on_its_note(
    vault_root: Path, vs: InProcess, key: str
) -> None:
    write_note(vault_root, "Tasks/Good.md", GOOD)
    write_note(vault_root, "Tasks/Bomb.md", laughs(10, key))  # 3.5 billion values if built
    started = time.monotonic()
    assert_never_internal(vs)
    assert time.monotonic() - started < 50  # nothing was expanded (generous: a loaded machine)
    found = validate_json(vs)
    assert "10,000" in found["Tasks/Bomb.md"][0]["message"]
    assert "Tasks/Good.md" not in found


@pytest.mark.parametrize(
    ("front_matter", "message"),
    [
        ("a: &a x\n" + "".join(f"k{i}: *a\n" for i in range(101)) + "command: echo", "100"),
        ("a: &a [*a]\ncommand: *a", "inside its own anchor"),
        (laughs(5, "command").strip("-\n"), "10,000"),  # 59,049 values from 45 aliases
    ],
    ids=["101 aliases", "self-reference", "wide"],
)
def test_alias_bounds(vault: Vault, front_matter: str, message: str) -> None:
    write_note(vault.root, "Tasks/A.md", note(front_matter))
    (problem,) = read_note(vault, "Tasks/A.md").problems
    assert message in problem.message


def test_aliases_within_the_bounds_still_work(vault: Vault) -> None:
    env = "base: &base {A: '1', B: '2'}\n" + "".join(f"k{i}: *base\n" for i in range(99))
    write_note(vault.root, "Tasks/A.md", note(env + "command: echo\nenv: *base"))
    task = read_note(vault, "Tasks/A.md").task
    assert task is not None and dict(task.env) == {"A": "1", "B": "2"}


# -- files that are not regular files -----------------------------------------------------------


@pytest.fixture
def odd_files(vault_root: Path) -> Iterator[None]:
    """A FIFO, a socket and a link to a device, each named like a note."""
    root = vault_root
    (root / "Tasks").mkdir(parents=True, exist_ok=True)
    os.mkfifo(root / "Tasks/pipe.md")
    (root / "Tasks/zero.md").symlink_to("/dev/zero")
    server = socket.socket(socket.AF_UNIX)
    # A socket path must be short: bind through a relative name from inside the folder.
    cwd = Path.cwd()
    os.chdir(root / "Tasks")
    try:
        server.bind("sock.md")
    finally:
        os.chdir(cwd)
    yield
    server.close()


@pytest.mark.usefixtures("odd_files")
def test_a_fifo_socket_or_device_link_is_never_opened(vault_root: Path, cli: Cli) -> None:
    write_note(vault_root, "Tasks/Good.md", GOOD)
    assert_never_internal(cli)  # each command has 60 s; a FIFO used to hang them for good
    found = validate_json(cli)
    for rel, kind in (("Tasks/pipe.md", "a FIFO"), ("Tasks/sock.md", "a socket")):
        assert found[rel][0]["message"].startswith(kind + ", not a regular file"), found
        assert found[rel][0]["severity"] == "warning"
    assert "Tasks/zero.md" not in found  # a symlink is never followed, as ever
    assert cli("validate", "Tasks/pipe.md", timeout=30).code == 0
    assert cli("doctor", timeout=60).code in (0, 1)


@pytest.mark.usefixtures("odd_files")
def test_the_daemon_starts_stops_and_follows_edits_beside_a_fifo(
    vault_root: Path, daemons: Callable[..., DaemonProcess]
) -> None:
    write_note(vault_root, "Tasks/Tick.md", note("schedule: every 1s\ncommand: echo tick"))
    daemon = daemons(vault_root)
    wait_for(lambda: "indexed 1 tasks" in daemon.output(), timeout=30, what="the index")
    os.mkfifo(vault_root / "Tasks/late pipe.md")  # and one made while it runs
    wait_for(lambda: "late pipe.md:1: warning: a FIFO" in daemon.output(), timeout=30)
    wait_for(lambda: len(runs(vault_root)) >= 2, timeout=30, what="ticks")
    assert daemon.stop(signal.SIGTERM, timeout=60) == 0


# -- stdin: body that is not UTF-8 --------------------------------------------------------------

LATIN1_BODY = b"---\nschedule: every 1s\ncommand: cat\nstdin: body\n---\nd\xe9j\xe0 vu\n"


def test_stdin_body_not_utf8_ends_as_error_with_its_start_finished(
    vault_root: Path, cli: Cli
) -> None:
    (vault_root / "Tasks").mkdir()
    (vault_root / "Tasks/Latin.md").write_bytes(LATIN1_BODY)
    result = cli("run-now", "Latin")
    assert result.code == 1 and "Traceback" not in result.err, result.err
    (run,) = runs(vault_root)
    assert run.status is Status.ERROR and "not UTF-8" in run.message, run
    assert run.finished_at is not None
    assert json.loads(cli("status", "--json").out)["running"] == []


def test_the_daemon_records_each_fire_of_a_non_utf8_body_as_error(
    vault_root: Path, daemons: Callable[..., DaemonProcess]
) -> None:
    (vault_root / "Tasks").mkdir()
    (vault_root / "Tasks/Latin.md").write_bytes(LATIN1_BODY)
    write_note(vault_root, "Tasks/Tick.md", note("schedule: every 1s\ncommand: echo tick"))
    daemon = daemons(vault_root)
    wait_for(
        lambda: sum(r.task == "Tasks/Latin" for r in runs(vault_root)) >= 2,
        timeout=30,
        what="fires",
    )
    assert daemon.stop(signal.SIGTERM, timeout=60) == 0
    done = runs(vault_root)
    assert all(r.status is not Status.RUNNING for r in done)  # no start left unfinished
    latin = [r for r in done if r.task == "Tasks/Latin"]
    assert all(r.status is Status.ERROR and "not UTF-8" in r.message for r in latin)
    assert any(r.task == "Tasks/Tick" and r.status is Status.SUCCESS for r in done)
    assert "Traceback" not in daemon.output()


# -- the daemon under a stream of hostile notes -------------------------------------------------

# (front matter, or raw bytes for the whole note; True: it must show a problem, False: the
# cron parser may come to accept it, so only "no crash" is asserted)
HOSTILE: list[tuple[str | bytes, bool]] = [
    ('schedule: "0 *,3 * * *"\ncommand: echo', False),
    ('schedule: "* * * * *,0"\ncommand: echo', False),
    ('schedule: "0 0 13 * *,3"\ncommand: echo', False),
    ('schedule: "5-5/0 * * * *"\ncommand: echo', False),
    ('schedule: "0 0 29 2 */7"\ncommand: echo', False),
    ("command: echo\ntimeout: 99999999999d", True),
    ("command: echo\ntimeout: .inf", True),
    ("command: echo\ntimeout: .nan", True),
    ("command: echo\nschedule: every 3000000d", True),
    ("command: 'false'\nretries: 2\nretry_delay: 3000000d", True),
    ("command: echo\njitter: .inf", True),
    (laughs(10, "command").strip("-\n"), True),
    (laughs(10, "env").strip("-\n"), True),
    ("a: &a x\n" + "".join(f"k{i}: *a\n" for i in range(150)) + "command: echo", True),
    ("a: &a [*a]\ncommand: *a", True),
    ("command: echo\nretries: " + "9" * 5000, True),
    ('command: echo\nschedule: "' + "9" * 400 + ' * * * *"', True),
    ("command: " + "[" * 3000 + "]" * 3000, True),
    ("command: {" * 2000, True),
    (b"---\ncommand: echo \x00\x01\x02\n---\n", True),
    (b"---\ncommand: echo \xff\xfe\n---\n", True),  # not UTF-8: skipped with a warning
    ("command: {echo", True),
    ("command: echo\nschedule: [every 1s", True),
    ("command:\techo\n\tschedule: x", True),
    ("command: echo\nschedule: nope\nk: " + "v" * 60 * 1024, True),
    ("command: echo\nk: " + "v" * 70 * 1024, True),  # over the 64 KiB front matter limit
    ("? [a, b]\n: 1\ncommand: echo", True),
    ("command: echo\non: push\nnotify: on", True),
    ("command: echo\nschedule: [1, 2]", True),
    ("command: {a: b}", True),
    ("command: echo\nenv: [x]", True),
    ("command: *nowhere", True),
    ("command: echo\nschedule: '0 0 31 2 *'", True),
    ("command: echo\nschedule: every 0s", True),
    ("command: echo\ntimezone: Mars/Olympus_Mons", True),
    ("command: echo\ntimeout: 1:30", True),
    ("command: echo\nschedule: '@reboot'", True),
    ("command: echo\nkeep_runs: 0\nretries: -1", True),
    ("command: [echo, [nested]]", True),
]


def _content(item: str | bytes) -> bytes:
    return item if isinstance(item, bytes) else note(item).encode()


def test_daemon_stays_up_and_keeps_firing_through_hostile_notes(
    vault_root: Path, cli: Cli, daemons: Callable[..., DaemonProcess]
) -> None:
    """While a task fires every second, one note is saved in turn with each hostile front
    matter, and each is also left in a note of its own; the daemon stays up, the task keeps
    firing, and every hostile note shows its problem."""
    write_note(vault_root, "Tasks/Tick.md", note("schedule: every 1s\ncommand: echo tick"))
    daemon = daemons(vault_root)

    def ticks() -> int:
        return sum(r.task == "Tasks/Tick" for r in runs(vault_root))

    wait_for(lambda: ticks() >= 2, timeout=30, what="the first ticks")
    before = ticks()
    hostile = vault_root / "Tasks/Hostile.md"
    for number, (item, _) in enumerate(HOSTILE):
        hostile.write_bytes(_content(item))  # the same note, saved in turn
        (vault_root / f"Tasks/Hostile {number:02d}.md").write_bytes(_content(item))
        time.sleep(0.15)
        assert daemon.proc.poll() is None, daemon.output()[-3000:]
    os.mkfifo(vault_root / "Tasks/pipe.md")
    (vault_root / os.fsdecode(b"Tasks/bad \xff name.md")).write_bytes(_content(GOOD))
    wait_for(lambda: ticks() >= before + 3, timeout=30, what="ticks after the hostile notes")
    assert daemon.proc.poll() is None

    found = validate_json(cli)
    for number, (_, must_show) in enumerate(HOSTILE):
        if must_show:
            assert f"Tasks/Hostile {number:02d}.md" in found, (number, HOSTILE[number])
    assert "Tasks/pipe.md" in found
    assert any(p[0]["message"] == "file name is not UTF-8" for p in found.values())
    listed = {row["task"]: row for row in json.loads(cli("list", "--json").out)}
    assert listed["Tasks/Tick"]["valid"]
    assert daemon.stop(signal.SIGTERM, timeout=60) == 0
    output = daemon.output()
    assert "Traceback" not in output and "internal error:" not in output
    assert "Tasks/pipe.md:1: warning: a FIFO" in output
