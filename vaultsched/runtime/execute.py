"""Where a run executes. Dispatch submits `Job`s to an `Executor` and hears back through
`on_done`, once per job, whatever happened; the run itself is recorded and landed by the
`Recorder` the executor was given, so a run lands the same way wherever it executed."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

from vaultsched.core.model import Run, Status
from vaultsched.runtime.messages import Job
from vaultsched.runtime.run import Execution

log = logging.getLogger(__name__)

# Told once per job: the run as recorded, or None if nothing was run (a dry run).
OnDone = Callable[[Job, Run | None], None]


class Executor(Protocol):
    def submit(self, job: Job) -> None: ...

    def cancel(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Signal every running job; the number signalled."""
        ...

    def shutdown(self) -> None:
        """Wait for every submitted job to be done."""
        ...


class LocalExecutor:
    """Runs on this machine, on a pool of `max_parallel` threads."""

    def __init__(self, execution: Execution, max_parallel: int, on_done: OnDone) -> None:
        self.execution = execution
        self.on_done = on_done
        self._pool = ThreadPoolExecutor(max_parallel, "vaultsched-run")

    def submit(self, job: Job) -> None:
        self._pool.submit(self._work, job)

    def _work(self, job: Job) -> None:
        try:
            run: Run | None = self.execution.run(job)
        except Exception:  # a bug in vaultsched must not kill the worker or wedge the task
            log.exception("%s: run failed inside vaultsched", job.task.id)
            workspace = self.execution.recorder.workspace
            now = workspace.clock()
            host = workspace.vault.host
            run = Run(
                "",
                job.task.id,
                Status.ERROR,
                job.trigger,
                now,
                host,
                job.attempt,
                job.scheduled_for,
            )
        self.on_done(job, run)

    def cancel(self, sig: signal.Signals = signal.SIGTERM) -> int:
        return self.execution.cancel(sig)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)
