"""Every git call vaultsched makes, serialised behind one lock and patient with `index.lock`.

Obsidian Git holds `.git/index.lock` often; two git commands milliseconds apart collide. So each
call first waits for the lock to be free, retries when git still reports it held, and never
removes it: a lock left by a crashed git is for a person (or `doctor`) to judge.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vaultsched import statefs

log = logging.getLogger(__name__)

LOCK_WAIT = 60.0
GIT_LOCK = ".vaultsched/state/git.lock"
_OPERATIONS = (
    ("MERGE_HEAD", "a merge"),
    ("rebase-merge", "a rebase"),
    ("rebase-apply", "a rebase"),
    ("CHERRY_PICK_HEAD", "a cherry-pick"),
    ("REVERT_HEAD", "a revert"),
)
_GIT_TIMEOUT = 120.0


class GitError(Exception):
    pass


def _git_env(host: str) -> dict[str, str]:
    env = dict(os.environ)
    # Our commits are vaultsched's, whoever runs it; and never prompt or page.
    env.update(
        GIT_AUTHOR_NAME="vaultsched",
        GIT_AUTHOR_EMAIL=f"vaultsched@{host}",
        GIT_COMMITTER_NAME="vaultsched",
        GIT_COMMITTER_EMAIL=f"vaultsched@{host}",
        GIT_TERMINAL_PROMPT="0",
        GIT_PAGER="cat",
        LC_ALL="C",
    )
    return env


@dataclass
class Git:
    root: Path
    host: str
    _thread_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _usable: bool | None = field(default=None, repr=False)

    @property
    def usable(self) -> bool:
        """True when the vault root is the top of a git work tree and git is installed."""
        if self._usable is None:
            try:
                top = self._raw(["rev-parse", "--show-toplevel"]).stdout.strip()
                self._usable = Path(top).resolve() == self.root.resolve()
            except (GitError, OSError):
                self._usable = False
        return self._usable

    def _raw(self, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        try:
            proc = subprocess.run(
                ["git", *args],
                cwd=self.root,
                env=_git_env(self.host),
                capture_output=True,
                timeout=_GIT_TIMEOUT,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        except FileNotFoundError as exc:
            raise GitError("git is not installed") from exc
        except subprocess.TimeoutExpired as exc:
            raise GitError(f"git {args[0]} timed out") from exc
        # Decoded by hand: text mode would turn a CRLF note's "\r\n" into "\n" (`git show`).
        out = proc.stdout.decode("utf-8", errors="replace")
        err = proc.stderr.decode("utf-8", errors="replace")
        if proc.returncode != 0:
            raise GitError((err or out).strip() or f"git {args[0]} failed")
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def run(self, args: Sequence[str]) -> str:
        """Run one git command under the vault-wide git lock, waiting out a held index.lock."""
        with self._thread_lock, self._vault_lock():
            deadline = time.monotonic() + LOCK_WAIT
            delay = 0.05
            while True:
                self._wait_index_lock(deadline)
                try:
                    return self._raw(args).stdout
                except GitError as exc:
                    if "index.lock" not in str(exc) or time.monotonic() > deadline:
                        raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    @contextlib.contextmanager
    def _vault_lock(self) -> Iterator[None]:
        """Every vaultsched process's git calls on this vault, one at a time."""
        try:
            with statefs.locked(self.root, GIT_LOCK):
                yield
        except statefs.LinkRefused as exc:
            raise GitError(str(exc)) from None

    def operation_in_progress(self) -> str | None:
        """A merge, rebase, cherry-pick or revert the person has not finished, if any: our
        commit would land in the middle of it."""
        for name, what in _OPERATIONS:
            if (self.root / self.read(["rev-parse", "--git-path", name]).strip()).exists():
                return what
        return None

    def read(self, args: Sequence[str]) -> str:
        """A read-only command: it never takes index.lock, so it need not wait for one."""
        return self._raw(args).stdout

    def _wait_index_lock(self, deadline: float) -> None:
        index_lock = self.root / ".git" / "index.lock"
        while index_lock.exists():
            if time.monotonic() > deadline:
                raise GitError(f"{index_lock} has been held for {LOCK_WAIT:.0f}s; not removing it")
            time.sleep(0.05)

    def commit(self, paths: Sequence[str], message: str) -> bool:
        """Commit exactly `paths` (vault-relative); the user's other changes stay as they are.

        Returns True if a commit was made, False if there was nothing to commit.
        """
        busy = self.operation_in_progress()
        if busy:
            raise GitError(f"{busy} is in progress in the vault: committing once it is done")
        # A note moved or deleted since we wrote it: that change is the user's to commit.
        paths = sorted(p for p in set(paths) if (self.root / p).exists())
        ignored = set(self._ignored(paths))
        paths = [p for p in paths if p not in ignored]
        if not paths or not self.run(["status", "--porcelain", "--", *paths]).strip():
            return False
        self.run(["add", "--", *paths])
        # `commit -- paths` commits only those paths, leaving whatever else the user staged.
        self.run(
            [
                "-c",
                "commit.gpgsign=false",
                "commit",
                "--no-verify",
                "-q",
                "-m",
                message,
                "--",
                *paths,
            ]
        )
        return True

    def _ignored(self, paths: Sequence[str]) -> list[str]:
        try:
            out = self.run(["check-ignore", "--", *paths])
        except GitError:
            return []  # exit 1 means none is ignored
        return out.splitlines()

    # Both run inside a pre-commit hook while `git commit` holds index.lock: waiting for the
    # lock (or for our own git lock, which a daemon may hold while it waits) would deadlock.
    def staged_files(self) -> list[str]:
        out = self.read(["diff", "--cached", "--name-only", "--diff-filter=ACMR", "-z"])
        return [p for p in out.split("\0") if p]

    def show_staged(self, path: str) -> str:
        return self.read(["show", f":{path}"])

    # -- talking to a remote: the remote's name comes from the vault config -------------------

    def remotes(self) -> list[str]:
        return self.read(["remote"]).split()

    def remote_problem(self, name: str) -> str | None:
        """Why `name` must not be used as `[git] remote`, or None. Only a remote this
        repository has configured will do: a path or URL from a synced config would push the
        vault wherever it says, and a leading `-` would be read by git as an option."""
        if not name or name.startswith("-"):
            return f"[git] remote {name!r} is not a remote name"
        known = self.remotes()
        if name not in known:
            listed = ", ".join(known) or "none"
            return f"[git] remote {name!r} is not a remote of this repository (it has: {listed})"
        return None

    def fetch(self, remote: str) -> None:
        self.run(["fetch", "--quiet", "--", _value(remote)])

    def push(self, remote: str, refspec: str) -> None:
        self.run(["push", "--quiet", "--", _value(remote), _value(refspec)])

    def init(self) -> None:
        self._raw(["init", "-q"])
        self._usable = None


def _value(text: str) -> str:
    """A value after `--` still must not look like an option to git (belt and braces)."""
    if text.startswith("-"):
        raise GitError(f"refusing a git argument that starts with '-': {text!r}")
    return text
