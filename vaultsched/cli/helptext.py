"""How `--help` reads: the names a person types (TASK, PATH, N), never Python's types or
typer's `{TASK}` and `<list[str]>`, and examples to copy at the end, as `gh` shows them.

A command takes `cls=HelpCommand` and its examples as its epilog (`examples(...)`). The two
classes also hand typer each plain value as click parsed it (`values`): no pydantic."""

from __future__ import annotations

# typer (>= 0.29) carries its own copy of click: its commands are handed these classes.
from typer._click.core import Command, Context, Parameter
from typer._click.formatting import HelpFormatter, join_options
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

from vaultsched.cli.values import without_pydantic

Param = TyperArgument | TyperOption


def examples(*lines: str) -> str:
    """A command's epilog: command lines, printed as they are under `Examples:`."""
    return "\n".join(lines)


def metavar(param: Param) -> str:
    """The name shown for a parameter's value: its own, else one read from its type."""
    if param.metavar:
        return param.metavar
    kind = param.type_descriptor
    if kind.choices:
        return "|".join(str(choice) for choice in kind.choices)
    if kind.is_path:
        return "PATH"
    if kind.annotation is int:
        return "N"
    return (param.name or "value").upper()


def _params(command: Command, ctx: Context) -> list[Param]:
    return [p for p in command.get_params(ctx) if isinstance(p, Param) and not p.hidden]


def _usage_pieces(command: Command, ctx: Context) -> list[str]:
    """`[OPTIONS] TASK [DATE] [PATH]...`: brackets only around what may be left out."""
    pieces = [command.options_metavar] if command.options_metavar else []
    for param in _params(command, ctx):
        if isinstance(param, TyperArgument):
            name = metavar(param) if param.required else f"[{metavar(param)}]"
            pieces.append(name + ("..." if param.nargs != 1 else ""))
    return pieces


def _extras(param: Param) -> list[str]:
    """The bracketed notes after a parameter's help: its default, its range, required."""
    notes = []
    default = param.default
    if isinstance(param.show_default, str):
        notes.append(f"default: {param.show_default}")
    elif param.show_default and not _is_flag(param) and not _empty(default):
        notes.append(f"default: {default}")
    notes += _range(param.min, param.max)
    if isinstance(param, TyperOption) and param.required:
        notes.append("required")
    return notes


def _is_flag(param: Param) -> bool:
    return isinstance(param, TyperOption) and bool(param.is_flag or param.count)


def _empty(default: object) -> bool:
    return default is None or default is False or callable(default) or default in ("", (), [])


def _range(low: object, high: object) -> list[str]:
    if low is not None and high is not None:
        return [f"{low} to {high}"]
    if low is not None:
        return [f"at least {low}"]
    return [] if high is None else [f"at most {high}"]


def _row(param: Param) -> tuple[str, str]:
    if isinstance(param, TyperOption):
        names = join_options(param.opts)[0]
        if param.secondary_opts:
            names += " / " + join_options(param.secondary_opts)[0]
        if not _is_flag(param):
            names += f" {metavar(param)}"
    else:
        names = metavar(param) + ("..." if param.nargs != 1 else "")
    text = param.help or ""
    notes = _extras(param)
    if notes:
        text = f"{text}  [{'; '.join(notes)}]".strip()
    return names, text


def _format_params(command: Command, ctx: Context, formatter: HelpFormatter) -> None:
    params = _params(command, ctx)
    arguments = [_row(p) for p in params if isinstance(p, TyperArgument)]
    options = [_row(p) for p in params if isinstance(p, TyperOption)]
    for title, rows in (("Arguments", arguments), ("Options", options)):
        if rows:
            with formatter.section(title):
                formatter.write_dl(rows)


def _format_examples(epilog: str | None, formatter: HelpFormatter) -> None:
    """Each example on a line of its own, never re-wrapped: it must stay copy-pasteable."""
    if not epilog:
        return
    with formatter.section("Examples"):
        for line in epilog.splitlines():
            formatter.write(" " * formatter.current_indent + line + "\n")


class HelpCommand(TyperCommand):
    def get_params(self, ctx: Context) -> list[Parameter]:
        return without_pydantic(super().get_params(ctx))

    def collect_usage_pieces(self, ctx: Context) -> list[str]:
        return _usage_pieces(self, ctx)

    def format_options(self, ctx: Context, formatter: HelpFormatter) -> None:
        _format_params(self, ctx, formatter)

    def format_epilog(self, ctx: Context, formatter: HelpFormatter) -> None:
        _format_examples(self.epilog, formatter)


class HelpGroup(TyperGroup):
    def get_params(self, ctx: Context) -> list[Parameter]:
        return without_pydantic(super().get_params(ctx))

    def collect_usage_pieces(self, ctx: Context) -> list[str]:
        return [*_usage_pieces(self, ctx), self.subcommand_metavar]

    def format_options(self, ctx: Context, formatter: HelpFormatter) -> None:
        _format_params(self, ctx, formatter)
        self.format_commands(ctx, formatter)

    def format_epilog(self, ctx: Context, formatter: HelpFormatter) -> None:
        _format_examples(self.epilog, formatter)
