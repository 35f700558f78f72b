"""Runs prepared ahead of their time, shared by the workers preparing them.

Dispatch hands a run over up to `LEAD` before its instant (`Job.start_at`). Its worker takes the
task's slot, checks trust, writes the start record and builds the process's environment, then
sleeps until the instant and starts the process. What those workers share is here:

- the start records of runs due at the same instant go out together, in one write and one
  fsync, written by whichever of them is last to get there once no other run for that instant
  was handed over for `HANDED`, or by the first once `GATHER` has passed or the instant is
  `WRITE_BY` away (a run held up, waiting for its slot say, does not hold the others up);
- a run that has ended keeps out of their way: its finish record, its landing and the daemon's
  loop it wakes all take the interpreter and a CPU, so it waits (at most `SETTLE_MAX`) while a
  run is being prepared for an instant still to come (within `LEAD`), and until `QUIET` after
  an instant whose runs started then: a process just started still has to load its program,
  on a machine with few CPUs. Runs already late (a burst queued behind `max_parallel`) are
  not waited for: there is no instant left to keep; and while runs wait for a worker, none
  is kept waiting.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from vaultsched.adapters.runner import Held
from vaultsched.runtime.dispatch import LEAD
from vaultsched.runtime.messages import Job

GATHER = 0.1  # s a start record waits at most for the others due at the same instant
HANDED = 0.02  # s without another run for the instant handed over: all of them are
WRITE_BY = 0.1  # s before the instant, a start record waits no more
# The last trust check of the runs due at an instant is made this long before it, so that at
# the instant itself they are only let go, one pipe write each.
CHECK_BEFORE = 0.005
SETTLE_MAX = 1.0  # s an ended run waits at most for runs about to start
QUIET = timedelta(milliseconds=100)  # after an instant whose runs started, ended runs wait


@dataclass
class _Ticket:
    """One run prepared ahead, from its hand-over until its process started (or never will)."""

    at: datetime
    working: bool = False  # a worker holds its slot and prepares it
    arrived: bool = False  # its start record is written, or on its way


@dataclass
class _Instant:
    """What the tickets of one instant add up to, kept as they change: a burst of a thousand
    runs due together is asked about at every start record and every end."""

    tickets: int = 0
    unarrived: int = 0
    working: int = 0
    handed: float = 0.0  # monotonic: when a run for it was last handed over


@dataclass
class _Due:
    """A run prepared ahead, waiting for its instant."""

    check: Callable[[], bool]  # trust, again: whether it may start
    held: Held | None  # its process, let go at the instant; None: it starts itself
    outcome: bool | None = None
    error: Exception | None = None


@dataclass
class _Record:
    record: dict[str, Any]
    taken: bool = False  # a worker writes it (with others)
    done: bool = False
    error: OSError | None = None


class Starts:
    def __init__(
        self,
        write_all: Callable[[list[dict[str, Any]]], object],
        clock: Callable[[], datetime],
        *,
        gather: float = GATHER,
        settle_max: float = SETTLE_MAX,
    ) -> None:
        self._write_all = write_all  # the ledger's: one write, one fsync
        self._clock = clock
        self._gather, self._settle_max = gather, settle_max
        self._changed = threading.Condition()
        self._tickets: dict[int, _Ticket] = {}  # by id(job): a job lives until it is done
        self._instants: dict[datetime, _Instant] = {}
        self._gathered: dict[datetime, list[_Record]] = {}
        self._due: dict[datetime, list[_Due]] = {}
        self._quiet_until: datetime | None = None

    def expect(self, job: Job) -> None:
        """`job` (prepared ahead) is handed over: its start record is to come."""
        with self._changed:
            self._ticket(job)
            self._instants[self._tickets[id(job)].at].handed = time.monotonic()

    def working(self, job: Job) -> None:
        """A worker holds `job`'s slot and prepares it."""
        if job.start_at is None:
            return
        with self._changed:
            ticket = self._ticket(job)
            if not ticket.working:
                ticket.working = True
                self._instants[ticket.at].working += 1

    def begun(self, job: Job) -> None:
        """`job`'s process has started, or never will (a gate, trust, an error)."""
        with self._changed:
            ticket = self._tickets.pop(id(job), None)
            if ticket is None:
                return
            instant = self._instants[ticket.at]
            instant.tickets -= 1
            instant.unarrived -= not ticket.arrived
            instant.working -= ticket.working
            if not instant.tickets:
                del self._instants[ticket.at]
            self._changed.notify_all()

    def _ticket(self, job: Job) -> _Ticket:
        assert job.start_at is not None
        ticket = self._tickets.get(id(job))
        if ticket is None:
            ticket = self._tickets[id(job)] = _Ticket(job.start_at)
            instant = self._instants.setdefault(job.start_at, _Instant())
            instant.tickets += 1
            instant.unarrived += 1
        return ticket

    def record(self, job: Job, record: dict[str, Any]) -> None:
        """Write `job`'s start record durably, with those of the runs due at the same instant.
        Raises OSError if it could not be written."""
        assert job.start_at is not None
        at, mine = job.start_at, _Record(record)
        before = (at - self._clock()).total_seconds() - WRITE_BY
        deadline = time.monotonic() + min(self._gather, max(before, 0.0))
        with self._changed:
            ticket = self._ticket(job)
            if not ticket.arrived:
                ticket.arrived = True
                self._instants[at].unarrived -= 1
            self._gathered.setdefault(at, []).append(mine)
            self._changed.notify_all()
            instant = self._instants[at]
            while not mine.taken and (left := deadline - time.monotonic()) > 0:
                handed = instant.handed + HANDED - time.monotonic()
                if not instant.unarrived and handed <= 0:
                    break
                self._changed.wait(min(left, max(handed, 0.001)))
            batch = [] if mine.taken else self._gathered.pop(at)
            for gathered in batch:
                gathered.taken = True
        if batch:
            self._write(batch)
        with self._changed:
            while not mine.done:
                self._changed.wait()
        if mine.error is not None:
            raise mine.error

    def _write(self, batch: list[_Record]) -> None:
        error: OSError | None = OSError("the start records were not written")
        try:
            self._write_all([gathered.record for gathered in batch])
            error = None
        except OSError as exc:
            error = exc
        finally:  # whatever happened, no run of the batch waits for ever
            self._written(batch, error)

    def _written(self, batch: list[_Record], error: OSError | None) -> None:
        with self._changed:
            for gathered in batch:  # every run of the batch learns how it went
                gathered.error, gathered.done = error, True
            self._changed.notify_all()

    def at_its_time(self, job: Job, check: Callable[[], bool], held: Held | None) -> bool:
        """Wait for `job`'s instant; whether it may start then (`check`, made just before).
        Whichever of the runs due at that instant wakes first checks them all, waits for the
        instant and lets all their held processes go, in one go: one wake-up, not one per run,
        and no run's start waits behind another's."""
        assert job.start_at is not None
        at, mine = job.start_at, _Due(check, held)
        with self._changed:
            self._due.setdefault(at, []).append(mine)
        self._sleep_until(at, CHECK_BEFORE)
        with self._changed:
            batch = self._due.pop(at, [])
        if batch:
            self._go(at, batch)
        with self._changed:
            while mine.outcome is None and mine.error is None:
                self._changed.wait()
        if mine.error is not None:
            raise mine.error
        return bool(mine.outcome)

    def _go(self, at: datetime, batch: list[_Due]) -> None:
        outcomes: list[tuple[bool | None, Exception | None]] = []
        try:
            for due in batch:
                try:
                    outcomes.append((due.check(), None))
                except Exception as exc:  # its own worker raises it
                    outcomes.append((None, exc))
            self._sleep_until(at, 0.0)
            for due, (outcome, _) in zip(batch, outcomes, strict=True):
                if outcome and due.held is not None:
                    due.held.release()
        finally:  # whatever happened, no run of the batch waits for ever
            with self._changed:
                if any(outcome for outcome, _ in outcomes):
                    quiet = at + QUIET
                    self._quiet_until = max(quiet, self._quiet_until or quiet)
                for due, (outcome, error) in zip(batch, outcomes, strict=False):
                    due.outcome, due.error = outcome, error
                for due in batch[len(outcomes) :]:
                    due.error = RuntimeError("interrupted before its instant")
                self._changed.notify_all()

    def _sleep_until(self, at: datetime, before: float) -> None:
        # Not `sleep(0)` for a run already late (a burst queued behind `max_parallel`): on a
        # loaded machine even that gives the CPU away, twice per run.
        left = (at - self._clock()).total_seconds() - before
        if left > 0:
            time.sleep(left)

    def settle(self) -> None:
        """Wait, at most SETTLE_MAX, while a run is being prepared for an instant within LEAD
        of now, or until QUIET after the last instant whose runs started; not at all while a
        run prepared ahead waits for a worker (more are due than `max_parallel`)."""
        deadline = time.monotonic() + self._settle_max
        with self._changed:
            while (left := deadline - time.monotonic()) > 0:
                now = self._clock()
                if any(i.tickets > i.working for i in self._instants.values()):
                    return  # runs wait for a worker: this one is wanted, now
                if self._soon(now):
                    self._changed.wait(min(left, LEAD.total_seconds()))
                elif self._quiet_until is not None and self._quiet_until > now:
                    self._changed.wait(min(left, (self._quiet_until - now).total_seconds()))
                else:
                    return

    def _soon(self, now: datetime) -> bool:
        return any(
            instant.working and now < at <= now + LEAD for at, instant in self._instants.items()
        )
