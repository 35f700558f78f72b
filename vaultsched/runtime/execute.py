"""Where a run executes. Dispatch submits `Job`s to an `Executor` and hears back through
`on_done`, once per job, whatever happened; the run itself is recorded and landed by the
`Recorder` the executor was given, so a run lands the same way wherever it executed. An
executor also tells its `JobEvents` (the daemon's metrics) when each job is submitted, taken up
by a worker and over."""

from __future__ import annotations

import logging
import queue
import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from vaultsched.core.model import Run, Status, Task
from vaultsched.runtime.messages import Job
from vaultsched.runtime.restart import lost_unseen
from vaultsched.runtime.run import Execution

log = logging.getLogger(__name__)

# Told once per job: the run as recorded, or None if nothing was run (a dry run).
OnDone = Callable[[Job, Run | None], None]


class JobEvents(Protocol):
    """What an executor tells as jobs go through it; `started` and `finished` from a worker."""

    def submitted(self, job: Job) -> None: ...

    def started(self, job: Job) -> None: ...

    def finished(self, job: Job) -> None: ...


class NoEvents:
    def submitted(self, job: Job) -> None:
        pass

    def started(self, job: Job) -> None:
        pass

    def finished(self, job: Job) -> None:
        pass


class Executor(Protocol):
    def submit(self, job: Job) -> None: ...

    def prepare(self, tasks: Iterable[Task]) -> None:
        """Make ahead what these tasks' runs here need (they are due soon), off the path
        from their due instant to their start; a run never waits for it."""
        ...

    def cancel(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Signal every running job; the number signalled."""
        ...

    def shutdown(self) -> None:
        """Wait for every submitted job to be done."""
        ...

    def let_go(self) -> list[Job]:
        """Stop waiting for the runs that go on elsewhere (the daemon stops); those jobs."""
        ...

    def adopt(self, runs: Iterable[Run], tasks: Mapping[str, Task]) -> list[Job]:
        """Take over the runs an earlier daemon handed to a worker pool; the jobs taken."""
        ...


# s a report may wait for the loop while runs wait for a worker (see `Reports`)
REPORT_DELAY = 0.1


class Reports:
    """The executor's `on_done`, from any thread, taken on the daemon's main loop: the only way
    a result comes back to it.

    A report wakes the loop at once, but while runs wait for a worker (more were due at once
    than `max_parallel`) it wakes it within REPORT_DELAY: the loop's work for each report
    would take the interpreter from the runs still to start, one report at a time, and nothing
    it decides starts a run sooner (a run it submits queues behind the same workers). Whenever
    the loop wakes it takes every report first, so no fire is decided on an older picture."""

    def __init__(
        self,
        wake: Callable[[], None],
        wake_after: Callable[[float], None] | None = None,
        backlog: Callable[[], int] = lambda: 0,
    ) -> None:
        self._queue: queue.SimpleQueue[tuple[Job, Run | None]] = queue.SimpleQueue()
        self._wake = wake
        self._wake_after = wake_after
        self.backlog = backlog  # runs waiting for a worker

    def put(self, job: Job, run: Run | None) -> None:
        self._queue.put((job, run))
        if self._wake_after is not None and self.backlog():
            self._wake_after(REPORT_DELAY)
        else:
            self._wake()

    def take(self) -> Iterator[tuple[Job, Run | None]]:
        """Each report in turn, until none is left (one put meanwhile included)."""
        while not self._queue.empty():
            yield self._queue.get()


class LocalExecutor:
    """Runs on this machine, on a pool of `max_parallel` threads."""

    def __init__(
        self,
        execution: Execution,
        max_parallel: int,
        on_done: OnDone,
        events: JobEvents | None = None,
    ) -> None:
        self.execution = execution
        self.on_done = on_done
        self.events: JobEvents = events or NoEvents()
        self._pool = ThreadPoolExecutor(max_parallel, "vaultsched-run")
        self._waiting = 0  # jobs submitted that no worker has taken up yet
        self._count = threading.Lock()
        self._ahead = Ahead(execution.prepare)
        execution.put_off = lambda: self._waiting > 0

    @property
    def waiting(self) -> int:
        """Jobs waiting for a worker: more were due at once than `max_parallel`."""
        return self._waiting

    @property
    def busy(self) -> bool:
        """Runs wait for a worker, or ended runs for their finish record (`Execution.rests`)."""
        return self._waiting > 0 or self.execution.rests.pending

    def submit(self, job: Job) -> None:
        self.events.submitted(job)
        self.execute(job)

    def prepare(self, tasks: Iterable[Task]) -> None:
        self._ahead.put(tasks)

    def execute(self, job: Job) -> None:
        """Run `job` here (already counted as submitted)."""
        if job.start_at is not None:  # its start record is to be written with its instant's
            self.execution.starts.expect(job)
        with self._count:
            self._waiting += 1
        self._pool.submit(self._work, job)

    def _work(self, job: Job) -> None:
        with self._count:
            self._waiting -= 1
        self.events.started(job)
        try:
            run: Run | None = self.execution.run(job)
        except Exception:  # a bug in vaultsched must not kill the worker or wedge the task
            log.exception("%s: run failed inside vaultsched", job.task.id)
            run = unrecorded(self.execution, job)
        self.events.finished(job)
        self.on_done(job, run)
        if not self._waiting:  # in a burst, off the way of the runs waiting to start
            self.execution.rests.drain()
            self.execution.spare(job.task)

    def cancel(self, sig: signal.Signals = signal.SIGTERM) -> int:
        return self.execution.cancel(sig)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)
        self.execution.rests.close()

    def let_go(self) -> list[Job]:
        return []  # every run is here

    def adopt(self, runs: Iterable[Run], tasks: Mapping[str, Task]) -> list[Job]:
        """No pool to collect them from (`[executor]` names none now): each is lost."""
        for run in runs:
            lost_unseen(self.execution.recorder, run, "[executor] names no worker pool now")
        return []


class Ahead:
    """`prepare(task)` for each task handed over, once per task id, in the order they came,
    on a thread of its own (started by the first): what a run would otherwise do on its way
    to the start. Only ever a head start: what it has not done (or could not), the run does."""

    def __init__(self, prepare: Callable[[Task], None]) -> None:
        self._prepare = prepare
        self._tasks: queue.SimpleQueue[Task] = queue.SimpleQueue()
        self._seen: set[str] = set()  # only the main loop hands tasks over
        self._thread: threading.Thread | None = None

    def put(self, tasks: Iterable[Task]) -> None:
        for task in tasks:
            if task.id not in self._seen:
                self._seen.add(task.id)
                self._tasks.put(task)
        if self._thread is None and self._seen:
            self._thread = threading.Thread(target=self._loop, name="vaultsched-ahead", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while True:
            task = self._tasks.get()
            try:
                self._prepare(task)
            except Exception:  # the run does it again, and says what went wrong
                log.debug("%s: not prepared ahead", task.id, exc_info=True)


def unrecorded(execution: Execution, job: Job, message: str = "") -> Run:
    """An `error` run for `job` that no record holds (a bug inside vaultsched, a ledger that
    refused the write): told to dispatch, so the task is not wedged, and shown nowhere."""
    workspace = execution.recorder.workspace
    now, host = workspace.clock(), workspace.vault.host
    return Run("", job.task.id, Status.ERROR, job.trigger, now, host, job.attempt,
               job.scheduled_for, now, message=message)  # fmt: skip
