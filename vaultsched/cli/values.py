"""Command-line values of the plain types without pydantic.

typer (>= 0.29) checks each parameter's value with a pydantic TypeAdapter, built the first
time the parameter is processed (a flag left out and the root's `--vault` included, in every
command): importing pydantic alone takes longer than all the rest of `vaultsched list`. Where
the value click parsed is already what that adapter returns (a flag, a `str`, a `list[str]`,
a `Path`, which still gets typer's own checks and messages; an `int` left at its default), it
is taken as it is; any other value goes to typer's coercion as before (`-n 3`, for one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

from typer._click.core import Context, Parameter
from typer._coercion import RuntimeParam, build_runtime_param
from typer._param_types import coerce_cli_path
from typer.core import TyperArgument, TyperOption, _TyperParameter


class _Parsed(RuntimeParam):
    """The value as click parsed it, where that is what typer's TypeAdapter would return.
    (No fields of its own: no @dataclass, whose generated methods cost start-up time.)"""

    def _coerce_value(self, value: Any, param: _TyperParameter, ctx: Context) -> Any:
        kind, info = self.annotation, self.parameter_info
        if kind in (bool, str) and isinstance(value, kind):
            return value
        if kind == list[str] and isinstance(value, list | tuple) and _strings(value):
            return list(value)
        if kind is Path and isinstance(value, str):  # str in, str out: path_type None
            checked = coerce_cli_path(value, info, path_type=None, param=param, ctx=ctx)
            return Path(cast(str, checked))
        if kind is int and type(value) is int and _within(value, info.min, info.max):
            return value  # the default: typed by the command itself
        return build_runtime_param(param.type_descriptor)._coerce_value(value, param, ctx)


def _strings(values: list[Any] | tuple[Any, ...]) -> bool:
    return all(isinstance(item, str) for item in values)


def _within(value: int, low: float | None, high: float | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


def without_pydantic(params: list[Parameter]) -> list[Parameter]:
    """`params`, each plain one given the value click parsed (the command classes of
    `helptext` hand typer their parameters through here, `--help` among them)."""
    for param in params:
        if isinstance(param, TyperArgument | TyperOption) and param._runtime_param is None:
            descriptor = param.type_descriptor
            plain = descriptor.annotation in (bool, int, str, Path, list[str])
            if plain and descriptor.parameter_info.parser is None and not descriptor.is_file:
                param._runtime_param = _Parsed(descriptor.parameter_info, descriptor.annotation)
    return params
