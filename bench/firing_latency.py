"""How late does a due run start? The real daemon, a real vault, `every 1s` tasks.

Each task's command prints the wall time at which its process began; the lateness of a run is
that time minus the fire time it was scheduled for. Run: `.venv/bin/python bench/firing_latency.py`
(options: --seconds, --tasks). Figures go in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vaultsched.ledger import Ledger
from vaultsched.scaffold import init_vault

HOST = "bench"


def make_vault(root: Path, tasks: int) -> None:
    init_vault(root)
    for path in (root / "Tasks").glob("*.md"):
        path.unlink()  # the example task is daily: not part of this measurement
    stamp = "date +%s.%N"  # a tiny exec: the figure is vaultsched's delay, not Python's start-up
    for n in range(tasks):
        note = root / "Tasks" / f"Tick {n}.md"
        note.write_text(f'---\nschedule: "every 1s"\ncommand: "{stamp}"\n---\n', encoding="utf-8")
        old = time.time() - 60
        os.utime(note, (old, old))


def measure(seconds: float, tasks: int) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="vaultsched-bench-") as tmp:
        root = Path(tmp) / "vault"
        make_vault(root, tasks)
        env = {**os.environ, "VAULTSCHED_HOST": HOST}
        daemon = subprocess.Popen(
            [sys.executable, "-m", "vaultsched", "--vault", str(root), "run"],
            env=env,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(seconds)
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=60)
        lateness = []
        for run in Ledger(root, HOST).runs():
            if run.scheduled_for is None or not run.output_tail.strip():
                continue
            began = float(run.output_tail.strip().splitlines()[-1])
            lateness.append((began - run.scheduled_for.timestamp()) * 1000)
        return lateness


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--tasks", type=int, default=1)
    args = parser.parse_args()
    late = sorted(measure(args.seconds, args.tasks))
    if not late:
        sys.exit("no runs measured")
    p95 = late[int(len(late) * 0.95) - 1] if len(late) >= 20 else late[-1]
    print(
        f"{len(late)} runs of {args.tasks} `every 1s` task(s) over {args.seconds:.0f}s: "
        f"start lateness (ms) median {statistics.median(late):.1f}, p95 {p95:.1f}, "
        f"max {late[-1]:.1f}"
    )


if __name__ == "__main__":
    main()
