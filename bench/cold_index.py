"""Cold and warm index: `vaultsched list --json` on a generated vault, against a ripgrep floor.

Cold: no index cache (`.vaultsched/state/index.cache` is removed before each run), so every
note is read; on a large vault a second process reads some of the notes (`adapters/twocores`),
so the cold run is timed again pinned to one core (`taskset`) to show what that wins.
Warm: the same vault again, with the cache the run before wrote: a restart on an unchanged
vault, which stats every note and reads none.
The floor is `rg -l '^command:'` over the same notes: finding the task notes with the fastest
tool there is, without parsing anything. A second floor is the least any Python program
can do: start, walk, one `os.read` per note, no imports and no YAML.
`--changed 100,10000`: warm again after that many notes changed (their mtime set to now, as
any save sets it), a new random set before each run: a warm start reads only those notes, then
writes the cache anew. `--validate`: `vaultsched validate`, cold and warm, too. `--vaults DIR`
keeps the generated vault there for the next run (a million notes take minutes to write).
Run: `python bench/cold_index.py --notes 100000`.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import random
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import Measured, compile_package, generated, load_average, measured, mib, save, table

from vaultsched.adapters.indexcache import RACY_NS
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


def timed(argv: list[str], repeat: int, before: Callable[[], object] = lambda: None) -> Measured:
    """The medians of `repeat` runs (peak RSS: the largest), after one that warms the page
    cache; `before` is called ahead of each run, untimed."""
    before()
    measured(argv)  # warm the page cache
    runs = []
    for _ in range(repeat):
        before()
        runs.append(measured(argv))
    return Measured(
        statistics.median(r.wall for r in runs),
        statistics.median(r.cpu for r in runs),
        max((r.rss_mib for r in runs if r.rss_mib is not None), default=None),
        runs[-1].out,
    )


def changer(root: Path, count: int) -> Callable[[], None]:
    """Change `count` notes picked at random (a new pick each call) by setting their mtime to
    now, then wait until the index cache would keep them (`RACY_NS`): a run after this reads
    exactly those notes."""
    notes = sorted(_notes(root))
    rng = random.Random(count)

    def change() -> None:
        for path in rng.sample(notes, count):
            os.utime(path)
        time.sleep(RACY_NS / 1e9 + 0.2)

    return change


def _notes(folder: str | Path) -> list[str]:
    found = []
    for top, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [f"{top}/{f}" for f in files if f.endswith(".md")]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--notes", type=int, default=100_000)
    parser.add_argument("--tasks", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--changed", default="", help="warm after N changed notes: N,N,...")
    parser.add_argument("--validate", action="store_true", help="time `validate` too")
    parser.add_argument("--vaults", type=Path, help="keep generated vaults in this folder")
    args = parser.parse_args()
    compile_package()  # each command run reads its bytecode, as installed
    rows = measure(args)
    floor_name = next(label for label in rows if not label.startswith(("vaultsched", "python")))
    floor, cold = rows[floor_name].wall, rows["vaultsched list --json, cold"].wall
    warm = rows["vaultsched list --json, warm"].wall
    short = floor_name.split(maxsplit=1)[0]
    table(
        f"Cold and warm index, {args.notes} notes ({args.tasks} tasks)",
        [
            *(
                [label, f"{m.wall:.2f} s", f"{m.cpu:.2f} s", mib(m.rss_mib), m.out]
                for label, m in rows.items()
            ),
            [f"cold: ratio to {short}", f"{cold / floor:.1f}x", "", "", ""],
            [f"warm: ratio to {short}", f"{warm / floor:.2f}x", "", "", ""],
        ],
        ["command", "median", "CPU", "peak RSS", "task notes"],
    )
    python = rows["python: walk + one read per note"].wall
    save(
        "cold_index",
        {"notes": args.notes, "tasks": args.tasks, "vaultsched_s": cold, "floor_s": floor}
        | {"floor": floor_name, "python_floor_s": python, "ratio": cold / floor}
        | {"warm_s": warm, "warm_ratio": warm / floor, "load": load_average()}
        | {"rows": {label: vars(m) for label, m in rows.items()}},
    )


def measure(args: argparse.Namespace) -> dict[str, Measured]:
    """Each row's figures; in place of its output, how many task notes it found."""
    rg = shutil.which("rg")
    rows: dict[str, Measured] = {}
    with generated(args.vaults, args.notes, args.tasks, seed=1) as root:
        cache = root / layout.INDEX_CACHE
        vaultsched = [sys.executable, "-m", "vaultsched", "--vault", str(root)]
        listing = [*vaultsched, "list", "--json"]

        def row(label: str, argv: list[str], found: Callable[[str], object], **kw: Any) -> None:
            m = timed(argv, args.repeat, **kw)
            rows[label] = dataclasses.replace(m, out=str(found(m.out)))

        def tasks(out: str) -> int:
            return len(json.loads(out))

        row("vaultsched list --json, cold", listing, tasks, before=_dropper(cache))
        one_core = _one_core()
        if one_core:  # the same on one core: what the second process the index forks wins
            row(ONE_CORE, [*one_core, *listing], tasks, before=_dropper(cache))
        row("vaultsched list --json, warm", listing, tasks)
        for count in (int(n) for n in args.changed.split(",") if n.strip()):
            label = f"vaultsched list --json, warm, {count} changed"
            row(label, listing, tasks, before=changer(root, count))
        if args.validate:
            validate = [*vaultsched, "validate"]
            row("vaultsched validate, cold", validate, _problems, before=_dropper(cache))
            row("vaultsched validate, warm", validate, _problems)
        floor = (
            [rg, "-l", "--glob", "*.md", "^command:", str(root)]
            if rg
            else ["grep", "-rl", "--include=*.md", "^command:", str(root)]
        )
        label = "rg" if rg else "grep -rl (ripgrep not installed)"
        row(label, floor, lambda out: len(out.splitlines()))
        python = [sys.executable, "-c", PYTHON_FLOOR, str(root)]
        row("python: walk + one read per note", python, str.strip)
    return rows


ONE_CORE = "vaultsched list --json, cold, one core"


def _one_core() -> list[str]:
    """`taskset` onto one of the cores this process may use, if there are two or more."""
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    taskset = shutil.which("taskset")
    return [taskset, "-c", str(cores[0])] if taskset and len(cores) >= 2 else []


def _problems(out: str) -> str:
    return f"{len(out.splitlines())} problems"


def _dropper(cache: Path) -> Callable[[], None]:
    return lambda: cache.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
