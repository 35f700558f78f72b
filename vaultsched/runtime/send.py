"""Sending runs to the worker pool: each run's `dispatched` record, then its job in Redis; or,
before any of that, the run recorded as why it never went (a host naming no one queue, an
`if_changed` with nothing changed, a task no longer trusted here). Redis unreachable: the run
waits (`fallback = "wait"`) or runs here under the same run id (`"local"`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

from vaultsched.adapters.git import GitError
from vaultsched.adapters.inputs import last_inputs
from vaultsched.adapters.ledger import dispatched_record, iso_instant, new_run_id
from vaultsched.adapters.redisqueue import RedisError
from vaultsched.core.model import Run, Status
from vaultsched.core.pool import Payload, queue_for, seal
from vaultsched.runtime.context import PROMPT_OUTPUT_CHARS, context_for
from vaultsched.runtime.flights import Flight, PoolState
from vaultsched.runtime.gates import UNCHANGED, inputs_now
from vaultsched.runtime.messages import Job
from vaultsched.runtime.run import NOT_UTF8
from vaultsched.trust.fingerprint import fingerprint, read_body

log = logging.getLogger("vaultsched.daemon")


@dataclass
class Sender:
    state: PoolState
    head: str = ""  # the vault's commit, read once per batch of runs sent

    def new_batch(self) -> None:
        try:
            self.head = self.state.execution.recorder.workspace.git.head_commit()
        except (GitError, OSError):
            self.head = ""

    def send(self, job: Job, *, enqueue: bool = True) -> None:
        """The `dispatched` record, then the job; or the run recorded as why it never went."""
        recorder, now = (
            self.state.execution.recorder,
            self.state.execution.recorder.workspace.clock(),
        )
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
            queue = queue_for(self.state.pool.prefix, job.task.hosts)
        except ValueError as exc:
            self.state.record(job, run, Status.ERROR, str(exc))
            return
        flight = self._prepared(job, replace(run, queue=queue))
        if flight is None:
            return
        try:
            recorder.workspace.ledger.append(dispatched_record(flight.run, job.task.path))
        except OSError as exc:
            self.state.unrecorded(job, f"not dispatched: the ledger refused it: {exc}")
            return
        with self.state.changed:
            self.state.flights[run.run_id] = flight
        if not enqueue:
            return
        try:
            self._enqueue(flight)
        except Exception:  # a bug, not an outage: the run is closed, never left in flight
            log.exception("%s: run %s not sent", job.task.id, run.run_id)
            self.state.fail(flight, "not sent to the worker pool: failed inside vaultsched")

    def _prepared(self, job: Job, run: Run) -> Flight | None:
        """The run's flight; None if it ends here, before any worker (recorded so)."""
        workspace = self.state.execution.recorder.workspace
        task, root = job.task, workspace.vault.root
        inputs = inputs_now(root, task)
        if inputs is not None and inputs == last_inputs(root, task.id):
            self.state.record(job, run, Status.SKIPPED, UNCHANGED)
            return None
        body = read_body(root, task) if task.stdin == "body" else None
        if task.stdin == "body" and body is None:
            self.state.record(job, run, Status.ERROR, NOT_UTF8)
            return None
        if not workspace.trust.is_trusted(root, task, body):
            self.state.record(job, run, Status.UNTRUSTED, workspace.trust.refusal(root, task))
            return None
        return self.flight(job, run, body, inputs)

    def flight(self, job: Job, run: Run, body: str | None, inputs: str | None) -> Flight:
        """The run with its sealed payload: what a worker needs and a local run would read."""
        workspace = self.state.execution.recorder.workspace
        task, root = job.task, workspace.vault.root
        self.state.execution.rests.finish(task.id)  # its last run here, recorded first
        context = context_for(workspace, job, run)
        payload = Payload(
            run.run_id,
            run.queue,
            task.id,
            self.head,
            fingerprint(root, task, body),
            str(job.trigger),
            iso_instant(job.scheduled_for),
            job.attempt,
            run.upstream_run,
            task.timeout.total_seconds(),
            iso_instant(context.last_success),
            context.read(context.previous_output)[:PROMPT_OUTPUT_CHARS],
            context.read(context.upstream_output),
        )
        return Flight(job, run, run.queue, seal(self.state.key, payload), inputs)

    def _enqueue(self, flight: Flight) -> None:
        run = flight.run
        try:
            flight.enqueued = True
            self.state.pool.enqueue(
                flight.queue, flight.sealed, run.run_id, flight.job.task.timeout.total_seconds()
            )
        except RedisError as exc:
            flight.enqueued = False
            self.state.unreached(exc)
            if self.state.fallback == "local":
                self.state.take(run.run_id)
                log.info("%s: Redis unreachable, run %s runs here", run.task, run.run_id)
                here = replace(flight.job, run_id=run.run_id, dispatched_at=run.dispatched_at)
                self.state.local.execute(here)
            return
        self.state.reached()

    def enqueue_waiting(self) -> None:
        for flight in self.state.in_flight(enqueued=False):
            self._enqueue(flight)
            if not flight.enqueued and self.state.fallback == "wait":
                return  # still unreachable: try again later
