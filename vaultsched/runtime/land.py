"""Landing: bringing the views (a task note's run block, the day's digest) up to date with
what the ledger holds, notifying, and handing the edits to the committer.

Views are rebuilt from the ledger, so one refresh per note and per day covers every run of a
batch, and a crash at any point leaves something the next landing repairs.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import yaml

from vaultsched.adapters import notify
from vaultsched.adapters.git import Edit
from vaultsched.adapters.notes import Outcome
from vaultsched.core import blocks, views
from vaultsched.core.frontmatter_edit import set_scalars
from vaultsched.core.model import Run, Status, Task
from vaultsched.core.properties import task_properties
from vaultsched.runtime.commit import (
    COMMIT_EVERY,
    Committer,
    block_edit,
    composed,
    enabled_edit,
)
from vaultsched.runtime.outnotes import OutputNotes
from vaultsched.runtime.widening import map_widening
from vaultsched.runtime.workspace import Workspace
from vaultsched.trust.fingerprint import files_reached

log = logging.getLogger(__name__)

LANDING_BATCH = 100
# A batch takes the runs that end within GATHER_GAP of each other, for at most GATHER_MAX.
GATHER_GAP = 0.1
GATHER_MAX = 1.0
# While runs wait for a worker (a burst beyond `max_parallel`), landing waits for them to
# start, at most HOLD_MAX, then lands all that came meanwhile in one batch: its note writes
# (threads, fsyncs, new files) and the interpreter it takes slowed every start. Burst of
# 1,000, max_parallel 4: all started 3.4-4.6 s with it, 7.6-8.9 s with batches as they come.
HOLD_MAX = 5.0
HOLD_POLL = 0.05
HELD_BATCH = 10_000
# Task notes written at once (see Lander._write_all): two, and eight once the notes' fsyncs take
# SLOW_SYNC on average (a disk slow to sync: 0.4-1 ms here, with the wait for the interpreter
# after each) or a note waits (for its editor).
NOTE_WRITERS_AT_FIRST = 2
NOTE_WRITERS = 8
SLOW_SYNC = 0.002
SYNCS_JUDGED = 4  # fsyncs of the batch before their mean is taken for the disk's
# A digest is the whole day, so rebuilding it for every batch of a long burst cost the square
# of the day's runs. One that took over DIGEST_SLOW seconds to rebuild waits DIGEST_SLACK times
# as long (at most COMMIT_EVERY) before the next batch rebuilds it, and the commit always does:
# a day's digest takes about 3 % of the time while its runs keep landing, and each commit holds
# it whole.
DIGEST_SLOW = 0.02
DIGEST_SLACK = 30.0


@dataclass(frozen=True)
class Landed:
    """A run the ledger now holds (in `ledger_file`), to be shown. `stdout`: its output made
    fit for a note, for the note its task's `output` names (None: nothing to write)."""

    task: Task
    run: Run
    ledger_file: Path
    stdout: str | None = None


@dataclass
class Lander:
    workspace: Workspace
    committer: Committer
    # Views are rebuilt one batch at a time, so two runs never race on the same digest.
    _lock: threading.RLock = field(default_factory=threading.RLock)
    # Views a write could not land yet (a note kept changing under it): retried at each commit.
    _stale_notes: dict[str, Task] = field(default_factory=dict)
    _stale_days: set[date] = field(default_factory=set)
    # Digests put off for the runs waiting to land (see `land`): rebuilt with theirs, or at the
    # next commit, whichever comes first.
    _put_off: set[date] = field(default_factory=set)
    _ledger_edits: dict[Path, Edit] = field(default_factory=dict)  # see hold_ledger
    _digests_after: float = 0.0  # time.monotonic() before which a batch puts digests off
    _outputs: OutputNotes = field(init=False)

    def __post_init__(self) -> None:
        self._outputs = OutputNotes(self.workspace, self.committer)

    def hold_ledger(self, batch: Sequence[Landed]) -> None:
        """The ledger files these runs are in belong to the next commit (whole: they are
        vaultsched's own files), from the moment the runs are recorded."""
        root, held = self.workspace.vault.root, self._ledger_edits
        files = {item.ledger_file for item in batch}
        for path in files - held.keys():  # one file a month: its edit is made once
            held[path] = Edit(path.relative_to(root).as_posix())
        self.committer.add(held[path] for path in files)

    def land(self, batch: Sequence[Landed], *, digests: bool = True) -> None:
        """Show these runs. `digests` False: more runs are already waiting to land, and
        their landing (or the next commit) rebuilds the days' digests with theirs: a digest
        is the whole day, rendered and spliced, which a burst's every batch paid again."""
        if not batch:
            return
        self.workspace.ledger.sync()  # their finish records are durable before they show
        self.hold_ledger(batch)
        tz = self.workspace.vault.config.timezone
        tasks = {item.task.path: item.task for item in batch}
        with self._lock:
            written = self._outputs.write(batch)  # before the run block that links it
            self._put_off.update(item.run.started_at.astimezone(tz).date() for item in batch)
            digests = digests and time.monotonic() >= self._digests_after
            days = sorted(self._put_off) if digests else []
        written += self._rebuild(list(tasks.values()), days)
        with self._lock:
            self._put_off.difference_update(days)
        self.committer.add(written, (i.run for i in batch))
        vault = self.workspace.vault
        for item in batch:
            notify.send(vault.config.notify, item.task, item.run, vault.root, files_reached)

    def rebuild_views(self, tasks: Sequence[Task], days: Sequence[date]) -> None:
        """Rebuild these notes' run blocks and these days' digests from the ledger."""
        self.committer.add(self._rebuild(tasks, days))

    def _rebuild(self, tasks: Sequence[Task], days: Sequence[date]) -> list[Edit]:
        with self._lock:
            written = self._refresh_notes(tasks)
            return written + [edit for day in days for edit in self.refresh_digest(day)]

    def _refresh_notes(self, tasks: Sequence[Task]) -> list[Edit]:
        """Rebuild these task notes' run blocks from the ledger; the edits written. A note
        that cannot be written now (a person kept saving it) is tried again at each commit."""
        if not tasks:
            return []
        by_task = self.workspace.ledger.runs_of_tasks(task.id for task in tasks)
        planned = [self._note_edits(task, by_task[task.id]) for task in tasks]
        outcomes = self._write_all([composed(edits[0].path, edits) for edits in planned])
        written: list[Edit] = []
        for task, edits, outcome in zip(tasks, planned, outcomes, strict=True):
            if outcome is Outcome.BUSY:
                self._stale_notes[task.path] = task
            elif isinstance(outcome, Outcome):
                self._stale_notes.pop(task.path, None)
            if outcome is Outcome.WRITTEN:
                written += edits
        failed = [outcome for outcome in outcomes if isinstance(outcome, Exception)]
        if failed:  # what the others wrote is committed all the same
            self.committer.add(written)
            raise failed[0]
        return written

    def _note_edits(self, task: Task, runs: Sequence[Run]) -> list[Edit]:
        """What a task note shows of its `runs` (all of them, in start order)."""
        newest = list(reversed(runs[-task.keep_runs :]))
        inner = views.render_runs_block(newest, task.timezone, notice=_notice(runs))
        # A note not in git yet is the person's to add: the edit never creates it in git.
        edits = [block_edit(task.path, blocks.RUNS, inner, create=False)]
        if self.workspace.vault.config.properties:
            values = task_properties(task, runs, self.workspace.clock())
            edits.append(Edit(task.path, functools.partial(_with_properties, values=values)))
        return edits

    def _write_all(self, edits: Sequence[Edit]) -> list[Outcome | Exception]:
        """Each edit written to its file, as `_write` always does: on two threads, eight once
        the disk is slow to sync, a note waits or the notes take long (`map_widening`)."""
        if len(edits) < 2:
            return [_outcome(self._write, edit) for edit in edits]
        writer = self.workspace.writer
        began = writer.syncs.totals()

        def slow() -> bool:
            mean = writer.syncs.mean_since(*began, at_least=SYNCS_JUDGED)
            return mean is not None and mean >= SLOW_SYNC

        with writer.batch():
            return map_widening(
                functools.partial(_outcome, self._write),
                edits,
                narrow=NOTE_WRITERS_AT_FIRST,
                wide=NOTE_WRITERS,
                slow=slow,
                name="vaultsched-note",
            )

    def refresh_digest(self, day: date) -> list[Edit]:
        vault = self.workspace.vault
        tz = vault.config.timezone
        began = time.monotonic()
        inner = views.render_digest_block(day, self.workspace.ledger.runs_on(day, tz), tz)
        # A new digest is vaultsched's file: its block goes into git with it.
        edit = block_edit(views.digest_path(vault, day), blocks.DIGEST, inner, create=True)
        outcome = self._write(edit)
        with self._lock:
            took = time.monotonic() - began
            if took > DIGEST_SLOW:  # (a write that waited for a person counts: a commit comes)
                wait = min(took * DIGEST_SLACK, COMMIT_EVERY.total_seconds())
                self._digests_after = began + took + wait
            if outcome is Outcome.BUSY:
                self._stale_days.add(day)
            else:
                self._stale_days.discard(day)
        return [edit] if outcome is Outcome.WRITTEN else []

    def _write(self, edit: Edit) -> Outcome:
        assert edit.apply is not None
        outcome = self.workspace.writer.update(edit.path, edit.apply, create=edit.create)
        if outcome is Outcome.CONFLICTED:
            log.warning(
                "%s: has git conflict markers; its block will be written once resolved", edit.path
            )
        return outcome

    def disable(self, task: Task, reason: str) -> None:
        """A task done by itself (`until`, `max_runs`): `enabled: false` in its note, committed
        with the next commit. A note that cannot take the edit keeps the task held back by
        the daemon anyway; it is said in the log."""
        edit = enabled_edit(task.path, enabled=False)
        assert edit.apply is not None
        try:
            outcome = self.workspace.writer.update(task.path, edit.apply, create=False)
        except ValueError as exc:
            log.warning("%s is done (%s) but its note was not edited: %s", task.id, reason, exc)
            return
        if outcome is Outcome.WRITTEN:
            self.committer.add([edit])
        log.info("%s is done (%s): enabled: false (%s)", task.id, reason, outcome)

    def commit(self) -> None:
        """Try again the views a busy note kept from being written, then commit everything."""
        self.workspace.ledger.sync()  # what is committed is on disk first
        with self._lock:
            self.committer.add(self._outputs.retry())
            tasks, days = list(self._stale_notes.values()), sorted(self._stale_days | self._put_off)
            if tasks or days:
                self.rebuild_views(tasks, days)
            self._put_off.clear()
        self.committer.commit_pending()

    @property
    def has_pending(self) -> bool:
        stale = self._stale_notes or self._stale_days or self._outputs.has_pending
        return bool(self.committer.has_pending or stale)

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """No view is written while this is held (git sync rebases under it)."""
        with self._lock:
            yield


def _outcome(write: Callable[[Edit], Outcome], edit: Edit) -> Outcome | Exception:
    try:
        return write(edit)
    except Exception as exc:  # raised by the caller once the other writes are accounted for
        return exc


def _with_properties(text: str, values: Mapping[str, str]) -> str:
    """The note with its run-state properties set; as it was if its front matter cannot take
    them (not a map, or a key the person made a list), which the run block does not wait for."""
    try:
        return set_scalars(text, values)
    except (ValueError, yaml.YAMLError):
        return text


def _notice(runs: Sequence[Run]) -> str:
    """A line above the runs for states a person must act on (the run shows the rest)."""
    if runs and runs[-1].status in (Status.UNTRUSTED, Status.AWAITING_APPROVAL):
        return runs[-1].message
    return ""


@dataclass(frozen=True)
class _Commit:
    pass


@dataclass(frozen=True)
class _Stop:
    pass


class LandingThread:
    """The daemon lands and commits on a thread of its own, so a task's slot is free the
    moment its process exits (even while its note is held back for a person typing in it)
    and a slow git never delays a due run."""

    def __init__(
        self,
        lander: Lander,
        on_settled: Callable[[], None],
        runs_waiting: Callable[[], bool] = lambda: False,
    ) -> None:
        """`on_settled` is called after each batch that committed or failed to land: if
        something is still pending then, the daemon must come back for it. `runs_waiting`:
        whether runs wait for a worker now, or ended runs for their finish record (see
        HOLD_MAX)."""
        self.lander = lander
        self.on_settled = on_settled
        self.runs_waiting = runs_waiting
        self._closing = False
        self._inbox: queue.Queue[Landed | _Commit | _Stop] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="vaultsched-land", daemon=True)
        self._thread.start()

    def land(self, item: Landed) -> None:
        self.lander.hold_ledger([item])  # pending at once: a sync must not go ahead without it
        self._inbox.put(item)

    def commit_soon(self) -> None:
        self._inbox.put(_Commit())

    def close(self) -> None:
        """Land every run handed over so far, then stop."""
        self._closing = True
        self._inbox.put(_Stop())
        self._thread.join()

    def _loop(self) -> None:
        while True:
            batch = self._take()
            landed = [item for item in batch if isinstance(item, Landed)]
            committing = any(isinstance(item, _Commit) for item in batch)
            try:
                self.lander.land(landed, digests=self._inbox.empty())
                if committing:
                    self.lander.commit()
            except Exception:  # a bad note must not stop every later run from landing
                log.exception("landing %d run(s) failed", len(landed))
                committing = True
            if committing:
                self.on_settled()
            if any(isinstance(item, _Stop) for item in batch):
                return

    def _take(self) -> list[Landed | _Commit | _Stop]:
        """What came in, and what keeps coming in hard on its heels: each batch reads the
        whole ledger and rebuilds the day's digest, so a burst landed run by run as its runs
        end would do that hundreds of times."""
        batch = [self._inbox.get()]
        limit = HELD_BATCH if self._held() else LANDING_BATCH
        until = time.monotonic() + GATHER_MAX
        with contextlib.suppress(queue.Empty):
            while len(batch) < limit and not isinstance(batch[-1], _Stop):
                wait = min(GATHER_GAP, until - time.monotonic())
                batch.append(self._inbox.get(timeout=max(wait, 0.0)))
        return batch

    def _held(self) -> bool:
        """Wait while runs wait for a worker, at most HOLD_MAX; whether it waited."""
        if self._closing or not self.runs_waiting():
            return False
        until = time.monotonic() + HOLD_MAX
        while not self._closing and self.runs_waiting() and time.monotonic() < until:
            time.sleep(HOLD_POLL)
        return True
