"""`approval: required`: a due run waits in the ledger until a person approves or rejects it."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from vaultsched.core.model import Run, Status, Task, Trigger
from vaultsched.runtime.record import Recorder
from vaultsched.trust.store import approve_command


def needs_approval(task: Task, trigger: Trigger) -> bool:
    """Only what the schedule or an upstream task starts waits; a person's own `run-now` or
    `approve` does not."""
    waits = (Trigger.SCHEDULE, Trigger.CATCH_UP, Trigger.AFTER)
    return task.approval == "required" and trigger in waits


@dataclass
class Approvals:
    recorder: Recorder

    def request(
        self, task: Task, trigger: Trigger, scheduled_for: datetime | None, upstream_run: str = ""
    ) -> Run:
        """Record a due run that waits for approval; it replaces an older pending one."""
        pending = self.pending(task.id)
        if pending is not None:
            self._close(task, pending, "replaced by a newer due time")
        message = f"waiting for approval: {approve_command(task.id)} (or reject)"
        status = Status.AWAITING_APPROVAL
        return self.recorder.record(
            task, status, trigger, message, scheduled_for, upstream_run=upstream_run
        )

    def pending(self, task_id: str) -> Run | None:
        runs = [r for r in self.recorder.workspace.ledger.runs() if r.task == task_id]
        return next((r for r in reversed(runs) if r.status is Status.AWAITING_APPROVAL), None)

    def settle(self, task: Task, outcome: str) -> Run | None:
        """Close the pending run as `skipped`, saying how; the run it was, or None."""
        pending = self.pending(task.id)
        if pending is not None:
            self._close(task, pending, outcome)
        return pending

    def _close(self, task: Task, pending: Run, outcome: str) -> None:
        now = self.recorder.workspace.clock()
        closed = replace(pending, status=Status.SKIPPED, finished_at=now, message=outcome)
        self.recorder.finished(task, closed)
