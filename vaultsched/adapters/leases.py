"""Telling whether someone is saving a file in place right now.

Obsidian (like most editors) saves by truncating the note and writing the new text into the same
file. A read that falls between the two sees an empty or partial note, and a rename over the
note in that moment sends the editor's text into a file nobody will ever read again. Linux read
leases say whether any process holds a file open for writing: taking one fails with EAGAIN while
a writer is open. We take the lease and drop it at once; we never hold it.

Where leases are not available (not Linux, a file owned by another user, a file system without
them) the answer is "unknown" and callers fall back to weaker checks.
"""

from __future__ import annotations

import contextlib
import errno
import signal

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

_F_SETLEASE = getattr(fcntl, "F_SETLEASE", None)
_F_SETSIG = getattr(fcntl, "F_SETSIG", None)
# A writer opening the file in the instant we hold the lease makes the kernel signal us; the
# default signal, SIGIO, would kill the process. SIGURG is ignored unless someone handles it.
_BREAK_SIGNAL = getattr(signal, "SIGURG", None)


def writers_open(fd: int) -> bool | None:
    """True if some process holds this file open for writing, False if none, None if unknown.

    `fd` must be open read-only: a read lease needs that, and our own fd must not count.
    """
    if _F_SETLEASE is None or _F_SETSIG is None or _BREAK_SIGNAL is None:
        return None
    try:
        fcntl.fcntl(fd, _F_SETSIG, _BREAK_SIGNAL)
        fcntl.fcntl(fd, _F_SETLEASE, fcntl.F_RDLCK)
    except OSError as exc:
        # EACCES/EPERM: not our file; EINVAL: the file system has no leases (NFS, FUSE).
        return True if exc.errno == errno.EAGAIN else None
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, _F_SETLEASE, fcntl.F_UNLCK)
    return False
