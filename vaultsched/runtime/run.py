"""One run on this machine: the task's slot, the trust check, the process, its log, cancel.

What is checked against the trusted fingerprint is checked once the slot is ours: with
`overlap: queue` the wait lasts a whole run, and a sync may rewrite the script meanwhile.

A run is prepared in this order: slot, trust, its context, log and environment, for a shell
command its very process (`runner.hold`: its shell, waiting for a line), then the durable start
record; the shell loads while the record is written, and runs nothing until it is let go (a
crash before that: it reads end of file and exits). A run decided ahead of its time
(`Job.start_at`) is prepared at once, its start record written with the others due at that
instant (see `starts`); just before the instant trust is checked again (by file identity: a
few `lstat` calls unless something changed); at the instant the process is let go, with one
pipe write. `if_changed` and `check` are asked at the run's own time, after the start record;
an argv command's process is started then. Once it has ended, its output is kept and its slot
let go at once; its finish record may wait while other runs wait for a worker (see `rests`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import signal
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

from vaultsched.adapters import statefs
from vaultsched.adapters.ledger import new_run_id
from vaultsched.adapters.runner import Held, ProcessResult
from vaultsched.core import layout
from vaultsched.core.model import Run, Status, Task, Trigger
from vaultsched.runtime.context import (
    OUTPUT_SUFFIX,
    Context,
    context_for,
    save_output,
    task_logs,
)
from vaultsched.runtime.gates import gated, inputs_now, keep_inputs
from vaultsched.runtime.messages import OVERLAP_SKIPPED, Job
from vaultsched.runtime.process import Process, ended, output_note, stdin_for, stopped
from vaultsched.runtime.record import INTERRUPTED_MESSAGE, Recorder
from vaultsched.runtime.rests import Rests
from vaultsched.runtime.starts import Starts
from vaultsched.trust.fingerprint import read_body

log = logging.getLogger(__name__)

KEEP_LOGS = 50
Echo = BinaryIO | None  # run-now's terminal, for the output as it comes
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
    starts: Starts = field(init=False)
    # Whether an ended run's rest may wait (see `rests`): runs wait for a worker. The executor's.
    put_off: Callable[[], bool] = lambda: False
    rests: Rests = field(default_factory=Rests, init=False)
    _spares: bool = field(default=True, init=False)  # logs made ahead can be used here

    def __post_init__(self) -> None:
        workspace = self.recorder.workspace
        self.starts = Starts(workspace.ledger.append_all, workspace.clock)

    def prepare(self, task: Task) -> None:
        """Make the task's log and state folders, if missing, and its next run's log, ahead
        of that run: it makes them on its way to the start otherwise, and on some file
        systems making a folder or a file costs as much as starting a short command."""
        root = self.recorder.workspace.vault.root
        for rel in (layout.logs_dir(task.id), layout.task_state_dir(task.id)):
            with contextlib.suppress(OSError), statefs.folder(root, rel, create=True):
                pass  # a link on the way is refused here quietly; the run says so
        self.spare(task)

    def spare(self, task: Task) -> None:
        """Make the log of the task's next run ahead (see `layout.spare_log`), if missing;
        none again where what is made could not be used (a file system that gives every
        file mode 777: each would cost a file for nothing)."""
        if not self._spares:
            return
        root, rel = self.recorder.workspace.vault.root, _spare(task)
        with contextlib.suppress(OSError):  # refused, or no folder: the run makes its log
            fd = statefs.open_file(root, rel, os.O_WRONLY | os.O_CREAT)
            try:
                shared = statefs.writable_by_others(os.fstat(fd))
            finally:
                os.close(fd)
            if shared:  # never `own`: the run would refuse it and make its log
                self._spares = False

    def run(self, job: Job, echo: BinaryIO | None = None) -> Run:
        """Run `job` (now, or at its `start_at`), honouring `overlap` against any other
        process running the task."""
        task = job.task
        try:
            with self.slot(task, wait=task.overlap == "queue") as acquired:
                self.rests.finish(task.id)  # its last run here is recorded before this one
                if not acquired:  # a fire time that did not run is missed; a person's is skipped
                    status = Status.SKIPPED if job.trigger is Trigger.MANUAL else Status.MISSED
                    return self._record(job, status, OVERLAP_SKIPPED)
                self.starts.working(job)
                return self._run_if_trusted(job, echo)
        except statefs.LinkRefused as exc:  # only ever before the process starts
            statefs.warn_refused(exc, f"{task.id} not run")
            return self._record(job, Status.ERROR, f"not run: {exc}")
        finally:
            self.starts.begun(job)

    def _record(self, job: Job, status: Status, message: str) -> Run:
        self._settle(job)
        return self.recorder.record(job.task, status, job.trigger, message, job.scheduled_for)

    def _settle(self, job: Job) -> None:
        """Before `job`'s end is recorded and landed: runs about to start go first."""
        self.starts.begun(job)
        self.starts.settle()

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
        """The run prepared (its context, log, environment and, for a shell command, its
        process, waiting), its start record, the check (if any), the command, the finish
        record. The process is started before the start record is on disk, and waits: it
        loads its shell while the record is written, and runs nothing until it is let go."""
        task, workspace = job.task, self.recorder.workspace
        root, run = workspace.vault.root, self._new_run(job)
        logs = task_logs(root, task.id)  # listed once: for the previous output and pruning
        context = context_for(workspace, job, run, logs or [])
        with _log_file(root, _log_rel(run), _spare(task)) as log_file:
            env, cwd, clock = task_environment(task, context), task_cwd(root, task), workspace.clock
            began = functools.partial(self.starts.begun, job)
            process = Process(task, run, env, cwd, log_file, clock, self.children, began)
            stdin = stdin_for(task, body, context)
            with process.held(task.command, stdin) as held:
                self._started(job, run)
                self.running[run.run_id] = (task, run)
                try:
                    finished, stdout, inputs = self._when_due(
                        job, process, stdin, body, echo, held=held
                    )
                finally:
                    self.running.pop(run.run_id, None)
        self._settle(job)
        rest = functools.partial(self._recorded, task, finished, stdout, inputs, logs)
        if finished.chain or not self.put_off():
            rest()
        else:
            self.rests.keep(task.id, rest)
        return finished

    def _recorded(
        self,
        task: Task,
        finished: Run,
        stdout: str | None,
        inputs: str | None,
        logs: list[statefs.Entry] | None,
    ) -> None:
        """The end of a run once its output is kept: its `if_changed` inputs marked as
        handled (with its record, so a run whose record a kill loses runs again), its finish
        record, its landing, the task's oldest logs pruned. Put off in a burst (see `rests`),
        but never for a run that starts `after` tasks: they are started again from its
        finish record after a crash."""
        root = self.recorder.workspace.vault.root
        if inputs is not None and finished.status is Status.SUCCESS:
            keep_inputs(root, task, inputs)
        self.recorder.finished(task, finished, stdout=stdout)
        _prune_logs(root, task.id, logs)

    def _when_due(
        self,
        job: Job,
        process: Process,
        stdin: bytes | None,
        body: str | None,
        echo: Echo,
        *,
        held: Held | None,
    ) -> tuple[Run, str | None, str | None]:
        """Start the command at its time (now, or at `start_at`), past trust and the gates:
        `held`, its process started already, let go then. The run as it ended, its stdout fit
        to hand on, and the `if_changed` digest."""
        task, root, clock = job.task, self.recorder.workspace.vault.root, process.clock
        finished = self._at_its_time(job, process, body, held)
        if finished is not None:
            return finished, None, None
        inputs = inputs_now(root, task)
        finished = gated(task, process, inputs, root)
        if finished is not None:
            return finished, None, inputs
        left = task.timeout - (clock() - process.run_record.started_at)
        result = process.run(task.command, left, stdin, echo, held)
        return (*self._finished(task, process, result), inputs)

    def _at_its_time(
        self, job: Job, process: Process, body: str | None, held: Held | None
    ) -> Run | None:
        """For a run prepared ahead: wait for its instant, then None if it may start, or the
        run as it ends if what it runs changed since it was checked (never started). A held
        process without gates is released then, with the others due at that instant."""
        if job.start_at is None:
            return None
        task, workspace = job.task, self.recorder.workspace
        trust, root = workspace.trust, workspace.vault.root
        release = None if held is None or task.check is not None or task.if_changed else held
        if self.starts.at_its_time(job, lambda: trust.is_trusted(root, task, body), release):
            return None
        process.note("vaultsched: changed since it was checked: not run\n")
        return stopped(
            process.run_record, Status.UNTRUSTED, trust.refusal(root, task), workspace.clock()
        )

    def _new_run(self, job: Job) -> Run:
        """The run `job` makes: it starts now, or at `start_at` if that is later."""
        workspace = self.recorder.workspace
        started = workspace.clock()
        if job.start_at is not None:  # prepared ahead: it starts then (or now, if late)
            started = max(started, job.start_at)
        return Run(
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

    def _started(self, job: Job, run: Run) -> None:
        """`run`'s start record, durable; raises OSError (then it never starts)."""
        if job.start_at is None:
            self.recorder.started(job.task, run)
        else:  # with the start records of the other runs due at that instant
            self.recorder.started(job.task, run, lambda record: self.starts.record(job, record))

    def _finished(
        self, task: Task, process: Process, result: ProcessResult
    ) -> tuple[Run, str | None]:
        """The run as it ended, and its stdout made fit to hand on (None: it never ran)."""
        run = process.run_record
        finished, stdout = ended(run, result, process.redact)
        if run.run_id in self._cancelled:
            self._cancelled.discard(run.run_id)
            finished = replace(finished, status=Status.INTERRUPTED, message=INTERRUPTED_MESSAGE)
        log_fd = _log_as_output(process.log, result, stdout)
        return self.handed_on(task, finished, stdout, log_fd), stdout

    def handed_on(
        self, task: Task, finished: Run, stdout: str | None, log_fd: int | None = None
    ) -> Run:
        """`finished` with the `after` tasks it starts and, if its command ran, its stdout
        kept for them and the next run (wherever the run executed). `log_fd`: the run's log,
        if it holds exactly that stdout (see `save_output`)."""
        chain = tuple(self.downstream(finished))
        if stdout is None:
            return replace(finished, chain=chain)
        root = self.recorder.workspace.vault.root
        save_output(root, finished, stdout, durable=bool(chain), log_fd=log_fd)
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
        """A per-task lock shared by every process on this host (daemon and CLI alike): a
        byte of one file where the system has such locks (a task's first run makes no file
        for it: on some file systems, making a file is most of a short run's kernel time),
        else a file of the task's own."""
        root = self.recorder.workspace.vault.root
        if statefs.BYTE_LOCKS:
            held = statefs.locked_key(root, layout.TASK_LOCKS, task.id, wait=wait)
        else:
            held = statefs.locked(root, layout.running_lock(task.id), wait=wait)
        with held as acquired:
            yield acquired


@contextlib.contextmanager
def _log_file(root: Path, rel: str, spare: str) -> Iterator[BinaryIO | None]:
    """The run's full log, opened for appending (the `spare` made ahead, if there is one);
    None (the run goes on) if refused."""
    flags = os.O_WRONLY | os.O_APPEND
    try:
        fd = statefs.claim(root, spare, rel, flags)
        if fd is None:
            fd = statefs.open_file(root, rel, flags | os.O_CREAT)
    except OSError as exc:
        statefs.warn_refused(exc, "run log not written")
        yield None
        return
    # Unbuffered: every chunk is on disk as soon as it is read, for `tail -f`.
    with os.fdopen(fd, "ab", buffering=0) as handle:
        yield handle


def _log_as_output(log: BinaryIO | None, result: ProcessResult, stdout: str | None) -> int | None:
    """The log's descriptor if the log holds exactly the bytes `stdout` is kept as: only the
    command's stdout went to it (no stderr, no line of vaultsched's), none cut, and nothing
    was redacted or cleaned out of it. None otherwise (or if it cannot be told)."""
    if log is None or stdout is None or result.stdout_cut:
        return None
    raw = result.stdout
    if result.output_bytes != len(raw) or stdout.encode() != raw:
        return None
    try:
        fd = log.fileno()
        return fd if os.fstat(fd).st_size == len(raw) else None
    except (OSError, ValueError):
        return None


def _prune_logs(root: Path, task_id: str, before: list[statefs.Entry] | None) -> None:
    """Keep the task's last KEEP_LOGS logs and outputs. `before`: what its log folder held
    as the run began: a run adds one of each, so under KEEP_LOGS of each needs no listing (runs
    of the task elsewhere on this host since, once its slot was let go, may leave a few more
    for the next run to prune). Only the oldest by name, which is by start, are removed."""
    if before is None:
        return  # refused (a link): already said when the log was not written
    if all(len(_named(before, suffix)) < KEEP_LOGS for suffix in (".log", OUTPUT_SUFFIX)):
        return
    folder = layout.logs_dir(task_id)
    try:
        found = statefs.entries(root, folder)
    except OSError:
        return
    for suffix in (".log", OUTPUT_SUFFIX):
        for old in _named(found, suffix)[:-KEEP_LOGS]:
            with contextlib.suppress(OSError):
                statefs.unlink(root, f"{folder}/{old}")


def _named(found: list[statefs.Entry], suffix: str) -> list[str]:
    return [e.name for e in found if e.kind == "file" and e.name.endswith(suffix)]


def task_environment(task: Task, context: Context) -> dict[str, str]:
    """A run's environment: this process's, the run's VAULTSCHED_* variables, the task's `env`."""
    env = dict(os.environ)
    # Python then reads and writes bytecode outside the vault: a synced `__pycache__/*.pyc`
    # is never loaded in place of a trusted source, and runs leave nothing to fingerprint.
    if "PYTHONPYCACHEPREFIX" not in env:
        env["PYTHONPYCACHEPREFIX"] = _pycache_prefix(env.get("XDG_CACHE_HOME"), env.get("HOME"))
    # Python would put a script's own folder first on sys.path, so a synced `json.py` beside
    # a trusted script would shadow the standard library unseen. A task's `env` may undo it.
    env["PYTHONSAFEPATH"] = "1"
    for secret in ("VAULTSCHED_POOL_KEY", "VAULTSCHED_REDIS_URL"):  # the pool's, no task's
        env.pop(secret, None)
    env.update(context.variables())
    env.update(task.env)
    return env


@functools.lru_cache(maxsize=8)
def _pycache_prefix(xdg_cache_home: str | None, home: str | None) -> str:
    """`layout.pycache_dir()` for the environment these name (the variables it reads): a
    path built once, not at every run's start."""
    return str(layout.pycache_dir())


def task_cwd(root: Path, task: Task) -> Path:
    return root / Path(task.cwd).expanduser() if task.cwd else root


def _log_rel(run: Run) -> str:
    return layout.run_log(run.task, run.run_id)


def _spare(task: Task) -> str:
    return layout.spare_log(task.id)
