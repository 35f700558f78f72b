"""The rich consoles vaultsched prints through, and aligned columns of vault text.

Every string they render goes through `terminal.escape`. Kept apart from `terminal` so that
escaping alone (error lines, JSON, logs) never loads rich: `--help` starts without it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO, Any

from rich.cells import cell_len
from rich.console import Console
from rich.text import Text

from vaultsched.adapters.terminal import escape


class SafeConsole(Console):
    """A rich console that escapes control characters in every string it is given to render
    (what `print` and table cells go through). Rich's own styling is added after, unharmed."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # Whether lines are laid out for a person's screen. Not `is_terminal`: FORCE_COLOR
        # makes that true in a pipe too, where colour is wanted but wrapping never is.
        self.on_terminal = self._force_terminal or (
            self._force_terminal is None and _isatty(self.file)
        )
        # Output to a pipe or a file is never wrapped: a printed command must stay one
        # copy-pasteable, grep-able line.
        if not self.on_terminal:
            self.soft_wrap = True
            self.width = 1 << 16  # tables too: never cropped to a guessed 80 columns

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(escape(text), **kwargs)


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # no such method; a closed file
        return False


# Two spaces between columns. A free column (a message, last) counts at most this much when
# columns are chosen to fit the screen, and runs on past the edge if longer (the terminal
# wraps it): a long message takes the room of the least useful columns, not all of it.
_GAP = "  "
_FREE = 30


@dataclass(frozen=True)
class Column:
    """One column of `print_columns`: its header and cells, and how much it matters.

    `rank` 0 is always shown; the others are added, lowest rank first, while they fit the
    terminal's width. A `free` column (a message, put last) is never padded: it may be long.
    """

    header: str
    cells: Sequence[Text]
    rank: int = 0
    right: bool = False
    free: bool = False

    @property
    def width(self) -> int:
        natural = max((cell.cell_len for cell in self.cells), default=0)
        natural = max(natural, cell_len(self.header))
        return min(natural, _FREE) if self.free else natural


def cell(text: str, style: str = "") -> Text:
    """A table cell from any string, vault text included: escaped, on one line."""
    return Text(escape(text, one_line=True), style=style)


def print_columns(
    console: SafeConsole, columns: Sequence[Column], *, header: bool = True, indent: str = ""
) -> None:
    """Aligned columns, one line per row, nothing in a cell ever cut or wrapped: on a
    terminal, the columns that fit its width (an id longer than the screen still shows
    whole and the terminal wraps it); into a pipe or a file, every column."""
    shown = _fitting([c for c in columns if any(c.cells)], console.width - len(indent))
    rows = zip(*(c.cells for c in shown), strict=True)
    if header:
        head = [Text(c.header, style="bold") for c in shown]
        console.print(_line(indent, shown, head), soft_wrap=True)
    for row in rows:
        console.print(_line(indent, shown, row), soft_wrap=True)


def _fitting(columns: list[Column], width: int) -> list[Column]:
    """The columns of rank 0, then the others by rank up to the first that does not fit (a
    less useful column never takes the place of a more useful one)."""
    shown = {i for i, c in enumerate(columns) if c.rank == 0}
    for extra in sorted(set(range(len(columns))) - shown, key=lambda i: columns[i].rank):
        trial = [c for i, c in enumerate(columns) if i in shown or i == extra]
        if sum(c.width for c in trial) + len(_GAP) * (len(trial) - 1) > width:
            break
        shown.add(extra)
    return [c for i, c in enumerate(columns) if i in shown]


def _line(indent: str, columns: list[Column], cells: Sequence[Text]) -> Text:
    line = Text(indent)
    for index, (column, text) in enumerate(zip(columns, cells, strict=True)):
        last = index == len(columns) - 1
        room = 0 if last and not column.right else column.width - text.cell_len
        padded = Text(" " * max(room, 0)) + text if column.right else text + " " * max(room, 0)
        line.append_text(padded if index == 0 else Text(_GAP) + padded)
    line.rstrip()
    return line
