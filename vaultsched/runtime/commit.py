"""Committing what vaultsched wrote: one commit per batch, holding only vaultsched's bytes."""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from vaultsched.adapters.git import Edit, GitError
from vaultsched.core import blocks, layout
from vaultsched.core.model import Run
from vaultsched.core.views import commit_message
from vaultsched.runtime.workspace import Workspace

log = logging.getLogger(__name__)


def _ours_if_absent(text: str) -> str:
    return text or layout.GITIGNORE_TEXT


# Committed with every commit: a vault never `init`ed gets `.vaultsched/.gitignore` from the
# first command that creates `.vaultsched/`, and it must not linger as an untracked file. Once
# git has it, it is the person's to change.
STATE_IGNORE_EDIT = Edit(layout.GITIGNORE, _ours_if_absent, create=True)


def block_edit(rel: str, markers: blocks.Markers, inner: str, *, create: bool) -> Edit:
    """The one transform a view write makes: written to disk, and applied again by git to
    the committed (and staged) version of the note."""
    return Edit(rel, functools.partial(blocks.splice_block, markers=markers, inner=inner), create)


@dataclass
class Committer:
    """Collects the edits made since the last commit (the latest edit of a file stands for it)
    and the runs they show, and commits them as one; thread-safe."""

    workspace: Workspace
    _edits: dict[str, Edit] = field(default_factory=dict)
    _runs: list[Run] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _warned_no_git: bool = False

    def add(self, edits: Iterable[Edit], runs: Iterable[Run] = ()) -> None:
        with self._lock:
            self._edits.update((edit.path, edit) for edit in edits)
            self._runs.extend(runs)

    @property
    def has_pending(self) -> bool:
        return bool(self._edits)

    def creates(self, path: str) -> bool:
        """True if the pending edit of `path` adds it to git (vaultsched made the file since
        the last commit): a later write of it until then is still vaultsched's to add."""
        with self._lock:
            edit = self._edits.get(path)
            return edit is not None and edit.create

    def commit_pending(self) -> None:
        """Commit everything added since the last commit; kept for the next one if git fails."""
        with self._lock:
            edits, runs = list(self._edits.values()), list(self._runs)
            self._edits.clear()
            self._runs.clear()
        if edits and not self.commit(edits, commit_message(runs)):
            with self._lock:
                for edit in edits:  # an edit made since then is newer and stands
                    self._edits.setdefault(edit.path, edit)

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
            git.commit([*edits, STATE_IGNORE_EDIT], message)
        except GitError as exc:
            log.warning("git commit failed; will retry with the next commit: %s", exc)
            return False
        return True
