"""Collecting what the worker pool did: each run's start and finish as its worker reports
them (sealed), landed like a local run's (ledger, note, digest, git, `after` tasks, pings); a
run whose worker went silent past its deadline is `lost`; a job Redis lost is sent again if no
worker had taken it."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from vaultsched.adapters.ledger import parse_instant
from vaultsched.adapters.redisqueue import RedisError, job_state
from vaultsched.core.model import Run, Status
from vaultsched.core.pool import Finished, SealError, Started, unseal
from vaultsched.runtime.flights import Flight, PoolState
from vaultsched.runtime.gates import keep_inputs
from vaultsched.runtime.worker import STARTED

log = logging.getLogger("vaultsched.daemon")


@dataclass
class Collector:
    state: PoolState

    def poll(self) -> None:
        flights = self.state.in_flight(enqueued=True)
        if not flights:
            return
        try:
            jobs = self.state.pool.jobs(f.run.run_id for f in flights)
        except RedisError as exc:
            self.state.unreached(exc)
            return
        self.state.reached()
        now = self.state.now()
        for flight in flights:
            found = jobs[flight.run.run_id]
            if found is None:
                self._vanished(flight)
                continue
            flight.job_seen = found
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
            elif (
                deadline := flight.deadline(self.state.lost_after)
            ) is not None and now > deadline:
                self._lost(flight)

    def _vanished(self, flight: Flight) -> None:
        """Redis has no job for a run it was given (it restarted without its data): a run no
        worker took is enqueued again (same id), one a worker took waits out its deadline."""
        if flight.started:
            return
        try:
            taken = self.state.pool.claimed_by(flight.run.run_id)
        except RedisError:
            return
        if taken is None:
            flight.enqueued = False
        elif flight.taken_at is None:  # taken, then lost with Redis's data: it has a deadline
            flight.taken_at = self.state.execution.recorder.workspace.clock()

    def _started(self, flight: Flight, sealed: object) -> None:
        try:
            report: Started = unseal(self.state.key, sealed, Started)
        except SealError as exc:
            log.warning("%s: a start report was refused: %s", flight.run.run_id, exc)
            return
        started_at = parse_instant(report.started_at)
        if report.run_id != flight.run.run_id or started_at is None:
            return
        flight.run = replace(flight.run, host=report.host, started_at=started_at)
        flight.started = True
        with contextlib.suppress(OSError):  # the finish record repeats what it says
            self.state.execution.recorder.started(flight.job.task, flight.run)
        self.state.events.started(flight.job)

    def _finished(self, flight: Flight, sealed: object) -> None:
        try:
            report: Finished = unseal(self.state.key, sealed, Finished)
        except SealError as exc:
            self._land(flight, Status.ERROR, f"the worker's report was refused: {exc}")
            return
        started, ended = parse_instant(report.started_at), parse_instant(report.finished_at)
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

    def _lost(self, flight: Flight) -> None:
        run, grace = flight.run, self.state.lost_after.seconds
        if flight.started:
            since = f"worker {run.host} since it started at {run.started_at:%Y-%m-%d %H:%M:%S} UTC"
        else:
            since = "the worker that took it (it never said it started)"
        message = f"lost: no word from {since} (timeout + {grace} s)"
        log.warning("%s: run %s %s", run.task, run.run_id, message)
        self._land(flight, Status.LOST, message)

    def _land(
        self,
        flight: Flight,
        status: Status,
        message: str,
        *,
        run: Run | None = None,
        ended: datetime | None = None,
        duration: float | None = None,
        stdout: str | None = None,
    ) -> None:
        if self.state.take(flight.run.run_id) is None:
            return  # let go meanwhile: the next daemon lands it
        run = run or flight.run
        ended = ended or self.state.execution.recorder.workspace.clock()
        if duration is None:
            duration = round((ended - run.started_at).total_seconds(), 3)
        run = replace(run, status=status, message=message, finished_at=ended, duration_s=duration)
        task = flight.job.task
        run = self.state.execution.handed_on(task, run, stdout)
        if status is Status.SUCCESS and flight.inputs is not None:
            keep_inputs(self.state.execution.recorder.workspace.vault.root, task, flight.inputs)
        self.state.execution.recorder.finished(task, run, stdout=stdout)
        self.state.events.finished(flight.job)
        self.state.on_done(flight.job, run)
        if flight.job_seen is not None:
            with contextlib.suppress(RedisError):  # kept a week, then: only space is lost
                self.state.pool.forget(flight.job_seen)
