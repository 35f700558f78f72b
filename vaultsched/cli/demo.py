"""`vaultsched demo`: the bundled example vault, copied, git-initialised and sped up, and what
the demo prints as its runs land."""

from __future__ import annotations

import logging
import shlex
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from rich.markup import escape as markup_escape

from vaultsched.adapters.config import host_name
from vaultsched.adapters.git import Git
from vaultsched.adapters.vault import build_index
from vaultsched.core.errors import VaultschedError
from vaultsched.core.frontmatter_edit import set_scalar
from vaultsched.core.model import FAILURES, Run, Status, Trigger
from vaultsched.core.taskfile import front_matter_text
from vaultsched.core.views import clip, fix_command
from vaultsched.trust.config import open_vault, trust_config
from vaultsched.trust.store import trust_created

# Fast enough to watch, slow enough to read: one speed per scheduled task, in path order (the
# example vault's: Archive done items, Daily briefing, Inbox briefing, Journal check, Vault
# stats, Weekly cleanup report). Every task has fired within the first 30 seconds.
SPEEDS = ("every 30s", "every 20s", "every 15s", "every 20s", "every 10s", "every 30s")
# Left untrusted on purpose, so the first minute shows what an untrusted task looks like and
# the line that trusts it. It edits a note: the kind of task to read before trusting.
LEFT_UNTRUSTED = frozenset({"Tasks/Archive done items.md"})
DETAIL_SHOWN = 160  # characters of a failed run's last output line
_STATUS_STYLE = {
    Status.SUCCESS: "green",
    Status.SKIPPED: "yellow",
    Status.MISSED: "yellow",
    Status.UNTRUSTED: "magenta",
    Status.AWAITING_APPROVAL: "magenta",
}
_WAITING = {
    Status.UNTRUSTED: ("trust", "not run until you trust it:"),
    Status.AWAITING_APPROVAL: ("approve", "waits for your approval:"),
}
_REMEMBERED_RUNS = 500  # run id -> task, to name the upstream task of a chained run


@dataclass(frozen=True)
class Prepared:
    root: Path
    untrusted: tuple[str, ...]  # task ids left untrusted on purpose


def bundled_vault() -> Path:
    source = Path(__file__).resolve().parents[2] / "vault"
    if not (source / ".obsidian").is_dir():
        raise VaultschedError(
            f"the example vault is not at {source}: run the demo from a source checkout (make demo)"
        )
    return source


def prepare(target: Path | None = None, source: Path | None = None) -> Prepared:
    """Copy the example vault to `target` (default: a new temporary folder) and make it ready."""
    origin = source or bundled_vault()
    if target is None:
        target = Path(tempfile.mkdtemp(prefix="vaultsched-demo-"))
    elif target.exists() and any(target.iterdir()):
        raise VaultschedError(f"{target} is not empty: choose a new folder for the demo")
    shutil.copytree(origin, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".git"))
    sped_up = speed_up(target)
    git = Git(target, host_name())
    git.init()
    git.commit_all("vaultsched demo vault")
    if not sped_up:
        raise VaultschedError(f"no scheduled task notes found in {origin}")
    trust_config(target)  # the bundled config, as shipped
    vault = open_vault(target)
    tasks = build_index(vault).tasks.values()
    trust_created(vault, [task.path for task in tasks if task.path not in LEFT_UNTRUSTED])
    left = tuple(sorted(task.id for task in tasks if task.path in LEFT_UNTRUSTED))
    return Prepared(target.resolve(), left)


def speed_up(root: Path) -> list[str]:
    """Give every scheduled task a seconds-level `every` schedule (one-line edits)."""
    changed: list[str] = []
    notes = sorted(p for p in root.rglob("*.md") if not any(s.startswith(".") for s in p.parts))
    for path in notes:
        text = path.read_text(encoding="utf-8")
        front = yaml.safe_load(front_matter_text(text) or "") or {}
        if not isinstance(front, dict) or "command" not in front or "schedule" not in front:
            continue
        speed = SPEEDS[len(changed) % len(SPEEDS)]
        # The note's own comment (if any) still describes the real schedule: say so first.
        value = f'"{speed}"  # sped up for the demo; really {front["schedule"]!r}'
        path.write_text(set_scalar(text, "schedule", value), encoding="utf-8")
        changed.append(str(path.relative_to(root)))
    return changed


def program() -> str:
    """How the person runs this vaultsched: by name when that is what their PATH finds."""
    called = Path(sys.argv[0])
    if called.name != "vaultsched":  # `python -m vaultsched`
        return f"{shlex.quote(sys.executable)} -m vaultsched"
    found = shutil.which("vaultsched")
    if found is not None and Path(found).resolve() == called.resolve():
        return "vaultsched"
    return shlex.quote(str(called.absolute()))  # `make demo`: .venv/bin is not on PATH


def show_daemon_start() -> None:
    """Of the daemon's log the demo shows warnings and the line that says it is up (`indexed N
    tasks ...`); the lines it prints itself say what each run did."""
    root = logging.getLogger()
    root.setLevel(logging.INFO)
    for handler in root.handlers:
        handler.addFilter(_start_or_warning)


def _start_or_warning(record: logging.LogRecord) -> bool:
    started = record.name == "vaultsched.daemon" and str(record.msg).startswith("indexed ")
    return started or record.levelno >= logging.WARNING


@dataclass
class Narrator:
    """The demo's lines (rich markup): one per run as it lands, and for a state that waits for
    a person the exact command that resolves it, once per task until its state changes."""

    program: str  # `vaultsched --vault PATH`, quoted, as the person would type it
    hinted: dict[str, Status] = field(default_factory=dict)
    tasks_by_run: dict[str, str] = field(default_factory=dict)

    @classmethod
    def for_vault(cls, root: Path) -> Narrator:
        return cls(f"{program()} --vault {shlex.quote(str(root))}")

    def welcome(self, prepared: Prepared) -> list[str]:
        lines = [
            f"Demo vault: [bold]{markup_escape(str(prepared.root))}[/bold]",
            "Open it in Obsidian (Open folder as vault) and watch the task notes and Digests/.",
        ]
        for task in prepared.untrusted:
            command = fix_command("trust", task, self.program)
            lines += [
                f"Left untrusted on purpose (read it first): {markup_escape(task)}",
                f"  to trust it: {markup_escape(command)}",
            ]
        lines.append("Runs appear below as they land. Ctrl-C stops the daemon.\n")
        return lines

    def lines(self, run: Run) -> list[str]:
        self._remember(run)
        style = _STATUS_STYLE.get(run.status, "red")
        when = run.started_at.astimezone().strftime("%H:%M:%S")
        status = f"[{style}]{run.status:<17}[/{style}]"
        line = f"{when}  {status}  {markup_escape(run.task)}"
        if run.duration_s is not None and run.status not in _WAITING:
            line += f"  {run.duration_s:.1f}s"
        upstream = self.tasks_by_run.get(run.upstream_run)
        if run.trigger is Trigger.AFTER and upstream is not None:
            line += f"  (after {markup_escape(upstream)})"
        elif run.trigger is not Trigger.SCHEDULE:
            line += f"  ({run.trigger})"
        detail = _detail(run)
        if detail:
            line += f"  — {markup_escape(detail)}"
        return [line, *self._hint(run)]

    def _remember(self, run: Run) -> None:
        self.tasks_by_run[run.run_id] = run.task
        if len(self.tasks_by_run) > _REMEMBERED_RUNS:
            del self.tasks_by_run[next(iter(self.tasks_by_run))]

    def _hint(self, run: Run) -> list[str]:
        told = self.hinted.get(run.task)
        self.hinted[run.task] = run.status
        if run.status not in _WAITING or told is run.status:
            return []
        verb, why = _WAITING[run.status]
        return [f"          {why} {markup_escape(fix_command(verb, run.task, self.program))}"]


def _detail(run: Run) -> str:
    """Why a run failed, in its own words: the last line it printed, else its message."""
    if run.status not in FAILURES and run.status is not Status.BLOCKED:
        return ""
    printed = [line.strip() for line in run.output_tail.splitlines() if line.strip()]
    return clip(printed[-1] if printed else run.message, DETAIL_SHOWN)
