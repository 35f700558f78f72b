"""Dispatch on the daemon's main loop: the `Dispatcher` told what happened (the index changed,
time passed, a job finished), what it decides carried out by the `Actor`, and the planner's
marks saved whenever they move. The daemon says when; the dispatcher decides.

The dispatcher is told of each task that changed, as it changes (`_follow`), and keeps the
tasks it fires by wake time: a due second, a job done or a file event costs the tasks due or
changed, not the tasks loaded."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from vaultsched.adapters.vault import Index
from vaultsched.core.model import Task
from vaultsched.runtime.act import Actor
from vaultsched.runtime.dispatch import Dispatcher, fired_here, schedulable
from vaultsched.runtime.execute import Reports
from vaultsched.runtime.follow import Follower
from vaultsched.runtime.marks import MarksFile
from vaultsched.runtime.messages import IndexDelta, Job
from vaultsched.runtime.restart import restored_dispatcher, unfinished_chains
from vaultsched.runtime.workspace import Workspace
from vaultsched.trust.store import fingerprint

log = logging.getLogger("vaultsched.daemon")

# A task whose next fire is this close when its wake time is worked out has what its run
# needs made meanwhile (see `Executor.prepare`): a burst of new tasks would make it all at once.
PREPARE_AHEAD = timedelta(minutes=10)


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

    def __post_init__(self) -> None:
        self.marks = MarksFile(self.workspace.vault.root)

    def restore(self, index: Index) -> None:
        """Dispatch as the last daemon left it (still stopping if a signal came first)."""
        before = self.dispatcher
        self.dispatcher = restored_dispatcher(self.workspace, index, self.workspace.clock())
        self.dispatcher.stopping = self.dispatcher.stopping or before.stopping
        self._follow(index.tasks)

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
        self._follow(delta.changed)
        self.save_marks(now)

    def _follow(self, idents: Iterable[str]) -> None:
        """Tell the dispatcher how these tasks stand in the index now: fired here on schedule
        (as they are now), or not (gone, invalid, disabled, another host's)."""
        tasks, host = self.follower.index.tasks, self.workspace.vault.firing_host
        for ident in idents:
            task = tasks.get(ident)
            if task is not None and fired_here(task, host):
                self.dispatcher.track(task)
            else:
                self.dispatcher.untrack(ident)

    def fire(self, now: datetime) -> None:
        """What is due `now`: fire times, then retries (the loop comes round at every job done
        and file event too: only the tasks due are looked at)."""
        self.actor.carry_out(self.dispatcher.due(now, self.untrusted))
        # After `due`'s actions: a task just found invalid is out of the index, its retry too.
        self.actor.carry_out(self.dispatcher.retries_due(self.follower.index.tasks, now))
        self.save_marks(now)  # the marks that moved, if any
        self._prepare_soon(now)

    def collect(self) -> None:
        """The jobs the executor reported done since the last call."""
        for job, run in self.reports.take():
            if run is not None:
                self.actor.announce(run)
            tasks, now = self.follower.index.tasks, self.workspace.clock()
            self.actor.carry_out(self.dispatcher.done(job, run, now, tasks, self.untrusted))

    def wake_time(self) -> datetime | None:
        """The next fire time or retry (a task found unplannable meanwhile is invalid)."""
        at, invalid = self.dispatcher.wake_time()
        self.actor.carry_out(invalid)  # out of the index
        self._prepare_soon(self.workspace.clock())
        return at

    def _prepare_soon(self, now: datetime) -> None:
        """The tasks whose wake time was just worked out to come within PREPARE_AHEAD."""
        horizon = now + PREPARE_AHEAD
        soon = [task for task, at in self.dispatcher.take_requeued() if at <= horizon]
        if soon:
            self.actor.prepare(soon)

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
