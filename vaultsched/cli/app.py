"""The command line: parse, call one core function, print, return an exit code."""

# No `from __future__ import annotations` here: typer reads each command's parameters from its
# annotations, and strings it would evaluate four times per command on every start (an eighth
# of `--help`'s instructions). The few names only a type checker knows are quoted instead.

import copy
import dataclasses
import functools
import json
import logging
import os
import signal
import sys
import traceback
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from typer._click.core import Command
from typer.core import TyperOption
from typer.exceptions import TyperException

from vaultsched import __version__
from vaultsched.adapters.terminal import SafeFormatter, escape
from vaultsched.cli.helptext import HelpCommand, HelpGroup, examples
from vaultsched.core.errors import VaultschedError

if TYPE_CHECKING:
    from vaultsched.adapters.console import SafeConsole
    from vaultsched.adapters.service import ServiceResult
    from vaultsched.adapters.vault import Index, Vault
    from vaultsched.cli.results import TrustedTaskRow
    from vaultsched.cli.show import Clock
    from vaultsched.core.model import Run, Task
    from vaultsched.runtime.messages import Job
    from vaultsched.runtime.oneshot import OneShot
    from vaultsched.trust.config import TrustedConfig

# Importing this module declares the commands and nothing more, so that `--help` or a mistyped
# option answers without loading the runtime, git, the ledger, yaml, croniter or rich: each
# command (and each helper below) imports what it uses in its own body. Every `vaultsched` is
# a fresh process (the git hooks start one per commit) that pays only for its own command.
# tests/test_startup.py checks what the root import and `--help` load.

app = typer.Typer(
    name="vaultsched",
    help="Run scheduled jobs that live as notes in an Obsidian vault.",
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    no_args_is_help=True,
    cls=HelpGroup,
    epilog=examples(
        "vaultsched init ~/Notes",
        "vaultsched --vault ~/Notes list",
        "vaultsched --vault ~/Notes run-now Backup",
    ),
)

service_app = typer.Typer(
    help="A systemd --user unit for the daemon (or the cron line).",
    no_args_is_help=True,
    cls=HelpGroup,
    epilog=examples("vaultsched --vault ~/Notes service install", "vaultsched service status"),
)
app.add_typer(service_app, name="service")
hooks_app = typer.Typer(
    help="Git hooks for the vault's repository.",
    no_args_is_help=True,
    cls=HelpGroup,
    epilog=examples("vaultsched --vault ~/Notes hooks install"),
)
app.add_typer(hooks_app, name="hooks")

VaultOption = Annotated[
    Path | None,
    typer.Option(
        "--vault",
        help="The vault folder (default: $VAULTSCHED_VAULT, else the current folder's vault).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
TaskArg = Annotated[
    str, typer.Argument(metavar="TASK", help="Task id, note path, or unique note name.")
]


def _print_version(asked: bool) -> None:
    if asked:  # eager: before click asks for a command, so `--version` alone works
        _out().print(f"vaultsched {__version__}", markup=False)
        raise typer.Exit(0)


@app.callback()
def _root(
    ctx: typer.Context,
    vault: VaultOption = None,
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version.", callback=_print_version, is_eager=True
        ),
    ] = False,
) -> None:
    ctx.obj = vault


@functools.cache
def _console(*, stderr: bool) -> "SafeConsole":
    """Every string printed goes through `terminal.escape` (SafeConsole): vault text may hold
    ESC. Made on first use: rich is loaded only by a command that prints through it."""
    from vaultsched.adapters.console import SafeConsole

    return SafeConsole(stderr=stderr, highlight=False)


def _out() -> "SafeConsole":
    return _console(stderr=False)


def _err() -> "SafeConsole":
    return _console(stderr=True)


def _plain_err(message: str) -> None:
    """One line on stderr as it is written, escaped: no rich, so no markup either (a folder
    named `a[/b]` is shown, not taken for a closing tag), and nothing loaded to print it."""
    print(escape(message), file=sys.stderr)


def _vault(ctx: typer.Context) -> "Vault":
    from vaultsched.trust.config import open_vault

    return open_vault(ctx.find_root().obj)


def _clock(vault: "Vault", now: datetime) -> "Clock":
    """Times as `_out()` shows them: short on a terminal, in the vault's zone."""
    from vaultsched.cli.show import Clock

    return Clock(now, vault.config.timezone, short=_out().on_terminal)


def _print_json(data: object) -> None:
    """The one way `--json` output is written: the whole document on stdout, escaped."""
    from vaultsched.adapters.terminal import dumps_json

    sys.stdout.write(dumps_json(data) + "\n")


def _fail(message: str, code: int = 1) -> NoReturn:
    raise VaultschedError(message, exit_code=code)


@app.command(
    "init",
    cls=HelpCommand,
    epilog=examples("vaultsched init ~/Notes", "vaultsched init --json"),
)
def init_cmd(
    path: Annotated[
        Path, typer.Argument(metavar="PATH", help="Folder to make a vault.", show_default=False)
    ] = Path(),
    as_json: JsonOption = False,
) -> None:
    """Make PATH (default: the current folder) a vault: config, .gitignore, .gitattributes, an
    example task, git."""
    from vaultsched.cli.results import init_report
    from vaultsched.cli.scaffold import init_vault

    created = init_vault(path)
    for note in created.notes:
        _err().print(f"vaultsched: note: {note}")
    if as_json:
        _print_json(init_report(created))
        return
    for rel in created.files:
        _out().print(f"created {rel}", markup=False)
    if created.git_initialised:
        _out().print("initialised a git repository")
    for hook in created.hooks:
        _out().print(f"git hook {hook.message}", markup=False)
    if not created.files:
        _out().print(f"{created.root} is already a vault: nothing to do")


@app.command(
    "list",
    cls=HelpCommand,
    epilog=examples("vaultsched list", "vaultsched --vault ~/Notes list --json"),
)
def list_cmd(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Every task: schedule, enabled, next run, last run and status, validity."""
    from vaultsched.adapters.clock import utc_now
    from vaultsched.cli.listing import list_rows_now

    vault = _vault(ctx)
    now = utc_now()
    rows = list_rows_now(vault, now)  # the daemon's, when it runs and can answer
    if as_json:
        _print_json(rows)
        return
    if not rows:
        _plain_err(f"no task notes in {vault.root} (a task note has a `command` property)")
        return
    from vaultsched.cli.show import show_list

    show_list(_out(), rows, _clock(vault, now))


@app.command(
    "next",
    cls=HelpCommand,
    epilog=examples(
        "vaultsched next",
        "vaultsched next Backup --count 3",
        "vaultsched next Backup --from 2026-03-29T01:30 --json",
    ),
)
def next_cmd(
    ctx: typer.Context,
    task: Annotated[
        str | None, typer.Argument(metavar="TASK", help="One task (default: all).")
    ] = None,
    from_: Annotated[
        str | None,
        typer.Option(
            "--from", metavar="ISO-TIME", help="Start after this time; naive is the task's zone."
        ),
    ] = None,
    count: Annotated[
        int, typer.Option("--count", "-n", metavar="N", min=1, max=10000, help="How many.")
    ] = 5,
    as_json: JsonOption = False,
) -> None:
    """The next fire times, strictly after --from (default: now)."""
    from vaultsched.adapters.clock import utc_now
    from vaultsched.adapters.vault import planned_index
    from vaultsched.cli.reports import upcoming
    from vaultsched.cli.show import show_next

    vault = _vault(ctx)
    now = utc_now()
    index = planned_index(vault, now)
    after = _parse_from(from_) if from_ else now
    if task is not None:
        chosen = index.task(task)
        if chosen.manual:
            _fail(f"{chosen.id} has no schedule: a manual task runs only with `vaultsched run-now`")
        tasks = [chosen]
    else:
        tasks = [t for t in index.tasks.values() if t.enabled]
    fires, problems = upcoming(tasks, after, count)
    if as_json:
        _print_json([f.as_row() for f in fires])
    elif fires:
        show_next(_out(), [f.as_row() for f in fires], _clock(vault, now))
    for problem in problems:
        _err().print(f"vaultsched: {problem}", markup=False, soft_wrap=True)
    if problems:
        raise typer.Exit(1)


def _parse_from(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise VaultschedError(
            f"--from: not an ISO 8601 time: {text!r} (e.g. 2026-03-29T01:30)"
        ) from None


@app.command(
    "validate",
    cls=HelpCommand,
    epilog=examples(
        "vaultsched validate",
        "vaultsched validate Tasks/Backup.md Reports/",
        "vaultsched validate --staged --json",
    ),
)
def validate_cmd(
    ctx: typer.Context,
    paths: Annotated[
        list[str] | None,
        typer.Argument(metavar="PATH", help="Notes or folders (default: the vault)."),
    ] = None,
    staged: Annotated[bool, typer.Option("--staged", help="Check what git has staged.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Check task notes; print each problem as path:line: message; exit 1 on any error."""
    from vaultsched.adapters.clock import utc_now
    from vaultsched.cli.validate import validate_staged, validate_vault
    from vaultsched.core.views import counted

    vault = _vault(ctx)
    checked, problems = (
        validate_staged(vault) if staged else validate_vault(vault, utc_now(), paths or [])
    )
    if as_json:
        _print_json([dataclasses.asdict(p) for p in problems])
    for problem in [] if as_json else problems:
        _out().print(str(problem), markup=False, soft_wrap=True)
    errors = sum(p.severity == "error" for p in problems)
    warnings = sum(p.severity == "warning" for p in problems)
    found = f"{counted(errors, 'error')}, {counted(warnings, 'warning')}"
    _err().print(f"{counted(checked, 'task note')} checked: {found}")
    if errors:
        raise typer.Exit(1)


JsonRunsOption = Annotated[
    bool, typer.Option("--json", help="Print the runs as JSON; task output goes to stderr.")
]


@app.command(
    "run-now",
    cls=HelpCommand,
    epilog=examples(
        "vaultsched run-now Backup",
        "vaultsched run-now Tasks/Backup.md --no-chain",
        "vaultsched run-now Backup --json 2>backup.log",
    ),
)
def run_now_cmd(
    ctx: typer.Context,
    task: TaskArg,
    no_chain: Annotated[
        bool, typer.Option("--no-chain", help="Do not start the tasks that run after it.")
    ] = False,
    as_json: JsonRunsOption = False,
) -> None:
    """Run one task now, then the tasks that run after it (`after`); stream their output,
    record and commit the results."""
    from vaultsched.adapters.vault import build_index
    from vaultsched.core.model import Trigger
    from vaultsched.runtime.messages import Job
    from vaultsched.runtime.oneshot import one_shot

    vault = _vault(ctx)
    index = build_index(vault)
    job = Job(index.task(task), Trigger.MANUAL)
    _run_in_foreground(one_shot(vault), job, None if no_chain else index, as_json=as_json)


def _run_in_foreground(
    shot: "OneShot", job: "Job", chain: "Index | None", *, as_json: bool
) -> None:
    """Run with output streamed here, land, commit; exit 1 if any run did not end well. With
    `as_json` the tasks' output goes to stderr: stdout holds the JSON document alone."""
    from vaultsched.adapters.terminal import echo_stream
    from vaultsched.cli.reports import history_row
    from vaultsched.core.model import Status

    stream = sys.stderr if as_json else sys.stdout
    stream.flush()
    echo = echo_stream(stream.buffer, is_terminal=stream.isatty())
    done = shot.run(job, echo, chain=chain, report=_said)
    if as_json:
        _print_json([history_row(run) for run in done])
    # Exit 0 only if each run ended so (skipped: it did not run).
    if any(run.status not in (Status.SUCCESS, Status.AWAITING_APPROVAL) for run in done):
        raise typer.Exit(1)


def _said(run: "Run") -> None:
    detail = f"exit {run.exit_code}" if run.exit_code is not None else run.message
    duration = f", {run.duration_s:.1f}s" if run.duration_s is not None else ""
    _err().print(f"vaultsched: {run.status} {run.task} ({detail}{duration})", markup=False)


@app.command(
    "trust",
    cls=HelpCommand,
    epilog=examples(
        "vaultsched trust Backup",
        "vaultsched trust --all --yes",
        "vaultsched trust --config --json",
    ),
)
def trust_cmd(
    ctx: typer.Context,
    *,  # typer passes every parameter by name
    tasks: Annotated[
        list[str] | None,
        typer.Argument(metavar="TASK", help="Task ids, note paths, or unique note names."),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every valid task of the vault.")] = False,
    config: Annotated[
        bool,
        typer.Option(
            "--config", help="The vault config's keys that run, send or pick git's remote."
        ),
    ] = False,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Record without showing what changed.")
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Show what changed since a task was last trusted, then trust it as it is now (its
    settings, its body if piped to it, every vault file its command reaches). Never prompts."""
    from vaultsched.adapters.vault import build_index
    from vaultsched.cli.results import TrustReport, trusted_config_row
    from vaultsched.trust.config import trust_config

    vault = _vault(ctx)
    index = build_index(vault)
    if (all_ and tasks) or not (all_ or tasks or config):
        _fail("name the tasks to trust, or use --all (and/or --config)", code=2)
    trusted = trust_config(vault.root) if config else None
    if trusted and not as_json:
        _show_trusted_config(trusted)
    chosen = list(index.tasks.values()) if all_ else [index.task(t) for t in tasks or []]
    rows = _trust_tasks(vault, chosen, show_changes=not yes, quiet=as_json) if chosen else []
    if as_json:
        _print_json(
            TrustReport(tasks=rows, config=trusted_config_row(trusted) if trusted else None)
        )


def _trust_tasks(
    vault: "Vault", chosen: "list[Task]", *, show_changes: bool, quiet: bool
) -> "list[TrustedTaskRow]":
    """Trust the tasks as they are now; print what changed and what is trusted unless
    `quiet` (warnings go to stderr always)."""
    from vaultsched.cli.results import trusted_task_row
    from vaultsched.trust.store import TrustStore, take_snapshot

    store = TrustStore()
    # Read once: what is shown is exactly what is recorded, whatever a sync does meanwhile.
    unique = {task.id: task for task in chosen}
    snapshots = {ident: take_snapshot(vault.root, task) for ident, task in unique.items()}
    rows = []
    for task in unique.values():
        snapshot = snapshots[task.id]
        changes = store.changes(vault.root, task.id, snapshot) if show_changes else []
        rows.append(trusted_task_row(task, snapshot, changes))
        for line in [] if quiet else changes:
            _out().print(line, markup=False, soft_wrap=True)
        for warning in snapshot.warnings:
            _err().print(f"vaultsched: warning: {task.id}: {warning}", markup=False, soft_wrap=True)
    store.record(vault.root, snapshots)
    for row in [] if quiet else rows:
        also = f"  (+ {', '.join(row['files'])})" if row["files"] else ""
        shown = escape(_shown_command(row["command"]), one_line=True)
        _out().print(f"trusted {row['task']}: {shown}{also}", markup=False, soft_wrap=True)
    return rows


def _shown_command(command: str | list[str]) -> str:
    return command if isinstance(command, str) else json.dumps(command)


def _show_trusted_config(trusted: "TrustedConfig") -> None:
    """The sensitive values just trusted (escaped), and what changed since the last trust."""
    from vaultsched.core import layout
    from vaultsched.trust.config import show

    if not trusted.values:
        _out().print(f"nothing in {layout.CONFIG} needs trust", markup=False)
        return
    _out().print(f"{layout.CONFIG}:", markup=False)
    for label, value in trusted.values:
        _out().print(f"  {label} = {show(value)}", markup=False, soft_wrap=True)
    for rel, sha in sorted(trusted.files.items()):  # what the notify command runs, pinned
        _out().print(f"  covers {rel} (sha256 {sha[:12]})", markup=False, soft_wrap=True)
    if trusted.first:
        _out().print("first trust of this vault's config on this machine", markup=False)
    elif trusted.changes:
        _out().print("changed since you last trusted it:", markup=False)
        for line in trusted.changes:
            _out().print(f"  {line}", markup=False, soft_wrap=True)
    else:
        _out().print("unchanged since you last trusted it", markup=False)
    _out().print("trusted the vault config (a running daemon takes it up when restarted)")


@app.command(
    "untrust",
    cls=HelpCommand,
    epilog=examples("vaultsched untrust Backup", "vaultsched untrust Backup Cleanup --json"),
)
def untrust_cmd(
    ctx: typer.Context,
    tasks: Annotated[
        list[str],
        typer.Argument(metavar="TASK", help="Task ids, note paths, or unique note names."),
    ],
    as_json: JsonOption = False,
) -> None:
    """Withdraw trust: the tasks will not run until trusted again."""
    from vaultsched.adapters.vault import build_index
    from vaultsched.cli.results import TaskRef, UntrustReport
    from vaultsched.trust.store import TrustStore

    vault = _vault(ctx)
    index = build_index(vault)
    ids = [index.resolve(t) for t in tasks]
    TrustStore().untrust(vault.root, ids)
    if as_json:
        _print_json(UntrustReport(tasks=[TaskRef(task=ident) for ident in ids]))
        return
    for ident in ids:
        _out().print(f"untrusted {ident}", markup=False)


def _settle_pending(ctx: typer.Context, task: str, outcome: str) -> "tuple[OneShot, Task, Run]":
    """Close the task's run that waits for approval, saying how; exit 1 if there is none."""
    from vaultsched.adapters.vault import build_index
    from vaultsched.runtime.oneshot import one_shot

    vault = _vault(ctx)
    chosen = build_index(vault).task(task)
    shot = one_shot(vault)
    pending = shot.settle(chosen, outcome)
    if pending is None:
        _fail(f"no run of {chosen.id} is waiting for approval")
    return shot, chosen, pending


@app.command(
    "approve",
    cls=HelpCommand,
    epilog=examples("vaultsched approve Deploy", "vaultsched approve Deploy --json"),
)
def approve_cmd(
    ctx: typer.Context,
    task: TaskArg,
    as_json: JsonRunsOption = False,
) -> None:
    """Run a task's pending `approval: required` run now (trigger `approved`)."""
    from vaultsched.adapters.vault import build_index
    from vaultsched.core.model import Trigger
    from vaultsched.runtime.messages import Job

    shot, chosen, pending = _settle_pending(ctx, task, "approved: run with trigger `approved`")
    upstream = shot.upstream(pending.upstream_run)
    job = Job(chosen, Trigger.APPROVED, pending.scheduled_for, upstream=upstream)
    _run_in_foreground(shot, job, build_index(shot.workspace.vault), as_json=as_json)


@app.command(
    "reject",
    cls=HelpCommand,
    epilog=examples("vaultsched reject Deploy", "vaultsched reject Deploy --json"),
)
def reject_cmd(ctx: typer.Context, task: TaskArg, as_json: JsonOption = False) -> None:
    """Drop a task's pending `approval: required` run."""
    from vaultsched.cli.results import rejected_row

    shot, chosen, pending = _settle_pending(ctx, task, "rejected")
    shot.commit_landed()
    if as_json:
        _print_json(rejected_row(pending))
    else:
        _out().print(f"rejected the pending run of {chosen.id}", markup=False)


@app.command(
    "history",
    cls=HelpCommand,
    epilog=examples("vaultsched history Backup", "vaultsched history Backup -n 5 --json"),
)
def history_cmd(
    ctx: typer.Context,
    task: TaskArg,
    limit: Annotated[
        int | None, typer.Option("-n", metavar="N", min=0, help="Only the last N runs.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Runs of a task from the ledger, oldest first."""
    from vaultsched.adapters.clock import utc_now
    from vaultsched.adapters.ledger import Ledger
    from vaultsched.adapters.vault import build_index
    from vaultsched.cli.reports import history_rows
    from vaultsched.cli.show import show_history

    vault = _vault(ctx)
    ident = build_index(vault).resolve(task)
    rows = history_rows(Ledger(vault.root, vault.host), ident, limit)
    if as_json:
        _print_json(rows)
        return
    if not rows:
        _err().print(f"{ident} has not run yet", markup=False)
        return
    show_history(_out(), rows, _clock(vault, utc_now()))


def _set_enabled(ctx: typer.Context, task: str, enabled: bool, as_json: bool) -> None:
    from vaultsched.adapters.notes import Outcome
    from vaultsched.adapters.vault import build_index
    from vaultsched.cli.results import EnabledRow
    from vaultsched.runtime.oneshot import one_shot

    vault = _vault(ctx)
    index = build_index(vault)
    ident = index.resolve(task)
    rel = index.tasks[ident].path if ident in index.tasks else f"{ident}.md"
    changed = one_shot(vault).set_enabled(ident, rel, enabled) is not Outcome.UNCHANGED
    if as_json:
        _print_json(EnabledRow(task=ident, path=rel, enabled=enabled, changed=changed))
    elif changed:
        _out().print(f"{ident}: enabled: {'true' if enabled else 'false'}", markup=False)
    else:
        _out().print(f"{ident} is already {'enabled' if enabled else 'paused'}", markup=False)


@app.command(
    "pause",
    cls=HelpCommand,
    epilog=examples("vaultsched pause Backup", "vaultsched pause Tasks/Backup.md --json"),
)
def pause_cmd(ctx: typer.Context, task: TaskArg, as_json: JsonOption = False) -> None:
    """Set `enabled: false` in the task note (a one-line edit) and commit."""
    _set_enabled(ctx, task, False, as_json)


@app.command(
    "resume",
    cls=HelpCommand,
    epilog=examples("vaultsched resume Backup", "vaultsched resume Tasks/Backup.md --json"),
)
def resume_cmd(ctx: typer.Context, task: TaskArg, as_json: JsonOption = False) -> None:
    """Set `enabled: true` in the task note (a one-line edit) and commit."""
    _set_enabled(ctx, task, True, as_json)


@app.command(
    "new",
    cls=HelpCommand,
    epilog=examples(
        'vaultsched new Backup --schedule "0 3 * * *" --command "restic backup ."',
        'vaultsched new Tidy --schedule "every 15m" --command "make tidy" --json',
    ),
)
def new_cmd(
    ctx: typer.Context,
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="Note name, created as Tasks/NAME.md.")
    ],
    schedule: Annotated[
        str | None,
        typer.Option("--schedule", metavar="SCHEDULE", help="Cron line, macro or `every 5m`."),
    ] = None,
    command: Annotated[
        str, typer.Option("--command", metavar="COMMAND", help="Shell command to run.")
    ] = "",
    as_json: JsonOption = False,
) -> None:
    """Create Tasks/NAME.md from a template (trusted: you wrote its command)."""
    from vaultsched.adapters.git import Edit
    from vaultsched.cli.results import NewTaskRow
    from vaultsched.cli.scaffold import create_task
    from vaultsched.runtime.oneshot import one_shot

    vault = _vault(ctx)
    rel = create_task(vault.root, name, schedule, command)
    ident = rel.removesuffix(".md")
    # vaultsched wrote the whole note just now: it is committed whole.
    one_shot(vault).commit([Edit(rel)], f"vaultsched: new {ident}")
    if as_json:
        _print_json(NewTaskRow(task=ident, path=rel, schedule=schedule, command=command))
    else:
        _out().print(f"created {rel}", markup=False)


@app.command(
    "digest",
    cls=HelpCommand,
    epilog=examples("vaultsched digest", "vaultsched digest 2026-03-29 --json"),
)
def digest_cmd(
    ctx: typer.Context,
    day: Annotated[
        str | None, typer.Argument(metavar="DATE", help="YYYY-MM-DD (default: today).")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Rebuild that day's digest note from the ledger and print its path."""
    from vaultsched.adapters.clock import utc_now
    from vaultsched.cli.results import digest_row
    from vaultsched.core.views import digest_path
    from vaultsched.runtime.oneshot import one_shot

    vault = _vault(ctx)
    if day is None:
        chosen = utc_now().astimezone(vault.config.timezone).date()
    else:
        try:
            chosen = date.fromisoformat(day)
        except ValueError:
            _fail(f"not a date: {day!r} (use YYYY-MM-DD)", 2)
    one_shot(vault).digest(chosen)
    where = str(vault.path(digest_path(vault, chosen)))
    if as_json:
        _print_json(digest_row(chosen, where))
    else:
        _out().print(where, markup=False, soft_wrap=True)


@app.command(
    "dashboard",
    cls=HelpCommand,
    epilog=examples("vaultsched dashboard", "vaultsched dashboard Boards/Tasks --json"),
)
def dashboard_cmd(
    ctx: typer.Context,
    path: Annotated[
        str | None,
        typer.Argument(metavar="PATH", help="In the vault (default: Tasks.base)."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Write an Obsidian Bases file with a table of every task; never over your own edits."""
    from vaultsched.adapters.notes import Outcome
    from vaultsched.cli.results import DashboardRow
    from vaultsched.core.dashboard import DashboardPathError, dashboard_path
    from vaultsched.runtime.oneshot import one_shot

    vault = _vault(ctx)
    try:
        rel = dashboard_path(path)
    except DashboardPathError as exc:
        _fail(f"dashboard: {exc}", 2)
    written = one_shot(vault).dashboard(rel) is not Outcome.UNCHANGED
    if as_json:
        _print_json(DashboardRow(path=rel, written=written))
    else:
        _out().print(f"wrote {rel}" if written else f"{rel} is up to date", markup=False)


@app.command(
    "run",
    cls=HelpCommand,
    epilog=examples(
        "vaultsched --vault ~/Notes run",
        "vaultsched run --once",
        "vaultsched run --dry-run --metrics 127.0.0.1:9464",
    ),
)
def run_cmd(
    ctx: typer.Context,
    once: Annotated[
        bool, typer.Option("--once", help="Fire what is due now (catch-up included) and exit.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Log what would fire; run nothing.")
    ] = False,
    metrics: Annotated[
        str | None,
        typer.Option(
            "--metrics", metavar="HOST:PORT", help="Serve Prometheus metrics at HOST:PORT."
        ),
    ] = None,
) -> None:
    """The daemon, in the foreground: fire every task on time and follow edits live."""
    from vaultsched.cli.listing import answer
    from vaultsched.core.convert import to_listen
    from vaultsched.runtime.daemon import Daemon, install_signal_handlers

    try:
        listen = None if metrics is None else to_listen(metrics)
    except ValueError as exc:
        _fail(f"--metrics {exc}", 2)
    vault = _vault(ctx)
    _daemon_logging()
    daemon = Daemon(vault, dry_run=dry_run, metrics=listen, answer=functools.partial(answer, vault))
    install_signal_handlers(daemon)
    daemon.run(once=once)


@app.command(
    "worker",
    cls=HelpCommand,
    epilog=examples(
        "vaultsched worker --new-key",
        "vaultsched --vault ~/Notes worker",
        "vaultsched worker --label gpu --label big-disk",
    ),
)
def worker_cmd(
    ctx: typer.Context,
    labels: Annotated[
        list[str] | None,
        typer.Option(
            "--label", metavar="L", help="Also take the runs of tasks with host: label:L."
        ),
    ] = None,
    new_key: Annotated[
        bool,
        typer.Option("--new-key", help="Write a new pool key for this user, and exit."),
    ] = False,
    burst: Annotated[
        bool, typer.Option("--burst", help="Take the runs waiting now, then exit.")
    ] = False,
) -> None:
    """A worker of the pool: run what the daemon sends through Redis, from this clone."""
    if new_key:
        from vaultsched.adapters.redisqueue import new_pool_key

        path = new_pool_key()
        _out().print(f"wrote {path}: copy it to the daemon's host and every worker", markup=False)
        return
    from vaultsched.runtime.worker import serve

    vault = _vault(ctx)
    _daemon_logging()
    serve(vault, tuple(labels or ()), burst=burst)


def _daemon_logging() -> None:
    root = logging.getLogger()
    for handler in root.handlers:
        handler.setFormatter(
            SafeFormatter("%(asctime)s vaultsched: %(message)s", "%Y-%m-%d %H:%M:%S")
        )
    root.setLevel(logging.INFO)


@app.command(
    "status",
    cls=HelpCommand,
    epilog=examples("vaultsched status", "vaultsched status --json"),
)
def status_cmd(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Is the daemon running; runs in progress, today's failures, what waits for you."""
    from vaultsched.adapters.clock import utc_now
    from vaultsched.adapters.vault import planned_index
    from vaultsched.cli.reports import status_report
    from vaultsched.cli.show import show_status

    vault = _vault(ctx)
    now = utc_now()
    report = status_report(vault, planned_index(vault, now), now)
    if as_json:
        _print_json(report)
        return
    show_status(_out(), report, _clock(vault, now))


@app.command(
    "demo",
    cls=HelpCommand,
    epilog=examples("vaultsched demo", "vaultsched demo ~/vaultsched-demo"),
)
def demo_cmd(
    folder: Annotated[
        Path | None,
        typer.Argument(
            metavar="FOLDER", help="Where to put the demo vault (default: a new temp folder)."
        ),
    ] = None,
) -> None:
    """Copy the example vault, git-init it, speed it up, and run the daemon in the foreground."""
    from vaultsched.cli import demo
    from vaultsched.runtime.daemon import Daemon, install_signal_handlers
    from vaultsched.trust.config import open_vault

    prepared = demo.prepare(folder)
    narrator = demo.Narrator.for_vault(prepared.root)
    for line in narrator.welcome(prepared):
        _out().print(line, soft_wrap=True)
    demo.show_daemon_start()

    def print_run(run: "Run") -> None:
        for line in narrator.lines(run):
            _out().print(line, soft_wrap=True)

    daemon = Daemon(open_vault(prepared.root), on_run=print_run)
    install_signal_handlers(daemon)
    daemon.run()
    _out().print(f"\nStopped. The vault stays at {prepared.root}", markup=False)


@app.command(
    "doctor",
    cls=HelpCommand,
    epilog=examples("vaultsched doctor", "vaultsched --vault ~/Notes doctor --json"),
)
def doctor_cmd(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Drift and health checks, each with its fix; exit 1 if any check fails."""
    from vaultsched.adapters.clock import utc_now
    from vaultsched.adapters.vault import planned_index
    from vaultsched.cli.doctor import diagnose

    vault = _vault(ctx)
    now = utc_now()
    checks = diagnose(vault, planned_index(vault, now), now)
    if as_json:
        _print_json([c.as_dict() for c in checks])
    else:
        style = {"ok": "green", "warn": "yellow", "fail": "red"}
        for c in checks:
            _out().print(f"[{style[c.status]}]{c.status:<4}[/] {c.name}: ", end="")
            _out().print(c.detail, markup=False, soft_wrap=True)
            if c.fix:
                _out().print(f"     fix: {c.fix}", markup=False, soft_wrap=True)
    if any(c.status == "fail" for c in checks):
        raise typer.Exit(1)


@app.command(
    "sync",
    cls=HelpCommand,
    epilog=examples("vaultsched sync", "vaultsched --vault ~/Notes sync --json"),
)
def sync_cmd(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Pull (rebase) from the remote, rebuild notes and digests from the merged ledger, push."""
    from vaultsched.adapters.git import GitError
    from vaultsched.cli.results import SyncRow
    from vaultsched.runtime.oneshot import one_shot
    from vaultsched.runtime.sync import Syncer, SyncError
    from vaultsched.trust.config import ignored_message

    vault = _vault(ctx)
    if vault.config.ignored:
        _err().print(
            f"vaultsched: {ignored_message(vault.root, vault.config.ignored)}", markup=False
        )
    shot = one_shot(vault)
    if not shot.workspace.git.usable:
        _fail(f"{vault.root} is not the top of a git repository")
    try:
        result = Syncer(shot.workspace, shot.lander, vault.config.git.sync_interval).sync_once()
    except (SyncError, GitError) as exc:
        _fail(f"sync failed: {exc}")
    remote = vault.config.git.remote
    if as_json:
        _print_json(SyncRow(remote=remote, pulled=result.pulled))
        return
    _out().print(f"synced with {remote}: {result.pulled} run(s) from other hosts", markup=False)


@hooks_app.command(
    "install",
    cls=HelpCommand,
    epilog=examples("vaultsched hooks install", "vaultsched --vault ~/Notes hooks install --json"),
)
def hooks_install_cmd(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Install vaultsched's git hooks, chaining any hook already there."""
    from vaultsched.adapters import githooks
    from vaultsched.adapters.git import Git, GitError
    from vaultsched.cli.results import hooks_report

    vault = _vault(ctx)
    try:
        installed = githooks.install(Git(vault.root, vault.host))
    except (OSError, GitError) as exc:
        _fail(str(exc))
    if as_json:
        _print_json(hooks_report(installed))
        return
    for line in installed.messages:
        _out().print(line, markup=False, soft_wrap=True)


@app.command(
    "reindex",
    cls=HelpCommand,
    epilog=examples("vaultsched reindex", "vaultsched --vault ~/Notes reindex --json"),
)
def reindex_cmd(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Ask this host's running daemon to re-read the whole vault (the post-merge hook does)."""
    from vaultsched.adapters.instance import InstanceLock
    from vaultsched.cli.results import ReindexRow

    vault = _vault(ctx)
    pid = InstanceLock(vault.root).signal_daemon(vault.host, signal.SIGHUP)
    if as_json:
        _print_json(ReindexRow(signalled=pid is not None, pid=pid))
    elif pid is None:
        _out().print("no daemon is running for this vault on this host")
    else:
        _out().print(f"asked the daemon (pid {pid}) to re-read the vault")


def _print_service(result: "ServiceResult", as_json: bool) -> None:
    from vaultsched.cli.results import service_row

    if as_json:
        _print_json(service_row(result))
        return
    for line in result.messages:
        _out().print(line, markup=False, soft_wrap=True)


@service_app.command(
    "install",
    cls=HelpCommand,
    epilog=examples("vaultsched --vault ~/Notes service install"),
)
def service_install_cmd(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Write and enable a systemd --user unit running this vault's daemon."""
    from vaultsched.adapters import service

    _print_service(service.install(_vault(ctx).root), as_json)


@service_app.command(
    "uninstall",
    cls=HelpCommand,
    epilog=examples("vaultsched service uninstall"),
)
def service_uninstall_cmd(as_json: JsonOption = False) -> None:
    """Disable and remove the systemd --user unit."""
    from vaultsched.adapters import service

    _print_service(service.uninstall(), as_json)


@service_app.command(
    "status",
    cls=HelpCommand,
    epilog=examples("vaultsched service status", "vaultsched service status --json"),
)
def service_status_cmd(as_json: JsonOption = False) -> None:
    """Is the unit installed and active?"""
    from vaultsched.adapters import service

    _print_service(service.status(), as_json)


def click_command(args: list[str]) -> Command:
    """The root command with only the command `args` name, when they name one: typer builds
    each command's parameters from its signature (all 29: 5% of `list`'s start), and only one
    runs. Anything else (`--help`, no command, a mistyped one to suggest for) gets them all."""
    bare = copy.copy(app)
    bare.registered_commands, bare.registered_groups = [], []
    name = _named(args, typer.main.get_command(bare))
    commands = [info for info in app.registered_commands if info.name == name]
    groups = [info for info in app.registered_groups if info.name == name]
    if not commands and not groups:
        return typer.main.get_command(app)
    one = copy.copy(app)
    one.registered_commands, one.registered_groups = commands, groups
    return typer.main.get_command(one)


def _named(args: list[str], root: Command) -> str | None:
    """The command `args` name: their first word that is neither an option nor the value of
    one of `root`'s options that take a value (as `root` declares them: `--vault`)."""
    valued = {
        name
        for param in root.params
        if isinstance(param, TyperOption) and not (param.is_flag or param.count)
        for name in (*param.opts, *param.secondary_opts)
    }
    words = iter(args)
    for word in words:
        if word in valued:
            next(words, None)
        elif word == "--":
            return next(words, None)
        elif not word.startswith("-"):
            return word
    return None


def main(argv: list[str] | None = None) -> int:
    """Entry point: one line on stderr for any error, never a traceback unless asked for."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(SafeFormatter("vaultsched: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    args = sys.argv[1:] if argv is None else argv
    try:
        command = click_command(args)
        result = command.main(args=args, prog_name="vaultsched", standalone_mode=False)
    except TyperException as exc:  # usage errors: bad option, missing argument, no such command
        print(f"vaultsched: {escape(exc.format_message())}", file=sys.stderr)
        return exc.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except (typer.Abort, KeyboardInterrupt):
        print("vaultsched: interrupted", file=sys.stderr)
        return 130
    except VaultschedError as exc:
        print(f"vaultsched: {escape(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:
        if os.environ.get("VAULTSCHED_DEBUG"):
            traceback.print_exc()
        print(
            f"vaultsched: internal error: {escape(repr(exc))} (set VAULTSCHED_DEBUG=1 for details)",
            file=sys.stderr,
        )
        return 3
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
