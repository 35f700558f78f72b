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
import stat

_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_NOCTTY
# What open() says when the path is a link (O_NOFOLLOW) or a socket.
_REFUSED = (errno.ELOOP, errno.ENXIO, errno.EMLINK)


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
    try:
        fd = os.open(path, _FLAGS)
    except OSError as exc:
        if exc.errno not in _REFUSED:
            raise
        raise NotRegularFile(kind_of(os.lstat(path).st_mode)) from None
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        os.close(fd)
        raise
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise NotRegularFile(kind_of(mode))
    return fd


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
