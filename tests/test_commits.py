"""What vaultsched commits, end to end: its own bytes only, whatever the person has in progress."""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import Cli, DaemonProcess, Result, git, runs, wait_for, write_note

from vaultsched.core import blocks
from vaultsched.core.frontmatter_edit import set_scalar

pytestmark = pytest.mark.integration

Start = Callable[..., DaemonProcess]

NOTE = "---\nschedule: every 1s\ncommand: echo tick\n---\nBody.\n"
PERSON = "a person's line"


def settle(path: Path) -> None:
    """Pretend the note was saved long ago, so the 2 s edit guard does not hold writes back."""
    os.utime(path, (time.time() - 60, time.time() - 60))


def committed_note(root: Path, rel: str, text: str = NOTE) -> Path:
    path = write_note(root, rel, text)
    git(root, "add", rel)
    git(root, "commit", "-qm", f"add {rel}")
    settle(path)
    return path


def changed_lines(diff: str) -> list[str]:
    return [
        line
        for line in diff.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++ ", "--- "))
    ]


def without_block(text: str) -> str:
    span = blocks.find_block(text, blocks.RUNS)
    return text if span is None else text[: span[0]].rstrip("\n") + text[span[1] :]


@pytest.mark.parametrize("staged", [False, True], ids=["unstaged", "staged"])
def test_run_now_commits_the_block_and_leaves_the_draft(cli: Cli, staged: bool) -> None:
    root = cli.root
    note = committed_note(root, "Tasks/Hello.md")
    note.write_text(NOTE + "DRAFT\n")
    settle(note)
    if staged:
        git(root, "add", "Tasks/Hello.md")

    assert cli("run-now", "Hello").code == 0

    ours = git(root, "log", "-p", "--author=vaultsched")
    assert "[!success]" in ours and "DRAFT" not in ours
    assert without_block(git(root, "show", "HEAD:Tasks/Hello.md")) == NOTE
    assert changed_lines(git(root, "diff", "HEAD", "-U0")) == ["+DRAFT"]
    status = git(root, "status", "--porcelain")
    assert status == ("M  Tasks/Hello.md\n" if staged else " M Tasks/Hello.md\n")
    if staged:  # committing what they staged keeps the block
        git(root, "commit", "-qm", "mine")
        assert git(root, "show", "HEAD:Tasks/Hello.md") == note.read_text()


def test_pause_and_resume_of_an_edited_note_commit_only_the_enabled_line(cli: Cli) -> None:
    root = cli.root
    original = "---\nschedule: '@daily'\ncommand: echo hi\nenabled: true\n---\nBody.\n"
    note = committed_note(root, "Tasks/P.md", original)
    note.write_text(original + "DRAFT\n")
    settle(note)

    assert cli("pause", "P").code == 0
    assert git(root, "show", "HEAD:Tasks/P.md") == set_scalar(original, "enabled", "false")
    assert changed_lines(git(root, "diff", "-U0")) == ["+DRAFT"]
    assert git(root, "diff", "--cached") == ""

    git(root, "add", "Tasks/P.md")  # the draft staged, then resumed
    settle(note)
    assert cli("resume", "P").code == 0
    assert git(root, "show", "HEAD:Tasks/P.md") == original
    assert git(root, "show", ":Tasks/P.md") == original + "DRAFT\n"
    assert changed_lines(git(root, "diff", "--cached", "-U0")) == ["+DRAFT"]
    ours = changed_lines(git(root, "log", "-p", "--author=vaultsched", "--format="))
    assert sorted(ours) == [
        "+enabled: false",
        "+enabled: true",
        "-enabled: false",
        "-enabled: true",
    ]


def never_inited(tmp_path: Path) -> Path:
    """An Obsidian vault in git that has never seen `vaultsched init`."""
    root = tmp_path / "vault"
    (root / ".obsidian").mkdir(parents=True)
    (root / ".obsidian" / "app.json").write_text("{}\n")
    git(root, "init", "-q")
    write_note(root, "Tasks/Tick.md", NOTE)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "my vault")
    settle(root / "Tasks/Tick.md")
    return root


def test_a_vault_never_inited_is_clean_after_run_now(tmp_path: Path) -> None:
    root = never_inited(tmp_path)
    assert Cli(root)("run-now", "Tick").code == 0
    assert git(root, "status", "--porcelain", "--untracked-files=all") == ""
    assert (root / ".vaultsched/logs").is_dir() and (root / ".vaultsched/state").is_dir()
    ignore = git(root, "show", "HEAD:.vaultsched/.gitignore").split()
    assert {"state/", "logs/", "*.lock"} <= set(ignore)


def test_a_vault_never_inited_is_clean_after_the_daemon(tmp_path: Path, daemons: Start) -> None:
    root = never_inited(tmp_path)
    daemon = daemons(root)
    wait_for(lambda: len(runs(root)) >= 2, what="two runs")
    assert daemon.stop() == 0
    assert git(root, "status", "--porcelain", "--untracked-files=all") == ""
    assert (root / ".vaultsched/state").is_dir()  # state was written, and is ignored


# -- a busy vault ----------------------------------------------------------------------------------

TASKS = ("A", "B", "C", "D")
_HUNK = re.compile(r"@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@")
_ENABLED = re.compile(r"enabled: (true|false)")


def person_at_work(root: Path, cli: Cli, edits: int) -> list[str]:
    """A person typing into one task note after another (each quiet about 2.8 s in between,
    so runs land meanwhile), staging every third edit, committing now and then as Obsidian
    Git does, and pausing and resuming one task. Returns the lines they wrote.

    A count of edits, not a length of time: on a slow machine the test takes longer, and
    still does all of it."""
    written: list[str] = []
    for n in range(edits):
        rel = f"Tasks/{TASKS[n % len(TASKS)]}.md"
        line = f"{PERSON} {n}"
        path = root / rel
        path.write_text(path.read_text().replace("Body.\n", f"Body.\n{line}\n", 1))
        written.append(line)
        if n % 3 == 0:
            person_git(root, "add", rel)
        if n % 7 == 6:
            person_git(root, "commit", "-qm", "vault backup", "--", rel)
        if n in (5, 11):
            verb = "pause" if n == 5 else "resume"
            result = cli(verb, "D")
            value = "true" if verb == "resume" else "false"
            assert result == Result(0, f"Tasks/D: enabled: {value}\n", ""), result
        time.sleep(0.7)
    return written


def person_git(root: Path, *args: str) -> None:
    """The person's git, which meets vaultsched's index.lock now and then: try again."""
    for _ in range(100):
        done = subprocess.run(["git", *args], cwd=root, capture_output=True, check=False)
        if done.returncode == 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"git {args}: {done.stderr!r}")


def numbered(diff: str) -> Iterator[tuple[str, int, str]]:
    """(sign, line number in its version, text) of every line a `-U0` diff changes."""
    old = new = 0
    for line in diff.splitlines():
        hunk = _HUNK.match(line)
        if hunk:
            old, new = int(hunk[1]), int(hunk[2])
        elif line.startswith("-") and not line.startswith("--- "):
            yield "-", old, line[1:]
            old += 1
        elif line.startswith("+") and not line.startswith("+++ "):
            yield "+", new, line[1:]
            new += 1


def in_block(text: str, markers: blocks.Markers, number: int) -> bool:
    span = blocks.find_block(text, markers)
    if span is None:
        return False
    first, last = text.count("\n", 0, span[0]) + 1, text.count("\n", 0, span[1]) + 1
    return first <= number <= last


def version(root: Path, spec: str) -> str:
    shown = subprocess.run(["git", "show", spec], cwd=root, capture_output=True, check=False)
    return shown.stdout.decode() if shown.returncode == 0 else ""


def assert_only_vaultsched_lines(root: Path, commit: str, rel: str) -> None:
    diff = git(root, "diff", "-U0", f"{commit}^", commit, "--", rel)
    if rel.endswith(".jsonl"):
        for sign, _, line in numbered(diff):
            assert sign == "+" and json.loads(line)["run_id"], (commit, rel, line)
        return
    assert rel.endswith(".md"), (commit, rel)
    markers = blocks.DIGEST if rel.startswith("Digests/") else blocks.RUNS
    before, after = version(root, f"{commit}^:{rel}"), version(root, f"{commit}:{rel}")
    for sign, number, line in numbered(diff):
        ok = in_block(before if sign == "-" else after, markers, number)
        # The blank line that sets a first block apart, and pause/resume's one property line.
        assert ok or line == "" or _ENABLED.fullmatch(line), (commit, rel, sign, line)


def test_a_busy_vault_commits_nothing_but_blocks_properties_and_ledger_lines(
    vault_root: Path, daemons: Start
) -> None:
    root, cli = vault_root, Cli(vault_root)
    for name in TASKS:
        committed_note(root, f"Tasks/{name}.md")
    daemon = daemons(root)
    wait_for(lambda: len(runs(root)) >= len(TASKS), what="the first runs")
    written = person_at_work(root, cli, edits=14)
    assert daemon.stop() == 0

    ours = git(root, "log", "--author=vaultsched", "--format=%H").split()
    notes_committed = 0
    for commit in ours:
        changed = git(root, "diff-tree", "-r", "-z", "--name-only", "--no-commit-id", commit)
        for rel in filter(None, changed.split("\0")):
            assert_only_vaultsched_lines(root, commit, rel)
            notes_committed += rel.startswith("Tasks/")
    assert notes_committed >= len(TASKS)
    ours_diff = changed_lines(git(root, "log", "-p", "-U0", "--author=vaultsched", "--format="))
    assert not [line for line in ours_diff if PERSON in line]
    subjects = git(root, "log", "--format=%s").splitlines()
    assert {"vault backup", "vaultsched: pause Tasks/D", "vaultsched: resume Tasks/D"} <= set(
        subjects
    ), git(root, "log", "-p", "-U1", "--format=%an|%s", "--", "Tasks/D.md")
    on_disk = "".join((root / f"Tasks/{name}.md").read_text() for name in TASKS)
    assert all(line in on_disk for line in written), "a person's line was lost"
