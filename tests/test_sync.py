"""Two machines, one bare remote, both daemons running, edits on both sides: nothing is lost."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path

import pytest
from conftest import DaemonProcess, git, make_vault, runs, start_daemon, wait_for, write_note

from vaultsched.adapters.config import load_config
from vaultsched.adapters.git import Git, GitError
from vaultsched.adapters.held import HeldNotes
from vaultsched.adapters.notes import NoteWriter
from vaultsched.adapters.vault import Vault
from vaultsched.core import layout
from vaultsched.core.views import digest_path
from vaultsched.runtime.oneshot import one_shot
from vaultsched.runtime.sync import Syncer, SyncError, put_back

pytestmark = pytest.mark.integration

CONFIG = 'timezone = "UTC"\n\n[git]\nsync = true\nsync_interval = "1s"\n'


def vs(root: Path, host: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vaultsched", "--vault", str(root), *args],
        env={**os.environ, "VAULTSCHED_HOST": host},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def task(root: Path, name: str, host: str) -> None:
    path = write_note(
        root,
        f"Tasks/{name}.md",
        f"---\nschedule: every 1s\nhost: {host}\ncommand: echo {host}\n---\nBody.\n",
    )
    os.utime(path, (time.time() - 60, time.time() - 60))


def user_commit(root: Path, rel: str, line: str) -> None:
    """What Obsidian Git does: save the note, commit it (retrying while git is busy)."""
    path = root / rel
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("Body.\n", f"Body.\n{line}\n", 1), encoding="utf-8")
    for _ in range(50):
        # `commit -- rel` commits the file as it is on disk, staged or not (`add` may lose a race
        # for the index and the commit still land: a retry would find nothing left to commit).
        done = subprocess.run(
            ["git", "commit", "-qm", line, "--", rel], cwd=root, capture_output=True, check=False
        )
        if done.returncode == 0:
            return
        time.sleep(0.2)
    raise AssertionError(f"could not commit {rel}: {done.stderr!r}")


def histories(*roots: Path) -> str:
    """Each machine's commits and what they changed: shown when a sync test fails."""
    return "\n".join(
        git(root, "log", "--all", "--graph", "--stat", "--format=%h %an %s") for root in roots
    )


def test_two_machines_sync_through_a_remote(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VAULTSCHED_TRUST")  # each machine trusts the tasks and the config itself
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    laptop, server = tmp_path / "laptop", tmp_path / "server"
    assert vs(laptop, "laptop", "init", str(laptop)).returncode == 0
    (laptop / ".vaultsched/config.toml").write_text(CONFIG)
    task(laptop, "Server job", "server")
    task(laptop, "Laptop job", "laptop")
    git(laptop, "add", "-A")
    git(laptop, "commit", "-qm", "tasks", "--no-verify")
    git(laptop, "remote", "add", "origin", str(remote))
    git(laptop, "push", "-q", "-u", "origin", "main")
    git(tmp_path, "clone", "-q", str(remote), str(server))
    for root, host in ((laptop, "laptop"), (server, "server")):
        assert vs(root, host, "trust", "--all", "--config").returncode == 0

    daemons: list[DaemonProcess] = []
    try:
        for root, host in ((laptop, "laptop"), (server, "server")):
            daemons.append(start_daemon(root, env={"VAULTSCHED_HOST": host}))
        for n in range(3):  # people edit, on each machine, the task note the other one runs
            time.sleep(1.5)
            user_commit(laptop, "Tasks/Server job.md", f"laptop edit {n}")
            user_commit(server, "Tasks/Laptop job.md", f"server edit {n}")
        time.sleep(2.0)
    finally:
        codes = [d.stop() for d in daemons]
    assert codes == [0, 0], [d.output() for d in daemons]
    for root, host in ((laptop, "laptop"), (server, "server"), (laptop, "laptop")):
        result = vs(root, host, "sync")
        assert result.returncode == 0, result.stderr

    assert git(laptop, "rev-parse", "HEAD") == git(server, "rev-parse", "HEAD")
    ledgers = {
        name: {r.run_id for r in runs(root)} for name, root in (("l", laptop), ("s", server))
    }
    assert ledgers["l"] == ledgers["s"]
    done = runs(laptop)
    assert {r.host for r in done} == {"laptop", "server"}
    # `host:` pinning: each job fired only on its own machine.
    assert {r.host for r in done if r.task == "Tasks/Server job"} == {"server"}
    assert {r.host for r in done if r.task == "Tasks/Laptop job"} == {"laptop"}
    for root in (laptop, server):
        for rel, edit in (
            ("Tasks/Server job.md", "laptop edit"),
            ("Tasks/Laptop job.md", "server edit"),
        ):
            note = (root / rel).read_text(encoding="utf-8")
            shown = f"{rel} on {root.name}:\n{note}\n{histories(laptop, server)}"
            assert all(f"{edit} {n}" in note for n in range(3)), shown
            assert note.count("vaultsched:runs:begin") == 1, shown
            assert note.count("vaultsched:runs:end") == 1, shown
            # The block is a view of the merged ledger: its newest run is there, whichever
            # side's block a merge kept.
            newest = max(r.started_at for r in done if f"{r.task}.md" == rel)
            assert newest.strftime("%Y-%m-%d %H:%M:%S") in note, shown
        for md in root.rglob("*.md"):
            assert "<<<<<<<" not in md.read_text(encoding="utf-8"), md
        vault = Vault(root, load_config(root), "laptop")
        for day in {r.started_at.date() for r in done}:
            digest = (root / digest_path(vault, day)).read_text(encoding="utf-8")
            count = sum(1 for r in done if r.started_at.date() == day)
            assert f"{count} runs" in digest, (root, digest[:300])
        fsck = subprocess.run(
            ["git", "fsck", "--no-progress"], cwd=root, capture_output=True, check=False
        )
        assert fsck.returncode == 0
        assert not (root / ".git/rebase-merge").exists()


def test_the_vault_moves_to_the_rebase_only_from_where_the_rebase_began(tmp_path: Path) -> None:
    """A commit of the person's landing while the rebase ran elsewhere is never dropped by the
    move (it was, when HEAD was checked and then `reset --keep` run: their line left the note)."""
    root = make_vault(tmp_path / "vault")
    job, other = root / "Tasks/Job.md", root / "Other.md"

    def commit(text: str, message: str) -> str:
        write_note(root, "Tasks/Job.md", text)
        git(root, "add", "-A")
        git(root, "commit", "-qm", message, "--no-verify")
        return git(root, "rev-parse", "HEAD").strip()

    write_note(root, "Other.md", "other\n")
    began = commit("Body.\n", "base")
    git(root, "checkout", "-qb", "rebased")
    rebased = commit("Body.\nfrom the other machine\n", "rebased")
    git(root, "checkout", "-q", "-")
    person = commit("Body.\nthe person's line\n", "the person's commit, mid-sync")
    repo = Git(root, "laptop")

    assert repo.sync.move_branch(began, rebased) is False
    assert git(root, "rev-parse", "HEAD").strip() == person
    assert job.read_text() == "Body.\nthe person's line\n"

    git(root, "reset", "-q", "--hard", began)
    write_note(root, "Tasks/Job.md", "Body.\nnot committed\n")  # would be overwritten: refused
    with pytest.raises(GitError):
        repo.sync.move_branch(began, rebased)
    assert git(root, "rev-parse", "HEAD").strip() == began
    assert job.read_text() == "Body.\nnot committed\n"

    git(root, "checkout", "-q", "--", "Tasks/Job.md")
    other.write_text("other, not committed\n")  # a file the move does not change: kept
    assert repo.sync.move_branch(began, rebased) is True
    assert git(root, "rev-parse", "HEAD").strip() == rebased
    assert job.read_text() == "Body.\nfrom the other machine\n"
    assert git(root, "status", "--porcelain") == " M Other.md\n"
    assert not (root / ".git/index.lock").exists()


def test_a_dead_remote_never_delays_firing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAULTSCHED_TRUST")
    root = tmp_path / "vault"
    assert vs(root, "server", "init", str(root)).returncode == 0
    (root / ".vaultsched/config.toml").write_text(CONFIG)
    task(root, "Tick", "server")
    git(root, "remote", "add", "origin", str(tmp_path / "no-such-remote.git"))
    assert vs(root, "server", "trust", "--all", "--config").returncode == 0
    daemon = start_daemon(root, env={"VAULTSCHED_HOST": "server"})
    try:
        wait_for(lambda: len(runs(root)) >= 4, what="runs while the remote is down")
        assert "git sync failed (retry in" in daemon.output()
    finally:
        assert daemon.stop() == 0
    slots = sorted(r.scheduled_for for r in runs(root) if r.scheduled_for)
    assert all((b - a).total_seconds() == 1 for a, b in pairwise(slots))


def test_a_merge_in_progress_is_left_alone_until_finished(tmp_path: Path) -> None:
    """Obsidian Git's pull stopped on a conflict: runs keep landing in the ledger, the
    conflicted note is not written, nothing is committed into the merge, and commits resume
    once the person aborts or finishes it."""
    root = tmp_path / "vault"
    assert vs(root, "server", "init", str(root)).returncode == 0
    (root / ".vaultsched/config.toml").write_text('timezone = "UTC"\n')
    task(root, "Tick", "server")
    write_note(root, "Shared.md", "line\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "base", "--no-verify")
    git(root, "checkout", "-qb", "other")
    write_note(root, "Shared.md", "theirs\n")
    git(root, "commit", "-qam", "theirs", "--no-verify")
    git(root, "checkout", "-q", "main")
    write_note(root, "Shared.md", "mine\n")
    git(root, "commit", "-qam", "mine", "--no-verify")
    merge = subprocess.run(["git", "merge", "other"], cwd=root, capture_output=True, check=False)
    assert merge.returncode == 1 and (root / ".git/MERGE_HEAD").exists()
    head = git(root, "rev-parse", "HEAD")
    daemon = start_daemon(root, env={"VAULTSCHED_HOST": "server"})
    try:
        wait_for(lambda: len(runs(root)) >= 3, what="runs during the merge")
        # Until a commit is tried (not a fixed wait, which a loaded machine may not reach).
        wait_for(
            lambda: (
                "a merge is in progress in the vault" in daemon.output()
                or git(root, "rev-parse", "HEAD") != head
            ),
            timeout=60,
            what="a commit refused during the merge",
        )
        assert git(root, "rev-parse", "HEAD") == head  # nothing committed into the merge
        assert "<<<<<<<" in (root / "Shared.md").read_text()
        git(root, "merge", "--abort")
        wait_for(lambda: git(root, "rev-parse", "HEAD") != head, timeout=30, what="a commit")
    finally:
        assert daemon.stop() == 0
    assert git(root, "log", "-1", "--format=%an") == "vaultsched\n"


@pytest.mark.parametrize("kind", ["option", "path"])
def test_a_remote_the_repository_does_not_have_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    """`[git] remote = "--upload-pack=CMD"` would run CMD on fetch; a path or URL would push the
    whole vault elsewhere. Even trusted, either is refused: sync, the daemon and doctor say so."""
    monkeypatch.delenv("VAULTSCHED_TRUST")
    root = tmp_path / "vault"
    elsewhere, origin = tmp_path / "elsewhere.git", tmp_path / "origin.git"
    marker = tmp_path / "MARKER"
    for bare in (elsewhere, origin):
        git(tmp_path, "init", "-q", "--bare", str(bare))
    remote = f"--upload-pack=touch {marker}" if kind == "option" else str(elsewhere)
    assert vs(root, "server", "init", str(root)).returncode == 0
    git(root, "remote", "add", "origin", str(origin))
    config = f'timezone = "UTC"\n\n[git]\nsync = true\nremote = "{remote}"\n'
    (root / ".vaultsched/config.toml").write_text(config)
    assert f'[git] remote = "{remote}"' in vs(root, "server", "trust", "--config").stdout
    assert vs(root, "server", "trust", "--all").returncode == 0

    synced = vs(root, "server", "sync")
    assert synced.returncode == 1
    assert f"[git] remote '{remote}' is not a remote" in synced.stderr
    once = vs(root, "server", "run", "--once")
    assert once.returncode == 0
    assert once.stderr.count("git sync refused") == 1, once.stderr
    doctor = vs(root, "server", "doctor")
    assert doctor.returncode == 1 and "fail git remote" in doctor.stdout
    assert remote not in doctor.stdout.split("fix:")[-1]  # the fix never echoes the value

    assert not marker.exists()
    for bare in (elsewhere, origin):
        assert git(bare, "for-each-ref") == ""  # nothing pushed anywhere


@pytest.mark.parametrize(("stopping", "pushes"), [(False, 3), (True, 1)])
def test_a_stopping_syncer_gives_up_on_a_remote_that_keeps_moving(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stopping: bool, pushes: int
) -> None:
    """A rejected push is tried again after a new pull, a few times; but a daemon asked to stop
    makes one attempt only: racing a busy remote kept it from stopping for minutes."""
    monkeypatch.delenv("VAULTSCHED_TRUST")
    root, remote = tmp_path / "vault", tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    tried = tmp_path / "tried"
    hook = remote / "hooks/pre-receive"  # refuses every push, counting them
    hook.write_text(f"#!/bin/sh\necho push >> '{tried}'\necho rejected >&2\nexit 1\n")
    hook.chmod(0o755)
    assert vs(root, "server", "init", str(root)).returncode == 0
    (root / ".vaultsched/config.toml").write_text(CONFIG)
    git(root, "remote", "add", "origin", str(remote))
    assert vs(root, "server", "trust", "--config").returncode == 0
    vault = Vault(root, load_config(root), "server")
    shot = one_shot(vault)
    syncer = Syncer(shot.workspace, shot.lander, vault.config.git.sync_interval)
    if stopping:
        syncer.stop_soon()
    with pytest.raises(SyncError, match="kept moving"):
        syncer.sync_once()
    assert tried.read_text().count("push") == pushes


def note_in_two_commits(tmp_path: Path) -> tuple[Path, list[str]]:
    """A vault whose Note.md the second commit changes, checked out at the first."""
    root = make_vault(tmp_path / "vault")
    shas = []
    for text in ("a\nb\n", "a\nb\nupstream\n"):
        write_note(root, "Note.md", text)
        git(root, "add", "Note.md")
        git(root, "commit", "-qm", text.split()[-1], "--no-verify")
        shas.append(git(root, "rev-parse", "HEAD").strip())
    git(root, "reset", "-q", "--hard", shas[0])
    return root, shas


def test_a_save_into_a_note_git_replaces_during_the_move_is_put_back(tmp_path: Path) -> None:
    """git checks a note, then unlinks it and writes the new version: an editor that opened the
    note in between saves into the unlinked file. Held open across the move, that save is found
    and merged into the note as the move left it; a note nobody saved into yields nothing."""
    root, shas = note_in_two_commits(tmp_path)
    repo = Git(root, "laptop")
    with HeldNotes(root, ["Note.md"]) as held:
        assert repo.sync.move_branch(shas[0], shas[1])
        assert held.late_saves() == []  # git replaced it; nobody wrote into the old file

    git(root, "reset", "-q", "--hard", shas[0])
    editor = os.open(root / "Note.md", os.O_WRONLY)  # opened before git replaces the note
    with HeldNotes(root, ["Note.md"]) as held:
        assert repo.sync.move_branch(shas[0], shas[1])
        os.ftruncate(editor, 0)
        os.pwrite(editor, b"a\nmine\nb\n", 0)  # its save lands in the file git unlinked
        os.close(editor)  # and is done
        late = held.late_saves()
    assert [(s.rel, s.saved) for s in late] == [("Note.md", b"a\nmine\nb\n")]
    put_back(NoteWriter(root, quiet=0), late)
    assert (root / "Note.md").read_text() == "a\nmine\nb\nupstream\n"


def test_a_save_still_under_way_in_a_replaced_note_is_kept_aside_not_merged(
    tmp_path: Path,
) -> None:
    """Caught half-way (truncated, part written, its writer still open), a save in the file
    git replaced is not merged (an empty or cut save would read as lines deleted): it is kept
    whole where a person finds it. A file another link still names is no replaced note."""
    root, shas = note_in_two_commits(tmp_path)
    repo = Git(root, "laptop")
    os.link(root / "Note.md", tmp_path / "second name.md")
    with HeldNotes(root, ["Note.md"]) as held:
        assert repo.sync.move_branch(shas[0], shas[1])
        (tmp_path / "second name.md").write_text("edited through its other name\n")
        assert held.late_saves() == []  # still a file of its own elsewhere: not lost

    git(root, "reset", "-q", "--hard", shas[0])
    editor = os.open(root / "Note.md", os.O_WRONLY)
    with HeldNotes(root, ["Note.md"]) as held:
        assert repo.sync.move_branch(shas[0], shas[1])
        os.ftruncate(editor, 0)
        os.pwrite(editor, b"a\n", 0)  # the editor is still writing: it holds the file open
        late = held.late_saves()
    os.close(editor)
    assert [(s.saved, s.whole) for s in late] == [(b"a\n", False)]
    put_back(NoteWriter(root, quiet=0), late)
    assert (root / "Note.md").read_text() == "a\nb\nupstream\n"  # as the move left it
    kept = [p for p in (root / layout.RECOVERED_DIR).rglob("*") if p.is_file()]
    assert [p.read_bytes() for p in kept] == [b"a\n"]
