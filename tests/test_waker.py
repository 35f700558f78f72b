"""The main loop's sleep: woken by another thread at once or a little later, and the reports of
runs done waking it later only while runs wait for a worker."""

from __future__ import annotations

import os
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from vaultsched.adapters.waker import Waker
from vaultsched.core.model import Task, Trigger
from vaultsched.core.schedules import parse_schedule
from vaultsched.runtime.execute import REPORT_DELAY, Reports
from vaultsched.runtime.messages import Job

linux = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="timerfd: Linux only")


def _returns(waker: Waker, deadline: datetime | None) -> float:
    """`waker.wait(deadline)` on a thread of its own: seconds until it returned (it must)."""
    thread = threading.Thread(target=waker.wait, args=(deadline,), daemon=True)
    started = time.monotonic()
    thread.start()
    thread.join(timeout=30)
    assert not thread.is_alive(), "wait() did not return"
    return time.monotonic() - started


@linux
def test_a_wake_up_asked_for_later_ends_a_sleep_with_nothing_due() -> None:
    waker = Waker()
    try:
        threading.Timer(0.05, waker.notify_after, args=(0.05,)).start()
        _returns(waker, None)
        assert waker.wakeups == 1
    finally:
        waker.close()


@linux
def test_an_earlier_ask_stands_and_a_wake_up_spends_it() -> None:
    waker = Waker()
    try:
        waker.notify_after(0.01)
        waker.notify_after(3600)  # later than the pending ask: it wakes no later for this
        _returns(waker, None)
        # Spent: the next sleep lasts until its own deadline (a floor, so a slow machine
        # cannot fail it), not cut short by the ask already answered.
        assert _returns(waker, datetime.now(UTC) + timedelta(seconds=0.4)) >= 0.35
    finally:
        waker.close()


def test_a_waker_without_timers_wakes_at_once_when_asked_for_later() -> None:
    waker = Waker()
    try:
        if waker._later is not None:  # as on a system without timerfd
            os.close(waker._later)
            waker._later = None
        waker.notify_after(3600)
        _returns(waker, None)
    finally:
        waker.close()


@linux
def test_a_timer_that_cannot_be_set_wakes_at_once() -> None:
    waker = Waker()
    never_readable, not_a_timer = os.pipe()
    try:
        assert waker._later is not None
        os.close(waker._later)
        waker._later = not_a_timer  # timerfd_settime fails on it (EINVAL)
        waker.notify_after(3600)
        _returns(waker, None)
    finally:
        waker.close()
        os.close(never_readable)


def test_a_closed_waker_is_asked_for_nothing() -> None:
    waker = Waker()
    waker.close()
    waker.notify()
    waker.notify_after(0.01)  # neither raises, nor touches a descriptor number reused since


class _Calls:
    def __init__(self) -> None:
        self.now = 0
        self.later: list[float] = []

    def wake(self) -> None:
        self.now += 1

    def wake_after(self, seconds: float) -> None:
        self.later.append(seconds)


def _job() -> Job:
    task = Task("Tasks/A", "Tasks/A.md", "true", (parse_schedule("every 1m"),), ZoneInfo("UTC"))
    return Job(task, Trigger.SCHEDULE, datetime(2026, 1, 1, tzinfo=UTC))


def test_a_report_wakes_the_loop_at_once_unless_runs_wait_for_a_worker() -> None:
    calls, waiting = _Calls(), [0]
    reports = Reports(calls.wake, calls.wake_after, lambda: waiting[0])
    reports.put(_job(), None)
    assert (calls.now, calls.later) == (1, [])
    waiting[0] = 3  # a burst queued behind max_parallel
    reports.put(_job(), None)
    reports.put(_job(), None)
    assert (calls.now, calls.later) == (1, [REPORT_DELAY, REPORT_DELAY])
    assert len(list(reports.take())) == 3  # none held back once the loop takes them


def test_reports_without_a_later_wake_up_always_wake_at_once() -> None:
    calls = _Calls()
    reports = Reports(calls.wake, backlog=lambda: 5)
    reports.put(_job(), None)
    assert (calls.now, calls.later) == (1, [])
