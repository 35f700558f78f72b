"""What the daemon tells its metrics, from its wiring points: runs announced, jobs submitted,
started and done (as the executor's `JobEvents`), and, each tick, the index, the queue and the
next fire times. With metrics off (no `--metrics`, no `[metrics]` in effect) it does nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from datetime import datetime

from vaultsched.adapters.metrics import Metrics, MetricsServer, TextfileWriter
from vaultsched.adapters.vault import Index
from vaultsched.core.model import Run, Status, Task, Trigger
from vaultsched.runtime.dispatch import Dispatcher
from vaultsched.runtime.messages import Job
from vaultsched.runtime.workspace import Workspace

log = logging.getLogger("vaultsched.daemon")

Listen = tuple[str, int]


class Observer:
    def __init__(self, workspace: Workspace, listen: Listen | None = None) -> None:
        """`listen`: `--metrics`, else the config's `[metrics] listen`; and its `textfile`."""
        self.workspace = workspace
        config = workspace.vault.config.metrics
        self.listen = listen or config.listen
        self.textfile = config.textfile
        self.metrics: Metrics | None = None
        self._outs: list[MetricsServer | TextfileWriter] = []
        self._lock = threading.Lock()
        self._known: set[str] = set()  # task ids with series of their own
        self._untrusted: set[str] = set()
        self._trust_stale = True  # find which tasks are untrusted again at the next tick
        self._seeded = False

    @property
    def on(self) -> bool:
        return self.listen is not None or bool(self.textfile)

    def start(self) -> None:
        """Open the textfile, say up, then open the endpoint (a port in use is a one-line error)."""
        if not self.on:
            return
        metrics = Metrics()
        try:
            if self.textfile:
                writer = TextfileWriter(metrics.registry, self.textfile)
                self._outs.append(writer)
                metrics.on_change = writer.changed
            self.metrics = metrics
            metrics.set_up(True)  # before the port opens: its first scrape already says up
            if self.listen is not None:
                self._outs.append(MetricsServer(metrics.registry, *self.listen))
        except BaseException:
            self.close()
            self.metrics = None
            raise

    def close(self) -> None:
        """At shutdown: down, and the textfile written once more; the port closed."""
        if self.metrics is not None:
            self.metrics.set_up(False)
        for out in reversed(self._outs):
            out.close()
        self._outs.clear()

    # -- the daemon's wiring points -----------------------------------------------------------

    def run(self, run: Run) -> None:
        """A run announced (recorded). A refusal, or a run of a task thought untrusted, means
        its trust changed: which tasks are untrusted is found again at the next tick."""
        if self.metrics is None:
            return
        with self._lock:
            self._known.add(run.task)
            if (run.status is Status.UNTRUSTED) != (run.task in self._untrusted):
                self._trust_stale = True
        self.metrics.on_run(run)

    def index_changed(self) -> None:
        self._trust_stale = True

    def tick(
        self, index: Index, dispatcher: Dispatcher, schedulable: Callable[[], Iterable[Task]]
    ) -> None:
        """After each tick of the loop: task states, the group queue, next fire times, and the
        series of tasks that left the index dropped."""
        if self.metrics is None:
            return
        if not self._seeded:
            self._seeded = True
            self._seed_last_success(index)
        if self._trust_stale:
            self._trust_stale = False
            self._find_untrusted(index)
        self._count_tasks(index)
        self.metrics.set_waiting(sum(len(w) for w in dispatcher.groups.waiting.values()))
        fires: dict[str, float] = {}
        if not dispatcher.stopping:
            for task in schedulable():
                try:
                    at = dispatcher.planner.wake_time(task)
                except Exception:  # dispatch finds it unplannable and says so
                    continue
                if at is not None:
                    fires[task.id] = at.timestamp()
        with self._lock:
            gone = self._known - index.tasks.keys()
            stale_fires = self._known - fires.keys()
            self._known = (self._known - gone) | fires.keys()
        for ident in gone:
            self.metrics.forget(ident)
        for ident in stale_fires - gone:
            self.metrics.set_next_fire(ident, None)
        for ident, stamp in fires.items():
            self.metrics.set_next_fire(ident, stamp)
        self.metrics.changed()

    # -- JobEvents, from the executor ---------------------------------------------------------

    def submitted(self, job: Job) -> None:
        if self.metrics is not None:
            self.metrics.on_submitted()

    def started(self, job: Job) -> None:
        if self.metrics is None:
            return
        lateness = None
        if job.trigger is Trigger.SCHEDULE and job.scheduled_for is not None:
            lateness = (self.workspace.clock() - job.scheduled_for).total_seconds()
        with self._lock:
            self._known.add(job.task.id)
        self.metrics.on_started(job.task.id, lateness)

    def finished(self, job: Job) -> None:
        if self.metrics is not None:
            self.metrics.on_finished(job.task.id)

    # -- helpers ------------------------------------------------------------------------------

    def _find_untrusted(self, index: Index) -> None:
        trusted = self.workspace.trust.checker(self.workspace.vault.root)
        found = set()
        for task in index.tasks.values():
            try:
                if task.enabled and not trusted(task):
                    found.add(task.id)
            except OSError:  # a file its command reaches vanished meanwhile: not trusted
                found.add(task.id)
        with self._lock:
            self._untrusted = found

    def _count_tasks(self, index: Index) -> None:
        counts = {"valid": 0, "invalid": len(index.invalid), "untrusted": 0, "disabled": 0}
        for task in index.tasks.values():
            if not task.enabled:
                counts["disabled"] += 1
            elif task.id in self._untrusted:
                counts["untrusted"] += 1
            else:
                counts["valid"] += 1
        assert self.metrics is not None
        self.metrics.set_tasks(counts)

    def _seed_last_success(self, index: Index) -> None:
        """This host's last success of each task from the ledger, so a restart does not look
        like a task that never succeeded."""
        assert self.metrics is not None
        last: dict[str, datetime] = {}
        host = self.workspace.vault.host
        for run in self.workspace.ledger.runs():
            if run.status is Status.SUCCESS and run.host == host and run.task in index.tasks:
                at = run.finished_at or run.started_at
                last[run.task] = max(at, last.get(run.task, at))
        with self._lock:
            self._known |= last.keys()
        for ident, at in last.items():
            self.metrics.set_last_success(ident, at.timestamp())
