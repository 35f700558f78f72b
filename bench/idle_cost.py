"""Idle cost: CPU seconds and wake-ups over a window with 1,000 tasks loaded and nothing due,
for vaultsched, APScheduler (same 1,000 jobs) and a plain polling loop (a 60 s sleep)."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import cpu_seconds, save, start_daemon, stop, table, wakeups
from make_vault import make

APSCHEDULER = """
import time
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger
scheduler = BackgroundScheduler()
for n in range({tasks}):
    scheduler.add_job(print, CronTrigger(hour=3, minute=n % 60, day=1 + n % 28))
scheduler.start()
time.sleep(10**6)
"""
POLLING = "import time\nwhile True:\n    time.sleep(60)\n"
SETTLE = 8  # past start-up and indexing


def readings(procs: dict[str, subprocess.Popen[bytes]]) -> dict[str, tuple[float, int]]:
    return {name: (cpu_seconds(p.pid), wakeups(p.pid)) for name, p in procs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--window", type=float, default=60)
    parser.add_argument(
        "--settle", type=float, default=SETTLE, help=f"seconds before the window (default {SETTLE})"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vaultsched-bench-") as tmp:
        root = make(Path(tmp) / "vault", args.tasks, args.tasks, seed=3, schedule="0 3 1 1 *")
        # All three idle side by side over the same window: none of them should compete.
        procs = {
            "vaultsched": start_daemon(root),
            "APScheduler 3": _python(APSCHEDULER.format(tasks=args.tasks)),
            "polling loop (60 s sleep)": _python(POLLING),
        }
        try:
            time.sleep(args.settle)
            before = readings(procs)
            time.sleep(args.window)
            after = readings(procs)
            gone = [name for name, proc in procs.items() if proc.poll() is not None]
            if gone:  # a dead process also reads as idle: never report that
                raise SystemExit(f"exited during the window: {', '.join(gone)}")
        finally:
            stop(procs.pop("vaultsched"))
            for proc in procs.values():
                proc.kill()
                proc.wait()
    results = {
        name: (after[name][0] - cpu, after[name][1] - woke) for name, (cpu, woke) in before.items()
    }
    table(
        f"Idle over {args.window:.0f} s, {args.tasks} tasks loaded, nothing due",
        [[name, f"{cpu:.3f}", woke] for name, (cpu, woke) in results.items()],
        ["process", "CPU s", "wake-ups"],
    )
    save("idle_cost", {"window_s": args.window, "results": results})


def _python(code: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", code])


if __name__ == "__main__":
    main()
