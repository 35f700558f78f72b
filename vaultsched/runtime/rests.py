"""The rest of ended runs, put off while other runs wait for a worker.

In a burst (more runs due at once than `max_parallel`) one core is the interpreter's and it is
full: every millisecond a worker spends on a run that has ended is one the runs still waiting
start later. So once a run's process has ended and what the next run needs is in place (its
output kept, its task's slot let go), the rest of it (its `if_changed` inputs marked, its finish
record, its landing and end ping, its old logs pruned) may wait here until a worker is free
with no run waiting; the run is reported to dispatch at once, with its status.

What is kept here is bounded: a task's rest is done before its next run in this process, and
a thread of this object's starts each rest `keep_for` after it was kept if no worker did it
first (so a burst of long runs never keeps a record for hours). A run that starts `after`
tasks is never kept (its chain is read from its finish record after a crash). Meanwhile the
ledger shows the run as still running: so does `vaultsched status`, and a `run-now` of the task
in another process then sees the success before it as the last. A SIGKILL loses the status of
the runs kept at that moment (the next start reads them as interrupted; their logs and
outputs stay, and `if_changed` runs them again). A stop, or a daemon failing, does every one of
them first (`close`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

KEEP_FOR = 2.0  # s a rest waits at most


class Rests:
    """The kept rests, by task id, oldest first; thread-safe."""

    def __init__(
        self, keep_for: float = KEEP_FOR, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._keep_for = keep_for
        self._clock = clock
        self._kept: dict[str, tuple[float, Callable[[], None]]] = {}  # task -> (since, rest)
        self._doing: set[str] = set()  # tasks whose rest a thread is doing now
        self._closed = False  # nothing is kept any more: see `close`
        lock = threading.Lock()
        self._changed = threading.Condition(lock)  # a rest done: for `finish`
        self._first = threading.Condition(lock)  # a rest kept where none was: for the watch
        self._thread: threading.Thread | None = None

    @property
    def pending(self) -> bool:
        """Some rest is kept or being done: its run is not recorded yet."""
        with self._changed:
            return bool(self._kept or self._doing)

    def keep(self, task_id: str, rest: Callable[[], None]) -> None:
        """Keep `rest`, the end of the task's run; its next run here does it first (one
        kept already, which its run's slot should have made impossible, is done now)."""
        self.finish(task_id)
        with self._changed:
            if self._closed:  # done at once, below
                self._doing.add(task_id)
            else:
                self._kept[task_id] = (self._clock(), rest)
                if len(self._kept) == 1:  # not at each run of a burst: the watch waits for one
                    self._first.notify()
                self._watching()
                return
        self._do(task_id, rest)

    def close(self) -> None:
        """Do every kept rest and wait for those being done; from now on none is kept (a
        run still going, as the daemon stops or fails, is recorded as it ends)."""
        with self._changed:
            self._closed = True
        self.drain()
        with self._changed:
            self._changed.wait_for(lambda: not self._doing)

    def _watching(self) -> None:
        """The watch started, once: the first rest kept starts it (under the lock)."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._watch, name="vaultsched-rests", daemon=True
            )
            self._thread.start()

    def finish(self, task_id: str) -> None:
        """Do the task's kept rest now, or wait for the thread doing it."""
        with self._changed:
            self._changed.wait_for(lambda: task_id not in self._doing)
            kept = self._kept.pop(task_id, None)
            if kept is None:
                return
            self._doing.add(task_id)
        self._do(task_id, kept[1])

    def drain(self, *, overdue_only: bool = False) -> None:
        """Do every kept rest, oldest first (`overdue_only`: those kept `keep_for`); one that
        another thread is doing is left to it (`close` waits for those too)."""
        while (task_id := self._oldest(overdue_only)) is not None:
            self.finish(task_id)

    def _oldest(self, overdue_only: bool) -> str | None:
        """The task whose rest was kept first (`overdue_only`: once it has waited `keep_for`)."""
        with self._changed:
            if not self._kept:
                return None
            task_id, (since, _) = next(iter(self._kept.items()))
            if overdue_only and self._clock() - since < self._keep_for:
                return None
            return task_id

    def _do(self, task_id: str, rest: Callable[[], None]) -> None:
        try:
            rest()
        except Exception:  # a bug in vaultsched: said, never lost silently nor wedging the task
            log.exception("%s: recording an ended run failed inside vaultsched", task_id)
        finally:
            with self._changed:
                self._doing.discard(task_id)
                self._changed.notify_all()

    def _watch(self) -> None:
        """Do each rest once it has waited `keep_for`; asleep while none is kept."""
        while True:
            with self._first:
                self._first.wait_for(lambda: self._kept)
                since = next(iter(self._kept.values()))[0]
                left = since + self._keep_for - self._clock()
                if left > 0:
                    self._first.wait(left)
            self.drain(overdue_only=True)
