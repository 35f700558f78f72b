"""The door every git call goes through: `Plumbing` runs each command line vaultsched builds,
serialised behind one lock and patient with `index.lock`.

Obsidian Git holds `.git/index.lock` often; two git commands milliseconds apart collide. So each
call first waits for the lock to be free, retries when git still reports it held, and never
removes it: a lock left by a crashed git is for a person (or `doctor`) to judge (`IndexLock`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vaultsched.adapters import statefs
from vaultsched.core import layout

log = logging.getLogger("vaultsched.adapters.git")

LOCK_WAIT = 60.0
# Beside the index: who holds `index.lock` when vaultsched itself took it (see _LockOwner).
OWNER_FILE = "vaultsched-index-lock-owner"
_OPERATIONS = (
    ("MERGE_HEAD", "a merge"),
    ("rebase-merge", "a rebase"),
    ("rebase-apply", "a rebase"),
    ("CHERRY_PICK_HEAD", "a cherry-pick"),
    ("REVERT_HEAD", "a revert"),
)
_GIT_TIMEOUT = 120.0

# On every git call. `.git/` is as writable as the rest of the vault (a sync tool carries it,
# or plants one), so its config and hooks must not get code to run through vaultsched:
# `core.fsmonitor` would run on a refresh, hooks on update-ref and worktree add, an `ext::`
# URL on fetch. Only these keys are overridden: the user's global and system config (ssh
# keys, credential helpers) stay in force.
_SAFE = (
    *("-c", "core.fsmonitor=false"),
    *("-c", "core.hooksPath=/dev/null"),
    *("-c", "protocol.ext.allow=never"),
    *("-c", "core.editor=true"),
    *("-c", "sequence.editor=true"),
)
# Keys of the repository's own config that run a program during the commands vaultsched runs
# (checkout, refresh, rebase) and that a `-c` cannot neutralise by name: while one is set
# there, vaultsched treats the vault as having no repository.
_RUNS_LOCALLY = re.compile(
    r"^(filter\..*\.(clean|smudge|process)|merge\..*\.driver|core\.alternaterefscommand"
    r"|gpg\..*(program|command))$",
    re.IGNORECASE,
)


class GitError(Exception):
    pass


def _git_env(host: str) -> dict[str, str]:
    env = dict(os.environ)
    # Our commits are vaultsched's, whoever runs it; and never prompt or page. Paths are
    # passed as they are: a note called "Ideas [draft].md" is not a glob.
    env.update(
        GIT_AUTHOR_NAME="vaultsched",
        GIT_AUTHOR_EMAIL=f"vaultsched@{host}",
        GIT_COMMITTER_NAME="vaultsched",
        GIT_COMMITTER_EMAIL=f"vaultsched@{host}",
        GIT_TERMINAL_PROMPT="0",
        GIT_PAGER="cat",
        GIT_LITERAL_PATHSPECS="1",
        LC_ALL="C",
    )
    return env


def plain_value(text: str) -> str:
    """A value after `--` still must not look like an option to git (belt and braces)."""
    if text.startswith("-"):
        raise GitError(f"refusing a git argument that starts with '-': {text!r}")
    return text


@dataclass
class Plumbing:
    root: Path
    host: str
    _thread_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _usable: bool | None = field(default=None, repr=False)
    _index_path: Path | None = field(default=None, repr=False)
    # The folder the git dir must lie in: the vault (a scratch worktree's root is elsewhere).
    home: Path | None = None
    refusal: str | None = field(default=None, repr=False)

    @property
    def usable(self) -> bool:
        """True when the vault root is the top of a git work tree whose git dir lies inside
        the vault, git is installed and the repository's own config runs nothing."""
        if self._usable is None:
            try:
                self.refusal = self._refusal()
                self._usable = self.refusal is None
            except (GitError, OSError):
                self._usable = False
            if self.refusal:
                log.warning("%s: not used as the vault's repository: %s", self.root, self.refusal)
        return self._usable

    def _refusal(self) -> str | None:
        """Why this repository must not be used, or None. Raises GitError if there is none."""
        top, git_dir, common = self._raw(
            ["rev-parse", "--show-toplevel", "--absolute-git-dir", "--git-common-dir"]
        ).stdout.splitlines()
        if Path(top).resolve() != self.root.resolve():
            raise GitError("not the top of a work tree")
        # A one-line `.git` file (or a `.git` symlink) a sync brought would make every
        # commit land in a repository elsewhere on the machine.
        home = (self.home or self.root).resolve()
        for where in (Path(git_dir), self.root / common):
            if not where.resolve().is_relative_to(home):
                return f"its git dir {where.resolve()} is outside the vault: nothing is committed"
        found = self.local_config_keys(_RUNS_LOCALLY)
        if found:
            return (
                f"the repository's own config sets {', '.join(found)}, which would run a "
                "program (a sync can write .git/config): nothing is committed until it is "
                "removed or moved to your global git config"
            )
        return None

    def local_config_keys(self, pattern: re.Pattern[str]) -> list[str]:
        """The keys matching `pattern` that the repository's own config (and what it
        includes) sets."""
        out = self._exec(
            ["config", "--local", "--includes", "--name-only", "--list"], allowed=(0, 1)
        )
        keys = out.decode("utf-8", errors="replace").splitlines()
        return sorted({key for key in keys if pattern.match(key)})

    def operation_in_progress(self) -> str | None:
        """A merge, rebase, cherry-pick or revert the person has not finished, if any: our
        commit would land in the middle of it."""
        args = [arg for name, _ in _OPERATIONS for arg in ("--git-path", name)]
        found = self._read(["rev-parse", *args]).splitlines()
        for (_, what), path in zip(_OPERATIONS, found, strict=True):
            if (self.root / path).exists():
                return what
        return None

    def store(self, data: bytes) -> str:
        """A blob of `data` in the object store (no lock: objects are written atomically)."""
        return self._exec(["hash-object", "-w", "--stdin"], input=data).decode().strip()

    def store_all(self, blobs: Sequence[bytes]) -> list[str]:
        """A blob of each of `blobs`, with one git call for them all: a commit of a burst's
        thousand notes once spawned a thousand gits. fast-import takes the bytes as they are
        (no attribute of the vault's filters them) and prints each blob's sha (`get-mark`);
        it keeps a large batch as one pack, a small one as loose objects."""
        if len(blobs) < 2:
            return [self.store(data) for data in blobs]
        stream = [b"blob\nmark :%d\ndata %d\n%s\n" % (n, len(d), d) for n, d in enumerate(blobs, 1)]
        stream += [b"get-mark :%d\n" % n for n in range(1, len(blobs) + 1)]
        out = self._exec(["fast-import", "--quiet"], input=b"".join(stream))
        shas = out.decode().split()
        if len(shas) != len(blobs):
            raise GitError(f"git fast-import gave {len(shas)} blobs for {len(blobs)}")
        return shas

    def _head(self) -> str | None:
        try:
            return self._read(["rev-parse", "--verify", "-q", "HEAD^{commit}"]).strip()
        except GitError:
            return None  # no commit yet

    def _ignored(self, paths: Sequence[str]) -> list[str]:
        """The untracked ones among `paths` that .gitignore excludes."""
        # Exit 1: none is. check-ignore takes plain paths and refuses the literal-pathspec flag.
        out = self._exec(
            ["check-ignore", "-z", "--stdin"],
            input="".join(f"{path}\0" for path in paths).encode(),
            env={"GIT_LITERAL_PATHSPECS": "0"},
            allowed=(0, 1),
        )
        return [path for path in out.decode().split("\0") if path]

    # -- running git ------------------------------------------------------------------------------

    def _exec(
        self,
        args: Sequence[str],
        *,
        input: bytes | None = None,
        env: Mapping[str, str] | None = None,
        allowed: tuple[int, ...] = (0,),
    ) -> bytes:
        try:
            proc = subprocess.run(
                ["git", *_SAFE, *args],
                cwd=self.root,
                env={**_git_env(self.host), **(env or {})},
                capture_output=True,
                timeout=_GIT_TIMEOUT,
                input=input,
                stdin=None if input is not None else subprocess.DEVNULL,
                check=False,
            )
        except FileNotFoundError as exc:
            raise GitError("git is not installed") from exc
        except subprocess.TimeoutExpired as exc:
            raise GitError(f"git {args[0]} timed out") from exc
        if proc.returncode not in allowed:
            err = proc.stderr.decode("utf-8", errors="replace")
            out = proc.stdout.decode("utf-8", errors="replace")
            raise GitError((err or out).strip() or f"git {args[0]} failed")
        return proc.stdout

    def _raw(self, args: Sequence[str]) -> subprocess.CompletedProcess[str]:
        # Decoded by hand: text mode would turn a CRLF note's "\r\n" into "\n" (`git show`).
        out = self._exec(args).decode("utf-8", errors="replace")
        return subprocess.CompletedProcess(["git", *args], 0, out, "")

    def _read(self, args: Sequence[str]) -> str:
        """A read-only command: it never takes index.lock, so it need not wait for one."""
        return self._raw(args).stdout

    @contextlib.contextmanager
    def _serialised(self) -> Iterator[None]:
        """One git operation at a time across this vault's threads and processes."""
        with self._thread_lock, self._vault_lock():
            yield

    def _run(self, args: Sequence[str]) -> str:
        """Run one git command under the vault-wide git lock, waiting out a held index.lock."""
        with self._serialised():
            deadline = time.monotonic() + LOCK_WAIT
            delay = 0.05
            while True:
                self._index_lock().wait_free(deadline)
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
            with statefs.locked(self.root, layout.GIT_LOCK):
                yield
        except statefs.LinkRefused as exc:
            raise GitError(str(exc)) from None

    def _index_file(self) -> Path:
        """The person's index (in a linked worktree it is not under `.git/` of the root)."""
        if self._index_path is None:
            self._index_path = self.root / self._read(["rev-parse", "--git-path", "index"]).strip()
        return self._index_path

    def _index_lock(self) -> IndexLock:
        return IndexLock(self._index_file())


class IndexLock:
    """The person's `index.lock`: waited for while another git holds it, taken as git takes
    it, and never removed unless it is provably one a killed vaultsched left (_LockOwner)."""

    def __init__(self, index_file: Path) -> None:
        self.index_file = index_file
        self.path = index_file.with_name(index_file.name + ".lock")
        self._owner = _LockOwner(index_file.with_name(OWNER_FILE))

    def wait_free(self, deadline: float) -> None:
        while self.path.exists():
            if self._owner.clear_stale(self.path):
                continue
            if time.monotonic() > deadline:
                raise GitError(f"{self.path} has been held for {LOCK_WAIT:.0f}s; not removing it")
            time.sleep(0.05)

    @contextlib.contextmanager
    def held(self) -> Iterator[Path]:
        """Hold it as git does (waiting while another git holds it, never removing theirs);
        yields a private copy of the index to edit and rename over it. Our commit and our
        index update then land between two gits, never inside one."""
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                break
            except FileExistsError:
                if self._owner.clear_stale(self.path):
                    continue
                if time.monotonic() > deadline:
                    raise GitError(
                        f"{self.path} held for {LOCK_WAIT:.0f}s; not removing it"
                    ) from None
                time.sleep(0.05)
        self._owner.claim(fd)
        copy = self.index_file.with_name(f"vaultsched-{secrets.token_hex(6)}.index")
        try:
            if self.index_file.exists():
                shutil.copyfile(self.index_file, copy)
            yield copy
        finally:
            os.close(fd)
            copy.unlink(missing_ok=True)
            self.path.unlink()  # ours: created above
            self._owner.release()


def _boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass
class _LockOwner:
    """Proof that an `index.lock` is one vaultsched took and was killed holding (SIGKILL mid
    commit): only such a lock is ever removed. Any other lock — Obsidian Git's, the person's
    git's — is waited for, never touched. The record sits beside the index, not in the vault's
    synced files, and names the lock by inode, this boot and a process that is gone."""

    path: Path

    def claim(self, fd: int) -> None:
        st = os.fstat(fd)
        record = f"{os.getpid()} {st.st_dev} {st.st_ino} {_boot_id()}\n"
        with contextlib.suppress(OSError):
            self.path.write_text(record)

    def release(self) -> None:
        with contextlib.suppress(OSError):
            self.path.unlink()

    def clear_stale(self, lock: Path) -> bool:
        """Remove `lock` if it is provably ours from a killed vaultsched; True if removed."""
        try:
            pid, dev, ino, boot = self.path.read_text().split()
            st = lock.stat()
        except (OSError, ValueError):
            return False
        if (str(st.st_dev), str(st.st_ino)) != (dev, ino) or boot != _boot_id():
            return False
        if not pid.isdigit() or _alive(int(pid)):
            return False
        log.warning("removing %s: vaultsched (pid %s) was killed while holding it", lock, pid)
        with contextlib.suppress(FileNotFoundError):
            lock.unlink()
        self.release()
        return True
