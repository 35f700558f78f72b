"""What trust covers for one task, read from the vault: its settings, its body, its files.

A `Snapshot` is that reading; its `fingerprint` is what the trust store keeps, and the snapshot
itself (text cut to a size) is kept beside the store so `vaultsched trust` can show what changed.

`fingerprint` is asked before every run, so each reading keeps a `Witness`: the identity of
every path it looked at. While none of them changed, the fingerprint is the one already taken,
and checking that costs a few `lstat` calls instead of a walk and a hash of every file.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import json
import os
import stat
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from vaultsched.core.model import Task
from vaultsched.core.taskfile import note_body, without_run_block

if TYPE_CHECKING:
    from vaultsched.trust.reach import Listing

# The settings that decide what runs and how, in the fingerprint. `executor` and `ping` are
# not task keys yet: they are here as absent (None) already, so a task that does not use them
# keeps its fingerprint when they arrive (as `check` did). A new key must read None when absent.
# `schedule` is whether the daemon starts the task by itself (a schedule, or `after` another
# task), not the text: a task trusted to run only by hand must not be started by the daemon once
# a sync adds a schedule or an `after`, while retiming a scheduled one is fine.
KEYS = ("command", "check", "cwd", "env", "stdin", "approval", "executor", "ping", "schedule")
TEXT_CAP = 256 * 1024  # text kept per file for showing a diff; beyond it, only sizes
_CHUNK = 1024 * 1024  # read and hashed at a time
# Never read inside a folder a command names: git's own store, and the bytecode caches tasks
# neither read nor write (vaultsched points PYTHONPYCACHEPREFIX outside the vault).
_SKIPPED_FOLDERS = {".git", "__pycache__"}
# A path whose ctime is this close to a reading (or later) cannot vouch for it: a second change
# within the same clock tick (or a file system's coarser one, FAT's 2 s) would keep its ctime.
_RACY_NS = 2 * 10**9
_KEPT_PRINTS = 4096  # fingerprints kept with their witness; past it, the oldest go

# What any change to a path changes: (device, inode, mode, size, mtime, ctime), in ns. An edit
# that puts mtime back still moves ctime; a file replaced by a rename has another inode.
# None: nothing is there (or it cannot be looked at).
Identity = tuple[int, int, int, int, int, int] | None


def identity(path: str | Path) -> Identity:
    """A path's identity, a link's own (`folder/.`: the folder a link names)."""
    try:
        found = os.lstat(path)
    except (OSError, ValueError):
        return None
    return identity_of(found)


def identity_of(found: os.stat_result) -> Identity:
    return (
        found.st_dev,
        found.st_ino,
        found.st_mode,
        found.st_size,
        found.st_mtime_ns,
        found.st_ctime_ns,
    )


@dataclass
class Witness:
    """Every path one reading looked at, each with its identity from before it was read (a
    folder before it was listed, a file before it was hashed): the reading still holds while
    all of them are unchanged. `complete` is False when it cannot be vouched for this way: a
    glob over folders, a file that changed while it was read, or a path changed too recently
    for its ctime to tell a later change apart."""

    began_ns: int = field(default_factory=time.time_ns)
    seen: dict[str, Identity] = field(default_factory=dict)
    complete: bool = True

    def note(self, path: str | Path) -> Identity:
        """`path` as it is now (a link itself, not what it names); the first look is kept."""
        key = os.fspath(path)
        if key not in self.seen:
            found = self.seen[key] = identity(key)
            if found is not None and found[5] >= self.began_ns - _RACY_NS:
                self.complete = False
        return self.seen[key]

    def chain(self, path: Path, top: Path) -> bool:
        """`path` and every folder on the way to it: from `top` if it lies under `top` (the
        vault: what is above it is not the vault's), else from `/`. Each link on the way is
        seen as a link, so a retargeted one shows; past a missing part nothing more is there.
        Whether `path` is there (as itself: a link counts, wherever it leads)."""
        parts, under = path.parts, top.parts
        start = len(under) if parts[: len(under)] == under else 1  # `is_relative_to`, in parts
        return all(self.note(key) is not None for key in _prefixes(parts)[start:])

    def listed(self, folder: str | Path) -> None:
        """A folder about to be listed, through any link to it (its entries move its mtime)."""
        self.note(f"{os.fspath(folder)}/.")

    def read(self, path: str | Path, after: os.stat_result) -> None:
        """`path` was read; `after`: its open file's state once read. Unless it is what the
        witness saw before the read, the reading is vouched for by nothing."""
        if self.seen.get(os.fspath(path)) != identity_of(after):
            self.complete = False

    def unchanged(self) -> bool:
        return self.complete and all(identity(p) == found for p, found in self.seen.items())


def _prefixes(parts: tuple[str, ...]) -> list[str]:
    """`str(Path(*parts[:n]))` for n from 0 to len(parts), without making a Path of each:
    `list` takes a thousand tasks' fingerprints, each looking at a few of them."""
    found, key = [os.curdir], ""
    for part in parts:
        key = os.path.join(key, part)  # noqa: PTH118 (text, not a Path: see above)
        found.append(key)
    return found


@dataclass(frozen=True)
class Content:
    sha256: str
    size: int
    text: str | None  # None: not UTF-8 text, or larger than TEXT_CAP

    @classmethod
    def of(cls, data: bytes) -> Content:
        import hashlib  # here and below: `list` on a vault without tasks never loads it

        return cls(hashlib.sha256(data).hexdigest(), len(data), _text(data))


def _text(data: bytes) -> str | None:
    """UTF-8 text up to TEXT_CAP, NULs and all: `trust` shows it escaped, so a NUL slipped into a
    script is shown as a change in it, not as a binary file."""
    if len(data) > TEXT_CAP:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


@dataclass(frozen=True)
class Snapshot:
    """A task as trust sees it. `warnings` (code it reads that cannot be seen) is not hashed."""

    keys: Mapping[str, Any]
    body: Content | None = None  # for `stdin: body`
    files: Mapping[str, Content] = field(default_factory=dict)
    capped: bool = False
    warnings: tuple[str, ...] = ()

    @property
    def fingerprint(self) -> str:
        head = {
            "keys": self.keys,
            "body": self.body.sha256 if self.body else None,
            "capped": self.capped,
        }
        import hashlib

        digest = hashlib.sha256(json.dumps(head, sort_keys=True).encode("utf-8"))
        for rel in sorted(self.files):
            digest.update(f"\0{rel}\0".encode())
            digest.update(bytes.fromhex(self.files[rel].sha256))
        return digest.hexdigest()

    def to_json(self, text_cap: int) -> dict[str, Any]:
        """For keeping: at most `text_cap` characters of text in all (the body first)."""
        budget = [text_cap]
        return {
            "keys": self.keys,
            "body": _content_json(self.body, budget),
            "files": {rel: _content_json(c, budget) for rel, c in sorted(self.files.items())},
            "capped": self.capped,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Snapshot:
        body = data.get("body")
        return cls(
            keys=dict(data["keys"]),
            body=Content(**body) if body else None,
            files={rel: Content(**c) for rel, c in data["files"].items()},
            capped=bool(data.get("capped")),
        )


def _content_json(content: Content | None, budget: list[int]) -> dict[str, Any] | None:
    if content is None:
        return None
    if content.text is not None and len(content.text) > budget[0]:
        content = dataclasses.replace(content, text=None)
    budget[0] -= len(content.text or "")
    return dataclasses.asdict(content)


def canonical_keys(task: Task) -> dict[str, Any]:
    keys = {key: _canonical(getattr(task, key, None)) for key in KEYS}
    # Always present, true or false: one re-trust for all when it was added.
    keys["schedule"] = bool(task.schedules or task.after)
    return keys


def _canonical(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _canonical(v) for k, v in sorted(value.items())}
    if isinstance(value, tuple | list):
        return [_canonical(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _canonical(dataclasses.asdict(value))
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)


def take_snapshot(
    root: Path, task: Task, body: str | None = None, witness: Witness | None = None
) -> Snapshot:
    """Read the task's body (unless the caller already read it: `body`) and reached files;
    `witness` is told every path looked at."""
    from vaultsched.trust.reach import Reach, reach  # here: `list` on no task never loads it

    files = VaultFiles(root, witness)
    reached = reach(task.command, task.cwd, files, task.env, task.path)
    if task.check is not None:  # the check is code that runs too: its files are covered alike
        gate = reach(task.check, task.cwd, files, task.env, task.path)
        reached = Reach(
            tuple(dict.fromkeys((*reached.files, *gate.files))),
            (*reached.warnings, *gate.warnings),
            reached.capped or gate.capped,
        )
    if task.stdin == "body" and body is None:
        body = read_body(root, task)
    return Snapshot(
        keys=canonical_keys(task),
        body=Content.of(body.encode("utf-8"))
        if task.stdin == "body" and body is not None
        else None,
        files={rel: files.content(rel, task.path) for rel in reached.files},
        capped=reached.capped,
        warnings=reached.warnings,
    )


def fingerprint(root: Path, task: Task, body: str | None = None) -> str:
    """`take_snapshot(...).fingerprint`, taken again only once a path it looked at changed."""
    if task.stdin == "body" and body is None:
        body = read_body(root, task)
    key = _print_key(root, task, body)
    known = _PRINTS.get(key)
    if known is not None and known[1].unchanged():
        return known[0]
    witness = Witness()
    taken = take_snapshot(root, task, body, witness).fingerprint
    if witness.complete:
        with _PRINTS_LOCK:
            while len(_PRINTS) >= _KEPT_PRINTS:
                del _PRINTS[next(iter(_PRINTS))]
            _PRINTS[key] = (taken, witness)
    return taken


# (vault, note, settings, body) -> the fingerprint of that task, and the witness of its reading
_PRINTS: dict[tuple[str, str, str, str | None], tuple[str, Witness]] = {}
_PRINTS_LOCK = threading.Lock()


def _print_key(root: Path, task: Task, body: str | None) -> tuple[str, str, str, str | None]:
    """Everything a fingerprint depends on besides the files its witness keeps."""
    settings = json.dumps(canonical_keys(task), sort_keys=True)
    piped = None
    if task.stdin == "body" and body is not None:
        import hashlib

        piped = hashlib.sha256(body.encode("utf-8")).hexdigest()
    return os.fspath(root), task.path, settings, piped


def files_reached(root: Path, command: str) -> dict[str, str]:
    """{vault file: sha256} for every vault file `command`, run from the vault root, reaches:
    what the config's `[notify] command` runs is as much code as a task's script."""
    if not command:  # no command, no file (and no command parser loaded: `list`, `status`)
        return {}
    from vaultsched.trust.reach import reach

    files = VaultFiles(root)
    return {rel: files.content(rel, "").sha256 for rel in reach(command, None, files).files}


def read_body(root: Path, task: Task) -> str | None:
    """The text `stdin: body` pipes; None if the note cannot be read as UTF-8."""
    data = _read_regular(root / task.path)
    try:
        return None if data is None else note_body(data.decode("utf-8"))
    except UnicodeDecodeError:
        return None


class VaultFiles:
    """The `Lister` for a real vault: regular files inside it, folders walked whole (sorted,
    symlinks not followed), globs expanded. Every path it looks at is told to its witness."""

    def __init__(self, root: Path, witness: Witness | None = None) -> None:
        self.root = root
        self.real_root = root.resolve()
        self.witness = witness or Witness()

    def __call__(self, path: str) -> Listing:
        from vaultsched.trust.reach import MAX_FILES, Listing  # loaded: `reach` calls this

        listings = [self._literal(path)]
        if glob.has_magic(path):
            pattern = str(Path(path).expanduser())
            self._globbed(pattern)
            # glob.glob, not Path.glob: a shell pattern may be absolute or climb with `..`.
            matches = glob.glob(pattern, root_dir=self.root)  # noqa: PTH207
            for match in sorted(matches)[:MAX_FILES]:
                listings.append(self._literal(match))
        return Listing(
            files=tuple(dict.fromkeys(f for listing in listings for f in listing.files)),
            folder=any(listing.folder for listing in listings),
            whole_vault=any(listing.whole_vault for listing in listings),
            capped=any(listing.capped for listing in listings),
        )

    def _globbed(self, pattern: str) -> None:
        """The one folder a pattern with magic in its last part lists; a pattern with magic in
        a folder part lists folders found on the way, which no witness keeps."""
        folder, _ = os.path.split(pattern)
        if glob.has_magic(folder):
            self.witness.complete = False
            return
        self.witness.chain(self.root / folder, self.root)
        self.witness.listed(self.root / folder)

    def _literal(self, path: str) -> Listing:
        from vaultsched.trust.reach import MAX_FILES, Listing

        try:
            named = self.root / Path(path).expanduser()
            if not self.witness.chain(named, self.root):
                return Listing()  # nothing there, nor a link: no file it could lead to
            real = named.resolve()
            self.witness.chain(real, self.real_root)
            if not real.is_relative_to(self.real_root):
                return Listing()
            if real == self.real_root:
                return Listing(folder=True, whole_vault=True)
            if real.is_dir():
                files = list(dict.fromkeys(self._walk(real)))
                return Listing(tuple(files[:MAX_FILES]), True, capped=len(files) > MAX_FILES)
            if stat.S_ISREG(real.stat().st_mode):
                return Listing((real.relative_to(self.real_root).as_posix(),))
        except (OSError, RuntimeError, ValueError):
            pass
        return Listing()

    def _walk(self, folder: Path) -> Iterator[str]:
        """Regular files and symlinks under `folder`, sorted, at most MAX_FILES + 1. A linked
        folder that stays inside the vault is walked too (by its real path), each folder once:
        `scripts/lib -> ../vendor/lib` is code the command reaches as much as `scripts/`."""
        from vaultsched.trust.reach import MAX_FILES

        pending, walked, count = [folder], set(), 0
        while pending:
            start = pending.pop(0)
            if start in walked:
                continue  # a link back to a folder already walked: no cycle, no repeat
            walked.add(start)
            for rel in self._walk_tree(start, pending):
                count += 1
                yield rel
                if count > MAX_FILES:
                    return

    def _walk_tree(self, folder: Path, linked: list[Path]) -> Iterator[str]:
        """One folder tree without following links; the linked folders found go to `linked`.
        Each folder is seen by the witness before `os.walk` lists it."""
        self.witness.listed(folder)
        for top, dirs, names in os.walk(folder):
            dirs.sort()
            links = [d for d in dirs if Path(top, d).is_symlink()]
            dirs[:] = [d for d in dirs if d not in _SKIPPED_FOLDERS and d not in links]
            for name in dirs:
                self.witness.listed(Path(top, name))
            linked.extend(real for d in links if (real := self._linked_folder(Path(top, d))))
            for name in sorted([*names, *links]):
                path = Path(top, name)
                try:
                    mode = path.lstat().st_mode
                except OSError:  # gone since the listing
                    continue
                if stat.S_ISLNK(mode) or stat.S_ISREG(mode):
                    yield path.relative_to(self.real_root).as_posix()

    def _linked_folder(self, link: Path) -> Path | None:
        """The real folder a link names, if it is inside the vault (not the vault itself)."""
        self.witness.note(link)
        try:
            real = link.resolve(strict=True)
        except (OSError, RuntimeError):  # dangling, or a loop
            return None
        self.witness.chain(real, self.real_root)
        inside = real.is_relative_to(self.real_root) and real != self.real_root
        if inside and real.is_dir() and real.name not in _SKIPPED_FOLDERS:
            return real
        return None

    def content(self, rel: str, note: str) -> Content:
        """A file's content; a symlink is its target (plus that file, if in the vault); the
        task's own note without its run block, so a run landing does not untrust the task."""
        path = self.real_root / rel
        self.witness.chain(path, self.real_root)
        if path.is_symlink():
            head = f"symlink to {path.readlink()}\n".encode()
            with contextlib.suppress(OSError, RuntimeError):  # a loop
                real = path.resolve()
                self.witness.chain(real, self.real_root)
                if real.is_relative_to(self.real_root):
                    return _hashed(real, head, self.witness)
            return Content.of(head)
        if rel == note:  # the first run block is appended after a blank line: not an edit
            data = _read_regular(path, self.witness) or b""
            own = without_run_block(data.decode("utf-8", "surrogateescape")).rstrip()
            return Content.of(own.encode("utf-8", "surrogateescape"))
        return _hashed(path, witness=self.witness)


def _hashed(path: Path, head: bytes = b"", witness: Witness | None = None) -> Content:
    """`head` and a regular file's bytes, hashed in chunks: a 1.5 GB file a sync drops into a
    named folder costs a read, never its size in memory. Text is kept only up to TEXT_CAP."""
    import hashlib

    digest, kept, size = hashlib.sha256(head), bytearray(head), len(head)
    try:
        with _open_regular(path) as handle:
            while handle is not None and (chunk := handle.read(_CHUNK)):
                digest.update(chunk)
                size += len(chunk)
                if len(kept) <= TEXT_CAP:
                    kept += chunk[: TEXT_CAP + 1 - len(kept)]
            _was_read(path, handle, witness)
    except OSError:  # unreadable, as an unreadable file always read: no content
        return Content.of(head)
    return Content(digest.hexdigest(), size, _text(bytes(kept)))


def _read_regular(path: Path, witness: Witness | None = None) -> bytes | None:
    """A regular file's bytes; never blocks on a FIFO or device put where a file was."""
    try:
        with _open_regular(path) as handle:
            data = None if handle is None else handle.read()
            _was_read(path, handle, witness)
            return data
    except OSError:
        return None


def _was_read(path: Path, handle: BinaryIO | None, witness: Witness | None) -> None:
    if witness is not None and handle is not None:
        witness.read(path, os.fstat(handle.fileno()))


@contextlib.contextmanager
def _open_regular(path: Path) -> Iterator[BinaryIO | None]:
    """The file opened for reading if it is a regular one, else None. Never blocks on a FIFO or
    device put where a file was."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        yield None
        return
    with os.fdopen(fd, "rb") as handle:
        try:
            regular = stat.S_ISREG(os.fstat(fd).st_mode)
        except OSError:
            regular = False
        yield handle if regular else None
