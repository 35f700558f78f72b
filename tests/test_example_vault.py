"""The bundled example vault: valid, and its scripts work (tests/test_demo.py runs the demo)."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import Cli, git, runs

from vaultsched.core.layout import GITATTRIBUTES_TEXT, GITIGNORE_TEXT
from vaultsched.core.model import Status

EXAMPLE = Path(__file__).resolve().parent.parent / "vault"
SCHEDULES = {
    "Tasks/Archive done items": ["0 22 * * *"],
    "Tasks/Check links now": [],
    "Tasks/Daily briefing": ["0 7 * * 1-5"],
    "Tasks/Draft inbox follow-up": [],
    "Tasks/Inbox briefing": ["30 7 * * *"],
    "Tasks/Journal check": ["0 21 * * *"],
    "Tasks/Log inbox follow-up": [],
    "Tasks/Vault stats": ["0 * * * *"],
    "Tasks/Weekly cleanup report": ["0 18 * * FRI"],
}


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    root = tmp_path / "example"
    shutil.copytree(EXAMPLE, root)
    return root


def script(
    root: Path, name: str, stdin: str = "", *, env_var: bool = True, due: str = ""
) -> subprocess.CompletedProcess[str]:
    """Run a subcommand of the vault's script as vaultsched would (without `env_var`: by hand;
    `due`: as a scheduled run due then)."""
    env = {**os.environ, "VAULTSCHED_VAULT": str(root)} if env_var else dict(os.environ)
    env["VAULTSCHED_SCHEDULED_FOR"] = due
    return subprocess.run(
        [sys.executable, "scripts/vault_tools.py", name],
        cwd=root,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_validates_and_lists_its_tasks(copy: Path) -> None:
    cli = Cli(copy)
    result = cli("validate")
    assert result.code == 0, result.out + result.err
    listed = json.loads(cli("list", "--json").out)
    assert {t["task"]: t["schedule"] for t in listed} == SCHEDULES
    assert all(t["valid"] and t["enabled"] and not t["errors"] for t in listed)
    manual = next(t for t in listed if t["task"] == "Tasks/Check links now")
    assert manual["next_run"] is None


def test_vault_layout_mirrors_init(copy: Path) -> None:
    assert (copy / ".vaultsched/.gitignore").read_text() == GITIGNORE_TEXT
    assert (copy / ".vaultsched/.gitattributes").read_text() == GITATTRIBUTES_TEXT
    assert isinstance(json.loads((copy / ".obsidian/app.json").read_text()), dict)
    assert (copy / "attachments/old-screenshot.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_script_is_one_stdlib_file(copy: Path) -> None:
    # Trust covers the files a command names: a script importing a sibling module would let a
    # change to that module run untrusted.
    for path in sorted((copy / "scripts").glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in sys.stdlib_module_names | {"__future__"}, (path, name)


def test_scripts_report_what_the_vault_holds(copy: Path) -> None:
    stats = script(copy, "stats")
    assert stats.returncode == 0, stats.stderr
    assert "notes: 13" in stats.stdout
    assert "open items: 6" in stats.stdout and "attachments: 2" in stats.stdout
    assert script(copy, "stats", env_var=False).stdout == stats.stdout  # cwd fallback

    report = script(copy, "cleanup")
    assert report.returncode == 0, report.stderr  # a report, not a failure
    assert "Broken links: 1\n- Inbox.md: [[Missing note]]" in report.stdout
    assert "Unlinked attachments: 1\n- attachments/old-screenshot.png" in report.stdout
    assert "bed-plan.png" not in report.stdout  # embedded in Projects/Garden
    assert script(copy, "cleanup").stdout == report.stdout  # deterministic

    briefing = script(copy, "briefing", stdin="- Call the plumber\n- [ ] not a reminder\n")
    assert briefing.returncode == 0, briefing.stderr
    assert "Open items: 6" in briefing.stdout
    assert "- Order seed potatoes (Projects/Garden)" in briefing.stdout
    assert "- Call the plumber" in briefing.stdout
    assert "not a reminder" not in briefing.stdout


def test_the_journal_check_fails_until_the_days_note_is_written(copy: Path) -> None:
    missing = script(copy, "journal", due="2026-11-21T21:00:00+00:00")
    assert missing.returncode == 1
    assert missing.stderr == (
        "Journal/2026-11-21.md does not exist yet: write today's journal note\n"
    )
    written = script(copy, "journal", due="2026-11-20T21:00:00+00:00")  # the vault has that one
    assert (written.returncode, written.stdout) == (0, "Journal/2026-11-20.md is written\n")
    daily_notes = json.loads((copy / ".obsidian/daily-notes.json").read_text())
    assert daily_notes == {"folder": "Journal", "format": "YYYY-MM-DD"}  # where Obsidian puts it


def test_archive_moves_only_the_inboxs_done_items(copy: Path) -> None:
    inbox = copy / "Inbox.md"
    inbox.write_text(inbox.read_text() + "\n```\n- [x] in a code block\n```\n  - [x] nested\n")
    before = inbox.read_text()
    moved = script(copy, "archive")
    assert moved.returncode == 0, moved.stderr
    assert moved.stdout.endswith(":\n- Renew the library card\n")
    assert inbox.read_text() == before.replace("- [x] Renew the library card\n", "")
    archive = (copy / "Archive.md").read_text()
    assert re.search(r"\n- \[x\] Renew the library card \(archived \d{4}-\d\d-\d\d\)\n$", archive)
    again = script(copy, "archive")
    assert again.stdout == "nothing to archive: Inbox.md has no done items\n"
    assert (copy / "Archive.md").read_text() == archive
    assert not list(copy.glob(".Inbox*"))  # its temporary file is gone


def test_generated_text_is_not_counted(copy: Path) -> None:
    (copy / "Digests").mkdir()
    (copy / "Digests/2026-11-20.md").write_text("- [ ] [[Nowhere]]\n")
    note = copy / "Tasks/Vault stats.md"
    note.write_text(
        note.read_text()
        + "\n%% vaultsched:runs:begin %%\n- [ ] [[Nowhere]]\n%% vaultsched:runs:end %%\n"
    )
    assert "open items: 6" in script(copy, "stats").stdout
    assert "Nowhere" not in script(copy, "cleanup").stdout


def test_run_now_writes_the_stats_into_the_note(copy: Path) -> None:
    result = Cli(copy)("run-now", "Vault stats")
    assert result.code == 0, result.err
    assert "open items: 6" in result.out
    note = (copy / "Tasks/Vault stats.md").read_text()
    # The example keeps run state as properties: lines added at the end of the front matter.
    front, body = (EXAMPLE / "Tasks/Vault stats.md").read_text().split("\n---\n", 1)
    assert note.startswith(front + "\nlast_run: ")
    assert "\nlast_status: success\n" in note and "\nrun_count: 1\n---\n" + body in note
    block = note[note.index("%% vaultsched:runs:begin %%") :]
    assert "success" in block and "open items: 6" in block
    assert block.rstrip().endswith("%% vaultsched:runs:end %%")


def test_run_now_feeds_the_briefing_its_own_body(copy: Path) -> None:
    git(copy, "init", "-q")
    result = Cli(copy)("run-now", "Daily briefing")
    assert result.code == 0, result.err
    assert "- Water the tomatoes" in result.out  # a line of the note body, via stdin
    note = (copy / "Tasks/Daily briefing.md").read_text()
    assert "vaultsched:runs:begin" in note and "Water the tomatoes" in note
    assert git(copy, "log", "--format=%an").split() == ["vaultsched"]


def test_the_inbox_pipeline_skips_briefs_drafts_and_acts_once_approved(copy: Path) -> None:
    git(copy, "init", "-q")
    git(copy, "add", "-A")
    git(copy, "commit", "-qm", "example")
    cli = Cli(copy)
    first = cli("run-now", "Inbox briefing")
    assert first.code == 0, first.err
    by_task = {r.task: r for r in runs(copy)}
    briefing = by_task["Tasks/Inbox briefing"]
    assert by_task["Tasks/Draft inbox follow-up"].status is Status.SUCCESS
    assert by_task["Tasks/Log inbox follow-up"].status is Status.AWAITING_APPROVAL
    note = copy / briefing.output_note
    assert briefing.output_note.startswith("Briefings/") and "Inbox" in note.read_text()
    follow_ups = copy / "Follow-ups.md"
    assert not follow_ups.exists()  # nothing is acted on before a person approves
    approved = cli("approve", "Log inbox follow-up")
    assert approved.code == 0, approved.err
    assert len(follow_ups.read_text().splitlines()) >= 1
    again = cli("run-now", "Inbox briefing")  # the inbox has not changed: skipped, nothing more
    assert again.code == 1 and "skipped Tasks/Inbox briefing" in again.err
    assert len([r for r in runs(copy) if r.task == "Tasks/Draft inbox follow-up"]) == 1
