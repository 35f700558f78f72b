"""Start-up: what `--help` and `list` load, checked by module name, never by timing.

Every `vaultsched` is a fresh process (the git hooks start one per commit, scripts one per
call): what the command line imports before it does anything is paid each time."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer._click.core import Parameter
from typer._coercion import RuntimeParam, build_runtime_param
from typer.core import TyperArgument, TyperOption

from vaultsched.cli import app as cli_app
from vaultsched.cli.app import app, click_command, main
from vaultsched.cli.values import without_pydantic

# Runs in a fresh interpreter: the modules loaded after each stage, cumulated.
PROBE = """
import contextlib, io, json, sys
loaded = {}
import vaultsched.cli.app as cli
loaded["import"] = sorted(sys.modules)
with contextlib.redirect_stdout(io.StringIO()):
    assert cli.main(["--help"]) == 0
loaded["--help"] = sorted(sys.modules)
with contextlib.redirect_stderr(io.StringIO()):
    assert cli.main(["--vault", sys.argv[1], "list"]) == 0
loaded["list"] = sorted(sys.modules)
loaded["file"] = [cli.__file__]
print(json.dumps(loaded))
"""
# What declaring the commands needs: typer, and these of ours.
ROOT = {
    "vaultsched",
    "vaultsched.adapters",
    "vaultsched.adapters.terminal",
    "vaultsched.cli",
    "vaultsched.cli.app",
    "vaultsched.cli.helptext",
    "vaultsched.cli.values",
    "vaultsched.core",
    "vaultsched.core.errors",
}
# Slow to import, and needed by no listing of an empty vault: each is loaded only where it is
# used (a note to parse, a config file, a glob, a hash, a table to print, a schedule to plan).
NEVER_FOR_LIST = {
    "arrow",
    "croniter",
    "dateutil",
    "filelock",
    "frontmatter",
    "hashlib",
    "markdown_it",
    "prometheus_client",
    "pydantic",
    "rich",
    "socket",
    "tomllib",
    "watchdog",
    "wcmatch",
    "yaml",
    "vaultsched.adapters.git",
    "vaultsched.adapters.inputs",
    "vaultsched.adapters.instance",
    "vaultsched.adapters.notes",
    "vaultsched.adapters.pinger",
    "vaultsched.adapters.runner",
    "vaultsched.adapters.watcher",
    "vaultsched.core.blocks",
    "vaultsched.core.pool",
    "vaultsched.core.schedules",
    "vaultsched.runtime",
    "vaultsched.trust.reach",
}
# And these too, for `--help`: the vault, its config, its notes and the time zone.
NEVER_FOR_HELP = NEVER_FOR_LIST | {"tzlocal", "vaultsched.adapters.config"}


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[str]]:
    root = tmp_path_factory.mktemp("empty")
    (root / ".obsidian").mkdir()
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(root)], capture_output=True, text=True, check=True
    )
    result: dict[str, list[str]] = json.loads(done.stdout)
    assert result["file"] == [cli_app.__file__]  # this checkout's, not another install's
    return result


def found(modules: list[str], names: set[str]) -> list[str]:
    """The modules that are one of `names` or inside one of them."""
    return [m for m in modules if any(m == n or m.startswith(f"{n}.") for n in names)]


def test_the_root_import_declares_the_commands_and_loads_nothing_more(
    loaded: dict[str, list[str]],
) -> None:
    ours = {m for m in loaded["import"] if m.split(".")[0] == "vaultsched"}
    assert ours == ROOT
    assert found(loaded["import"], NEVER_FOR_HELP) == []


def test_help_needs_nothing_the_root_import_did_not_load(loaded: dict[str, list[str]]) -> None:
    assert found(loaded["--help"], NEVER_FOR_HELP) == []
    assert {m for m in loaded["--help"] if m.split(".")[0] == "vaultsched"} == ROOT


def test_list_loads_neither_the_runtime_nor_the_libraries_of_other_commands(
    loaded: dict[str, list[str]],
) -> None:
    assert found(loaded["list"], NEVER_FOR_LIST) == []
    assert "vaultsched.core.planner" in loaded["list"]  # the probe did run the listing
    assert "vaultsched.adapters.ledger" not in loaded["list"]  # no task note: no run to show


def plain_params() -> list[TyperArgument | TyperOption]:
    """Every parameter of every command that `values` takes as click parsed it."""

    def walk(command: object) -> list[Parameter]:
        params = list(getattr(command, "params", []))
        for sub in getattr(command, "commands", {}).values():
            params += walk(sub)
        return params

    return [
        p
        for p in without_pydantic(walk(typer.main.get_command(app)))
        if isinstance(p, TyperArgument | TyperOption) and p._runtime_param is not None
    ]


def coerced(runtime: RuntimeParam, param: TyperArgument | TyperOption, value: object) -> object:
    """The value typer hands the command, or the message of its refusal."""
    try:
        result: object = runtime.coerce(value, param=param, ctx=typer.Context(app_command))
    except typer.BadParameter as exc:
        return f"refused: {exc.format_message()}"
    return (result, type(result))


app_command = typer.main.get_command(app)
SAMPLES = ["", ".", "a//b/", "~/Notes", "/nonexistent/x", "Tasks/Backup.md", "é", "5", "-1", "x"]


def test_each_plain_value_is_what_typers_own_coercion_makes_of_it() -> None:
    params = plain_params()
    kinds = {p.type_descriptor.annotation for p in params}
    assert kinds == {bool, int, str, Path, list[str]}  # all the commands declare
    for param in params:
        values: list[object] = [None, param.default]
        if param.type_descriptor.annotation is not bool:
            values += [(s, "b") if param.nargs == -1 else s for s in SAMPLES]
        theirs = build_runtime_param(param.type_descriptor)
        for value in values:
            expected = coerced(theirs, param, value)
            assert coerced(param.get_runtime_param(), param, value) == expected, (param, value)


def test_list_of_an_empty_vault_shows_its_folder_as_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Printed as written, not read as rich markup or emoji codes (and without loading rich)."""
    root = tmp_path / "a[/b] [bold]x :smile:"
    (root / ".obsidian").mkdir(parents=True)
    assert main(["--vault", str(root), "list"]) == 0
    out, err = capsys.readouterr()
    assert (out, err) == ("", f"no task notes in {root} (a task note has a `command` property)\n")


def described(command: object) -> tuple[Any, ...]:
    """What a click command is to a person: its help, parameters and subcommands."""
    params = [
        (p.name, p.opts, p.secondary_opts, p.required, p.default, getattr(p, "help", None))
        for p in getattr(command, "params", [])
    ]
    subcommands = getattr(command, "commands", {})
    return (
        type(command),
        getattr(command, "help", None),
        getattr(command, "epilog", None),
        params,
        {name: described(sub) for name, sub in subcommands.items()},
    )


def test_a_command_named_is_built_alone_as_the_whole_tree_has_it() -> None:
    whole = typer.main.get_command(app)
    names = list(getattr(whole, "commands", {}))
    assert len(names) > 20
    for name in names:
        for args in ([name], ["--vault", "x", name, "--json"], ["--vault=x", name], ["--", name]):
            alone = click_command(args)
            assert list(getattr(alone, "commands", {})) == [name], args
            assert described(alone)[:4] == described(whole)[:4]
            assert described(alone)[4][name] == described(whole)[4][name]


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--help"],
        ["--version"],
        ["lst"],
        ["--vault", "list"],
        ["--vault"],
        ["-x", "--vault", "y"],
    ],
)
def test_anything_but_a_command_named_gets_them_all(args: list[str]) -> None:
    """`--help` lists them, a mistyped name is told the nearest."""
    whole = typer.main.get_command(app)
    assert described(click_command(args)) == described(whole)


def test_the_program_leaves_its_objects_to_the_exit_without_a_last_collection() -> None:
    """`vaultsched` (the console script, `python -m vaultsched`) freezes its objects out of the
    garbage collector's reach once the command is done: the interpreter's exit then clears
    them without passing the collector over them all (13-17 ms after `--help`)."""
    script = (
        "import contextlib, gc, io, sys\n"
        "from vaultsched.cli import main\n"
        "sys.argv = ['vaultsched', '--help']\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    code = main()\n"
        "print(code, gc.get_freeze_count() > 1000)\n"
    )
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True)
    assert out.stdout.split() == ["0", "True"]
