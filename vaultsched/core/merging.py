"""Merging two versions of a note with nothing lost: a sync conflict, or a person's
save that raced one of our writes (vaultsched.adapters.notes).

What vaultsched writes never needs a textual merge: ledger files are append-only sets of lines,
and run blocks and digest blocks are views rebuilt from the merged ledger afterwards. So a
conflicted note is merged with its generated blocks set aside, keeping both sides' lines where
both changed the same place (the rule of `git merge-file --union`, which the tests hold this
to): the person's text is never dropped. It runs in-process, with difflib finding the changes:
the note writer merges while an editor may be saving every few milliseconds, and starting a
git process each time (4 ms) would lose that race for ever.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher

from vaultsched.core import blocks
from vaultsched.core.blocks import newline_of

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


def drop_merged_copies(merged: str, sides: Sequence[str]) -> str:
    """`merged`, a line merge of `sides`, less the second copy of a generated block the merge
    made. Each side owns one block of a kind (its last valid pair; an earlier one is the
    person's, say a block they copied). Where the two sides added theirs at places apart, the
    person's lines between them, git merges both in without a conflict. A block is a view of
    the ledger, so the copy goes: only a pair holding the very text of one side's own block,
    never the last (the one written from now on), only as many as the merge added, and only
    its own lines (the person's text around it stays as it is)."""
    for markers in (blocks.RUNS, blocks.DIGEST):
        merged = _drop_copies(merged, markers, sides)
    return merged


def _drop_copies(merged: str, markers: blocks.Markers, sides: Sequence[str]) -> str:
    spans = blocks.block_spans(merged, markers)
    extra = len(spans) - max((len(blocks.block_spans(side, markers)) for side in sides), default=0)
    if extra <= 0:
        return merged
    owned = {side[s[0] : s[1]] for side in sides if (s := blocks.find_block(side, markers))}
    copies = [(start, end) for start, end in spans[:-1] if merged[start:end] in owned]
    for start, end in reversed(copies[-extra:]):
        stop = end + (2 if merged.startswith("\r\n", end) else merged.startswith(("\n", "\r"), end))
        merged = merged[:start] + merged[stop:]
    return merged


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
    merged = union_merge(base_text, ours_text, theirs_text)
    return put_back(merged, kept or their_blocks)


def merge_back(base: str, saved: str, now: str) -> str:
    """`now` with the changes `saved` made to `base` put back, the save's lines first where
    both changed the same place (blocks aside, `now`'s kept): `now` itself, the very object,
    if it already holds them all."""
    base_text, _ = set_aside(base)
    saved_text, _ = set_aside(saved)
    now_text, kept = set_aside(now)
    merged = union_merge(base_text, saved_text, now_text)
    return now if merged == now_text else put_back(merged, kept)


@dataclass(frozen=True)
class _Hunk:
    """Lines base[start:end] replaced by `lines` on one side."""

    start: int
    end: int
    lines: list[str]
    side: int  # 0: ours, 1: theirs


def _hunks(base: list[str], other: list[str], side: int) -> list[_Hunk]:
    # Only the middle that differs goes to difflib: an edit is usually a line or two in a long
    # note, and difflib is quadratic in the lines it is given when many of them repeat.
    head, tail = _shared_ends(base, other)
    middle = SequenceMatcher(
        None, base[head : len(base) - tail], other[head : len(other) - tail], autojunk=False
    )
    return [
        _Hunk(head + i1, head + i2, other[head + j1 : head + j2], side)
        for tag, i1, i2, j1, j2 in middle.get_opcodes()
        if tag != "equal"
    ]


def _apply(base: list[str], start: int, end: int, hunks: list[_Hunk]) -> list[str]:
    """base[start:end] with these hunks (all inside it, in order) applied."""
    out: list[str] = []
    at = start
    for hunk in hunks:
        out += base[at : hunk.start] + hunk.lines
        at = hunk.end
    return out + base[at:end]


def union_merge(base: str, ours: str, theirs: str) -> str:
    """Three-way line merge. Changes to different places both apply; where both sides changed
    the same lines (or inserted at the same point) and differently, ours then theirs."""
    old, *sides = (text.splitlines(keepends=True) for text in (base, ours, theirs))
    hunks = sorted(
        _hunks(old, sides[0], 0) + _hunks(old, sides[1], 1), key=lambda h: (h.start, h.end)
    )
    out: list[str] = []
    at = 0
    for start, end, group in _overlapping(hunks):
        versions = [_apply(old, start, end, [h for h in group if h.side == s]) for s in (0, 1)]
        changed_by = {h.side for h in group}
        out += old[at:start]
        out += _union(*versions) if len(changed_by) == 2 else versions[changed_by.pop()]
        at = end
    return _join(out + old[at:], newline_of(base + ours + theirs))


def _join(lines: list[str], newline: str) -> str:
    """The lines as text, never gluing one to the next: a line that had no line break (the
    last of some version) gets one wherever another line now follows it."""
    return "".join(
        line if index == len(lines) - 1 or line.endswith(("\n", "\r")) else line + newline
        for index, line in enumerate(lines)
    )


def _overlapping(hunks: list[_Hunk]) -> list[tuple[int, int, list[_Hunk]]]:
    """Sorted hunks in groups that touch the same base lines: (start, end, hunks)."""
    groups: list[tuple[int, int, list[_Hunk]]] = []
    for hunk in hunks:
        if groups:
            start, end, group = groups[-1]
            # Overlapping, or a second insertion at the very same point.
            if hunk.start < end or hunk.start == start == end:
                groups[-1] = (start, max(end, hunk.end), [*group, hunk])
                continue
        groups.append((hunk.start, hunk.end, [hunk]))
    return groups


def _union(ours: list[str], theirs: list[str]) -> list[str]:
    """Both versions of a place both sides changed, ours first, the lines they share at either
    end given once (as git's zealous merge does). Lines compare without their line break: the
    last line of a note may have none in one version and one in the other."""
    mine, yours = _bare(ours), _bare(theirs)
    if mine == yours or not theirs:
        return ours
    head, tail = _shared_ends(mine, yours)
    # What each side put there, less the lines both share (a last line without its newline).
    added, wrote = mine[head : len(mine) - tail], yours[head : len(yours) - tail]
    if _generated(added) and not _generated(wrote):
        # A block vaultsched added where the person wrote: their lines first, as if the
        # block had been appended after them (where a block goes when a note has none).
        return _union(theirs, ours)
    return ours[: len(ours) - tail] + theirs[head:]


def _generated(lines: list[str]) -> bool:
    """Only set-aside blocks and the blank lines around them."""
    return PLACEHOLDER in lines and all(line.strip() in ("", PLACEHOLDER) for line in lines)


def _shared_ends(first: list[str], second: list[str]) -> tuple[int, int]:
    """How many lines the two share at the start, and then at the end."""
    shortest = min(len(first), len(second))
    head = 0
    while head < shortest and first[head] == second[head]:
        head += 1
    tail = 0
    while tail < shortest - head and first[-1 - tail] == second[-1 - tail]:
        tail += 1
    return head, tail


def _bare(lines: list[str]) -> list[str]:
    return [line.rstrip("\r\n") for line in lines]
