"""Scale: the benchmarks at 10,000 to 1,000,000 notes and with 10,000 tasks, and how each cost
grows (`make bench-scale`; not part of `make bench`).

Runs the other scripts with larger sizes, one after the other, keeps each one's result as
`results/scale/STEP.json`, then prints what each cost is per 1,000 notes (or changed notes)
between sizes. The generated vaults are kept in `--vaults` (default
~/.cache/vaultsched-bench, outside any git repository: a vault inside one would not be its own)
and reused: the million-note vault takes about 5 minutes to write, and 5 GB.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from _common import RESULTS, load_average, table

SIZES = (10_000, 100_000, 1_000_000)
CHANGED = {100_000: "100,1000,10000", 1_000_000: "100,10000,100000"}
TASKS = "10000"
COLD, WARM = "vaultsched list --json, cold", "vaultsched list --json, warm"
Results = dict[str, dict[str, Any]]


def steps(vaults: Path, repeat: int, window: int) -> dict[str, list[str]]:
    """Each step's script and arguments, by the name its result is kept under. Every vault of
    1,000 tasks is cold_index.py's (seed 1), so each size is written once."""
    kept, times = ["--vaults", str(vaults)], ["--repeat", str(repeat)]
    found: dict[str, list[str]] = {}
    for n in SIZES:
        changed = ["--changed", CHANGED[n]] if n in CHANGED else []
        found[f"cold_index-{n}"] = ["cold_index.py", "--notes", str(n), *times, *changed, *kept]
    for n in SIZES:
        found[f"memory-{n}"] = ["memory.py", "--notes", str(n), "--seed", "1", "--warm", *kept]
    many = ["--notes", TASKS, "--tasks", TASKS]
    return found | {
        "cold_index-tasks": ["cold_index.py", *many, "--validate", *times, *kept],
        "memory-tasks": ["memory.py", *many, "--seed", "1", "--warm", *kept],
        # past the start-up of 10,000 tasks (several seconds on a loaded machine)
        "idle_cost-tasks": [
            *("idle_cost.py", "--tasks", TASKS, "--window", str(window), "--settle", "30")
        ],
        "firing_precision-tasks": [
            *("firing_precision.py", "--tasks", TASKS, "--due", "10", "--seconds", str(window))
        ],
        # 10,000 task notes to commit and index before the due time: a longer lead
        "burst-tasks": ["burst.py", "--tasks", TASKS, "--lead", "45"],
    }


def run(name: str, argv: list[str]) -> dict[str, Any]:
    print(f"\n== {name}: {' '.join(argv)} [load average {load_average()}]", flush=True)
    script = argv[0].removesuffix(".py")
    (RESULTS / f"{script}.json").unlink(missing_ok=True)
    started = time.monotonic()
    subprocess.run([sys.executable, *argv], check=True)
    took = time.monotonic() - started
    kept = RESULTS / "scale" / f"{name}.json"
    kept.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(RESULTS / f"{script}.json", kept)
    print(f"== {name}: {took:.0f} s", flush=True)
    result: dict[str, Any] = json.loads(kept.read_text())
    return result


def growth(label: str, at: dict[int, float], unit: str = "notes") -> list[object]:
    """One cost at each size, the cost of each 1,000 more between sizes, and the ratio of
    the last slope to the first (1.0: linear; above: each note costs more in a bigger vault)."""
    sizes = sorted(at)
    slopes = [(at[b] - at[a]) / (b - a) * 1e6 for a, b in itertools.pairwise(sizes)]
    trend = f"{slopes[-1] / slopes[0]:.2f}" if len(slopes) > 1 and slopes[0] > 0 else ""
    return [
        label,
        " · ".join(f"{at[n]:.2f} s" for n in sizes),
        f"per 1k {unit}: " + " · ".join(f"{s:.2f} ms" for s in slopes),
        trend,
    ]


def summary(results: Results) -> None:
    cold = {n: results[f"cold_index-{n}"]["rows"] for n in SIZES if f"cold_index-{n}" in results}
    rows = []
    labels = {COLD: "cold", WARM: "warm", "rg": "rg", "python: walk + one read per note": "walk"}
    for what in ("wall", "cpu"):
        for row, label in labels.items():
            if all(row in r for r in cold.values()):
                rows.append(growth(f"{label} ({what})", {n: r[row][what] for n, r in cold.items()}))
        for n, spec in CHANGED.items():
            # CPU only: the cache rewrite's wall time swings with the machine's load; from the
            # first count up, as 0 to any count adds one rewrite of the whole cache
            if n in cold and what == "cpu":
                at = {int(c): cold[n][f"{WARM}, {c} changed"][what] for c in spec.split(",")}
                rows.append(growth(f"warm at {n}, {spec} changed ({what})", at, "changed"))
    table(
        "Scale: each cost at each size, per 1,000 more between sizes, last slope / first",
        rows,
        ["figure", "at each size", "growth", "slope ratio"],
    )
    memory = []
    for n in SIZES:
        if starts := results.get(f"memory-{n}", {}).get("starts"):
            memory.append([n, *_starts(starts)])
    table("Daemon: peak RSS and start to indexed, cold · warm", memory, ["notes", "RSS", "indexed"])
    tasks(results)


def tasks(results: Results) -> None:
    """10,000 notes, all of them tasks, beside 10,000 notes of which 1,000 are."""
    rows: list[list[object]] = []
    sides = (results.get("cold_index-10000"), results.get("cold_index-tasks"))
    for row in (COLD, WARM, "vaultsched validate, cold", "vaultsched validate, warm"):
        rows.append(
            [
                row,
                *(
                    f"{s['rows'][row]['wall']:.2f} s" if s and row in s["rows"] else ""
                    for s in sides
                ),
            ]
        )
    daemon = [results.get(name, {}).get("starts") for name in ("memory-10000", "memory-tasks")]
    cells = [_starts(starts) if starts else ["", ""] for starts in daemon]
    rows.append(["daemon peak RSS, cold · warm", *(c[0] for c in cells)])
    rows.append(["daemon start to indexed, cold · warm", *(c[1] for c in cells)])
    table("10,000 notes: 1,000 tasks · 10,000 tasks", rows, ["figure", "1,000", "10,000"])


def _starts(starts: dict[str, dict[str, float]]) -> list[str]:
    rss = " · ".join(f"{s['peak_rss_mib']:.0f} MiB" for s in starts.values())
    return [rss, " · ".join(f"{s['indexed_s']:.1f} s" for s in starts.values())]


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--vaults", type=Path, default=Path.home() / ".cache/vaultsched-bench")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--window", type=int, default=30, help="idle and firing window (s)")
    parser.add_argument("--only", help="comma-separated step names (default: all)")
    parser.add_argument("--summary", action="store_true", help="only summarise kept results")
    args = parser.parse_args()
    wanted = steps(args.vaults, args.repeat, args.window)
    results: Results = {}
    started = time.monotonic()
    for name in [] if args.summary else (args.only.split(",") if args.only else wanted):
        results[name] = run(name, wanted[name])
    for kept in sorted((RESULTS / "scale").glob("*.json")):
        results.setdefault(kept.stem, json.loads(kept.read_text()))
    summary(results)
    print(f"\nscale: {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
