"""Burst: N tasks due in the same second. Time until all have started, until all results are in
the notes, the digest and git, and how many commits that took."""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from _common import HOST, cpu_seconds, save, start_daemon, stop, table, wait_until
from make_vault import make

from vaultsched.adapters.ledger import Ledger
from vaultsched.core.model import Status

PLACEHOLDER = "every 1d"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--parallel", type=int, default=4, help="max_parallel (default 4)")
    parser.add_argument(
        "--properties", action="store_true", help="[notes] properties = true: run state in notes"
    )
    parser.add_argument(
        "--lead",
        type=float,
        default=8,
        help="s at least from now to the burst (default 8): the commit and the daemon's start;"
        " more on a busy machine, where a daemon up after the due time sees no burst",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vaultsched-bench-") as tmp:
        root = make(Path(tmp) / "vault", args.tasks, args.tasks, seed=4, schedule=PLACEHOLDER)
        every, due = soon_interval(time.time(), args.lead)
        for path in (root / "Tasks").rglob("*.md"):
            path.write_text(path.read_text(encoding="utf-8").replace(PLACEHOLDER, every))
        notes = "[notes]\nproperties = true\n" if args.properties else ""
        (root / ".vaultsched/config.toml").write_text(
            f'timezone = "UTC"\nmax_parallel = {args.parallel}\n{notes}'
        )
        subprocess.run(["git", "add", "-A"], cwd=root, check=True, capture_output=True)
        subprocess.run(["git", "commit", "-qm", "tasks"], cwd=root, check=True, capture_output=True)
        commits_before = _commits(root)
        daemon = start_daemon(root)
        ledger = Ledger(root, HOST)
        try:
            wait_until(lambda: time.time() >= due, timeout=200, step=0.2)
            wait_until(lambda: _finished(ledger) >= args.tasks, 600, 0.2)
            runs = ledger.runs()
            all_started = max(r.started_at.timestamp() for r in runs) - due
            all_finished = max(r.finished_at.timestamp() for r in runs if r.finished_at) - due
            wait_until(lambda: not _dirty(root), timeout=600, step=0.2)
            all_landed = time.time() - due
            cpu = cpu_seconds(daemon.pid)  # its own threads (user + system), not its children
        finally:
            stop(daemon)
        commits = _commits(root) - commits_before
    table(
        f"Burst: {args.tasks} tasks due at the same second, max_parallel {args.parallel}"
        f"{', properties' if args.properties else ''} (s after the due time)",
        [[f"{all_started:.1f}", f"{all_finished:.1f}", f"{all_landed:.1f}", commits, f"{cpu:.1f}"]],
        ["all started", "all finished", "all in notes, digest, git", "commits", "daemon CPU s"],
    )
    save(
        "burst",
        {
            "tasks": args.tasks,
            "max_parallel": args.parallel,
            "properties": args.properties,
            "started_s": all_started,
            "finished_s": all_finished,
        }
        | {"landed_s": all_landed, "commits": commits, "daemon_cpu_s": cpu},
    )


def soon_interval(now: float, lead: float = 8, spread: float = 10) -> tuple[str, float]:
    """An `every Ns` whose next epoch-aligned fire is `lead` to `lead + spread` seconds away and
    whose one after is minutes later: one burst, without waiting for a cron minute to come round.
    `lead` covers the commit and the daemon's start."""
    for seconds in range(600, 100_000):
        due = (int(now + lead) // seconds + 1) * seconds
        if due - now <= lead + spread:
            return f"every {seconds}s", float(due)
    raise RuntimeError("no interval lands in the window")


def _finished(ledger: Ledger) -> int:
    return sum(r.status is not Status.RUNNING for r in ledger.runs())


def _dirty(root: Path) -> bool:
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=root, capture_output=True, text=True, check=False
    )
    return bool(status.stdout.strip())


def _commits(root: Path) -> int:
    out = subprocess.run(
        ["git", "rev-list", "--count", "HEAD"],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    return int(out.stdout.strip() or 0)


if __name__ == "__main__":
    main()
