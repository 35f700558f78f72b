"""Git hooks shipped to vaults: validation before commit, a re-read after merge, no clobbering."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from conftest import Cli, git, start_daemon, wait_for, write_note

BROKEN = "---\nschedule: */5 * * * *\ncommand: x\n---\n"
GOOD = "---\nschedule: '@daily'\ncommand: echo ok\n---\n"


def commit(root: Path, message: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "commit", "-qm", message], cwd=root, capture_output=True, text=True, check=False
    )


def test_pre_commit_blocks_a_broken_task_note_and_keeps_the_users_hook(cli: Cli) -> None:
    hooks = cli.root / ".git/hooks"
    mine = hooks / "pre-commit"
    mine.write_text("#!/bin/sh\necho user-hook-ran\n[ ! -e VETO ]\n")
    mine.chmod(0o755)
    result = cli("hooks", "install")
    assert result.code == 0, result.err
    assert "your existing hook runs first" in result.out
    assert (hooks / "pre-commit.before-vaultsched").read_text().startswith("#!/bin/sh\necho user")
    assert "pre-commit: up to date" in cli("hooks", "install").out  # idempotent

    write_note(cli.root, "Tasks/Bad.md", BROKEN)
    git(cli.root, "add", "Tasks/Bad.md")
    refused = commit(cli.root, "bad")
    assert refused.returncode == 1
    assert "user-hook-ran" in refused.stdout + refused.stderr
    assert 'Tasks/Bad.md:2: schedule starts with "*"' in refused.stdout + refused.stderr

    write_note(cli.root, "Tasks/Bad.md", GOOD)
    git(cli.root, "add", "Tasks/Bad.md")
    assert commit(cli.root, "fixed").returncode == 0

    write_note(cli.root, "VETO", "")  # the user's hook still has its say
    write_note(cli.root, "Other.md", "text\n")
    git(cli.root, "add", "Other.md")
    assert commit(cli.root, "vetoed").returncode == 1


def test_pre_commit_refuses_only_notes_meant_as_tasks_in_the_task_folders(cli: Cli) -> None:
    config = cli.root / ".vaultsched/config.toml"
    config.write_text(config.read_text() + '[tasks]\nfolders = ["Tasks"]\n')
    assert cli("hooks", "install").code == 0
    plugin = "---\ncommand: {name: Undo last commit}\n---\n"
    write_note(cli.root, "Notes/Plugin.md", plugin)  # outside the task folders: not a task
    write_note(cli.root, "Notes/Broken.md", BROKEN)
    git(cli.root, "add", "-A")
    assert commit(cli.root, "notes").returncode == 0

    write_note(cli.root, "Tasks/Plugin.md", plugin)  # inside: invalid, but not meant as a task
    git(cli.root, "add", "-A")
    allowed = commit(cli.root, "plugin note")
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "Tasks/Plugin.md:2: warning: command: must be a string" in allowed.stderr

    write_note(cli.root, "Tasks/Bad.md", BROKEN)  # a task, broken: refused as before
    git(cli.root, "add", "-A")
    assert commit(cli.root, "bad task").returncode == 1


def test_two_foreign_hooks_are_left_for_a_person(cli: Cli) -> None:
    hooks = cli.root / ".git/hooks"
    for name in ("post-merge", "post-merge.before-vaultsched"):
        (hooks / name).write_text("#!/bin/sh\n")
    result = cli("hooks", "install")
    assert "post-merge: not installed" in result.out
    assert (hooks / "post-merge").read_text() == "#!/bin/sh\n"


def test_init_installs_the_hooks(tmp_path: Path) -> None:
    root = tmp_path / "fresh"
    assert Cli(root)("init", str(root)).code == 0
    for name in ("pre-commit", "post-merge", "post-checkout"):
        assert "# vaultsched hook (" in (root / ".git/hooks" / name).read_text()


@pytest.mark.integration
def test_a_merge_makes_the_running_daemon_re_read_the_vault(cli: Cli) -> None:
    assert cli("hooks", "install").code == 0
    git(cli.root, "checkout", "-qb", "side")
    write_note(cli.root, "Tasks/From side.md", GOOD)
    git(cli.root, "add", "-A")
    git(cli.root, "commit", "-qm", "side", "--no-verify")
    git(cli.root, "checkout", "-q", "main")
    daemon = start_daemon(cli.root)
    try:
        wait_for(lambda: "indexed" in daemon.output(), what="daemon up")
        git(cli.root, "merge", "-q", "--no-edit", "side")
        wait_for(lambda: "re-reading the vault" in daemon.output(), what="the hook's re-read")
        assert "not running" not in cli("reindex").out
    finally:
        assert daemon.stop() == 0
    assert "no daemon is running" in cli("reindex").out
