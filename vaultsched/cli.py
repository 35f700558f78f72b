"""The command line: parse, call one core function, print, return an exit code."""

from __future__ import annotations

import json
import logging
import os
import sys
import traceback
from datetime import date, datetime
from pathlib import Path
from typing import Annotated, Any, NoReturn

import click
import typer
from rich.console import Console
from rich.table import Table

from vaultsched import __version__
from vaultsched.engine import Engine, digest_path, utc_now
from vaultsched.errors import VaultschedError
from vaultsched.frontmatter_edit import set_scalar
from vaultsched.ledger import Ledger
from vaultsched.model import Status, Trigger
from vaultsched.notes import NoteWriter, Outcome
from vaultsched.reports import history_rows, iso, list_rows, upcoming
from vaultsched.scaffold import create_task, init_vault
from vaultsched.validate import validate_staged, validate_vault
from vaultsched.vault import Vault, build_index, open_vault

app = typer.Typer(
    name="vaultsched",
    help="Run scheduled jobs that live as notes in an Obsidian vault.",
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    no_args_is_help=True,
)
err = Console(stderr=True, highlight=False)
out = Console(highlight=False)

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
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _fail(message: str, code: int = 1) -> NoReturn:
    raise VaultschedError(message, exit_code=code)


@app.command("init")
def init_cmd(
    path: Annotated[Path, typer.Argument(help="Folder to make a vault.")] = Path(),
) -> None:
    """Make PATH a vault: config, .gitignore, .gitattributes, an example task, git."""
    created = init_vault(path)
    for rel in created.files:
        out.print(f"created {rel}")
    if created.git_initialised:
        out.print("initialised a git repository")
    for note in created.notes:
        err.print(f"vaultsched: note: {note}")
    if not created.files:
        out.print(f"{created.root} is already a vault: nothing to do")


@app.command("list")
def list_cmd(ctx: typer.Context, as_json: JsonOption = False) -> None:
    """Every task: schedule, enabled, next run, last run and status, validity."""
    vault = _vault(ctx)
    index = build_index(vault)
    rows = list_rows(index, Ledger(vault.root, vault.host).runs(), utc_now())
    if as_json:
        _print_json(rows)
        return
    if not rows:
        err.print(f"no task notes in {vault.root} (a task note has a `command` property)")
        return
    table = Table(box=None, header_style="bold")
    for column in ("task", "schedule", "enabled", "next run", "last run", "status"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["task"],
            ", ".join(row["schedule"]) or "manual",
            "yes" if row["enabled"] else "no",
            row["next_run"] or "-",
            row["last_run"] or "-",
            row["last_status"] or "-" if row["valid"] else "INVALID: " + "; ".join(row["errors"]),
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
    index = build_index(vault)
    after = _parse_from(from_) if from_ else utc_now()
    if task is not None:
        chosen = index.task(task)
        if chosen.manual:
            _fail(
                f"{chosen.id} has no schedule: a manual task runs only with `vaultsched run-now`"
            )
        tasks = [chosen]
    else:
        tasks = [t for t in index.tasks.values() if t.enabled]
    fires = upcoming(tasks, after, count)
    if as_json:
        _print_json([{"task": f.task, "at": iso(f.at)} for f in fires])
    else:
        for fire in fires:
            out.print(f"{iso(fire.at)}  {fire.task}")


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
) -> None:
    """Check task notes; print each problem as path:line: message; exit 1 on any error."""
    vault = _vault(ctx)
    checked, problems = validate_staged(vault) if staged else validate_vault(vault, paths or [])
    for problem in problems:
        out.print(str(problem), markup=False, soft_wrap=True)
    errors = sum(p.severity == "error" for p in problems)
    warnings = sum(p.severity == "warning" for p in problems)
    err.print(f"{checked} task notes checked: {errors} errors, {warnings} warnings")
    if errors:
        raise typer.Exit(1)


@app.command("run-now")
def run_now_cmd(ctx: typer.Context, task: TaskArg) -> None:
    """Run one task now, stream its output, record and commit the result."""
    vault = _vault(ctx)
    chosen = build_index(vault).task(task)
    engine = Engine(vault)
    sys.stdout.flush()
    run = engine.run(chosen, Trigger.MANUAL, echo=sys.stdout.buffer)
    engine.flush()
    detail = f"exit {run.exit_code}" if run.exit_code is not None else run.message
    duration = f", {run.duration_s:.1f}s" if run.duration_s is not None else ""
    err.print(f"vaultsched: {run.status} {run.task} ({detail}{duration})", markup=False)
    if run.status is not Status.SUCCESS:
        raise typer.Exit(1)


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
        err.print(f"{ident} has not run yet")
    for row in rows:
        code = "" if row["exit_code"] is None else f" exit {row['exit_code']}"
        out.print(
            f"{row['started_at']}  {row['status']:<17} {row['trigger']:<9}{code}  "
            f"{row['duration_s'] or 0:.1f}s  {row['host']}  {row['message']}".rstrip(),
            markup=False,
        )


def _set_enabled(ctx: typer.Context, task: str, enabled: bool) -> None:
    vault = _vault(ctx)
    index = build_index(vault)
    ident = index.resolve(task)
    rel = index.tasks[ident].path if ident in index.tasks else f"{ident}.md"
    value = "true" if enabled else "false"
    try:
        outcome = NoteWriter(vault.root).update(
            rel, lambda text: set_scalar(text, "enabled", value)
        )
    except ValueError as exc:
        _fail(f"{rel}: {exc}")
    verb = "resume" if enabled else "pause"
    if outcome is Outcome.UNCHANGED:
        out.print(f"{ident} is already {'enabled' if enabled else 'paused'}")
        return
    if outcome is not Outcome.WRITTEN:
        _fail(f"{rel}: not written ({outcome})")
    engine = Engine(vault)
    engine.commit_files([rel], f"vaultsched: {verb} {ident}")
    out.print(f"{ident}: enabled: {value}")


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
    Engine(vault).commit_files([rel], f"vaultsched: new {rel.removesuffix('.md')}")
    out.print(f"created {rel}")


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
    engine = Engine(vault)
    written = engine.refresh_digest(chosen)
    engine.commit_files(written, f"vaultsched: digest {chosen.isoformat()}")
    out.print(str(vault.path(digest_path(vault, chosen))), markup=False, soft_wrap=True)


def main(argv: list[str] | None = None) -> int:
    """Entry point: one line on stderr for any error, never a traceback unless asked for."""
    logging.basicConfig(level=logging.WARNING, format="vaultsched: %(message)s", stream=sys.stderr)
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="vaultsched", standalone_mode=False)
    except click.UsageError as exc:
        print(f"vaultsched: {exc.format_message()}", file=sys.stderr)
        return 2
    except (click.Abort, KeyboardInterrupt):
        print("vaultsched: interrupted", file=sys.stderr)
        return 130
    except VaultschedError as exc:
        print(f"vaultsched: {exc}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:
        if os.environ.get("VAULTSCHED_DEBUG"):
            traceback.print_exc()
        print(
            f"vaultsched: internal error: {exc!r} (set VAULTSCHED_DEBUG=1 for details)",
            file=sys.stderr,
        )
        return 3
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
