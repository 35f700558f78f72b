"""Start-up: wall time of short CLI commands (`--help`, `list` on an empty vault), each beside a
bare `python -c pass` in the same run: the floor any Python command pays.

Measured with vaultsched's bytecode cached, as an installed package has it: its modules are
compiled first, and the timed commands run without PYTHONDONTWRITEBYTECODE (set on some
machines, where every run would otherwise compile each module it imports from source).
The commands take turns, one run each per round, so that a burst of load on a shared machine
falls on all of them alike; each one's own CPU time (user + system, from `wait4`) is given
beside its wall time, and with `--instructions` the instructions of one run under valgrind's
callgrind (the same from run to run, whatever the load: the figure to compare two versions)."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from _common import ENV, compile_package, save, table

VAULTSCHED = [sys.executable, "-m", "vaultsched"]


def timed(argv: Sequence[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one run."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait
    assert proc.returncode == 0, argv
    return wall, usage.ru_utime + usage.ru_stime


def instructions(argv: Sequence[str]) -> int | None:
    """Instructions of one run under callgrind, or None without valgrind."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        return None
    with tempfile.TemporaryDirectory(prefix="vaultsched-cg-") as tmp:
        done = subprocess.run(
            [valgrind, "--tool=callgrind", f"--callgrind-out-file={tmp}/out", *argv],
            env={**ENV, "PYTHONHASHSEED": "0"},
            capture_output=True,
            text=True,
            check=True,
        )
    found = re.search(r"Collected : (\d+)", done.stderr)
    return int(found.group(1)) if found else None


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--instructions", action="store_true", help="count them (callgrind)")
    args = parser.parse_args()
    compile_package()
    with tempfile.TemporaryDirectory(prefix="vaultsched-bench-") as tmp:
        vault = Path(tmp)
        (vault / ".obsidian").mkdir()
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "vaultsched --help": [*VAULTSCHED, "--help"],
            "vaultsched list (empty vault)": [*VAULTSCHED, "--vault", str(vault), "list"],
        }
        for argv in commands.values():  # warms the page cache
            timed(argv)
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for _ in range(args.repeat):
            for name, argv in commands.items():
                runs[name].append(timed(argv))
        counted = {
            name: instructions(argv) if args.instructions else None
            for name, argv in commands.items()
        }
    results = {
        name: {
            "min_s": min(w for w, _ in got),
            "median_s": statistics.median(w for w, _ in got),
            "cpu_min_s": min(c for _, c in got),
            "cpu_median_s": statistics.median(c for _, c in got),
            "instructions": counted[name],
        }
        for name, got in runs.items()
    }
    table(
        f"Start-up: {args.repeat} runs each, taking turns (ms), bytecode cached",
        [
            [
                name,
                f"{min(w for w, _ in got) * 1000:.0f}",
                f"{statistics.median(w for w, _ in got) * 1000:.0f}",
                f"{statistics.median(c for _, c in got) * 1000:.0f}",
                "-" if counted[name] is None else f"{(counted[name] or 0) / 1e6:.0f} M",
            ]
            for name, got in runs.items()
        ],
        ["command", "min", "median", "CPU median", "instructions"],
    )
    save("startup", results)


if __name__ == "__main__":
    main()
