"""`vaultsched demo`: what a new user sees in the first minute, printed, in the notes and in the
digest; and the lines it prints, one run at a time."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import git, runs, wait_for

from vaultsched.cli.demo import Narrator, program
from vaultsched.core.model import Run, Status, Trigger

UNTRUSTED = "Tasks/Archive done items"
FAILING = "Tasks/Journal check"
HEAD = "Tasks/Inbox briefing"  # the chain: HEAD, then DRAFT after it, then ACT once approved
DRAFT = "Tasks/Draft inbox follow-up"
ACT = "Tasks/Log inbox follow-up"
PROGRAM = "vaultsched --vault /tmp/demo"


def make_run(task: str, status: Status, **fields: object) -> Run:
    values: dict[str, object] = {
        "run_id": f"{task}-{status}",
        "task": task,
        "status": status,
        "trigger": Trigger.SCHEDULE,
        "started_at": datetime(2024, 5, 2, 7, tzinfo=UTC),
        "host": "laptop",
        "duration_s": 1.25,
        **fields,
    }
    return Run(**values)  # type: ignore[arg-type]


# -- the lines it prints --------------------------------------------------------------------------


def test_a_run_is_one_line_with_its_status_task_and_duration() -> None:
    (line,) = Narrator(PROGRAM).lines(make_run("Tasks/Vault stats", Status.SUCCESS))
    assert re.search(r"\[green\]success +\[/green\]  Tasks/Vault stats  1\.2s$", line)


def test_a_failure_says_why_in_the_tasks_own_last_line() -> None:
    run = make_run(FAILING, Status.FAILED, output_tail="checking\nJournal/x.md does not exist\n\n")
    (line,) = Narrator(PROGRAM).lines(run)
    assert "[red]failed" in line and line.endswith("— Journal/x.md does not exist")


def test_a_chained_run_names_the_run_it_followed() -> None:
    narrator = Narrator(PROGRAM)
    narrator.lines(make_run(HEAD, Status.SUCCESS, run_id="head-1"))
    (line,) = narrator.lines(
        make_run(DRAFT, Status.SUCCESS, trigger=Trigger.AFTER, upstream_run="head-1")
    )
    assert line.endswith(f"{DRAFT}  1.2s  (after {HEAD})")


@pytest.mark.parametrize(
    ("status", "command"),
    [
        (Status.UNTRUSTED, f'{PROGRAM} trust "{UNTRUSTED}"'),
        (Status.AWAITING_APPROVAL, f'{PROGRAM} approve "{UNTRUSTED}"'),
    ],
)
def test_a_state_that_waits_for_a_person_prints_its_command_once(
    status: Status, command: str
) -> None:
    narrator = Narrator(PROGRAM)
    first = narrator.lines(make_run(UNTRUSTED, status))
    assert len(first) == 2 and first[1].endswith(f": {command}")
    assert len(narrator.lines(make_run(UNTRUSTED, status))) == 1  # not at every fire
    narrator.lines(make_run(UNTRUSTED, Status.SUCCESS))
    assert len(narrator.lines(make_run(UNTRUSTED, status))) == 2  # waiting again: said again


def test_vault_text_cannot_style_the_lines() -> None:
    (line,) = Narrator(PROGRAM).lines(make_run("Tasks/[bold]x", Status.SUCCESS))
    assert "Tasks/\\[bold]x" in line


def test_the_printed_program_is_the_one_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = tmp_path / ".venv/bin/vaultsched"
    monkeypatch.setattr(sys, "argv", [str(script), "demo"])
    monkeypatch.setattr(shutil, "which", lambda name: None)  # `make demo`: not on PATH
    assert program() == str(script)
    monkeypatch.setattr(shutil, "which", lambda name: str(script))
    assert program() == "vaultsched"
    monkeypatch.setattr(sys, "argv", ["/src/vaultsched/__main__.py", "demo"])
    assert program() == f"{shlex.quote(sys.executable)} -m vaultsched"


# -- the first minute, for real -------------------------------------------------------------------


def _reached(root: Path) -> dict[str, bool]:
    """Each state the first minute must show, and whether the ledger has it yet."""
    landed = runs(root)
    by_id = {run.run_id: run for run in landed}

    def seen(task: str, status: Status, after: str = "") -> bool:
        def chained(run: Run) -> bool:
            upstream = by_id.get(run.upstream_run)
            return run.trigger is Trigger.AFTER and upstream is not None and upstream.task == after

        return any(
            run.task == task and run.status is status and (not after or chained(run))
            for run in landed
        )

    return {
        "a success": any(run.status is Status.SUCCESS for run in landed),
        "a failure": seen(FAILING, Status.FAILED),
        "an untrusted task": seen(UNTRUSTED, Status.UNTRUSTED),
        "an approval waiting": seen(ACT, Status.AWAITING_APPROVAL, after=DRAFT),
        "a chain": seen(DRAFT, Status.SUCCESS, after=HEAD),
    }


def _shows(note: Path, wanted: list[str]) -> Callable[[], bool]:
    return lambda: all(text in note.read_text() for text in wanted)


def _digest_has(root: Path, pattern: str) -> Callable[[], bool]:
    def found() -> bool:
        # Every digest: around midnight the first minute spans two days.
        digests = "".join(path.read_text() for path in sorted(root.glob("Digests/*.md")))
        return re.search(pattern, digests, re.M) is not None

    return found


def _printed_command(printed: str, verb: str, task: str) -> list[str]:
    """The command the demo printed for `task`, split as a shell would."""
    match = re.search(rf"^ +[^:\n]+: (.+ {verb} \"{task}\")$", printed, re.M)
    assert match, printed
    return shlex.split(match[1])


@pytest.mark.integration
@pytest.mark.timeout(300)
def test_the_first_minute_shows_a_success_a_failure_an_untrusted_task_an_approval_and_a_chain(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VAULTSCHED_TRUST")  # the demo trusts its tasks itself, all but one
    root, output = tmp_path / "demo", tmp_path / "demo.out"
    with output.open("wb") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vaultsched", "demo", str(root)],
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        # Generous waits: the slowest task fires every 30 s; a loaded machine may take longer.
        wait_for(lambda: all(_reached(root).values()), timeout=150, what="every state")
        notes = {
            FAILING: ["> [!failure] ", "does not exist yet"],
            UNTRUSTED: [f'vaultsched trust "{UNTRUSTED}"'],
            ACT: [f'vaultsched approve "{ACT}"'],
            DRAFT: ["trigger: after"],
        }
        for task, wanted in notes.items():
            note = root / f"{task}.md"
            wait_for(_shows(note, wanted), timeout=60, what=f"{task}'s note")
        digest_lines = [
            r"^- ✅ .* — success",
            rf"^- ❌ .*\[\[{FAILING}\|Journal check\]\] — failed",
            rf"^- 🔒 \[\[{UNTRUSTED}\|.*`vaultsched trust \"{UNTRUSTED}\"`",
            rf"^- ⏳ \[\[{ACT}\|.*`vaultsched approve \"{ACT}\"`",
            rf"^- ✅ .*\[\[{DRAFT}\|.*\]\] — success · after \[\[{HEAD}\|Inbox briefing\]\]",
        ]
        for pattern in digest_lines:
            wait_for(_digest_has(root, pattern), timeout=60, what=f"digest line {pattern}")

        printed = output.read_text()
        assert f"Demo vault: {root}" in printed
        assert re.search(r"^vaultsched: indexed \d+ tasks", printed, re.M), printed
        assert re.search(rf"  success +  {re.escape(DRAFT)}  .*\(after {HEAD}\)$", printed, re.M)
        assert re.search(rf"  failed +  {FAILING} .* — Journal/.* does not exist yet", printed)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
    printed = output.read_text()
    assert code == 0 and "Stopped." in printed
    assert git(root, "status", "--porcelain") == ""  # everything it wrote is committed
    # The lines it printed are the ones to run: they work as printed.
    trust = subprocess.run(_printed_command(printed, "trust", UNTRUSTED), check=False)
    approve = subprocess.run(_printed_command(printed, "approve", ACT), check=False)
    assert trust.returncode == 0 and approve.returncode == 0
    listed = subprocess.run(
        [sys.executable, "-m", "vaultsched", "--vault", str(root), "list", "--json"],
        capture_output=True,
        check=True,
    )
    assert all(task["trusted"] for task in json.loads(listed.stdout))
    # The approved act appended its line to Follow-ups.md, the person's note to commit.
    assert git(root, "status", "--porcelain") == "?? Follow-ups.md\n"
    assert "vaultsched" in git(root, "log", "--format=%an").split()
