"""`group`: tasks naming one group share its `max_parallel` (the config's `[groups.NAME]`, else
one at a time). A run that finds its group full waits for a slot, one per task: a newer fire of
the same task replaces it. No I/O, no threads: dispatch asks and tells."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

from vaultsched.core.model import Task
from vaultsched.runtime.messages import Job


@dataclass
class Groups:
    limits: Mapping[str, int] = field(default_factory=dict)
    running: dict[str, set[str]] = field(default_factory=dict)  # group -> its tasks running
    waiting: dict[str, dict[str, Job]] = field(default_factory=dict)  # group -> task -> run

    def admit(self, job: Job) -> bool:
        """Whether `job` may start now; if not, it waits for a slot."""
        group = job.task.group
        if group is None:
            return True
        if len(self.running.get(group, ())) >= self.limits.get(group, 1):
            self.waiting.setdefault(group, {})[job.task.id] = job
            return False
        self.running.setdefault(group, set()).add(job.task.id)
        return True

    def freed(self, task: Task, busy: Collection[str]) -> Job | None:
        """A run of `task` is over: the oldest run waiting in its group whose task is not
        `busy`, taken out of the wait (to be admitted again)."""
        if task.group is None:
            return None
        self.running.get(task.group, set()).discard(task.id)
        waiting = self.waiting.get(task.group, {})
        ready = next((ident for ident in waiting if ident not in busy), None)
        return None if ready is None else waiting.pop(ready)

    def abandoned(self) -> list[Job]:
        """Every run still waiting (at shutdown), taken out of the wait."""
        jobs = [job for waiting in self.waiting.values() for job in waiting.values()]
        self.waiting.clear()
        return jobs

    def removed(self, task_id: str) -> None:
        for waiting in self.waiting.values():
            waiting.pop(task_id, None)
