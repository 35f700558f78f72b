"""Watching runs in progress for one that is stuck (far longer than its task usually takes):
told once per run, through the task's `notify`, and in the daemon's log."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from vaultsched.adapters import notify
from vaultsched.core.model import Run, Task
from vaultsched.core.stuck import MIN_STUCK, stuck_since
from vaultsched.runtime.workspace import Workspace
from vaultsched.trust.fingerprint import files_reached

log = logging.getLogger("vaultsched.daemon")


@dataclass
class StuckWatch:
    workspace: Workspace
    _when: dict[str, datetime | None] = field(default_factory=dict)  # run id -> stuck from
    _told: set[str] = field(default_factory=set)
    _judged: set[str] = field(default_factory=set)  # its history read: `_when` is final
    next_check: datetime | None = None  # what the last check returned

    def check(self, running: Mapping[str, tuple[Task, Run]], now: datetime) -> datetime | None:
        """Tell of each run in `running` (run id -> task, run) that is stuck by `now`, once;
        the next moment one of the others will be."""
        for run_id in [r for r in self._when if r not in running]:  # ended: forget it
            self._when.pop(run_id)
            self._told.discard(run_id)
            self._judged.discard(run_id)
        upcoming = []
        for run_id, (task, run) in running.items():
            when = self._when.setdefault(run_id, run.started_at + MIN_STUCK)
            if when is not None and when <= now and run_id not in self._judged:
                # No run is stuck before MIN_STUCK: only then is its task's history read (a
                # fold of the ledger), once per run, never at each of many short runs' starts.
                self._judged.add(run_id)
                when = self._when[run_id] = stuck_since(run, self.workspace.ledger.runs_of(task.id))
            if when is None or run_id in self._told:
                continue
            if when > now:
                upcoming.append(when)
                continue
            self._told.add(run_id)
            self._tell(task, run, now)
        self.next_check = min(upcoming, default=None)
        return self.next_check

    def _tell(self, task: Task, run: Run, now: datetime) -> None:
        going = now - run.started_at
        log.warning("%s: run %s is stuck: running for %s", task.id, run.run_id, going)
        vault = self.workspace.vault
        notify.send_stuck(
            vault.config.notify, task, run, going, root=vault.root, reached=files_reached
        )
