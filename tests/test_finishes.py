"""Finish records kept while runs wait for a worker (`Finishes`): pure bookkeeping."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import cast

from vaultsched.core.model import Run, Status, Task, Trigger
from vaultsched.runtime import finishes
from vaultsched.runtime.finishes import Finishes

AT = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _task(name: str) -> Task:
    return cast(Task, type("T", (), {"id": name})())


def _run(task: str, n: int) -> Run:
    return Run(f"r{n}", task, Status.SUCCESS, Trigger.SCHEDULE, AT, "h", 1, AT, AT)


def _kept(holding: bool) -> tuple[Finishes, list[str]]:
    written: list[str] = []
    kept = Finishes(lambda task, run, stdout: written.append(run.run_id))
    kept.hold = lambda: holding
    return kept, written


def test_written_at_once_unless_runs_wait() -> None:
    kept, written = _kept(holding=False)
    kept.put(_task("A"), _run("A", 1), "out")
    assert written == ["r1"] and len(kept) == 0


def test_kept_while_runs_wait_then_a_task_s_own_or_all_in_the_order_they_ended() -> None:
    kept, written = _kept(holding=True)
    for n, name in enumerate("ABAB"):
        kept.put(_task(name), _run(name, n), None)
    assert written == [] and len(kept) == 4
    kept.settle("A")  # before A's next run
    assert written == ["r0", "r2"] and len(kept) == 2
    kept.settle("C")  # nothing of C's: at once
    kept.settle()
    assert written == ["r0", "r2", "r1", "r3"] and len(kept) == 0


def test_what_is_kept_is_bounded_in_runs_and_in_output(monkeypatch: object) -> None:
    kept, written = _kept(holding=True)
    for n in range(finishes.OWED_MAX + 1):
        kept.put(_task("A"), _run("A", n), None)
    assert written == [f"r{finishes.OWED_MAX}"]
    big, written_big = _kept(holding=True)
    big.put(_task("A"), _run("A", 1), "x" * finishes.OWED_BYTES)
    big.put(_task("A"), _run("A", 2), "x")
    assert written_big == ["r2"]


def test_a_record_that_fails_to_be_written_does_not_lose_the_others() -> None:
    written: list[str] = []

    def write(task: Task, run: Run, stdout: str | None) -> None:
        if run.run_id == "r1":
            raise RuntimeError("a bug")
        written.append(run.run_id)

    kept = Finishes(write)
    kept.hold = lambda: True
    for n in range(3):
        kept.put(_task("A"), _run("A", n), None)
    kept.settle()
    assert written == ["r0", "r2"] and len(kept) == 0
