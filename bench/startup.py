"""Start-up: wall time of short CLI commands (`--help`, `list` on an empty vault), each beside a
bare `python -c pass` in the same run: the floor any Python command pays.

Measured with vaultsched's bytecode cached, as an installed package has it: its modules are
compiled first, and the timed commands run without PYTHONDONTWRITEBYTECODE (set on some
machines, where every run would otherwise compile each module it imports from source)."""

from __future__ import annotations

import argparse
import compileall
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from _common import ENV, save, table

import vaultsched

VAULTSCHED = [sys.executable, "-m", "vaultsched"]
# As installed: bytecode read from __pycache__, never compiled again on each run.
CACHED = {name: value for name, value in ENV.items() if name != "PYTHONDONTWRITEBYTECODE"}


def compile_package() -> None:
    """Write the bytecode of every vaultsched module, as pip does when it installs one."""
    compileall.compile_dir(Path(vaultsched.__file__).parent, quiet=1)


def timed(argv: Sequence[str], repeat: int) -> list[float]:
    """Wall seconds of each of `repeat` runs, after one untimed run that warms the page cache."""
    subprocess.run(argv, env=CACHED, check=True, capture_output=True)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, env=CACHED, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
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
        results = {name: timed(argv, args.repeat) for name, argv in commands.items()}
    rows = [
        [name, f"{min(t) * 1000:.0f}", f"{statistics.median(t) * 1000:.0f}"]
        for name, t in results.items()
    ]
    table(
        f"Start-up: wall time of {args.repeat} runs each (ms), bytecode cached",
        rows,
        ["command", "min", "median"],
    )
    save(
        "startup",
        {name: {"min_s": min(t), "median_s": statistics.median(t)} for name, t in results.items()},
    )


if __name__ == "__main__":
    main()
