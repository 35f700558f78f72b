"""Committing what vaultsched wrote: one commit per batch, holding only vaultsched's bytes."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from vaultsched.adapters.git import Edit, GitError
from vaultsched.adapters.notefile import read_note_bytes
from vaultsched.core import blocks, layout
from vaultsched.core.frontmatter_edit import set_scalar
from vaultsched.core.model import Run
from vaultsched.core.views import commit_message
from vaultsched.runtime.workspace import Workspace

log = logging.getLogger(__name__)

COMMIT_EVERY = timedelta(seconds=5)


def _ours_if_absent(text: str) -> str:
    return text or layout.GITIGNORE_TEXT


# Committed with every commit: a vault never `init`ed gets `.vaultsched/.gitignore` from the
# first command that creates `.vaultsched/`, and it must not linger as an untracked file. Once
# git has it, it is the person's to change.
STATE_IGNORE_EDIT = Edit(layout.GITIGNORE, _ours_if_absent, create=True)


def enabled_edit(rel: str, enabled: bool) -> Edit:
    """The one-line edit of a note's `enabled` (pause, resume, a task done by itself): written
    to disk, and applied again by git to the committed version of the note."""
    value = "true" if enabled else "false"
    return Edit(rel, functools.partial(set_scalar, key="enabled", value=value))


def block_edit(rel: str, markers: blocks.Markers, inner: str, *, create: bool) -> Edit:
    """The one transform a view write makes: written to disk, and applied again by git to
    the committed (and staged) version of the note."""
    return Edit(rel, _Remembering(blocks.splice_block, markers=markers, inner=inner), create)


class _Remembering(functools.partial[str]):
    """A pure edit that remembers its last text and result. The commit applies it again to
    the committed version of the file, which is most often the very text it was applied to on
    disk (nobody edited the note meanwhile): a splice parses the whole note as markdown twice,
    and a burst's commit did that for every note again.

    Its result is remembered as its own result too: the commit first asks whether the note on
    disk still shows the edit (`_shown`, the edit applied to what it wrote), which is the same
    question, and asking it by splicing again left the committed text to be spliced anew (a
    py-spy profile of a 1,000-run burst: 13 % of the daemon's CPU)."""

    def __call__(self, text: str, /) -> str:
        remembered: tuple[tuple[str, str], ...] = self.__dict__.get("last", ())
        for seen, result in remembered:
            if seen == text:
                return result
        result = super().__call__(text)
        # One tuple, replaced whole: note writers and the commit may call it from two threads.
        self.__dict__["last"] = ((text, result), (result, result))
        return result


def _kind(edit: Edit) -> Hashable:
    """Which of a file's edits a newer one replaces: the same block, the same property, the
    whole file. Edits of different kinds all reach the commit (a run block written after a
    task set `enabled: false` must not drop it)."""
    apply = edit.apply
    if apply is None:
        return "whole"
    if isinstance(apply, functools.partial):
        keywords = apply.keywords
        return apply.func, keywords.get("markers") or keywords.get("key")
    return apply


def composed(path: str, kinds: Mapping[Hashable, Edit] | Sequence[Edit]) -> Edit:
    """One edit applying each kind's newest in turn (they touch different parts of the file)."""
    edits = list(kinds.values() if isinstance(kinds, Mapping) else kinds)
    if len(edits) == 1:
        return edits[0]
    steps = [e.apply for e in edits if e.apply is not None]
    return Edit(
        path,
        lambda text: functools.reduce(lambda t, f: f(t), steps, text),
        any(e.create for e in edits),
    )


@dataclass
class Committer:
    """Collects the edits made since the last commit (of each kind of edit of a file, the
    latest stands for it) and the runs they show, and commits them as one; thread-safe."""

    workspace: Workspace
    _edits: dict[str, dict[Hashable, Edit]] = field(default_factory=dict)
    _runs: list[Run] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _warned_no_git: bool = False

    def add(self, edits: Iterable[Edit], runs: Iterable[Run] = ()) -> None:
        with self._lock:
            for edit in edits:
                self._edits.setdefault(edit.path, {})[_kind(edit)] = edit
            self._runs.extend(runs)

    @property
    def has_pending(self) -> bool:
        return bool(self._edits)

    def creates(self, path: str) -> bool:
        """True if the pending edit of `path` adds it to git (vaultsched made the file since
        the last commit): a later write of it until then is still vaultsched's to add."""
        with self._lock:
            return any(edit.create for edit in self._edits.get(path, {}).values())

    def commit_pending(self) -> None:
        """Commit everything added since the last commit; kept for the next one if git fails."""
        with self._lock:
            pending, runs = self._edits, list(self._runs)
            self._edits = {}
            self._runs.clear()
        edits = [edit for kinds in pending.values() for edit in kinds.values()]
        if edits and not self.commit(edits, commit_message(runs)):
            with self._lock:
                for path, kinds in pending.items():  # an edit made since then is newer: it stands
                    current = self._edits.setdefault(path, {})
                    for kind, edit in kinds.items():
                        current.setdefault(kind, edit)

    def commit(self, edits: Sequence[Edit], message: str) -> bool:
        """Commit vaultsched's `edits` (and nothing of the person's) if the vault is a
        repository; False if git failed (retry later)."""
        vault, git = self.workspace.vault, self.workspace.git
        if not edits or not vault.config.git.commit:
            return True
        if not git.usable:
            if not self._warned_no_git:
                log.warning(
                    "%s is not a git repository (or git is missing): nothing is committed",
                    vault.root,
                )
                self._warned_no_git = True
            return True
        try:
            git.commit(edits, message, lambda found: [*self._current(found), STATE_IGNORE_EDIT])
        except GitError as exc:
            log.warning("git commit failed; will retry with the next commit: %s", exc)
            return False
        return True

    def _current(self, edits: Sequence[Edit]) -> list[Edit]:
        """Each file's edits as one, less those another vaultsched process has replaced since.

        Two processes (the daemon and `approve`, `run-now`, `pause`...) may edit one note
        between commits, each building on what the other wrote. When the file on disk is
        exactly what a vaultsched wrote last, an edit of ours it no longer shows was replaced
        by that newer write, which its process commits; ours would put the old version back in
        git, and the file would stay changed for good. A file a person changed since is not
        ours to read: their change stays out of the commit as ever, and all our edits go in."""
        by_path: dict[str, list[Edit]] = {}
        for edit in edits:
            by_path.setdefault(edit.path, []).append(edit)
        current = []
        for path, group in by_path.items():
            text = self._written_by_us(path) if any(e.apply for e in group) else None
            kept = group if text is None else [e for e in group if _shown(e, text)]
            if kept:
                current.append(composed(path, kept))
        return current

    def _written_by_us(self, rel: str) -> str | None:
        """The file's text if it is exactly what a vaultsched process wrote last, else None."""
        try:
            data = read_note_bytes(self.workspace.vault.root / rel)
            return data.decode("utf-8") if self.workspace.writer.is_own(rel, data) else None
        except (OSError, UnicodeDecodeError):
            return None  # gone or not a note: the commit itself decides


def _shown(edit: Edit, text: str) -> bool:
    """True if `text` already holds `edit` (each edit sets a block or a property: applied
    again, it changes nothing)."""
    if edit.apply is None:
        return True
    try:
        return edit.apply(text) == text
    except Exception:  # the commit applies it to git's version, and says why if it fails
        return True


@dataclass
class Cadence:
    """When the daemon commits: once something is owed (a run was recorded, an edit or a view
    is pending), at most every COMMIT_EVERY, so a burst of runs makes one commit. While runs
    are still in flight when one is owed (`busy`), the commit waits for them to end, for at
    most COMMIT_EVERY: the first run of a burst no longer makes a commit of its own, which put
    the burst's last results a whole COMMIT_EVERY later."""

    pending: Callable[[], bool]  # the lander holds something not committed yet
    last: datetime
    busy: Callable[[], bool] = lambda: False  # runs in flight
    owed: bool = False
    _since: datetime | None = None  # when it became owed

    def owe(self, now: datetime) -> None:
        if not self.owed:
            self.owed, self._since = True, now

    def next_at(self) -> datetime | None:
        """When the next commit is due; None while nothing is owed."""
        if not (self.owed or self.pending()):
            return None
        at = self.last + COMMIT_EVERY
        if self.owed and self._since is not None and self.busy():
            at = max(at, self._since + COMMIT_EVERY)
        return at

    def due(self, now: datetime) -> bool:
        """True if a commit is due `now`; the cadence then starts again from `now`."""
        at = self.next_at()
        if at is None or now < at:
            return False
        self.last, self.owed, self._since = now, False, None
        return True
