"""Incremental update: save an edited task note, time until the daemon has the new schedule.

The daemon runs in this process (its own threads, the real watchdog observer) so its index can
be polled directly; each save changes the note's `schedule` line, as a person would in Obsidian,
on a generated vault with `--tasks` task notes loaded.
Run: `python bench/edit_latency.py --edits 200 --tasks 1000`.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import threading
import time
from pathlib import Path

from _common import ENV, save, summary, table
from make_vault import make

from vaultsched.runtime.daemon import Daemon
from vaultsched.trust.config import open_vault

NOTE = "---\nschedule: '{minute} 3 * * *'\ncommand: 'true'\n---\nEdited {n} times.\n"
EDITED = "Tasks/Edited"


def measure(edits: int, tasks: int) -> list[float]:
    with tempfile.TemporaryDirectory(prefix="vaultsched-bench-") as tmp:
        root = make(Path(tmp) / "vault", tasks, tasks - 1, seed=6)
        note = root / f"{EDITED}.md"
        note.write_text(NOTE.format(minute=0, n=0), encoding="utf-8")
        daemon = Daemon(open_vault(root))
        thread = threading.Thread(target=daemon.run)
        thread.start()
        try:
            while EDITED not in daemon.index.tasks:
                time.sleep(0.01)
            time.sleep(0.5)  # past the start-up burst
            return [_one_edit(daemon, note, n) for n in range(1, edits + 1)]
        finally:
            daemon.stop()
            thread.join()


def _one_edit(daemon: Daemon, note: Path, n: int) -> float:
    minute = n % 60  # consecutive saves always differ
    saved = time.perf_counter()
    note.write_text(NOTE.format(minute=minute, n=n), encoding="utf-8")
    want = f"{minute} 3 * * *"
    while (task := daemon.index.tasks.get(EDITED)) is None or task.schedules[0].text != want:
        time.sleep(0.001)
    return (time.perf_counter() - saved) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--edits", type=int, default=200)
    parser.add_argument("--tasks", type=int, default=1000)
    args = parser.parse_args()
    os.environ.update(ENV)  # the daemon runs in this process
    logging.getLogger("vaultsched").setLevel(logging.ERROR)  # its "invalid note" warnings
    took = summary(measure(args.edits, args.tasks))
    table(
        f"Edit in effect: {args.edits} saves of one task note, {args.tasks} tasks loaded (ms)",
        [[took["n"], f"{took['p50']:.1f}", f"{took['p99']:.1f}", f"{took['max']:.1f}"]],
        ["saves", "p50", "p99", "max"],
    )
    save("edit_latency", {"tasks": args.tasks, "edits": args.edits} | took)


if __name__ == "__main__":
    main()
