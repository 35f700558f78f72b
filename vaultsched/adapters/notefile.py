"""Opening a vault file as a note: only a regular file, never through a link, never blocking.

Anything can sit in the vault under a `.md` name. Opening a FIFO for reading waits for a writer
(a daemon start once hung for 682 s on one, deaf to SIGTERM); opening a device can have side
effects; a symlink may lead out of the vault. So every note is opened here: O_NONBLOCK (a FIFO
opens at once), O_NOFOLLOW (a link is refused, not followed), O_NOCTTY, then fstat on the open
descriptor, so the check and the read concern the same file.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path
from stat import S_ISREG
from typing import NoReturn

from vaultsched.core.taskfile import FENCE, MAX_FRONT_MATTER

_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY
# What open() says when the path is a link (O_NOFOLLOW) or a socket.
_REFUSED = (errno.ELOOP, errno.ENXIO, errno.EMLINK)


READ_CHUNK = 4096
MAX_FENCE_LINE = 1024  # a longer first line is not `---` (and may be a binary file's only line)
# A line that closes front matter, as `_strip_eol` reads lines: `---` or `...`, then blanks.
_CLOSING_FENCE = re.compile(rb"^(?:---|\.\.\.)[ \t]*\r*$", re.MULTILINE)
_FENCE = FENCE.encode()
_OPENINGS = (_FENCE, b"\xef\xbb\xbf" + _FENCE)  # what a note with front matter starts with
_LONGEST_OPENING = len(_OPENINGS[1])


class NotRegularFile(OSError):
    """A FIFO, socket, device, folder or symlink where a note was expected."""

    def __init__(self, kind: str) -> None:
        super().__init__(errno.EINVAL, f"{kind}, not a regular file: never opened as a note")
        self.kind = kind


def kind_of(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symlink"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "a folder" if stat.S_ISDIR(mode) else "not a file"


def open_note(path: str | os.PathLike[str]) -> int:
    """A read-only descriptor on the regular file at `path`; NotRegularFile for anything else."""
    return _open_note(path)[0]


def link_on_path(root: str | os.PathLike[str], rel: str) -> bool:
    """Whether `rel` under `root`, or any folder on the way to it, is a symlink (checked with
    lstat, never followed; a part that does not exist ends the check). The walk never enters
    a linked folder; a path handed over by an event or a command is checked with this."""
    here = os.fspath(root)
    for part in rel.split("/"):
        if not part:
            continue
        here = f"{here}/{part}"
        try:
            if stat.S_ISLNK(os.lstat(here).st_mode):
                return True
        except FileNotFoundError:
            return False
    return False


def _open_note(path: str | os.PathLike[str]) -> tuple[int, os.stat_result]:
    try:
        fd = os.open(path, _FLAGS)
    except OSError as exc:
        _not_opened(path, exc)
    try:
        info = os.fstat(fd)
    except OSError:
        os.close(fd)
        raise
    if not S_ISREG(info.st_mode):
        os.close(fd)
        raise NotRegularFile(kind_of(info.st_mode))
    return fd, info


def _not_opened(path: str | os.PathLike[str], exc: OSError) -> NoReturn:
    """Why `os.open(path, _FLAGS)` failed: NotRegularFile for a link or a socket."""
    if exc.errno not in _REFUSED:
        raise exc
    raise NotRegularFile(kind_of(os.lstat(path).st_mode)) from None


def read_note_bytes(path: str | os.PathLike[str]) -> bytes:
    """The whole content of a note (for `stdin: body` and checks that need all of it)."""
    fd = open_note(path)
    try:
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


class NotUtf8Error(ValueError):
    pass


def read_front_matter(path: str | Path) -> str | None:
    """The YAML text between the opening and closing `---` lines, or None if there is none.

    Reads a block at a time and stops at the closing fence: the note's body is never read, and
    most notes (no front matter) cost one open and one read. That is what keeps a cold index of
    a large vault close to the cost of listing it; raw `os` calls because a buffered file
    object per note was a third of that cost.
    """
    return read_front_matter_opened(path)[0]


def read_front_matter_opened(path: str | Path) -> tuple[str | None, os.stat_result]:
    """`read_front_matter`, and the file's stat as opened, before a byte was read: the index
    cache keys what was read by it (a change after that shows as a newer stat, never older)."""
    # Run for every note of a cold index: `_open_note` written out here (the stat and the read
    # under one `finally`), a call fewer per note.
    try:
        fd = os.open(path, _FLAGS)
    except OSError as exc:
        _not_opened(path, exc)
    try:
        info = os.fstat(fd)
        if not S_ISREG(info.st_mode):
            raise NotRegularFile(kind_of(info.st_mode))
        data = os.read(fd, READ_CHUNK)
        # Most notes: no front matter, decided at once (here: a call fewer per note).
        if len(data) >= _LONGEST_OPENING and not data.startswith(_OPENINGS):
            return None, info
        return _front_matter(fd, data), info
    finally:
        os.close(fd)


def _front_matter(fd: int, data: bytes) -> str | None:
    """The front matter of the note open at `fd`, whose first `data` was read already."""
    while b"\n" not in data and len(data) < MAX_FENCE_LINE and (more := os.read(fd, 64)):
        data += more  # the first line alone decides "no front matter"
    first, newline, rest = data.removeprefix(b"\xef\xbb\xbf").partition(b"\n")
    if not newline or _strip_eol(first) != _FENCE:
        return None
    while True:
        # Only whole lines can be the fence (a chunk may end inside `----`), until the end.
        fence = _CLOSING_FENCE.search(rest, 0, rest.rfind(b"\n") + 1)
        if fence is None and len(rest) <= MAX_FRONT_MATTER:
            more = os.read(fd, READ_CHUNK)
            if more:
                rest += more
                continue
            fence = _CLOSING_FENCE.search(rest)
            if fence is None:
                return None  # no closing fence: Obsidian shows no properties either
        if fence is None or fence.start() > MAX_FRONT_MATTER:
            raise ValueError(f"front matter is larger than {MAX_FRONT_MATTER // 1024} KiB")
        return _decode(rest[: fence.start()])


def _strip_eol(line: bytes) -> bytes:
    return line.rstrip(b"\r\n").rstrip(b" \t")


def _decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise NotUtf8Error("not UTF-8") from exc
