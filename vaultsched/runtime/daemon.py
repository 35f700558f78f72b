"""`vaultsched run`: the long-running scheduler's life cycle, and the wiring of its stages.

One loop on the main thread: take file changes, carry out what dispatch decides, collect
finished jobs, commit, then sleep until the next fire time, retry, commit deadline or file
event (`Waker`). Nothing wakes while nothing is due. Runs execute behind the `Executor`
(threads on this machine) and land on a thread of their own (`LandingThread`).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import FrameType

from vaultsched.adapters import statefs
from vaultsched.adapters.clock import utc_now
from vaultsched.adapters.instance import InstanceLock
from vaultsched.adapters.query import IndexService
from vaultsched.adapters.vault import Index, Vault
from vaultsched.adapters.waker import Waker
from vaultsched.core.model import Run, Task
from vaultsched.runtime.act import Actor, DryRunActor
from vaultsched.runtime.approval import Approvals
from vaultsched.runtime.commit import Cadence, Committer
from vaultsched.runtime.conduct import Conductor
from vaultsched.runtime.execute import Executor, LocalExecutor, Reports
from vaultsched.runtime.follow import Follower
from vaultsched.runtime.land import Lander, LandingThread
from vaultsched.runtime.observe import Observer
from vaultsched.runtime.pings import Heartbeat, Pings
from vaultsched.runtime.record import Recorder
from vaultsched.runtime.restart import in_pool, recover_interrupted, sweep_cut_short_writes
from vaultsched.runtime.run import Execution
from vaultsched.runtime.stuck import StuckWatch
from vaultsched.runtime.sync import Syncer, make_syncer
from vaultsched.runtime.workspace import open_workspace
from vaultsched.trust.config import ignored_message

log = logging.getLogger("vaultsched.daemon")

SHUTDOWN_GRACE = 30.0  # VAULTSCHED_SHUTDOWN_GRACE overrides it (tests, impatient users)
KILL_GRACE = 10.0


def kill_switch(vault: Vault) -> str:
    """Why firing is switched off, or "" if it is on."""
    if os.environ.get("VAULTSCHED_ENABLED", "1").strip().lower() in ("0", "false", "no", "off"):
        return "VAULTSCHED_ENABLED=0"
    if not vault.config.enabled:
        return "enabled = false in .vaultsched/config.toml"
    return ""


@dataclass
class Daemon:
    vault: Vault
    clock: Callable[[], datetime] = utc_now
    dry_run: bool = False
    waker: Waker = field(default_factory=Waker)
    on_run: Callable[[Run], None] | None = None  # the demo prints each run as it lands
    metrics: tuple[str, int] | None = None  # `--metrics HOST:PORT`, else `[metrics] listen`
    # Answers `list` from a copy of the index (given by cli/app.py, served by adapters/query).
    answer: Callable[[Index, dict[str, object]], object] | None = None

    def __post_init__(self) -> None:
        self.workspace = open_workspace(self.vault, self.clock)
        self.lander = Lander(self.workspace, Committer(self.workspace))
        self.landing = LandingThread(self.lander, self._commit_settled, lambda: self._local.busy)
        never = datetime.min.replace(tzinfo=self.clock().tzinfo)  # the last commit, so far
        self.cadence = Cadence(
            lambda: self.lander.has_pending, never, busy=lambda: self.conductor.running
        )
        self.pings = Pings(self.workspace)
        self.heartbeat = Heartbeat(self.pings.pinger, self.vault.config.ping)
        self.recorder = Recorder(self.workspace, self.landing.land, self.pings)
        self.follower = Follower(self.vault)
        self.execution = Execution(self.recorder, downstream=self.follower.downstream)
        self.observer = Observer(self.workspace, self.metrics)
        self.stuck = StuckWatch(self.workspace)
        reports = Reports(self.waker.notify, self.waker.notify_after)
        local = LocalExecutor(
            self.execution, self.vault.config.max_parallel, reports.put, self.observer
        )
        reports.backlog = lambda: local.waiting
        self._local = local
        self.executor: Executor = local
        if self.vault.config.executor.pool and not self.dry_run:
            from vaultsched.runtime.pool import pool_executor  # redis and rq: only for a pool

            self.executor = pool_executor(local, self.vault.config.executor, self.observer)
        parts = (
            self.executor,
            Approvals(self.recorder),
            self.follower.invalidate,
            self._announce,
            _would_disable if self.dry_run else self.lander.disable,
        )
        self.actor = DryRunActor(*parts, done=reports.put) if self.dry_run else Actor(*parts)
        self.conductor = Conductor(
            self.workspace, self.follower, self.actor, reports, dry_run=self.dry_run
        )
        self.stopping = False
        self.lock = InstanceLock(self.vault.root)
        self.disabled = kill_switch(self.vault)
        self.syncer: Syncer | None = None
        self.queries: IndexService[Index] | None = None

    @property
    def index(self) -> Index:
        return self.follower.index

    def run(self, *, once: bool = False) -> int:
        # A dry run only reads: no lock, no metrics, pings, sync, commits, marks or ledger
        # lines, so it may run beside the daemon of the vault.
        if not self.dry_run:
            self.lock.acquire(self.vault.host, self.clock())
            self.observer.start()
        statefs.keep_folders(self.vault.root)  # a dozen folder walks a run, saved
        try:
            if not once:  # before the index is read: a note saved meanwhile is read again
                self.follower.watch(self.waker.notify)
            self._start()
            if not once and not self.dry_run:
                self._serve_queries()
            self.syncer = None if self.dry_run else make_syncer(self.workspace, self.lander)
            if once:
                self._tick()
            else:
                if self.syncer is not None:
                    self.syncer.start()
                if not self.dry_run:
                    self.heartbeat.start()
                self._loop()
            self._shutdown(finish_runs=once)
        finally:  # a failure too: the records of ended runs kept for a burst are written
            self.execution.rests.close()
            if self.queries is not None:
                self.queries.close()
            self.heartbeat.stop()
            self.pings.flush()
            self.observer.close()
            self.follower.stop()
            self.lock.release()
            self.waker.close()
            statefs.forget_folders(self.vault.root)
        return 0

    def stop(self, signum: int | None = None, _frame: FrameType | None = None) -> None:
        if signum is not None:
            log.info("%s received: stopping", signal.Signals(signum).name)
        self.stopping = True
        self.conductor.stop()
        self.waker.notify()

    def request_reindex(self, _signum: int | None = None, _frame: FrameType | None = None) -> None:
        """SIGHUP (`vaultsched reindex`, the post-merge hook): re-read the whole vault."""
        self.follower.request_rescan()
        self.waker.notify()

    def _start(self) -> None:
        if not self.dry_run:
            recover_interrupted(self.execution, self.recorder)
            self.landing.commit_soon()
        started = time.monotonic()
        index = self.follower.load()
        if not self.dry_run:
            sweep_cut_short_writes(self.vault, index)
        self.conductor.restore(index)
        if not self.dry_run:  # runs an earlier daemon left in the worker pool
            self.conductor.adopt(self.executor.adopt(in_pool(self.workspace), index.tasks))
        for ident, problems in index.invalid.items():
            log.warning("%s is invalid and will not run: %s", ident, problems[0].message)
        log.info(
            "indexed %d tasks in %s in %.2fs%s",
            len(index.tasks),
            self.vault.root,
            time.monotonic() - started,
            " (dry run: nothing will be run)" if self.dry_run else "",
        )
        if self.disabled:
            log.warning("vaultsched is disabled (%s): nothing will fire", self.disabled)
        if self.vault.config.ignored:
            log.warning("%s", ignored_message(self.vault.root, self.vault.config.ignored))
        if not self.disabled:
            self.conductor.resume_chains()

    def _serve_queries(self) -> None:
        """`list` asks this daemon for the index rather than walking the vault."""
        if self.answer is not None:
            queries = IndexService(str(self.vault.root.resolve()), self.answer, self.waker.notify)
            self.queries = queries if queries.start() else None

    def _settled_index(self) -> Index | None:
        """A copy of the index once it holds every file event the watch has seen; None while
        some are still on their way (the debounce, a rescan, watchdog's queues)."""
        watcher = self.follower.watcher
        if self.follower.settle_in() is not None or watcher is None or not watcher.settled():
            return None
        index = self.index
        copied = {f.name: copy.copy(getattr(index, f.name)) for f in dataclasses.fields(index)}
        return dataclasses.replace(index, **copied)

    def _loop(self) -> None:
        while not self.stopping:
            self._tick()
            if not self.stopping:
                self.waker.wait(self._deadline())

    def _tick(self) -> None:
        while (delta := self.follower.take()) is not None:
            self.conductor.index_changed(delta)
            self.observer.index_changed()
        if self.queries is not None:
            self.queries.offer(self._settled_index)
        self.conductor.collect()
        now = self.clock()
        if not self.disabled and not self.stopping:
            self.conductor.fire(now)
        if self.cadence.due(now):
            self.landing.commit_soon()
            if self.syncer is not None:
                self.syncer.nudge()
        self.observer.tick(self.index, self.conductor.dispatcher, self.conductor.schedulable)
        self.stuck.check(dict(self.execution.running), now)

    def _commit_settled(self) -> None:
        """From the landing thread: a commit that failed (or a landing that raised) leaves
        edits pending, and the loop, which may be asleep till a fire a day away, must retry."""
        if self.lander.has_pending:
            self.waker.notify()

    def _deadline(self) -> datetime | None:
        """The next moment something is due: a fire, a retry, a commit, or debounced events."""
        candidates = [] if self.disabled else [self.conductor.wake_time()]
        candidates.append(self.cadence.next_at())
        settle = self.follower.settle_in()
        if settle is not None:
            candidates.append(self.clock() + timedelta(seconds=settle))
        candidates.append(self.stuck.next_check)  # a run in progress will be stuck then: say so
        return min((at for at in candidates if at is not None), default=None)

    def _shutdown(self, *, finish_runs: bool = False) -> None:
        """Stop firing; give running tasks the grace period (`--once`: until a signal) to end."""
        grace = float(os.environ.get("VAULTSCHED_SHUTDOWN_GRACE", SHUTDOWN_GRACE))
        while finish_runs and self.conductor.running and not self.stopping:
            self.waker.wait(None)
            self.conductor.collect()
        self.stopping = True
        if self.syncer is not None:  # its thread held landing and the commit off for minutes
            self.syncer.stop_soon()
        self.conductor.abandon()
        self.conductor.let_go(self.executor.let_go())  # the pool's: collected after a restart
        self._wait_for_runs(grace)
        if self.conductor.running:
            log.warning("terminating %d running task(s)", self.executor.cancel())
            self._wait_for_runs(KILL_GRACE)
            self.executor.cancel(signal.SIGKILL)
        self.executor.shutdown()
        self.conductor.collect()
        self.landing.close()
        if not self.dry_run:
            self.lander.commit()
        self.conductor.save_marks(self.clock())
        if self.syncer is not None:  # push what this daemon committed (`--once` too)
            self.syncer.stop()
            self.syncer.sync_logged()
        log.info("stopped")

    def _wait_for_runs(self, seconds: float) -> None:
        """Until every run is done or `seconds` pass; each job done wakes the waker."""
        deadline = time.monotonic() + seconds
        while self.conductor.running and (left := deadline - time.monotonic()) > 0:
            self.waker.wait(self.clock() + timedelta(seconds=left))
            self.conductor.collect()

    def _announce(self, run: Run) -> None:
        """Every run recorded reaches the next commit, the log and (in the demo) `on_run`."""
        self.cadence.owe(self.clock())
        self.observer.run(run)
        detail = f"exit {run.exit_code}" if run.exit_code is not None else run.message
        duration = f", {run.duration_s:.1f}s" if run.duration_s else ""
        log.info("%s %s (%s, %s%s)", run.status, run.task, run.trigger, detail, duration)
        if self.on_run is not None:
            self.on_run(run)


def _would_disable(task: Task, reason: str) -> None:
    log.info("would disable %s (%s)", task.id, reason)


def install_signal_handlers(daemon: Daemon) -> None:
    signal.signal(signal.SIGTERM, daemon.stop)
    signal.signal(signal.SIGINT, daemon.stop)
    signal.signal(signal.SIGHUP, daemon.request_reindex)
    daemon.waker.wake_on_signals()
