"""The real daemon, in a subprocess, on second-level schedules, with real signals."""

from __future__ import annotations

import json
import signal
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import pytest
from conftest import HOST, Cli, DaemonProcess, git, runs, wait_for, write_note
from conftest import runs_of as of
from conftest import task_note as note

from vaultsched.adapters.config import load_config
from vaultsched.adapters.instance import InstanceLock
from vaultsched.adapters.ledger import Ledger, finish_record, start_record
from vaultsched.adapters.vault import Index, Vault
from vaultsched.core.model import Run, Status, Trigger
from vaultsched.runtime.daemon import Daemon
from vaultsched.runtime.follow import Follower

pytestmark = pytest.mark.integration

Start = Callable[..., DaemonProcess]


def commit_notes(root: Path) -> None:
    """The person commits their task notes: vaultsched commits its blocks only into notes git
    has (a note not in git yet is the person's to add)."""
    git(root, "add", "Tasks")
    git(root, "commit", "-qm", "tasks")


def test_fires_every_second_lands_and_stops_cleanly(vault_root: Path, daemons: Start) -> None:
    note(vault_root, "Tasks/Tick.md", "schedule: every 1s\ncommand: echo tick\n")
    commit_notes(vault_root)
    daemon = daemons(vault_root)
    wait_for(lambda: len(of(vault_root, "Tasks/Tick", Status.SUCCESS)) >= 4, what="4 runs")
    assert daemon.stop() == 0
    done = of(vault_root, "Tasks/Tick")
    assert all(r.status is Status.SUCCESS for r in done)
    slots = [r.scheduled_for for r in done]
    assert len(set(slots)) == len(slots), "a fire time ran twice"
    assert all(s is not None and s.microsecond == 0 for s in slots)
    assert {r.trigger for r in done} == {Trigger.SCHEDULE}
    assert "[!success]" in (vault_root / "Tasks/Tick.md").read_text()
    # Everything landed is committed by the time the daemon exits.
    assert git(vault_root, "status", "--porcelain") == ""
    assert "vaultsched:" in git(vault_root, "log", "-1", "--format=%s")


def test_edits_renames_and_deletes_are_followed_live(vault_root: Path, daemons: Start) -> None:
    path = note(vault_root, "Tasks/Live.md", "command: echo live\n")  # manual: never fires
    daemons(vault_root)
    time.sleep(1.5)
    assert of(vault_root, "Tasks/Live") == []
    # An editor's atomic save: write a temp file, rename it over the note.
    tmp = path.with_name(".Live.md.tmp")
    tmp.write_text("---\nschedule: every 1s\ncommand: echo live\n---\nBody.\n")
    tmp.replace(path)
    wait_for(lambda: len(of(vault_root, "Tasks/Live")) >= 2, what="runs after the edit")
    # Move it: history follows, and the old id stops firing.
    (vault_root / "Archive").mkdir()
    before = len(of(vault_root, "Tasks/Live"))
    path.rename(vault_root / "Archive/Live.md")
    wait_for(lambda: len(of(vault_root, "Archive/Live")) >= before + 2, what="runs after the move")
    history = of(vault_root, "Archive/Live")
    slots = [r.scheduled_for for r in history]
    assert len(set(slots)) == len(slots)
    assert of(vault_root, "Tasks/Live") == []
    # Delete it: runs stop.
    (vault_root / "Archive/Live.md").unlink()
    time.sleep(1.0)
    count = len(runs(vault_root))
    time.sleep(1.5)
    assert len(runs(vault_root)) == count


def _seed_run(root: Path, task: str, scheduled_for: datetime) -> None:
    run = Run(
        "seed-" + task.replace("/", "-"),
        task,
        Status.SUCCESS,
        Trigger.SCHEDULE,
        scheduled_for,
        HOST,
        scheduled_for=scheduled_for,
        finished_at=scheduled_for,
        duration_s=0.0,
    )
    written = Ledger(root, HOST).append(finish_record(run, f"{task}.md"))
    # History from before the daemon started is already committed, as in any real vault
    # (the seed may land in last month's file: the test must not depend on today's date).
    git(root, "add", str(written.relative_to(root)))
    git(root, "commit", "-q", "-m", "earlier runs")


def _five_minutes_ago() -> tuple[str, datetime]:
    past = (datetime.now(UTC) - timedelta(minutes=5)).replace(second=0, microsecond=0)
    return f"{past.minute} {past.hour} * * *", past


def test_catch_up_after_downtime_runs_once(vault_root: Path, daemons: Start) -> None:
    cron, missed = _five_minutes_ago()
    note(vault_root, "Tasks/Daily.md", f"schedule: '{cron}'\ntimezone: UTC\ncommand: echo caught\n")
    note(
        vault_root,
        "Tasks/Skip.md",
        f"schedule: '{cron}'\ntimezone: UTC\ncatch_up: false\ncommand: 'true'\n",
    )
    # The ledger says both last ran yesterday: today's fire time was missed while it was down.
    for task in ("Tasks/Daily", "Tasks/Skip"):
        _seed_run(vault_root, task, missed - timedelta(days=1))
    daemon = daemons(vault_root)
    wait_for(lambda: len(of(vault_root, "Tasks/Daily")) == 2, what="the catch-up run")
    time.sleep(1.5)
    assert daemon.stop() == 0
    daily = of(vault_root, "Tasks/Daily")
    assert len(daily) == 2
    assert (daily[1].trigger, daily[1].scheduled_for) == (Trigger.CATCH_UP, missed)
    # Without catch-up, the missed fire time is recorded as such, never run.
    skipped = of(vault_root, "Tasks/Skip")
    assert [(r.status, r.scheduled_for) for r in skipped[1:]] == [(Status.MISSED, missed)]
    # Restarting does not catch up again, nor record the miss twice.
    again = daemons(vault_root)
    time.sleep(2)
    assert again.stop() == 0
    assert len(of(vault_root, "Tasks/Daily")) == 2
    assert len(of(vault_root, "Tasks/Skip")) == 2


# 40 days back always crosses a month boundary (the ledger files differ), 1 day back does on
# the 1st of a month only: both must leave a clean tree on any day.
@pytest.mark.parametrize("days_back", [1, 40])
def test_run_once_fires_what_is_due_and_exits(vault_root: Path, days_back: int) -> None:
    cron, missed = _five_minutes_ago()
    note(vault_root, "Tasks/Once.md", f"schedule: '{cron}'\ntimezone: UTC\ncommand: echo once\n")
    commit_notes(vault_root)
    _seed_run(vault_root, "Tasks/Once", missed - timedelta(days=days_back))
    cli = Cli(vault_root)
    first = cli("run", "--once")
    assert first.code == 0, first.err
    assert [r.trigger for r in of(vault_root, "Tasks/Once")][-1] is Trigger.CATCH_UP
    assert cli("run", "--once").code == 0
    assert len(of(vault_root, "Tasks/Once")) == 2
    assert git(vault_root, "status", "--porcelain") == ""


def test_start_sweeps_temp_files_of_cut_short_writes(vault_root: Path) -> None:
    note(vault_root, "Tasks/Swept.md", "schedule: '0 3 1 1 *'\ncommand: echo no\n")
    digests = vault_root / "Digests"
    digests.mkdir(exist_ok=True)
    leftovers = [
        vault_root / "Tasks/.Swept.md.vaultsched-0badf00d.tmp",  # SIGKILL between write and rename
        digests / ".2026-11-22.md.vaultsched-0ddba11a.tmp",
        vault_root / ".vaultsched/state/.marks.json.b72c8846.tmp",  # killed while saving marks
    ]
    kept = [
        vault_root / "Tasks/.someone-else.tmp",
        vault_root / "Notes/.x.md.vaultsched-1.tmp",
        vault_root / ".vaultsched/state/notes.tmp",
    ]
    for path in leftovers + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("half a note")
    result = Cli(vault_root)("run", "--once")
    assert result.code == 0, result.err
    assert [p for p in leftovers if p.exists()] == []
    assert all(p.exists() for p in kept)  # not ours, or not where vaultsched writes notes


def test_dry_run_runs_nothing(vault_root: Path, daemons: Start) -> None:
    note(vault_root, "Tasks/Dry.md", "schedule: every 1s\ncommand: echo no\n")
    daemon = daemons(vault_root, "--dry-run")
    wait_for(lambda: "would run Tasks/Dry" in daemon.output(), what="dry-run log")
    assert daemon.stop() == 0
    assert runs(vault_root) == []


def test_a_dry_run_beside_the_daemon_only_reads(vault_root: Path) -> None:
    """What a running daemon holds (its lock, a run in progress, a write under way, its marks)
    is left alone by `run --dry-run`, which says what it would run."""
    note(vault_root, "Tasks/Dry.md", "schedule: every 1s\ncommand: echo no\n")
    began = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=10)  # fires since: due
    mid_run = Run("r1", "Tasks/Dry", Status.RUNNING, Trigger.SCHEDULE, began, HOST, 1, began)
    Ledger(vault_root, HOST).append(start_record(mid_run, "Tasks/Dry.md"))
    writing = write_note(vault_root, "Tasks/.Dry.md.vaultsched-0badf00d.tmp", "half a note")
    marks = write_note(vault_root, ".vaultsched/state/marks.json", "{}")
    lock = InstanceLock(vault_root)
    lock.acquire(HOST, datetime.now(UTC))  # the daemon of the vault
    try:
        dry = Cli(vault_root)("run", "--once", "--dry-run")
    finally:
        lock.release()
    assert dry.code == 0, dry.err
    assert "would run Tasks/Dry" in dry.err
    assert [r.status for r in runs(vault_root)] == [Status.RUNNING]
    assert writing.exists() and marks.read_text() == "{}"


def test_overlap_skip_and_queue(vault_root: Path, daemons: Start) -> None:
    note(vault_root, "Tasks/Skip.md", "schedule: every 1s\ncommand: sleep 2.2\n")
    note(vault_root, "Tasks/Queue.md", "schedule: every 1s\noverlap: queue\ncommand: sleep 1.5\n")
    daemon = daemons(vault_root)
    wait_for(lambda: len(of(vault_root, "Tasks/Skip", Status.MISSED)) >= 2, what="missed fires")
    wait_for(lambda: len(of(vault_root, "Tasks/Queue", Status.SUCCESS)) >= 3, what="queued runs")
    assert daemon.stop() == 0
    for task in ("Tasks/Skip", "Tasks/Queue"):
        started = [r for r in of(vault_root, task) if r.status is not Status.MISSED]
        for a, b in pairwise(started):
            assert a.finished_at is not None and a.finished_at <= b.started_at, "runs overlapped"
    assert of(vault_root, "Tasks/Queue", Status.MISSED) == []


def test_retries_double_the_delay(vault_root: Path, daemons: Start) -> None:
    cron, missed = _five_minutes_ago()
    note(
        vault_root,
        "Tasks/Flaky.md",
        f"schedule: '{cron}'\ntimezone: UTC\nretries: 2\nretry_delay: 1s\ncommand: exit 1\n",
    )
    _seed_run(vault_root, "Tasks/Flaky", missed - timedelta(days=1))
    daemon = daemons(vault_root)
    wait_for(lambda: len(of(vault_root, "Tasks/Flaky", Status.FAILED)) == 3, what="3 attempts")
    time.sleep(1)
    assert daemon.stop() == 0
    attempts = of(vault_root, "Tasks/Flaky", Status.FAILED)
    assert [r.attempt for r in attempts] == [1, 2, 3]
    assert [r.trigger for r in attempts] == [Trigger.CATCH_UP, Trigger.RETRY, Trigger.RETRY]
    assert {r.scheduled_for for r in attempts} == {missed}
    gaps = [b.started_at - a.finished_at for a, b in pairwise(attempts) if a.finished_at]
    assert gaps[0] >= timedelta(seconds=1) and gaps[1] >= timedelta(seconds=2)


def test_jitter_delays_within_bounds(vault_root: Path, daemons: Start) -> None:
    note(vault_root, "Tasks/J.md", "schedule: every 1s\njitter: 1s\ncommand: 'true'\n")
    daemon = daemons(vault_root)
    wait_for(lambda: len(of(vault_root, "Tasks/J")) >= 4, what="jittered runs")
    assert daemon.stop() == 0
    for run in of(vault_root, "Tasks/J"):
        assert run.scheduled_for is not None and run.started_at >= run.scheduled_for


def test_max_parallel_and_disabled(tmp_path: Path, daemons: Start) -> None:
    from conftest import make_vault

    root = make_vault(tmp_path / "v", config='timezone = "UTC"\nmax_parallel = 1\n')
    for name in ("A", "B"):
        note(root, f"Tasks/{name}.md", "schedule: every 1s\ncommand: sleep 0.4\n")
    note(root, "Tasks/Off.md", "schedule: every 1s\nenabled: false\ncommand: 'true'\n")
    daemon = daemons(root)
    wait_for(lambda: len(runs(root)) >= 6, what="runs")
    assert daemon.stop() == 0
    done = sorted((r for r in runs(root) if r.finished_at), key=lambda r: r.started_at)
    for a, b in pairwise(done):
        assert a.finished_at is not None and a.finished_at <= b.started_at, "ran in parallel"
    assert of(root, "Tasks/Off") == []


def test_a_stop_during_a_backlog_records_lands_and_commits_every_run(
    tmp_path: Path, daemons: Start
) -> None:
    # Six every-1s tasks on one worker, 0.2 s each: runs always wait for it, so the records of
    # ended runs are put off. However the stop comes, every run is recorded, shown and committed.
    from conftest import make_vault

    root = make_vault(tmp_path / "v", config='timezone = "UTC"\nmax_parallel = 1\n')
    for n in range(6):
        note(root, f"Tasks/T{n}.md", f"schedule: every 1s\ncommand: sleep 0.2; echo {n}\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "tasks")
    daemon = daemons(root)
    wait_for(lambda: len(runs(root)) >= 12, what="a dozen runs")
    assert daemon.stop() == 0
    recorded = runs(root)
    assert all(r.status is not Status.RUNNING for r in recorded)  # each with its end
    assert sum(r.status is Status.SUCCESS for r in recorded) >= 12  # the others: missed
    assert git(root, "status", "--porcelain") == ""
    for n in range(6):  # each note shows each of its runs (keep_runs: 10)
        shown = (root / f"Tasks/T{n}.md").read_text().count("\n> [!")
        assert shown == min(len(of(root, f"Tasks/T{n}")), 10)


def test_sigkill_mid_run_is_recorded_interrupted_and_not_refired(
    vault_root: Path, daemons: Start
) -> None:
    cron, missed = _five_minutes_ago()
    note(vault_root, "Tasks/Long.md", f"schedule: '{cron}'\ntimezone: UTC\ncommand: sleep 30\n")
    _seed_run(vault_root, "Tasks/Long", missed - timedelta(days=1))
    first = daemons(vault_root)
    wait_for(lambda: of(vault_root, "Tasks/Long", Status.RUNNING), what="the run to start")
    first.proc.kill()
    first.proc.wait()
    second = daemons(vault_root)
    wait_for(lambda: of(vault_root, "Tasks/Long", Status.INTERRUPTED), what="interrupted record")
    time.sleep(1.5)
    assert second.stop() == 0
    long_runs = of(vault_root, "Tasks/Long")
    assert [r.status for r in long_runs] == [Status.SUCCESS, Status.INTERRUPTED]
    assert "[!failure]" in (vault_root / "Tasks/Long.md").read_text()


def test_single_instance(vault_root: Path, daemons: Start) -> None:
    first = daemons(vault_root)
    wait_for(lambda: "indexed" in first.output(), what="first daemon up")
    second = Cli(vault_root)("run", timeout=30)
    assert second.code == 2
    assert f"pid {first.proc.pid} on {HOST}" in second.err
    status = json.loads(Cli(vault_root)("status", "--json").out)
    assert status["daemon"]["running"] is True and status["daemon"]["pid"] == first.proc.pid
    assert first.stop(signal.SIGINT) == 0
    assert json.loads(Cli(vault_root)("status", "--json").out)["daemon"]["running"] is False


def test_sigterm_lets_a_running_task_finish(
    vault_root: Path, daemons: Start, tmp_path: Path
) -> None:
    flag, release = tmp_path / "started", tmp_path / "release"
    # It runs until released, not for a length of time: a loaded machine may take longer than
    # any fixed time to start `status`, and the run must still be going when it looks.
    wait = f"while [ ! -f {release} ]; do sleep 0.05; done"
    note(
        vault_root,
        "Tasks/Finish.md",
        f"schedule: every 1s\ncommand: touch {flag}; {wait}; echo done\n",
    )
    daemon = daemons(vault_root)
    wait_for(flag.exists, what="task start")
    status = json.loads(Cli(vault_root)("status", "--json").out)
    assert [r["task"] for r in status["running"]] == ["Tasks/Finish"]
    daemon.proc.send_signal(signal.SIGTERM)
    wait_for(lambda: "SIGTERM received" in daemon.output(), what="the signal taken")
    release.touch()  # the run ends only now, after the daemon was told to stop
    assert daemon.stop() == 0
    # A fire while it runs is missed (overlap): a loaded machine may be that slow to stop.
    finished = [r for r in of(vault_root, "Tasks/Finish") if r.status is not Status.MISSED]
    assert finished and all(r.status is Status.SUCCESS for r in finished)


def test_sigterm_terminates_tasks_that_outlast_the_grace(
    vault_root: Path, daemons: Start, tmp_path: Path
) -> None:
    flag = tmp_path / "started"
    note(vault_root, "Tasks/Stuck.md", f"schedule: every 1s\ncommand: touch {flag}; sleep 60\n")
    commit_notes(vault_root)
    daemon = daemons(vault_root, env={"VAULTSCHED_SHUTDOWN_GRACE": "1"})
    wait_for(flag.exists, what="task start")
    assert daemon.stop() == 0
    (stuck,) = of(vault_root, "Tasks/Stuck")
    assert stuck.status is Status.INTERRUPTED
    assert git(vault_root, "status", "--porcelain") == ""


def test_misbehaving_tasks_never_delay_others(
    vault_root: Path, daemons: Start, tmp_path: Path
) -> None:
    note(vault_root, "Tasks/Steady.md", "schedule: every 1s\ncommand: 'true'\n")
    note(vault_root, "Tasks/Hang.md", "schedule: every 1s\ntimeout: 30s\ncommand: sleep 600\n")
    note(
        vault_root,
        "Tasks/Flood.md",
        "schedule: every 1s\ncommand: head -c 20000000 /dev/zero | tr '\\\\0' x\n",
    )
    note(vault_root, "Tasks/Forks.md", "schedule: every 1s\ncommand: (sleep 30 &) ; echo forked\n")
    note(vault_root, "Tasks/Broken.md", "schedule: every 1s\ncommand: [/no/such/binary]\n")
    write_note(vault_root, "Tasks/Malformed.md", "---\nschedule: */5 * * * *\ncommand: x\n---\n")
    # A short shutdown grace: the hanging task is terminated at stop, not waited for.
    daemon = daemons(vault_root, env={"VAULTSCHED_SHUTDOWN_GRACE": "1"})
    wait_for(
        lambda: len(of(vault_root, "Tasks/Steady", Status.SUCCESS)) >= 6,
        timeout=40,
        what="steady runs",
    )
    # Megabytes of output per second are streamed to the log, never held in memory.
    peak_kib = _peak_rss_kib(daemon.proc.pid)
    assert peak_kib < 200_000, f"daemon peak RSS {peak_kib} KiB"
    assert daemon.stop() == 0
    steady = of(vault_root, "Tasks/Steady")
    slots = sorted(r.scheduled_for for r in steady if r.scheduled_for)
    # Every fire time of the steady task ran, on schedule: no gaps, no catch-ups.
    gaps = {b - a for a, b in pairwise(slots)}
    assert gaps == {timedelta(seconds=1)}, gaps
    assert {r.trigger for r in steady} == {Trigger.SCHEDULE}
    assert of(vault_root, "Tasks/Broken", Status.ERROR)
    assert "Tasks/Malformed is invalid" in daemon.output()


def _peak_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc")


@pytest.mark.parametrize("switch", ["env", "config"])
def test_kill_switch(vault_root: Path, daemons: Start, switch: str) -> None:
    note(vault_root, "Tasks/Tick.md", "schedule: every 1s\ncommand: 'true'\n")
    env = {}
    if switch == "env":
        env["VAULTSCHED_ENABLED"] = "0"
    else:
        config = vault_root / ".vaultsched/config.toml"
        config.write_text("enabled = false\n" + config.read_text())
    daemon = daemons(vault_root, env=env)
    wait_for(lambda: "disabled" in daemon.output(), what="the kill-switch message")
    time.sleep(1.5)
    assert daemon.stop() == 0
    assert runs(vault_root) == []
    assert daemon.output().count("disabled") == 1


def test_a_note_saved_while_the_vault_is_indexed_is_followed(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watcher starts before the index is read: a save in between is not lost (a FIFO made
    just after "indexed" went unseen once, on a loaded machine)."""
    real_load = Follower.load

    def load_then_save(self: Follower) -> Index:
        index = real_load(self)
        note(vault.root, "Tasks/Late.md", "schedule: '0 0 1 1 *'\ncommand: 'true'\n")
        return index

    monkeypatch.setattr(Follower, "load", load_then_save)
    daemon = Daemon(Vault(vault.root, load_config(vault.root), HOST))
    thread = threading.Thread(target=daemon.run)
    thread.start()
    try:
        wait_for(lambda: "Tasks/Late" in daemon.index.tasks, timeout=30, what="the late note")
    finally:
        daemon.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()


def test_the_reports_wake_the_loop_later_only_while_runs_wait_for_a_worker(vault: Vault) -> None:
    daemon = Daemon(Vault(vault.root, load_config(vault.root), HOST))
    try:
        reports, local = daemon.conductor.reports, daemon._local
        assert reports.backlog() == 0
        local._waiting = 3  # a burst queued behind max_parallel
        assert reports.backlog() == 3
    finally:
        daemon.waker.close()


def test_no_wake_ups_while_nothing_is_due(vault: Vault) -> None:
    note(vault.root, "Tasks/Yearly.md", "schedule: '0 0 1 1 *'\ncommand: 'true'\n")
    daemon = Daemon(Vault(vault.root, load_config(vault.root), HOST))
    thread = threading.Thread(target=daemon.run)
    thread.start()
    try:
        wait_for(lambda: daemon.waker.wakeups >= 0 and daemon.index.tasks, what="start")
        time.sleep(0.3)
        settled = daemon.waker.wakeups
        time.sleep(2.0)
        assert daemon.waker.wakeups == settled, "the daemon woke up with nothing due"
        write_note(vault.root, "Other.md", "# an edit wakes it\n")
        wait_for(lambda: daemon.waker.wakeups > settled, what="a wake-up on a file event")
    finally:
        daemon.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()


def test_timeout_ends_the_run_and_frees_the_task(vault_root: Path, daemons: Start) -> None:
    note(vault_root, "Tasks/Slow.md", "schedule: every 1s\ntimeout: 1s\ncommand: sleep 30\n")
    daemon = daemons(vault_root)
    wait_for(lambda: len(of(vault_root, "Tasks/Slow", Status.TIMEOUT)) >= 2, what="two timeouts")
    assert daemon.stop() == 0
    timed_out = of(vault_root, "Tasks/Slow", Status.TIMEOUT)
    assert all(r.duration_s is not None and r.duration_s < 5 for r in timed_out)
    block = (vault_root / "Tasks/Slow.md").read_text().split("vaultsched:runs:begin")[1]
    assert "timeout" in block


def _forge(root: Path, rel: str, task: str, started: datetime, scheduled: datetime) -> None:
    """A line another host's ledger file never held: what a pull can bring."""
    record = {
        "type": "finish",
        "run_id": f"forged-{started:%Y%m%d%H%M%S}",
        "task": task,
        "path": f"{task}.md",
        "trigger": "schedule",
        "scheduled_for": scheduled.isoformat(),
        "started_at": started.isoformat(),
        "host": HOST,
        "status": "success",
    }
    write_note(root, rel, json.dumps(record) + "\n")


def test_forged_ledger_records_never_stop_the_schedule(vault_root: Path, daemons: Start) -> None:
    note(vault_root, "Tasks/Tick.md", "schedule: every 1s\ncommand: echo tick\n")
    note(vault_root, "Tasks/Mine.md", f"schedule: every 1s\nhost: {HOST}\ncommand: echo mine\n")
    now = datetime.now(UTC)
    far = datetime(2099, 1, 1, tzinfo=UTC)
    forged = [".vaultsched/runs/2020-01/laptop.jsonl", ".vaultsched/runs/2099-01/server.jsonl"]
    _forge(vault_root, forged[0], "Tasks/Tick", now, far)  # scheduled for 2099
    _forge(vault_root, forged[1], "Tasks/Tick", far, now)  # started in 2099
    # Within the clock skew, but laptop does not fire a task pinned to this host.
    soon = now + timedelta(minutes=4)
    _forge(vault_root, ".vaultsched/runs/2020-02/laptop.jsonl", "Tasks/Mine", now, soon)

    daemon = daemons(vault_root)
    wait_for(lambda: len(of(vault_root, "Tasks/Tick", Status.SUCCESS)) >= 3, what="Tick runs")
    wait_for(lambda: len(of(vault_root, "Tasks/Mine", Status.SUCCESS)) >= 3, what="Mine runs")
    assert daemon.stop() == 0
    doctor = Cli(vault_root)("doctor", "--json")
    found = {c["check"]: c for c in json.loads(doctor.out)}
    assert doctor.code == 1
    assert found["ledger dates"]["status"] == "fail"
    assert all(rel in found["ledger dates"]["detail"] for rel in forged)
    kept = (vault_root / ".vaultsched/state/marks.json").read_text().splitlines()
    marks = [m for line in kept for m in json.loads(line).values() if m is not None]
    assert marks and all(datetime.fromisoformat(m) < now + timedelta(minutes=5) for m in marks)

    for rel in forged:  # removed: nothing of it lingers
        (vault_root / rel).unlink()
    before = len(of(vault_root, "Tasks/Tick"))
    again = daemons(vault_root)
    wait_for(lambda: len(of(vault_root, "Tasks/Tick")) >= before + 2, what="runs after removal")
    assert again.stop() == 0
    checks_after = {c["check"]: c for c in json.loads(Cli(vault_root)("doctor", "--json").out)}
    assert checks_after["ledger dates"]["status"] == "ok"
