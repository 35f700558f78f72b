"""`Git`: the vault's repository as the rest of vaultsched knows it. The commit that holds only
vaultsched's bytes (`commit`), a few named operations, and what a sync needs (`sync`)."""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from vaultsched.adapters.git.commit import Choose, SafeCommit
from vaultsched.adapters.git.plan import Edit
from vaultsched.adapters.git.plumbing import GitError, Plumbing
from vaultsched.adapters.git.sync import GitSync
from vaultsched.core import layout

_excluded: set[Path] = set()  # repositories whose info/exclude this process has seen to
_excluded_lock = threading.Lock()


@dataclass
class Git(Plumbing):
    @functools.cached_property
    def commits(self) -> SafeCommit:
        return SafeCommit(self)

    @functools.cached_property
    def sync(self) -> GitSync:
        """Fetch, push, rebase in a scratch worktree, and the conflicts a rebase stops at."""
        return GitSync(self)

    def commit(self, edits: Sequence[Edit], message: str, current: Choose | None = None) -> bool:
        """One commit of vaultsched's edits to these files on top of HEAD, and nothing else
        (see SafeCommit.commit): True if a commit was made, False if there was nothing to."""
        return self.commits.commit(edits, message, current)

    def exclude_state(self) -> None:
        """Append the missing lines of layout.EXCLUDE_RULES to `info/exclude`, once per process.

        A pull can drop the `logs/` rule from `.vaultsched/.gitignore`, and Obsidian Git's
        `git add -A` would then commit unredacted logs; `info/exclude` is never pulled."""
        with _excluded_lock:
            if not self.usable or self.root in _excluded:
                return
            _excluded.add(self.root)
        target = self.root / self._read(["rev-parse", "--git-path", "info/exclude"]).strip()
        common = (self.root / self._read(["rev-parse", "--git-common-dir"]).strip()).resolve()
        target.parent.mkdir(exist_ok=True)
        if not target.parent.resolve().is_relative_to(common):  # `info` linked elsewhere
            raise GitError(f"{target.parent} leads out of the repository: not written")
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC
        with os.fdopen(os.open(target, flags, 0o644), "r+", encoding="utf-8") as handle:
            text = handle.read()
            missing = [line for line in layout.EXCLUDE_RULES if line not in text.splitlines()]
            if missing:
                lead = "" if not text or text.endswith("\n") else "\n"
                handle.write(lead + "".join(f"{line}\n" for line in missing))

    def not_ignored(self, paths: Sequence[str]) -> list[str]:
        """Those of `paths` (untracked) that git would add with `git add -A`."""
        ignored = set(self._ignored(paths))
        return [path for path in paths if path not in ignored]

    def hooks_dir(self) -> Path:
        """Where git looks for this repository's hooks by default (our calls never run them)."""
        common = self._read(["rev-parse", "--git-common-dir"]).strip()
        return (self.root / common / "hooks").resolve()

    def branch(self) -> str:
        """The checked-out branch's short name; GitError when HEAD is detached."""
        return self._read(["symbolic-ref", "-q", "--short", "HEAD"]).strip()

    def head_commit(self) -> str:
        """The commit HEAD is at; GitError while there is none."""
        return self._read(["rev-parse", "HEAD"]).strip()

    def has_commit(self, commit: str) -> bool:
        try:
            self._exec(["cat-file", "-e", f"{commit}^{{commit}}"])
        except GitError:
            return False
        return True

    def fast_forward(self) -> None:
        """Catch up with the branch's upstream: for a clone that never commits (a worker's),
        a fast-forward always is one. GitError if it cannot."""
        self._run(["pull", "--ff-only", "--quiet"])

    # Both run inside a pre-commit hook while `git commit` holds index.lock: waiting for the
    # lock (or for our own git lock, which a daemon may hold while it waits) would deadlock.
    def init(self) -> None:
        self._raw(["init", "-q"])
        self._usable = None

    def commit_all(self, message: str) -> None:
        """Commit the whole work tree: only for a copy we just made (the demo vault)."""
        self._run(["add", "-A"])
        self._run(["-c", "commit.gpgsign=false", "commit", "--no-verify", "-q", "-m", message])
