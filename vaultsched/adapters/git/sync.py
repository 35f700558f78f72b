"""What a sync between machines asks of git (`vaultsched/runtime/sync.py` decides when and
why): the remote, checked before each use; where the branch stands; a scratch worktree to
rebase in and landing its result; the conflicts a rebase stops at."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from vaultsched.adapters.git.plumbing import GitError, Plumbing, plain_value

# Keys of the repository's own config that run a program or send data elsewhere when git
# talks to a remote: while one is set there, sync is refused (the user's global config,
# which the vault cannot write, is the place for them).
_RUNS_ON_NETWORK = re.compile(
    r"^(core\.(sshcommand|gitproxy|askpass)|credential\.(.*\.)?helper"
    r"|remote\..*\.(uploadpack|receivepack|vcs|proxy)|http\.(.*\.)?proxy"
    r"|url\..*\.(pushinsteadof|insteadof))$",
    re.IGNORECASE,
)


@dataclass
class GitSync:
    git: Plumbing

    # -- talking to a remote: the remote's name comes from the vault config -------------------

    def remotes(self) -> list[str]:
        return self.git._read(["remote"]).split()

    def network_problem(self) -> str | None:
        """Why talking to a remote would run something the vault chose, or None."""
        found = self.git.local_config_keys(_RUNS_ON_NETWORK)
        if not found:
            return None
        return (
            f"the repository's own config sets {', '.join(found)} (a sync can write "
            ".git/config): not syncing until it is moved to your global git config"
        )

    def remote_problem(self, name: str) -> str | None:
        """Why `name` must not be used as `[git] remote`, or None. Only a remote this
        repository has configured will do: a path or URL from a synced config would push the
        vault wherever it says, and a leading `-` would be read by git as an option. Nor may
        the repository's own config pick the ssh command, a credential helper or a proxy."""
        if not name or name.startswith("-"):
            return f"[git] remote {name!r} is not a remote name"
        network = self.network_problem()
        if network:
            return network
        known = self.remotes()
        if name not in known:
            listed = ", ".join(known) or "none"
            return f"[git] remote {name!r} is not a remote of this repository (it has: {listed})"
        return None

    def fetch(self, remote: str) -> None:
        self.git._run(["fetch", "--quiet", "--", plain_value(remote)])

    def push(self, remote: str, refspec: str) -> None:
        self.git._run(["push", "--quiet", "--", plain_value(remote), plain_value(refspec)])

    # -- where the branch stands, a scratch worktree to rebase in, landing the result ---------

    def ref_exists(self, ref: str) -> bool:
        """Whether `ref` (a remote-tracking branch) names an object in this repository."""
        # `ref` is built from the vault config's remote name: never to be read as an option.
        try:
            self.git._read(["rev-parse", "--verify", "--quiet", "--end-of-options", ref])
        except GitError:
            return False
        return True

    def commits_behind(self, upstream: str) -> int:
        """How many commits `upstream` has that HEAD does not."""
        return int(self.git._read(["rev-list", "--count", f"HEAD..{upstream}"]).strip())

    def move_branch(self, old: str, new: str) -> bool:
        """Move the branch, index and work tree from commit `old` to `new`, as `git reset
        --keep` does (refused if a change not committed would be lost), only if HEAD is still
        at `old`: False, and nothing changed, if another git moved it.

        A check of HEAD followed by `reset --keep` is not enough: a commit of the person's
        landing between the two was dropped by the reset (their text gone from the note). So
        the check and the move happen under the index lock, as git's own commit takes it,
        with the index moved in a copy put in place at the end (as our commits do)."""
        lock = self.git._index_lock()
        with self.git._serialised(), lock.held() as copy:
            if self.git._head() != old:
                return False
            env = {"GIT_INDEX_FILE": str(copy)}
            # HEAD first (compare-and-swap: a git that moves it without the index lock is
            # caught too), then the two-tree move, which checks every path before it writes.
            self.git._exec(["update-ref", "-m", "sync: rebased", "HEAD", new, old])
            try:
                self.git._exec(["read-tree", "-m", "-u", old, new], env=env)
            except GitError:
                self.git._exec(["update-ref", "-m", "sync: undone", "HEAD", old, new])
                raise
            os.replace(copy, lock.index_file)
        return True

    def add_worktree(self, path: Path, base: str) -> None:
        """A detached worktree at `path`, checked out at `base`: work out of the person's way."""
        self.git._run(["worktree", "add", "--quiet", "--detach", str(path), base])

    def remove_worktree(self, path: Path) -> None:
        """Delete the worktree at `path`, whatever changes it holds."""
        self.git._run(["worktree", "remove", "--force", str(path)])

    def prune_worktrees(self) -> None:
        """Forget worktrees whose folder is gone (one that could not be removed cleanly)."""
        self.git._run(["worktree", "prune"])

    # -- a rebase, and the conflicts it stops at ------------------------------------------------

    def rebase_onto(self, upstream: str) -> None:
        """Replay HEAD's own commits on top of `upstream`; GitError when it stops or fails."""
        # `upstream` is built from the vault config's remote name: never to be read as an option.
        self.git._run(["rebase", "--quiet", "--end-of-options", upstream])

    def fork_point(self, upstream: str, commit: str) -> str | None:
        """The newest commit both histories share, or None if they share none."""
        try:
            out = self.git._read(["merge-base", "--end-of-options", upstream, commit])
        except GitError:
            return None  # exit 1: unrelated histories
        return out.strip() or None

    def commit_staged(self, message: str) -> None:
        """Commit what the index holds (in a scratch worktree: nobody else's changes in it)."""
        self.git._run(["-c", "commit.gpgsign=false", "commit", "-q", "--no-verify", "-m", message])

    def continue_rebase(self) -> None:
        """Go on with a stopped rebase once its conflicts are resolved in the index."""
        self.git._run(["rebase", "--continue"])

    def conflicted_paths(self) -> list[str]:
        """The paths the index holds unresolved merge stages for."""
        out = self.git._read(["diff", "--name-only", "--diff-filter=U", "-z"])
        return [rel for rel in out.split("\0") if rel]

    def conflict_stages(self, rel: str) -> dict[int, tuple[str, str]]:
        """Stage number -> (mode, blob) of one conflicted path in the index."""
        out = self.git._read(["ls-files", "-s", "-z", "--", rel])
        stages = {}
        for record in filter(None, out.split("\0")):
            meta, _path = record.split("\t", 1)
            mode, sha, stage = meta.split()
            stages[int(stage)] = (mode, sha)
        return stages

    def blob_text(self, sha: str) -> str:
        """A blob's content as text."""
        return self.git._read(["cat-file", "blob", sha])

    def stage_blob(self, mode: str, sha: str, rel: str) -> None:
        """Set `rel`'s index entry to blob `sha` (resolving its conflict); the disk is untouched."""
        self.git._run(["update-index", "--cacheinfo", f"{mode},{sha},{rel}"])

    def remove_from_index(self, rel: str) -> None:
        """Drop every stage of `rel` from the index; the disk is untouched."""
        self.git._run(["update-index", "--force-remove", "--", rel])

    def checkout_from_index(self, rel: str) -> None:
        """Write `rel` to disk as the index has it (git's checkout never writes through a link)."""
        self.git._run(["checkout-index", "-f", "--", rel])

    def refresh_index(self) -> None:
        """Give index entries set from a blob the stat data of their files on disk."""
        self.git._run(["update-index", "-q", "--refresh"])
