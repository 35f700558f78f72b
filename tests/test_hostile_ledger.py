"""A hostile line in another host's ledger file (as a sync or a pull brings it), against the
real CLI and the real daemon: every command still works, the good runs still show, `doctor`
names the line, and a daemon's runs keep landing in their note."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import Cli, DaemonProcess, InProcess, git, runs, wait_for, write_note

from vaultsched.core.model import Status

pytestmark = pytest.mark.integration

INTERNAL_ERROR = 3


def _line(**fields: object) -> str:
    """A finish record of Tasks/Hello by host `other`, with `fields` changed."""
    now = datetime.now(UTC).isoformat(timespec="milliseconds")
    record = {
        "type": "finish",
        "run_id": "forged-1",
        "task": "Tasks/Hello",
        "path": "Tasks/Hello.md",
        "trigger": "manual",
        "started_at": now,
        "host": "other",
        "status": "failed",
        **fields,
    }
    # What the reviewer wrote by hand: Python's json writes NaN and Infinity, and reads them.
    return json.dumps(record)


# The lines an adversarial review found each made every command exit 3 (internal error).
HOSTILE = {
    "attempt Infinity": _line(attempt=float("inf")),
    "started_at year 1 +14:00": _line(started_at="0001-01-01T00:00:00+14:00"),
    "scheduled_for year 1 +14:00": _line(scheduled_for="0001-01-01T00:00:00+14:00"),
    "finished_at year 9999 -23:59": _line(finished_at="9999-12-31T23:59:59-23:59"),
    "duration_s a string": _line(duration_s="abc"),
    "exit_code a list": _line(exit_code=[1]),
    "message of 1 MB": _line(message="m" * (1024 * 1024)),
    "attempt of 40 digits": _line(attempt=10**40),
}
# The largest line: its megabyte goes through the pipes of real `vaultsched` processes.
THROUGH_PROCESSES = "message of 1 MB"
COMMANDS = (
    ("status",),
    ("status", "--json"),
    ("list",),
    ("digest",),
    ("history", "Tasks/Hello"),
    ("history", "Tasks/Hello", "--json"),
    ("run-now", "Tasks/Hello"),
    ("run", "--once"),
)


def _other_host_file(root: Path) -> Path:
    path = root / f".vaultsched/runs/{datetime.now(UTC):%Y-%m}/other.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def _hello(root: Path, front: str = "command: echo hello\n") -> None:
    write_note(root, "Tasks/Hello.md", f"---\n{front}---\nBody.\n")
    git(root, "add", "Tasks")
    git(root, "commit", "-qm", "tasks")


@pytest.mark.parametrize("name", HOSTILE)
def test_every_command_survives_a_hostile_line_and_doctor_names_it(
    cli: Cli, vs: InProcess, vault_root: Path, name: str
) -> None:
    # `main` in this process answers as `vaultsched` does, without a second of start-up for
    # each command.
    command_line = cli if name == THROUGH_PROCESSES else vs
    _hello(vault_root)
    assert command_line("run-now", "Tasks/Hello").code == 0
    ledger_file = _other_host_file(vault_root)
    with ledger_file.open("a") as handle:  # a good line of that host, then the hostile one
        handle.write(_line(run_id="fine-1", status="success") + "\n" + HOSTILE[name] + "\n")

    for command in COMMANDS:
        result = command_line(*command)
        assert result.code == 0, (command, result.err[-2000:])
    history = json.loads(command_line("history", "Tasks/Hello", "--json").out)
    assert [(row["host"], row["status"]) for row in history].count(("other", "success")) == 1
    assert len([row for row in history if row["host"] != "other"]) >= 2  # both run-nows show
    assert "[!success]" in (vault_root / "Tasks/Hello.md").read_text()

    doctor = command_line("doctor", "--json")
    assert doctor.code == 1
    check = {c["check"]: c for c in json.loads(doctor.out)}["ledger dates"]
    rel = ledger_file.relative_to(vault_root).as_posix()
    assert check["status"] == "fail"
    assert f"{rel}:2 (" in check["detail"], check["detail"]
    assert command_line("doctor").code != INTERNAL_ERROR


@pytest.mark.parametrize(
    "marks",
    [
        '{"Tasks/Hello": "0001-01-01T00:00:00+14:00"}',
        '{"Tasks/Hello": "9999-12-31T23:59:59-23:59"}',
        '{"Tasks/Hello": 1e999}',
        '{"Tasks/Hello": ["x"]}',
        '["not", "a", "map"]',
        "[" * 100_000,
    ],
)
def test_a_hostile_marks_file_is_ignored(cli: Cli, vault_root: Path, marks: str) -> None:
    """`state/marks.json` is git-ignored, but a sync tool carries it like any file."""
    _hello(vault_root, "command: echo hello\nschedule: every 1s\n")
    state = vault_root / ".vaultsched/state"
    state.mkdir(parents=True, exist_ok=True)
    (state / "marks.json").write_text(marks)
    result = cli("run", "--once")
    assert result.code == 0, result.err[-2000:]


def test_the_daemon_keeps_landing_runs_beside_hostile_lines(
    vault_root: Path, daemons: Callable[..., DaemonProcess]
) -> None:
    """Lines present before the start (a restart once crash-looped on them) and added while
    it runs (each landing once failed): the task's runs keep reaching its note."""
    note = write_note(
        vault_root, "Tasks/Tick.md", "---\nschedule: every 1s\ncommand: echo tick\n---\n"
    )
    os.utime(note, (time.time() - 60, time.time() - 60))
    git(vault_root, "add", "Tasks")
    git(vault_root, "commit", "-qm", "tasks")
    ledger_file = _other_host_file(vault_root)
    hostile = list(HOSTILE.values())
    ledger_file.write_text("".join(line.replace("Hello", "Tick") + "\n" for line in hostile[:4]))

    daemon = daemons(vault_root)
    _wait_for_landed(vault_root, 2)
    with ledger_file.open("a") as handle:
        handle.write("".join(line.replace("Hello", "Tick") + "\n" for line in hostile[4:]))
    _wait_for_landed(vault_root, len(_ticks(vault_root)) + 3)
    assert daemon.stop() == 0
    for failure in ("run(s) failed", "failed inside vaultsched", "Traceback"):
        assert failure not in daemon.output(), daemon.output()[-3000:]


def _ticks(root: Path) -> list[datetime]:
    return [r.started_at for r in runs(root) if r.task == "Tasks/Tick" and r.host != "other"]


def _wait_for_landed(root: Path, count: int) -> None:
    """`count` runs of Tick, the latest of them shown in its note."""

    def landed() -> bool:
        ticks = [r for r in runs(root) if r.task == "Tasks/Tick" and r.status is Status.SUCCESS]
        if len(ticks) < count:
            return False
        stamp = f"{ticks[-1].started_at.astimezone(UTC):%Y-%m-%d %H:%M:%S}"
        return stamp in (root / "Tasks/Tick.md").read_text()

    wait_for(landed, timeout=60, what=f"{count} runs of Tick landed in its note")
