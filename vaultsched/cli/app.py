"""The command line: parse, call one core function, print, return an exit code."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import signal
import sys
import traceback
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from rich.markup import escape as markup_escape
from rich.table import Table
from typer.exceptions import TyperException

from vaultsched import __version__
from vaultsched.adapters import githooks, service
from vaultsched.adapters.git import Edit, Git, GitError
from vaultsched.adapters.instance import InstanceLock
from vaultsched.adapters.ledger import Ledger
from vaultsched.adapters.notes import Outcome
from vaultsched.adapters.terminal import SafeConsole, SafeFormatter, dumps_json, echo_stream, escape
from vaultsched.adapters.vault import Index, Vault, build_index, planned_index
from vaultsched.cli.reports import (
    ListRow,
    history_rows,
    iso,
    list_rows,
    status_report,
    upcoming,
)
from vaultsched.cli.scaffold import create_task, init_vault
from vaultsched.cli.validate import validate_staged, validate_vault
from vaultsched.core import layout
from vaultsched.core.convert import to_listen
from vaultsched.core.dashboard import DashboardPathError, dashboard_path
from vaultsched.core.errors import VaultschedError
from vaultsched.core.model import Run, Status, Task, Trigger
from vaultsched.core.views import digest_path
from vaultsched.runtime.messages import Job
from vaultsched.runtime.oneshot import OneShot, one_shot
from vaultsched.runtime.workspace import utc_now
from vaultsched.trust.config import ignored_message, open_vault, show, trust_config
from vaultsched.trust.store import TrustStore, take_snapshot

# _LAZY: the daemon, demo, doctor and sync modules (watchdog among them) are imported by their
# commands only; `list`, `validate` and the git hooks start a fresh process each time.

app = typer.Typer(
    name="vaultsched",
    help="Run scheduled jobs that live as notes in an Obsidian vault.",
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    no_args_is_help=True,
)
# Every string printed goes through `terminal.escape` (SafeConsole): vault text may hold ESC.
err = SafeConsole(stderr=True, highlight=False)
out = SafeConsole(highlight=False)

service_app = typer.Typer(
    help="A systemd --user unit for the daemon (or the cron line).", no_args_is_help=True
)
app.add_typer(service_app, name="service")
hooks_app = typer.Typer(help="Git hooks for the vault's repository.", no_args_is_help=True)
app.add_typer(hooks_app, name="hooks")

VaultOption = Annotated[
    Path | None,
    typer.Option(
        "--vault",
        help="The vault folder (default: $VAULTSCHED_VAULT, else the current folder).",
        show_default=False,
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]
TaskArg = Annotated[
    str, typer.Argument(metavar="TASK", help="Task id, note path, or unique note name.")
]


@app.callback()
def _root(
    ctx: typer.Context,
    vault: VaultOption = None,
    version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False,
) -> None:
    if version:
        out.print(f"vaultsched {__version__}")
        raise typer.Exit(0)
    ctx.obj = vault


def _vault(ctx: typer.Context) -> Vault:
    return open_vault(ctx.find_root().obj)


def _print_json(data: Any) -> None:
    sys.stdout.write(dumps_json(data) + "\n")


def _fail(message: str, code: int = 1) -> NoReturn:
    raise VaultschedError(message, exit_code=code)


@app.command("init")
def init_cmd(
    path: Annotated[Path, typer.Argument(help="Folder to make a vault.")] = Path(),
) -> None:
    """Make PATH a vault: config, .gitignore, .gitattributes, an example task, git."""
    created = init_vault(path)
    for rel in created.files:
        out.print(f"created {rel}", markup=False)
    if created.git_initialised:
        out.print("initialised a git repository")
    for line in created.hooks:
        out.print(f"git hook {line}", markup=False)
    for note in created.notes:
        err.print(f"vaultsched: note: {note}")
    if not created.files:
        out.print(f"{created.root} is already a vault: nothing to do")


@app.command("list")
def list_cmd(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Every task: schedule, enabled, next run, last run and status, validity."""
    vault = _vault(ctx)
    now = utc_now()
    index = planned_index(vault, now)
    rows = list_rows(
        index, Ledger(vault.root, vault.host).runs(), now, TrustStore().checker(vault.root)
    )
    if as_json:
        _print_json(rows)
        return
    if not rows:
        err.print(f"no task notes in {vault.root} (a task note has a `command` property)")
        return
    table = Table(box=None, header_style="bold")
    for column in ("task", "schedule", "enabled", "trusted", "next run", "last run", "status"):
        table.add_column(column)
    for row in rows:
        # Cells are rendered with markup: text from notes must not open a tag (or a link).
        table.add_row(
            markup_escape(row["task"]),
            markup_escape(_when(row)),
            "yes" if row["enabled"] else "no",
            "yes" if row["trusted"] else "[red]no[/red]",
            row["next_run"] or "-",
            row["last_run"] or "-",
            markup_escape(_status_cell(row)),
        )
    out.print(table)


@app.command("next")
def next_cmd(
    ctx: typer.Context,
    task: Annotated[
        str | None, typer.Argument(metavar="[TASK]", help="One task (default: all).")
    ] = None,
    from_: Annotated[
        str | None, typer.Option("--from", help="ISO time; naive means the task's zone.")
    ] = None,
    count: Annotated[int, typer.Option("--count", "-n", min=1, max=10000, help="How many.")] = 5,
    as_json: JsonOption = False,
) -> None:
    """The next fire times, strictly after --from (default: now)."""
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
    else:
        for fire in fires:
            out.print(f"{iso(fire.at)}  {fire.task}", markup=False)
    for problem in problems:
        err.print(f"vaultsched: {problem}", markup=False, soft_wrap=True)
    if problems:
        raise typer.Exit(1)


def _parse_from(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise VaultschedError(
            f"--from: not an ISO 8601 time: {text!r} (e.g. 2026-03-29T01:30)"
        ) from None


@app.command("validate")
def validate_cmd(
    ctx: typer.Context,
    paths: Annotated[
        list[str] | None, typer.Argument(help="Notes or folders (default: the vault).")
    ] = None,
    staged: Annotated[bool, typer.Option("--staged", help="Check what git has staged.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Check task notes; print each problem as path:line: message; exit 1 on any error."""
    vault = _vault(ctx)
    checked, problems = (
        validate_staged(vault) if staged else validate_vault(vault, utc_now(), paths or [])
    )
    if as_json:
        _print_json([dataclasses.asdict(p) for p in problems])
    for problem in [] if as_json else problems:
        out.print(str(problem), markup=False, soft_wrap=True)
    errors = sum(p.severity == "error" for p in problems)
    warnings = sum(p.severity == "warning" for p in problems)
    err.print(f"{checked} task notes checked: {errors} errors, {warnings} warnings")
    if errors:
        raise typer.Exit(1)


@app.command("run-now")
def run_now_cmd(
    ctx: typer.Context,
    task: TaskArg,
    no_chain: Annotated[
        bool, typer.Option("--no-chain", help="Do not start the tasks that run after it.")
    ] = False,
) -> None:
    """Run one task now, then the tasks that run after it (`after`); stream their output,
    record and commit the results."""
    vault = _vault(ctx)
    index = build_index(vault)
    job = Job(index.task(task), Trigger.MANUAL)
    _run_in_foreground(one_shot(vault), job, None if no_chain else index)


# A run-now or approve exits 0 only if each of its runs ended so (skipped: it did not run).
_FINE = frozenset({Status.SUCCESS, Status.AWAITING_APPROVAL})


def _run_in_foreground(shot: OneShot, job: Job, chain: Index | None) -> None:
    """Run with output streamed here, land, commit; exit 1 if any run did not end well."""
    sys.stdout.flush()
    echo = echo_stream(sys.stdout.buffer, is_terminal=sys.stdout.isatty())
    done = shot.run(job, echo, chain=chain, report=_said)
    if any(run.status not in _FINE for run in done):
        raise typer.Exit(1)


def _status_cell(row: ListRow) -> str:
    if not row["valid"]:
        return "INVALID: " + "; ".join(row["errors"])
    missed = f" (not run: due {row['not_run_since']})" if row["not_run_since"] else ""
    return (row["last_status"] or "-") + missed


def _when(row: ListRow) -> str:
    """What starts a task: its schedules, the tasks it runs after, or a person."""
    starts = [*row["schedule"], *(f"after {name}" for name in row["after"])]
    return ", ".join(starts) or "manual"


def _said(run: Run) -> None:
    detail = f"exit {run.exit_code}" if run.exit_code is not None else run.message
    duration = f", {run.duration_s:.1f}s" if run.duration_s is not None else ""
    err.print(f"vaultsched: {run.status} {run.task} ({detail}{duration})", markup=False)


@app.command("trust")
def trust_cmd(
    ctx: typer.Context,
    tasks: Annotated[list[str] | None, typer.Argument(metavar="[TASK]...")] = None,
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
) -> None:
    """Show what changed since a task was last trusted, then trust it as it is now (its
    settings, its body if piped to it, every vault file its command reaches). Never prompts."""
    vault = _vault(ctx)
    index = build_index(vault)
    if (all_ and tasks) or not (all_ or tasks or config):
        _fail("name the tasks to trust, or use --all (and/or --config)", code=2)
    if config:
        _trust_config(vault)
    chosen = list(index.tasks.values()) if all_ else [index.task(t) for t in tasks or []]
    if chosen:
        _trust_tasks(vault, chosen, show_changes=not yes)


def _trust_tasks(vault: Vault, chosen: list[Task], *, show_changes: bool) -> None:
    store = TrustStore()
    # Read once: what is shown is exactly what is recorded, whatever a sync does meanwhile.
    snapshots = {task.id: take_snapshot(vault.root, task) for task in chosen}
    for ident, snapshot in snapshots.items():
        if show_changes:
            for line in store.changes(vault.root, ident, snapshot):
                out.print(line, markup=False, soft_wrap=True)
        for warning in snapshot.warnings:
            err.print(f"vaultsched: warning: {ident}: {warning}", markup=False, soft_wrap=True)
    store.record(vault.root, snapshots)
    for task in chosen:
        files = sorted(snapshots[task.id].files)
        also = f"  (+ {', '.join(files)})" if files else ""
        line = f"trusted {task.id}: {escape(_shown_command(task), one_line=True)}{also}"
        out.print(line, markup=False, soft_wrap=True)


def _shown_command(task: Task) -> str:
    return task.command if isinstance(task.command, str) else json.dumps(list(task.command))


def _trust_config(vault: Vault) -> None:
    """Show the sensitive values (escaped) and what changed since the last trust, record them."""
    trusted = trust_config(vault.root)
    if not trusted.values:
        out.print(f"nothing in {layout.CONFIG} needs trust", markup=False)
        return
    out.print(f"{layout.CONFIG}:", markup=False)
    for label, value in trusted.values:
        out.print(f"  {label} = {show(value)}", markup=False, soft_wrap=True)
    for rel, sha in sorted(trusted.files.items()):  # what the notify command runs, pinned
        out.print(f"  covers {rel} (sha256 {sha[:12]})", markup=False, soft_wrap=True)
    if trusted.first:
        out.print("first trust of this vault's config on this machine", markup=False)
    elif trusted.changes:
        out.print("changed since you last trusted it:", markup=False)
        for line in trusted.changes:
            out.print(f"  {line}", markup=False, soft_wrap=True)
    else:
        out.print("unchanged since you last trusted it", markup=False)
    out.print("trusted the vault config (a running daemon takes it up when restarted)")


@app.command("untrust")
def untrust_cmd(
    ctx: typer.Context, tasks: Annotated[list[str], typer.Argument(metavar="TASK...")]
) -> None:
    """Withdraw trust: the tasks will not run until trusted again."""
    vault = _vault(ctx)
    index = build_index(vault)
    ids = [index.resolve(t) for t in tasks]
    TrustStore().untrust(vault.root, ids)
    for ident in ids:
        out.print(f"untrusted {ident}", markup=False)


def _settle_pending(ctx: typer.Context, task: str, outcome: str) -> tuple[OneShot, Task, Run]:
    """Close the task's run that waits for approval, saying how; exit 1 if there is none."""
    vault = _vault(ctx)
    chosen = build_index(vault).task(task)
    shot = one_shot(vault)
    pending = shot.settle(chosen, outcome)
    if pending is None:
        _fail(f"no run of {chosen.id} is waiting for approval")
    return shot, chosen, pending


@app.command("approve")
def approve_cmd(ctx: typer.Context, task: TaskArg) -> None:
    """Run a task's pending `approval: required` run now (trigger `approved`)."""
    shot, chosen, pending = _settle_pending(ctx, task, "approved: run with trigger `approved`")
    upstream = shot.upstream(pending.upstream_run)
    job = Job(chosen, Trigger.APPROVED, pending.scheduled_for, upstream=upstream)
    _run_in_foreground(shot, job, build_index(shot.workspace.vault))


@app.command("reject")
def reject_cmd(ctx: typer.Context, task: TaskArg) -> None:
    """Drop a task's pending `approval: required` run."""
    shot, chosen, _ = _settle_pending(ctx, task, "rejected")
    shot.commit_landed()
    out.print(f"rejected the pending run of {chosen.id}", markup=False)


@app.command("history")
def history_cmd(
    ctx: typer.Context,
    task: TaskArg,
    limit: Annotated[int | None, typer.Option("-n", min=0, help="Only the last N runs.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Runs of a task from the ledger, oldest first."""
    vault = _vault(ctx)
    ident = build_index(vault).resolve(task)
    rows = history_rows(Ledger(vault.root, vault.host), ident, limit)
    if as_json:
        _print_json(rows)
        return
    if not rows:
        err.print(f"{ident} has not run yet", markup=False)
    for row in rows:
        code = "" if row["exit_code"] is None else f" exit {row['exit_code']}"
        wrote = f"  -> {row['output_note']}" if row["output_note"] else ""
        out.print(
            f"{row['started_at']}  {row['status']:<17} {row['trigger']:<9}{code}  "
            f"{row['duration_s'] or 0:.1f}s  {row['host']}  {row['message']}".rstrip()
            + wrote,
            markup=False,
        )


def _set_enabled(ctx: typer.Context, task: str, enabled: bool) -> None:
    vault = _vault(ctx)
    index = build_index(vault)
    ident = index.resolve(task)
    rel = index.tasks[ident].path if ident in index.tasks else f"{ident}.md"
    if one_shot(vault).set_enabled(ident, rel, enabled) is Outcome.UNCHANGED:
        out.print(f"{ident} is already {'enabled' if enabled else 'paused'}", markup=False)
    else:
        out.print(f"{ident}: enabled: {'true' if enabled else 'false'}", markup=False)


@app.command("pause")
def pause_cmd(ctx: typer.Context, task: TaskArg) -> None:
    """Set `enabled: false` in the task note (a one-line edit) and commit."""
    _set_enabled(ctx, task, False)


@app.command("resume")
def resume_cmd(ctx: typer.Context, task: TaskArg) -> None:
    """Set `enabled: true` in the task note (a one-line edit) and commit."""
    _set_enabled(ctx, task, True)


@app.command("new")
def new_cmd(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Note name, created as Tasks/NAME.md.")],
    schedule: Annotated[
        str | None, typer.Option("--schedule", help="Cron line, macro or `every 5m`.")
    ] = None,
    command: Annotated[str, typer.Option("--command", help="Shell command to run.")] = "",
) -> None:
    """Create Tasks/NAME.md from a template."""
    vault = _vault(ctx)
    rel = create_task(vault.root, name, schedule, command)
    # vaultsched wrote the whole note just now: it is committed whole.
    one_shot(vault).commit([Edit(rel)], f"vaultsched: new {rel.removesuffix('.md')}")
    out.print(f"created {rel}", markup=False)


@app.command("digest")
def digest_cmd(
    ctx: typer.Context,
    day: Annotated[
        str | None, typer.Argument(metavar="[DATE]", help="YYYY-MM-DD (default: today).")
    ] = None,
) -> None:
    """Rebuild that day's digest note from the ledger and print its path."""
    vault = _vault(ctx)
    if day is None:
        chosen = utc_now().astimezone(vault.config.timezone).date()
    else:
        try:
            chosen = date.fromisoformat(day)
        except ValueError:
            _fail(f"not a date: {day!r} (use YYYY-MM-DD)", 2)
    one_shot(vault).digest(chosen)
    out.print(str(vault.path(digest_path(vault, chosen))), markup=False, soft_wrap=True)


@app.command("dashboard")
def dashboard_cmd(
    ctx: typer.Context,
    path: Annotated[
        str | None,
        typer.Argument(metavar="[PATH]", help="In the vault (default: Tasks.base)."),
    ] = None,
) -> None:
    """Write an Obsidian Bases file with a table of every task; never over your own edits."""
    vault = _vault(ctx)
    try:
        rel = dashboard_path(path)
    except DashboardPathError as exc:
        _fail(f"dashboard: {exc}", 2)
    if one_shot(vault).dashboard(rel) is Outcome.UNCHANGED:
        out.print(f"{rel} is up to date", markup=False)
    else:
        out.print(f"wrote {rel}", markup=False)


@app.command("run")
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
    from vaultsched.runtime.daemon import Daemon, install_signal_handlers  # see _LAZY

    try:
        listen = None if metrics is None else to_listen(metrics)
    except ValueError as exc:
        _fail(f"--metrics {exc}", 2)
    vault = _vault(ctx)
    _daemon_logging()
    daemon = Daemon(vault, dry_run=dry_run, metrics=listen)
    install_signal_handlers(daemon)
    daemon.run(once=once)


def _daemon_logging() -> None:
    root = logging.getLogger()
    for handler in root.handlers:
        handler.setFormatter(
            SafeFormatter("%(asctime)s vaultsched: %(message)s", "%Y-%m-%d %H:%M:%S")
        )
    root.setLevel(logging.INFO)


@app.command("status")
def status_cmd(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Is the daemon running; runs in progress, today's failures, what waits for you."""
    vault = _vault(ctx)
    now = utc_now()
    report = status_report(vault, planned_index(vault, now), now)
    if as_json:
        _print_json(report)
        return
    daemon = report["daemon"]
    if daemon["running"]:
        out.print(
            f"daemon: running (pid {daemon['pid']} on {daemon['host']} since {daemon['since']})"
        )
    else:
        out.print("daemon: not running (start it with `vaultsched run`)")
    stuck = {run["run_id"] for run in report["stuck"]}
    for run in report["running"]:
        label = "stuck" if run["run_id"] in stuck else "running"
        out.print(f"{label}: {run['task']} since {run['started_at']}", markup=False)
    fired = report["last_fire"]
    if fired is not None:
        out.print(f"last fire: {fired['started_at']} ({fired['task']})", markup=False)
    for row in report["overdue"]:
        out.print(f"not run: {row['task']} was due {row['due']}", markup=False)
    out.print(f"today: {report['today']}")
    out.print(f"failures today: {len(report['failures_today'])}")
    for run in report["failures_today"]:
        out.print(f"  {run['started_at']}  {run['status']}  {run['task']}", markup=False)
    waiting = [(i["status"], i["task"], i["why"], i["fix"]) for i in report["attention"]]
    waiting += [("untrusted", i["task"], i["why"], i["fix"]) for i in report["untrusted"]]
    waiting += [("awaiting approval", i["task"], "", i["fix"]) for i in report["awaiting_approval"]]
    for label, task_id, why, fix in waiting:
        shown = f" ({why})" if why else ""
        out.print(f"{label}: {task_id}{shown}  ->  {fix}", markup=False)
    config = report["config"]
    fix = f"  ->  {config['fix']}" if config["fix"] else ""
    out.print(f"config: {config['detail']}{fix}", markup=False, soft_wrap=True)
    out.print(f"digest: {report['digest']}", markup=False, soft_wrap=True)


@app.command("demo")
def demo_cmd(
    folder: Annotated[
        Path | None,
        typer.Argument(help="Where to put the demo vault (default: a new temp folder)."),
    ] = None,
) -> None:
    """Copy the example vault, git-init it, speed it up, and run the daemon in the foreground."""
    from vaultsched.cli import demo  # see _LAZY
    from vaultsched.runtime.daemon import Daemon, install_signal_handlers

    prepared = demo.prepare(folder)
    narrator = demo.Narrator.for_vault(prepared.root)
    for line in narrator.welcome(prepared):
        out.print(line, soft_wrap=True)
    demo.show_daemon_start()

    def print_run(run: Run) -> None:
        for line in narrator.lines(run):
            out.print(line, soft_wrap=True)

    daemon = Daemon(open_vault(prepared.root), on_run=print_run)
    install_signal_handlers(daemon)
    daemon.run()
    out.print(f"\nStopped. The vault stays at {prepared.root}", markup=False)


@app.command("doctor")
def doctor_cmd(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Drift and health checks, each with its fix; exit 1 if any check fails."""
    from vaultsched.cli.doctor import diagnose  # see _LAZY

    vault = _vault(ctx)
    now = utc_now()
    checks = diagnose(vault, planned_index(vault, now), now)
    if as_json:
        _print_json([c.as_dict() for c in checks])
    else:
        style = {"ok": "green", "warn": "yellow", "fail": "red"}
        for c in checks:
            out.print(f"[{style[c.status]}]{c.status:<4}[/] {c.name}: ", end="")
            out.print(c.detail, markup=False, soft_wrap=True)
            if c.fix:
                out.print(f"     fix: {c.fix}", markup=False, soft_wrap=True)
    if any(c.status == "fail" for c in checks):
        raise typer.Exit(1)


@app.command("sync")
def sync_cmd(ctx: typer.Context) -> None:
    """Pull (rebase) from the remote, rebuild notes and digests from the merged ledger, push."""
    from vaultsched.runtime.sync import Syncer, SyncError  # see _LAZY

    vault = _vault(ctx)
    if vault.config.ignored:
        err.print(f"vaultsched: {ignored_message(vault.root, vault.config.ignored)}", markup=False)
    shot = one_shot(vault)
    if not shot.workspace.git.usable:
        _fail(f"{vault.root} is not the top of a git repository")
    try:
        result = Syncer(shot.workspace, shot.lander, vault.config.git.sync_interval).sync_once()
    except (SyncError, GitError) as exc:
        _fail(f"sync failed: {exc}")
    out.print(
        f"synced with {vault.config.git.remote}: {result.pulled} run(s) from other hosts",
        markup=False,
    )


@hooks_app.command("install")
def hooks_install_cmd(ctx: typer.Context) -> None:
    """Install vaultsched's git hooks, chaining any hook already there."""
    vault = _vault(ctx)
    try:
        installed = githooks.install(Git(vault.root, vault.host))
    except (OSError, GitError) as exc:
        _fail(str(exc))
    for line in installed.messages:
        out.print(line, markup=False, soft_wrap=True)


@app.command("reindex")
def reindex_cmd(ctx: typer.Context) -> None:
    """Ask this host's running daemon to re-read the whole vault (the post-merge hook does)."""
    vault = _vault(ctx)
    pid = InstanceLock(vault.root).signal_daemon(vault.host, signal.SIGHUP)
    if pid is None:
        out.print("no daemon is running for this vault on this host")
    else:
        out.print(f"asked the daemon (pid {pid}) to re-read the vault")


@service_app.command("install")
def service_install_cmd(ctx: typer.Context) -> None:
    """Write and enable a systemd --user unit running this vault's daemon."""
    result = service.install(_vault(ctx).root)
    for line in result.messages:
        out.print(line, markup=False, soft_wrap=True)


@service_app.command("uninstall")
def service_uninstall_cmd() -> None:
    """Disable and remove the systemd --user unit."""
    for line in service.uninstall().messages:
        out.print(line, markup=False, soft_wrap=True)


@service_app.command("status")
def service_status_cmd() -> None:
    """Is the unit installed and active?"""
    for line in service.status().messages:
        out.print(line, markup=False, soft_wrap=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point: one line on stderr for any error, never a traceback unless asked for."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(SafeFormatter("vaultsched: %(message)s"))
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="vaultsched", standalone_mode=False)
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
