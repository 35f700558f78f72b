"""Text from the vault on a terminal: control characters shown escaped, never passed through.

A task id, a command or a script line can carry ESC sequences that clear a line, move the
cursor or retitle the window, so a terminal could hide what a person is asked to trust. Every
way vaultsched writes to a terminal (the rich consoles of `console`, error lines, JSON, daemon
logs) goes through `escape`, and so does a task's output that `run-now` streams to a terminal.
"""

from __future__ import annotations

import codecs
import json
import logging
import re
from typing import IO, Any, BinaryIO, cast

# C0 controls but tab and newline, DEL, C1 controls (0x9b is a one-byte CSI on some
# terminals), and the invisible format characters: bidi overrides that reorder what is shown,
# zero-width spaces and joiners that hide a difference, line and paragraph separators.
_CONTROL = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\xad\u061c\u180e\u200b-\u200f\u2028-\u202e"
    "\u2060-\u206f\ufeff\ufff9-\ufffb]"
)
_LINE_BREAKS = re.compile("[\n\t]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def _json_escaped(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def escape(text: str, *, one_line: bool = False) -> str:
    """`text` with control characters as `\\x1b`; with `one_line`, newline and tab too."""
    text = _CONTROL.sub(_escaped, text)
    return _LINE_BREAKS.sub(_escaped, text) if one_line else text


def dumps_json(data: Any) -> str:
    """JSON for a terminal: `json` escapes C0 itself; C1 and bidi controls it leaves raw."""
    return _CONTROL.sub(_json_escaped, json.dumps(data, indent=2, ensure_ascii=False))


class SafeFormatter(logging.Formatter):
    """Daemon log lines carry task ids and messages from notes."""

    def format(self, record: logging.LogRecord) -> str:
        return escape(super().format(record))


class _EscapedEcho:
    """A task's live output on a terminal, control characters escaped as they arrive. Bytes are
    decoded incrementally, so a character split across two reads is kept whole; bytes that are
    not UTF-8 are shown as U+FFFD (the run's log keeps them raw)."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def write(self, chunk: bytes) -> int:
        self.stream.write(escape(self.decoder.decode(chunk)).encode("utf-8"))
        return len(chunk)

    def flush(self) -> None:
        self.stream.flush()


def echo_stream(stream: IO[bytes], *, is_terminal: bool) -> BinaryIO:
    """Where `run-now` streams a task's output: escaped on a terminal (a task printing what a
    sync wrote could retitle the window or hide lines), raw into a pipe or file, where a person
    wants the bytes the task printed."""
    # Only write and flush are ever called on the echo (runner._Sink).
    return cast(BinaryIO, _EscapedEcho(stream)) if is_terminal else cast(BinaryIO, stream)
