"""Memory: the daemon's peak RSS on a generated vault (default 100,000 notes), once indexed.

`--warm`: started a second time, on the index cache the first start wrote. `--vaults DIR` keeps
the generated vault there for the next run (a million notes take minutes to write).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    ENV,
    fresh_state,
    generated,
    load_average,
    peak_rss_mib,
    save,
    stop,
    table,
    wait_until,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--notes", type=int, default=100_000)
    parser.add_argument("--tasks", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--warm", action="store_true", help="start again on the index cache")
    parser.add_argument("--vaults", type=Path, help="keep generated vaults in this folder")
    args = parser.parse_args()
    starts: dict[str, tuple[float, float]] = {}
    with generated(args.vaults, args.notes, args.tasks, seed=args.seed) as root:
        starts["cold"] = peak_once_indexed(root, args.notes)
        if args.warm:
            fresh_state(root, keep_cache=True)  # a first start again, but for the cache
            starts["warm"] = peak_once_indexed(root, args.notes)
    table(
        f"Memory: daemon on {args.notes} notes ({args.tasks} tasks)",
        [[start, f"{peak:.0f} MiB", f"{secs:.1f} s"] for start, (peak, secs) in starts.items()],
        ["start", "peak RSS", "start to indexed"],
    )
    peak, indexed = starts["cold"]
    save(
        "memory",
        {"notes": args.notes, "tasks": args.tasks, "peak_rss_mib": peak, "indexed_s": indexed}
        | {
            "starts": {
                start: {"peak_rss_mib": p, "indexed_s": s} for start, (p, s) in starts.items()
            }
        }
        | {"load": load_average()},
    )


def peak_once_indexed(root: Path, notes: int) -> tuple[float, float]:
    """(peak RSS in MiB, seconds from start to the daemon's `indexed` line) of one start. A
    cold start reads every note, one after another: from a slow disk (0.6 ms a note was seen)
    a million take 10 minutes, so the wait allows 2 ms a note, at least 10 minutes."""
    with tempfile.TemporaryDirectory(prefix="vaultsched-bench-") as tmp:
        log = Path(tmp) / "daemon.log"
        with log.open("wb") as handle:
            started = time.monotonic()
            daemon = subprocess.Popen(
                [sys.executable, "-m", "vaultsched", "--vault", str(root), "run"],
                env=ENV,
                stdout=handle,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_until(
                lambda: b"indexed" in log.read_bytes(), timeout=max(600, notes / 500), step=0.1
            )
            indexed = time.monotonic() - started
            time.sleep(5)  # settled: watches in place, first fires planned
            return peak_rss_mib(daemon.pid), indexed
        finally:
            stop(daemon)


if __name__ == "__main__":
    main()
