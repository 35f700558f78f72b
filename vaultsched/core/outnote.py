"""A run's output as a note of its own (a task's `output` key). Pure: text in, text out.

The output is written as the markdown it is (a briefing, a summary), not fenced like the tail
in the run block: it is there to be read. Only what would break the note around it is changed:
a line that reads as one of vaultsched's marker lines, a code fence left open (it would swallow
the end marker), an Obsidian `%%` comment left open (it would hide the person's text after the
block in reading view).

A note vaultsched creates gets two properties naming the task and the run, then the output in
its block, so the next run to the same path replaces the output instead of piling up. The begin
marker is always the block's first line, so no output can become a note's front matter.
"""

from __future__ import annotations

import json
import re

from vaultsched.core import blocks
from vaultsched.core.views import fence_output

_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# Any line that could read as a marker of ours, of any block: in the output it is text.
_MARKER_LIKE = re.compile(r"^([ \t]*)%%(?=[ \t]*vaultsched:)", re.MULTILINE)
_INLINE_CODE = re.compile(r"(`+)(?!`).*?(?<!`)\1(?!`)")
# What YAML refuses unescaped in a scalar (PyYAML's non-printables) or reads as a line break.
_NOT_YAML_PRINTABLE = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]")
# What a wikilink target cannot hold (Obsidian refuses these in note names anyway).
_WIKILINK_UNSAFE = re.compile(r"[\[\]|#^`\r\n]|%%")


def put_output(text: str, *, task_name: str, run_id: str, stdout: str, new: bool) -> str:
    """The note `text` with `stdout` in its output block. `new`: the note is vaultsched's to
    create, so an empty one gets the properties too (a person's empty note gets the block
    alone). Applied again by git to the committed version, so it depends on nothing else."""
    if new and not text:
        text = front_matter(task_name, run_id)
    try:
        return blocks.splice_block(text, blocks.OUTPUT, output_block(stdout))
    except blocks.UnsafeBlockError:
        # Whatever markdown defeats the repairs below still cannot defeat a fence.
        return blocks.splice_block(text, blocks.OUTPUT, fence_output(stdout) + "\n")


def front_matter(task_name: str, run_id: str) -> str:
    """The properties of a note vaultsched creates: which task and which run wrote it."""
    task = f"[[{task_name}]]" if not _WIKILINK_UNSAFE.search(task_name) else task_name
    # JSON strings are YAML double-quoted scalars: nothing in a name can end the value early.
    return f"---\nvaultsched_task: {_quoted(task)}\nvaultsched_run: {_quoted(run_id)}\n---\n"


def output_block(stdout: str) -> str:
    """The lines between the output markers: `stdout` with "\\n" line breaks, made safe."""
    text = _LINE_BREAK.sub("\n", stdout)
    # `%\%` reads as `%%` but no longer as a marker (nor as a comment delimiter).
    text = _MARKER_LIKE.sub(r"\1%\\%", text)
    if text and not text.endswith("\n"):
        text += "\n"
    fence = blocks.open_fence(text)
    if fence is not None:
        text += fence + "\n"
    if _opens_a_comment(text):
        text += "%%\n"  # closes it here: the output's tail is hidden, never the person's text
    return text


def _opens_a_comment(text: str) -> bool:
    """True if `text` leaves an Obsidian `%%` comment open (code does not count)."""
    code = blocks.code_lines(text)
    count = 0
    for index, line in enumerate(text.split("\n")):
        if index not in code:
            count += _INLINE_CODE.sub("", line).count("%%")
    return count % 2 == 1


def _quoted(value: str) -> str:
    quoted = json.dumps(value, ensure_ascii=False)
    return _NOT_YAML_PRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", quoted)
