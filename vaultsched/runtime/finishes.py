"""A run's finish record, written once no run waits for a worker.

In a burst (more runs due at once than `max_parallel`), each run's finish record and its
hand-over to landing took the interpreter from the runs still waiting to start: about an eighth
of a run's CPU, spent before the next run could begin. While runs wait, a finished run's record
is kept here instead, and written, in the order the runs ended, as soon as none waits (by a
thread of its own, started by the worker that empties the queue), before the next run of the
same task starts (its last success must count it), and at shutdown.

What waits is bounded (`OWED_MAX` runs, `OWED_BYTES` of their output). The run itself is over
by then: its status is reported to the dispatcher at once, its slot freed, its log and output
kept. A daemon killed meanwhile leaves those runs with their start record alone, so they read
as interrupted, as a run cut short by the kill would.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable

from vaultsched.core.model import Run, Task

log = logging.getLogger(__name__)

OWED_MAX = 2_000
OWED_BYTES = 16 * 1024 * 1024

Write = Callable[[Task, Run, "str | None"], None]
_Owed = tuple[Task, Run, "str | None"]


class Finishes:
    def __init__(self, write: Write) -> None:
        self._write = write
        self.hold: Callable[[], bool] = lambda: False  # whether runs wait for a worker now
        self._owed: list[_Owed] = []  # in the order the runs ended
        # The ids of the tasks of the runs kept or being written: a task's next run waits
        # for them to be written.
        self._tasks: Counter[str] = Counter()
        self._bytes = 0
        self._changed = threading.Condition()

    def put(self, task: Task, run: Run, stdout: str | None) -> None:
        """`run`'s finish record: written now, or kept while runs wait for a worker."""
        size = len(stdout or "")
        with self._changed:
            owe = self.hold() and len(self._owed) < OWED_MAX and self._bytes + size <= OWED_BYTES
            if owe:
                self._owed.append((task, run, stdout))
                self._tasks[task.id] += 1
                self._bytes += size
        if not owe:
            self._write(task, run, stdout)

    def settle(self, task_id: str | None = None) -> None:
        """Write what is kept: every run's, or (asked before each run: at once if there is
        none) the runs of `task_id`, waiting for those another thread is writing."""
        while task_id is None or task_id in self._tasks:
            with self._changed:
                mine = [item for item in self._owed if task_id in (None, item[0].id)]
                if not mine and task_id is None:
                    return
                if not mine:  # being written by another thread
                    self._changed.wait(0.1)
                    continue
                self._owed = [item for item in self._owed if task_id not in (None, item[0].id)]
                self._bytes -= sum(len(stdout or "") for _, _, stdout in mine)
            try:
                for task, run, stdout in mine:
                    try:
                        self._write(task, run, stdout)
                    except Exception:  # a bug must not lose the other runs' records
                        log.exception("%s: finish record of run %s failed", task.id, run.run_id)
            finally:  # whatever happened, no task's next run waits for these for ever
                with self._changed:
                    self._tasks -= Counter(item[0].id for item in mine)
                    self._changed.notify_all()

    def __len__(self) -> int:
        """The runs whose records are kept or being written."""
        return self._tasks.total()
