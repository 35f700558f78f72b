"""Runs on a pool of workers (`[executor] kind = "rq"`): the daemon still decides what runs and
when, and is still the only writer of the vault; the pool only executes.

Each run goes through three records, all in the daemon's ledger file of the dispatch moment:
`dispatched` (before the job exists in Redis, so no run is ever in the pool unknown to the
ledger), `start` (when a worker reports it has begun, with the worker's host) and `finish` (its
result, landed in the note, the digest and git like a local run's). One thread, `PoolExecutor`'s,
does all of it: it dispatches, polls the jobs in flight, and calls a run `lost` when its worker
has said nothing for the task's timeout plus LOST_AFTER since it started.

A task that says `executor: local` runs here as before. When Redis cannot be reached, runs wait
until it can (`fallback = "wait"`, none lost: their `dispatched` records bring them back after a
restart too) or run here (`fallback = "local"`).
"""

from __future__ import annotations

import functools
import logging
import signal
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from datetime import datetime

from vaultsched.adapters.config import ExecutorConfig
from vaultsched.adapters.redisqueue import Pool, connect, pool_key
from vaultsched.core.model import Run, Task
from vaultsched.runtime.collect import Collector
from vaultsched.runtime.execute import JobEvents, LocalExecutor, NoEvents, OnDone
from vaultsched.runtime.flights import PoolState
from vaultsched.runtime.messages import Job, Upstream
from vaultsched.runtime.restart import lost_unseen
from vaultsched.runtime.send import Sender
from vaultsched.trust.fingerprint import read_body

log = logging.getLogger("vaultsched.daemon")

POLL_S = 0.2  # while runs are in flight; nothing is polled while none is
RETRY_REDIS_S = 2.0  # while Redis cannot be reached


class PoolExecutor:
    """An `Executor` that sends runs to RQ queues (`Sender`) and lands what comes back
    (`Collector`), both on one thread of its own."""

    def __init__(
        self,
        local: LocalExecutor,
        pool: Pool,
        *,
        key: bytes,
        fallback: str,
        on_done: OnDone,
        events: JobEvents | None = None,
    ) -> None:
        self.state = PoolState(local, pool, key, fallback, on_done, events or NoEvents())
        self.sender, self.collector = Sender(self.state), Collector(self.state)
        self._new: list[Job] = []
        self._closing = False
        self._busy = threading.Lock()  # one send and poll at a time: the thread's or let_go's
        self._thread = threading.Thread(target=self._loop, name="vaultsched-pool", daemon=True)
        self._thread.start()

    # -- Executor ---------------------------------------------------------------------------

    def submit(self, job: Job) -> None:
        if job.task.executor == "local":
            self.state.local.submit(job)
            return
        self.state.events.submitted(job)
        with self.state.changed:
            self._new.append(job)
            self.state.changed.notify()

    def prepare(self, tasks: Iterable[Task]) -> None:
        """Only the runs of this host: a worker makes its own folders."""
        self.state.local.prepare(t for t in tasks if t.executor == "local")

    def cancel(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Only this host's runs can be signalled; the pool's go on, collected after a restart."""
        return self.state.local.cancel(sig)

    def let_go(self) -> list[Job]:
        """Stop waiting for the pool's runs (the daemon stops): each is in flight in the
        ledger, and the next start collects it (or enqueues it, if Redis never had it). The
        jobs let go. Those handed over but not yet sent are recorded `dispatched` first, so
        none is dropped unseen."""
        with self._busy:
            with self.state.changed:
                new, self._new = self._new, []
            self.sender.new_batch()
            for job in new:
                self._contained(job, functools.partial(self.sender.send, enqueue=False))
            with self.state.changed:
                gone, self.state.flights = list(self.state.flights.values()), {}
        return [flight.job for flight in gone]

    def shutdown(self) -> None:
        self.state.local.shutdown()
        with self.state.changed:
            self._closing = True
            self.state.changed.notify()
        self._thread.join(timeout=30)

    def adopt(self, runs: Iterable[Run], tasks: Mapping[str, Task]) -> list[Job]:
        """The pool's runs an earlier daemon dispatched and never saw finish: collected as if
        this daemon had sent them. The jobs, for dispatch to count as running."""
        adopted = []
        for run in runs:
            task = tasks.get(run.task)
            if task is None:
                lost_unseen(self.state.execution.recorder, run, "its task note is gone")
                continue
            job = _job_of(run, task)
            # A job Redis lost is sent again: never one this host does not trust (now), which
            # a forged `dispatched` line in the ledger could otherwise start.
            workspace = self.state.execution.recorder.workspace
            root = workspace.vault.root
            body = read_body(root, task) if task.stdin == "body" else None
            if not workspace.trust.is_trusted(root, task, body):
                lost_unseen(self.state.execution.recorder, run, "its task is not trusted here")
                continue
            flight = self.sender.flight(job, run, body, None)
            flight.started = run.started_at != run.dispatched_at
            flight.enqueued = True  # enqueued again only if Redis has no such job
            with self.state.changed:
                self.state.flights[run.run_id] = flight
                self.state.changed.notify()
            adopted.append(job)
            log.info("%s: run %s is in the worker pool: collecting it", task.id, run.run_id)
        return adopted

    # -- the pool's thread ------------------------------------------------------------------

    def _loop(self) -> None:
        state = self.state
        while True:
            with state.changed:
                while not (self._new or state.flights or self._closing):
                    state.changed.wait()
                if self._closing:
                    return
                new = self._due(state.now())
            with self._busy:
                if new:
                    self.sender.new_batch()
                for job in new:
                    self._contained(job, self.sender.send)
                self.sender.enqueue_waiting()
                self.collector.poll()
            with state.changed:
                if not self._closing:
                    state.changed.wait(self._sleep(state.now()))

    def _due(self, now: datetime) -> list[Job]:
        """The jobs handed over whose time has come; those decided ahead of their instant
        (`start_at`) wait for it here, so no worker starts a run early."""
        due = [job for job in self._new if job.start_at is None or job.start_at <= now]
        self._new = [job for job in self._new if job not in due]
        return due

    def _sleep(self, now: datetime) -> float | None:
        """Until the next job's instant, the next poll while runs are in flight, or a change."""
        waits = [(job.start_at - now).total_seconds() for job in self._new if job.start_at]
        if self.state.flights:
            waits.append(RETRY_REDIS_S if self.state.unreachable else POLL_S)
        return max(min(waits), 0.0) if waits else None

    def _contained(self, job: Job, step: Callable[[Job], None]) -> None:
        try:
            step(job)
        except Exception:  # a bug here must not stop the pool's thread, nor lose the run
            log.exception("%s: dispatch failed inside vaultsched", job.task.id)
            self.state.unrecorded(job, "dispatch failed inside vaultsched")


def _job_of(run: Run, task: Task) -> Job:
    upstream = Upstream("", run.upstream_run) if run.upstream_run else None
    job = Job(task, run.trigger, run.scheduled_for, run.attempt, upstream)
    return replace(job, run_id=run.run_id, dispatched_at=run.dispatched_at)


def pool_executor(local: LocalExecutor, config: ExecutorConfig, events: JobEvents) -> PoolExecutor:
    """The daemon's executor for `[executor] kind = "rq"`; raises VaultschedError without a
    pool key. Redis is not asked anything yet: a daemon starts while it is down."""
    pool = Pool(connect(config.redis_url), config.queue_prefix)
    key = pool_key()
    return PoolExecutor(
        local, pool, key=key, fallback=config.fallback, on_done=local.on_done, events=events
    )
