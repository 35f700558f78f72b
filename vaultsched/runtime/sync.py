"""Git sync between machines: pull with rebase, rebuild the views, push.

Runs on its own thread beside the scheduler, so a slow or absent remote never delays a fire.
Nothing is lost in a conflict because nothing vaultsched writes needs merging: the ledger is one
file per host (and a set of lines besides), and run blocks and digests are views, rebuilt from
the merged ledger after every pull. So when the rebase stops, a conflicted note is merged with
its blocks set aside (vaultsched/core/merging.py) and the views are rebuilt once it is done.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

from vaultsched.adapters.git import Git, GitError
from vaultsched.adapters.git.batch import Changed, read_blobs, tree_changes
from vaultsched.adapters.held import HeldNotes, LateSave
from vaultsched.adapters.notefile import link_on_path
from vaultsched.adapters.notes import NotesBusy, NoteWriter, Outcome, recover
from vaultsched.adapters.vault import build_index
from vaultsched.core import blocks
from vaultsched.core.merging import drop_merged_copies, merge_back, merge_note, union_lines
from vaultsched.core.model import Run
from vaultsched.runtime.land import Lander
from vaultsched.runtime.workspace import Workspace

log = logging.getLogger("vaultsched.runtime.sync")

MAX_BACKOFF = timedelta(minutes=30)
PUSH_ATTEMPTS = 3  # another machine pushed in between: pull again, then push
MAX_REBASE_STOPS = 100


class SyncError(Exception):
    pass


@dataclass
class SyncResult:
    pulled: int = 0  # runs that arrived from other hosts


@dataclass
class Syncer:
    workspace: Workspace
    lander: Lander
    interval: timedelta
    _wake: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    failures: int = 0

    @property
    def git(self) -> Git:
        return self.workspace.git

    @property
    def remote(self) -> str:
        return self.workspace.vault.config.git.remote

    # -- the thread ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="vaultsched-sync", daemon=True)
        self._thread.start()

    def nudge(self) -> None:
        """Sync soon: vaultsched just committed."""
        self._wake.set()

    def stop_soon(self) -> None:
        """Start no new sync, nor a new attempt of the one under way (see `sync_once`)."""
        self._stop.set()
        self._wake.set()

    def stop(self) -> None:
        self.stop_soon()
        if self._thread is not None:
            self._thread.join(timeout=180)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self._delay().total_seconds())
            self._wake.clear()
            if self._stop.is_set():
                return
            self.sync_logged()

    def _delay(self) -> timedelta:
        if not self.failures:
            return self.interval
        return min(self.interval * (2**self.failures), MAX_BACKOFF)

    def sync_logged(self) -> SyncResult | None:
        try:
            result = self.sync_once()
        except (SyncError, GitError, OSError) as exc:
            self.failures += 1
            log.warning("git sync failed (retry in %s): %s", self._delay(), exc)
            return None
        if self.failures:
            log.info("git sync works again")
        self.failures = 0
        if result.pulled:
            log.info("synced: %d run(s) from other hosts", result.pulled)
        return result

    # -- one sync -----------------------------------------------------------------------------

    def sync_once(self) -> SyncResult:
        """Pull, rebase, push; again while another machine pushed in between, a few times,
        but once only when the syncer is stopping (the daemon's last sync too): a daemon asked
        to stop went on racing a busy remote for minutes. What it did not push goes next time."""
        problem = self.git.sync.remote_problem(self.remote)
        if problem:
            raise SyncError(f"not syncing: {problem}")
        result = SyncResult()
        branch = self._branch()
        for attempt in range(PUSH_ATTEMPTS):
            if attempt and self._stop.is_set():
                break
            self.git.sync.fetch(self.remote)
            upstream = f"{self.remote}/{branch}"
            if self.git.sync.ref_exists(upstream):
                result.pulled += self._integrate(upstream)
            if self._push(branch):
                return result
        raise SyncError(f"{self.remote} kept moving; will push next time")

    def _branch(self) -> str:
        try:
            return self.git.branch()
        except GitError as exc:
            raise SyncError("HEAD is detached: not syncing until a branch is checked out") from exc

    def _integrate(self, upstream: str) -> int:
        """Rebase our commits onto the other machines', then rebuild views from the ledger.

        The rebase happens in a worktree of its own, so the person's git (Obsidian Git
        committing on a timer) never meets a half-done rebase, and a failed one leaves the
        vault untouched; the vault then moves to the result as `git reset --keep` would, and
        only if its branch is still where the rebase began (a commit of the person's made
        meanwhile is rebased next time, never dropped). Holds the landing lock throughout (no
        note written meanwhile), after committing our own pending writes.
        """
        with self.lander.paused():
            self.lander.commit()
            if self.lander.has_pending:
                raise SyncError("vaultsched's own changes are not committed yet")
            busy = self.git.operation_in_progress()
            if busy:
                raise SyncError(f"{busy} is in progress in the vault: syncing once it is done")
            before = {r.run_id for r in self.workspace.ledger.runs()}
            if self.git.sync.commits_behind(upstream) == 0:
                return 0
            base = self.git.head_commit()
            rebased, merged = self._rebase_elsewhere(base, upstream)
            self._move(base, rebased)
            arrived = [r for r in self.workspace.ledger.runs() if r.run_id not in before]
            self._rebuild(arrived, merged)
            self.lander.commit()
            return len(arrived)

    def _move(self, base: str, rebased: str) -> None:
        """The vault to the rebased commit, with every save an editor made into a note just
        as git replaced it merged into the note as the move left it (adapters/held.py), and
        no vaultsched write renaming over a note meanwhile."""
        notes = [c.path for c in tree_changes(self.git, base, rebased) if c.path.endswith(".md")]
        try:
            with self.workspace.writer.held_off(notes), HeldNotes(self.git.root, notes) as held:
                with self.workspace.ledger.appends_held(self.workspace.clock()):
                    if not self.git.sync.move_branch(base, rebased):
                        raise SyncError("the branch moved during the sync; next time")
                late = held.late_saves()
        except NotesBusy as exc:
            raise SyncError(f"{exc}; next time") from exc
        put_back(self.workspace.writer, late)

    def _rebase_elsewhere(self, base: str, upstream: str) -> tuple[str, set[str]]:
        """`base` rebased onto `upstream` in a scratch worktree: the resulting commit, and the
        notes vaultsched merged on the way (see `rebase_resolving`).

        The worktree lives in a private temporary folder outside the vault: under
        `.vaultsched/` a synced symlink could send the checkout, and its removal, anywhere.
        """
        scratch_dir = Path(tempfile.mkdtemp(prefix="vaultsched-sync-"))
        path = scratch_dir / "tree"
        try:
            self.git.sync.add_worktree(path, base)
            scratch = Git(path, self.workspace.vault.host, home=self.git.root)
            try:
                merged = rebase_resolving(scratch, upstream)
            except (GitError, SyncError, OSError) as exc:
                raise SyncError(
                    f"rebase onto {upstream} failed; the vault is untouched: {exc}"
                ) from exc
            return scratch.head_commit(), merged
        finally:
            self._drop_worktree(path)
            shutil.rmtree(scratch_dir, ignore_errors=True)

    def _drop_worktree(self, path: Path) -> None:
        with contextlib.suppress(GitError):
            self.git.sync.remove_worktree(path)
        with contextlib.suppress(GitError):
            self.git.sync.prune_worktrees()

    def _rebuild(self, arrived: list[Run], merged: set[str]) -> None:
        """Notes and digests touched by runs from elsewhere, and task notes merged on the way
        (which hold one side's block, without the other's runs), rebuilt from the merged
        ledger."""
        if not arrived and not merged:
            return
        index = build_index(self.workspace.vault)
        tz = self.workspace.vault.config.timezone
        days: set[date] = {r.started_at.astimezone(tz).date() for r in arrived}
        ids = {r.task for r in arrived}
        tasks = [t for t in index.tasks.values() if t.id in ids or t.path in merged]
        self.lander.rebuild_views(tasks, sorted(days))

    def _push(self, branch: str) -> bool:
        try:
            self.git.sync.push(self.remote, f"HEAD:refs/heads/{branch}")
        except GitError as exc:
            rejected = "rejected" in str(exc) or "fetch first" in str(exc)
            if rejected:
                return False
            raise
        return True


def put_back(writer: NoteWriter, saves: list[LateSave]) -> None:
    """Each save git's move would have lost, merged into the note as the move left it, or
    written back whole where the move removed the note. A save that is not whole text (still
    under way, empty, not UTF-8), or that cannot be written now, is kept where a person finds
    it, as the note writer keeps a save it cannot merge: never dropped, never half-merged."""
    for save in saves:
        try:
            if save.whole and _put_back(writer, save) in (Outcome.WRITTEN, Outcome.UNCHANGED):
                log.warning("%s: a save made as the sync replaced the note was put back", save.rel)
                continue
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("%s: a save made as the sync replaced the note: %s", save.rel, exc)
        recover(writer.root, save.rel, save.saved, time.time())


def _put_back(writer: NoteWriter, save: LateSave) -> Outcome:
    before, saved = save.before.decode("utf-8"), save.saved.decode("utf-8")
    if (writer.root / save.rel).exists():
        return writer.update(save.rel, functools.partial(_merged, before=before, saved=saved))
    return writer.update(save.rel, functools.partial(_kept, saved=saved))


def _merged(now: str, *, before: str, saved: str) -> str:
    return merge_back(before, saved, now)


def _kept(_gone: str, *, saved: str) -> str:
    return saved


def make_syncer(workspace: Workspace, lander: Lander) -> Syncer | None:
    """A Syncer if the vault asks for sync and can do it; else None, said once in the log."""
    config, git = workspace.vault.config.git, workspace.git
    if not config.sync:
        return None
    if not git.usable:
        log.warning("[git] sync is on but %s is not a git repository", workspace.vault.root)
        return None
    try:
        problem = git.sync.remote_problem(config.remote)
    except GitError as exc:
        problem = str(exc)
    if problem:
        log.warning("git sync refused: %s", problem)
        return None
    return Syncer(workspace, lander, config.sync_interval)


# -- rebasing with conflicts resolved -------------------------------------------------------------

_LINKS = ("120000", "160000")  # a symlink, a submodule
_REGULAR = ("100644", "100755")


def rebase_resolving(git: Git, upstream: str) -> set[str]:
    """Rebase, resolving each stop: notes merged around their blocks, ledgers by union; then
    a block git's own merge kept twice is repaired. Returns the notes whose run block shows
    one side's runs only, until rebuilt from the merged ledger."""
    before = git.head_commit()
    merged = _rebase(git, upstream)
    return merged | _drop_block_copies(git, upstream, before)


def _rebase(git: Git, upstream: str) -> set[str]:
    try:
        git.sync.rebase_onto(upstream)
        return set()
    except GitError:
        if git.operation_in_progress() is None:
            raise
    resolved: set[str] = set()
    for _ in range(MAX_REBASE_STOPS):
        conflicted = git.sync.conflicted_paths()
        if not conflicted:
            raise SyncError("the rebase stopped without a conflict to resolve")
        resolved.update(rel for rel in conflicted if _resolve(git, rel))
        # Entries set from a blob carry no stat data: refreshed, the files just written are
        # not seen as changed by the next pick.
        git.sync.refresh_index()
        try:
            git.sync.continue_rebase()
            return resolved
        except GitError:
            if git.operation_in_progress() is None:
                raise
    raise SyncError("too many conflicting commits")


def _drop_block_copies(git: Git, upstream: str, before: str) -> set[str]:
    """A note both sides changed that git merged without stopping can hold two blocks (see
    drop_merged_copies): the copy is dropped in a commit of its own on top of the rebase."""
    fork = git.sync.fork_point(upstream, before)
    if fork is None:
        return set()
    theirs, ours = _notes_changed(git, fork, upstream), _notes_changed(git, fork, before)
    now = _notes_changed(git, upstream, "HEAD")
    both = [rel for rel in now if rel in theirs and rel in ours]
    blobs = read_blobs(git, [table[rel].sha for rel in both for table in (theirs, ours, now)])
    repaired = []
    for rel in both:
        try:
            up, mine, merged = (blobs[t[rel].sha].decode("utf-8") for t in (theirs, ours, now))
        except (KeyError, UnicodeDecodeError):
            continue  # not text (nor a note vaultsched writes): git's merge stands
        fixed = drop_merged_copies(merged, (up, mine))
        if fixed != merged:
            data = fixed.encode("utf-8")
            git.sync.stage_blob(now[rel].mode, git.store(data), rel)
            _write_no_follow(git.root, rel, data)
            repaired.append(rel)
    if repaired:
        git.sync.refresh_index()
        git.sync.commit_staged("vaultsched: a block merged in twice kept once")
        log.info(
            "%s: a block both machines added was merged in twice: kept once", ", ".join(repaired)
        )
    return set(repaired)


def _notes_changed(git: Git, old: str, new: str) -> dict[str, Changed]:
    return {c.path: c for c in tree_changes(git, old, new) if c.is_file and c.path.endswith(".md")}


def _resolve(git: Git, rel: str) -> bool:
    """One conflicted path resolved in the index first, then on disk without following links;
    True for a note with a run block, which now shows one side's runs only (see `_rebuild`).

    In a rebase, stage 2 is the upstream (the remote's side), stage 3 our commit replayed.
    """
    stages = git.sync.conflict_stages(rel)
    if any(mode in _LINKS for mode, _ in stages.values()) or link_on_path(git.root, rel):
        _take_remote(git, rel, stages)
        return False
    base, ours, theirs = (_text(git, stages.get(n)) for n in (1, 2, 3))
    if ours is None or theirs is None:
        # Deleted on one side, changed on the other: keep the text, nothing is lost.
        kept = ours if ours is not None else theirs
        if kept is None:
            raise SyncError(f"{rel}: conflicted but neither side has it")
        merged = kept
    elif rel.endswith(".jsonl"):
        merged = union_lines(ours, theirs)
    elif rel.endswith(".md"):
        merged = merge_note(base or "", ours, theirs)
    else:
        raise SyncError(f"{rel}: a conflict vaultsched does not resolve")
    data = merged.encode("utf-8")
    sha = git.store(data)
    mode = next((m for n in (3, 2) if (m := stages.get(n, ("", ""))[0]) in _REGULAR), "100644")
    git.sync.stage_blob(mode, sha, rel)
    _write_no_follow(git.root, rel, data)
    log.info("%s: both sides' changes kept (sync conflict resolved)", rel)
    return blocks.find_block(merged, blocks.RUNS) is not None


def _text(git: Git, entry: tuple[str, str] | None) -> str | None:
    if entry is None:
        return None
    return git.sync.blob_text(entry[1])


def _take_remote(git: Git, rel: str, stages: dict[int, tuple[str, str]]) -> None:
    """A symlink or submodule on one side: never merged through the working tree. The remote's
    side is taken as git has it (git's own checkout never writes through a link)."""
    remote = stages.get(2)
    if remote is None:
        git.sync.remove_from_index(rel)
        (git.root / rel).unlink(missing_ok=True)  # unlink never follows the link it removes
    else:
        git.sync.stage_blob(remote[0], remote[1], rel)
        git.sync.checkout_from_index(rel)
    log.warning(
        "%s: a symlink or submodule on one side of a sync conflict: the remote's version "
        "was kept, not merged; this machine's change to it was dropped (its runs stay in "
        "the ledger)",
        rel,
    )


def _write_no_follow(root: Path, rel: str, data: bytes) -> None:
    """Write the file only if no component of its path is a link: O_NOFOLLOW on the file
    itself, after checking each folder on the way (the scratch tree is private to us)."""
    if link_on_path(root, rel):
        raise SyncError(f"{rel}: a symlink in the way: not written")
    (root / rel).parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open(root / rel, flags, 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
