"""Running one task and landing its result: ledger, note, digest, log, commit.

The CLI's `run-now` and the daemon's scheduler both go through `Engine`, so a run lands the
same way whoever started it. Order matters for crash safety: the `start` record is durable
before the process exists, the `finish` record before any view is touched, and the views
(note run block, digest) are rebuilt from the ledger, so a crash at any point leaves
something the next start can repair.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import queue
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path
from typing import BinaryIO

import arrow

from vaultsched import blocks, notify, statefs, views
from vaultsched.config import GITIGNORE, STATE_GITIGNORE
from vaultsched.contain import describe
from vaultsched.fingerprint import read_body
from vaultsched.git import Edit, Git, GitError
from vaultsched.ledger import Ledger, finish_record, new_run_id, start_record
from vaultsched.model import FAILURES, Run, Status, Task, Trigger
from vaultsched.notes import NoteWriter, Outcome
from vaultsched.redact import redactor_for
from vaultsched.runner import ProcessResult, clean_output, run_process
from vaultsched.trust import TrustStore, approve_command, pycache_dir
from vaultsched.vault import Vault

log = logging.getLogger(__name__)

KEEP_LOGS = 50
_FLUSH = "flush"  # on the landing queue: commit what has landed
LANDING_BATCH = 100


def utc_now() -> datetime:
    return datetime.now(UTC)


def digest_path(vault: Vault, day: date) -> str:
    name = arrow.Arrow(day.year, day.month, day.day).format(vault.config.digest.format)
    return f"{vault.config.digest.folder}/{name}.md"


def _ours_if_absent(text: str) -> str:
    return text or GITIGNORE


# Committed with every commit: a vault never `init`ed gets `.vaultsched/.gitignore` from the
# first command that creates `.vaultsched/`, and it must not linger as an untracked file. Once
# git has it, it is the person's to change.
STATE_IGNORE_EDIT = Edit(STATE_GITIGNORE, _ours_if_absent, create=True)


def block_edit(rel: str, markers: blocks.Markers, inner: str, *, create: bool) -> Edit:
    """The one transform a view write makes: written to disk, and applied again by git to
    the committed (and staged) version of the note."""
    return Edit(rel, functools.partial(blocks.splice_block, markers=markers, inner=inner), create)


def commit_message(runs: Sequence[Run]) -> str:
    if len(runs) == 1:
        return f"vaultsched: {runs[0].status} {runs[0].task}"
    failed = sum(r.status in FAILURES for r in runs)
    return f"vaultsched: {len(runs)} runs ({failed} failed)"


def status_of(result: ProcessResult) -> tuple[Status, str]:
    if result.error:
        return Status.ERROR, result.error
    if result.timed_out:
        return Status.TIMEOUT, "timed out: the process group was terminated"
    if result.exit_code == 0:
        return Status.SUCCESS, ""
    if result.signal is not None:
        return Status.FAILED, f"killed by signal {result.signal}"
    return Status.FAILED, ""


@dataclass
class Engine:
    vault: Vault
    clock: Callable[[], datetime] = utc_now
    writer: NoteWriter | None = None
    # What each file written since the last commit should get in it (the latest edit).
    _pending: dict[str, Edit] = field(default_factory=dict)
    _pending_runs: list[Run] = field(default_factory=list)
    _warned_no_git: bool = False
    # Views are rebuilt one batch at a time, so two runs never race on the same digest.
    _land_lock: threading.RLock = field(default_factory=threading.RLock)
    # Only for the pending sets: workers must never wait on a landing in progress.
    _pending_lock: threading.Lock = field(default_factory=threading.Lock)
    _children: dict[str, int] = field(default_factory=dict)  # run_id -> process group
    # Views a write could not land yet (a note kept changing under it): retried at each flush.
    _stale_notes: dict[str, Task] = field(default_factory=dict)
    _stale_days: set[date] = field(default_factory=set)
    _cancelled: set[str] = field(default_factory=set)
    background_landing: bool = False  # the daemon lands runs on a thread of their own
    on_landed: Callable[[], None] | None = None
    _inbox: queue.Queue[tuple[Task, Run] | str | None] = field(default_factory=queue.Queue)
    _lander: threading.Thread | None = None
    trust: TrustStore = field(default_factory=TrustStore)

    def __post_init__(self) -> None:
        statefs.prepare_state_dir(self.vault.root)  # before the first lock, log or ledger line
        self.ledger = Ledger(self.vault.root, self.vault.host)
        self.git = Git(self.vault.root, self.vault.host)
        self._exclude_state()
        if self.writer is None:
            self.writer = NoteWriter(self.vault.root)
        if self.background_landing:
            self._lander = threading.Thread(
                target=self._landing_loop, name="vaultsched-land", daemon=True
            )
            self._lander.start()

    def _exclude_state(self) -> None:
        """Logs and state out of git even if a pull rewrites `.vaultsched/.gitignore`."""
        if not self.vault.config.git.commit:
            return
        try:
            self.git.exclude_state()
        except (GitError, OSError) as exc:
            log.warning("could not add vaultsched's rules to git's info/exclude: %s", exc)

    # -- running -----------------------------------------------------------------------------

    def run(
        self,
        task: Task,
        trigger: Trigger,
        *,
        scheduled_for: datetime | None = None,
        attempt: int = 1,
        echo: BinaryIO | None = None,
    ) -> Run:
        """Run `task` now, honouring `overlap` against any other process running it."""
        try:
            with self._task_slot(task) as acquired:
                if not acquired:
                    message = "the previous run was still running (overlap: skip)"
                    return self.record(task, Status.SKIPPED, trigger, message, scheduled_for)
                return self._run_if_trusted(task, trigger, scheduled_for, attempt, echo)
        except statefs.LinkRefused as exc:  # only ever before the process starts
            return self._refused(task, trigger, scheduled_for, exc)

    def _run_if_trusted(
        self,
        task: Task,
        trigger: Trigger,
        scheduled_for: datetime | None,
        attempt: int,
        echo: BinaryIO | None,
    ) -> Run:
        """Checked only once the slot is ours: with `overlap: queue` the wait lasts a whole
        run, and a sync may rewrite the script meanwhile; what runs is what is checked now."""
        # The body is read once: what is checked against the trusted fingerprint is what is piped.
        body = read_body(self.vault.root, task) if task.stdin == "body" else None
        if task.stdin == "body" and body is None:  # never pipe nothing where a prompt was meant
            message = "stdin: body: the note is not UTF-8 text (or cannot be read): nothing was run"
            return self.record(task, Status.ERROR, trigger, message, scheduled_for)
        if not self.trust.is_trusted(self.vault.root, task, body):
            message = self.trust.refusal(self.vault.root, task)
            return self.record(task, Status.UNTRUSTED, trigger, message, scheduled_for)
        stdin = None if body is None else body.encode("utf-8")
        return self._run_locked(task, trigger, scheduled_for, attempt, echo=echo, stdin=stdin)

    def _refused(
        self, task: Task, trigger: Trigger, scheduled_for: datetime | None, exc: OSError
    ) -> Run:
        """The task's lock or its ledger file is reached through a symlink: not run. Recorded
        as an error where the ledger can still be written, logged in any case."""
        statefs.warn_refused(exc, f"{task.id} not run")
        return self.record(task, Status.ERROR, trigger, f"not run: {exc}", scheduled_for)

    def _run_locked(
        self,
        task: Task,
        trigger: Trigger,
        scheduled_for: datetime | None,
        attempt: int,
        *,
        echo: BinaryIO | None,
        stdin: bytes | None,
    ) -> Run:
        started = self.clock()
        run = Run(
            run_id=new_run_id(started),
            task=task.id,
            status=Status.RUNNING,
            trigger=trigger,
            started_at=started,
            host=self.vault.host,
            attempt=attempt,
            scheduled_for=scheduled_for,
        )
        log_rel = f".vaultsched/logs/{task.id}/{run.run_id}.log"
        ledger_file = self.ledger.append(start_record(run, task.path))
        env = self._environment(task, run)
        redact = redactor_for(env)
        try:
            with self._log_file(log_rel) as log_file:
                result = run_process(
                    task.command,
                    cwd=self._cwd(task),
                    env=env,
                    stdin=stdin,
                    timeout=task.timeout.total_seconds(),
                    log=log_file,
                    echo=echo,
                    redact=redact,
                    now=self.clock,
                    on_start=lambda pid: self._children.__setitem__(run.run_id, pid),
                )
        except Exception as exc:  # the start record is written: it must get its finish
            result = self._not_started(task, started, exc)
        self._children.pop(run.run_id, None)
        status, message = status_of(result)
        if run.run_id in self._cancelled:
            self._cancelled.discard(run.run_id)
            status, message = Status.INTERRUPTED, "vaultsched stopped during the run"
        finished = replace(
            run,
            status=status,
            started_at=result.started_at,
            finished_at=result.finished_at,
            exit_code=result.exit_code,
            duration_s=round((result.finished_at - result.started_at).total_seconds(), 3),
            output_tail=clean_output(result.tail, redact=redact),
            message=redact(message),
            log=log_rel,
        )
        # The finish record keeps the start record's started_at so both land in one file.
        self.ledger.append(finish_record(replace(finished, started_at=started), task.path))
        self._prune_logs(task.id)
        self._land(task, finished, ledger_file)
        return finished

    def record(
        self,
        task: Task,
        status: Status,
        trigger: Trigger,
        message: str = "",
        scheduled_for: datetime | None = None,
    ) -> Run:
        """Record a run that never started (skipped, untrusted, awaiting approval)."""
        now = self.clock()
        run = Run(
            run_id=new_run_id(now),
            task=task.id,
            status=status,
            trigger=trigger,
            started_at=now,
            finished_at=now,
            host=self.vault.host,
            scheduled_for=scheduled_for,
            duration_s=0.0,
            message=message,
        )
        self._record_and_land(task, run)
        return run

    def _record_and_land(self, task: Task, run: Run) -> None:
        """Append a run's finish record and show it; a ledger that cannot be written (a
        symlink, a full disk) is logged, and nothing is shown that the ledger does not hold."""
        try:
            ledger_file = self.ledger.append(finish_record(run, task.path))
        except OSError as exc:
            statefs.warn_refused(exc, f"{task.id}: {run.status} run not recorded")
            return
        self._land(task, run, ledger_file)

    def finish_interrupted(self, task: Task, run: Run) -> None:
        """Close a run whose process outlived the vaultsched that started it."""
        interrupted = replace(
            run,
            status=Status.INTERRUPTED,
            finished_at=self.clock(),
            message="vaultsched stopped during the run",
        )
        self._record_and_land(task, interrupted)

    def await_approval(self, task: Task, trigger: Trigger, scheduled_for: datetime | None) -> Run:
        """Record a due run of an `approval: required` task; it replaces an older pending one."""
        pending = self.pending_approval(task.id)
        if pending is not None:
            self.close_pending(task, pending, "replaced by a newer due time")
        message = f"waiting for approval: {approve_command(task.id)} (or reject)"
        return self.record(task, Status.AWAITING_APPROVAL, trigger, message, scheduled_for)

    def pending_approval(self, task_id: str) -> Run | None:
        runs = [r for r in self.ledger.runs() if r.task == task_id]
        return next((r for r in reversed(runs) if r.status is Status.AWAITING_APPROVAL), None)

    def close_pending(self, task: Task, pending: Run, message: str) -> None:
        """Settle a run that waited for approval: it becomes `skipped`, with the reason."""
        closed = replace(pending, status=Status.SKIPPED, finished_at=self.clock(), message=message)
        self._record_and_land(task, closed)

    def task_idle(self, task: Task) -> bool:
        """True if no process on this host is running `task` right now (a refused lock holds
        nothing, so it counts as idle)."""
        try:
            with self._task_slot(task, wait=False) as acquired:
                return acquired
        except statefs.LinkRefused:
            return True

    @contextlib.contextmanager
    def _task_slot(self, task: Task, *, wait: bool | None = None) -> Iterator[bool]:
        """A per-task lock shared by every process on this host (daemon and CLI alike)."""
        rel = f".vaultsched/state/running/{_file_safe(task.id)}.lock"
        blocking = task.overlap == "queue" if wait is None else wait
        with statefs.locked(self.vault.root, rel, wait=blocking) as acquired:
            yield acquired

    @contextlib.contextmanager
    def _log_file(self, rel: str) -> Iterator[BinaryIO | None]:
        """The run's full log, opened for appending; None (the run goes on) if refused."""
        try:
            fd = statefs.open_file(self.vault.root, rel, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
        except OSError as exc:
            statefs.warn_refused(exc, "run log not written")
            yield None
            return
        # Unbuffered: every chunk is on disk as soon as it is read, for `tail -f`.
        with os.fdopen(fd, "ab", buffering=0) as handle:
            yield handle

    def _environment(self, task: Task, run: Run) -> dict[str, str]:
        env = dict(os.environ)
        # Python then reads and writes bytecode outside the vault: a synced `__pycache__/*.pyc`
        # is never loaded in place of a trusted source, and runs leave nothing to fingerprint.
        env.setdefault("PYTHONPYCACHEPREFIX", str(pycache_dir()))
        # Python would put a script's own folder first on sys.path, so a synced `json.py` beside
        # a trusted script would shadow the standard library unseen. A task's `env` may undo it.
        env["PYTHONSAFEPATH"] = "1"
        env.update(
            VAULTSCHED_VAULT=str(self.vault.root),
            VAULTSCHED_TASK=task.id,
            VAULTSCHED_NOTE=str(self.vault.path(task.path)),
            VAULTSCHED_RUN_ID=run.run_id,
            VAULTSCHED_TRIGGER=str(run.trigger),
        )
        env.update(task.env)
        return env

    def _cwd(self, task: Task) -> Path:
        if not task.cwd:
            return self.vault.root
        return self.vault.root / Path(task.cwd).expanduser()

    def _not_started(self, task: Task, started: datetime, exc: Exception) -> ProcessResult:
        """The result of a run that failed before its process existed: status `error`."""
        message = f"internal error before the start: {describe(exc)}"
        log.warning("%s: %s", task.id, message)
        return ProcessResult(None, None, False, message, b"", 0, started, self.clock(), None)

    def _prune_logs(self, task_id: str) -> None:
        folder = f".vaultsched/logs/{task_id}"
        try:
            found = statefs.entries(self.vault.root, folder)
        except OSError:
            return  # refused (a link): already said when the log was not written
        logs = [e.name for e in found if e.kind == "file" and e.name.endswith(".log")]
        for old in logs[:-KEEP_LOGS]:
            with contextlib.suppress(OSError):
                statefs.unlink(self.vault.root, f"{folder}/{old}")

    # -- landing: views and commits ------------------------------------------------------------

    def cancel_running(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Signal every running task's process group; those runs land as `interrupted`."""
        for run_id, pgid in list(self._children.items()):
            self._cancelled.add(run_id)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pgid, sig)
        return len(self._children)

    def _land(self, task: Task, run: Run, ledger_file: Path) -> None:
        """Bring the views up to date with a run the ledger now holds.

        In the daemon this happens on the landing thread, so a task's slot is free the moment
        its process exits, even while its note is held back for a person typing in it.
        """
        ledger_rel = ledger_file.relative_to(self.vault.root).as_posix()
        with self._pending_lock:
            self._pending[ledger_rel] = Edit(ledger_rel)  # vaultsched's own file: whole
        if self._lander is not None:
            self._inbox.put((task, run))
        else:
            self._land_batch([(task, run)])

    def _land_batch(self, batch: Sequence[tuple[Task, Run]]) -> None:
        """Views are rebuilt from the ledger, so one refresh per note and per day covers
        every run in the batch."""
        tz = self.vault.config.timezone
        notes = {task.path: task for task, _ in batch}
        days = sorted({run.started_at.astimezone(tz).date() for _, run in batch})
        with self._land_lock:
            written: list[Edit] = []
            runs = self.ledger.runs()
            for task in notes.values():
                written += self.refresh_note(task, runs)
            for day in days:
                written += self.refresh_digest(day)
        with self._pending_lock:
            self._pending.update((edit.path, edit) for edit in written)
            self._pending_runs.extend(run for _, run in batch)
        for task, run in batch:
            notify.send(self.vault.config.notify, task, run, self.vault.root)

    def _landing_loop(self) -> None:
        while True:
            batch = [self._inbox.get()]
            with contextlib.suppress(queue.Empty):
                while len(batch) < LANDING_BATCH:
                    batch.append(self._inbox.get_nowait())
            landed = [item for item in batch if isinstance(item, tuple)]
            try:
                self._land_batch(landed)
                if _FLUSH in batch:
                    self.flush()
            except Exception:  # a bad note must not stop every later run from landing
                log.exception("landing %d run(s) failed", len(landed))
            finally:
                for _ in batch:
                    self._inbox.task_done()
            if self.on_landed is not None and landed:
                self.on_landed()
            if None in batch:
                return

    def flush_soon(self) -> None:
        """Commit on the landing thread, so a slow git never delays a due run."""
        if self._lander is None:
            self.flush()
        else:
            self._inbox.put(_FLUSH)

    def close(self) -> None:
        """Land every finished run, then stop the landing thread."""
        if self._lander is not None:
            self._inbox.put(None)
            self._lander.join()
            self._lander = None

    @contextlib.contextmanager
    def landing_paused(self) -> Iterator[None]:
        """No view is written while this is held (git sync rebases under it)."""
        with self._land_lock:
            yield

    def rebuild_views(self, tasks: Sequence[Task], days: Sequence[date]) -> None:
        """Rebuild these notes' run blocks and these days' digests from the ledger."""
        with self._land_lock:
            runs = self.ledger.runs()
            written = [edit for task in tasks for edit in self.refresh_note(task, runs)]
            written += [edit for day in days for edit in self.refresh_digest(day)]
        with self._pending_lock:
            self._pending.update((edit.path, edit) for edit in written)

    def refresh_note(self, task: Task, every_run: Sequence[Run] | None = None) -> list[Edit]:
        """Rebuild the task note's run block from the ledger; the edit, if it was written."""
        if every_run is None:
            every_run = self.ledger.runs()
        runs = [r for r in every_run if r.task == task.id]
        newest = list(reversed(runs[-task.keep_runs :]))
        inner = views.render_runs_block(newest, task.timezone, notice=self._notice(runs))
        # A note not in git yet is the person's to add: the edit never creates it in git.
        edit = block_edit(task.path, blocks.RUNS, inner, create=False)
        outcome = self._write(edit)
        with self._pending_lock:
            if outcome is Outcome.BUSY:
                self._stale_notes[task.path] = task
            else:
                self._stale_notes.pop(task.path, None)
        return [edit] if outcome is Outcome.WRITTEN else []

    def refresh_digest(self, day: date) -> list[Edit]:
        tz = self.vault.config.timezone
        inner = views.render_digest_block(day, self.ledger.runs_on(day, tz), tz)
        # A new digest is vaultsched's file: its block goes into git with it.
        edit = block_edit(digest_path(self.vault, day), blocks.DIGEST, inner, create=True)
        outcome = self._write(edit)
        with self._pending_lock:
            if outcome is Outcome.BUSY:
                self._stale_days.add(day)
            else:
                self._stale_days.discard(day)
        return [edit] if outcome is Outcome.WRITTEN else []

    def _refresh_stale(self) -> None:
        """Try again the views a busy note kept us from writing; they join the next commit."""
        with self._pending_lock:
            tasks, days = list(self._stale_notes.values()), sorted(self._stale_days)
        if tasks or days:
            self.rebuild_views(tasks, days)

    def _notice(self, runs: Sequence[Run]) -> str:
        """A line above the runs for states a person must act on (the run shows the rest)."""
        if runs and runs[-1].status in (Status.UNTRUSTED, Status.AWAITING_APPROVAL):
            return runs[-1].message
        return ""

    def _write(self, edit: Edit) -> Outcome:
        assert self.writer is not None and edit.apply is not None
        outcome = self.writer.update(edit.path, edit.apply, create=edit.create)
        if outcome is Outcome.CONFLICTED:
            log.warning(
                "%s: has git conflict markers; its block will be written once resolved", edit.path
            )
        return outcome

    def flush(self) -> None:
        """Commit everything written since the last flush, as one commit."""
        self._refresh_stale()
        with self._pending_lock:
            edits, runs = list(self._pending.values()), list(self._pending_runs)
            self._pending.clear()
            self._pending_runs.clear()
        message = commit_message(runs) if runs else "vaultsched: update"
        if edits and not self.commit_edits(edits, message):
            with self._pending_lock:
                for edit in edits:  # an edit made since then is newer and stands
                    self._pending.setdefault(edit.path, edit)

    @property
    def has_pending(self) -> bool:
        return bool(self._pending or self._stale_notes or self._stale_days)

    def commit_edits(self, edits: Sequence[Edit], message: str) -> bool:
        """Commit vaultsched's `edits` (and nothing of the person's) if the vault is a
        repository; False if git failed (retry later)."""
        if not edits or not self.vault.config.git.commit:
            return True
        if not self.git.usable:
            if not self._warned_no_git:
                log.warning(
                    "%s is not a git repository (or git is missing): nothing is committed",
                    self.vault.root,
                )
                self._warned_no_git = True
            return True
        try:
            self.git.commit([*edits, STATE_IGNORE_EDIT], message)
        except GitError as exc:
            log.warning("git commit failed; will retry with the next commit: %s", exc)
            return False
        return True


def _file_safe(name: str) -> str:
    return name.replace("/", "%2F")
