"""What a task's `if_changed` globs match, as one digest, and the digest of its last success.

A run goes ahead only if a matching file's content changed since the task's last successful
run: the caller takes `inputs_digest` when a run starts, compares it with `last_inputs`, and
after a success keeps it with `save_inputs`.

The vault is untrusted input, so the walk reads only what it must, never through a link:

- folders are opened one at a time relative to the one before (`O_NOFOLLOW`), files likewise:
  a link is never followed, a folder or file swapped for a link meanwhile is refused too;
- hidden files and folders (`.git`, `.obsidian`, `.vaultsched`) are never walked nor matched;
- a file is opened non-blocking and read only if `fstat` says it is a regular one: a FIFO or a
  device put where a note was neither hangs nor has side effects;
- only the folders a glob can reach are walked, at most `MAX_DEPTH` deep, and at most
  `MAX_FILES` files are hashed, each in chunks: beyond, the digest says "capped".
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import stat
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from wcmatch import glob as wcglob

from vaultsched.adapters import statefs
from vaultsched.core import layout

log = logging.getLogger(__name__)

MAX_FILES = 10_000  # files hashed per digest; beyond, the digest is marked capped
MAX_DEPTH = 64  # folders deeper than this are not walked (marked capped if a glob reaches them)
CHUNK = 1024 * 1024  # read and hashed at a time: a huge file costs a read, never its memory
MAX_STATE = 256  # bytes: the state file holds one hex digest
# GLOBSTAR: `**` spans folders; BRACE: `{a,b}` (expansions bounded by wcmatch's limit);
# FORCEUNIX: `/` separates and case matters, on every host alike. No DOTGLOB: `*` and `**` never
# match a hidden name (and the walk never enters one, even when a glob names it literally).
FLAGS = wcglob.GLOBSTAR | wcglob.BRACE | wcglob.FORCEUNIX
_MAGIC = frozenset("*?[]{}\\")  # a folder name with none of these is literal
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE = os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC
_VERSION = b"vaultsched if_changed 1\0"
_DIGEST = re.compile(r"[0-9a-f]{64}")

_warned: set[tuple[str, tuple[str, ...]]] = set()
_warned_lock = threading.Lock()


def inputs_digest(root: Path, globs: Sequence[str]) -> str:
    """One sha256 (hex) over the vault-relative path and content sha256 of every regular file
    any of `globs` matches, in sorted order. Content only: touching a file changes nothing,
    renaming, adding or removing a matching one does. ValueError for a glob that is absolute,
    climbs with `..`, or cannot be compiled."""
    patterns = [_checked(pattern) for pattern in globs]
    try:
        matcher = wcglob.compile(patterns, flags=FLAGS) if patterns else None
    except Exception as exc:  # wcmatch's own errors (too many brace expansions, ...)
        raise ValueError(f"if_changed globs {patterns!r}: {exc}") from exc
    walk = _Walk(matcher, [_literal_prefix(pattern) for pattern in patterns])
    if matcher is not None:
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # the root may be a link
        try:
            walk.folder(fd, ())
        finally:
            os.close(fd)
    if walk.capped:
        _warn_once(root, tuple(patterns))
    digest = hashlib.sha256(_VERSION)
    for rel, content in sorted(walk.found.items()):
        digest.update(rel.encode("utf-8", "surrogateescape") + b"\0")
        digest.update(content)
    if walk.capped:  # only the first MAX_FILES files (in walk order) are in: say so
        digest.update(f"\0capped at {MAX_FILES} files, {MAX_DEPTH} folders deep".encode())
    return digest.hexdigest()


def last_inputs(root: Path, task_id: str) -> str | None:
    """The digest kept at the task's last success; None if there is none or it cannot be
    trusted (a link, a torn or hostile file): the run then goes ahead."""
    try:
        data = statefs.read_bytes(root, layout.inputs_file(task_id), limit=MAX_STATE)
    except OSError as exc:
        statefs.warn_refused(exc, "if_changed state")
        return None
    if data is None:
        return None
    text = data.decode("ascii", "replace").strip()
    return text if _DIGEST.fullmatch(text) else None


def save_inputs(root: Path, task_id: str, digest: str) -> None:
    """Keep `digest` (from `inputs_digest`) as the task's last success. Never through a link
    (statefs.LinkRefused); not fsynced: lost in a crash, the next run just runs."""
    if not _DIGEST.fullmatch(digest):
        raise ValueError(f"not an inputs digest: {digest!r}")
    statefs.write_atomic(root, layout.inputs_file(task_id), f"{digest}\n".encode(), durable=False)


def _checked(pattern: str) -> str:
    """The glob, refused if it could reach outside the vault (the task file refuses these
    already; one reaching here another way is refused too)."""
    if not pattern.strip() or "\0" in pattern:
        raise ValueError(f"if_changed glob {pattern!r} is empty or has a NUL")
    if pattern.startswith(("/", "~")):
        raise ValueError(f"if_changed glob {pattern!r} is absolute: outside the vault")
    if ".." in pattern.replace("\\", "/").split("/"):
        raise ValueError(f"if_changed glob {pattern!r} climbs out with '..'")
    # `./Inbox/*.md` is `Inbox/*.md`: the paths matched are vault-relative, without `./`.
    return "/".join(part for part in pattern.split("/") if part != ".") or pattern


def _literal_prefix(pattern: str) -> tuple[str, ...]:
    """The folders a glob names literally before its first wildcard: `Inbox/**/*.md` can only
    match under `Inbox`, so nothing else is walked for it."""
    parts = [part for part in pattern.split("/") if part not in ("", ".")]
    prefix: list[str] = []
    for part in parts[:-1]:
        if _MAGIC.intersection(part):
            break
        prefix.append(part)
    return tuple(prefix)


@dataclass
class _Walk:
    matcher: wcglob.WcMatcher[str] | None
    prefixes: list[tuple[str, ...]]
    found: dict[str, bytes] = field(default_factory=dict)  # rel -> what its content adds
    capped: bool = False

    def reaches(self, rel: tuple[str, ...]) -> bool:
        """A glob can match below folder `rel`: one of `rel` and a literal prefix starts the
        other."""
        return any(rel[: len(p)] == p[: len(rel)] for p in self.prefixes)

    def folder(self, fd: int, rel: tuple[str, ...]) -> None:
        """Walk one folder (sorted, so the same vault is walked, and capped, the same way)."""
        try:
            with os.scandir(fd) as listing:
                entries = sorted((entry.name, _is_dir(entry)) for entry in listing)
        except OSError:
            if not rel:
                raise  # the vault itself cannot be listed: no digest to give
            return  # an unreadable folder reads as an empty one
        for name, is_dir in entries:
            if self.capped:
                return
            if name.startswith("."):
                continue  # hidden: never matched, never walked
            if is_dir:
                self._subfolder(fd, (*rel, name))
            else:
                self._file(fd, (*rel, name))

    def _subfolder(self, fd: int, rel: tuple[str, ...]) -> None:
        if not self.reaches(rel):
            return
        if len(rel) > MAX_DEPTH:
            self.capped = True
            return
        try:
            # O_NOFOLLOW: a link is never walked, even one swapped in since the listing. A
            # synced link can point anywhere (outside the vault, at /), and what it reaches is
            # no input of the vault's.
            child = os.open(rel[-1], _DIR, dir_fd=fd)
        except OSError:  # gone, unreadable, or a link now
            return
        try:
            self.folder(child, rel)
        finally:
            os.close(child)

    def _file(self, fd: int, rel: tuple[str, ...]) -> None:
        path = "/".join(rel)
        if self.matcher is None or not self.matcher.match(path):
            return
        content = _content(fd, rel[-1])
        if content is None:
            return  # not a regular file: a link (never followed, see above), FIFO, device
        if len(self.found) >= MAX_FILES:
            self.capped = True
            return
        self.found[path] = content


def _is_dir(entry: os.DirEntry[str]) -> bool:
    """A real folder (a link to one is not: it is never walked)."""
    try:
        return entry.is_dir(follow_symlinks=False)
    except OSError:
        return False


def _content(dir_fd: int, name: str) -> bytes | None:
    """`b"F"` and the sha256 of a regular file's bytes, `b"U"` for one that cannot be read;
    None for anything else (opened non-blocking, so a FIFO opens at once, and not read)."""
    try:
        fd = os.open(name, _FILE, dir_fd=dir_fd)
    except FileNotFoundError:
        return None  # gone since the listing
    except OSError:
        with contextlib.suppress(OSError):
            mode = os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode
            if stat.S_ISREG(mode):
                return b"U"  # there, but unreadable: its presence still counts
        return None  # a link (ELOOP under O_NOFOLLOW), a socket
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        os.set_blocking(fd, True)
        digest = hashlib.sha256()
        while chunk := os.read(fd, CHUNK):
            digest.update(chunk)
        return b"F" + digest.digest()
    except OSError:
        return b"U"
    finally:
        os.close(fd)


def _warn_once(root: Path, globs: tuple[str, ...]) -> None:
    """Once per vault and globs per process: an `every 1m` task must not flood the log."""
    key = (str(root), globs)
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    log.warning(
        "if_changed %s: more than %d files match (or folders deeper than %d): only the first "
        "are watched, a change beyond them is not seen",
        list(globs),
        MAX_FILES,
        MAX_DEPTH,
    )
