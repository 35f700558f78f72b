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


def measure(proc: subprocess.Popen[bytes], settle: float, window: float) -> tuple[float, int]:
    time.sleep(settle)  # past start-up and indexing
    cpu, woke = cpu_seconds(proc.pid), wakeups(proc.pid)
    time.sleep(window)
    return cpu_seconds(proc.pid) - cpu, wakeups(proc.pid) - woke


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--window", type=float, default=60)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="vaultsched-bench-") as tmp:
        root = make(Path(tmp) / "vault", args.tasks, args.tasks, seed=3)
        for path in (root / "Tasks").rglob("*.md"):  # nothing due during the window
            text = path.read_text(encoding="utf-8")
            if "schedule:" in text:
                lines = [
                    "schedule: '0 3 1 1 *'" if line.startswith("schedule:") else line
                    for line in text.splitlines()
                ]
                path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        daemon = start_daemon(root)
        try:
            results["vaultsched"] = measure(daemon, 8, args.window)
        finally:
            stop(daemon)
    for name, code in (
        ("APScheduler 3", APSCHEDULER.format(tasks=args.tasks)),
        ("polling loop (60 s sleep)", POLLING),
    ):
        proc = subprocess.Popen([sys.executable, "-c", code])
        try:
            results[name] = measure(proc, 3, args.window)
        finally:
            proc.kill()
            proc.wait()
    table(
        f"Idle over {args.window:.0f} s, {args.tasks} tasks loaded, nothing due",
        [[name, f"{cpu:.3f}", woke] for name, (cpu, woke) in results.items()],
        ["process", "CPU s", "wake-ups"],
    )
    save("idle_cost", {"window_s": args.window, "results": results})


if __name__ == "__main__":
    main()
