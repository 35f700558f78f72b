"""The worker pool's I/O: Redis and RQ, and nothing of vaultsched's policy.

RQ does the queueing: one queue per host, label and `any`, a job per run whose id is the run id,
its state and result kept in Redis. What RQ would otherwise take from Redis on its own say-so is
shut here, because anyone who can write to the server could write a job: the function a job
names (only `perform` runs), its callbacks and webhooks (never), pickle (JSON only).
"""

from __future__ import annotations

import os
import secrets
import stat
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import redis
from rq import Queue, SimpleWorker, Worker
from rq.exceptions import DuplicateJobError, NoSuchJobError
from rq.job import Job, JobStatus
from rq.serializers import JSONSerializer

from vaultsched.core import layout
from vaultsched.core.errors import VaultschedError
from vaultsched.core.pool import JOB_FUNCTION, MIN_KEY_BYTES

# A run's job, result and claim outlive a daemon stopped for a week: its results are collected
# when it starts again.
KEEP_S = 7 * 24 * 3600
# RQ's own timeout is a backstop behind the task's, which the worker enforces (then SIGKILL
# 10 s later): RQ must not kill the worker before the run's finish is sealed and sent.
RQ_MARGIN_S = 120
CLAIM_KEPT_S = 24 * 3600  # after the run has landed
KEY_ENV = "VAULTSCHED_POOL_KEY"

RedisError = redis.RedisError


class PoolJob(Job):
    """A job that performs `perform` or nothing, and calls back and posts to no one."""

    performer: ClassVar[Callable[[Any], Any] | None] = None  # set by `make_worker`

    @property
    def func(self) -> Any:
        if self.func_name != JOB_FUNCTION or PoolJob.performer is None:
            raise RefusedJob(f"job {self.id} names {self.func_name!r}: only vaultsched's runs")
        return PoolJob.performer

    @property
    def success_callback(self) -> None:
        return None

    @property
    def failure_callback(self) -> None:
        return None

    @property
    def stopped_callback(self) -> None:
        return None

    def send_webhooks(self, status: Any, *, exc_string: str | None = None) -> None:
        return None


class RefusedJob(Exception):
    pass


def connect(url: str) -> redis.Redis:
    """A client; no connection is made until it is used. Short timeouts: a daemon asking a
    server that went away must hear so in seconds, not hang."""
    return redis.Redis.from_url(
        url, socket_connect_timeout=3, socket_timeout=10, health_check_interval=30
    )


@dataclass
class Pool:
    """The daemon's side: enqueue runs, read their jobs back."""

    connection: redis.Redis
    prefix: str

    def enqueue(self, queue: str, sealed: dict[str, Any], run_id: str, timeout_s: float) -> bool:
        """Put a run's job on `queue`; False if a job of that id already exists (a restart
        never enqueues a run twice). Raises RedisError if the server cannot be reached."""
        jobs = Queue(queue, connection=self.connection, serializer=JSONSerializer)
        try:
            jobs.enqueue_call(
                JOB_FUNCTION,
                args=(sealed,),
                job_id=run_id,
                timeout=int(timeout_s) + RQ_MARGIN_S,
                result_ttl=KEEP_S,
                failure_ttl=KEEP_S,
                ttl=None,
                unique=True,
            )
        except DuplicateJobError:
            return False
        return True

    def jobs(self, run_ids: Iterable[str]) -> dict[str, Job | None]:
        """Each run's job as Redis has it now (None: no such job)."""
        ids = list(run_ids)
        found = PoolJob.fetch_many(ids, connection=self.connection, serializer=JSONSerializer)
        return dict(zip(ids, found, strict=True))

    def forget(self, job: Job) -> None:
        """A run landed in the vault: its job and result leave Redis (a pool that runs every
        minute would otherwise hold a week of them), its claim stays a day, so a daemon that
        lost its last ledger lines in a power cut still never sends it again."""
        with self.connection.pipeline() as pipe:
            job.delete(pipeline=pipe)
            pipe.expire(self._claim_key(job.id), CLAIM_KEPT_S)
            pipe.execute()

    def claim(self, run_id: str, who: str) -> bool:
        """Take the run for `who`; False if someone (a worker, or the daemon calling it lost)
        took it first. One claim per run id, so no run id is ever run twice."""
        return bool(self.connection.set(self._claim_key(run_id), who, nx=True, ex=KEEP_S))

    def claimed_by(self, run_id: str) -> str | None:
        value = self.connection.get(self._claim_key(run_id))
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
        return None if value is None else str(value)

    def _claim_key(self, run_id: str) -> str:
        return f"{self.prefix}:claim:{run_id}"

    def ping(self) -> None:
        self.connection.ping()


def pool_state(url: str, prefix: str) -> tuple[list[str], dict[str, int]]:
    """The names of the workers listening on the pool's queues, and how many runs wait in
    each queue. Raises RedisError."""
    connection = connect(url)
    queues = [q for q in Queue.all(connection=connection) if q.name.startswith(f"{prefix}:")]
    names = {q.name for q in queues}
    workers = [
        worker.name
        for worker in Worker.all(connection=connection)
        if names & set(worker.queue_names()) or not names
    ]
    return workers, {q.name: q.count for q in queues}


def shown_url(url: str) -> str:
    """A Redis URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname or ''}"
    netloc += f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=netloc))


def job_state(job: Job) -> tuple[str, dict[str, Any], Any]:
    """(status, meta, return value) of a fetched job; an unreadable one reads as failed."""
    try:
        status = JobStatus(job.get_status(refresh=False)).value
        value = job.return_value() if status == JobStatus.FINISHED.value else None
    except (NoSuchJobError, ValueError, TypeError):
        return JobStatus.FAILED.value, {}, None
    return status, dict(job.meta or {}), value


def make_worker(
    connection: redis.Redis, queues: list[str], name: str, perform: Callable[[Any], Any]
) -> SimpleWorker:
    """An RQ worker that runs each job in its own process (the run's command is a child of
    it), reads JSON only, and performs nothing but `perform`, whatever a job names."""
    PoolJob.performer = perform
    return SimpleWorker(
        [Queue(q, connection=connection, serializer=JSONSerializer) for q in queues],
        name=name,
        connection=connection,
        serializer=JSONSerializer,
        job_class=PoolJob,
    )


def pool_key() -> bytes:
    """The pool key from `VAULTSCHED_POOL_KEY`, else from `~/.config/vaultsched/pool.key`
    (readable by this user only, like an ssh key). Raises VaultschedError saying how to make one."""
    text = os.environ.get(KEY_ENV, "")
    path = layout.pool_key()
    if not text:
        try:
            info = path.stat()
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            raise VaultschedError(
                f"no pool key: run `vaultsched worker --new-key` once, then copy {path} to the "
                "daemon's host and every worker (or set VAULTSCHED_POOL_KEY)"
            ) from None
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise VaultschedError(f"{path} is readable by others: chmod 600 {path}")
    key = text.strip().encode("utf-8")
    if len(key) < MIN_KEY_BYTES * 2:
        raise VaultschedError(f"the pool key is too short: at least {MIN_KEY_BYTES * 2} characters")
    return key


def new_pool_key() -> Path:
    """Write a fresh pool key (never over an existing one); its path."""
    path = layout.pool_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise VaultschedError(f"{path} already exists: copy it, or remove it first") from None
    with os.fdopen(fd, "w") as handle:
        handle.write(secrets.token_hex(32) + "\n")
    return path
