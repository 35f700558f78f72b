"""Landing's writers: two threads while the work is quick, more once it is slow or stuck."""

from __future__ import annotations

import threading
import time

import pytest

from vaultsched.runtime import widening
from vaultsched.runtime.widening import map_widening


@pytest.fixture
def judged_by_the_caller(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the caller's `slow()` widens the work (whatever a loaded machine does to the time
    an item takes)."""
    monkeypatch.setattr(widening, "SLOW_ITEM", 60.0)
    monkeypatch.setattr(widening, "STUCK", 60.0)


def _threads_used(*, slow: bool, pause: float = 0.0) -> tuple[list[int], set[str]]:
    names: set[str] = set()

    def work(item: int) -> int:
        names.add(threading.current_thread().name)
        time.sleep(pause)
        return item * 2

    results = map_widening(work, range(40), narrow=2, wide=6, slow=lambda: slow, name="w")
    return results, names


@pytest.mark.usefixtures("judged_by_the_caller")
def test_quick_work_stays_on_the_narrow_threads_and_keeps_the_order() -> None:
    results, names = _threads_used(slow=False)
    assert results == [n * 2 for n in range(40)]
    assert names <= {"w_0", "w_1"}


@pytest.mark.usefixtures("judged_by_the_caller")
def test_work_the_caller_finds_slow_widens() -> None:
    results, names = _threads_used(slow=True, pause=0.02)  # 0.4 s on two threads
    assert results == [n * 2 for n in range(40)]
    assert len(names) > 2  # six at most, however many got an item before the list ran out


def test_items_slow_on_average_widen_whatever_the_caller_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A file system slow to answer (FUSE, a share): each note a few tens of milliseconds."""
    monkeypatch.setattr(widening, "STUCK", 60.0)
    monkeypatch.setattr(widening, "SLOW_ITEM", 0.01)
    results, names = _threads_used(slow=False, pause=0.03)
    assert results == [n * 2 for n in range(40)]
    assert len(names) > 2


def test_items_stuck_on_every_narrow_thread_do_not_hold_the_rest_back() -> None:
    """A note waiting for its editor: the others are written meanwhile."""
    release, others = threading.Event(), threading.Semaphore(0)

    def work(item: int) -> int:
        if item < 2:  # the first two: one on each narrow thread
            assert release.wait(30)
        else:
            others.release()
        return item

    done: list[list[int]] = []
    caller = threading.Thread(
        target=lambda: done.append(
            map_widening(work, range(20), narrow=2, wide=4, slow=lambda: False, name="w")
        )
    )
    caller.start()
    try:
        for _ in range(18):  # every other item, while the two still wait
            assert others.acquire(timeout=30)
    finally:
        release.set()
    caller.join(30)
    assert done == [list(range(20))]


def test_what_the_work_raised_is_raised_once_every_item_is_done() -> None:
    seen: list[int] = []

    def work(item: int) -> int:
        seen.append(item)
        if item == 3:
            raise OSError("disk full")
        return item

    with pytest.raises(OSError, match="disk full"):
        map_widening(work, range(10), narrow=2, wide=4, slow=lambda: False, name="w")
    assert sorted(seen) == list(range(10))
    assert map_widening(work, [], narrow=2, wide=4, slow=lambda: False, name="w") == []
    assert map_widening(str, range(3), narrow=2, wide=4, slow=lambda: False, name="w") == list(
        "012"
    )


def test_an_interrupted_caller_begins_nothing_more_and_waits_for_the_items_under_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ctrl-C in a one-shot command while it writes notes: none is cut off mid-write by the
    interpreter's exit, and none is begun after it."""
    monkeypatch.setattr(widening, "LOOK_EVERY", 0.01)
    begun: list[int] = []

    def work(item: int) -> int:
        begun.append(item)
        time.sleep(0.02)
        return item

    def interrupted() -> bool:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        map_widening(work, range(100), narrow=2, wide=4, slow=interrupted, name="cut")
    assert not [t for t in threading.enumerate() if t.name.startswith("cut_")]
    assert len(begun) < 100
    settled = len(begun)
    time.sleep(0.1)
    assert len(begun) == settled
