"""`vaultsched doctor`: drift and health, each check with a verdict and the one fix.

Read-only: it never repairs anything itself, it says what would and how.
"""

from __future__ import annotations

import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final, Literal, TypedDict

from vaultsched.adapters import pinger, statefs
from vaultsched.adapters.git import Git, GitError
from vaultsched.adapters.ledger import Ledger
from vaultsched.adapters.notefile import read_note_bytes
from vaultsched.adapters.vault import IN_DIGESTS, Index, Vault, iter_notes
from vaultsched.core import blocks, layout
from vaultsched.core.model import Run, Trigger
from vaultsched.core.planner import SKEW, future_dated
from vaultsched.core.views import digest_path
from vaultsched.trust.config import TRUST_COMMAND, UNTRUSTED, verdict
from vaultsched.trust.store import TrustStore, trust_command

CheckStatus = Literal["ok", "warn", "fail"]  # `fail`: doctor exits 1
OK: Final = "ok"
WARN: Final = "warn"
FAIL: Final = "fail"
STALE_INDEX_LOCK = timedelta(minutes=10)
SHARED_FIRING_WINDOW = timedelta(days=7)
WATCH_HEADROOM = 0.8  # warn when the vault's folders use this share of the inotify limit


class CheckRow(TypedDict):
    """One check in `doctor --json`."""

    check: str
    status: CheckStatus
    detail: str
    fix: str


@dataclass(frozen=True)
class Check:
    name: str
    status: CheckStatus
    detail: str
    fix: str = ""

    def as_dict(self) -> CheckRow:
        return {"check": self.name, "status": self.status, "detail": self.detail, "fix": self.fix}


@dataclass(frozen=True)
class Context:
    vault: Vault
    index: Index
    runs: Sequence[Run]
    now: datetime


def diagnose(vault: Vault, index: Index, now: datetime) -> list[Check]:
    context = Context(vault, index, Ledger(vault.root, vault.host).runs(), now)
    return [check(context) for check in CHECKS]


def _listing(items: Sequence[str], limit: int = 5) -> str:
    shown = ", ".join(items[:limit])
    return shown + (f" and {len(items) - limit} more" if len(items) > limit else "")


def invalid_notes(c: Context) -> Check:
    bad = sorted(c.index.invalid)
    if not bad:
        return Check("task notes", OK, f"{len(c.index.tasks)} valid")
    return Check(
        "task notes", FAIL, f"{len(bad)} invalid, not run: {_listing(bad)}", "vaultsched validate"
    )


def untrusted(c: Context) -> Check:
    trusted = TrustStore().checker(c.vault.root)
    waiting = sorted(t.id for t in c.index.tasks.values() if not trusted(t))
    if not waiting:
        return Check("trust", OK, "every task is trusted")
    fix = (
        trust_command(waiting[0]) if len(waiting) == 1 else "vaultsched trust --all (after review)"
    )
    return Check("trust", WARN, f"not run until trusted: {_listing(waiting)}", fix)


def config_trust(c: Context) -> Check:
    judged = verdict(c.vault.root)
    if judged.state == UNTRUSTED:
        return Check("config trust", WARN, f"{layout.CONFIG}: {judged.describe()}", TRUST_COMMAND)
    return Check("config trust", OK, judged.describe())


def malformed_blocks(c: Context) -> Check:
    broken = []
    for task in c.index.tasks.values():
        text = _read(c.vault.root / task.path)
        if text is not None and blocks.has_malformed_markers(text, blocks.RUNS):
            broken.append(task.id)
    if not broken:
        return Check("run blocks", OK, "well-formed")
    return Check(
        "run blocks",
        WARN,
        f"a marker is missing or doubled (a fresh block is appended): {_listing(sorted(broken))}",
        "delete the stray `%% vaultsched:runs:… %%` line(s) in the note",
    )


def conflict_markers(c: Context) -> Check:
    conflicted = []
    for rel in iter_notes(c.vault):
        text = _read(c.vault.root / rel)
        if text is not None and blocks.has_conflict_markers(text):
            conflicted.append(rel)
    if not conflicted:
        return Check("conflict markers", OK, "none")
    return Check(
        "conflict markers",
        FAIL,
        f"vaultsched will not write these until resolved: {_listing(conflicted)}",
        "resolve the conflict in each note (keep both sides' text), then save",
    )


def missing_views(c: Context) -> Check:
    """Days whose digest is missing, and tasks whose note shows none of their runs."""
    tz = c.vault.config.timezone
    days = sorted({r.started_at.astimezone(tz).date() for r in c.runs})
    missing = [d for d in days if not c.vault.path(digest_path(c.vault, d)).exists()]
    unshown = []
    for task_id in {run.task for run in c.runs}:
        task = c.index.tasks.get(task_id)
        text = _read(c.vault.root / task.path) if task else None
        if text is not None and blocks.find_block(text, blocks.RUNS) is None:
            unshown.append(task_id)
    if not missing and not unshown:
        return Check("notes and digests", OK, "every run is shown")
    parts = []
    if missing:
        parts.append(f"digests missing for {_listing([d.isoformat() for d in missing])}")
    if unshown:
        parts.append(f"runs not shown in {_listing(sorted(unshown))}")
    fix = f"vaultsched digest {missing[0].isoformat()}" if missing else "the next run rewrites it"
    return Check("notes and digests", WARN, "; ".join(parts), fix)


def orphans(c: Context) -> Check:
    known = set(c.index.ids)
    gone = sorted({r.task for r in c.runs} - known)
    if not gone:
        return Check("ledger", OK, f"{len(c.runs)} runs, every task still in the vault")
    return Check(
        "ledger",
        WARN,
        f"runs of tasks no longer in the vault (history kept): {_listing(gone)}",
        "nothing to do if they were deleted on purpose; a rename made outside a running daemon"
        " is not followed: run the task once under its new name",
    )


def shared_firing(c: Context) -> Check:
    since = c.now - SHARED_FIRING_WINDOW
    hosts: dict[str, set[str]] = defaultdict(set)
    for run in c.runs:
        if run.trigger in (Trigger.SCHEDULE, Trigger.CATCH_UP) and run.started_at >= since:
            # A pool's runs were all fired by its one daemon, whichever worker ran them.
            hosts[run.task].add("a worker pool" if run.queue else run.host)
    shared = sorted(
        task_id
        for task_id, names in hosts.items()
        if len(names) > 1 and task_id in c.index.tasks and not c.index.tasks[task_id].hosts
    )
    if not shared:
        return Check("hosts", OK, "no unpinned task fired on two hosts this week")
    names = ", ".join(sorted(hosts[shared[0]]))
    return Check(
        "hosts",
        WARN,
        f"fired by more than one host: {_listing(shared)} ({shared[0]}: {names})",
        f"pin it: add `host: <name>` to the front matter of {shared[0]}",
    )


def worker_pool(c: Context) -> Check:
    config = c.vault.config.executor
    if not config.pool:
        return Check("worker pool", OK, "none: runs execute on the daemon's host")
    from vaultsched.adapters.redisqueue import RedisError, pool_key, pool_state, shown_url
    from vaultsched.core.errors import VaultschedError

    where = shown_url(config.redis_url)
    try:
        pool_key()
        workers, queued = pool_state(config.redis_url, config.queue_prefix)
    except VaultschedError as exc:
        return Check("worker pool", FAIL, str(exc), "vaultsched worker --new-key")
    except RedisError as exc:
        fix = "start Redis, or correct [executor] redis_url"
        return Check("worker pool", FAIL, f"Redis at {where} cannot be reached: {exc}", fix)
    waiting = ", ".join(f"{name} {count}" for name, count in sorted(queued.items()) if count)
    detail = f"Redis at {where}: {len(workers)} worker(s) {_listing(sorted(workers))}"
    detail += f"; waiting: {waiting}" if waiting else "; no run waiting"
    if not workers:
        return Check("worker pool", WARN, detail, "start `vaultsched worker` on a worker host")
    return Check("worker pool", OK, detail)


def stale_locks(c: Context) -> Check:
    """The daemon's and the per-task locks are flock()s, freed by the kernel when a process
    dies; git's index.lock is a plain file that a crashed git leaves behind."""
    index_lock = c.vault.root / ".git" / "index.lock"
    try:
        age = time.time() - index_lock.stat().st_mtime
    except OSError:
        return Check("locks", OK, "none stale")
    if age <= STALE_INDEX_LOCK.total_seconds():
        return Check("locks", OK, ".git/index.lock is held right now (a git command is running)")
    return Check(
        "locks",
        WARN,
        f".git/index.lock is {age / 60:.0f} minutes old: commits are blocked",
        "if no git is running: rm .git/index.lock",
    )


def git_state(c: Context) -> Check:
    git = Git(c.vault.root, c.vault.host)
    if not c.vault.config.git.commit:
        return Check("git", OK, "commits are off (config [git] commit = false)")
    if not git.usable and git.refusal:
        return Check(
            "git",
            FAIL,
            git.refusal,
            "if it is not yours: remove that .git, or the key (git config --local --unset KEY)",
        )
    if not git.usable:
        return Check("git", WARN, "not a git repository: runs are not committed", "git init")
    busy = git.operation_in_progress()
    if busy:
        return Check(
            "git", WARN, f"{busy} is in progress: commits wait for it", "finish or abort it"
        )
    try:
        branch = git.branch()
    except GitError:
        return Check(
            "git", WARN, "detached HEAD: commits are made but on no branch", "git switch -"
        )
    return Check("git", OK, f"on branch {branch}")


def git_ignores(c: Context) -> Check:
    """The full logs and this host's state must stay out of `git add -A`."""
    git = Git(c.vault.root, c.vault.host)
    if not git.usable:
        return Check("git ignore", OK, "no repository")
    try:
        exposed = git.not_ignored(list(layout.MUST_IGNORE))
    except GitError as exc:
        return Check("git ignore", WARN, f"git check-ignore failed: {exc}")
    if not exposed:
        return Check("git ignore", OK, "logs and state are ignored by git")
    return Check(
        "git ignore",
        FAIL,
        f"git would commit {_listing(exposed)} (unredacted logs)",
        "run any vaultsched command that runs a task (it adds its rules to .git/info/exclude),"
        f" or restore {layout.GITIGNORE}",
    )


def git_remote(c: Context) -> Check:
    """`[git] remote` must be one of the repository's own remotes, or sync refuses."""
    config = c.vault.config.git
    git = Git(c.vault.root, c.vault.host)
    if not config.sync or not git.usable:
        return Check("git remote", OK, "sync is off")
    try:
        problem = git.sync.remote_problem(config.remote)
    except GitError as exc:
        problem = str(exc)
    if problem and "own config" in problem:
        fix = "git config --local --unset KEY; set it with git config --global if you need it"
        return Check("git remote", FAIL, f"{problem}: sync is refused", fix)
    if problem:
        # The value itself is not echoed into the fix: it may be an attacker's.
        fix = "set [git] remote to one of the remotes `git remote -v` lists (or add one)"
        return Check("git remote", FAIL, f"{problem}: sync is refused", fix)
    return Check("git remote", OK, f"syncing with {config.remote}")


def watch_limit(c: Context) -> Check:
    try:
        limit = int(Path("/proc/sys/fs/inotify/max_user_watches").read_text())
    except (OSError, ValueError):
        return Check("inotify", OK, "no inotify limit to check on this system")
    folders = sum(1 for _ in _folders(c.vault.root))
    if folders <= limit * WATCH_HEADROOM:
        return Check("inotify", OK, f"{folders} folders watched of {limit} allowed")
    return Check(
        "inotify",
        WARN,
        f"{folders} folders against a limit of {limit} watches: edits may be missed",
        "sudo sysctl fs.inotify.max_user_watches=524288 (and in /etc/sysctl.d/)",
    )


def conflict_copies(c: Context) -> Check:
    copies = sorted(s.path for s in c.index.skipped if "conflict" in s.reason)
    if not copies:
        return Check("sync copies", OK, "no sync-conflict copies")
    return Check(
        "sync copies",
        WARN,
        f"sync-conflict copies (never run): {_listing(copies)}",
        "merge each into its original note and delete the copy",
    )


def digest_folder_tasks(c: Context) -> Check:
    found = sorted(s.path for s in c.index.skipped if s.reason == IN_DIGESTS)
    if not found:
        return Check("digest folder", OK, "no task notes inside it")
    return Check(
        "digest folder",
        FAIL,
        f"task notes inside the digest folder, never run: {_listing(found)}",
        "move them out, or set [digest] folder to a folder of their own",
    )


def recovered_saves(c: Context) -> Check:
    try:
        saved = [e.name for e in statefs.entries(c.vault.root, layout.RECOVERED_DIR)]
    except OSError as exc:  # a link: the "state links" check names it
        return Check("recovered saves", WARN, f"not looked at: {exc}")
    if not saved:
        return Check("recovered saves", OK, "no displaced saves waiting")
    return Check(
        "recovered saves",
        WARN,
        f"saves that raced a vaultsched write and could not be merged back: {_listing(saved)}",
        f"copy what you want from {layout.RECOVERED_DIR}/ into the note, then delete the file",
    )


def state_links(c: Context) -> Check:
    """A symlink under .vaultsched/ would carry logs, ledger or locks out of the vault; every
    one is refused, so the runs, logs or locks behind it are not written or read at all."""
    found = statefs.links(c.vault.root)
    if not found:
        return Check("state links", OK, f"no symlinks under {layout.DIR}/")
    return Check(
        "state links",
        FAIL,
        f"symlinks under {layout.DIR}/, refused (what lies behind them is not written or read):"
        f" {_listing(found)}",
        f"remove the link (rm {found[0]}); vaultsched makes a real folder or file in its place",
    )


def future_records(c: Context) -> Check:
    """Ledger lines no view may go by: records dated past this host's clock (a clock far
    ahead, or a forged line), which the planner ignores, and lines that are no valid record
    (a field of the wrong type or out of range), which every view skips. Neither holds a
    task back or stops a command, but someone should look."""
    ledger = Ledger(c.vault.root, c.vault.host)
    ahead, unreadable = _future_dated(c, ledger), _unreadable(c, ledger)
    if not ahead and not unreadable:
        return Check("ledger dates", OK, "no record dated in the future, none unreadable")
    minutes = SKEW.total_seconds() / 60
    found = []
    if ahead:
        found.append(
            f"records dated over {minutes:.0f} minutes in the future, ignored for planning:"
            f" {_listing(ahead)}"
        )
    if unreadable:
        found.append(f"lines that are no valid record, skipped: {_listing(unreadable)}")
    clock = "check that host's clock; " if ahead else ""
    fix = f"{clock}a line vaultsched did not write is forged or damaged: delete it"
    return Check("ledger dates", FAIL, "; ".join(found), fix)


def ping_failures(c: Context) -> Check:
    """The last failed ping of each URL that has not got through since (the past week)."""
    failed = pinger.failures(c.vault.root, c.now)
    if not failed:
        return Check("pings", OK, "no ping failed this week")
    lines = [f"{f.who}: {f.url} at {f.at:%Y-%m-%d %H:%M}Z: {f.error}" for f in failed]
    return Check(
        "pings",
        WARN,
        f"{len(failed)} URL(s) not reached: {_listing(lines, 3)}",
        "check the URL and the network; it clears once a ping gets through",
    )


def _future_dated(c: Context, ledger: Ledger) -> list[str]:
    return sorted(
        {
            f"{path.relative_to(c.vault.root).as_posix()}: {run.task}"
            for path, run in ledger.runs_by_file()
            if future_dated(run, c.now)
        }
    )


def _unreadable(c: Context, ledger: Ledger) -> list[str]:
    """`file:line (why)` of each line that is no valid record."""
    return [
        f"{path.relative_to(c.vault.root).as_posix()}:{number} ({why})"
        for path, number, why in ledger.rejected()
    ]


CHECKS: tuple[Callable[[Context], Check], ...] = (
    invalid_notes,
    untrusted,
    config_trust,
    malformed_blocks,
    conflict_markers,
    missing_views,
    orphans,
    shared_firing,
    worker_pool,
    stale_locks,
    git_state,
    git_ignores,
    git_remote,
    watch_limit,
    conflict_copies,
    digest_folder_tasks,
    recovered_saves,
    state_links,
    future_records,
    ping_failures,
)


def _read(path: Path) -> str | None:
    try:
        return read_note_bytes(path).decode("utf-8")  # never a FIFO's endless wait
    except (OSError, UnicodeDecodeError):
        return None


def _folders(root: Path) -> Iterator[str]:
    """The folders the watcher would watch: every one that can hold notes."""
    for dirpath, dirnames, _ in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        yield dirpath
