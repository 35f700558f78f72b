"""The tasks fired on schedule, ordered by when each next wakes. No I/O.

What is due, and the next wake-up, are found by looking at the tasks that are due first, not at
every task loaded: a heap of (wake time, task). A task's entry is never looked for in the heap:
when the task changes (edited, moved, gone) or its marks move, the entry is only taken for
stale (`touch`) and passed over when it comes up; the task's wake time is worked out again by
whoever keeps the queue (`stale`), and pushed anew (`put`).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from vaultsched.core.model import Task

# Dead entries (their task changed since) kept in the heap, at the most, per live one, before
# the heap is built again from the live ones: a yearly task edited often must not grow it.
_DEAD_PER_LIVE = 2
_DEAD_MIN = 64


@dataclass
class FireQueue:
    tasks: dict[str, Task] = field(default_factory=dict)  # fired on schedule, by id
    stale: set[str] = field(default_factory=set)  # of those, whose wake time is to be put
    _heap: list[tuple[datetime, int, str]] = field(default_factory=list)
    _live: dict[str, tuple[datetime, int]] = field(default_factory=dict)  # id -> its entry
    _order: Iterator[int] = field(default_factory=itertools.count)  # ties: first put, first
    # `soonest`'s answer, kept until a task's wake time is put, touched or untracked: a burst
    # of a thousand runs due together asks it again at each run's end, the queue unchanged.
    _soonest: tuple[timedelta, list[tuple[Task, datetime]]] | None = None

    def track(self, task: Task) -> None:
        """Fire `task` on schedule (again, if it changed): its wake time is to be put."""
        self.tasks[task.id] = task
        self.touch(task.id)

    def untrack(self, task_id: str) -> None:
        """Fire it no more (gone, invalid, disabled, another host's)."""
        self.tasks.pop(task_id, None)
        self.stale.discard(task_id)
        self._live.pop(task_id, None)
        self._soonest = None

    def touch(self, task_id: str) -> None:
        """Its wake time moved (its marks did): to be put again."""
        if task_id in self.tasks:
            self.stale.add(task_id)
            self._live.pop(task_id, None)
            self._soonest = None

    def put(self, task_id: str, at: datetime | None) -> None:
        """A stale task's wake time, worked out (None: it has no next fire time)."""
        self.stale.discard(task_id)
        if at is None or task_id not in self.tasks:
            return
        self._soonest = None
        entry = (at, next(self._order), task_id)
        self._live[task_id] = entry[:2]
        heapq.heappush(self._heap, entry)
        if len(self._heap) > _DEAD_MIN + (1 + _DEAD_PER_LIVE) * len(self._live):
            self._heap = [(at, n, ident) for ident, (at, n) in self._live.items()]
            heapq.heapify(self._heap)

    def due(self, horizon: datetime) -> list[tuple[Task, datetime]]:
        """The tasks that wake at or before `horizon`, with their wake times, soonest first:
        taken out, stale (their wake time is put again once they were decided)."""
        found = []
        while self._heap and self._heap[0][0] <= horizon:
            at, n, ident = heapq.heappop(self._heap)
            if self._live.get(ident) == (at, n):
                found.append((self.tasks[ident], at))
                self.touch(ident)
        return found

    def soonest(self, within: timedelta) -> list[tuple[Task, datetime]]:
        """The task that wakes first, and every other that wakes within `within` after it,
        with their wake times, soonest first (ties: first put, first)."""
        if self._soonest is None or self._soonest[0] != within:
            self._soonest = (within, self._walk(within))
        return self._soonest[1]

    def _walk(self, within: timedelta) -> list[tuple[Task, datetime]]:
        """`soonest`, by a walk of the heap's top, not of every task."""
        heap, live = self._heap, self._live
        while heap and live.get(heap[0][2]) != heap[0][:2]:
            heapq.heappop(heap)  # dead
        if not heap:
            return []
        bound = heap[0][0] + within
        found, todo = [], [0]
        while todo:
            i = todo.pop()
            if i >= len(heap) or heap[i][0] > bound:
                continue  # nor any below it: the heap's order
            at, n, ident = heap[i]
            if live.get(ident) == (at, n):
                found.append((at, n, ident))
            todo += (2 * i + 1, 2 * i + 2)
        return [(self.tasks[ident], at) for at, _, ident in sorted(found)]
