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

import contextlib
import functools
import logging
import os
import signal
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from vaultsched.adapters.config import ExecutorConfig
from vaultsched.adapters.git import GitError
from vaultsched.adapters.inputs import last_inputs
from vaultsched.adapters.ledger import dispatched_record, new_run_id
from vaultsched.adapters.redisqueue import Pool, RedisError, connect, job_state, pool_key
from vaultsched.core.model import Run, Status, Task
from vaultsched.core.pool import (
    Finished,
    Payload,
    SealError,
    Started,
    instant,
    iso,
    queue_for,
    seal,
    unseal,
)
from vaultsched.runtime.context import PROMPT_OUTPUT_CHARS, context_for
from vaultsched.runtime.execute import JobEvents, LocalExecutor, NoEvents, OnDone
from vaultsched.runtime.gates import UNCHANGED, inputs_now, keep_inputs
from vaultsched.runtime.messages import Job, Upstream
from vaultsched.runtime.restart import lost_unseen
from vaultsched.runtime.run import NOT_UTF8, Execution
from vaultsched.runtime.worker import STARTED
from vaultsched.trust.fingerprint import fingerprint, read_body

log = logging.getLogger("vaultsched.daemon")

# Past a run's timeout, with no word from its worker, it is lost; VAULTSCHED_LOST_AFTER
# (seconds) overrides it (tests, operators who know their workers' clocks).
LOST_AFTER = timedelta(seconds=60)
POLL_S = 0.2  # while runs are in flight; nothing is polled while none is
RETRY_REDIS_S = 2.0  # while Redis cannot be reached


@dataclass
class _Flight:
    """One run handed to the pool, until its finish is landed."""

    job: Job
    run: Run  # as recorded: `dispatched`, then (once a worker says so) started
    queue: str
    sealed: dict[str, Any]
    inputs: str | None  # the `if_changed` digest, kept once the run succeeds
    enqueued: bool = False
    started: bool = False
    taken_at: datetime | None = None  # when RQ saw a worker take it, start report or not

    def deadline(self, grace: timedelta) -> datetime | None:
        """When the run is lost if nothing more is heard; None while it waits for a worker."""
        began = self.run.started_at if self.started else self.taken_at
        return None if began is None else began + self.job.task.timeout + grace


class PoolExecutor:
    """An `Executor` that sends runs to RQ queues and lands what comes back."""

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
        self.local, self.pool, self.key, self.fallback = local, pool, key, fallback
        self.execution: Execution = local.execution
        self.on_done = on_done
        self.events: JobEvents = events or NoEvents()
        self._new: list[Job] = []
        self._flights: dict[str, _Flight] = {}
        self._changed = threading.Condition()
        self._closing = False
        self._busy = threading.Lock()  # one dispatch and poll at a time: the thread's or let_go's
        self._unreachable = False  # said once per outage
        self._head = ""  # the vault's commit, read once per batch of runs dispatched
        grace = os.environ.get("VAULTSCHED_LOST_AFTER", "")
        self.lost_after = timedelta(seconds=float(grace)) if grace else LOST_AFTER
        self._thread = threading.Thread(target=self._loop, name="vaultsched-pool", daemon=True)
        self._thread.start()

    # -- Executor ---------------------------------------------------------------------------

    def submit(self, job: Job) -> None:
        if job.task.executor == "local":
            self.local.submit(job)
            return
        self.events.submitted(job)
        with self._changed:
            self._new.append(job)
            self._changed.notify()

    def cancel(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Only this host's runs can be signalled; the pool's go on, collected after a restart."""
        return self.local.cancel(sig)

    def let_go(self) -> list[Job]:
        """Stop waiting for the pool's runs (the daemon stops): each is in flight in the
        ledger, and the next start collects it (or enqueues it, if Redis never had it). The
        jobs let go. Those handed over but not yet dispatched are recorded `dispatched` first,
        so none is dropped unseen."""
        with self._busy:
            with self._changed:
                new, self._new = self._new, []
            for job in new:
                self._contained(job, functools.partial(self._dispatch, enqueue=False))
            with self._changed:
                gone, self._flights = list(self._flights.values()), {}
        return [flight.job for flight in gone]

    def shutdown(self) -> None:
        self.local.shutdown()
        with self._changed:
            self._closing = True
            self._changed.notify()
        self._thread.join(timeout=30)

    def adopt(self, runs: Iterable[Run], tasks: Mapping[str, Task]) -> list[Job]:
        """The pool's runs an earlier daemon dispatched and never saw finish: collected as if
        this daemon had dispatched them. The jobs, for dispatch to count as running."""
        adopted = []
        for run in runs:
            task = tasks.get(run.task)
            if task is None:
                lost_unseen(self.execution.recorder, run, "its task note is gone")
                continue
            upstream = Upstream("", run.upstream_run) if run.upstream_run else None
            job = Job(task, run.trigger, run.scheduled_for, run.attempt, upstream)
            job = replace(job, run_id=run.run_id, dispatched_at=run.dispatched_at)
            # Judged when it was dispatched: only a job Redis lost is sent again, as it was.
            body = (
                read_body(self.execution.recorder.workspace.vault.root, task)
                if task.stdin == "body"
                else None
            )
            flight = self._flight(job, run, body, None)
            flight.started = run.started_at != run.dispatched_at
            flight.enqueued = True  # enqueued again only if Redis has no such job
            with self._changed:
                self._flights[run.run_id] = flight
                self._changed.notify()
            adopted.append(job)
            log.info("%s: run %s is in the worker pool: collecting it", task.id, run.run_id)
        return adopted

    # -- the pool's thread ------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._changed:
                while not (self._new or self._flights or self._closing):
                    self._changed.wait()
                if self._closing:
                    return
                new, self._new = self._new, []
            self._head = _head(self.execution.recorder.workspace) if new else self._head
            with self._busy:
                for job in new:
                    self._contained(job, self._dispatch)
                self._enqueue_waiting()
                self._poll()
            with self._changed:
                if not self._new and not self._closing:
                    self._changed.wait(RETRY_REDIS_S if self._unreachable else POLL_S)

    def _contained(self, job: Job, step: Any) -> None:
        try:
            step(job)
        except Exception:  # a bug here must not stop the pool's thread, nor lose the run
            log.exception("%s: dispatch failed inside vaultsched", job.task.id)
            self._done(job, self._unrecorded(job, "dispatch failed inside vaultsched"))

    def _dispatch(self, job: Job, *, enqueue: bool = True) -> None:
        """The `dispatched` record, then the job; or the run recorded as why it never went."""
        recorder, now = self.execution.recorder, self.execution.recorder.workspace.clock()
        run = Run(
            new_run_id(now),
            job.task.id,
            Status.RUNNING,
            job.trigger,
            now,
            recorder.workspace.vault.host,
            job.attempt,
            job.scheduled_for,
            upstream_run=job.upstream.run_id if job.upstream else "",
            dispatched_at=now,
        )
        try:
            queue = queue_for(self.pool.prefix, job.task.hosts)
        except ValueError as exc:
            self._record(job, run, Status.ERROR, str(exc))
            return
        flight = self._prepared(job, replace(run, queue=queue))
        if flight is None:
            return
        try:
            recorder.workspace.ledger.append(dispatched_record(flight.run, job.task.path))
        except OSError as exc:
            self._done(job, self._unrecorded(job, f"not dispatched: the ledger refused it: {exc}"))
            return
        with self._changed:
            self._flights[run.run_id] = flight
        if enqueue:
            self._enqueue(flight)

    def _prepared(self, job: Job, run: Run) -> _Flight | None:
        """The run's flight; None if it ends here, before any worker (recorded so)."""
        workspace = self.execution.recorder.workspace
        task, root = job.task, workspace.vault.root
        inputs = inputs_now(root, task)
        if inputs is not None and inputs == last_inputs(root, task.id):
            self._record(job, run, Status.SKIPPED, UNCHANGED)
            return None
        body = read_body(root, task) if task.stdin == "body" else None
        if task.stdin == "body" and body is None:
            self._record(job, run, Status.ERROR, NOT_UTF8)
            return None
        if not workspace.trust.is_trusted(root, task, body):
            self._record(job, run, Status.UNTRUSTED, workspace.trust.refusal(root, task))
            return None
        return self._flight(job, run, body, inputs)

    def _flight(self, job: Job, run: Run, body: str | None, inputs: str | None) -> _Flight:
        """The run with its sealed payload: what a worker needs and a local run would read."""
        workspace = self.execution.recorder.workspace
        task, root = job.task, workspace.vault.root
        context = context_for(workspace, job, run)
        payload = Payload(
            run.run_id,
            run.queue,
            task.id,
            self._head,
            fingerprint(root, task, body),
            str(job.trigger),
            iso(job.scheduled_for),
            job.attempt,
            run.upstream_run,
            task.timeout.total_seconds(),
            iso(context.last_success),
            context.read(context.previous_output)[:PROMPT_OUTPUT_CHARS],
            context.read(context.upstream_output),
        )
        return _Flight(job, run, run.queue, seal(self.key, payload), inputs)

    def _enqueue(self, flight: _Flight) -> None:
        run = flight.run
        try:
            flight.enqueued = True
            self.pool.enqueue(
                flight.queue, flight.sealed, run.run_id, flight.job.task.timeout.total_seconds()
            )
        except RedisError as exc:
            flight.enqueued = False
            self._unreached(exc)
            if self.fallback == "local":
                with self._changed:
                    self._flights.pop(run.run_id, None)
                log.info("%s: Redis unreachable, run %s runs here", run.task, run.run_id)
                here = replace(flight.job, run_id=run.run_id, dispatched_at=run.dispatched_at)
                self.local.execute(here)
            return
        self._reached()

    def _enqueue_waiting(self) -> None:
        with self._changed:
            waiting = [f for f in self._flights.values() if not f.enqueued]
        for flight in waiting:
            self._enqueue(flight)
            if not flight.enqueued and self.fallback == "wait":
                return  # still unreachable: try again later

    def _poll(self) -> None:
        with self._changed:
            flights = [f for f in self._flights.values() if f.enqueued]
        if not flights:
            return
        try:
            jobs = self.pool.jobs(f.run.run_id for f in flights)
        except RedisError as exc:
            self._unreached(exc)
            return
        self._reached()
        now = self.execution.recorder.workspace.clock()
        for flight in flights:
            found = jobs[flight.run.run_id]
            if found is None:
                self._vanished(flight)
                continue
            status, meta, value = job_state(found)
            if not flight.started and STARTED in meta:
                self._started(flight, meta[STARTED])
            if status == "started" and flight.taken_at is None:  # a worker that may die first
                flight.taken_at = found.started_at.replace(tzinfo=UTC) if found.started_at else now
            if status == "finished" and value is not None:
                self._finished(flight, value)
            elif status in ("failed", "stopped", "canceled"):
                self._land(
                    flight, Status.ERROR, f"the worker pool's job {status} (see the worker's log)"
                )
            elif (deadline := flight.deadline(self.lost_after)) is not None and now > deadline:
                self._lost(flight)

    def _vanished(self, flight: _Flight) -> None:
        """Redis has no job for a run it was given (it restarted without its data): a run no
        worker took is enqueued again (same id), one a worker took waits out its deadline."""
        if flight.started:
            return
        try:
            taken = self.pool.claimed_by(flight.run.run_id)
        except RedisError:
            return
        if taken is None:
            flight.enqueued = False
        elif flight.taken_at is None:  # taken, then lost with Redis's data: it has a deadline
            flight.taken_at = self.execution.recorder.workspace.clock()

    def _started(self, flight: _Flight, sealed: object) -> None:
        try:
            report: Started = unseal(self.key, sealed, Started)
        except SealError as exc:
            log.warning("%s: a start report was refused: %s", flight.run.run_id, exc)
            return
        started_at = instant(report.started_at)
        if report.run_id != flight.run.run_id or started_at is None:
            return
        flight.run = replace(flight.run, host=report.host, started_at=started_at)
        flight.started = True
        with contextlib.suppress(OSError):  # the finish record repeats what it says
            self.execution.recorder.started(flight.job.task, flight.run)
        self.events.started(flight.job)

    def _finished(self, flight: _Flight, sealed: object) -> None:
        try:
            report: Finished = unseal(self.key, sealed, Finished)
        except SealError as exc:
            self._land(flight, Status.ERROR, f"the worker's report was refused: {exc}")
            return
        started, ended = instant(report.started_at), instant(report.finished_at)
        if report.run_id != flight.run.run_id or started is None or ended is None:
            self._land(flight, Status.ERROR, "the worker's report was not about this run")
            return
        try:
            status = Status(report.status)
        except ValueError:
            status = Status.ERROR
        run = replace(
            flight.run,
            host=report.host,
            started_at=started,
            exit_code=report.exit_code,
            output_tail=report.output_tail,
        )
        duration, stdout = report.duration_s, report.stdout
        self._land(
            flight, status, report.message, run=run, ended=ended, duration=duration, stdout=stdout
        )

    def _lost(self, flight: _Flight) -> None:
        run = flight.run
        message = (
            f"lost: no word from worker {run.host} since it started at "
            f"{run.started_at:%Y-%m-%d %H:%M:%S} UTC (timeout + {self.lost_after.seconds} s)"
        )
        log.warning("%s: run %s %s", run.task, run.run_id, message)
        self._land(flight, Status.LOST, message)

    def _land(
        self,
        flight: _Flight,
        status: Status,
        message: str,
        *,
        run: Run | None = None,
        ended: datetime | None = None,
        duration: float | None = None,
        stdout: str | None = None,
    ) -> None:
        with self._changed:
            if self._flights.pop(flight.run.run_id, None) is None:
                return  # let go meanwhile: the next daemon lands it
        run = run or flight.run
        ended = ended or self.execution.recorder.workspace.clock()
        if duration is None:
            duration = round((ended - run.started_at).total_seconds(), 3)
        run = replace(run, status=status, message=message, finished_at=ended, duration_s=duration)
        task = flight.job.task
        run = self.execution.handed_on(task, run, stdout)
        if status is Status.SUCCESS and flight.inputs is not None:
            keep_inputs(self.execution.recorder.workspace.vault.root, task, flight.inputs)
        self.execution.recorder.finished(task, run, stdout=stdout)
        self.events.finished(flight.job)
        self._done(flight.job, run)

    def _record(self, job: Job, run: Run, status: Status, message: str) -> None:
        recorded = self.execution.recorder.record(
            job.task, status, job.trigger, message, job.scheduled_for, upstream_run=run.upstream_run
        )
        self.events.finished(job)
        self._done(job, recorded)

    def _done(self, job: Job, run: Run | None) -> None:
        self.on_done(job, run)

    def _unrecorded(self, job: Job, message: str) -> Run:
        workspace = self.execution.recorder.workspace
        now = workspace.clock()
        return Run(
            "",
            job.task.id,
            Status.ERROR,
            job.trigger,
            now,
            workspace.vault.host,
            job.attempt,
            job.scheduled_for,
            now,
            message=message,
        )

    def _unreached(self, exc: Exception) -> None:
        if not self._unreachable:
            what = "runs wait for it" if self.fallback == "wait" else "runs go here meanwhile"
            log.warning("Redis cannot be reached (%s): %s", exc, what)
        self._unreachable = True

    def _reached(self) -> None:
        if self._unreachable:
            log.info("Redis can be reached again")
        self._unreachable = False


def _head(workspace: Any) -> str:
    try:
        return str(workspace.git.head_commit())
    except (GitError, OSError):
        return ""


def pool_executor(local: LocalExecutor, config: ExecutorConfig, events: JobEvents) -> PoolExecutor:
    """The daemon's executor for `[executor] kind = "rq"`; raises VaultschedError without a
    pool key. Redis is not asked anything yet: a daemon starts while it is down."""
    pool = Pool(connect(config.redis_url), config.queue_prefix)
    key = pool_key()
    return PoolExecutor(
        local, pool, key=key, fallback=config.fallback, on_done=local.on_done, events=events
    )
