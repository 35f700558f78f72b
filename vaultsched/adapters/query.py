"""`list` answered by the vault's running daemon over a Unix socket, instead of a walk.

A warm `list` stats every note, since a note edited in place changes no folder: a second for
100,000 notes. The daemon watches the vault and holds its index already, so `list` asks it
first, as `systemctl` asks systemd:

- the socket is never in the vault (a sync tool can write any file there, ignored or not):
  it is `$XDG_RUNTIME_DIR/vaultsched/<key>.sock`, else `vaultsched-<uid>/` in the temp folder,
  the key made from the vault's real path; a folder not this user's alone (mode 0700), or a
  socket not this user's, is never used; the socket is made 0600;
- each side checks that the other runs as this user (`SO_PEERCRED`);
- the question is read-only and small; the daemon answers only from an index that holds every
  file event its watch has seen (`VaultWatcher.settled`, `Handoff`), else says it is busy;
- the asking side checks that the answer was made for its own vault, config, host and trust
  store (`context`), and is made of what it expects; anything else (no daemon, a stale
  socket, a refusal, a timeout, a busy daemon, an answer it cannot use) means the walk,
  silently. Nothing in an answer is ever run, evaluated or unpickled: it is JSON, checked.

The socket and JSON modules are imported only once a socket is there to ask.
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import threading
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

log = logging.getLogger(__name__)

# A daemon takes the question at once (ACCEPTED), then works on the answer as long as the walk
# would on the same rows (its ledger and trust reads are `list`'s own): a stopped or wedged
# daemon costs `list` one short wait, a busy one no more than the walk it spares.
ACCEPT_TIMEOUT = 1.0  # seconds to connect, send the question and hear ACCEPTED
ANSWER_TIMEOUT = 30.0  # seconds from ACCEPTED to the whole answer: past it, the walk
ACCEPTED = b"+"
SETTLE_TIMEOUT = 0.5  # seconds the daemon waits for its watch to hand on what it has seen
QUESTION_CAP = 64 * 1024
ANSWER_CAP = 256 * 1024 * 1024
_CHUNK = 1 << 20

T = TypeVar("T")


def socket_folder() -> Path:
    """Where this user's daemons put their sockets: never inside a vault."""
    runtime = Path(os.environ.get("XDG_RUNTIME_DIR") or "relative")
    if runtime.is_absolute():
        return runtime / "vaultsched"
    temp = Path(os.environ.get("TMPDIR") or "relative")
    return (temp if temp.is_absolute() else Path("/tmp")) / f"vaultsched-{os.getuid()}"


def socket_path(root: str) -> Path:
    """The socket of the daemon of the vault whose real path is `root`."""
    raw = os.fsencode(root)
    return socket_folder() / f"{zlib.crc32(raw):08x}{zlib.adler32(raw):08x}.sock"


def _private_folder(path: Path) -> bool:
    """A folder (not a link to one) of this user's that no one else may enter or write."""
    try:
        found = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(found.st_mode) and found.st_uid == os.getuid() and not found.st_mode & 0o077


def _peer_uid(sock: Any) -> int:
    import socket
    import struct

    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return int(struct.unpack("3i", creds)[1])


# --- The asking side -------------------------------------------------------------------


def daemon_socket(root: str) -> Path | None:
    """The socket of the daemon of the vault whose real path is `root`, if there is one to
    ask: a socket of this user's, in a folder of this user's alone. Never raises."""
    path = socket_path(root)
    try:
        found = os.lstat(path)
    except (OSError, ValueError):
        return None  # no daemon: by far the most common case, and the cheapest
    if not stat.S_ISSOCK(found.st_mode) or found.st_uid != os.getuid():
        return None
    return path if _private_folder(path.parent) else None


def ask(path: Path, question: dict[str, object]) -> object:
    """The answer (a JSON value) of the daemon listening at `path` to `question`, or None if
    there is none to use. Never raises: whatever happens, the caller walks the vault."""
    try:
        return _ask(path, question)
    except Exception as exc:  # a hostile or broken peer is a slower `list`, never a failure
        log.debug("no answer from the daemon: %r", exc)
        return None


def _ask(path: Path, question: dict[str, object]) -> object:
    import json
    import socket
    import time

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(ACCEPT_TIMEOUT)
        sock.connect(str(path))
        if _peer_uid(sock) != os.getuid():
            return None
        sock.sendall(json.dumps(question).encode() + b"\n")
        sock.shutdown(socket.SHUT_WR)
        if sock.recv(1) != ACCEPTED:
            return None
        data = _read_all(sock, ANSWER_CAP, time.monotonic() + ANSWER_TIMEOUT)
    return None if data is None else json.loads(data)


def _read_all(sock: Any, cap: int, deadline: float) -> bytes | None:
    """Everything the peer sends until it closes; None past `cap` bytes or the deadline."""
    import time

    parts: list[bytes] = []
    size = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        sock.settimeout(left)
        part = sock.recv(_CHUNK)
        if not part:
            return b"".join(parts)
        size += len(part)
        if size > cap:
            return None
        parts.append(part)


# --- The daemon's side -----------------------------------------------------------------


class Handoff(Generic[T]):
    """A value the daemon's loop hands to the thread that asked for it: the loop alone may
    read the index it changes, so the server thread asks, wakes the loop, and waits."""

    def __init__(self, wake: Callable[[], None]) -> None:
        self._wake = wake
        self._lock = threading.Lock()
        self._given = threading.Event()
        self._wanted = False
        self._value: T | None = None

    @property
    def wanted(self) -> bool:
        return self._wanted

    def ask(self, timeout: float) -> T | None:
        """What the loop gives within `timeout` seconds, or None. The loop is nudged again
        every 20 ms meanwhile: the event it waits for may never wake it by itself (one the
        watcher drops)."""
        with self._lock:
            self._given.clear()
            self._value = None
            self._wanted = True
        waited = 0.0
        try:
            while waited < timeout:
                self._wake()
                if self._given.wait(0.02):
                    break
                waited += 0.02
        finally:
            with self._lock:
                self._wanted = False
                value, self._value = self._value, None
        return value

    def give(self, value: T | None) -> None:
        """From the loop: `value` for the asking thread, unless it is None (not yet)."""
        if value is None:
            return
        with self._lock:
            if self._wanted:
                self._value = value
                self._given.set()


class IndexService(Generic[T]):
    """The daemon's side, whole: its socket, and the handoff of an index from its loop.
    `answer` turns a settled index and a question into the answer; the loop calls `offer`
    each time round, with what gives that index (None while it is not settled)."""

    def __init__(
        self, root: str, answer: Callable[[T, dict[str, object]], object], wake: Callable[[], None]
    ) -> None:
        self._answer = answer
        self._handoff: Handoff[T] = Handoff(wake)
        self.server = QueryServer(root, self._reply)

    def start(self) -> bool:
        return self.server.start()

    def close(self) -> None:
        self.server.close()

    def offer(self, settled: Callable[[], T | None]) -> None:
        """From the loop: hand over the index if a question waits for it and it is settled."""
        if self._handoff.wanted:
            self._handoff.give(settled())

    def _reply(self, question: dict[str, object]) -> object:
        index = self._handoff.ask(SETTLE_TIMEOUT)
        if index is None:
            return {"busy": "the index is being brought up to date"}
        return self._answer(index, question)


class QueryServer:
    """The daemon's socket: one connection at a time, each a question and an answer, from
    this user only. `answer` turns a question (a JSON object) into a JSON value."""

    def __init__(self, root: str, answer: Callable[[dict[str, object]], object]) -> None:
        self.root = root
        self.path = socket_path(root)
        self.answer = answer
        self.served = 0  # answers sent (the tests check that `list` went through here)
        self._sock: Any = None
        self._inode: int | None = None
        self._stop_r, self._stop_w = -1, -1
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Listen; False (and said in the log) when this daemon cannot: `list` then walks."""
        try:
            self._listen()
        except OSError as exc:
            log.warning("list will read the vault itself: no socket at %s (%s)", self.path, exc)
            self.close()
            return False
        self._stop_r, self._stop_w = os.pipe()
        self._thread = threading.Thread(target=self._serve, name="vaultsched-query", daemon=True)
        self._thread.start()
        return True

    def _listen(self) -> None:
        import socket

        folder = self.path.parent
        with contextlib.suppress(FileExistsError):
            folder.mkdir(0o700)
        if not _private_folder(folder):
            raise OSError(f"{folder} is not a folder of this user's alone (mode 0700)")
        _clear_stale(self.path)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock = sock
        sock.bind(str(self.path))  # in a 0700 folder: no one reaches it before the chmod
        self.path.chmod(0o600)
        self._inode = os.lstat(self.path).st_ino
        sock.listen(8)

    def close(self) -> None:
        """Stop answering and remove the socket (if it is still this daemon's)."""
        if self._stop_w >= 0:
            os.write(self._stop_w, b"!")
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        for fd in (self._stop_r, self._stop_w):
            if fd >= 0:
                os.close(fd)
        self._stop_r, self._stop_w = -1, -1
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        with contextlib.suppress(OSError):
            if self._inode is not None and os.lstat(self.path).st_ino == self._inode:
                self.path.unlink()
        self._inode = None

    def _serve(self) -> None:
        import select

        poller = select.poll()
        poller.register(self._sock.fileno(), select.POLLIN)
        poller.register(self._stop_r, select.POLLIN)
        while True:
            ready = {fd for fd, _ in poller.poll()}  # no timeout: idle costs no wake-up
            if self._stop_r in ready:
                return
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            with conn:
                try:
                    self._handle(conn)
                except Exception as exc:  # one bad exchange never stops the server
                    log.debug("list query failed: %r", exc)

    def _handle(self, conn: Any) -> None:
        import json
        import time

        if _peer_uid(conn) != os.getuid():
            return
        data = _read_all(conn, QUESTION_CAP, time.monotonic() + 1.0)
        question = json.loads(data) if data else None
        if not isinstance(question, dict):
            return
        conn.settimeout(ANSWER_TIMEOUT)
        conn.sendall(ACCEPTED)
        # ASCII: a name that is not UTF-8 (a surrogate escape) crosses as `\\udcXX`, intact.
        reply = json.dumps(self.answer(question)).encode()
        conn.sendall(reply)
        self.served += 1


def _clear_stale(path: Path) -> None:
    """Remove a socket no daemon listens on any more (one that died); refuse to take one a
    live daemon still answers on."""
    import socket

    try:
        found = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(found.st_mode):
        raise OSError(f"{path} is there and is not a socket")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            path.unlink()
            return
    raise OSError(f"another daemon answers on {path}")
