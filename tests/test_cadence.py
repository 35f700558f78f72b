"""When the daemon commits: an injected clock, no git."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from vaultsched.runtime.commit import COMMIT_EVERY, Cadence

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
S = timedelta(seconds=1)


def cadence(busy: list[bool]) -> Cadence:
    return Cadence(lambda: False, datetime.min.replace(tzinfo=UTC), busy=lambda: busy[0])


def test_a_run_alone_is_committed_at_once_then_at_most_every_commit_every() -> None:
    idle = cadence([False])
    idle.owe(T0)
    assert idle.due(T0)
    idle.owe(T0 + S)
    assert not idle.due(T0 + S)
    assert idle.next_at() == T0 + COMMIT_EVERY and idle.due(T0 + COMMIT_EVERY)
    assert idle.next_at() is None


def test_a_burst_is_committed_once_its_runs_are_over() -> None:
    busy = [True]
    burst = cadence(busy)
    burst.owe(T0)  # the first run of a burst has landed; the others are still running
    burst.owe(T0 + S)
    assert not burst.due(T0 + S) and burst.next_at() == T0 + COMMIT_EVERY

    busy[0] = False  # the last run is over
    assert burst.due(T0 + 2 * S)


def test_runs_in_flight_hold_a_commit_back_no_longer_than_commit_every() -> None:
    burst = cadence([True])
    burst.owe(T0)
    assert not burst.due(T0 + COMMIT_EVERY - S)
    assert burst.due(T0 + COMMIT_EVERY)
    burst.owe(T0 + COMMIT_EVERY + S)  # still going: the next one as long after that
    assert burst.next_at() == T0 + 2 * COMMIT_EVERY + S
