"""`--help` of every command, as a person reads it in a pipe at 80 columns: the names they type
(TASK, PATH, N), never Python's types or typer's brackets, and examples to copy."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
import typer

from vaultsched.cli.app import app, main

# What typer shows when a parameter has no readable name: `<list[str]>`, `{TASK}`, `[[TASK]]`,
# `<int range>`, `1<=x<=10000` and `x>=0`, click's `TEXT` and `INTEGER`.
FORBIDDEN = ("list[", "[[", "{", "<", ">=")
TYPE_NAMES = re.compile(r"\b(str|int|float|bool|NoneType|TEXT|INTEGER|BOOLEAN|FLOAT)\b")


def command_paths() -> Iterator[tuple[str, ...]]:
    """Every command and group, `()` for the root, walked from the app itself."""

    def walk(command: object, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        yield path
        for name, sub in sorted(getattr(command, "commands", {}).items()):
            yield from walk(sub, (*path, name))

    yield from walk(typer.main.get_command(app), ())


PATHS = list(command_paths())


def help_of(path: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> str:
    assert main([*path, "--help"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


def test_the_walk_finds_every_command() -> None:
    names = {" ".join(path) for path in PATHS}
    assert {"", "next", "run-now", "trust", "hooks", "hooks install", "service status"} <= names
    assert len(PATHS) > 25


@pytest.mark.parametrize("path", PATHS, ids=lambda path: " ".join(path) or "vaultsched")
def test_help_shows_names_not_types_and_examples(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    text = help_of(path, capsys)
    assert text.startswith(f"Usage: {' '.join(('vaultsched', *path))} [OPTIONS]")
    assert [bad for bad in FORBIDDEN if bad in text] == [], text
    assert TYPE_NAMES.findall(text) == [], text
    assert [line for line in text.splitlines() if len(line) > 80] == []
    examples = text.split("\nExamples:\n", 1)[1].splitlines()
    assert examples, text
    assert all(line.startswith("  vaultsched ") for line in examples), examples
    if path:  # a command's examples run that command
        assert all(f" {' '.join(path)}" in line for line in examples), examples


def test_usage_brackets_only_what_may_be_left_out(capsys: pytest.CaptureFixture[str]) -> None:
    assert help_of(("history",), capsys).startswith("Usage: vaultsched history [OPTIONS] TASK\n")
    assert help_of(("next",), capsys).startswith("Usage: vaultsched next [OPTIONS] [TASK]\n")
    untrust = help_of(("untrust",), capsys)
    assert untrust.startswith("Usage: vaultsched untrust [OPTIONS] TASK...\n")
    validate = help_of(("validate",), capsys)
    assert validate.startswith("Usage: vaultsched validate [OPTIONS] [PATH]...\n")
    assert "  PATH...  Notes or folders" in validate


def test_options_show_their_value_name_default_and_range(
    capsys: pytest.CaptureFixture[str],
) -> None:
    text = help_of(("next",), capsys)
    assert "--from ISO-TIME " in text
    assert "-n, --count N " in text and "[default: 5; 1 to 10000]" in text
    assert "--vault PATH " in help_of((), capsys)  # named from its type when it has no metavar
    assert "-n N " in help_of(("history",), capsys)


def test_a_missing_argument_is_named_as_help_names_it(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["history"]) == 2
    assert "Missing argument 'TASK'" in capsys.readouterr().err
