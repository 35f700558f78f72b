"""Sleeping until a wall-clock deadline, or until something happens, without polling.

A relative sleep on the monotonic clock overshoots after a suspend and after the wall clock
is stepped. On Linux we arm a `timerfd` on CLOCK_REALTIME with an absolute deadline and
TFD_TIMER_CANCEL_ON_SET, so the kernel wakes us at the right wall-clock moment, and also at
once when the clock is set (NTP step, manual change). Elsewhere each sleep is capped at
`FALLBACK_CAP` and the caller re-checks the clock.

Another thread may ask for a wake-up a little later rather than at once (`notify_after`): a
second timer, on the monotonic clock, which any number of such asks share.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import sys
import threading
import time
from datetime import UTC, datetime

FALLBACK_CAP = 60.0

_CLOCK_REALTIME = 0
_CLOCK_MONOTONIC = 1
_TFD_CLOEXEC = os.O_CLOEXEC
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_TIMER_ABSTIME = 1
_TFD_TIMER_CANCEL_ON_SET = 2


class _Timespec(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))


class _Itimerspec(ctypes.Structure):
    _fields_ = (("it_interval", _Timespec), ("it_value", _Timespec))


class Waker:
    """`wait(deadline)` returns at the deadline, on `notify()` from any thread, or on a clock
    step. `wakeups` counts returns, so tests can check that nothing wakes while nothing is due."""

    def __init__(self) -> None:
        self.wakeups = 0
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._read_fd, False)
        os.set_blocking(self._write_fd, False)
        self._timer = _timerfd()
        self._later = _timerfd(_CLOCK_MONOTONIC)
        self._later_at: float | None = None  # monotonic: when `_later` is armed to fire
        self._lock = threading.Lock()
        self._signals = False
        self._closed = False

    def notify(self) -> None:
        if self._closed:  # its descriptors' numbers may be another file's by now
            return
        with contextlib.suppress(BlockingIOError):
            os.write(self._write_fd, b"!")

    def notify_after(self, seconds: float) -> None:
        """Wake `wait` within `seconds` (at once where there is no timer to arm, or it
        cannot be); an earlier ask already pending stands."""
        at = time.monotonic() + seconds
        with self._lock:  # `close` waits for this
            if self._closed:
                return
            if self._later is not None:
                try:
                    if self._later_at is None or at < self._later_at:
                        _settime(self._later, at, _TFD_TIMER_ABSTIME)
                        self._later_at = at
                    return
                except OSError:
                    pass  # it cannot be set: at once instead
        self.notify()

    def wait(self, deadline: datetime | None) -> None:
        timeout = None
        if self._timer is not None and deadline is not None:
            _arm(self._timer, deadline.timestamp())
        elif deadline is not None:
            remaining = deadline.timestamp() - datetime.now(UTC).timestamp()
            timeout = max(0.0, min(remaining, FALLBACK_CAP))
        watched = [fd for fd in (self._read_fd, self._timer, self._later) if fd is not None]
        if deadline is None or self._timer is None or deadline.timestamp() > _now():
            select.select(watched, [], [], timeout)
        self.wakeups += 1
        self._drain()

    def _drain(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read_fd, 4096):
                pass
        if self._timer is not None:
            # ECANCELED after a clock step, EAGAIN when not expired: both mean "re-check".
            with contextlib.suppress(OSError):
                os.read(self._timer, 8)
            _disarm(self._timer)
        if self._later is not None and self._later_at is not None:
            with self._lock:  # an ask made after this is armed anew, and wakes the next wait
                with contextlib.suppress(OSError):
                    os.read(self._later, 8)
                _disarm(self._later)
                self._later_at = None

    def wake_on_signals(self) -> None:
        """A signal wakes `wait` too (from the main thread). Without it, a signal caught just
        before the sleep begins, or by another thread, is handled only at the next wake-up,
        which may be a day away."""
        signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        self._signals = True

    def close(self) -> None:
        if self._signals:  # the fd is about to be closed (and its number reused)
            with contextlib.suppress(ValueError):
                signal.set_wakeup_fd(-1)
        with self._lock:
            self._closed = True
        for fd in (self._read_fd, self._write_fd, self._timer, self._later):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)


def _now() -> float:
    return datetime.now(UTC).timestamp()


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


_LIBC = _libc()


def _timerfd(clock: int = _CLOCK_REALTIME) -> int | None:
    if _LIBC is None or not hasattr(_LIBC, "timerfd_create"):
        return None
    fd = _LIBC.timerfd_create(clock, _TFD_CLOEXEC | _TFD_NONBLOCK)
    return fd if fd >= 0 else None


def _settime(fd: int, at: float, flags: int) -> None:
    assert _LIBC is not None
    seconds = int(at)
    spec = _Itimerspec(_Timespec(0, 0), _Timespec(seconds, int((at - seconds) * 1e9)))
    if _LIBC.timerfd_settime(fd, flags, ctypes.byref(spec), None) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


def _arm(fd: int, at: float) -> None:
    # An absolute time of 0 would disarm the timer; the past fires at once, which we want.
    _settime(fd, max(at, 1.0), _TFD_TIMER_ABSTIME | _TFD_TIMER_CANCEL_ON_SET)


def _disarm(fd: int) -> None:
    _settime_zero = _Itimerspec(_Timespec(0, 0), _Timespec(0, 0))
    assert _LIBC is not None
    _LIBC.timerfd_settime(fd, 0, ctypes.byref(_settime_zero), None)
