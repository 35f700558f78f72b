"""Resolving a sync conflict with nothing lost (SPEC §8).

What vaultsched writes never needs a textual merge: ledger files are append-only sets of lines,
and run blocks and digest blocks are views rebuilt from the merged ledger afterwards. So a
conflicted note is merged with its generated blocks set aside, keeping both sides' lines where
both changed the same place (`git merge-file --union`): the person's text is never dropped.
"""

from __future__ import annotations

from vaultsched import blocks
from vaultsched.git import merge_file_union

PLACEHOLDER = "%% vaultsched:block-placeholder %%"


def set_aside(text: str) -> tuple[str, list[str]]:
    """The note with each valid generated block replaced by a placeholder line, and the blocks."""
    kept: list[str] = []
    for markers in (blocks.RUNS, blocks.DIGEST):
        span = blocks.find_block(text, markers)
        if span is not None:
            kept.append(text[span[0] : span[1]])
            text = text[: span[0]] + PLACEHOLDER + text[span[1] :]
    return text, kept


def put_back(text: str, kept: list[str]) -> str:
    """Restore the blocks at the (first) placeholder; extra placeholders from a union go."""
    head, found, tail = text.partition(PLACEHOLDER)
    if not found:
        return text
    tail = "".join(line for line in tail.splitlines(keepends=True) if PLACEHOLDER not in line)
    return head + "\n".join(kept) + tail


def union_lines(ours: str, theirs: str) -> str:
    """Both sides' records, ours first, each once (a ledger file is a set of lines)."""
    lines = ours.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    seen = set(lines)
    extra = [line if line.endswith("\n") else line + "\n" for line in theirs.splitlines(True)]
    return "".join(lines + [line for line in extra if line not in seen])


def merge_note(base: str, ours: str, theirs: str) -> str:
    """Three-way merge of a note's own text; the generated blocks come back from `ours`."""
    base_text, _ = set_aside(base)
    ours_text, kept = set_aside(ours)
    theirs_text, their_blocks = set_aside(theirs)
    merged = merge_file_union(base_text, ours_text, theirs_text)
    return put_back(merged, kept or their_blocks)
