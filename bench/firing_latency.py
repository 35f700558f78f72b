"""Firing with default settings: 1, 4 and 20 `every 1s` tasks due in the same second.

The same measurement as firing_precision.py (due second -> child process started), with
vaultsched's default `max_parallel` of 4, to show what queueing behind it costs.
Run: `python bench/firing_latency.py --seconds 30`.
"""

from __future__ import annotations

import argparse

from _common import save, summary, table
from firing_precision import vaultsched_lateness


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--due", type=int, nargs="+", default=[1, 4, 20])
    args = parser.parse_args()
    results = {due: summary(vaultsched_lateness(due, due, args.seconds, None)) for due in args.due}
    table(
        "Firing with the default max_parallel (4): ms from the due second to the child started",
        [
            [due, s["n"], f"{s['p50']:.1f}", f"{s['p99']:.1f}", f"{s['max']:.1f}"]
            for due, s in results.items()
        ],
        ["due each second", "fires", "p50", "p99", "max"],
    )
    save("firing_latency", {"seconds": args.seconds, "results": results})


if __name__ == "__main__":
    main()
