"""Cold and warm index: `vaultsched list --json` on a generated vault, against a ripgrep floor.

Cold: no index cache (`.vaultsched/state/index.cache` is removed before each run), so every
note is read. Warm: the same vault again, with the cache the run before wrote: a restart on an
unchanged vault, which stats every note and reads none.
The floor is `rg -l '^command:'` over the same notes: finding the task notes with the fastest
tool there is, without parsing anything. A second floor is the least any Python program
can do: start, walk, one `os.read` per note, no imports and no YAML.
Run: `python bench/cold_index.py --notes 100000`.
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
from collections.abc import Callable
from pathlib import Path

from _common import ENV, save, table
from make_vault import make

from vaultsched.core import layout

PYTHON_FLOOR = """
import os, sys
def walk(folder):
    with os.scandir(folder) as listing:
        for entry in listing:
            if entry.name.startswith("."):
                continue
            if entry.is_dir(follow_symlinks=False):
                yield from walk(entry.path)
            elif entry.name.endswith(".md"):
                yield entry.path
found = 0
for path in walk(sys.argv[1]):
    fd = os.open(path, os.O_RDONLY)
    head = os.read(fd, 4096)
    found += head.startswith(b"---") and b"\\ncommand:" in head
    os.close(fd)
print(found)
"""


def timed(
    argv: list[str], repeat: int, before: Callable[[], object] = lambda: None
) -> tuple[float, str]:
    """The median time of `repeat` runs, after one that warms the page cache; `before` is
    called ahead of each run, untimed."""
    before()
    subprocess.run(argv, capture_output=True, env=ENV, check=False)  # warm the page cache
    times, out = [], ""
    for _ in range(repeat):
        before()
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
    rg = shutil.which("rg")
    name = "rg" if rg else "grep -rl (ripgrep not installed)"
    with tempfile.TemporaryDirectory(prefix="vaultsched-bench-") as tmp:
        root = make(Path(tmp) / "vault", args.notes, args.tasks, seed=1)
        cache = root / layout.INDEX_CACHE
        listing = [sys.executable, "-m", "vaultsched", "--vault", str(root), "list", "--json"]
        ours, listed = timed(listing, args.repeat, before=lambda: cache.unlink(missing_ok=True))
        warm, listed_warm = timed(listing, args.repeat)
        floor, found = timed(
            [rg, "-l", "--glob", "*.md", "^command:", str(root)]
            if rg
            else ["grep", "-rl", "--include=*.md", "^command:", str(root)],
            args.repeat,
        )
        python, counted = timed([sys.executable, "-c", PYTHON_FLOOR, str(root)], args.repeat)
    ratio, warm_ratio = ours / floor, warm / floor
    floor_name = name.split(maxsplit=1)[0]
    table(
        f"Cold and warm index, {args.notes} notes ({args.tasks} tasks)",
        [
            ["vaultsched list --json, cold", f"{ours:.2f} s", len(json.loads(listed))],
            ["vaultsched list --json, warm", f"{warm:.2f} s", len(json.loads(listed_warm))],
            [name, f"{floor:.2f} s", len(found.splitlines())],
            ["python: walk + one read per note", f"{python:.2f} s", counted.strip()],
            [f"cold: ratio to {floor_name}", f"{ratio:.1f}x", ""],
            [f"warm: ratio to {floor_name}", f"{warm_ratio:.2f}x", ""],
        ],
        ["command", "median", "task notes"],
    )
    save(
        "cold_index",
        {"notes": args.notes, "vaultsched_s": ours, "floor_s": floor, "floor": name}
        | {"python_floor_s": python, "ratio": ratio, "warm_s": warm, "warm_ratio": warm_ratio},
    )


if __name__ == "__main__":
    main()
