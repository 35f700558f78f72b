"""Cold index: `vaultsched list --json` on a generated vault, against a ripgrep floor.

The floor is `rg -l '^command:'` over the same notes: finding the task notes with the fastest
tool there is, without parsing anything. Run: `python bench/cold_index.py --notes 100000`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ENV, save, table
from make_vault import make


def timed(argv: list[str], repeat: int) -> tuple[float, str]:
    subprocess.run(argv, capture_output=True, env=ENV, check=False)  # warm the page cache
    times, out = [], ""
    for _ in range(repeat):
        start = time.perf_counter()
        out = subprocess.run(argv, capture_output=True, text=True, env=ENV, check=False).stdout
        times.append(time.perf_counter() - start)
    return statistics.median(times), out


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--notes", type=int, default=100_000)
    parser.add_argument("--tasks", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vaultsched-bench-") as tmp:
        root = make(Path(tmp) / "vault", args.notes, args.tasks, seed=1)
        ours, listed = timed(
            [sys.executable, "-m", "vaultsched", "--vault", str(root), "list", "--json"],
            args.repeat,
        )
        tasks = len(json.loads(listed))
        rg = shutil.which("rg")
        floor_cmd = (
            [rg, "-l", "--glob", "*.md", "^command:", str(root)]
            if rg
            else ["grep", "-rl", "--include=*.md", "^command:", str(root)]
        )
        floor, found = timed(floor_cmd, args.repeat)
    ratio = ours / floor
    name = "rg" if rg else "grep -rl (ripgrep not installed)"
    table(
        f"Cold index, {args.notes} notes ({args.tasks} tasks)",
        [
            ["vaultsched list --json", f"{ours:.2f} s", tasks],
            [name, f"{floor:.2f} s", len(found.splitlines())],
            ["ratio", f"{ratio:.1f}x", ""],
        ],
        ["command", "median", "task notes"],
    )
    save(
        "cold_index",
        {
            "notes": args.notes,
            "vaultsched_s": ours,
            "floor_s": floor,
            "floor": name,
            "ratio": ratio,
        },
    )


if __name__ == "__main__":
    main()
