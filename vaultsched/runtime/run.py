"""One run on this machine: the task's slot, the trust check, the process, its log, cancel.

What is checked against the trusted fingerprint is checked once the slot is ours: with
`overlap: queue` the wait lasts a whole run, and a sync may rewrite the script meanwhile.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from vaultsched.adapters import statefs
from vaultsched.adapters.ledger import new_run_id
from vaultsched.adapters.runner import ProcessResult, run_process
from vaultsched.core import layout
from vaultsched.core.contain import describe
from vaultsched.core.model import Run, Status, Task, Trigger
from vaultsched.core.output import clean_output, status_of
from vaultsched.core.redact import Redactor, redactor_for
from vaultsched.runtime.messages import OVERLAP_SKIPPED, Job
from vaultsched.runtime.record import INTERRUPTED_MESSAGE, Recorder
from vaultsched.trust.fingerprint import read_body

log = logging.getLogger(__name__)

KEEP_LOGS = 50
NOT_UTF8 = "stdin: body: the note is not UTF-8 text (or cannot be read): nothing was run"


@dataclass
class Execution:
    """Runs jobs on this machine; thread-safe (each job on its caller's thread)."""

    recorder: Recorder
    _children: dict[str, int] = field(default_factory=dict)  # run_id -> process group
    _cancelled: set[str] = field(default_factory=set)

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
        return self._execute(job, echo, None if body is None else body.encode("utf-8"))

    def _execute(self, job: Job, echo: BinaryIO | None, stdin: bytes | None) -> Run:
        workspace = self.recorder.workspace
        started = workspace.clock()
        run = Run(
            new_run_id(started),
            job.task.id,
            Status.RUNNING,
            job.trigger,
            started,
            workspace.vault.host,
            job.attempt,
            job.scheduled_for,
        )
        self.recorder.started(job.task, run)
        result, redact = self._process(job.task, run, echo, stdin)
        status, message = status_of(result)
        if run.run_id in self._cancelled:
            self._cancelled.discard(run.run_id)
            status, message = Status.INTERRUPTED, INTERRUPTED_MESSAGE
        # started_at stays the start record's, so both records land in one ledger file.
        finished = replace(
            run,
            status=status,
            finished_at=result.finished_at,
            exit_code=result.exit_code,
            duration_s=round((result.finished_at - result.started_at).total_seconds(), 3),
            output_tail=clean_output(result.tail, redact=redact),
            message=redact(message),
            log=_log_rel(run),
        )
        self.recorder.finished(job.task, finished)
        self._prune_logs(job.task.id)
        return finished

    def _process(
        self, task: Task, run: Run, echo: BinaryIO | None, stdin: bytes | None
    ) -> tuple[ProcessResult, Redactor]:
        env = self._environment(task, run)
        redact = redactor_for(env)
        clock = self.recorder.workspace.clock
        try:
            with self._log_file(_log_rel(run)) as log_file:
                result = run_process(
                    task.command,
                    cwd=self._cwd(task),
                    env=env,
                    stdin=stdin,
                    timeout=task.timeout.total_seconds(),
                    log=log_file,
                    echo=echo,
                    redact=redact,
                    now=clock,
                    on_start=lambda pid: self._children.__setitem__(run.run_id, pid),
                )
        except Exception as exc:  # the start record is written: it must get its finish
            result = self._not_started(task, run.started_at, exc)
        self._children.pop(run.run_id, None)
        return result, redact

    def cancel(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Signal every running process group; those runs land as `interrupted`."""
        for run_id, pgid in list(self._children.items()):
            self._cancelled.add(run_id)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)
        return len(self._children)

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

    def _environment(self, task: Task, run: Run) -> dict[str, str]:
        vault = self.recorder.workspace.vault
        env = dict(os.environ)
        # Python then reads and writes bytecode outside the vault: a synced `__pycache__/*.pyc`
        # is never loaded in place of a trusted source, and runs leave nothing to fingerprint.
        env.setdefault("PYTHONPYCACHEPREFIX", str(layout.pycache_dir()))
        # Python would put a script's own folder first on sys.path, so a synced `json.py` beside
        # a trusted script would shadow the standard library unseen. A task's `env` may undo it.
        env["PYTHONSAFEPATH"] = "1"
        env.update(
            VAULTSCHED_VAULT=str(vault.root),
            VAULTSCHED_TASK=task.id,
            VAULTSCHED_NOTE=str(vault.path(task.path)),
            VAULTSCHED_RUN_ID=run.run_id,
            VAULTSCHED_TRIGGER=str(run.trigger),
        )
        env.update(task.env)
        return env

    def _cwd(self, task: Task) -> Path:
        root = self.recorder.workspace.vault.root
        return root / Path(task.cwd).expanduser() if task.cwd else root

    def _not_started(self, task: Task, started: datetime, exc: Exception) -> ProcessResult:
        """The result of a run that failed before its process existed: status `error`."""
        message = f"internal error before the start: {describe(exc)}"
        log.warning("%s: %s", task.id, message)
        now = self.recorder.workspace.clock()
        return ProcessResult(None, None, False, message, b"", 0, started, now, None)

    def _prune_logs(self, task_id: str) -> None:
        root = self.recorder.workspace.vault.root
        folder = layout.logs_dir(task_id)
        try:
            found = statefs.entries(root, folder)
        except OSError:
            return  # refused (a link): already said when the log was not written
        logs = [e.name for e in found if e.kind == "file" and e.name.endswith(".log")]
        for old in logs[:-KEEP_LOGS]:
            with contextlib.suppress(OSError):
                statefs.unlink(root, f"{folder}/{old}")


def _log_rel(run: Run) -> str:
    return layout.run_log(run.task, run.run_id)
