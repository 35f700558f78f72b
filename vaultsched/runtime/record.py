"""The ledger's records of a run, whoever executed it, and handing the run to landing.

Order matters for crash safety: the start record is durable before the process exists and the
finish record before any view is touched (written at once, made durable by landing's `sync`
before it shows the run: the worker does not wait for the disk), so a crash at any point leaves
something the next start can repair (a start without a finish is an interrupted run).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from vaultsched.adapters import statefs
from vaultsched.adapters.ledger import finish_record, new_run_id, start_record
from vaultsched.core.model import Run, Status, Task, Trigger
from vaultsched.runtime.land import Landed
from vaultsched.runtime.pings import NoPings, RunPings
from vaultsched.runtime.workspace import Workspace

INTERRUPTED_MESSAGE = "vaultsched stopped during the run"


@dataclass
class Recorder:
    workspace: Workspace
    land: Callable[[Landed], None]
    # Told of each run as its start and its finish are recorded (pings to healthchecks & co).
    pings: RunPings = field(default_factory=NoPings)

    def started(
        self, task: Task, run: Run, write: Callable[[dict[str, Any]], object] | None = None
    ) -> None:
        """Durable before the process starts; raises OSError (the run must not start).
        `write`: how the start record is made durable, if not appended on its own."""
        (write or self.workspace.ledger.append)(start_record(run, task.path))
        self.pings.started(task, run)

    def finished(self, task: Task, run: Run, *, stdout: str | None = None) -> None:
        """Append a run's finish record and land it; a ledger that cannot be written (a
        symlink, a full disk) is logged, and nothing is shown that the ledger does not hold.

        `stdout`: the run's output made fit for a note (redacted, plain, capped), for the
        note `run.output_note` names; None when there is none to write."""
        try:
            record = finish_record(run, task.path)
            ledger_file = self.workspace.ledger.append_all([record], durable=False)
        except OSError as exc:
            statefs.warn_refused(exc, f"{task.id}: {run.status} run not recorded")
            return
        self.pings.finished(task, run)
        self.land(Landed(task, run, ledger_file, stdout))

    def record(
        self,
        task: Task,
        status: Status,
        trigger: Trigger,
        message: str = "",
        scheduled_for: datetime | None = None,
        *,
        upstream_run: str = "",
    ) -> Run:
        """Record a run that never started (skipped, untrusted, awaiting approval)."""
        now = self.workspace.clock()
        run = Run(
            run_id=new_run_id(now),
            task=task.id,
            status=status,
            trigger=trigger,
            started_at=now,
            finished_at=now,
            host=self.workspace.vault.host,
            scheduled_for=scheduled_for,
            duration_s=0.0,
            message=message,
            upstream_run=upstream_run,
        )
        self.finished(task, run)
        return run

    def interrupted(self, task: Task, run: Run) -> None:
        """Close a run whose process outlived the vaultsched that started it."""
        self.closed(task, run, Status.INTERRUPTED, INTERRUPTED_MESSAGE)

    def closed(self, task: Task, run: Run, status: Status, message: str) -> Run:
        """Close, now, a run that started (or was dispatched) and will not end on its own
        word: its finish record, landed. The run as closed."""
        closed = replace(run, status=status, finished_at=self.workspace.clock(), message=message)
        self.finished(task, closed)
        return closed
