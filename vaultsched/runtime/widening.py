"""A list of items worked through by a few threads, and by more once the work is slow.

Landing writes a burst's task notes at once. On a disk whose fsync returns at once, every
thread past two only adds hand-overs of the interpreter (1,000 notes alone: 1.3 s on a pool of
2 threads, 1.8 s on 8; 1.0 s with this loop on 2); where an fsync takes milliseconds, a file
system answers slowly (FUSE, a network share) or a note waits for a person to stop typing in
it, more threads are what keeps the rest from queueing behind it. So the work starts on
`narrow` threads and widens to `wide` for the rest of the list once the caller's `slow()` says
so (landing asks how long the disk's fsyncs take), the items done take `SLOW_ITEM` on average
(`JUDGED_AFTER` of them at least: a thread's first item pays for what is set up once), or one
has been under way `STUCK`. The caller looks every `LOOK_EVERY` seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

_Item = TypeVar("_Item")
_Result = TypeVar("_Result")

LOOK_EVERY = 0.1  # s: how often the caller looks at how the work goes
JUDGED_AFTER = 4  # items done before their average time says the work is slow
SLOW_ITEM = 0.02  # s an item on average (a note: 1-5 ms here, waiting for the interpreter)
STUCK = 0.2  # s: an item under way this long widens the work, whatever the average


def map_widening(
    work: Callable[[_Item], _Result],
    items: Sequence[_Item],
    *,
    narrow: int,
    wide: int,
    slow: Callable[[], bool],
    name: str,
) -> list[_Result]:
    """`[work(item) for item in items]`, on `narrow` threads, `wide` once the work is slow.
    Raises what `work` raised (the first to be raised), once every thread is done; if the
    caller itself is interrupted, no item is begun after it and the threads are waited for."""
    if not items:
        return []
    batch = _Batch(work, items, name)
    try:
        batch.add(min(narrow, len(items)))
        with batch.changed:
            while batch.done < len(items) and any(t.is_alive() for t in batch.threads):
                batch.changed.wait(LOOK_EVERY)
                if not batch.widened and batch.next < len(items) and (batch.slow() or slow()):
                    batch.widened = True
                    batch.add(min(wide, len(items)) - len(batch.threads))
    finally:
        with batch.changed:
            batch.next = len(items)  # an interrupted caller: nothing more is begun
        for thread in batch.threads:
            thread.join()
    if batch.error is not None:
        raise batch.error
    if batch.done < len(items):
        raise RuntimeError("a worker thread ended with items left")  # never, by design
    return batch.results  # type: ignore[return-value]  # each one set


@dataclass
class _Batch(Generic[_Item, _Result]):
    work: Callable[[_Item], _Result]
    items: Sequence[_Item]
    name: str
    changed: threading.Condition = field(default_factory=threading.Condition)
    results: list[_Result | None] = field(init=False)
    threads: list[threading.Thread] = field(default_factory=list)
    next: int = 0
    done: int = 0
    took: float = 0.0  # the items done, in all
    under_way: dict[int, float] = field(default_factory=dict)  # item -> when it began
    widened: bool = False
    error: BaseException | None = None

    def __post_init__(self) -> None:
        self.results = [None] * len(self.items)

    def add(self, count: int) -> None:
        """Start `count` more threads (not daemons: a note is never cut off mid-write by the
        interpreter's exit); as many as can be, if the system refuses one."""
        for _ in range(max(count, 0)):
            thread = threading.Thread(target=self._loop, name=f"{self.name}_{len(self.threads)}")
            try:
                thread.start()
            except RuntimeError:  # no more threads to be had: those running go on
                if self.threads:
                    return
                raise
            self.threads.append(thread)

    def slow(self) -> bool:
        """(Lock held.) Whether the items take `SLOW_ITEM` on average, or one is stuck."""
        if self.done >= JUDGED_AFTER and self.took >= SLOW_ITEM * self.done:
            return True
        since = time.monotonic() - STUCK
        return any(began < since for began in self.under_way.values())

    def _loop(self) -> None:
        while (index := self._take()) is not None:
            result: _Result | None = None
            try:
                result = self.work(self.items[index])
            except BaseException as exc:  # raised by the caller, once all are done
                with self.changed:
                    if self.error is None:
                        self.error = exc
            finally:
                self._ended(index, result)

    def _take(self) -> int | None:
        with self.changed:
            if self.next >= len(self.items):
                return None
            index, self.next = self.next, self.next + 1
            self.under_way[index] = time.monotonic()
            return index

    def _ended(self, index: int, result: _Result | None) -> None:
        with self.changed:
            self.took += time.monotonic() - self.under_way.pop(index)
            self.results[index] = result
            self.done += 1
            if self.done == len(self.items):
                self.changed.notify_all()
