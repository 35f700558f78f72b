"""Control characters from the vault, what `trust` says changed, and lines laid out for a
terminal or a pipe."""

from __future__ import annotations

import contextlib
import fcntl
import io
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios

import pytest
from conftest import Cli, write_note
from rich.table import Table

from vaultsched.adapters.console import Column, SafeConsole, cell, print_columns
from vaultsched.adapters.terminal import dumps_json, escape
from vaultsched.trust.diff import describe, what_changed
from vaultsched.trust.fingerprint import Content, Snapshot


def test_escape_shows_control_characters_and_keeps_line_breaks_unless_one_line() -> None:
    assert escape("a\x1b[2Kb\x9bc\x07\x7f") == "a\\x1b[2Kb\\x9bc\\x07\\x7f"
    assert escape("r\u202eev") == "r\\u202eev"
    assert escape("one\ntwo\tthree") == "one\ntwo\tthree"
    assert escape("one\ntwo\r", one_line=True) == "one\\x0atwo\\x0d"
    assert escape("plain, ünïcode") == "plain, ünïcode"


def test_json_for_a_terminal_stays_json() -> None:
    text = dumps_json({"task": "E\x1b[2K\x9b\u202e"})
    assert "\x1b" not in text and "\x9b" not in text and "\u202e" not in text
    assert json.loads(text) == {"task": "E\x1b[2K\x9b\u202e"}


def snap(command: str = "sh", body: str | None = None, **files: str) -> Snapshot:
    def content(text: str) -> Content:
        return Content.of(text.encode())

    return Snapshot(
        keys={"command": command, "approval": "none"},
        body=content(body) if body is not None else None,
        files={rel.replace("__", "/"): content(text) for rel, text in files.items()},
    )


def test_what_changed_in_a_few_words() -> None:
    assert what_changed(snap(body="a"), snap(body="b")) == "its body (prompt) changed"
    assert what_changed(snap(scripts__x="1"), snap(scripts__x="2")) == "scripts/x changed"
    assert what_changed(snap("a"), snap("b")) == "its command changed"
    both = what_changed(snap("a", scripts__x="1"), snap("b", scripts__x="2"))
    assert both == "its command and scripts/x changed"
    many = what_changed(snap("a", a="1", b="1"), snap("b", a="2", b="2", c="3"))
    assert many == "its command, a and 2 more changed"


def test_describe_diffs_text_and_names_new_and_removed_files() -> None:
    before = snap(body="echo safe\n", old="x", kept="line 1\nline 2\n")
    now = snap(body="echo evil\n", new="fresh\n", kept="line 1\nline two\n")
    lines = describe("Tasks/T", before, now, known=True)
    assert lines[0] == "Tasks/T: changed since you last trusted it:"
    assert "    -echo safe" in lines and "    +echo evil" in lines
    assert "  new: new file (6 bytes)" in lines and "    +fresh" in lines
    assert "  old: removed" in lines
    assert "    -line 2" in lines and "    +line two" in lines
    binary = Snapshot(keys={}, files={"b.png": Content("00" * 32, 9, None)})
    assert describe("T", Snapshot(keys={}), binary, known=True)[1].startswith("  b.png: new")
    assert describe("T", None, now, known=False)[0] == "T: never trusted; it will run:"


@pytest.mark.parametrize("old", ["\x0b", "\x0c", "\r", "\x1c", "\x1d", "\x1e", "\x85", "\u2028"])
def test_a_change_between_line_break_characters_shows_in_the_diff(old: str) -> None:
    """Split on newline only: `a\\x0bb` -> `a\\x0cb` is a change a person must see."""
    new = "\x0c" if old != "\x0c" else "\x0b"
    lines = describe("T", snap(x=f"a{old}b\n"), snap(x=f"a{new}b\n"), known=True)
    assert f"    -a{escape(old)}b" in lines and f"    +a{escape(new)}b" in lines
    assert not any(old in line or new in line for line in lines)


def test_a_small_file_with_a_nul_is_a_text_diff_and_a_lost_newline_shows() -> None:
    lines = describe("T", snap(x="echo hi\n"), snap(x="echo hi\x00; rm -rf ~\n"), known=True)
    assert "    +echo hi\\x00; rm -rf ~" in lines
    lines = describe("T", snap(x="echo hi\n"), snap(x="echo hi"), known=True)
    assert "    +echo hi  (no newline at end of file)" in lines


def test_run_now_escapes_task_output_on_a_terminal_not_in_a_pipe(cli: Cli) -> None:
    printed = b"x\x1b]0;owned\x07\x1b[2Ky\xc2\x9b\xe2\x80\xaez \xff"
    script = cli.root / "scripts/p.py"
    script.parent.mkdir()
    script.write_text(f"import sys\nsys.stdout.buffer.write({printed!r})\n")
    write_note(cli.root, "Tasks/P.md", "---\ncommand: python3 scripts/p.py\n---\n")
    controller, terminal = pty.openpty()
    argv = [sys.executable, "-m", "vaultsched", "--vault", str(cli.root), "run-now", "P"]
    with subprocess.Popen(argv, stdout=terminal, stderr=subprocess.DEVNULL) as proc:
        os.close(terminal)
        shown = _read_all(controller)
        assert proc.wait(timeout=60) == 0
    assert "x\\x1b]0;owned\\x07\\x1b[2Ky\\x9b\\u202ez \ufffd" in shown.decode("utf-8")
    assert b"\x1b" not in shown
    piped = subprocess.run(argv, capture_output=True, check=True, timeout=60).stdout
    assert printed in piped  # into a pipe or a file: the bytes the task printed


def _read_all(controller: int) -> bytes:
    data = b""
    with contextlib.suppress(OSError):  # EIO once the child closed the terminal
        while chunk := os.read(controller, 65536):
            data += chunk
    os.close(controller)
    return data


def test_a_pipe_is_never_wrapped_even_when_colour_is_forced(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich then takes any file for a terminal
    monkeypatch.setenv("COLUMNS", "40")
    buffer = io.StringIO()
    console = SafeConsole(file=buffer)
    assert not console.on_terminal
    fix = 'vaultsched trust "Tasks/Maintenance/Yearly certificate renewal"'
    console.print(f"untrusted: Tasks/Maintenance/Yearly certificate renewal  ->  {fix}")
    table = Table("task")
    table.add_row("Tasks/Maintenance/Yearly certificate renewal " * 3)
    console.print(table)
    text = buffer.getvalue()
    assert f"  ->  {fix}\n" in text and "…" not in text
    assert ("Tasks/Maintenance/Yearly certificate renewal " * 3).strip() in text


def columns(*ranks: int) -> list[Column]:
    return [Column(f"C{r}", [cell("x" * 10)], rank=r) for r in ranks]


def test_columns_that_do_not_fit_are_left_out_by_rank_never_cut() -> None:
    buffer = io.StringIO()
    console = SafeConsole(file=buffer, width=36, force_terminal=True, color_system=None)
    print_columns(console, columns(0, 3, 1, 2))  # 10 + 3 x 12: one column too many
    assert buffer.getvalue().split() == ["C0", "C1", "C2"] + ["x" * 10] * 3
    buffer.seek(0), buffer.truncate()
    wide = [Column("ID", [cell("Tasks/" + "long name " * 10)]), *columns(1)]
    print_columns(console, wide, header=False)  # wider than the screen: whole, and alone
    assert buffer.getvalue() == "Tasks/" + "long name " * 9 + "long name\n"


def test_a_free_column_takes_the_rest_and_the_terminal_wraps_it() -> None:
    buffer = io.StringIO()
    console = SafeConsole(file=buffer, width=60, force_terminal=True, color_system=None)
    message = Column("MESSAGE", [cell("word " * 20 + "\x1b[2K")], free=True)
    print_columns(console, [*columns(0, 1), message])  # counts 30 columns, not 107
    (head, row) = buffer.getvalue().splitlines()
    assert head.split() == ["C0", "C1", "MESSAGE"]
    assert row.endswith("word word \\x1b[2K") and len(row) > 60


def test_list_on_an_80_column_terminal_keeps_ids_whole(cli: Cli) -> None:
    name = "Tasks/Maintenance/Yearly certificate renewal"
    write_note(cli.root, f"{name}.md", "---\nschedule: 0 3 1 12 *\ncommand: 'true'\n---\n")
    controller, terminal = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    argv = [sys.executable, "-m", "vaultsched", "--vault", str(cli.root), "list"]
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}  # the terminal's width
    with subprocess.Popen(argv, stdout=terminal, stderr=subprocess.DEVNULL, env=env) as proc:
        os.close(terminal)
        shown = _read_all(controller).decode("utf-8")
        assert proc.wait(timeout=60) == 0
    lines = re.sub("\x1b\\[[0-9;]*m", "", shown).splitlines()  # bold headers
    assert any(line.startswith(name) for line in lines) and "…" not in shown
    assert all(len(line.rstrip()) <= 80 for line in lines)
