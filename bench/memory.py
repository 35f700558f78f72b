"""Memory: the daemon's peak RSS on a generated vault (default 100,000 notes), once indexed."""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ENV, peak_rss_mib, save, stop, table, wait_until
from make_vault import make


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--notes", type=int, default=100_000)
    parser.add_argument("--tasks", type=int, default=1_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vaultsched-bench-") as tmp:
        root = make(Path(tmp) / "vault", args.notes, args.tasks, seed=5)
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
            wait_until(lambda: b"indexed" in log.read_bytes(), timeout=600, step=0.1)
            indexed = time.monotonic() - started
            time.sleep(5)  # settled: watches in place, first fires planned
            peak = peak_rss_mib(daemon.pid)
        finally:
            stop(daemon)
    table(
        f"Memory: daemon on {args.notes} notes ({args.tasks} tasks)",
        [[f"{peak:.0f} MiB", f"{indexed:.1f} s"]],
        ["peak RSS", "start to indexed"],
    )
    save("memory", {"notes": args.notes, "peak_rss_mib": peak, "indexed_s": indexed})


if __name__ == "__main__":
    main()
