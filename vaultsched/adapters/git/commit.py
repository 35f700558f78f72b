"""Landing a plan as a commit: the commit object built from HEAD's tree in a scratch index,
HEAD moved only if no other git moved it meanwhile, and the person's index given the same
edits while vaultsched holds `index.lock` as git does. Their working tree is never touched.
"""

from __future__ import annotations

import os
import random
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from vaultsched.adapters.git.plan import Edit, Entry, Plan, Planner, index_entries
from vaultsched.adapters.git.plumbing import GitError, Plumbing

Choose = Callable[[Sequence[Edit]], Sequence[Edit]]

# Another git (Obsidian Git committing, a second vaultsched) moved HEAD or restaged one of our
# files between our read and our update: start again from what it left, this many times.
COMMIT_ATTEMPTS = 8


@dataclass
class SafeCommit:
    git: Plumbing
    planner: Planner = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.planner = Planner(self.git)

    def commit(self, edits: Sequence[Edit], message: str, current: Choose | None = None) -> bool:
        """One commit of vaultsched's edits to these files on top of HEAD, and nothing else.

        The person's index gets the same edits (so committing what they staged keeps our
        block); their working tree is never touched. Returns True if a commit was made, False
        if there was nothing to commit. `current` chooses, under the vault's git lock, which
        `edits` still stand: a choice made before it could be overtaken by another vaultsched
        process's write and commit while this one waited for the lock.
        """
        with self.git._serialised():
            busy = self.git.operation_in_progress()
            if busy:
                raise GitError(f"{busy} is in progress in the vault: committing once it is done")
            edits = self._committable(edits if current is None else current(edits))
            for attempt in range(COMMIT_ATTEMPTS):
                plan = self.planner.plan(edits)
                if not any(c.commit or c.index for c in plan.changes):
                    return False
                landed = self._land(plan, message)
                if landed is not None:
                    return landed
                # Random, so two vaultscheds racing each other do not meet again in step.
                time.sleep(random.uniform(0.02, 0.1) * (attempt + 1))
        raise GitError("HEAD or the index kept changing under the commit; trying again later")

    def _committable(self, edits: Sequence[Edit]) -> list[Edit]:
        # The latest edit of a file stands for it: views are rebuilt whole each time.
        latest = {edit.path: edit for edit in edits}
        # A note moved or deleted since we wrote it: that change is the person's to commit.
        kept = [e for e in latest.values() if (self.git.root / e.path).is_file()]
        if not kept:
            return []
        ignored = set(self.git._ignored([e.path for e in kept]))
        return sorted((e for e in kept if e.path not in ignored), key=lambda e: e.path)

    def _land(self, plan: Plan, message: str) -> bool | None:
        """Commit the plan and update the person's index; None if git moved meanwhile."""
        commit = self._commit_object(plan, message)
        lock = self.git._index_lock()
        with lock.held() as copy:
            env = {"GIT_INDEX_FILE": str(copy)}
            paths = [c.path for c in plan.changes]
            if index_entries(self.git, paths, env) != {
                c.path: c.read_index for c in plan.changes if c.read_index is not None
            }:
                return None  # the person staged one of these files meanwhile
            staged = [(c.path, c.index) for c in plan.changes if c.index is not None]
            if staged:
                self._update_index(staged, env)
                # Entries set from a blob have no stat data: without it, `git reset --keep`
                # (sync) and `git diff-files` count the file as changed until something
                # refreshes them. Refreshing leaves alone a file that differs (the person's).
                on_disk = [path for path, _ in staged if (self.git.root / path).is_file()]
                if on_disk:
                    self.git._exec(["add", "--refresh", "--", *on_disk], env=env)
            if commit is not None and not self._move_head(plan.head, commit, message):
                return None
            if staged:
                os.replace(copy, lock.index_file)
        return commit is not None

    def _commit_object(self, plan: Plan, message: str) -> str | None:
        """A commit of HEAD's tree with the plan's entries, or None if it changes nothing."""
        entries = [(c.path, c.commit) for c in plan.changes if c.commit is not None]
        if not entries:
            return None
        index_file = self.git._index_file()
        scratch = index_file.with_name(f"vaultsched-{secrets.token_hex(6)}.index")
        env = {"GIT_INDEX_FILE": str(scratch)}
        try:
            read = ["read-tree", plan.head] if plan.head else ["read-tree", "--empty"]
            self.git._exec(read, env=env)
            self._update_index(entries, env)
            tree = self.git._exec(["write-tree"], env=env).decode().strip()
        finally:
            scratch.unlink(missing_ok=True)
        parents = ["-p", plan.head] if plan.head else []
        args = ["commit-tree", "--no-gpg-sign", tree, *parents, "-m", message]
        return self.git._exec(args).decode().strip()

    def _move_head(self, old: str | None, new: str, message: str) -> bool:
        """HEAD (its branch) to `new` only if it is still at `old`: compare-and-swap."""
        try:
            self.git._exec(["update-ref", "-m", f"commit: {message}", "HEAD", new, old or ""])
        except GitError:
            if self.git._head() != old:
                return False  # someone committed meanwhile: plan again on top of theirs
            raise
        return True

    def _update_index(self, entries: Sequence[tuple[str, Entry]], env: Mapping[str, str]) -> None:
        lines = "".join(f"{e.mode} {e.sha}\t{path}\0" for path, e in entries)
        self.git._exec(["update-index", "-z", "--index-info"], input=lines.encode(), env=env)
