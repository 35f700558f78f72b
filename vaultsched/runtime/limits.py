"""`until` and `max_runs`: when a task is done by itself. No I/O: dispatch asks, and turns the
answer into the task disabling itself (`enabled: false` in its note)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from vaultsched.core.model import FAILURES, Run, Status, Task

# The runs `max_runs` counts: those that ran the command (a skip, a refusal, a block or a missed
# fire time did not).
COUNTED = FAILURES | {Status.SUCCESS}


@dataclass
class Limits:
    counted: dict[str, int] = field(default_factory=dict)  # runs toward each task's max_runs
    expired: set[str] = field(default_factory=set)  # told to disable themselves already

    def over(self, task: Task, when: datetime | None) -> str:
        """Why `task` may start no more runs ("" if it may): a fire (`when`) past `until`, or
        `max_runs` spent."""
        if task.until is not None and when is not None and when > task.until:
            return f"until {task.until.isoformat()} has passed"
        if task.max_runs is not None and self.counted.get(task.id, 0) >= task.max_runs:
            return f"max_runs {task.max_runs} reached"
        return ""

    def count(self, task: Task, run: Run) -> str:
        """Count a run that ran; why the task is now done, if this was its last ("" if not)."""
        if run.status not in COUNTED:
            return ""
        self.counted[task.id] = self.counted.get(task.id, 0) + 1
        return "" if task.max_runs is None else self.over(task, None)

    def expire(self, task: Task) -> bool:
        """True the first time a done task is to disable itself, False after."""
        if task.id in self.expired:
            return False
        self.expired.add(task.id)
        return True
