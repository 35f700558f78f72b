"""Pool: N short runs due in the same second, on the local executor, then on 2 `vaultsched
worker` processes through Redis. Dispatch latency (due → child started), throughput, time until
all started and until all results are in the notes, the digest and git.

The burst's vault (bench/burst.py); the pool's Redis is a real `redis-server` on a free loopback
port with a random password (tests/redisserver.py). Each worker has its own clone of the vault,
host name and state folder, as on a machine of its own, and is listening before the daemon starts.
vaultsched's per-user config and state are in the temp folder, never in the real home.
"""

from __future__ import annotations

import argparse
import os
import secrets
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from _common import ENV, save, summary, table, wait_until
from burst import Burst, burst_vault, run_burst

from vaultsched.core.model import Status

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from redisserver import REDIS_SERVER, RedisServer  # the tests' own Redis

LEAD_S = 15.0  # the commit and the daemon's start, on a machine that may be busy
WORKER_START_S = 10.0  # more lead for the pool: two clones and two workers start first


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument(
        "--parallel", type=int, default=4, help="the local executor's max_parallel (default 4)"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--lead", type=float, default=LEAD_S, help="s from the commit to the earliest due time"
    )
    args = parser.parse_args()
    load = os.getloadavg()[0]
    if REDIS_SERVER is None:  # not a failure of `make bench`: the other figures still stand
        print("pool.py: redis-server is not installed (apt-get install redis-server): skipped")
        return
    with tempfile.TemporaryDirectory(prefix="vaultsched-bench-") as tmp:
        home = Path(tmp)
        env = {
            **ENV,
            "XDG_CONFIG_HOME": str(home / "config"),
            "XDG_STATE_HOME": str(home / "state"),
            "VAULTSCHED_POOL_KEY": secrets.token_hex(32),
        }
        root, due = burst_vault(home / "local", args.tasks, args.parallel, lead=args.lead)
        local = figures(run_burst(root, due, args.tasks, env), due, args.tasks)
        server = RedisServer(home / "redis")
        server.start()
        try:
            pooled = on_pool(home, server, env, args)
        finally:
            server.stop()
    report(args, local, pooled, load)


def on_pool(home: Path, server: RedisServer, env: dict[str, str], args: Any) -> dict[str, Any]:
    """The same burst with `[executor] kind = "rq"` and `args.workers` workers."""
    import redis
    from rq import Worker

    # Redis's own default when its append-only file is on (the tests' server fsyncs each write).
    redis.Redis.from_url(server.url).config_set("appendfsync", "everysec")
    config = Path(env["XDG_CONFIG_HOME"]) / "vaultsched" / "config.toml"
    config.parent.mkdir(parents=True)
    config.write_text(f'[executor]\nkind = "rq"\nredis_url = "{server.url}"\n')
    lead = args.lead + WORKER_START_S
    root, due = burst_vault(home / "pool", args.tasks, args.parallel, lead=lead)
    workers = [start_worker(root, f"w{n + 1}", env) for n in range(args.workers)]
    connection = redis.Redis.from_url(server.url)
    try:
        listening = lambda: Worker.count(connection=connection) >= len(workers)  # noqa: E731
        if not wait_until(listening, timeout=60, step=0.2):
            logs = "".join(log.read_text()[-2000:] for log in home.glob("w*.log"))
            sys.exit(f"the workers did not start:\n{logs}")
        return figures(run_burst(root, due, args.tasks, env), due, args.tasks)
    finally:
        for worker in workers:
            stop_worker(worker)


def start_worker(root: Path, host: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    clone = root.parent / f"clone-{host}"
    subprocess.run(["git", "clone", "-q", str(root), str(clone)], check=True, capture_output=True)
    with (root.parent / f"{host}.log").open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "vaultsched", "--vault", str(clone), "worker"],
            env={**env, "VAULTSCHED_HOST": host, "XDG_STATE_HOME": str(clone.parent / host)},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its group: the worker and the run it is running
        )


def stop_worker(worker: subprocess.Popen[bytes]) -> None:
    worker.send_signal(signal.SIGTERM)  # RQ's warm shut-down: the run under way ends first
    try:
        worker.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()


def figures(burst: Burst, due: float, tasks: int) -> dict[str, Any]:
    """What a user sees of a burst, in s after the due time; and what went wrong, if anything."""
    runs = burst.runs
    latency = [(r.started_at - r.scheduled_for).total_seconds() for r in runs if r.scheduled_for]
    dispatched = [r.dispatched_at.timestamp() - due for r in runs if r.dispatched_at]
    finished = burst.after_due(due, "finished_at")
    return {
        "runs": len(runs),
        "tasks_run": len({r.task for r in runs}),
        "statuses": dict(Counter(str(r.status) for r in runs)),
        "hosts": dict(Counter(r.host for r in runs)),
        "all_dispatched_s": max(dispatched, default=None),
        "latency_s": summary(latency),
        "first_started_s": min(latency),  # the one run no other run queued behind
        "all_started_s": burst.after_due(due, "started_at"),
        "all_finished_s": finished,
        "runs_per_s": sum(r.status is Status.SUCCESS for r in runs) / finished,
        "landed_s": burst.landed_s,
        "commits": burst.commits,
        "tasks": tasks,
    }


HEADER = (
    *("executor", "first started", "due → started p50/p99/max", "all started", "runs/s"),
    *("all finished", "in notes, digest, git", "commits"),
)


def report(args: Any, local: dict[str, Any], pooled: dict[str, Any], load: float) -> None:
    named = {f"local, max_parallel {args.parallel}": local, f"pool, {args.workers} workers": pooled}
    rows = [[name, *_row(got)] for name, got in named.items()]
    title = f"Pool: {args.tasks} short runs due at the same second (s after the due time)"
    table(title, rows, HEADER)
    for name, got in (("local", local), ("pool", pooled)):
        print(f"  {name}: {got['runs']} runs of {got['tasks_run']} tasks, {got['statuses']}")
    in_redis = pooled["all_dispatched_s"]
    print(f"  pool: runs per worker {pooled['hosts']}, all in Redis {in_redis:.1f} s")
    loads = (load, os.getloadavg()[0])
    print("  load average (1 min) before and after: {:.2f}, {:.2f}".format(*loads))
    save(
        "pool",
        {"tasks": args.tasks, "max_parallel": args.parallel, "workers": args.workers}
        | {"local": local, "pool": pooled, "loadavg": loads},
    )


def _row(got: dict[str, Any]) -> list[object]:
    lat = got["latency_s"]
    return [
        f"{got['first_started_s']:.3f}",
        f"{lat['p50']:.2f} / {lat['p99']:.2f} / {lat['max']:.2f}",
        f"{got['all_started_s']:.1f}",
        f"{got['runs_per_s']:.0f}",
        f"{got['all_finished_s']:.1f}",
        f"{got['landed_s']:.1f}" if got["landed_s"] is not None else "not within 600 s",
        got["commits"],
    ]


if __name__ == "__main__":
    main()
