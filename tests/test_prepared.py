"""Runs prepared ahead of their time: recorded first, started at their instant, never a run
whose code changed meanwhile; what the workers preparing them share (`Starts`)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from zoneinfo import ZoneInfo

import pytest
from conftest import wait_for, write_note

from vaultsched.adapters.ledger import Ledger
from vaultsched.adapters.vault import Vault, read_note
from vaultsched.core import layout
from vaultsched.core.model import Run, Status, Task, Trigger
from vaultsched.runtime.execute import LocalExecutor
from vaultsched.runtime.messages import Job
from vaultsched.runtime.record import Recorder
from vaultsched.runtime.rests import Rests
from vaultsched.runtime.run import Execution
from vaultsched.runtime.starts import Starts
from vaultsched.runtime.workspace import open_workspace
from vaultsched.trust.store import TrustStore


def execution(vault: Vault) -> Execution:
    return Execution(Recorder(open_workspace(vault), land=lambda landed: None))


def task_of(vault: Vault, rel: str, command: str) -> Task:
    write_note(vault.root, rel, f"---\ncommand: {command}\n---\n")
    task = read_note(vault, rel).task
    assert task is not None
    return task


def soon(seconds: float) -> datetime:
    """A whole millisecond `seconds` from now (ledger times keep milliseconds)."""
    moment = datetime.now(UTC) + timedelta(seconds=seconds)
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def test_a_prepared_run_is_on_disk_before_its_process_which_starts_at_its_instant(
    vault: Vault,
) -> None:
    # The command prints the time it ran and the start records it finds in the ledger.
    task = task_of(vault, "Tasks/T.md", "date +%s.%N; cat .vaultsched/runs/*/*.jsonl")
    at = soon(1.0)
    run = execution(vault).run(Job(task, Trigger.SCHEDULE, at, start_at=at))
    assert run.status is Status.SUCCESS and run.started_at == at
    began, *ledger = run.output_tail.splitlines()
    assert float(began) >= at.timestamp()  # never before its time
    assert any('"type":"start"' in line and run.run_id in line for line in ledger)


def test_a_script_edited_while_its_run_waits_for_its_instant_is_not_run(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VAULTSCHED_TRUST")
    script = write_note(vault.root, "scripts/job.sh", "touch ran-v1\n")
    task = task_of(vault, "Tasks/T.md", "sh scripts/job.sh")
    TrustStore().trust(vault.root, [task])
    ledger = Ledger(vault.root, vault.host)

    def edit_once_recorded() -> None:  # prepared: checked, and its start record written
        while not ledger.runs():
            time.sleep(0.01)
        script.write_text("touch ran-v2\n")

    editor = threading.Thread(target=edit_once_recorded)
    editor.start()
    at = soon(5.0)  # ample on a loaded machine: the edit lands between record and instant
    run = execution(vault).run(Job(task, Trigger.SCHEDULE, at, start_at=at))
    editor.join()
    assert run.status is Status.UNTRUSTED
    assert run.message.startswith("untrusted:")
    assert not list(vault.root.glob("ran-*"))
    assert [r.status for r in ledger.runs()] == [Status.UNTRUSTED]  # its start, then its end


def test_runs_due_at_one_instant_are_recorded_in_one_write_and_all_run(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[list[str]] = []
    real = Ledger.append_all

    def counted(self: Ledger, records: list[dict[str, Any]], **how: bool) -> Path:
        writes.append([record["type"] for record in records])
        return real(self, records, **how)

    monkeypatch.setattr(Ledger, "append_all", counted)
    tasks = [task_of(vault, f"Tasks/T{n}.md", f"echo {n}") for n in range(3)]
    runner = execution(vault)
    runner.starts = Starts(
        runner.recorder.workspace.ledger.append_all, runner.recorder.workspace.clock, gather=60
    )
    done: list[Run | None] = []
    executor = LocalExecutor(runner, 3, lambda job, run: done.append(run))
    at = soon(2.0)
    jobs = [Job(task, Trigger.SCHEDULE, at, start_at=at) for task in tasks]
    for job in jobs:  # as the daemon's loop hands them over, faster than any worker starts
        runner.starts.expect(job)
    for job in jobs:
        executor.submit(job)
    executor.shutdown()
    assert [w for w in writes if "start" in w] == [["start"] * 3]
    assert sorted(r.status for r in done if r) == [Status.SUCCESS] * 3


def _job(at: datetime) -> Job:
    return Job(Task("T", "T.md", "true", (), ZoneInfo("UTC")), Trigger.SCHEDULE, at, start_at=at)


def test_an_ended_run_waits_while_another_is_about_to_start_never_for_a_late_one() -> None:
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    starts = Starts(lambda records: None, lambda: now, settle_max=60)  # a clock that stands
    late, waiting = _job(now - timedelta(seconds=1)), _job(now + timedelta(seconds=0.1))
    for job in (late, waiting):
        starts.expect(job)
        starts.working(job)
    settled = threading.Event()

    def end() -> None:
        starts.settle()
        settled.set()

    ended = threading.Thread(target=end)
    ended.start()
    assert not settled.wait(0.3)  # the one about to start is waited for
    starts.begun(waiting)  # it never will (a gate said no): the late one is not waited for
    assert settled.wait(60)
    ended.join()


def test_runs_started_late_hold_no_ended_run_back() -> None:
    """A burst queued behind `max_parallel` starts its runs late, one after the other: the quiet
    kept after an instant's starts is counted from the instant, so it is long over."""
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    starts = Starts(lambda records: None, lambda: now, settle_max=60)  # a clock that stands
    late = _job(now - timedelta(seconds=1))
    starts.expect(late)
    starts.working(late)
    assert starts.at_its_time(late, lambda: True, None)
    starts.begun(late)
    assert _settles(starts)


def test_a_run_already_late_is_let_go_without_a_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    # Even `sleep(0)` gives the CPU away on a loaded machine: twice per run of a burst.
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    starts = Starts(lambda records: None, lambda: now)
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    late = _job(now - timedelta(seconds=1))
    starts.expect(late)
    assert starts.at_its_time(late, lambda: True, None)
    assert slept == []


def test_no_ended_run_waits_while_a_run_waits_for_a_worker() -> None:
    """More runs due at once than `max_parallel`: a worker is wanted more than quiet is."""
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    starts = Starts(lambda records: None, lambda: now, settle_max=60)  # a clock that stands
    preparing, queued = (_job(now + timedelta(seconds=0.1)) for _ in range(2))
    starts.expect(preparing)
    starts.working(preparing)  # would be waited for, were it alone
    starts.expect(queued)  # handed over, no worker free for it yet
    assert _settles(starts)


def _settles(starts: Starts) -> bool:
    """Whether `starts.settle()` returns (on a thread of its own) within a generous 30 s."""
    settled = threading.Event()

    def end() -> None:
        starts.settle()
        settled.set()

    threading.Thread(target=end, daemon=True).start()
    return settled.wait(30)


class _Blocking:
    """Stands in for the Execution: each run waits until it is let go."""

    def __init__(self) -> None:
        self.go = threading.Event()
        self.rests = Rests()

    def run(self, job: Job) -> None:
        self.go.wait(60)

    def prepare(self, task: Task) -> None:
        pass

    def spare(self, task: Task) -> None:
        pass


def test_the_executor_counts_the_jobs_waiting_for_a_worker() -> None:
    blocking = _Blocking()
    done: list[Job] = []
    executor = LocalExecutor(cast(Execution, blocking), 1, lambda job, run: done.append(job))
    jobs = [Job(_job(datetime.now(UTC)).task, Trigger.MANUAL) for _ in range(3)]
    for job in jobs:
        executor.submit(job)
    deadline = time.monotonic() + 30  # the worker takes the first job up when it gets to it
    while executor.waiting > 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert executor.waiting == 2  # one worker: one job taken up, two wait
    blocking.go.set()
    executor.shutdown()
    assert executor.waiting == 0 and done == jobs


def test_a_task_s_folders_are_made_ahead_once_never_through_a_link(vault: Vault) -> None:
    runner = execution(vault)
    executor = LocalExecutor(runner, 1, lambda job, run: None)
    made = [task_of(vault, "Tasks/A/T.md", "echo a")]
    executor.prepare(made)
    state = vault.root / ".vaultsched"
    wait_for((state / "state/tasks/Tasks/A/T").is_dir)
    assert (state / "logs/Tasks/A/T").is_dir()
    outside = vault.root.parent / "outside"
    outside.mkdir()
    (state / "logs/Tasks/B").symlink_to(outside)
    refused = task_of(vault, "Tasks/B/T.md", "echo b")
    executor.prepare([refused, *made])  # refused quietly (its run says so); A not again
    wait_for((state / "state/tasks/Tasks/B/T").is_dir)
    assert not list(outside.iterdir())
    executor.shutdown()


def test_a_run_s_log_is_the_file_made_ahead_and_the_next_is_made_once_it_ends(
    vault: Vault,
) -> None:
    done: list[Run | None] = []
    executor = LocalExecutor(execution(vault), 1, lambda job, run: done.append(run))
    task = task_of(vault, "Tasks/S.md", "echo spared")
    spare = vault.root / layout.spare_log(task.id)
    executor.prepare([task])
    wait_for(spare.exists)
    made_ahead = spare.stat().st_ino
    executor.submit(Job(task, Trigger.MANUAL))
    executor.shutdown()
    run = done[0]
    assert run is not None and run.status is Status.SUCCESS
    log = vault.root / layout.run_log(task.id, run.run_id)
    assert log.stat().st_ino == made_ahead
    assert "spared" in log.read_text()
    assert spare.stat().st_size == 0 and spare.stat().st_ino != made_ahead


def test_a_run_s_shell_loads_while_its_start_record_is_written_and_waits_for_it(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A run due now too: its shell is started first, the record made durable, then it runs.
    from vaultsched.runtime import process

    order: list[str] = []
    real_hold = process.hold

    def hold(*args: Any, **kwargs: Any) -> Any:
        order.append("hold")
        return real_hold(*args, **kwargs)

    monkeypatch.setattr(process, "hold", hold)
    task = task_of(vault, "Tasks/T.md", "cat .vaultsched/runs/*/*.jsonl")
    ex = execution(vault)
    real_started = ex.recorder.started

    def started(*args: Any) -> None:
        order.append("start record")
        real_started(*args)

    monkeypatch.setattr(ex.recorder, "started", started)
    run = ex.run(Job(task, Trigger.MANUAL))
    assert order == ["hold", "start record"]
    assert run.status is Status.SUCCESS and '"type":"start"' in run.output_tail


def test_a_run_whose_start_record_cannot_be_written_never_runs_its_command(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = task_of(vault, "Tasks/T.md", "touch ran")
    ex = execution(vault)

    def refused(*args: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(ex.recorder, "started", refused)
    with pytest.raises(OSError, match="disk full"):
        ex.run(Job(task, Trigger.MANUAL))
    assert not (vault.root / "ran").exists() and ex.children == {}
