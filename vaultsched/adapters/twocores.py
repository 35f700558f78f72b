"""Work on a list of items shared with a forked second process: the cold index of a large vault
is mostly system calls (an open, fstat, read and close per note), and one process does them on
one core.

Both processes take items from one queue (a pipe filled before the fork), so each does as much
as it can: on a busy machine the second may do little, and nothing waits on it but the item it
holds. The second process hands its results back pickled through a pipe, a group of items at a
time as it goes, and exits; this one takes in what has come between its own groups, so that
little is left to unpickle once the queue is empty. Whatever the second fails to hand back whole
(it died, it was killed, its results were cut short or garbled) this process does itself
afterwards: the results are always those of doing every item here, in order.

Only a process with one thread forks (a fork copies no other thread, and any lock another
thread held stays held in the child), and only with two cores or more to run on.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import signal
import struct
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NoReturn, TypeVar

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")

# Each token is a group of items. 1,024 two-byte tokens fill 2 KiB: any pipe takes them at
# once (the least a Linux pipe holds is a page), so the queue is filled before the fork.
MAX_TOKENS = 1024
_TOKEN = struct.Struct("<H")
_LENGTH = struct.Struct("<Q")


def in_order(
    items: Sequence[_Item],
    work: Callable[[_Item], _Result],
    weight: Callable[[_Result], int],
    alone_until: int,
) -> list[_Result]:
    """`[work(item) for item in items]`. Once the results so far weigh `alone_until` (a small
    job never pays for a fork) and two items or more are left, the rest are shared with a
    second process if this one may fork (`may_fork`)."""
    results: list[_Result] = []
    done, asked = 0, False
    for at, item in enumerate(items):
        if not asked and done >= alone_until:
            asked = True  # once: a process that may not fork now will not later
            if len(items) - at >= 2 and may_fork():
                return results + shared(items[at:], work)
        result = work(item)
        results.append(result)
        done += weight(result)
    return results


def may_fork() -> bool:
    """One thread in this process (counted by the kernel: a thread a library started counts
    too) and two cores or more it may run on."""
    if not hasattr(os, "fork") or not hasattr(os, "sched_getaffinity"):
        return False
    try:
        threads = os.listdir("/proc/self/task")  # noqa: PTH208 (a count, no Path per entry)
        return len(os.sched_getaffinity(0)) >= 2 and len(threads) == 1
    except OSError:
        return False


def shared(items: Sequence[_Item], work: Callable[[_Item], _Result]) -> list[_Result]:
    """`[work(item) for item in items]`, the items shared with a forked process."""
    groups = _groups(len(items))
    queue = _queue(len(groups))
    if queue is None:
        return [work(item) for item in items]
    with _no_collection():
        return _forked(items, work, groups, queue)


@contextlib.contextmanager
def _no_collection() -> Iterator[None]:
    """No garbage collection in this process while the second one runs: a collection
    writes to every object it looks at, and each page written is then copied (the two
    processes share their pages until either writes to one); the parent paid a third more
    per note for it. Collected as usual after."""
    import gc

    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _forked(
    items: Sequence[_Item],
    work: Callable[[_Item], _Result],
    groups: list[tuple[int, int]],
    queue: tuple[int, int],
) -> list[_Result]:
    results_r, results_w = os.pipe()
    try:
        pid = os.fork()
    except OSError:  # no process to be had (a limit, no memory): alone, as if never asked
        for fd in (*queue, results_r, results_w):
            os.close(fd)
        return [work(item) for item in items]
    if pid == 0:
        _second(items, groups, work, queue, (results_r, results_w))
    os.close(queue[1])
    os.close(results_w)
    mine: dict[int, _Result] = {}
    theirs = _Received(results_r, groups)
    finished = False
    try:
        for token in _Tokens(queue[0]):
            mine.update((i, work(items[i])) for i in range(*groups[token]))
            theirs.take()  # what the second has handed back meanwhile: nothing waits for it
        theirs.finish()
        finished = True
    finally:
        os.close(queue[0])
        os.close(results_r)
        clean = _reaped(pid, kill=not finished)
    done = mine | (theirs.done if clean and theirs.whole else {})
    return [done[i] if i in done else work(items[i]) for i in range(len(items))]


def _groups(count: int) -> list[tuple[int, int]]:
    """The items as at most MAX_TOKENS ranges of consecutive items, in order."""
    size = -(-count // MAX_TOKENS)
    return [(start, min(start + size, count)) for start in range(0, count, size)]


def _queue(tokens: int) -> tuple[int, int] | None:
    """A pipe holding the tokens 0 .. tokens-1, or None if the pipe would not take them all
    at once (it never blocks: then the work is done alone)."""
    read_end, write_end = os.pipe()
    data = b"".join(_TOKEN.pack(token) for token in range(tokens))
    os.set_blocking(write_end, False)
    try:
        if os.write(write_end, data) == len(data):
            return read_end, write_end
    except BlockingIOError:
        pass
    os.close(read_end)
    os.close(write_end)
    return None


class _Tokens:
    """The tokens taken from the queue, one read each, until it is empty (both write ends are
    closed by then, so an empty queue reads as its end)."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __iter__(self) -> _Tokens:
        return self

    def __next__(self) -> int:
        data = os.read(self.fd, _TOKEN.size)
        if len(data) != _TOKEN.size:  # the end (a short token cannot happen: an end all the same)
            raise StopIteration
        return int(_TOKEN.unpack(data)[0])


def _second(
    items: Sequence[_Item],
    groups: list[tuple[int, int]],
    work: Callable[[_Item], _Result],
    queue: tuple[int, int],
    results: tuple[int, int],
) -> NoReturn:
    """The forked process: its share of the work, its results written whole or not at all
    usable, then out (never back into the caller's code, its `finally` blocks or `atexit`)."""
    code = 70
    try:
        os.close(queue[1])
        os.close(results[0])
        _default_signals()
        import gc

        gc.disable()  # a short life: a collection would only copy the parent's pages
        _roomy(results[1])
        for token in _Tokens(queue[0]):
            done = [work(items[i]) for i in range(*groups[token])]
            data = pickle.dumps((token, done), protocol=pickle.HIGHEST_PROTOCOL)
            _write_all(results[1], _LENGTH.pack(len(data)))
            _write_all(results[1], data)
        code = 0
    finally:
        os._exit(code)


def _roomy(fd: int) -> None:
    """The results pipe made to hold up to 1 MiB (Linux allows that much to anyone by
    default), so that the second process rarely waits for the first to take what it wrote."""
    import fcntl

    with contextlib.suppress(OSError, AttributeError):  # another system, or a lower limit
        fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, 1 << 20)


def _default_signals() -> None:
    """A Ctrl-C or a stop ends the second process at once, and a signal never wakes the
    first one's loop through a wake-up pipe they would share."""
    with contextlib.suppress(ValueError):  # not the main thread: there is none other here
        signal.set_wakeup_fd(-1)
    for number in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(number, signal.SIG_DFL)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class _Received:
    """The second process's results as they come: frames of an 8-byte length and the pickled
    `(token, results of its group)`. `take` unpickles the whole frames that have come without
    waiting; `finish` waits for the rest, until the second process closes the pipe. `whole`
    is False once anything came that is not such a frame (cut short, garbled, a group twice):
    then none of it is used."""

    def __init__(self, fd: int, groups: list[tuple[int, int]]) -> None:
        self.fd, self.groups = fd, groups
        self.done: dict[int, Any] = {}
        self.whole = True
        self._data = bytearray()
        self._tokens: set[int] = set()
        os.set_blocking(fd, False)

    def take(self) -> None:
        while self.whole:
            try:
                chunk = os.read(self.fd, 1 << 20)
            except BlockingIOError:
                break
            if not chunk:
                break
            self._data += chunk
        self._frames()

    def finish(self) -> None:
        os.set_blocking(self.fd, True)
        while chunk := os.read(self.fd, 1 << 20):  # to the end, used or not: the second
            if self.whole:  # process may be waiting to write the rest before it exits
                self._data += chunk
                self._frames()
        if self._data:  # a frame cut short
            self.whole = False

    def _frames(self) -> None:
        data, at = self._data, 0
        while self.whole and len(data) - at >= _LENGTH.size:
            (size,) = _LENGTH.unpack_from(data, at)
            end = at + _LENGTH.size + size
            if len(data) < end:
                break
            self._unpickled(memoryview(data)[at + _LENGTH.size : end])
            at = end
        del data[:at]

    def _unpickled(self, frame: memoryview) -> None:
        try:
            with frame:
                token, results = pickle.loads(frame)
        except Exception:  # cut short or garbled: the work is done here instead
            self.whole = False
            return
        if (
            type(token) is not int
            or not 0 <= token < len(self.groups)
            or token in self._tokens
            or type(results) is not list
            or len(results) != len(range(*self.groups[token]))
        ):
            self.whole = False
            return
        self._tokens.add(token)
        self.done.update(zip(range(*self.groups[token]), results, strict=True))


def _reaped(pid: int, *, kill: bool) -> bool:
    """Wait for the second process (killed first if `kill`); True if it exited cleanly."""
    if kill:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    while True:
        try:
            _, status = os.waitpid(pid, 0)
        except ChildProcessError:  # reaped by someone else: its exit is unknown
            return False
        except InterruptedError:
            continue
        return os.waitstatus_to_exitcode(status) == 0
