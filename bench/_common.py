"""Shared by the benchmarks: temp vaults, the real daemon, /proc readings, results."""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from make_vault import cached, make

from vaultsched.core import layout

HOST = "bench"
RESULTS = Path(__file__).resolve().parent / "results"
# Commands run as installed: their bytecode read from __pycache__ (see `compile_package`). Some
# machines set PYTHONDONTWRITEBYTECODE, and every command would then compile again each module
# changed since the last compile: tens of milliseconds, more than some figures measured.
ENV = {
    **{name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"},
    "VAULTSCHED_HOST": HOST,
    "VAULTSCHED_TRUST": "any",
}


def compile_package() -> None:
    """Write the bytecode of every vaultsched module, as pip does when it installs one."""
    import compileall

    import vaultsched

    compileall.compile_dir(Path(vaultsched.__file__).parent, quiet=1)


def percentile(values: Sequence[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]


def summary(values: Sequence[float]) -> dict[str, float]:
    return {
        "n": len(values),
        "p50": statistics.median(values),
        "p99": percentile(values, 0.99),
        "max": max(values),
    }


@contextmanager
def generated(
    store: Path | None, notes: int, tasks: int, seed: int, schedule: str | None = None
) -> Iterator[Path]:
    """A vault `make_vault` generates: in a temp folder removed after, or kept in `store`
    (`--vaults`) and reused from run to run, as a fresh vault: see `fresh_state`."""
    if store is not None:
        root = cached(store, notes, tasks, seed, schedule)
        fresh_state(root)
        yield root
        return
    with tempfile.TemporaryDirectory(prefix="vaultsched-bench-") as tmp:
        yield make(Path(tmp) / "vault", notes, tasks, seed, schedule)


def fresh_state(root: Path, *, keep_cache: bool = False) -> None:
    """Forget what earlier runs left in a kept vault: its ledger, logs and state, so that a
    daemon starts as on a new vault (nothing to catch up), and, unless `keep_cache`, the index
    cache (the next start reads every note)."""
    cache = root / layout.INDEX_CACHE
    kept = cache.read_bytes() if keep_cache and cache.exists() else None
    for rel in (layout.RUNS_DIR, layout.LOGS_DIR, layout.STATE_DIR):
        shutil.rmtree(root / rel, ignore_errors=True)
    if kept is not None:
        cache.parent.mkdir(parents=True)
        cache.write_bytes(kept)


@dataclass(frozen=True)
class Measured:
    wall: float  # seconds
    cpu: float  # user + system seconds of the process
    rss_mib: float | None  # its peak RSS; None: no more than this process's own (see `measured`)
    out: str  # its stdout


def measured(argv: Sequence[str], env: dict[str, str] | None = None) -> Measured:
    """Run `argv` to its end: wall time, and its own CPU time and peak RSS (from `wait4`).

    The kernel counts in a child's peak RSS the parent's image it was forked from (or shared,
    for vfork) until it exec'ed: a peak at or below this process's own is not the child's."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env or ENV)
    assert proc.stdout is not None
    out = proc.stdout.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait
    proc.stdout.close()
    peak = usage.ru_maxrss / 1024
    own = peak_rss_mib(os.getpid())
    return Measured(wall, usage.ru_utime + usage.ru_stime, peak if peak > own + 1 else None, out)


def mib(value: float | None) -> str:
    """A peak RSS from `measured`, or the bound it is under."""
    if value is None:
        return f"<= {peak_rss_mib(os.getpid()):.0f} MiB"
    return f"{value:.0f} MiB"


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages: on a shared machine, beside every figure."""
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def start_daemon(
    root: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "vaultsched", "--vault", str(root), "run", *args],
        env=env or ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=120)
    except subprocess.TimeoutExpired:
        proc.kill()


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def wakeups(pid: int) -> int:
    """Voluntary context switches of every thread: each is a sleep that ended."""
    total = 0
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        for line in status.read_text().splitlines():
            if line.startswith("voluntary_ctxt_switches:"):
                total += int(line.split()[1])
    return total


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def wait_until(predicate: Any, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def save(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(data, indent=2, default=str) + "\n")
    return path


def table(title: str, rows: Sequence[Sequence[object]], header: Sequence[str]) -> None:
    print(f"\n{title} [load average {load_average()}]")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  " + "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
