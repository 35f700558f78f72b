"""Dispatch on the daemon's main loop: the `Dispatcher` told what happened (the index changed,
time passed, a job finished), what it decides carried out by the `Actor`, and the planner's
marks saved whenever they move. The daemon says when; the dispatcher decides."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

from vaultsched.adapters.vault import Index
from vaultsched.core.model import Task
from vaultsched.runtime.act import Actor
from vaultsched.runtime.dispatch import Dispatcher, schedulable
from vaultsched.runtime.execute import Reports
from vaultsched.runtime.follow import Follower
from vaultsched.runtime.marks import MarksFile
from vaultsched.runtime.messages import IndexDelta, Job
from vaultsched.runtime.restart import restored_dispatcher, unfinished_chains
from vaultsched.runtime.workspace import Workspace
from vaultsched.trust.store import fingerprint

log = logging.getLogger("vaultsched.daemon")


@dataclass(frozen=True)
class _Wake:
    """The next fire time (or retry, then) of `tasks`, worked out from the planner's marks."""

    at: datetime | None
    tasks: dict[str, Task]


@dataclass
class Conductor:
    workspace: Workspace
    follower: Follower
    actor: Actor
    reports: Reports
    dry_run: bool = (
        False  # it only reads: no ledger line, no marks (the vault's daemon keeps its own)
    )
    dispatcher: Dispatcher = field(default_factory=Dispatcher)
    marks: MarksFile = field(init=False)
    _wake: _Wake | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.marks = MarksFile(self.workspace.vault.root)

    def restore(self, index: Index) -> None:
        """Dispatch as the last daemon left it (still stopping if a signal came first)."""
        before = self.dispatcher
        self.dispatcher = restored_dispatcher(self.workspace, index, self.workspace.clock())
        self.dispatcher.stopping = self.dispatcher.stopping or before.stopping
        self._wake = None

    def resume_chains(self) -> None:
        """The `after` tasks the last daemon did not get to start."""
        chains = unfinished_chains(self.workspace)
        tasks = self.follower.index.tasks
        self.actor.carry_out(self.dispatcher.chained(chains, tasks, self.untrusted))

    def index_changed(self, delta: IndexDelta) -> None:
        now = self.workspace.clock()
        for old, new in delta.moved:
            self.dispatcher.renamed(old, new)
            if not self.dry_run:
                self.workspace.ledger.append_rename(old, new, now)
            log.info("%s: renamed to %s", old, new)
        for ident in (*delta.added, *delta.retimed):
            self.dispatcher.retimed(ident, now)
            log.info("%s: %s", ident, "new task" if ident in delta.added else "schedule updated")
        for ident in delta.removed:
            self.dispatcher.removed(ident)
            log.info("%s: task removed", ident)
        if delta.moved or delta.added or delta.retimed or delta.removed:
            self._wake = None  # the planner's marks moved
        self.save_marks(now)

    def fire(self, now: datetime) -> None:
        """What is due `now`: fire times, then retries. The tasks are looked at only once the
        next fire time has come (or they changed): the loop comes round at every job done, and
        asking each of a thousand tasks each time was most of a burst's work on this thread."""
        decided = self.dispatcher.decisions
        wake = self._known_wake()
        if wake is None or (wake.at is not None and wake.at <= now):
            self._wake = None  # what `due` decides moves the marks
            self.actor.carry_out(self.dispatcher.due(self.schedulable(), now, self.untrusted))
        # After `due`'s actions: a task just found invalid is out of the index, its retry too.
        self.actor.carry_out(self.dispatcher.retries_due(self.follower.index.tasks, now))
        if self.dispatcher.decisions != decided:
            self.save_marks(now)

    def collect(self) -> None:
        """The jobs the executor reported done since the last call."""
        for job, run in self.reports.take():
            if run is not None:
                self.actor.announce(run)
            tasks, now = self.follower.index.tasks, self.workspace.clock()
            self.actor.carry_out(self.dispatcher.done(job, run, now, tasks, self.untrusted))
            self._ended(job.task.id)

    def _ended(self, task_id: str) -> None:
        """A run of `task_id` is over: its next fire, kept as not to be decided ahead while
        the run went on, may be now (see dispatch's LEAD); the other tasks' times stand."""
        wake, at = self._wake, self.dispatcher.woken_for(task_id)
        if wake is not None and at is not None and (wake.at is None or at < wake.at):
            self._wake = replace(wake, at=at)

    def wake_time(self) -> datetime | None:
        """The next fire time or retry (a task found unplannable meanwhile is invalid)."""
        wake = self._known_wake()
        if wake is None:
            at, invalid = self.dispatcher.wake_time(self.schedulable())
            self.actor.carry_out(invalid)  # out of the index, and so out of the tasks kept
            wake = self._wake = _Wake(at, dict(self.follower.index.tasks))
        retries = self.dispatcher.retries
        return min((t for t in (wake.at, retries[0].at if retries else None) if t), default=None)

    def _known_wake(self) -> _Wake | None:
        """The next fire time as last worked out, while it holds: the same tasks (by value),
        and no mark moved since (`fire`, `index_changed` and `restore` forget it)."""
        wake = self._wake
        return wake if wake is not None and wake.tasks == self.follower.index.tasks else None

    def adopt(self, jobs: Iterable[Job]) -> None:
        """Runs taken over from an earlier daemon (in the worker pool): running, as if
        submitted here, so no fire starts a second one beside them."""
        self.dispatcher.running.update(job.task.id for job in jobs)

    def let_go(self, jobs: Iterable[Job]) -> None:
        """Runs no longer waited for (they go on in the pool; the next daemon collects them)."""
        for job in jobs:
            self.dispatcher.running.discard(job.task.id)

    def stop(self) -> None:
        self.dispatcher.stopping = True

    def abandon(self) -> None:
        """Stop firing; the runs waiting for a group slot are recorded, never dropped unseen."""
        self.stop()
        self.actor.carry_out(self.dispatcher.abandoned())

    @property
    def running(self) -> bool:
        return bool(self.dispatcher.running)

    def save_marks(self, now: datetime) -> None:
        if not self.dry_run:
            self.marks.save(self.dispatcher.planner, now)

    def schedulable(self) -> list[Task]:
        return schedulable(self.follower.index.tasks.values(), self.workspace.vault.firing_host)

    def untrusted(self, task: Task) -> str | None:
        root, trust = self.workspace.vault.root, self.workspace.trust
        return None if trust.is_trusted(root, task) else fingerprint(root, task)
