"""`.git/` and everything a pull brings are vault content: vaultsched's own git calls and its
sync must never run code, write outside the vault or commit into a repository elsewhere."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import git

pytestmark = pytest.mark.integration

TASK = "Tasks/Hello vaultsched"


def vs(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vaultsched", "--vault", str(root), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def new_vault(root: Path) -> Path:
    assert vs(root, "init", str(root)).returncode == 0
    return root


def two_machines(tmp_path: Path) -> tuple[Path, Path]:
    """A victim vault with one run committed but not pushed, and an attacker's clone."""
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    victim = new_vault(tmp_path / "victim")
    git(victim, "remote", "add", "origin", str(remote))
    git(victim, "push", "-q", "origin", "main")
    attacker = tmp_path / "attacker"
    git(tmp_path, "clone", "-q", str(remote), str(attacker))
    assert vs(victim, "run-now", TASK).returncode == 0
    return victim, attacker


def push_as_attacker(attacker: Path, message: str) -> None:
    git(attacker, "add", "-A")
    git(attacker, "-c", "user.name=a", "-c", "user.email=a@a", "commit", "-qm", message)
    git(attacker, "push", "-q", "origin", "main")


def test_a_pushed_symlink_in_a_sync_conflict_writes_nothing_outside(tmp_path: Path) -> None:
    """The remote replaces a note the victim's run just changed by a symlink out of the vault
    (a "distinct types" conflict): the merged text once went through the link."""
    victim, attacker = two_machines(tmp_path)
    outside = tmp_path / "OUTSIDE-written-by-vaultsched"
    note = attacker / f"{TASK}.md"
    note.unlink()
    note.symlink_to(outside)
    push_as_attacker(attacker, "innocent")

    synced = vs(victim, "sync")
    assert synced.returncode == 0, synced.stderr
    assert "the remote's version was kept" in synced.stderr
    assert not outside.exists() and not outside.is_symlink()
    assert git(victim, "rev-parse", "HEAD") == git(tmp_path / "remote.git", "rev-parse", "main")
    assert git(victim, "ls-tree", "HEAD", "--", f"{TASK}.md").startswith("120000")


def test_a_conflicted_note_is_merged_in_the_index_and_on_disk(tmp_path: Path) -> None:
    """The ordinary conflict still resolves: both sides' text, written without links."""
    victim, attacker = two_machines(tmp_path)
    note = attacker / f"{TASK}.md"
    text = note.read_text(encoding="utf-8")
    note.write_text(text + "\nA line from the other machine.\n", encoding="utf-8")
    push_as_attacker(attacker, "edit")

    synced = vs(victim, "sync")
    assert synced.returncode == 0, synced.stderr
    merged = (victim / f"{TASK}.md").read_text(encoding="utf-8")
    assert "A line from the other machine." in merged
    assert "vaultsched:runs:begin" in merged and "<<<<<<<" not in merged
    assert git(victim, "status", "--porcelain", "--", f"{TASK}.md") == ""


def test_a_symlinked_scratch_worktree_is_never_used(tmp_path: Path) -> None:
    """A sync tool puts a link where the rebase worktree once lived: nothing is checked out
    into, or deleted from, the folder it points to."""
    victim, attacker = two_machines(tmp_path)
    (attacker / "Note.md").write_text("new note\n", encoding="utf-8")
    push_as_attacker(attacker, "note")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep-me").write_text("mine\n")
    (victim / ".vaultsched/state/sync-worktree").symlink_to(outside)

    synced = vs(victim, "sync")
    assert synced.returncode == 0, synced.stderr
    assert sorted(p.name for p in outside.iterdir()) == ["keep-me"]
    assert (victim / "Note.md").is_file()
    worktrees = git(victim, "worktree", "list", "--porcelain")
    assert worktrees.count("worktree ") == 1, worktrees


def plant_code(root: Path, marker_dir: Path) -> None:
    """What a sync tool carrying `.git/` can write: config keys and executable hooks."""
    git(root, "config", "core.fsmonitor", f"touch {marker_dir}/PWNED-fsmonitor; false")
    hooks = root / ".git/hooks"
    hooks.mkdir(exist_ok=True)
    for name in ("reference-transaction", "post-checkout", "pre-rebase", "post-rewrite"):
        hook = hooks / name
        hook.write_text(f"#!/bin/sh\ntouch {marker_dir}/PWNED-{name}\n")
        hook.chmod(0o755)


def test_the_repositorys_own_hooks_and_fsmonitor_never_run(tmp_path: Path) -> None:
    victim, attacker = two_machines(tmp_path)
    markers = tmp_path / "markers"
    markers.mkdir()
    plant_code(victim, markers)
    (attacker / "Note.md").write_text("new note\n", encoding="utf-8")
    push_as_attacker(attacker, "note")

    before = git(victim, "rev-list", "--count", "HEAD")
    assert vs(victim, "run-now", TASK).returncode == 0
    assert git(victim, "rev-list", "--count", "HEAD") != before  # committed all the same
    synced = vs(victim, "sync")
    assert synced.returncode == 0, synced.stderr
    assert vs(victim, "doctor").returncode in (0, 1)
    assert list(markers.iterdir()) == []


def test_a_git_folder_a_sync_brings_runs_nothing(tmp_path: Path) -> None:
    """A vault kept without git; the sync tool brings a `.git/` someone made."""
    root = new_vault(tmp_path / "vault")
    subprocess.run(["rm", "-rf", str(root / ".git")], check=True)
    assert vs(root, "run-now", TASK).returncode == 0
    markers = tmp_path / "markers"
    markers.mkdir()
    git(root, "init", "-q")
    plant_code(root, markers)
    assert vs(root, "run-now", TASK).returncode == 0
    assert list(markers.iterdir()) == []


@pytest.mark.parametrize("kind", ["gitfile", "symlink"])
def test_a_git_dir_outside_the_vault_gets_no_commit(tmp_path: Path, kind: str) -> None:
    other = tmp_path / "other"
    git(tmp_path, "init", "-q", str(other))
    (other / "main.c").write_text("code\n")
    git(other, "add", ".")
    git(other, "commit", "-qm", "my project")
    head = git(other, "rev-parse", "HEAD")
    root = new_vault(tmp_path / "vault")
    subprocess.run(["rm", "-rf", str(root / ".git")], check=True)
    if kind == "gitfile":
        (root / ".git").write_text(f"gitdir: {other}/.git\n")
    else:
        (root / ".git").symlink_to(other / ".git")

    ran = vs(root, "run-now", TASK)
    assert ran.returncode == 0, ran.stderr
    assert ran.stderr.count("outside the vault") == 1, ran.stderr
    assert vs(root, "sync").returncode == 1
    doctor = vs(root, "doctor")
    assert "outside the vault" in doctor.stdout
    assert git(other, "rev-parse", "HEAD") == head
    assert git(other, "status", "--porcelain") == ""


def test_a_filter_in_the_repositorys_config_stops_commits(tmp_path: Path) -> None:
    """`filter.x.clean` runs on a refresh: with it in `.git/config`, nothing is committed."""
    root = new_vault(tmp_path / "vault")
    marker = tmp_path / "PWNED-filter"
    git(root, "config", "filter.x.clean", f"touch {marker}; cat")
    git(root, "config", "filter.x.smudge", f"touch {marker}; cat")
    (root / ".gitattributes").write_text("* filter=x\n")
    before = git(root, "rev-parse", "HEAD")
    ran = vs(root, "run-now", TASK)
    assert ran.returncode == 0
    assert "filter.x.clean" in ran.stderr
    assert git(root, "rev-parse", "HEAD") == before
    assert not marker.exists()
    assert "filter.x.clean" in vs(root, "doctor").stdout


@pytest.mark.parametrize(
    "key", ["core.sshCommand", "core.gitProxy", "credential.helper", "remote.origin.uploadpack"]
)
def test_network_keys_in_the_repositorys_config_refuse_sync(tmp_path: Path, key: str) -> None:
    victim, _attacker = two_machines(tmp_path)
    marker = tmp_path / "PWNED-network"
    git(victim, "config", key, f"touch {marker}; false")
    (victim / ".vaultsched/config.toml").write_text("[git]\nsync = true\n")
    synced = vs(victim, "sync")
    assert synced.returncode == 1
    assert key.lower() in synced.stderr.lower() and "global git config" in synced.stderr
    doctor = vs(victim, "doctor")
    assert doctor.returncode == 1 and "fail git remote" in doctor.stdout
    assert not marker.exists()


def test_the_users_global_ssh_command_still_works(tmp_path: Path) -> None:
    """Only the repository's own config is refused: the user's global config is theirs."""
    victim, _attacker = two_machines(tmp_path)
    gitconfig = Path(os.environ["GIT_CONFIG_GLOBAL"])
    gitconfig.write_text(gitconfig.read_text() + "[core]\n\tsshCommand = ssh -o BatchMode=yes\n")
    synced = vs(victim, "sync")
    assert synced.returncode == 0, synced.stderr


def test_a_rewritten_state_gitignore_never_lets_logs_into_git(tmp_path: Path) -> None:
    """A pull drops the `logs/` rule from `.vaultsched/.gitignore`; Obsidian Git's `git add -A`
    must still leave the unredacted logs out."""
    root = new_vault(tmp_path / "vault")
    (root / "Tasks/Deploy.md").write_text(
        '---\ncommand: echo "using $API_TOKEN"\nenv:\n  API_TOKEN: s3cr3t-value-123456\n---\n'
    )
    assert vs(root, "run-now", "Tasks/Deploy").returncode == 0
    (root / ".vaultsched/.gitignore").write_text("*.lock\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "Obsidian Git: vault backup", "--no-verify")
    assert ".vaultsched/logs" not in git(root, "show", "--stat", "HEAD")
    assert ".vaultsched/logs" not in git(root, "ls-tree", "-r", "--name-only", "HEAD")
    assert (root / ".vaultsched/logs").is_dir()  # the log is there, just never in git
    doctor = vs(root, "doctor")
    assert "ok   git ignore" in doctor.stdout, doctor.stdout

    exclude = root / ".git/info/exclude"
    exclude.write_text("")
    doctor = vs(root, "doctor")
    assert "fail git ignore" in doctor.stdout and ".vaultsched/logs/x.log" in doctor.stdout
    assert vs(root, "run-now", "Tasks/Deploy").returncode == 0
    assert exclude.read_text().count("/.vaultsched/logs/") == 1
    assert vs(root, "run-now", "Tasks/Deploy").returncode == 0
    assert exclude.read_text().count("/.vaultsched/logs/") == 1  # appended once, never again
