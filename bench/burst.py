"""Burst: N tasks due in the same second. Time until all have started, until all results are in
the notes, the digest and git, and how many commits that took."""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _common import HOST, cpu_seconds, load_average, save, start_daemon, stop, table, wait_until
from make_vault import make

from vaultsched.adapters.ledger import Ledger
from vaultsched.core.model import Run, Status

PLACEHOLDER = "every 1d"
LEAD_S = 8.0  # the commit and the daemon's start
FIRST_RUN_S = 60.0  # after the due time: past it, the daemon missed the burst


@dataclass
class Burst:
    """What the daemon did with one burst: the runs as the ledger has them, when the last result
    was in the notes, the digest and git (s after the due time), and in how many commits."""

    runs: list[Run]
    landed_s: float | None  # None: not within 600 s
    commits: int
    cpu_s: float  # the daemon's own CPU time (its threads, not its children)

    def after_due(self, due: float, moment: str) -> float:
        """The latest run's `moment` (started_at, finished_at), s after the due time."""
        return max(getattr(r, moment).timestamp() for r in self.runs if getattr(r, moment)) - due


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--parallel", type=int, default=4, help="max_parallel (default 4)")
    parser.add_argument(
        "--lead",
        type=float,
        default=LEAD_S,
        help="s at least from now to the burst: the commit and the daemon's start; more on a"
        " busy machine, where a daemon up after the due time sees no burst",
    )
    parser.add_argument(
        "--properties", action="store_true", help="[notes] properties = true: run state in notes"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vaultsched-bench-") as tmp:
        notes = "[notes]\nproperties = true\n" if args.properties else ""
        root, due = burst_vault(Path(tmp) / "vault", args.tasks, args.parallel, notes, args.lead)
        burst = run_burst(root, due, args.tasks)
    all_started = burst.after_due(due, "started_at")
    all_finished = burst.after_due(due, "finished_at")
    in_git = f"{burst.landed_s:.1f}" if burst.landed_s is not None else "not within 600 s"
    row = [len(burst.runs), f"{all_started:.1f}", f"{all_finished:.1f}", in_git, burst.commits]
    table(
        f"Burst: {args.tasks} tasks due at the same second, max_parallel {args.parallel}"
        f"{', properties' if args.properties else ''} (s after the due time)",
        [[*row, f"{burst.cpu_s:.1f}"]],
        [
            "runs",
            "all started",
            "all finished",
            "all in notes, digest, git",
            "commits",
            "daemon CPU s",
        ],
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
        | {"landed_s": burst.landed_s, "commits": burst.commits, "daemon_cpu_s": burst.cpu_s}
        | {"runs": len(burst.runs), "load": load_average()},
    )


def burst_vault(
    root: Path, tasks: int, parallel: int, config: str = "", lead: float = LEAD_S
) -> tuple[Path, float]:
    """A committed vault of `tasks` task notes all due at one instant, `lead` to `lead` + 10 s
    from now: the vault and that instant (epoch seconds). `config`: more of its config.toml."""
    make(root, tasks, tasks, seed=4, schedule=PLACEHOLDER)
    every, due = soon_interval(time.time(), lead)
    for path in (root / "Tasks").rglob("*.md"):
        path.write_text(path.read_text(encoding="utf-8").replace(PLACEHOLDER, every))
    (root / ".vaultsched/config.toml").write_text(
        f'timezone = "UTC"\nmax_parallel = {parallel}\n{config}'
    )
    subprocess.run(["git", "add", "-A"], cwd=root, check=True, capture_output=True)
    # The set-up is not what is measured: without the pre-commit hook, which validates every
    # staged note (10,000 of them: longer than the lead).
    subprocess.run(
        ["git", "commit", "--no-verify", "-qm", "tasks"], cwd=root, check=True, capture_output=True
    )
    if time.time() > due - 1:  # a task first seen after its fire time waits for the next
        raise SystemExit(f"the set-up took longer than --lead {lead:g} s: raise it")
    return root, due


def run_burst(root: Path, due: float, tasks: int, env: dict[str, str] | None = None) -> Burst:
    """The daemon started on `root` until all `tasks` runs have finished and landed."""
    commits_before = _commits(root)
    daemon = start_daemon(root, env=env)
    ledger = Ledger(root, HOST)
    try:
        wait_until(lambda: time.time() >= due, timeout=200, step=0.2)
        if not wait_until(ledger.runs, FIRST_RUN_S, 0.2):
            raise SystemExit(
                f"no run {FIRST_RUN_S:.0f} s after the due time: the daemon was not ready by "
                "then (a loaded machine?); run again, or with a longer --lead"
            )
        wait_until(lambda: _finished(ledger) >= tasks, 600, 0.2)
        runs = ledger.runs()
        landed = time.time() - due if wait_until(lambda: not _dirty(root), 600, 0.2) else None
        cpu = cpu_seconds(daemon.pid)
    finally:
        stop(daemon)
    return Burst(runs, landed, _commits(root) - commits_before, cpu)


def soon_interval(now: float, lead: float = LEAD_S, spread: float = 10) -> tuple[str, float]:
    """An `every Ns` whose next epoch-aligned fire is `lead` to `lead + spread` seconds away and
    whose one after is minutes later: one burst, without waiting for a cron minute to come round.
    `lead` covers the commit and the daemon's start (longer for 10,000 tasks)."""
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
