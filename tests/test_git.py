"""Git on real repositories: only our files are committed, the user's work is left alone."""

from __future__ import annotations

import ast
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from conftest import HOST, git, make_vault, write_note

import vaultsched
from vaultsched.adapters import statefs
from vaultsched.adapters.git import Edit, Git, GitError
from vaultsched.adapters.git.plan import Plan
from vaultsched.core import blocks, layout
from vaultsched.runtime.commit import block_edit


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

    assert Git(root, HOST).commit(
        [Edit("Tasks/T.md"), Edit("Digests/2026-01-01.md")], "vaultsched: success T"
    )

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
    assert repo.commit([Edit("Digests/d.md")], "m") is False
    write_note(root, "T.md", "x\n")
    assert repo.commit([Edit("T.md")], "m") is True
    assert repo.commit([Edit("T.md")], "m") is False


def test_which_edits_stand_is_decided_under_the_vaults_git_lock(tmp_path: Path) -> None:
    """The daemon decides which of its pending edits still stand (an edit another vaultsched
    process has since replaced does not) while it holds the git lock: decided before, `approve`
    could write and commit the note meanwhile, and the daemon's older text would go on top."""
    root = make_vault(tmp_path / "v")
    write_note(root, "T.md", "x\n")
    held: list[bool] = []

    def current(edits: Sequence[Edit]) -> Sequence[Edit]:
        with statefs.locked(root, layout.GIT_LOCK, wait=False) as free:
            held.append(not free)
        return [e for e in edits if e.path == "T.md"]

    assert Git(root, HOST).commit([Edit("T.md"), Edit("U.md")], "m", current) is True
    assert held == [True]
    assert git(root, "show", "--name-only", "--format=", "HEAD").split() == ["T.md"]


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
    assert Git(root, HOST).commit([Edit("T.md")], "m")
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
    assert Git(root, HOST).commit([Edit("T.md")], "first")
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
        repo.commit([Edit("a.md")], "vaultsched: x")
    (root / ".git/MERGE_HEAD").unlink()
    assert repo.commit([Edit("a.md")], "vaultsched: x")


# -- a commit holds only vaultsched's bytes ------------------------------------------------------

NOTE = "---\ncommand: echo hi\n---\nBody.\n"


def block(inner: str, rel: str = "Tasks/T.md", *, create: bool = False) -> Edit:
    """The edit a run makes to a note: its run block, as the engine builds it."""
    return block_edit(rel, blocks.RUNS, inner, create=create)


def land(root: Path, edit: Edit) -> None:
    """What the note writer does: the edit applied to the note as it is on disk."""
    assert edit.apply is not None
    path = root / edit.path
    path.write_text(edit.apply(path.read_text(encoding="utf-8")), encoding="utf-8")


def show(root: Path, spec: str) -> str:
    return git(root, "show", spec)


def with_note(tmp_path: Path, rel: str = "Tasks/T.md") -> Path:
    root = make_vault(tmp_path / "v")
    write_note(root, rel, NOTE)
    git(root, "add", rel)
    git(root, "commit", "-qm", "note")
    return root


def test_an_unstaged_edit_stays_out_of_the_commit(tmp_path: Path) -> None:
    root = with_note(tmp_path)
    note = root / "Tasks/T.md"
    note.write_text(NOTE + "DRAFT\n")
    edit = block("run 1")
    land(root, edit)
    write_note(root, "Ledger.jsonl", "{}\n")

    assert Git(root, HOST).commit([edit, Edit("Ledger.jsonl")], "vaultsched: success T")

    assert show(root, "HEAD:Tasks/T.md") == blocks.splice_block(NOTE, blocks.RUNS, "run 1")
    assert "DRAFT" not in git(root, "log", "-p", "--author=vaultsched")
    assert git(root, "diff", "--cached") == ""  # the index follows the commit
    assert _changed_lines(git(root, "diff", "-U0")) == ["+DRAFT"]  # the draft is still theirs
    assert edit.apply is not None
    assert note.read_text() == edit.apply(NOTE + "DRAFT\n")  # the working tree is untouched


def test_a_staged_edit_stays_staged_with_the_block_in_it(tmp_path: Path) -> None:
    root = with_note(tmp_path)
    (root / "Tasks/T.md").write_text(NOTE + "STAGED\n")
    git(root, "add", "Tasks/T.md")
    edit = block("run 1")
    land(root, edit)

    assert Git(root, HOST).commit([edit], "vaultsched: success T")

    assert edit.apply is not None
    assert show(root, "HEAD:Tasks/T.md") == edit.apply(NOTE)
    assert show(root, ":Tasks/T.md") == edit.apply(NOTE + "STAGED\n")
    assert git(root, "status", "--porcelain") == "M  Tasks/T.md\n"
    # The person commits what they staged later: the block stays, their line joins it.
    git(root, "commit", "-qm", "mine")
    assert show(root, "HEAD:Tasks/T.md") == edit.apply(NOTE + "STAGED\n")
    assert git(root, "status", "--porcelain") == ""


def test_staged_and_then_unstaged_edits_each_stay_where_they_were(tmp_path: Path) -> None:
    root = with_note(tmp_path)
    note = root / "Tasks/T.md"
    note.write_text(NOTE + "STAGED\n")
    git(root, "add", "Tasks/T.md")
    note.write_text(NOTE + "STAGED\nUNSTAGED\n")
    edit = block("run 1")
    land(root, edit)
    assert edit.apply is not None

    assert Git(root, HOST).commit([edit], "vaultsched: success T")

    assert show(root, "HEAD:Tasks/T.md") == edit.apply(NOTE)
    assert show(root, ":Tasks/T.md") == edit.apply(NOTE + "STAGED\n")
    assert note.read_text() == edit.apply(NOTE + "STAGED\nUNSTAGED\n")
    assert _changed_lines(git(root, "diff", "--cached", "-U0")) == ["+STAGED"]
    assert _changed_lines(git(root, "diff", "-U0")) == ["+UNSTAGED"]


def _changed_lines(diff: str) -> list[str]:
    return [
        line
        for line in diff.splitlines()
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def test_a_note_not_in_git_is_left_for_the_person(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = make_vault(tmp_path / "v")
    write_note(root, "Tasks/New.md", NOTE)
    write_note(root, "Tasks/Added.md", NOTE)
    git(root, "add", "Tasks/Added.md")
    new, added = block("run 1", "Tasks/New.md"), block("run 1", "Tasks/Added.md")
    land(root, new)
    land(root, added)
    write_note(root, "Ledger.jsonl", "{}\n")
    repo = Git(root, HOST)

    assert repo.commit([new, added, Edit("Ledger.jsonl")], "vaultsched: 2 runs (0 failed)")
    assert repo.commit([new, added], "vaultsched: again") is False

    assert git(root, "show", "--name-only", "--format=", "HEAD").split() == ["Ledger.jsonl"]
    status = git(root, "status", "--porcelain", "--untracked-files=all").splitlines()
    assert sorted(status) == ["?? Tasks/New.md", "A  Tasks/Added.md"]
    # A note the person added (not yet committed) carries the block when they commit it.
    assert show(root, ":Tasks/Added.md") == (root / "Tasks/Added.md").read_text()
    assert caplog.text.count("Tasks/New.md is not in git yet") == 1


def test_a_renamed_note_stays_the_persons_rename(tmp_path: Path) -> None:
    root = with_note(tmp_path, "Tasks/Old.md")
    git(root, "mv", "Tasks/Old.md", "Tasks/Staged.md")  # a rename staged with `git mv`
    staged = block("run 1", "Tasks/Staged.md")
    land(root, staged)
    repo = Git(root, HOST)

    assert repo.commit([staged], "vaultsched: success Staged") is False
    assert show(root, "HEAD:Tasks/Old.md") == NOTE
    assert (root / "Tasks/Staged.md").read_text() == show(root, ":Tasks/Staged.md")
    git(root, "commit", "-qm", "rename")
    assert git(root, "status", "--porcelain") == ""

    (root / "Tasks/Staged.md").rename(root / "Tasks/Moved.md")  # renamed on disk only
    moved = block("run 2", "Tasks/Moved.md")
    land(root, moved)
    gone = block("run 2", "Tasks/Staged.md")  # written just before the rename

    assert repo.commit([moved, gone], "vaultsched: success Moved") is False
    status = git(root, "status", "--porcelain", "--untracked-files=all").splitlines()
    assert sorted(status) == [" D Tasks/Staged.md", "?? Tasks/Moved.md"]


def test_a_new_digest_is_committed_as_vaultsched_wrote_it(tmp_path: Path) -> None:
    root = make_vault(tmp_path / "v")
    digest = block_edit("Digests/2026-01-01.md", blocks.DIGEST, "1 run", create=True)
    write_note(root, digest.path, "")
    land(root, digest)

    assert Git(root, HOST).commit([digest], "vaultsched: success T")

    # The index entry is fresh: even plumbing that does not refresh the index first (and
    # `reset --keep`, as sync runs it) sees no change. (`git status` would refresh it.)
    assert git(root, "diff-files", "--name-only") == ""
    assert show(root, f"HEAD:{digest.path}") == (root / digest.path).read_text()
    assert git(root, "status", "--porcelain") == ""


def test_an_edit_that_does_not_apply_to_the_committed_version_commits_nothing_of_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = make_vault(tmp_path / "v")
    conflicted = NOTE + "<<<<<<< HEAD\nmine\n=======\ntheirs\n>>>>>>> other\n"
    write_note(root, "Tasks/T.md", conflicted)
    git(root, "add", "Tasks/T.md")
    git(root, "commit", "-qm", "committed mid-conflict")
    write_note(root, "Tasks/T.md", NOTE + "mine\n")  # resolved on disk, not committed
    edit = block("run 1")
    land(root, edit)
    write_note(root, "Ledger.jsonl", "{}\n")
    repo = Git(root, HOST)

    assert repo.commit([edit, Edit("Ledger.jsonl")], "vaultsched: success T")
    write_note(root, "Ledger.jsonl", "{}\n{}\n")
    assert repo.commit([edit, Edit("Ledger.jsonl")], "vaultsched: success T")

    assert show(root, "HEAD:Tasks/T.md") == conflicted
    assert git(root, "log", "--author=vaultsched", "--format=", "--name-only").split() == [
        "Ledger.jsonl",
        "Ledger.jsonl",
    ]
    assert caplog.text.count("Tasks/T.md has git conflict markers") == 1


def test_head_moved_between_read_and_update_is_planned_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = with_note(tmp_path)
    edit = block("run 1")
    land(root, edit)
    repo = Git(root, HOST)
    planner = repo.commits.planner
    real_plan = planner.plan
    planned: list[str | None] = []

    def plan_then_person_commits(edits: Sequence[Edit]) -> Plan:
        plan = real_plan(edits)
        planned.append(plan.head)
        if len(planned) == 1:  # Obsidian Git commits between our read and our update-ref
            write_note(root, "Journal.md", "person\n")
            git(root, "add", "Journal.md")
            git(root, "commit", "-qm", "person")
        return plan

    monkeypatch.setattr(planner, "plan", plan_then_person_commits)
    assert repo.commit([edit], "vaultsched: success T")

    assert len(planned) == 2 and planned[0] != planned[1]
    assert git(root, "log", "--format=%an|%s").splitlines() == [
        "vaultsched|vaultsched: success T",
        "Test User|person",
        "Test User|note",
        "Test User|initial",
    ]
    assert show(root, "HEAD:Journal.md") == "person\n"
    assert git(root, "status", "--porcelain") == ""


OBSIDIAN_GIT = """
import os, subprocess, sys, time
lock = os.path.join(".git", "index.lock")
fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
print("held", flush=True)
time.sleep(float(sys.argv[1]))
os.close(fd)
os.unlink(lock)  # raises if anyone else removed it
with open("Journal.md", "a") as f:
    f.write("person\\n")
for _ in range(100):  # like Obsidian Git: commit, again if git is busy
    add = subprocess.run(["git", "add", "Journal.md"], capture_output=True)
    done = add.returncode == 0 and subprocess.run(
        ["git", "commit", "-qm", "vault backup", "--", "Journal.md"], capture_output=True
    ).returncode == 0
    if done:
        sys.exit(0)
    time.sleep(0.05)
sys.exit(1)
"""


def test_obsidian_git_holding_the_lock_and_committing_at_the_same_moment(tmp_path: Path) -> None:
    root = with_note(tmp_path)
    (root / "Tasks/T.md").write_text(NOTE + "DRAFT\n")
    edit = block("run 1")
    land(root, edit)
    person = subprocess.Popen(
        [sys.executable, "-c", OBSIDIAN_GIT, "1.0"], cwd=root, stdout=subprocess.PIPE, text=True
    )
    assert person.stdout is not None and person.stdout.readline() == "held\n"

    started = time.monotonic()
    assert Git(root, HOST).commit([edit], "vaultsched: success T")
    assert time.monotonic() - started >= 0.5, "committed while index.lock was held"
    assert person.wait(timeout=60) == 0, "the person's lock was removed, or their commit failed"
    person.stdout.close()

    assert not (root / ".git/index.lock").exists()
    mine = git(root, "log", "--format=%H", "--author=vaultsched").split()
    assert len(mine) == 1
    # Whichever landed first, ours holds only the block, and theirs whatever they had.
    assert edit.apply is not None
    assert show(root, f"{mine[0]}:Tasks/T.md") == edit.apply(show(root, f"{mine[0]}^:Tasks/T.md"))
    assert "DRAFT" not in git(root, "show", mine[0])
    assert show(root, "HEAD:Journal.md") == "person\n"
    assert _changed_lines(git(root, "diff", "HEAD", "-U0")) == ["+DRAFT"]


# A vaultsched process killed (SIGKILL) while it holds the index lock it took itself.
KILLED_HOLDING = r"""
import os, signal, sys
from vaultsched.adapters.git import Git
git = Git(__import__("pathlib").Path(sys.argv[1]), "testhost")
with git._index_lock().held():
    print("held", flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_lock_vaultsched_was_killed_holding_is_cleared_no_other(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only a lock provably left by a killed vaultsched (inode, boot, a process that is gone)
    is removed; a lock anyone else holds is waited for and never touched."""
    root = with_note(tmp_path)
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_HOLDING, str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert killed.stdout == "held\n" and killed.returncode == -9
    assert (root / ".git/index.lock").exists()
    assert Git(root, HOST).commit([block("run 1")], "vaultsched: success T")
    assert not (root / ".git/index.lock").exists()

    (root / ".git/index.lock").write_text("")  # someone else's
    monkeypatch.setattr("vaultsched.adapters.git.plumbing.LOCK_WAIT", 0.3)
    with pytest.raises(GitError, match="not removing it"):
        Git(root, HOST).commit([block("run 2")], "vaultsched: success T")
    assert (root / ".git/index.lock").exists()


def test_no_module_outside_adapters_git_builds_a_git_command_line() -> None:
    # The flags that keep a git call safe are reviewed in adapters/git/ only: a list starting
    # with "git", or a raw call through its private runners elsewhere, would bypass that review.
    package = Path(vaultsched.__file__).parent
    door = package / "adapters" / "git"
    raw = {"_run", "_read", "_raw", "_exec"}
    found = []
    for module in sorted(package.rglob("*.py")):
        if module.parent == door:
            continue
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            on_self = isinstance(node, ast.Attribute) and ast.unparse(node.value) == "self"
            if isinstance(node, ast.Attribute) and node.attr in raw and not on_self:
                found.append(f"{module.name}:{node.lineno} .{node.attr}")
            if isinstance(node, ast.List) and node.elts:
                first = node.elts[0]
                if isinstance(first, ast.Constant) and first.value == "git":
                    found.append(f"{module.name}:{node.lineno} ['git', ...]")
    assert found == []


def test_blobs_stored_together_are_the_bytes_given_whatever_the_attributes(
    tmp_path: Path,
) -> None:
    root = make_vault(tmp_path / "v")
    (root / ".gitattributes").write_text("* text=auto eol=lf\n")  # would turn CRLF into LF
    repo = Git(root, HOST)
    blobs = [b"one\r\ntwo\r\n", b"plain\n", b"", b"one\r\ntwo\r\n"]

    shas = repo.store_all(blobs)

    assert shas == [repo.store(data) for data in blobs]
    for sha, data in zip(shas, blobs, strict=True):
        assert (
            subprocess.run(
                ["git", "cat-file", "blob", sha], cwd=root, capture_output=True, check=True
            ).stdout
            == data
        )


def test_many_files_make_one_commit_and_the_same_again_makes_none(tmp_path: Path) -> None:
    root = make_vault(tmp_path / "v")
    edits = [Edit(f"Ledger{n}.jsonl") for n in range(3)] + [
        block_edit(f"Digests/{n}.md", blocks.DIGEST, f"{n} runs", create=True) for n in range(3)
    ]
    for n in range(3):
        write_note(root, f"Ledger{n}.jsonl", f"{{}}\n{n}\n")
        write_note(root, f"Digests/{n}.md", "")
        land(root, edits[3 + n])
    repo = Git(root, HOST)

    assert repo.commit(edits, "vaultsched: burst")
    assert repo.commit(edits, "vaultsched: burst") is False  # nothing changed: no empty commit

    assert git(root, "status", "--porcelain") == ""
    assert git(root, "log", "--author=vaultsched", "--format=%s").splitlines() == [
        "vaultsched: burst"
    ]


def test_a_view_edit_applied_again_to_the_same_text_is_not_worked_out_again(
    spliced: list[str],
) -> None:
    """The commit applies a run block again to the committed note: most often the text it was
    applied to on disk. Any other text (a person's edit not committed) is spliced afresh."""
    drafted = blocks.splice_block(NOTE + "DRAFT\n", blocks.RUNS, "run 1")
    spliced.clear()
    edit = block("run 1")
    assert edit.apply is not None

    on_disk = edit.apply(NOTE)
    assert edit.apply(NOTE) == on_disk and spliced == [NOTE]
    assert edit.apply(NOTE + "DRAFT\n") == drafted
    assert len(spliced) == 2
