"""Every git call vaultsched makes, serialised behind one lock and patient with `index.lock`.

Obsidian Git holds `.git/index.lock` often; two git commands milliseconds apart collide. So each
call first waits for the lock to be free, retries when git still reports it held, and never
removes it: a lock left by a crashed git is for a person (or `doctor`) to judge.

A commit holds only vaultsched's own bytes. The person may have changed a note we write, staged
or not; `git add` would take their change along. So a commit is built with plumbing instead:
for each file, the pure edit vaultsched made on disk (`Edit`) is applied again to the committed
version, and to the staged version when that differs, and the person's working tree is never
read into a commit.

No other module builds a git command line: each command vaultsched runs is a named operation
here, so what keeps it safe (`--` and `--end-of-options` before values from the vault, literal
pathspecs, the config overrides in _SAFE) is kept and reviewed in one place.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vaultsched.adapters import statefs
from vaultsched.core import layout
from vaultsched.core.blocks import has_conflict_markers

log = logging.getLogger(__name__)

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
# Another git (Obsidian Git committing, a second vaultsched) moved HEAD or restaged one of our
# files between our read and our update: start again from what it left, this many times.
COMMIT_ATTEMPTS = 8
_REGULAR = ("100644", "100755")

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
# Keys of the repository's own config that run a program or send data elsewhere when git
# talks to a remote: while one is set there, sync is refused (the user's global config,
# which the vault cannot write, is the place for them).
_RUNS_ON_NETWORK = re.compile(
    r"^(core\.(sshcommand|gitproxy|askpass)|credential\.(.*\.)?helper"
    r"|remote\..*\.(uploadpack|receivepack|vcs|proxy)|http\.(.*\.)?proxy"
    r"|url\..*\.(pushinsteadof|insteadof))$",
    re.IGNORECASE,
)

_excluded: set[Path] = set()  # repositories whose info/exclude this process has seen to
_excluded_lock = threading.Lock()


class GitError(Exception):
    pass


@dataclass(frozen=True)
class Edit:
    """vaultsched's change to one file, as a commit must hold it.

    `apply` is the pure transform vaultsched applied on disk (a block spliced in, one property
    set). The commit holds it applied to the committed version, so a change of the person's
    that is not committed yet stays theirs. `apply=None`: the file is vaultsched's own (the
    ledger), committed whole from disk. `create`: a file git does not have may be added with
    `apply("")` (a digest); otherwise a note not yet in git is the person's to commit.
    """

    path: str
    apply: Callable[[str], str] | None = None
    create: bool = False


@dataclass(frozen=True)
class _Entry:
    mode: str
    sha: str


_CONFLICTED = _Entry("", "")  # the index holds merge stages for the path: never touched


@dataclass(frozen=True)
class _Change:
    path: str
    read_index: _Entry | None  # the person's index entry the change was worked out from
    commit: _Entry | None  # what the commit's tree gets (None: HEAD's entry stays)
    index: _Entry | None  # what the person's index gets (None: left as it is)


@dataclass(frozen=True)
class _Plan:
    head: str | None
    changes: tuple[_Change, ...]


class _Refused(Exception):
    """The edit cannot be applied to the version git holds: leave that file out this time."""


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


@dataclass
class Git:
    root: Path
    host: str
    _thread_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _usable: bool | None = field(default=None, repr=False)
    _told: set[tuple[str, str]] = field(default_factory=set, repr=False)
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

    def network_problem(self) -> str | None:
        """Why talking to a remote would run something the vault chose, or None."""
        found = self.local_config_keys(_RUNS_ON_NETWORK)
        if not found:
            return None
        return (
            f"the repository's own config sets {', '.join(found)} (a sync can write "
            ".git/config): not syncing until it is moved to your global git config"
        )

    def hooks_dir(self) -> Path:
        """Where git looks for this repository's hooks by default (our calls never run them)."""
        common = self._read(["rev-parse", "--git-common-dir"]).strip()
        return (self.root / common / "hooks").resolve()

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
            with statefs.locked(self.root, layout.GIT_LOCK):
                yield
        except statefs.LinkRefused as exc:
            raise GitError(str(exc)) from None

    def operation_in_progress(self) -> str | None:
        """A merge, rebase, cherry-pick or revert the person has not finished, if any: our
        commit would land in the middle of it."""
        args = [arg for name, _ in _OPERATIONS for arg in ("--git-path", name)]
        found = self._read(["rev-parse", *args]).splitlines()
        for (_, what), path in zip(_OPERATIONS, found, strict=True):
            if (self.root / path).exists():
                return what
        return None

    def _read(self, args: Sequence[str]) -> str:
        """A read-only command: it never takes index.lock, so it need not wait for one."""
        return self._raw(args).stdout

    def _index_file(self) -> Path:
        """The person's index (in a linked worktree it is not under `.git/` of the root)."""
        if self._index_path is None:
            self._index_path = self.root / self._read(["rev-parse", "--git-path", "index"]).strip()
        return self._index_path

    def _wait_index_lock(self, deadline: float) -> None:
        index = self._index_file()
        index_lock = index.with_name(index.name + ".lock")
        owner = _LockOwner(index.with_name(OWNER_FILE))
        while index_lock.exists():
            if owner.clear_stale(index_lock):
                continue
            if time.monotonic() > deadline:
                raise GitError(f"{index_lock} has been held for {LOCK_WAIT:.0f}s; not removing it")
            time.sleep(0.05)

    # -- committing only vaultsched's bytes ----------------------------------------------------

    def commit(self, edits: Sequence[Edit], message: str) -> bool:
        """One commit of vaultsched's edits to these files on top of HEAD, and nothing else.

        The person's index gets the same edits (so committing what they staged keeps our
        block); their working tree is never touched. Returns True if a commit was made, False
        if there was nothing to commit.
        """
        with self._serialised():
            busy = self.operation_in_progress()
            if busy:
                raise GitError(f"{busy} is in progress in the vault: committing once it is done")
            edits = self._committable(edits)
            for attempt in range(COMMIT_ATTEMPTS):
                plan = self._plan(edits)
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
        kept = [e for e in latest.values() if (self.root / e.path).is_file()]
        if not kept:
            return []
        ignored = set(self._ignored([e.path for e in kept]))
        return sorted((e for e in kept if e.path not in ignored), key=lambda e: e.path)

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

    def _plan(self, edits: Sequence[Edit]) -> _Plan:
        """What the commit and the person's index get for each file, from what git holds now."""
        head = self._head()
        paths = [e.path for e in edits]
        in_head = self._tree_entries(head, paths)
        in_index = self._index_entries(paths)
        blobs = self._blobs({e.sha for e in [*in_head.values(), *in_index.values()] if e.sha})
        changes = []
        for edit in edits:
            try:
                change = self._change(edit, in_head.get(edit.path), in_index.get(edit.path), blobs)
            except _Refused as exc:
                self._tell(edit.path, str(exc))
                continue
            changes.append(change)
        return _Plan(head, tuple(changes))

    def _change(
        self, edit: Edit, head: _Entry | None, index: _Entry | None, blobs: Mapping[str, bytes]
    ) -> _Change:
        if index is _CONFLICTED:
            raise _Refused("has unresolved merge conflicts in the index: not committed")
        if edit.apply is None:  # vaultsched's own file: ours whole, in the commit and the index
            mode = head.mode if head is not None else "100644"
            whole = _Entry(mode, self._store((self.root / edit.path).read_bytes()))
            return _Change(edit.path, index, _new(whole, head), _new(whole, index))
        if head is None and index is None and not edit.create:
            raise _Refused("is not in git yet: left for you to commit (its runs are in the ledger)")
        committed = None
        if head is not None or edit.create:
            committed = self._applied(edit.apply, head, blobs)
        if index == head:  # nothing staged: the index follows the commit
            staged = committed
        elif index is None:  # the person staged its deletion: theirs to commit
            staged = None
        else:  # the person's staged version, with our edit in it too
            staged = self._applied(edit.apply, index, blobs)
        return _Change(edit.path, index, _new(committed, head), _new(staged, index))

    def _applied(
        self, apply: Callable[[str], str], entry: _Entry | None, blobs: Mapping[str, bytes]
    ) -> _Entry:
        """`entry`'s text (nothing, if None) with the edit applied, stored as a blob."""
        if entry is not None and entry.mode not in _REGULAR:
            raise _Refused("is not a regular file in git: not committed")
        try:
            text = blobs[entry.sha].decode("utf-8") if entry is not None else ""
        except KeyError:
            raise _Refused("cannot be read from git: not committed") from None
        except UnicodeDecodeError:
            raise _Refused("is not UTF-8 in git: not committed") from None
        if has_conflict_markers(text):
            raise _Refused("has git conflict markers in git: not committed until resolved")
        try:
            edited = apply(text)
        except Exception as exc:  # whatever the edit raises, the person's bytes stay out
            raise _Refused(f"vaultsched's edit does not apply to it in git ({exc})") from exc
        if entry is not None and edited == text:
            return entry
        mode = entry.mode if entry is not None else "100644"
        return _Entry(mode, self._store(edited.encode("utf-8")))

    def _tell(self, path: str, why: str) -> None:
        """Said once per file and reason: it holds for every later commit too."""
        if (path, why) not in self._told:
            self._told.add((path, why))
            log.warning("%s %s", path, why)

    def _land(self, plan: _Plan, message: str) -> bool | None:
        """Commit the plan and update the person's index; None if git moved meanwhile."""
        commit = self._commit_object(plan, message)
        with self._index_locked() as (index_file, copy):
            env = {"GIT_INDEX_FILE": str(copy)}
            paths = [c.path for c in plan.changes]
            if self._index_entries(paths, env) != {
                c.path: c.read_index for c in plan.changes if c.read_index is not None
            }:
                return None  # the person staged one of these files meanwhile
            staged = [(c.path, c.index) for c in plan.changes if c.index is not None]
            if staged:
                self._update_index(staged, env)
                # Entries set from a blob have no stat data: without it, `git reset --keep`
                # (sync) and `git diff-files` count the file as changed until something
                # refreshes them. Refreshing leaves alone a file that differs (the person's).
                on_disk = [path for path, _ in staged if (self.root / path).is_file()]
                if on_disk:
                    self._exec(["add", "--refresh", "--", *on_disk], env=env)
            if commit is not None and not self._move_head(plan.head, commit, message):
                return None
            if staged:
                os.replace(copy, index_file)
        return commit is not None

    def _commit_object(self, plan: _Plan, message: str) -> str | None:
        """A commit of HEAD's tree with the plan's entries, or None if it changes nothing."""
        entries = [(c.path, c.commit) for c in plan.changes if c.commit is not None]
        if not entries:
            return None
        index_file = self._index_file()
        scratch = index_file.with_name(f"vaultsched-{secrets.token_hex(6)}.index")
        env = {"GIT_INDEX_FILE": str(scratch)}
        try:
            self._exec(["read-tree", plan.head] if plan.head else ["read-tree", "--empty"], env=env)
            self._update_index(entries, env)
            tree = self._exec(["write-tree"], env=env).decode().strip()
        finally:
            scratch.unlink(missing_ok=True)
        parents = ["-p", plan.head] if plan.head else []
        args = ["commit-tree", "--no-gpg-sign", tree, *parents, "-m", message]
        return self._exec(args).decode().strip()

    def _move_head(self, old: str | None, new: str, message: str) -> bool:
        """HEAD (its branch) to `new` only if it is still at `old`: compare-and-swap."""
        try:
            self._exec(["update-ref", "-m", f"commit: {message}", "HEAD", new, old or ""])
        except GitError:
            if self._head() != old:
                return False  # someone committed meanwhile: plan again on top of theirs
            raise
        return True

    @contextlib.contextmanager
    def _index_locked(self) -> Iterator[tuple[Path, Path]]:
        """Hold the person's `index.lock` as git does (waiting while another git holds it,
        never removing theirs); yields the index and a private copy to edit and rename over it.
        Our commit and our index update then land between two gits, never inside one."""
        index_file = self._index_file()
        lock = index_file.with_name(index_file.name + ".lock")
        owner = _LockOwner(index_file.with_name(OWNER_FILE))
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            try:
                fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
                break
            except FileExistsError:
                if owner.clear_stale(lock):
                    continue
                if time.monotonic() > deadline:
                    raise GitError(f"{lock} held for {LOCK_WAIT:.0f}s; not removing it") from None
                time.sleep(0.05)
        owner.claim(fd)
        copy = index_file.with_name(f"vaultsched-{secrets.token_hex(6)}.index")
        try:
            if index_file.exists():
                shutil.copyfile(index_file, copy)
            yield index_file, copy
        finally:
            os.close(fd)
            copy.unlink(missing_ok=True)
            lock.unlink()  # ours: created above
            owner.release()

    # -- plumbing reads and writes -------------------------------------------------------------

    def _head(self) -> str | None:
        try:
            return self._read(["rev-parse", "--verify", "-q", "HEAD^{commit}"]).strip()
        except GitError:
            return None  # no commit yet

    def _tree_entries(self, head: str | None, paths: Sequence[str]) -> dict[str, _Entry]:
        if head is None or not paths:
            return {}
        out = self._exec(["ls-tree", "-r", "-z", "--full-tree", head, "--", *paths]).decode()
        entries = {}
        for record in filter(None, out.split("\0")):
            meta, path = record.split("\t", 1)
            mode, kind, sha = meta.split()
            if kind == "blob":
                entries[path] = _Entry(mode, sha)
        return entries

    def _index_entries(
        self, paths: Sequence[str], env: Mapping[str, str] | None = None
    ) -> dict[str, _Entry]:
        if not paths:
            return {}
        out = self._exec(["ls-files", "-s", "-z", "--", *paths], env=env).decode()
        entries: dict[str, _Entry] = {}
        for record in filter(None, out.split("\0")):
            meta, path = record.split("\t", 1)
            mode, sha, stage = meta.split()
            entries[path] = _Entry(mode, sha) if stage == "0" else _CONFLICTED
        return entries

    def _blobs(self, shas: set[str]) -> dict[str, bytes]:
        if not shas:
            return {}
        wanted = sorted(shas)
        out = self._exec(["cat-file", "--batch"], input="".join(f"{s}\n" for s in wanted).encode())
        blobs, position = {}, 0
        for sha in wanted:
            header_end = out.index(b"\n", position)
            header = out[position:header_end].split()
            position = header_end + 1
            if len(header) != 3:  # "<sha> missing": a broken repository; that file is refused
                continue
            size = int(header[2])
            blobs[sha] = out[position : position + size]
            position += size + 1
        return blobs

    def store(self, data: bytes) -> str:
        """A blob of `data` in the object store (no lock: objects are written atomically)."""
        return self._store(data)

    def _store(self, data: bytes) -> str:
        return self._exec(["hash-object", "-w", "--stdin"], input=data).decode().strip()

    def _update_index(self, entries: Sequence[tuple[str, _Entry]], env: Mapping[str, str]) -> None:
        lines = "".join(f"{e.mode} {e.sha}\t{path}\0" for path, e in entries)
        self._exec(["update-index", "-z", "--index-info"], input=lines.encode(), env=env)

    # Both run inside a pre-commit hook while `git commit` holds index.lock: waiting for the
    # lock (or for our own git lock, which a daemon may hold while it waits) would deadlock.
    def staged_files(self) -> list[str]:
        out = self._read(["diff", "--cached", "--name-only", "--diff-filter=ACMR", "-z"])
        return [p for p in out.split("\0") if p]

    def show_staged(self, path: str) -> str:
        return self._read(["show", f":{path}"])

    # -- talking to a remote: the remote's name comes from the vault config -------------------

    def remotes(self) -> list[str]:
        return self._read(["remote"]).split()

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
        self._run(["fetch", "--quiet", "--", _value(remote)])

    def push(self, remote: str, refspec: str) -> None:
        self._run(["push", "--quiet", "--", _value(remote), _value(refspec)])

    def init(self) -> None:
        self._raw(["init", "-q"])
        self._usable = None

    def commit_all(self, message: str) -> None:
        """Commit the whole work tree: only for a copy we just made (the demo vault)."""
        self._run(["add", "-A"])
        self._run(["-c", "commit.gpgsign=false", "commit", "--no-verify", "-q", "-m", message])

    # -- sync: where the branch stands, a scratch worktree to rebase in, landing the result -----

    def branch(self) -> str:
        """The checked-out branch's short name; GitError when HEAD is detached."""
        return self._read(["symbolic-ref", "-q", "--short", "HEAD"]).strip()

    def head_commit(self) -> str:
        """The commit HEAD is at; GitError while there is none."""
        return self._read(["rev-parse", "HEAD"]).strip()

    def ref_exists(self, ref: str) -> bool:
        """Whether `ref` (a remote-tracking branch) names an object in this repository."""
        # `ref` is built from the vault config's remote name: never to be read as an option.
        try:
            self._read(["rev-parse", "--verify", "--quiet", "--end-of-options", ref])
        except GitError:
            return False
        return True

    def commits_behind(self, upstream: str) -> int:
        """How many commits `upstream` has that HEAD does not."""
        return int(self._read(["rev-list", "--count", f"HEAD..{upstream}"]).strip())

    def reset_keep(self, rev: str) -> None:
        """Move branch and work tree to `rev`, refused if a change not committed would be lost."""
        self._run(["reset", "--quiet", "--keep", rev])

    def add_worktree(self, path: Path, base: str) -> None:
        """A detached worktree at `path`, checked out at `base`: work out of the person's way."""
        self._run(["worktree", "add", "--quiet", "--detach", str(path), base])

    def remove_worktree(self, path: Path) -> None:
        """Delete the worktree at `path`, whatever changes it holds."""
        self._run(["worktree", "remove", "--force", str(path)])

    def prune_worktrees(self) -> None:
        """Forget worktrees whose folder is gone (one that could not be removed cleanly)."""
        self._run(["worktree", "prune"])

    # -- a rebase, and the conflicts it stops at ------------------------------------------------

    def rebase_onto(self, upstream: str) -> None:
        """Replay HEAD's own commits on top of `upstream`; GitError when it stops or fails."""
        # `upstream` is built from the vault config's remote name: never to be read as an option.
        self._run(["rebase", "--quiet", "--end-of-options", upstream])

    def continue_rebase(self) -> None:
        """Go on with a stopped rebase once its conflicts are resolved in the index."""
        self._run(["rebase", "--continue"])

    def conflicted_paths(self) -> list[str]:
        """The paths the index holds unresolved merge stages for."""
        out = self._read(["diff", "--name-only", "--diff-filter=U", "-z"])
        return [rel for rel in out.split("\0") if rel]

    def conflict_stages(self, rel: str) -> dict[int, tuple[str, str]]:
        """Stage number -> (mode, blob) of one conflicted path in the index."""
        out = self._read(["ls-files", "-s", "-z", "--", rel])
        stages = {}
        for record in filter(None, out.split("\0")):
            meta, _path = record.split("\t", 1)
            mode, sha, stage = meta.split()
            stages[int(stage)] = (mode, sha)
        return stages

    def blob_text(self, sha: str) -> str:
        """A blob's content as text."""
        return self._read(["cat-file", "blob", sha])

    def stage_blob(self, mode: str, sha: str, rel: str) -> None:
        """Set `rel`'s index entry to blob `sha` (resolving its conflict); the disk is untouched."""
        self._run(["update-index", "--cacheinfo", f"{mode},{sha},{rel}"])

    def remove_from_index(self, rel: str) -> None:
        """Drop every stage of `rel` from the index; the disk is untouched."""
        self._run(["update-index", "--force-remove", "--", rel])

    def checkout_from_index(self, rel: str) -> None:
        """Write `rel` to disk as the index has it (git's checkout never writes through a link)."""
        self._run(["checkout-index", "-f", "--", rel])

    def refresh_index(self) -> None:
        """Give index entries set from a blob the stat data of their files on disk."""
        self._run(["update-index", "-q", "--refresh"])


def _value(text: str) -> str:
    """A value after `--` still must not look like an option to git (belt and braces)."""
    if text.startswith("-"):
        raise GitError(f"refusing a git argument that starts with '-': {text!r}")
    return text


def _new(entry: _Entry | None, current: _Entry | None) -> _Entry | None:
    """`entry` if it changes `current`, else None (nothing to write)."""
    return entry if entry != current else None


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
