"""One run on this machine: the task's slot, the trust check, the process, its log, cancel.

What is checked against the trusted fingerprint is checked once the slot is ours: with
`overlap: queue` the wait lasts a whole run, and a sync may rewrite the script meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

from vaultsched.adapters import statefs
from vaultsched.adapters.ledger import new_run_id
from vaultsched.adapters.runner import ProcessResult
from vaultsched.core import layout
from vaultsched.core.model import Run, Status, Task, Trigger
from vaultsched.core.redact import Redactor
from vaultsched.runtime.context import OUTPUT_SUFFIX, Context, context_for, save_output
from vaultsched.runtime.gates import gated, inputs_now, keep_inputs
from vaultsched.runtime.messages import OVERLAP_SKIPPED, Job
from vaultsched.runtime.process import Process, ended, output_note, stdin_for
from vaultsched.runtime.record import INTERRUPTED_MESSAGE, Recorder
from vaultsched.trust.fingerprint import read_body

log = logging.getLogger(__name__)

KEEP_LOGS = 50
NOT_UTF8 = "stdin: body: the note is not UTF-8 text (or cannot be read): nothing was run"


@dataclass
class Execution:
    """Runs jobs on this machine; thread-safe (each job on its caller's thread)."""

    recorder: Recorder
    children: dict[str, int] = field(default_factory=dict)  # run_id -> process group
    _cancelled: set[str] = field(default_factory=set)
    # run id -> (task, run) of each run going on now, for the stuck-run watch
    running: dict[str, tuple[Task, Run]] = field(default_factory=dict)
    # The `after` tasks a finished run starts (ids); the daemon's index answers, or run-now's.
    downstream: Callable[[Run], Iterable[str]] = lambda run: ()

    def run(self, job: Job, echo: BinaryIO | None = None) -> Run:
        """Run `job` now, honouring `overlap` against any other process running the task."""
        task = job.task
        try:
            with self.slot(task, wait=task.overlap == "queue") as acquired:
                if not acquired:  # a fire time that did not run is missed; a person's is skipped
                    status = Status.SKIPPED if job.trigger is Trigger.MANUAL else Status.MISSED
                    return self._record(job, status, OVERLAP_SKIPPED)
                return self._run_if_trusted(job, echo)
        except statefs.LinkRefused as exc:  # only ever before the process starts
            statefs.warn_refused(exc, f"{task.id} not run")
            return self._record(job, Status.ERROR, f"not run: {exc}")

    def _record(self, job: Job, status: Status, message: str) -> Run:
        return self.recorder.record(job.task, status, job.trigger, message, job.scheduled_for)

    def _run_if_trusted(self, job: Job, echo: BinaryIO | None) -> Run:
        task, root = job.task, self.recorder.workspace.vault.root
        # The body is read once: what is checked against the trusted fingerprint is what is piped.
        body = read_body(root, task) if task.stdin == "body" else None
        if task.stdin == "body" and body is None:  # never pipe nothing where a prompt was meant
            return self._record(job, Status.ERROR, NOT_UTF8)
        trust = self.recorder.workspace.trust
        if not trust.is_trusted(root, task, body):
            return self._record(job, Status.UNTRUSTED, trust.refusal(root, task))
        return self._execute(job, echo, body)

    def _execute(self, job: Job, echo: BinaryIO | None, body: str | None) -> Run:
        """The start record, the check (if any), the command, the finish record."""
        run = self._started(job)
        self.running[run.run_id] = (job.task, run)
        try:
            return self._run_started(job, run, echo, body)
        finally:
            self.running.pop(run.run_id, None)

    def _run_started(self, job: Job, run: Run, echo: BinaryIO | None, body: str | None) -> Run:
        task, workspace = job.task, self.recorder.workspace
        context = context_for(workspace, job, run)
        root = workspace.vault.root
        inputs = inputs_now(root, task)
        with self._log_file(_log_rel(run)) as log_file:
            env, cwd, clock = task_environment(task, context), self.cwd(task), workspace.clock
            process = Process(task, run, env, cwd, log_file, clock, self.children)
            finished, stdout = gated(task, process, inputs, root), None
            if finished is None:
                left = task.timeout - (workspace.clock() - run.started_at)
                result = process.run(task.command, left, stdin_for(task, body, context), echo)
                finished, stdout = self._finished(task, run, result, process.redact)
        if inputs is not None and finished.status is Status.SUCCESS:
            keep_inputs(root, task, inputs)
        self.recorder.finished(task, finished, stdout=stdout)
        self._prune_logs(task.id)
        return finished

    def _started(self, job: Job) -> Run:
        workspace = self.recorder.workspace
        started = workspace.clock()
        run = Run(
            job.run_id or new_run_id(started),
            job.task.id,
            Status.RUNNING,
            job.trigger,
            started,
            workspace.vault.host,
            job.attempt,
            job.scheduled_for,
            upstream_run=job.upstream.run_id if job.upstream else "",
            dispatched_at=job.dispatched_at,
        )
        self.recorder.started(job.task, run)
        return run

    def _finished(
        self, task: Task, run: Run, result: ProcessResult, redact: Redactor
    ) -> tuple[Run, str | None]:
        """The run as it ended, and its stdout made fit to hand on (None: it never ran)."""
        finished, stdout = ended(run, result, redact)
        if run.run_id in self._cancelled:
            self._cancelled.discard(run.run_id)
            finished = replace(finished, status=Status.INTERRUPTED, message=INTERRUPTED_MESSAGE)
        return self.handed_on(task, finished, stdout), stdout

    def handed_on(self, task: Task, finished: Run, stdout: str | None) -> Run:
        """`finished` with the `after` tasks it starts and, if its command ran, its stdout
        kept for them and the next run (wherever the run executed)."""
        chain = tuple(self.downstream(finished))
        if stdout is None:
            return replace(finished, chain=chain)
        save_output(self.recorder.workspace.vault.root, finished, stdout, durable=bool(chain))
        return replace(finished, chain=chain, output_note=output_note(task, finished))

    def cancel(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Signal every running process group; those runs land as `interrupted`."""
        for run_id, pgid in list(self.children.items()):
            self._cancelled.add(run_id)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)
        return len(self.children)

    def idle(self, task: Task) -> bool:
        """True if no process on this host is running `task` right now (a refused lock holds
        nothing, so it counts as idle)."""
        try:
            with self.slot(task, wait=False) as acquired:
                return acquired
        except statefs.LinkRefused:
            return True

    @contextlib.contextmanager
    def slot(self, task: Task, *, wait: bool) -> Iterator[bool]:
        """A per-task lock shared by every process on this host (daemon and CLI alike)."""
        rel = layout.running_lock(task.id)
        with statefs.locked(self.recorder.workspace.vault.root, rel, wait=wait) as acquired:
            yield acquired

    @contextlib.contextmanager
    def _log_file(self, rel: str) -> Iterator[BinaryIO | None]:
        """The run's full log, opened for appending; None (the run goes on) if refused."""
        root = self.recorder.workspace.vault.root
        try:
            fd = statefs.open_file(root, rel, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        except OSError as exc:
            statefs.warn_refused(exc, "run log not written")
            yield None
            return
        # Unbuffered: every chunk is on disk as soon as it is read, for `tail -f`.
        with os.fdopen(fd, "ab", buffering=0) as handle:
            yield handle

    def cwd(self, task: Task) -> Path:
        return task_cwd(self.recorder.workspace.vault.root, task)

    def _prune_logs(self, task_id: str) -> None:
        root = self.recorder.workspace.vault.root
        folder = layout.logs_dir(task_id)
        try:
            found = statefs.entries(root, folder)
        except OSError:
            return  # refused (a link): already said when the log was not written
        for suffix in (".log", OUTPUT_SUFFIX):
            kept = [e.name for e in found if e.kind == "file" and e.name.endswith(suffix)]
            for old in kept[:-KEEP_LOGS]:
                with contextlib.suppress(OSError):
                    statefs.unlink(root, f"{folder}/{old}")


def task_environment(task: Task, context: Context) -> dict[str, str]:
    """A run's environment: this process's, the run's VAULTSCHED_* variables, the task's `env`."""
    env = dict(os.environ)
    # Python then reads and writes bytecode outside the vault: a synced `__pycache__/*.pyc`
    # is never loaded in place of a trusted source, and runs leave nothing to fingerprint.
    env.setdefault("PYTHONPYCACHEPREFIX", str(layout.pycache_dir()))
    # Python would put a script's own folder first on sys.path, so a synced `json.py` beside
    # a trusted script would shadow the standard library unseen. A task's `env` may undo it.
    env["PYTHONSAFEPATH"] = "1"
    for secret in ("VAULTSCHED_POOL_KEY", "VAULTSCHED_REDIS_URL"):  # the pool's, no task's
        env.pop(secret, None)
    env.update(context.variables())
    env.update(task.env)
    return env


def task_cwd(root: Path, task: Task) -> Path:
    return root / Path(task.cwd).expanduser() if task.cwd else root


def _log_rel(run: Run) -> str:
    return layout.run_log(run.task, run.run_id)
