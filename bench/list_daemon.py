"""`list` with the vault's daemon up: `list --json` answered by the running daemon, against the
same command walking the vault (warm: the index cache of the run before) and ripgrep, in
interleaved rounds on one vault; and the daemon's own restart on that cache, which stats every
note as a warm `list` does (seconds from its start to its `indexed` line, and to its socket).

The daemon runs with VAULTSCHED_ENABLED=0 (it fires nothing, so the kept vault stays as it is)
and its socket in a temp runtime folder. `--vaults DIR` keeps the generated vault there.
Run: `python bench/list_daemon.py --notes 100000`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    ENV,
    compile_package,
    cpu_seconds,
    generated,
    load_average,
    measured,
    save,
    stop,
    table,
    wait_until,
)

from vaultsched.adapters.query import daemon_socket


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the child, its stdout) of one run."""
    run = measured(argv, env)
    return run.wall, run.cpu, run.out


def restart(root: Path, env: dict[str, str], log: Path) -> tuple[subprocess.Popen[bytes], dict]:
    """Start the daemon; once it answers: its figures (its own index time, start to socket)."""
    real = str(root.resolve())
    start = time.perf_counter()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vaultsched", "--vault", str(root), "run"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    assert wait_until(lambda: daemon_socket(real) is not None, timeout=600, step=0.01)
    ready = time.perf_counter() - start
    found = re.search(rb"indexed \d+ tasks in .* in ([\d.]+)s", log.read_bytes())
    return proc, {
        "to_socket_s": ready,
        "index_s": float(found.group(1)) if found else None,
        "cpu_s": cpu_seconds(proc.pid),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--notes", type=int, default=100_000)
    parser.add_argument("--tasks", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--vaults", type=Path, help="keep generated vaults in this folder")
    args = parser.parse_args()
    compile_package()  # each command run reads its bytecode, as installed
    runtime = Path(tempfile.mkdtemp(prefix="vaultsched-run-"))
    os.environ["XDG_RUNTIME_DIR"] = str(runtime)  # where this process looks for the socket
    env = {**ENV, "XDG_RUNTIME_DIR": str(runtime), "VAULTSCHED_ENABLED": "0"}
    walk_env = {**env, "VAULTSCHED_ASK_DAEMON": "0"}
    rg = shutil.which("rg")
    walks, asks, floors, starts = [], [], [], []
    try:
        with generated(args.vaults, args.notes, args.tasks, seed=1) as root:
            listing = [sys.executable, "-m", "vaultsched", "--vault", str(root), "list", "--json"]
            floor = (
                [rg, "-l", "--glob", "*.md", "^command:", str(root)]
                if rg
                else ["grep", "-rl", "--include=*.md", "^command:", str(root)]
            )
            timed(listing, walk_env)  # writes the index cache: the walks after are warm
            log = runtime / "daemon.log"
            daemon, first = restart(root, env, log)
            try:
                same = json.loads(timed(listing, env)[2]) == json.loads(timed(listing, walk_env)[2])
                for _ in range(args.repeat):  # interleaved: the machine's load falls on each
                    walks.append(timed(listing, walk_env)[:2])
                    asks.append(timed(listing, env)[:2])
                    floors.append(timed(floor, env)[:2])
            finally:
                stop(daemon)
            for _ in range(args.repeat):
                daemon, figures = restart(root, env, log)
                starts.append(figures)
                stop(daemon)
    finally:
        shutil.rmtree(runtime, ignore_errors=True)
    rg_wall = statistics.median(w for w, _ in floors)

    def row(label: str, runs: list[tuple[float, float]]) -> list[str]:
        wall = statistics.median(w for w, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        return [label, f"{wall:.3f} s", f"{cpu:.3f} s", f"{wall / rg_wall:.2f}x"]

    table(
        f"list with the daemon up, {args.notes} notes ({args.tasks} tasks), "
        f"medians of {args.repeat} interleaved rounds; same rows both ways: {same}",
        [
            row("list --json, daemon up (asked)", asks),
            row("list --json, no daemon (warm walk)", walks),
            row("rg -l '^command:'" if rg else "grep -rl", floors),
        ],
        ["command", "wall", "CPU", "x rg"],
    )
    med = {k: statistics.median(s[k] for s in starts) for k in ("to_socket_s", "cpu_s")}
    index_s = [s["index_s"] for s in starts if s["index_s"] is not None]
    table(
        f"the daemon's restart on the index cache, median of {args.repeat}",
        [
            ["start to indexed (its own figure)", f"{statistics.median(index_s):.2f} s"],
            ["start to its socket", f"{med['to_socket_s']:.2f} s"],
            ["its CPU by then", f"{med['cpu_s']:.2f} s"],
        ],
        ["", ""],
    )
    save(
        "list_daemon",
        {"notes": args.notes, "tasks": args.tasks, "same_rows": same, "load": load_average()}
        | {"asked": asks, "walked": walks, "floor": floors, "restarts": starts}
        | {"first_restart": first},
    )


if __name__ == "__main__":
    main()
