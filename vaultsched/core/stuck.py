"""Stuck runs: a run still going well past what its task usually takes. Pure: runs in, a
verdict out."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from vaultsched.core.model import Run, Status

MIN_STUCK = timedelta(minutes=10)  # never sooner: a task of seconds is not stuck at a minute
STUCK_FACTOR = 3  # times the task's median duration


def stuck_after(history: Iterable[Run]) -> timedelta | None:
    """How long a run of a task may go before it counts as stuck: 3 times the median duration
    of its successful runs, at least 10 minutes; None without a success to go by."""
    durations = [r.duration_s for r in history if r.status is Status.SUCCESS and r.duration_s]
    if not durations:
        return None
    import statistics  # here: it pulls in fractions and decimal, for a run still going only

    return max(STUCK_FACTOR * timedelta(seconds=statistics.median(durations)), MIN_STUCK)


def stuck_since(run: Run, history: Iterable[Run]) -> datetime | None:
    """When `run` (still going) becomes stuck; None if it never does by this rule."""
    after = stuck_after(history)
    return None if after is None else run.started_at + after
