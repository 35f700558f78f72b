"""An ended run's finish record put off while other runs wait for a worker (`Rests`): never
lost, never kept long, done before the task's next run, never for a run that starts others."""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable

import pytest
from conftest import wait_for, write_note

from vaultsched.adapters.ledger import Ledger
from vaultsched.adapters.vault import Vault, read_note
from vaultsched.core import layout
from vaultsched.core.model import Run, Status, Task, Trigger
from vaultsched.runtime.execute import LocalExecutor
from vaultsched.runtime.land import Landed
from vaultsched.runtime.messages import Job
from vaultsched.runtime.record import Recorder
from vaultsched.runtime.rests import Rests
from vaultsched.runtime.run import Execution
from vaultsched.runtime.workspace import open_workspace


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class _Slow:
    """A rest that says when it has begun, then ends once let go (`go`), noted in `done`."""

    def __init__(self, done: list[str], name: str) -> None:
        self.inside, self.go = threading.Event(), threading.Event()
        self.done, self.name = done, name

    def __call__(self) -> None:
        self.inside.set()
        self.go.wait(30)
        self.done.append(self.name)


def test_a_kept_rest_is_done_by_its_task_s_next_run_or_a_drain_oldest_first() -> None:
    done: list[str] = []
    rests = Rests(keep_for=3600)
    for task in ("A", "B", "C"):
        rests.keep(task, functools.partial(done.append, task))
    assert rests.pending and done == []
    rests.finish("B")  # B's next run: B's rest first, no other
    assert done == ["B"]
    rests.finish("B")  # nothing kept for it any more
    rests.drain()
    assert done == ["B", "A", "C"] and not rests.pending


def test_only_rests_kept_keep_for_are_overdue() -> None:
    clock, done = _Clock(), []
    rests = Rests(keep_for=2.0, clock=clock)
    rests.keep("old", lambda: done.append("old"))
    clock.now += 1.5
    rests.keep("young", lambda: done.append("young"))
    clock.now += 0.5
    rests.drain(overdue_only=True)
    assert done == ["old"] and rests.pending
    rests.drain()
    assert done == ["old", "young"]


def test_a_rest_nobody_drains_is_done_by_its_own_thread_once_overdue() -> None:
    done = threading.Event()
    rests = Rests(keep_for=0.05)
    rests.keep("T", done.set)
    assert done.wait(30)
    wait_for(lambda: not rests.pending)


def test_a_rest_is_done_by_the_watch_no_sooner_than_keep_for_and_not_long_after() -> None:
    done = threading.Event()
    rests = Rests(keep_for=0.5)
    began = time.monotonic()
    rests.keep("T", done.set)
    assert done.wait(30)
    assert 0.5 <= time.monotonic() - began < 10  # loose: a loaded machine wakes it late


def test_a_rest_being_done_is_still_pending() -> None:
    # What holds landing back (`LocalExecutor.busy`): its record is not written yet.
    slow, rests = _Slow([], "A"), Rests(keep_for=3600)
    rests.keep("A", slow)
    drainer = threading.Thread(target=rests.drain)
    drainer.start()
    assert slow.inside.wait(30)
    assert rests.pending
    slow.go.set()
    drainer.join(30)
    assert not rests.pending


def test_a_task_s_next_run_waits_for_the_rest_another_thread_is_doing() -> None:
    order: list[str] = []
    slow, rests = _Slow(order, "rest"), Rests(keep_for=3600)
    rests.keep("T", slow)
    drainer = threading.Thread(target=rests.drain)
    drainer.start()
    assert slow.inside.wait(30)

    def next_run() -> None:
        rests.finish("T")
        order.append("next run")

    runner = threading.Thread(target=next_run)
    runner.start()
    runner.join(0.2)
    assert runner.is_alive()  # waits: the rest is not done yet
    slow.go.set()
    runner.join(30)
    drainer.join(30)
    assert order == ["rest", "next run"]


def test_close_waits_for_the_rest_being_done_and_keeps_none_after() -> None:
    # A stop while the watch (or a worker) is doing a rest: `close` returns once it is done.
    done: list[str] = []
    slow, rests = _Slow(done, "slow"), Rests(keep_for=3600)
    rests.keep("A", slow)
    rests.keep("B", functools.partial(done.append, "B"))
    threading.Thread(target=rests.finish, args=("A",), daemon=True).start()
    assert slow.inside.wait(30)
    closer = threading.Thread(target=rests.close)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive() and done == ["B"]  # B done; A still being done elsewhere
    slow.go.set()
    closer.join(30)
    assert done == ["B", "slow"] and not rests.pending
    rests.keep("C", functools.partial(done.append, "C"))  # a run ending after the stop
    assert done == ["B", "slow", "C"] and not rests.pending


def test_a_rest_that_raises_is_said_and_forgotten_never_wedging_its_task(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken() -> None:
        raise RuntimeError("a bug")

    rests = Rests(keep_for=3600)
    rests.keep("T", broken)
    with caplog.at_level(logging.ERROR):
        rests.drain()
    assert "T: recording an ended run failed inside vaultsched" in caplog.text
    assert not rests.pending
    rests.keep("T", lambda: None)  # its next run's rest is kept as before


# -- in the run path ---------------------------------------------------------------------------


def _task(vault: Vault, rel: str, command: str) -> Task:
    write_note(vault.root, rel, f"---\ncommand: {command}\n---\n")
    task = read_note(vault, rel).task
    assert task is not None
    return task


def _putting_off(vault: Vault, landed: list[Landed]) -> Execution:
    execution = Execution(Recorder(open_workspace(vault), land=landed.append))
    execution.put_off = lambda: True  # as while runs wait for a worker
    execution.rests = Rests(keep_for=3600)
    return execution


def _statuses(vault: Vault) -> dict[str, Status]:
    return {run.run_id: run.status for run in Ledger(vault.root, vault.host).runs()}


def test_a_run_ended_in_a_burst_is_reported_at_once_and_recorded_once_drained(
    vault: Vault,
) -> None:
    landed: list[Landed] = []
    execution = _putting_off(vault, landed)
    task = _task(vault, "Tasks/T.md", "echo kept")
    run = execution.run(Job(task, Trigger.MANUAL))
    assert run.status is Status.SUCCESS  # what dispatch is told, at once
    assert _statuses(vault) == {run.run_id: Status.RUNNING} and landed == []
    # What the next run needs is in place already: the output kept, the slot let go.
    assert (vault.root / layout.run_output(task.id, run.run_id)).read_text() == "kept\n"
    assert execution.idle(task)
    execution.rests.drain()
    assert _statuses(vault) == {run.run_id: Status.SUCCESS}
    assert [item.run.run_id for item in landed] == [run.run_id]


def test_a_run_that_starts_after_tasks_is_recorded_at_once_never_kept(vault: Vault) -> None:
    execution = _putting_off(vault, [])
    execution.downstream = lambda run: ("Tasks/Next",)
    run = execution.run(Job(_task(vault, "Tasks/T.md", "echo up"), Trigger.MANUAL))
    assert run.chain == ("Tasks/Next",)
    assert _statuses(vault) == {run.run_id: Status.SUCCESS}  # its chain survives a kill
    assert not execution.rests.pending


def test_a_task_s_next_run_sees_its_last_run_recorded(vault: Vault) -> None:
    execution = _putting_off(vault, [])
    task = _task(vault, "Tasks/T.md", "echo $VAULTSCHED_LAST_SUCCESS_AT")
    first = execution.run(Job(task, Trigger.MANUAL))
    second = execution.run(Job(task, Trigger.MANUAL))
    assert first.started_at.isoformat(timespec="milliseconds")[:19] in second.output_tail
    execution.rests.drain()
    records = Ledger(vault.root, vault.host).records()
    order = [(r["type"], r["run_id"]) for r in records]
    assert order.index(("finish", first.run_id)) < order.index(("start", second.run_id))


def test_an_if_changed_run_s_inputs_count_as_handled_only_with_its_record(
    vault: Vault,
) -> None:
    # A kill before the record is written leaves the run interrupted: it must run again.
    write_note(vault.root, "data.txt", "v1\n")
    write_note(vault.root, "Tasks/T.md", "---\ncommand: echo ran\nif_changed: data.txt\n---\n")
    task = read_note(vault, "Tasks/T.md").task
    assert task is not None
    execution = _putting_off(vault, [])
    inputs = vault.root / layout.inputs_file(task.id)
    run = execution.run(Job(task, Trigger.MANUAL))
    assert run.status is Status.SUCCESS and not inputs.exists()
    execution.rests.drain()
    assert inputs.exists()


def test_the_executor_is_busy_while_a_record_is_kept_and_keeps_none_once_none_waits(
    vault: Vault,
) -> None:
    execution = Execution(Recorder(open_workspace(vault), land=lambda landed: None))
    execution.rests = Rests(keep_for=3600)  # only a worker with none waiting does them
    executor = LocalExecutor(execution, 1, lambda job, run: None)
    go = threading.Event()
    execution.rests.keep("Tasks/Other", lambda: None)  # as if put off in a burst just now
    assert executor.busy  # none waits for a worker, but a record is still to be written
    for n in range(3):
        executor.submit(Job(_task(vault, f"Tasks/T{n}.md", f"echo {n}"), Trigger.MANUAL))
    wait_for(lambda: not executor.busy, what="every kept record written once none waits")
    assert len(_statuses(vault)) == 3 and Status.RUNNING not in _statuses(vault).values()
    execution.rests.keep("Tasks/Late", go.set)  # kept with no run to come: the stop does it
    executor.shutdown()
    assert go.is_set()


def test_a_burst_on_the_executor_records_every_run_and_is_busy_until_then(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    landed: list[Landed] = []
    execution = Execution(Recorder(open_workspace(vault), land=landed.append))
    done: list[Run | None] = []
    executor = LocalExecutor(execution, 1, lambda job, run: done.append(run))
    kept, keep = [], execution.rests.keep

    def counted(task_id: str, rest: Callable[[], None]) -> None:
        kept.append(executor.busy)  # a rest kept, counted as one
        keep(task_id, rest)

    monkeypatch.setattr(execution.rests, "keep", counted)
    tasks = [_task(vault, f"Tasks/T{n}.md", f"echo {n}") for n in range(6)]
    for task in tasks:
        executor.submit(Job(task, Trigger.MANUAL))
    executor.shutdown()
    assert len(done) == 6 and not executor.busy
    statuses = _statuses(vault)
    assert len(statuses) == 6 and set(statuses.values()) == {Status.SUCCESS}
    assert len(landed) == 6
    assert kept and all(kept)  # some were put off: the first ended while five waited
