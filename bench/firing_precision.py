"""Firing precision with 1,000 tasks loaded: vaultsched against APScheduler, same machine, same run.

Both start the same child, `date +%s.%N`, for `--due` tasks every second while the rest (yearly
cron lines) sit loaded; lateness = the time the child printed minus the due second.
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from _common import HOST, save, start_daemon, stop, summary, table
from make_vault import make

from vaultsched.adapters.ledger import Ledger

STAMP = "date +%s.%N"
PARALLEL = 10  # as many runs at once as APScheduler's default pool: a like-for-like race
IDLE = "0 3 1 1 *"  # the loaded tasks that are not due: both schedulers hold the same lines


def vaultsched_lateness(
    tasks: int, due: int, seconds: float, parallel: int | None = PARALLEL
) -> list[float]:
    """`parallel=None` keeps vaultsched's default `max_parallel` (4)."""
    with tempfile.TemporaryDirectory(prefix="vaultsched-bench-") as tmp:
        root = make(Path(tmp) / "vault", tasks, tasks - due, seed=2, schedule=IDLE)
        if parallel is not None:
            (root / ".vaultsched/config.toml").write_text(f"max_parallel = {parallel}\n")
        for n in range(due):
            (root / "Tasks" / f"Every second {n}.md").write_text(
                f'---\nschedule: "every 1s"\ncommand: "{STAMP}"\n---\n', encoding="utf-8"
            )
        daemon = start_daemon(root)
        time.sleep(seconds)
        stop(daemon)
        late = []
        for run in Ledger(root, HOST).runs():
            if run.scheduled_for and run.output_tail.strip() and run.task.startswith("Tasks/Every"):
                began = float(run.output_tail.strip().splitlines()[-1])
                late.append((began - run.scheduled_for.timestamp()) * 1000)
        return late


def apscheduler_lateness(tasks: int, due: int, seconds: float) -> list[float]:
    from apscheduler.schedulers.background import BackgroundScheduler
    from apscheduler.triggers.cron import CronTrigger

    late: list[float] = []
    lock = threading.Lock()

    def job() -> None:
        due_at = float(int(time.time()))  # the second this fire was for
        out = subprocess.run(STAMP.split(), capture_output=True, text=True, check=False).stdout
        with lock:
            late.append((float(out) - due_at) * 1000)

    scheduler = BackgroundScheduler(job_defaults={"misfire_grace_time": 60, "max_instances": 3})
    for n in range(tasks - due):
        scheduler.add_job(lambda: None, CronTrigger(month=1, day=1, hour=3, minute=n % 60))
    for _ in range(due):
        scheduler.add_job(job, CronTrigger(second="*"))
    scheduler.start()
    time.sleep(seconds)
    scheduler.shutdown(wait=True)
    return late


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--due", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    ours = summary(vaultsched_lateness(args.tasks, args.due, args.seconds))
    theirs = summary(apscheduler_lateness(args.tasks, args.due, args.seconds))
    rows = [
        [name, s["n"], f"{s['p50']:.1f}", f"{s['p99']:.1f}", f"{s['max']:.1f}"]
        for name, s in (("vaultsched", ours), ("APScheduler 3", theirs))
    ]
    table(
        f"Firing precision: {args.tasks} tasks loaded, {args.due} due every second (ms late)",
        rows,
        ["scheduler", "fires", "p50", "p99", "max"],
    )
    save("firing_precision", {"args": vars(args), "vaultsched": ours, "apscheduler": theirs})


if __name__ == "__main__":
    main()
