"""What the worker pool's stages share: the runs in flight, and how a run that ends on the
daemon's side (refused, unrecorded) is told to dispatch."""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from vaultsched.adapters.redisqueue import Pool
from vaultsched.core.model import Run, Status
from vaultsched.runtime.execute import JobEvents, LocalExecutor, OnDone, unrecorded
from vaultsched.runtime.messages import Job
from vaultsched.runtime.run import Execution

log = logging.getLogger("vaultsched.daemon")

# Past a run's timeout, with no word from its worker, it is lost; VAULTSCHED_LOST_AFTER
# (seconds) overrides it (tests, operators who know their workers' clocks).
LOST_AFTER = timedelta(seconds=60)


def _lost_after() -> timedelta:
    grace = os.environ.get("VAULTSCHED_LOST_AFTER", "")
    return timedelta(seconds=float(grace)) if grace else LOST_AFTER


@dataclass
class Flight:
    """One run handed to the pool, until its finish is landed."""

    job: Job
    run: Run  # as recorded: `dispatched`, then (once a worker says so) started
    queue: str
    sealed: dict[str, Any]
    inputs: str | None  # the `if_changed` digest, kept once the run succeeds
    enqueued: bool = False
    started: bool = False
    job_seen: Any = None  # the RQ job as last read, to be forgotten once the run has landed
    taken_at: datetime | None = None  # when RQ saw a worker take it, start report or not

    def deadline(self, grace: timedelta) -> datetime | None:
        """When the run is lost if nothing more is heard; None while it waits for a worker."""
        began = self.run.started_at if self.started else self.taken_at
        return None if began is None else began + self.job.task.timeout + grace


@dataclass
class PoolState:
    """The pool's runs in flight (by run id) and the handles each stage works with."""

    local: LocalExecutor
    pool: Pool
    key: bytes
    fallback: str  # Redis unreachable: "wait" or "local"
    on_done: OnDone
    events: JobEvents
    flights: dict[str, Flight] = field(default_factory=dict)
    changed: threading.Condition = field(default_factory=threading.Condition)
    unreachable: bool = False  # said once per outage
    lost_after: timedelta = field(default_factory=_lost_after)

    @property
    def execution(self) -> Execution:
        return self.local.execution

    def now(self) -> datetime:
        return self.execution.recorder.workspace.clock()

    def in_flight(self, *, enqueued: bool) -> list[Flight]:
        with self.changed:
            return [f for f in self.flights.values() if f.enqueued is enqueued]

    def take(self, run_id: str) -> Flight | None:
        """The flight, no longer in flight; None if it was not (let go meanwhile)."""
        with self.changed:
            return self.flights.pop(run_id, None)

    def fail(self, flight: Flight, message: str) -> None:
        """Close a run recorded `dispatched` that will not reach a worker: `error`."""
        if self.take(flight.run.run_id) is None:
            return
        never_ran = replace(flight.run, duration_s=0.0)
        run = self.execution.recorder.closed(flight.job.task, never_ran, Status.ERROR, message)
        self.events.finished(flight.job)
        self.on_done(flight.job, run)

    def record(self, job: Job, run: Run, status: Status, message: str) -> None:
        """A run that ends before any worker has it: recorded, and told to dispatch."""
        recorded = self.execution.recorder.record(
            job.task, status, job.trigger, message, job.scheduled_for, upstream_run=run.upstream_run
        )
        self.events.finished(job)
        self.on_done(job, recorded)

    def unrecorded(self, job: Job, message: str) -> None:
        """A run that could not even be recorded (the ledger refused): told, not shown."""
        self.on_done(job, unrecorded(self.execution, job, message))

    def unreached(self, exc: Exception) -> None:
        if not self.unreachable:
            what = "runs wait for it" if self.fallback == "wait" else "runs go here meanwhile"
            log.warning("Redis cannot be reached (%s): %s", exc, what)
        self.unreachable = True

    def reached(self) -> None:
        if self.unreachable:
            log.info("Redis can be reached again")
        self.unreachable = False
