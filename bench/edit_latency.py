"""How soon is an edit in effect? Save a task note, time until the daemon's index has it.

The daemon runs in this process (its own threads, the real watchdog observer) so the index can
be polled directly; each edit changes the task's `timeout`, which the index then shows.
Run: `.venv/bin/python bench/edit_latency.py` (options: --edits, --tasks).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

from vaultsched.daemon import Daemon
from vaultsched.scaffold import init_vault
from vaultsched.vault import open_vault

NOTE = '---\nschedule: "0 3 * * *"\ncommand: "true"\ntimeout: {n}s\n---\nEdited {n} times.\n'


def measure(edits: int, tasks: int) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="vaultsched-bench-") as tmp:
        root = Path(tmp) / "vault"
        init_vault(root)
        for n in range(tasks):
            (root / "Tasks" / f"T{n}.md").write_text(NOTE.format(n=1), encoding="utf-8")
        daemon = Daemon(open_vault(root))
        thread = threading.Thread(target=daemon.run)
        thread.start()
        try:
            while "Tasks/T0" not in daemon.index.tasks:
                time.sleep(0.01)
            time.sleep(0.5)  # past the start-up burst
            return [_one_edit(daemon, root / "Tasks" / "T0.md", n) for n in range(2, edits + 2)]
        finally:
            daemon.stop()
            thread.join()


def _one_edit(daemon: Daemon, note: Path, n: int) -> float:
    saved = time.perf_counter()
    note.write_text(NOTE.format(n=n), encoding="utf-8")
    want = timedelta(seconds=n)
    while (task := daemon.index.tasks.get("Tasks/T0")) is None or task.timeout != want:
        time.sleep(0.001)
    return (time.perf_counter() - saved) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--edits", type=int, default=200)
    parser.add_argument("--tasks", type=int, default=100)
    args = parser.parse_args()
    os.environ.setdefault("VAULTSCHED_HOST", "bench")
    took = sorted(measure(args.edits, args.tasks))
    p99 = took[max(0, int(len(took) * 0.99) - 1)]
    print(
        f"{len(took)} edits with {args.tasks} tasks loaded: in effect after (ms) "
        f"median {statistics.median(took):.1f}, p99 {p99:.1f}, max {took[-1]:.1f}"
    )


if __name__ == "__main__":
    main()
