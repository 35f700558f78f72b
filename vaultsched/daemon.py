"""`vaultsched run`: the long-running scheduler.

One loop on the main thread: apply file changes, fire what is due, collect finished runs,
commit, then sleep until the next fire time, retry, commit deadline or file event (`Waker`).
Runs execute on a pool of `max_parallel` worker threads through the same `Engine` as
`run-now`, so a run lands the same way whoever started it. Nothing wakes while nothing is due.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import logging
import os
import queue
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from types import FrameType

from vaultsched import statefs
from vaultsched.configtrust import ignored_message
from vaultsched.contain import internal_problem
from vaultsched.durations import MAX_DURATION
from vaultsched.engine import Engine, utc_now
from vaultsched.instance import InstanceLock
from vaultsched.ledger import host_file_stem, parse_instant
from vaultsched.model import RETRYABLE, Run, Status, Task, Trigger
from vaultsched.notes import sweep_temp_files
from vaultsched.planner import Decision, Planner, Unplannable
from vaultsched.sync import Syncer, make_syncer
from vaultsched.trust import fingerprint
from vaultsched.vault import Index, Vault, build_index, is_ignored, read_note
from vaultsched.waker import Waker
from vaultsched.watcher import DEBOUNCE_SECONDS, Changes, VaultWatcher

log = logging.getLogger("vaultsched.daemon")

COMMIT_EVERY = timedelta(seconds=5)
SHUTDOWN_GRACE = 30.0  # VAULTSCHED_SHUTDOWN_GRACE overrides it (tests, impatient users)
KILL_GRACE = 10.0
MARKS_FILE = ".vaultsched/state/marks.json"
MOVE_WINDOW = 3.0  # seconds a new task may be matched to a vanished one as its move


def kill_switch(vault: Vault) -> str:
    """Why firing is switched off, or "" if it is on."""
    if os.environ.get("VAULTSCHED_ENABLED", "1").strip().lower() in ("0", "false", "no", "off"):
        return "VAULTSCHED_ENABLED=0"
    if not vault.config.enabled:
        return "enabled = false in .vaultsched/config.toml"
    return ""


@dataclass(order=True)
class _Retry:
    at: datetime
    task: str = field(compare=False)
    attempt: int = field(compare=False)
    scheduled_for: datetime | None = field(compare=False)


@dataclass
class Daemon:
    vault: Vault
    clock: Callable[[], datetime] = utc_now
    dry_run: bool = False
    waker: Waker = field(default_factory=Waker)
    on_run: Callable[[Run], None] | None = None  # the demo prints each run as it lands

    def __post_init__(self) -> None:
        self.engine = Engine(
            self.vault, clock=self.clock, background_landing=True, on_landed=self.waker.notify
        )
        self.index = Index()
        self.planner = Planner()
        self.pool = ThreadPoolExecutor(self.vault.config.max_parallel, "vaultsched-run")
        self.running: dict[str, Future[Run]] = {}
        self.queued: dict[str, Decision] = {}
        self.retries: list[_Retry] = []
        self.finished: queue.SimpleQueue[tuple[Task, Run]] = queue.SimpleQueue()
        self.stopping = False
        self.last_commit = datetime.min.replace(tzinfo=self.clock().tzinfo)
        self.lock = InstanceLock(self.vault.root)
        self.disabled = kill_switch(self.vault)
        self.watcher: VaultWatcher | None = None
        self._events_since: float | None = None
        self._files: dict[str, tuple[int, int]] = {}
        self._appeared: dict[str, float] = {}  # task id -> monotonic time it appeared
        self._reindex = False
        self.syncer: Syncer | None = None
        self._refused: dict[str, str] = {}  # task id -> fingerprint whose refusal is recorded

    # -- life cycle -----------------------------------------------------------------------------

    def run(self, *, once: bool = False) -> int:
        self.lock.acquire(self.vault.host, self.clock())
        try:
            self._start()
            self.syncer = make_syncer(self.engine)
            if once:
                self._tick()
            else:
                if self.syncer is not None:
                    self.syncer.start()
                self._loop()
            self._shutdown(finish_runs=once)
        finally:
            self.lock.release()
            self.waker.close()
        return 0

    def stop(self, signum: int | None = None, _frame: FrameType | None = None) -> None:
        if signum is not None:
            log.info("%s received: stopping", signal.Signals(signum).name)
        self.stopping = True
        self.waker.notify()

    def request_reindex(self, _signum: int | None = None, _frame: FrameType | None = None) -> None:
        """SIGHUP (`vaultsched reindex`, the post-merge hook): re-read the whole vault."""
        self._reindex = True
        self.waker.notify()

    def _start(self) -> None:
        self._recover_interrupted()
        started = time.monotonic()
        self.index = build_index(self.vault)
        self._sweep_temp_files()
        now = self.clock()
        self.planner = Planner.from_ledger(
            ((path.stem, run) for path, run in self.engine.ledger.runs_by_file()),
            self.index.tasks,
            host_file_stem(self.vault.host),
            now,
        )
        self._load_marks(now)
        self._remember_files()
        self._remember_refusals()
        for task in self.index.tasks.values():
            if task.id not in self.planner.marks:
                self.planner.reset(task.id, now)
        for ident, problems in self.index.invalid.items():
            log.warning("%s is invalid and will not run: %s", ident, problems[0].message)
        log.info(
            "indexed %d tasks in %s in %.2fs%s",
            len(self.index.tasks),
            self.vault.root,
            time.monotonic() - started,
            " (dry run: nothing will be run)" if self.dry_run else "",
        )
        if self.disabled:
            log.warning("vaultsched is disabled (%s): nothing will fire", self.disabled)
        if self.vault.config.ignored:
            log.warning("%s", ignored_message(self.vault.root, self.vault.config.ignored))

    def _sweep_temp_files(self) -> None:
        """Only where vaultsched writes notes: the task notes' folders and the digest folder."""
        root = self.vault.root
        folders = {(root / ident).parent for ident in (*self.index.tasks, *self.index.invalid)}
        folders.add(root / self.vault.config.digest.folder)
        for leftover in sweep_temp_files(sorted(folders)):
            log.info("removed %s, left by an earlier write that was cut short", leftover)

    def _loop(self) -> None:
        self.watcher = VaultWatcher(self.vault.root, self._wanted, self._on_event)
        self.watcher.start()
        try:
            while not self.stopping:
                self._tick()
                if not self.stopping:
                    self.waker.wait(self._deadline())
        finally:
            self.watcher.stop()

    def _tick(self) -> None:
        if self._reindex:
            self._reindex = False
            log.info("re-reading the vault")
            self._apply(Changes(rescan=True))
        if self.watcher is not None and self._debounced():
            self._apply(self.watcher.take())
        self._collect()
        now = self.clock()
        if not self.disabled and not self.stopping:
            self._fire_due(now)
            self._fire_retries(now)
        if self.engine.has_pending and now - self.last_commit >= COMMIT_EVERY:
            self.engine.flush_soon()
            self.last_commit = now
            if self.syncer is not None:
                self.syncer.nudge()

    def _deadline(self) -> datetime | None:
        """The next moment something is due: a fire, a retry, a commit, or debounced events."""
        candidates: list[datetime] = []
        if not self.disabled:
            for task in self._schedulable():
                with self._contained(task, "planning"):
                    wake = self.planner.wake_time(task)
                    if wake is not None:
                        candidates.append(wake)
            if self.retries:
                candidates.append(self.retries[0].at)
        if self.engine.has_pending:
            candidates.append(self.last_commit + COMMIT_EVERY)
        if self._events_since is not None:
            wait = self._events_since + DEBOUNCE_SECONDS - time.monotonic()
            candidates.append(self.clock() + timedelta(seconds=max(wait, 0)))
        return min(candidates, default=None)

    def _shutdown(self, *, finish_runs: bool = False) -> None:
        """Stop firing; give running tasks the grace period (`--once`: until a signal) to end."""
        grace = float(os.environ.get("VAULTSCHED_SHUTDOWN_GRACE", SHUTDOWN_GRACE))
        while finish_runs and self.running and not self.stopping:
            self.waker.wait(None)
            self._collect()
        self.stopping = True
        deadline = time.monotonic() + (grace if self.running else 0)
        while self.running and time.monotonic() < deadline:
            self.waker.wait(self.clock() + timedelta(seconds=0.5))
            self._collect()
        if self.running:
            log.warning("terminating %d running task(s)", self.engine.cancel_running())
            kill_at = time.monotonic() + KILL_GRACE
            while self.running and time.monotonic() < kill_at:
                self.waker.wait(self.clock() + timedelta(seconds=0.2))
                self._collect()
            self.engine.cancel_running(signal.SIGKILL)
        self.pool.shutdown(wait=True)
        self._collect()
        self.engine.close()
        self.engine.flush()
        self._save_marks()
        self._last_sync()
        log.info("stopped")

    def _last_sync(self) -> None:
        """Push what this run of the daemon committed (`--once` included), then stop syncing."""
        if self.syncer is not None:
            self.syncer.stop()
            self.syncer.sync_logged()

    # -- firing ---------------------------------------------------------------------------------

    def _schedulable(self) -> list[Task]:
        host = self.vault.host
        return [
            t
            for t in self.index.tasks.values()
            if t.schedules and t.enabled and (not t.hosts or host in t.hosts)
        ]

    def _fire_due(self, now: datetime) -> None:
        changed = False
        for task in self._schedulable():
            with self._contained(task, "planning"):
                decision = self.planner.check(task, now)
                if decision is None:
                    continue
                changed = True
                self._decided(task, decision)
        if changed:
            self._save_marks()

    def _decided(self, task: Task, decision: Decision) -> None:
        if not decision.run:
            log.info("%s: missed fire times skipped (catch_up: false)", task.id)
        elif self.dry_run:
            log.info("would run %s (%s, due %s)", task.id, decision.trigger, decision.scheduled_for)
        else:
            self._dispatch(task, decision)

    @contextlib.contextmanager
    def _contained(self, task: Task, doing: str) -> Iterator[None]:
        """The daemon's boundary around one task's step (planning it, dispatching it, planning
        its retry): whatever that raises makes this task invalid until its note changes, with
        the problem logged and shown by `list`; every other task goes on."""
        try:
            yield
        except Exception as exc:  # the boundary: see `contain`
            problem = (
                exc.problem
                if isinstance(exc, Unplannable)
                else internal_problem(task.path, doing, exc)
            )
            self.index.invalidate(task.id, problem)
            self.planner.forget(task.id)
            log.warning("%s is invalid and will not run: %s", task.id, problem.message)

    def _dispatch(self, task: Task, decision: Decision) -> None:
        if self._refused_untrusted(task, decision):
            return
        if task.approval == "required":
            self._announce(
                self.engine.await_approval(task, decision.trigger, decision.scheduled_for)
            )
            return
        if task.id in self.running:
            if task.overlap == "queue":
                self.queued[task.id] = decision  # one queued run; a newer due time replaces it
                return
            message = "the previous run was still running (overlap: skip)"
            skipped = self.engine.record(
                task, Status.SKIPPED, decision.trigger, message, decision.scheduled_for
            )
            self._announce(skipped)
            return
        self._submit(task, decision.trigger, decision.scheduled_for, 1)

    def _refused_untrusted(self, task: Task, decision: Decision) -> bool:
        """Untrusted tasks do not run; the first refused fire of each version is recorded (in
        the note, the digest and the ledger), later ones only skipped, so an `every 1s` task
        does not flood the vault while it waits for a person."""
        if self.engine.trust.is_trusted(self.vault.root, task):
            self._refused.pop(task.id, None)
            return False
        version = fingerprint(self.vault.root, task)
        if self._refused.get(task.id) != version:
            self._refused[task.id] = version
            message = self.engine.trust.refusal(self.vault.root, task)
            self._announce(
                self.engine.record(
                    task, Status.UNTRUSTED, decision.trigger, message, decision.scheduled_for
                )
            )
        return True

    def _submit(
        self, task: Task, trigger: Trigger, scheduled_for: datetime | None, attempt: int
    ) -> None:
        self.running[task.id] = self.pool.submit(self._work, task, trigger, scheduled_for, attempt)

    def _work(
        self, task: Task, trigger: Trigger, scheduled_for: datetime | None, attempt: int
    ) -> Run:
        try:
            run = self.engine.run(task, trigger, scheduled_for=scheduled_for, attempt=attempt)
        except Exception:  # a bug in landing must not kill the worker or wedge the task
            log.exception("%s: run failed inside vaultsched", task.id)
            now = self.clock()
            run = Run(
                "", task.id, Status.ERROR, trigger, now, self.vault.host, attempt, scheduled_for
            )
        self.finished.put((task, run))
        self.waker.notify()
        return run

    def _collect(self) -> None:
        while True:
            try:
                task, run = self.finished.get_nowait()
            except queue.Empty:
                return
            self.running.pop(task.id, None)
            self._announce(run)
            with self._contained(task, "planning a retry of"):
                self._plan_retry(task, run)
            queued = self.queued.pop(task.id, None)
            if queued is not None and not self.stopping:
                current = self.index.tasks.get(task.id, task)
                self._submit(current, queued.trigger, queued.scheduled_for, 1)

    def _plan_retry(self, task: Task, run: Run) -> None:
        if run.status not in RETRYABLE or run.attempt > task.retries or self.stopping:
            return
        # Doubling from retry_delay, capped at the longest duration a note may say (100
        # years): `retries: 500` must not overflow the clock arithmetic on the 60th attempt.
        seconds = task.retry_delay.total_seconds() * 2.0 ** min(run.attempt - 1, 64)
        delay = timedelta(seconds=min(seconds, MAX_DURATION.total_seconds()))
        retry = _Retry(self.clock() + delay, task.id, run.attempt + 1, run.scheduled_for)
        heapq.heappush(self.retries, retry)
        log.info("%s: retry %d of %d in %s", task.id, run.attempt, task.retries, delay)

    def _fire_retries(self, now: datetime) -> None:
        while self.retries and self.retries[0].at <= now:
            retry = heapq.heappop(self.retries)
            task = self.index.tasks.get(retry.task)
            if task is None or retry.task in self.running:
                continue
            self._submit(task, Trigger.RETRY, retry.scheduled_for, retry.attempt)

    def _announce(self, run: Run) -> None:
        detail = f"exit {run.exit_code}" if run.exit_code is not None else run.message
        duration = f", {run.duration_s:.1f}s" if run.duration_s else ""
        log.info("%s %s (%s, %s%s)", run.status, run.task, run.trigger, detail, duration)
        if self.on_run is not None:
            self.on_run(run)

    # -- restart safety -------------------------------------------------------------------------

    def _recover_interrupted(self) -> None:
        """Runs of this host that started but never finished: vaultsched died during them."""
        for run in self.engine.ledger.runs():
            if run.status is not Status.RUNNING or run.host != self.vault.host:
                continue
            parsed = read_note(self.vault, f"{run.task}.md")
            task = parsed.task or _stub_task(run)
            if not self.engine.task_idle(task):
                continue  # a `run-now` in another process is still running it
            self.engine.finish_interrupted(task, run)
            log.warning("%s: run %s was interrupted (vaultsched stopped)", run.task, run.run_id)
        self.engine.flush()

    def _load_marks(self, now: datetime) -> None:
        """The marks this daemon decided before it stopped: fire times it skipped (missed,
        `catch_up: false`) and tasks it started afresh, which the ledger does not hold."""
        try:
            saved = json.loads(statefs.read_bytes(self.vault.root, MARKS_FILE) or b"{}")
        except OSError as exc:
            statefs.warn_refused(exc, "marks not read")
            return
        except (ValueError, RecursionError):  # torn or hand-edited: the ledger alone it is
            return
        # Git-ignored, but a sync tool can carry it: each mark is checked like a ledger time
        # (aware, years 1970-9000), so no later comparison or zone conversion can overflow.
        marks = {}
        for task_id, stamp in saved.items() if isinstance(saved, dict) else ():
            moment = parse_instant(stamp)
            if moment is not None:
                marks[str(task_id)] = moment
        self.planner.restore(marks, now)

    def _save_marks(self) -> None:
        saved = self.planner.saved(self.clock())
        data = json.dumps({k: v.isoformat() for k, v in sorted(saved.items())}, indent=0)
        try:
            statefs.write_atomic(self.vault.root, MARKS_FILE, data.encode())
        except OSError as exc:
            statefs.warn_refused(exc, "marks not saved")

    # -- following the vault --------------------------------------------------------------------

    def _wanted(self, rel: str) -> bool:
        return not is_ignored(rel, self.vault.config.digest.folder)

    def _on_event(self) -> None:
        if self._events_since is None:
            self._events_since = time.monotonic()
        self.waker.notify()

    def _debounced(self) -> bool:
        if self._events_since is None:
            return False
        if time.monotonic() - self._events_since < DEBOUNCE_SECONDS:
            return False
        self._events_since = None
        return True

    def _apply(self, changes: Changes) -> None:
        now = self.clock()
        before = dict(self.index.tasks)
        if changes.rescan:
            self.index = build_index(self.vault)
        for old, new in changes.moves:
            self.index.discard(old.removesuffix(".md"))
            self._reread(new)
        for rel in sorted(changes.paths):
            self._reread(rel)
        for old, new in self._moved(before, changes):
            self._rename(old, new, now)
            if new in before:  # it appeared a moment ago and has its own marks already
                before.pop(old)
            else:
                before[new] = before.pop(old)
        for ident, task in self.index.tasks.items():
            previous = before.get(ident)
            if previous is None or _timing(previous) != _timing(task):
                self.planner.reset(ident, now)
                log.info("%s: %s", ident, "schedule updated" if previous else "new task")
            if previous is None:
                self._appeared[ident] = time.monotonic()
        for ident in set(before) - set(self.index.tasks):
            if ident not in self.index.invalid:
                self.planner.forget(ident)
                log.info("%s: task removed", ident)
        touched = {rel.removesuffix(".md") for rel in changes.paths}
        touched |= {new.removesuffix(".md") for _, new in changes.moves}
        self._remember_files(None if changes.rescan else touched)
        self._save_marks()

    def _moved(self, before: dict[str, Task], changes: Changes) -> list[tuple[str, str]]:
        """Tasks whose note moved, as (old id, new id).

        Besides watchdog's move events: a task that vanished while the same task appeared in
        this batch or up to MOVE_WINDOW before. inotify reports a move into a folder made a
        moment earlier as a creation, and the deletion only later; sync tools delete and
        create. "The same" is the same file or, failing that (our own atomic writes change
        the inode), the only candidate with the same definition.
        """
        gone = set(before) - set(self.index.tasks)
        pairs = [
            (old.removesuffix(".md"), new.removesuffix(".md"))
            for old, new in changes.moves
            if old.removesuffix(".md") in gone and new.removesuffix(".md") in self.index.tasks
        ]
        recent = time.monotonic() - MOVE_WINDOW
        self._appeared = {i: t for i, t in self._appeared.items() if t > recent}
        taken = {new for _, new in pairs}
        fresh = [
            task
            for ident, task in self.index.tasks.items()
            if ident not in taken and (ident not in before or ident in self._appeared)
        ]
        for old in sorted(gone - {old for old, _ in pairs}):
            new = self._same_task(before[old], fresh)
            if new is not None:
                pairs.append((old, new.id))
                fresh.remove(new)
        return pairs

    def _same_task(self, old: Task, candidates: list[Task]) -> Task | None:
        for task in candidates:
            if old.id in self._files and self._files[old.id] == self._file_of(task):
                return task
        alike = [t for t in candidates if replace(old, id=t.id, path=t.path) == t]
        return alike[0] if len(alike) == 1 else None

    def _rename(self, old: str, new: str, now: datetime) -> None:
        if new in self.planner.marks:
            self.planner.forget(old)
        else:
            self.planner.rename(old, new)
        self.engine.ledger.append_rename(old, new, now)
        if old in self.queued:
            self.queued[new] = replace(self.queued.pop(old), task=new)
        log.info("%s: renamed to %s", old, new)

    def _remember_refusals(self) -> None:
        """A task whose latest run was refused as untrusted is not recorded again on restart."""
        latest = {run.task: run for run in self.engine.ledger.runs()}
        for ident, task in self.index.tasks.items():
            run = latest.get(ident)
            if run is not None and run.status is Status.UNTRUSTED:
                self._refused[ident] = fingerprint(self.vault.root, task)

    def _remember_files(self, idents: set[str] | None = None) -> None:
        """Which file (device, inode) each task lives in, to recognise it after a move; only
        `idents` are looked at again (a stat per task after every batch of events would
        cost a large vault dearly)."""
        if idents is None:
            self._files = {}
            idents = set(self.index.tasks)
        self._files = {i: f for i, f in self._files.items() if i in self.index.tasks}
        for ident in idents & set(self.index.tasks):
            found = self._file_of(self.index.tasks[ident])
            if found is None:
                self._files.pop(ident, None)
            else:
                self._files[ident] = found

    def _file_of(self, task: Task) -> tuple[int, int] | None:
        try:
            stat = (self.vault.root / task.path).stat()
        except OSError:
            return None
        return stat.st_dev, stat.st_ino

    def _reread(self, rel: str) -> None:
        ident = rel.removesuffix(".md")
        self.index.discard(ident)
        parsed = read_note(self.vault, rel)  # never raises, never blocks: a gone note is no task
        self.index.add(rel, parsed)
        if parsed.is_task and parsed.task is None and parsed.errors:
            log.warning("%s is invalid and will not run: %s", ident, parsed.errors[0])
        elif not parsed.is_task:
            for problem in parsed.problems:
                if problem.severity == "warning":
                    log.warning("%s", problem)


def _timing(task: Task) -> tuple[object, ...]:
    """What, when changed, makes a task start afresh (no catch-up for its old schedule)."""
    return (task.schedules, task.timezone, task.enabled, task.hosts)


def _stub_task(run: Run) -> Task:
    """A stand-in for a task whose note is gone or broken, enough to record the interruption."""
    from zoneinfo import ZoneInfo

    return Task(
        id=run.task, path=f"{run.task}.md", command="", schedules=(), timezone=ZoneInfo("UTC")
    )


def install_signal_handlers(daemon: Daemon) -> None:
    signal.signal(signal.SIGTERM, daemon.stop)
    signal.signal(signal.SIGINT, daemon.stop)
    signal.signal(signal.SIGHUP, daemon.request_reindex)
