"""`vaultsched worker`: one run from the pool's queue, on this host, from this host's clone.

A job says which task to run and which version of it the daemon scheduled (its fingerprint);
it never says what to run. The worker reads the task from its own clone of the vault (pulling
once if the scheduled commit has not reached it), and runs it only if the fingerprint there is
the scheduled one and its own user's trust store allows it. It never writes to the vault: the
run's log, outputs and state go to this user's own folder, and its result goes back to the
daemon, which lands it like a local run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO

from rq import get_current_job

from vaultsched.adapters.clock import utc_now
from vaultsched.adapters.git import Git, GitError
from vaultsched.adapters.ledger import iso_instant, parse_instant
from vaultsched.adapters.redisqueue import (
    Pool,
    RedisError,
    connect,
    make_worker,
    pool_key,
    shown_url,
)
from vaultsched.adapters.vault import Vault, read_note
from vaultsched.core import layout
from vaultsched.core.errors import VaultschedError
from vaultsched.core.model import Run, Status, Task, Trigger
from vaultsched.core.pool import (
    Finished,
    Payload,
    SealError,
    Started,
    seal,
    unseal,
    valid_name,
    worker_queues,
)
from vaultsched.runtime.context import Context
from vaultsched.runtime.gates import gated
from vaultsched.runtime.process import Process, ended, stdin_for
from vaultsched.runtime.run import KEEP_LOGS, task_cwd, task_environment
from vaultsched.trust.fingerprint import fingerprint, read_body
from vaultsched.trust.store import TrustStore

log = logging.getLogger("vaultsched.worker")

STARTED = "vaultsched.started"  # the job's meta key for the sealed start report
_COMMIT = re.compile(r"[0-9a-f]{40}([0-9a-f]{24})?")


@dataclass
class Member:
    """This worker: its clone of the vault, its host name, the pool's key and Redis."""

    vault: Vault
    key: bytes
    pool: Pool
    children: dict[str, int] = field(default_factory=dict)
    commits: set[str] = field(default_factory=set)  # known to be in the clone

    @property
    def host(self) -> str:
        return self.vault.host


# This process's membership of the pool: RQ calls `perform` with the job's arguments only.
_joined: dict[str, Member] = {}


def join(member: Member) -> None:
    """Make this process the worker `member` (before RQ's worker starts taking jobs)."""
    _joined["member"] = member


def perform(sealed: Any) -> dict[str, Any] | None:
    """RQ's job function: the run's sealed finish, or None if another worker (or the daemon,
    calling the run lost) claimed it first."""
    member, job = _joined.get("member"), get_current_job()
    if member is None or job is None:
        raise RuntimeError("vaultsched.runtime.worker.perform runs only inside `vaultsched worker`")
    if not member.pool.claim(job.id, member.host):
        log.info("%s: already claimed by %s, not run", job.id, member.pool.claimed_by(job.id))
        return None
    try:
        payload = unseal(member.key, sealed, Payload)
    except SealError as exc:
        return _refused(member, job.id, Status.ERROR, f"the job was altered in Redis ({exc})")
    if payload.run_id != job.id:
        return _refused(member, job.id, Status.ERROR, "the job was altered in Redis (its run id)")
    if payload.queue != job.origin:
        return _refused(member, job.id, Status.ERROR, "the job was moved to another queue")
    return _Run(member, payload, job).go()


@dataclass
class _Run:
    member: Member
    payload: Payload
    job: Any

    def go(self) -> dict[str, Any]:
        payload, root = self.payload, self.member.vault.root
        task, problem = self._task()
        if task is None:
            return _refused(self.member, payload.run_id, Status.ERROR, problem)
        body = read_body(root, task) if task.stdin == "body" else None
        if fingerprint(root, task, body) != payload.fingerprint:
            message = (
                f"this worker's copy of {task.id} is not the version the daemon scheduled "
                f"(commit {payload.commit[:12]}): its clone has not caught up, or differs"
            )
            return _refused(self.member, payload.run_id, Status.ERROR, message)
        if not TrustStore().is_trusted(root, task, body):
            message = f"not trusted on {self.member.host}: run `vaultsched trust {task.id}` there"
            return _refused(self.member, payload.run_id, Status.UNTRUSTED, message)
        return self._run(task, body)

    def _task(self) -> tuple[Task | None, str]:
        """The task as this worker's clone has it at (or after) the scheduled commit."""
        payload = self.payload
        parts = payload.task.split("/")
        if not payload.task or any(p in ("", ".", "..") for p in parts) or "\0" in payload.task:
            return None, f"not a task id: {payload.task!r}"
        _catch_up(self.member.vault, payload.commit, self.member.commits)
        parsed = read_note(self.member.vault, f"{payload.task}.md")
        if parsed.task is None:
            why = parsed.problems[0].message if parsed.problems else "no such task note"
            return None, f"{payload.task} cannot run on {self.member.host}: {why}"
        return parsed.task, ""

    def _run(self, task: Task, body: str | None) -> dict[str, Any]:
        member, payload, root = self.member, self.payload, self.member.vault.root
        started = utc_now()
        report = Started(payload.run_id, member.host, iso_instant(started) or "")
        self.job.meta[STARTED] = seal(member.key, report)
        self.job.save_meta()
        run = self._record(task, started)
        files = _Files(layout.worker_dir(), payload.run_id, task.id)
        try:
            context = files.context(root, task, run, payload)
            with files.log() as log_file:
                env, cwd = task_environment(task, context), task_cwd(root, task)
                process = Process(task, run, env, cwd, log_file, utc_now, member.children)
                gate = gated(task, process, None, root)  # `if_changed`: the daemon's to judge
                if gate is not None:
                    return self._finished(gate, None)
                left = timedelta(seconds=payload.timeout_s) - (utc_now() - started)
                result = process.run(task.command, left, stdin_for(task, body, context), None)
            return self._finished(*ended(run, result, process.redact))
        finally:
            files.clean()

    def _record(self, task: Task, started: datetime) -> Run:
        payload = self.payload
        return Run(
            payload.run_id,
            task.id,
            Status.RUNNING,
            Trigger(payload.trigger),
            started,
            self.member.host,
            payload.attempt,
            parse_instant(payload.scheduled_for),
            upstream_run=payload.upstream_run,
        )

    def _finished(self, run: Run, stdout: str | None) -> dict[str, Any]:
        finished = Finished(
            run.run_id,
            self.member.host,
            str(run.status),
            iso_instant(run.started_at) or "",
            iso_instant(run.finished_at) or "",
            run.exit_code,
            run.duration_s,
            run.message,
            run.output_tail,
            stdout,
        )
        log.info("%s %s (%s)", run.status, run.task, run.run_id)
        return seal(self.member.key, finished)


def _refused(member: Member, run_id: str, status: Status, why: str) -> dict[str, Any]:
    """A run this worker will not start: said back to the daemon, which records it."""
    log.warning("%s: refused: %s", run_id, why)
    now = iso_instant(utc_now()) or ""
    message = f"refused by worker {member.host}: {why}"
    finished = Finished(run_id, member.host, str(status), now, now, None, 0.0, message, "", None)
    return seal(member.key, finished)


@dataclass(frozen=True)
class _WorkerContext(Context):
    """A run's context on a worker: what a local run reads from the vault's state (its last
    output, its upstream's) came in the payload and lies in the worker's own folder."""

    texts: dict[str, str] = field(default_factory=dict)

    def read(self, rel: str) -> str:
        return self.texts.get(rel, "")

    def _absolute(self, rel: str) -> str:
        return rel


@dataclass
class _Files:
    """The worker's files of one run, outside the vault: the outputs it may read, its log."""

    base: Path
    run_id: str
    task_id: str

    @property
    def folder(self) -> Path:
        return self.base / "runs" / self.run_id

    @property
    def logs(self) -> Path:
        return self.base / "logs" / layout.file_safe(self.task_id)

    def context(self, root: Path, task: Task, run: Run, payload: Payload) -> _WorkerContext:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        paths, texts = {}, {}
        for name, text in (
            ("previous", payload.previous_output),
            ("upstream", payload.upstream_output),
        ):
            path = self.folder / f"{name}.out"
            if text:
                path.write_text(text, encoding="utf-8")
                texts[str(path)] = text
            paths[name] = str(path) if text else ""
        state = self.base / "state" / layout.file_safe(task.id)
        state.mkdir(parents=True, exist_ok=True, mode=0o700)
        last = parse_instant(payload.last_success)
        upstream, previous = paths["upstream"], paths["previous"]
        return _WorkerContext(root, task, run, last, previous, upstream, str(state), texts)

    @contextlib.contextmanager
    def log(self) -> Iterator[BinaryIO | None]:
        """The run's full log, kept on this worker (the task's last KEEP_LOGS, as locally)."""
        try:
            self.logs.mkdir(parents=True, exist_ok=True, mode=0o700)
            handle = (self.logs / f"{self.run_id}.log").open("ab", buffering=0)
        except OSError as exc:
            log.warning("%s: run log not written: %s", self.run_id, exc)
            yield None
            return
        with handle:
            yield handle

    def clean(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        with contextlib.suppress(OSError):  # run ids sort by start time
            for old in sorted(self.logs.glob("*.log"))[:-KEEP_LOGS]:
                old.unlink()


def _catch_up(vault: Vault, commit: str, known: set[str]) -> None:
    """Pull once if the scheduled commit has not reached this clone (a sync is behind).
    `known`: commits this clone already has (a commit, once there, stays)."""
    git = Git(vault.root, vault.host)
    if not _COMMIT.fullmatch(commit) or commit in known:
        return
    if not git.has_commit(commit):
        try:
            git.fast_forward()
        except GitError as exc:
            log.warning("git pull failed: %s", exc)
            return
    if git.has_commit(commit):
        known.add(commit)


def serve(vault: Vault, labels: tuple[str, ...], *, burst: bool = False) -> None:
    """Be a worker of the vault's pool until stopped (`burst`: until its queues are empty).
    Raises VaultschedError when this host cannot be one."""
    config = vault.config.executor
    if not config.pool:
        raise VaultschedError(
            '[executor] kind is not "rq": set kind = "rq" and redis_url in '
            f"{layout.user_config()} (or in the vault's config, trusted)"
        )
    for name in (vault.host, *labels):
        if not valid_name(name):
            raise VaultschedError(f"{name!r} cannot name a queue: letters, digits, '.', '-', '_'")
    connection = connect(config.redis_url)
    pool = Pool(connection, config.queue_prefix)
    join(Member(vault, pool_key(), pool))
    queues = worker_queues(config.queue_prefix, vault.host, labels)
    try:
        worker = make_worker(connection, queues, f"{vault.host}.{os.getpid()}", perform)
        log.info("worker %s of %s: listening on %s", vault.host, vault.root, ", ".join(queues))
        worker.work(burst=burst, logging_level="WARNING", with_scheduler=False)
    except RedisError as exc:
        where = shown_url(config.redis_url)
        raise VaultschedError(f"Redis cannot be reached at {where}: {exc}", 1) from None
