"""Burst: N tasks due in the same second. Time until all have started, until all results are in
the notes, the digest and git, and how many commits that took."""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _common import HOST, save, start_daemon, stop, table, wait_until
from make_vault import make

from vaultsched.ledger import Ledger
from vaultsched.model import Status


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tasks", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vaultsched-bench-") as tmp:
        root = make(Path(tmp) / "vault", args.tasks, args.tasks, seed=4)
        due = (datetime.now(UTC) + timedelta(seconds=45)).replace(second=0, microsecond=0)
        due += timedelta(minutes=1)
        cron = f'"{due.minute} {due.hour} * * *"'
        (root / ".vaultsched/config.toml").write_text('timezone = "UTC"\n')
        for path in (root / "Tasks").rglob("*.md"):
            text = path.read_text(encoding="utf-8")
            if text.startswith("---\ntags: [vaultsched]\nschedule:"):
                head, _, rest = text.partition("\nschedule:")
                path.write_text(f"{head}\nschedule: {cron}\n{rest.split(chr(10), 1)[1]}")
        subprocess.run(["git", "add", "-A"], cwd=root, check=True, capture_output=True)
        subprocess.run(["git", "commit", "-qm", "tasks"], cwd=root, check=True, capture_output=True)
        commits_before = _commits(root)
        daemon = start_daemon(root)
        ledger = Ledger(root, HOST)
        try:
            wait_until(lambda: datetime.now(UTC) >= due, timeout=200, step=0.2)
            wait_until(lambda: _count(ledger, started=True) >= args.tasks, 600, 0.2)
            all_started = time.time() - due.timestamp()
            wait_until(lambda: _count(ledger, started=False) >= args.tasks, 600, 0.2)
            all_finished = time.time() - due.timestamp()
            wait_until(lambda: not _dirty(root), timeout=600, step=0.2)
            all_landed = time.time() - due.timestamp()
        finally:
            stop(daemon)
        commits = _commits(root) - commits_before
    table(
        f"Burst: {args.tasks} tasks due at the same second (s after the due time)",
        [[f"{all_started:.1f}", f"{all_finished:.1f}", f"{all_landed:.1f}", commits]],
        ["all started", "all finished", "all in notes, digest, git", "commits"],
    )
    save(
        "burst",
        {"tasks": args.tasks, "started_s": all_started, "finished_s": all_finished}
        | {"landed_s": all_landed, "commits": commits},
    )


def _count(ledger: Ledger, *, started: bool) -> int:
    runs = ledger.runs()
    return len(runs) if started else sum(r.status is not Status.RUNNING for r in runs)


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
