"""Git on real repositories: only our files are committed, the user's work is left alone."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from conftest import HOST, git, make_vault, write_note

from vaultsched.git import Git, GitError


def test_commits_only_the_given_files_and_leaves_the_user_alone(tmp_path: Path) -> None:
    root = make_vault(tmp_path / "v")
    write_note(root, "Mine.md", "tracked\n")
    git(root, "add", "Mine.md")
    git(root, "commit", "-qm", "user")
    write_note(root, "Mine.md", "user's unsaved work\n")  # modified, unstaged
    write_note(root, "Staged.md", "staged by the user\n")
    git(root, "add", "Staged.md")
    write_note(root, "Untracked.md", "untracked\n")
    write_note(root, "Tasks/T.md", "run block\n")
    write_note(root, "Digests/2026-01-01.md", "digest\n")

    assert Git(root, HOST).commit(["Tasks/T.md", "Digests/2026-01-01.md"], "vaultsched: success T")

    shown = git(root, "show", "--stat", "--format=%an <%ae>|%cn|%s", "HEAD")
    assert (
        shown.splitlines()[0] == f"vaultsched <vaultsched@{HOST}>|vaultsched|vaultsched: success T"
    )
    assert "Tasks/T.md" in shown and "Digests/2026-01-01.md" in shown
    assert "Mine.md" not in shown and "Staged.md" not in shown
    status = git(root, "status", "--porcelain").splitlines()
    assert " M Mine.md" in status
    assert "A  Staged.md" in status
    assert "?? Untracked.md" in status


def test_nothing_to_commit_and_ignored_files(tmp_path: Path) -> None:
    root = make_vault(tmp_path / "v")
    (root / ".gitignore").write_text("Digests/\n")
    git(root, "add", ".gitignore")
    git(root, "commit", "-qm", "ignore")
    write_note(root, "Digests/d.md", "x\n")
    repo = Git(root, HOST)
    assert repo.commit(["Digests/d.md"], "m") is False
    write_note(root, "T.md", "x\n")
    assert repo.commit(["T.md"], "m") is True
    assert repo.commit(["T.md"], "m") is False


def test_waits_for_a_held_index_lock_and_never_removes_it(tmp_path: Path) -> None:
    root = make_vault(tmp_path / "v")
    lock = root / ".git" / "index.lock"
    lock.write_text("")
    write_note(root, "T.md", "x\n")
    released: list[float] = []

    def release() -> None:
        time.sleep(0.5)
        released.append(time.monotonic())
        lock.unlink()

    thread = threading.Thread(target=release)
    thread.start()
    assert Git(root, HOST).commit(["T.md"], "m")
    thread.join()
    assert released, "committed while the lock was still held"
    assert git(root, "log", "-1", "--format=%s").strip() == "m"


def test_usable_only_at_the_top_of_a_work_tree(tmp_path: Path) -> None:
    outer = make_vault(tmp_path / "outer")
    inner = make_vault(outer / "inner", repo=False)
    assert Git(outer, HOST).usable
    assert not Git(inner, HOST).usable
    assert not Git(make_vault(tmp_path / "plain", repo=False), HOST).usable


def test_initial_commit_in_an_empty_repo(tmp_path: Path) -> None:
    root = tmp_path / "v"
    root.mkdir()
    git(root, "init", "-q")
    write_note(root, "T.md", "x\n")
    assert Git(root, HOST).commit(["T.md"], "first")
    assert git(root, "log", "--format=%s").strip() == "first"


def test_never_commits_into_an_unfinished_merge(tmp_path: Path) -> None:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    (root / "a.md").write_text("base\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "base")
    (root / ".git/MERGE_HEAD").write_text(git(root, "rev-parse", "HEAD"))
    (root / "a.md").write_text("ours\n")
    repo = Git(root, "testhost")
    with pytest.raises(GitError, match="a merge is in progress"):
        repo.commit(["a.md"], "vaultsched: x")
    (root / ".git/MERGE_HEAD").unlink()
    assert repo.commit(["a.md"], "vaultsched: x")
