"""What a note shows of a finished process: its status and message, its output made plain text.
Pure: the process's result in, text out."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from vaultsched.core.model import Status
from vaultsched.core.redact import Redactor

if TYPE_CHECKING:
    from vaultsched.adapters.runner import ProcessResult


def status_of(result: ProcessResult) -> tuple[Status, str]:
    if result.error:
        return Status.ERROR, result.error
    if result.timed_out:
        return Status.TIMEOUT, "timed out: the process group was terminated"
    if result.exit_code == 0:
        return Status.SUCCESS, ""
    if result.signal is not None:
        return Status.FAILED, f"killed by signal {result.signal}"
    return Status.FAILED, ""


CHECK_SKIP = 10  # the exit code a `check` gives for "nothing to do": the run is skipped


def gate_of(result: ProcessResult, redact: Redactor) -> tuple[Status, str] | None:
    """What a task's `check` decided: None, the run goes ahead (exit 0); `skipped` with the
    check's first line of output as the reason (exit 10); anything else fails closed:
    `blocked`, saying why."""
    if result.error:
        return Status.BLOCKED, f"check could not run: {result.error}"
    if result.timed_out:
        return Status.BLOCKED, "check timed out (it counts against the task's timeout)"
    if result.exit_code == 0:
        return None
    said = first_line(result.stdout, redact) or first_line(result.tail, redact)
    if result.exit_code == CHECK_SKIP:
        return Status.SKIPPED, said or "the check found nothing to do"
    how = f"killed by signal {result.signal}" if result.signal else f"exited {result.exit_code}"
    return Status.BLOCKED, f"check {how}" + (f": {said}" if said else "")


def first_line(data: bytes, redact: Redactor, limit: int = 300) -> str:
    """The first line of output with text on it, plain and redacted, at most `limit` long."""
    for line in clean_stdout(data[: 64 * 1024], cut=False, redact=redact).splitlines():
        if line.strip():
            return line.strip()[:limit]
    return ""


# String sequences (OSC, DCS, SOS, PM, APC) run to BEL or ST; an unterminated one is dropped up
# to the end of its line. CSI takes parameters; anything else is ESC plus one final byte,
# optionally after intermediate bytes (charset selection such as ESC ( B).
_ANSI = re.compile(
    r"\x1b[\]PX^_][^\x07\x1b\n]*(?:\x07|\x1b\\)?"
    r"|\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x9b[0-?]*[ -/]*[@-~]"
    r"|\x1b[ -/]*[0-~]"
    r"|\x1b"
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_LINE_END = re.compile(r"\r*\n")


def clean_output(
    tail: bytes, *, redact: Redactor | None = None, max_lines: int = 20, max_chars: int = 4000
) -> str:
    """What a note shows of a run's output: the last lines, plain text, within both limits.

    When lines are cut, a first line "… (N earlier lines not shown)" says so; it counts within
    `max_lines` and `max_chars`, because those limits are what the note promises its reader.
    Secrets are redacted in the whole tail before anything is cut, once as printed and once
    more as cleaned (an escape sequence printed inside a token hides it from the first pass).
    """
    text = tail.decode("utf-8", errors="replace")
    if redact is not None:
        text = redact(text)
    text = _ANSI.sub("", text)
    lines = [_CONTROL.sub("", _overwritten(line)) for line in _LINE_END.split(text)]
    if redact is not None:
        lines = redact("\n".join(lines)).split("\n")
    while lines and not lines[-1].strip():
        lines.pop()
    return _fit(lines, max(max_lines, 1), max(max_chars, 1))


def _overwritten(line: str) -> str:
    """A line redrawn with carriage returns (a progress bar) shows its last drawing."""
    if "\r" not in line:
        return line
    drawings = [part for part in line.split("\r") if part]
    return drawings[-1] if drawings else ""


def _fit(lines: list[str], max_lines: int, max_chars: int) -> str:
    if len(lines) <= max_lines and len("\n".join(lines)) <= max_chars:
        return "\n".join(lines)
    # Reserve room for the header at its longest, so the result stays within both limits.
    room = max_chars - len(_earlier(len(lines))) - 1
    shown: list[str] = []
    used = -1  # the first line shown needs no separator
    for line in reversed(lines[-(max_lines - 1) :] if max_lines > 1 else []):
        if used + 1 + len(line) > room:
            if not shown and room > 1:  # one huge last line: show its end
                shown.append("…" + line[len(line) - room + 1 :])
            break
        shown.append(line)
        used += 1 + len(line)
    hidden = len(lines) - len(shown)
    parts = [_earlier(hidden)] if hidden else []
    return "\n".join(parts + shown[::-1])


def _earlier(hidden: int) -> str:
    return f"… ({hidden} earlier {'line' if hidden == 1 else 'lines'} not shown)"


def clean_stdout(data: bytes, *, cut: bool, redact: Redactor | None = None) -> str:
    """A run's stdout as the text it hands on (its output note, the next run, an `after`
    task): plain text, secrets redacted, a progress bar's last drawing only. When `data` was
    cut at the limit, its unfinished last line is dropped (a secret cut in two is never half
    shown) and a last line says so."""
    text = data.decode("utf-8", errors="replace")
    if cut:
        text = text[: text.rfind("\n") + 1]
    if redact is not None:
        text = redact(text)
    text = _ANSI.sub("", text)
    text = "\n".join(_CONTROL.sub("", _overwritten(line)) for line in _LINE_END.split(text))
    if redact is not None:
        text = redact(text)
    if cut:
        text += f"… (output cut: only its first {len(data):,} bytes are kept)\n"
    return text
