"""The worker pool's parts on their own: the sealed messages, the queue a task goes to, the
`[executor]` config, the pool key, and RQ shut to everything but vaultsched's own job (against
fakeredis: no server needed to show what a job read from Redis may not make a worker do)."""

from __future__ import annotations

import json
import zlib
from pathlib import Path
from typing import Any

import fakeredis
import pytest
from redisserver import RedisServer, needs_redis
from rq import Queue
from rq.serializers import JSONSerializer

from vaultsched.adapters.config import parse_config
from vaultsched.adapters.redisqueue import (
    Pool,
    PoolJob,
    RefusedJob,
    connect,
    make_worker,
    new_pool_key,
    pool_key,
)
from vaultsched.core import layout
from vaultsched.core.errors import VaultschedError
from vaultsched.core.pool import (
    JOB_FUNCTION,
    Finished,
    Payload,
    SealError,
    Started,
    queue_for,
    seal,
    unseal,
    worker_queues,
)

KEY = b"k" * 64
PAYLOAD = Payload(
    "20261202T040000-abcdef", "vs:any", "Tasks/A", "a" * 40, "f" * 64, "schedule",
    "2026-12-02T04:00:00+00:00", 1, "", 3600.0, None, "", "",
)  # fmt: skip


def test_a_sealed_message_reads_back_as_it_was() -> None:
    assert unseal(KEY, seal(KEY, PAYLOAD), Payload) == PAYLOAD
    started = Started("r", "w1", "2026-12-02T04:00:01+00:00")
    assert unseal(KEY, seal(KEY, started), Started) == started


@pytest.mark.parametrize(
    ("field", "value"),
    [("task", "Tasks/B"), ("fingerprint", "0" * 64), ("timeout_s", 1.0), ("upstream_output", "x")],
)
def test_any_field_changed_after_sealing_breaks_the_seal(field: str, value: object) -> None:
    sealed = seal(KEY, PAYLOAD)
    sealed["body"][field] = value
    with pytest.raises(SealError, match="seal does not match"):
        unseal(KEY, sealed, Payload)


def test_a_message_sealed_with_another_key_or_of_another_kind_is_refused() -> None:
    with pytest.raises(SealError, match="seal does not match"):
        unseal(b"other" * 10, seal(KEY, PAYLOAD), Payload)
    with pytest.raises(SealError, match="not a payload message"):
        unseal(KEY, seal(KEY, Started("r", "w", "t")), Payload)


@pytest.mark.parametrize(
    "sealed",
    [None, [], "text", {"body": {}}, {"body": [], "seal": "x"}, {"body": {}, "seal": 1, "x": 2}],
)
def test_what_is_not_a_sealed_message_is_refused(sealed: Any) -> None:
    with pytest.raises(SealError):
        unseal(KEY, sealed, Payload)


def test_fields_of_the_wrong_type_are_refused_even_under_a_good_seal() -> None:
    body = {**seal(KEY, PAYLOAD)["body"], "attempt": "1; rm -rf ~"}
    forged = {"body": body, "seal": seal(KEY, PAYLOAD)["seal"]}
    from vaultsched.core.pool import _mac  # the seal a key holder would make

    forged["seal"] = _mac(KEY, body)
    with pytest.raises(SealError, match="attempt"):
        unseal(KEY, forged, Payload)
    finished = Finished("r", "w", "success", "t", "t", True, 0.0, "", "", None)
    with pytest.raises(SealError, match="exit_code"):
        unseal(KEY, seal(KEY, finished), Finished)


def test_a_task_goes_to_the_queue_its_host_names() -> None:
    assert queue_for("vs", ()) == "vs:any"
    assert queue_for("vs", ("gpu-box",)) == "vs:host:gpu-box"
    assert queue_for("vs", ("label:gpu",)) == "vs:label:gpu"
    assert worker_queues("vs", "w1", ("gpu",)) == ["vs:host:w1", "vs:label:gpu", "vs:any"]


@pytest.mark.parametrize(
    ("hosts", "message"),
    [
        (("a", "b"), "one queue"),
        (("w1:any",), "not a host name"),
        (("label:",), "not a host name"),
        (("../x",), "not a host name"),
        (("label:a b",), "not a host name"),
    ],
)
def test_a_host_that_cannot_name_one_queue_is_said_so(hosts: tuple[str, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        queue_for("vs", hosts)


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/0",
        "redis://localhost/0",
        "redis://[::1]:6379",
        "unix:///run/redis.sock",
        "redis://:secret@redis.example.net:6379/0",
        "rediss://user:secret@10.0.0.5/1",
    ],
)
def test_a_redis_url_needs_a_password_only_beyond_this_machine(url: str) -> None:
    config = parse_config({"executor": {"kind": "rq", "redis_url": url}})
    assert config.executor.pool and config.executor.redis_url == url


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"kind": "rq", "redis_url": "redis://redis.example.net:6379"}, "needs a password"),
        ({"kind": "rq", "redis_url": "redis://10.0.0.5"}, "needs a password"),
        ({"kind": "rq", "redis_url": "http://x"}, "must start with redis://"),
        ({"kind": "rq"}, "must start with redis://"),
        ({"kind": "rq", "redis_url": "redis://:pw@redis.example.net:abc/0"}, "is not a URL"),
        ({"kind": "celery"}, "kind"),
        ({"kind": "rq", "redis_url": "redis://localhost", "fallback": "drop"}, "fallback"),
        ({"kind": "rq", "redis_url": "redis://localhost", "queue_prefix": "a:b"}, "queue_prefix"),
        ({"kind": "rq", "redis_url": "redis://localhost", "queues": []}, "unknown keys"),
    ],
)
def test_a_bad_executor_table_is_said_so(table: dict[str, object], message: str) -> None:
    with pytest.raises(VaultschedError, match=message):
        parse_config({"executor": table})


def test_the_redis_url_from_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULTSCHED_REDIS_URL", "redis://:pw@redis.example.net/0")
    config = parse_config({"executor": {"kind": "rq", "redis_url": "redis://localhost"}})
    assert config.executor.redis_url == "redis://:pw@redis.example.net/0"


def test_the_pool_key_is_made_once_read_back_and_kept_private() -> None:
    with pytest.raises(VaultschedError, match="vaultsched worker --new-key"):
        pool_key()
    path = new_pool_key()
    assert path == layout.pool_key() and (path.stat().st_mode & 0o777) == 0o600
    assert pool_key() == path.read_text().strip().encode()
    with pytest.raises(VaultschedError, match="already exists"):
        new_pool_key()
    path.chmod(0o644)
    with pytest.raises(VaultschedError, match="readable by others"):
        pool_key()


def test_a_short_pool_key_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VAULTSCHED_POOL_KEY", "short")
    with pytest.raises(VaultschedError, match="too short"):
        pool_key()


def _queued(connection: fakeredis.FakeRedis, func: str, **options: Any) -> PoolJob:
    queue = Queue("vs:any", connection=connection, serializer=JSONSerializer)
    job = queue.enqueue_call(func, args=("x",), job_id="j1", **options)
    fetched = PoolJob.fetch(job.id, connection=connection, serializer=JSONSerializer)
    assert isinstance(fetched, PoolJob)
    return fetched


def test_a_worker_performs_vaultsched_s_job_and_no_other_function() -> None:
    connection = fakeredis.FakeRedis()
    performed: list[object] = []
    make_worker(connection, ["vs:any"], "w", performed.append)
    assert _queued(connection, JOB_FUNCTION).func == performed.append
    forged = _queued(fakeredis.FakeRedis(), "os.system")
    with pytest.raises(RefusedJob, match=r"os\.system"):
        _ = forged.func


def test_a_job_s_callbacks_and_webhooks_are_never_called(tmp_path: Path) -> None:
    from rq import Callback

    job = _queued(fakeredis.FakeRedis(), JOB_FUNCTION, on_success=Callback("os.getcwd"))
    assert job._success_callback_name == "os.getcwd"  # what Redis says...
    assert job.success_callback is None and job.failure_callback is None  # ...is not done
    assert job.stopped_callback is None


@needs_redis
def test_a_run_is_claimed_once_and_enqueued_once(redis_server: RedisServer) -> None:
    pool = Pool(connect(redis_server.url), "vs")
    assert pool.claim("r1", "w1") and not pool.claim("r1", "w2")
    assert pool.claimed_by("r1") == "w1" and pool.claimed_by("r2") is None
    sealed = seal(KEY, PAYLOAD)
    assert pool.enqueue("vs:any", sealed, PAYLOAD.run_id, 60)
    assert not pool.enqueue("vs:any", sealed, PAYLOAD.run_id, 60), "a second enqueue"
    jobs = pool.jobs([PAYLOAD.run_id, "nothing"])
    job = jobs[PAYLOAD.run_id]
    assert jobs["nothing"] is None and job is not None
    assert job.args == [sealed]  # JSON through and through
    raw = pool.connection.hget(f"rq:job:{PAYLOAD.run_id}", "data")
    assert isinstance(raw, bytes)
    assert json.loads(zlib.decompress(raw))[2] == [sealed]  # JSON in Redis, not a pickle


def test_a_pool_named_in_the_vault_config_needs_trust_and_the_user_config_wins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conftest import make_vault

    from vaultsched.trust.config import effective_config

    monkeypatch.delenv("VAULTSCHED_TRUST")  # the real policy: nothing trusted
    synced = '[executor]\nkind = "rq"\nredis_url = "redis://:pw@attacker.example/0"\n'
    root = make_vault(tmp_path / "vault", config=synced)
    config = effective_config(root)
    assert not config.executor.pool and "[executor]" in config.ignored
    user = layout.user_config()
    user.parent.mkdir(parents=True)
    url = "redis://127.0.0.1:6390/0"
    user.write_text(f'[vaults."{root.resolve()}".executor]\nkind = "rq"\nredis_url = "{url}"\n')
    mine = effective_config(root).executor
    assert mine.pool and mine.redis_url == url
