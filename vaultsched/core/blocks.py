"""Splicing vaultsched's generated blocks into a person's notes. Pure text in, text out.

A note belongs to its author; vaultsched owns only the lines between its two marker lines. So
every edit here keeps every other character as it was (CRLF, a missing final newline, odd front
matter), and what counts as a marker line is decided the way Obsidian would see the note: a
marker quoted inside a code block or sitting in the YAML front matter is the user's text.
"""

from __future__ import annotations

import functools
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from markdown_it import MarkdownIt

RUNS_BEGIN = "%% vaultsched:runs:begin %%"
RUNS_END = "%% vaultsched:runs:end %%"
DIGEST_BEGIN = "%% vaultsched:digest:begin %%"
DIGEST_END = "%% vaultsched:digest:end %%"
OUTPUT_BEGIN = "%% vaultsched:output:begin %%"
OUTPUT_END = "%% vaultsched:output:end %%"


@dataclass(frozen=True)
class Markers:
    begin: str
    end: str


RUNS = Markers(RUNS_BEGIN, RUNS_END)
DIGEST = Markers(DIGEST_BEGIN, DIGEST_END)
OUTPUT = Markers(OUTPUT_BEGIN, OUTPUT_END)

# The line breaks markdown-it normalises (and Obsidian's editor splits on). Using exactly these
# keeps our line numbers equal to markdown-it's token maps; str.splitlines would also split on
# \f, \x1c, \u2028 ... and drift out of step.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_CODE_TOKENS = frozenset({"fence", "code_block"})
# A note's YAML front matter: the one definition, which `taskfile` reads notes with too.
FRONT_MATTER = re.compile(
    r"\A\ufeff?---[ \t]*\r?\n(?P<yaml>(?:.*?\r?\n)??)(?:---|\.\.\.)[ \t]*(?:\r?\n|\Z)", re.S
)
# Git writes conflict markers at column 0, seven characters long.
_CONFLICT_OURS = re.compile(r"<{7}(?:[ \t].*)?")
_CONFLICT_SPLIT = re.compile(r"={7}[ \t]*")
_CONFLICT_THEIRS = re.compile(r">{7}(?:[ \t].*)?")


class UnsafeBlockError(ValueError):
    """The generated text would not be found again by the next splice (a bug in the caller)."""


@dataclass(frozen=True)
class _Line:
    start: int  # first character of the line
    end: int  # end of its content, before the line break
    stop: int  # first character after the line break


@dataclass(frozen=True)
class _Hit:
    is_begin: bool
    line: _Line


def newline_of(text: str) -> str:
    """The note's newline style: CRLF if most of its line breaks are CRLF, else LF."""
    return _newline_of_parts(text)


def _newline_of_parts(*parts: str) -> str:
    # Parts are counted apart: joined, a "\r" ending one and a "\n" starting the next would
    # make up a CRLF that the note does not have.
    crlf = sum(part.count("\r\n") for part in parts)
    lf = sum(part.count("\n") for part in parts) - crlf
    return "\r\n" if crlf > lf else "\n"


def find_block(text: str, markers: Markers) -> tuple[int, int] | None:
    """Span of the valid block: start of its begin line to the end of its end line's content."""
    pair = _find_pair(text, markers)
    return None if pair is None else (pair[0].start, pair[1].end)


def block_spans(text: str, markers: Markers) -> list[tuple[int, int]]:
    """Span of every valid pair in order, as `find_block` gives the last (the one we write)."""
    hits = _marker_hits(text, markers)
    return [(a.line.start, b.line.end) for a, b in pairwise(hits) if a.is_begin and not b.is_begin]


def splice_block(text: str, markers: Markers, inner: str) -> str:
    """Put `inner` between the markers of the valid block, or append a fresh block at the end.

    `inner` uses "\n"; it is written in the note's newline style, followed by a blank line if
    it does not end with one. The marker lines themselves are rewritten in canonical form.

    Raises UnsafeBlockError if `inner` itself would hide the block from the next read (a marker
    line of its own, or a code fence left open): writing it would grow a new block every run.
    """
    pair = _find_pair(text, markers)
    if pair is not None:
        replaced = _replace(text, markers, pair, inner)
        if replaced is not None:
            return replaced
        # Rewriting can change how the text after the block parses (say, a quote the end
        # marker was lazily part of), which may bring a later marker pair out of a code block:
        # leave the user's text alone then, as for a broken pair.
    newline = newline_of(text)
    return _append(text, markers, _as_lines(inner, newline), newline)


def has_malformed_markers(text: str, markers: Markers) -> bool:
    """True unless the note has no marker lines or exactly one clean begin/end pair."""
    kinds = [hit.is_begin for hit in _marker_hits(text, markers)]
    return kinds not in ([], [True, False])


def has_conflict_markers(text: str) -> bool:
    """True if the note holds a git conflict (`<<<<<<<`, `=======`, `>>>>>>>` lines, in order).

    A lone `=======` line is a setext heading underline, so all three are required. Code blocks
    are not exempt: git puts its markers wherever the conflict is.
    """
    if "<<<<<<<" not in text:  # spares splitting a long note (a digest) into lines
        return False
    expected = iter((_CONFLICT_OURS, _CONFLICT_SPLIT, _CONFLICT_THEIRS))
    pattern = next(expected)
    for line in _lines(text):
        if pattern.fullmatch(text, line.start, line.end):
            next_pattern = next(expected, None)
            if next_pattern is None:
                return True
            pattern = next_pattern
    return False


def _find_pair(text: str, markers: Markers) -> tuple[_Line, _Line] | None:
    # The last begin line whose next marker line is an end line: a begin orphaned by a deleted
    # end marker is skipped, and the fresh block we append after it is the one found next time.
    for first, second in reversed(list(pairwise(_marker_hits(text, markers)))):
        if first.is_begin and not second.is_begin:
            return first.line, second.line
    return None


def _marker_hits(text: str, markers: Markers) -> list[_Hit]:
    """Marker lines that count: outside the front matter and outside code blocks, in order."""
    body_start = _body_start(text)
    body = text[body_start:]
    candidates: list[tuple[int, _Hit]] = []
    index, counted = 0, 0  # the line number of body[counted]
    for match in _marker_text(markers).finditer(body):
        start = max(body.rfind("\n", 0, match.start()), body.rfind("\r", 0, match.start())) + 1
        breaks = _LINE_BREAK.search(body, match.end())
        end = len(body) if breaks is None else breaks.start()
        if body[start : match.start()].strip(" \t") or body[match.end() : end].strip(" \t"):
            continue  # not alone on its line
        index += _breaks(body, counted, start)
        counted = start
        stop = end if breaks is None else breaks.end()
        line = _Line(body_start + start, body_start + end, body_start + stop)
        candidates.append((index, _Hit(match[0] == markers.begin, line)))
    if not candidates:
        return []  # spares the markdown parse for the common note without markers
    code = _code_lines_at(body, [(index, hit.line.start - body_start) for index, hit in candidates])
    return [hit for index, hit in candidates if index not in code]


def _code_lines_at(body: str, lines: list[tuple[int, int]]) -> frozenset[int]:
    """Which of these lines of `body` (each its index and first character) are code: all of
    its code lines, or at least those among `lines`.

    A note is mostly the person's text above our block, and a digest a long list: parsing either
    whole at every write was most of a burst's landing. A line that starts at its first column
    with no fence above it is never code (only a fence or an indent makes code, and an indent
    cannot carry on into a line at the first column), which settles the marker lines of most
    notes and of every digest without a parse. Failing that, when the text above the first of
    them leaves no block open there (`_closed_above`), markdown-it reads the lines from there as
    it would read them alone (its top level keeps no state from one block to the next): only
    they are parsed."""
    fence = _FENCE.search(body)
    fenced_from = len(body) if fence is None else fence.start()
    if all(start <= fenced_from and body[start : start + 1] not in _INDENT for _, start in lines):
        return frozenset()
    index, start = lines[0]
    if index == 0 or not _closed_above(body, start):
        return _code_lines(body)
    return frozenset(index + line for line in _code_lines(body[start:]))


_INDENT = (" ", "\t")
_FENCE = re.compile("```|~~~")
# What may leave a block open across a blank line, at the start of a line of the text above: an
# HTML block (`<pre>`, `<!--` ... run to their own end), a fence (to its closing fence).
_SPANS_BLANK_LINES = re.compile(r"(?:\A|[\r\n])[ \t]*<|```|~~~")


def _closed_above(body: str, start: int) -> bool:
    """True if nothing in `body[:start]` can reach the line at `start` (`start` > 0): that line
    starts at its first column (so no list item, indented code or quote goes on into it) after
    a blank line (which ends a paragraph and a quote), and the text above holds nothing that
    runs on past a blank line."""
    if body[start : start + 1] in _INDENT:
        return False
    end = start - (2 if body.startswith("\r\n", max(start - 2, 0)) else 1)  # line above: end
    above = max(body.rfind("\n", 0, end), body.rfind("\r", 0, end)) + 1
    if body[above:end].strip(" \t"):
        return False
    if _SPANS_BLANK_LINES.search(body, 0, start) is not None:
        return False
    # markdown-it stops reading a note past 20 levels of nesting, and inside a list that cut-off
    # swallows the rest of the note: lines that deep must be read with all that is above them.
    # A level takes at least one character of a line's lead (a `>`, a list marker, an indent;
    # a tab, up to four columns), so a lead under NESTED_LEAD cannot reach it.
    return all(
        len(lead) + 3 * lead.count("\t") < NESTED_LEAD for lead in _LEAD.findall(body, 0, start)
    )


NESTED_LEAD = 12  # well under the 20 levels markdown-it's nesting cut-off needs
_LEAD = re.compile(r"(?:\A|(?<=[\r\n]))[ \t>*+\-0-9.)]+")


@functools.cache
def _marker_text(markers: Markers) -> re.Pattern[str]:
    """Either marker, wherever it is: a pattern that starts with their common text is found by
    a fast scan, where one that starts at each line's start tries every character (a digest
    has thousands of lines, and is spliced after every batch)."""
    shared = next(
        (i for i, (a, b) in enumerate(zip(markers.begin, markers.end, strict=False)) if a != b), 0
    )
    common = markers.begin[:shared]
    rests = "|".join(re.escape(marker[len(common) :]) for marker in (markers.begin, markers.end))
    return re.compile(f"{re.escape(common)}(?:{rests})")


def _breaks(text: str, start: int, stop: int) -> int:
    """How many line breaks (as _LINE_BREAK has them) `text[start:stop]` holds, neither end
    splitting a CRLF."""
    crlf = text.count("\r\n", start, stop)
    return text.count("\n", start, stop) + text.count("\r", start, stop) - crlf


def _body_start(text: str) -> int:
    match = FRONT_MATTER.match(text)
    return 0 if match is None else match.end()


@functools.cache
def _markdown() -> MarkdownIt:
    """The one parser, made when a note's blocks are first looked at: importing markdown-it
    is slow, and most commands (`--help`, `list`, `next`) never parse a note's body."""
    from markdown_it import MarkdownIt

    # Only block structure decides what is code, so inline parsing is skipped (half the cost).
    # Instances hold only configuration; each parse gets its own state, so sharing one is safe.
    return MarkdownIt("commonmark").disable("inline")


class _ParseCache:
    """The code lines of the texts parsed last, up to PARSED_KEPT characters of them in all:
    the same text is parsed again and again (a splice re-parses its result to check it, the
    next write reads that result back, a merge retried against a busy editor parses its base
    and the late save each time), and a parse is milliseconds on a long note. Bounded by
    size, not count: a day's digest, read back at its next rebuild, must outlast the thousand
    task notes written meanwhile, and a few huge notes must not hold on to gigabytes."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._kept: OrderedDict[str, frozenset[int]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()  # note writers splice on several threads

    def get(self, body: str) -> frozenset[int] | None:
        with self._lock:
            found = self._kept.get(body)
            if found is not None:
                self._kept.move_to_end(body)
            return found

    def put(self, body: str, lines: frozenset[int]) -> None:
        with self._lock:
            if body not in self._kept:
                self._size += len(body)
            self._kept[body] = lines
            while self._size > self._limit and len(self._kept) > 1:
                oldest, _ = self._kept.popitem(last=False)
                self._size -= len(oldest)


PARSED_KEPT = 4_000_000  # characters: a digest of 10,000 runs is about 600,000
_parsed = _ParseCache(PARSED_KEPT)


def _code_lines(body: str) -> frozenset[int]:
    found = _parsed.get(body)
    if found is not None:
        return found
    lines: set[int] = set()
    for token in _markdown().parse(body):
        if token.type in _CODE_TOKENS and token.map is not None:
            lines.update(range(*token.map))
    found = frozenset(lines)
    _parsed.put(body, found)
    return found


def _lines(text: str, offset: int = 0) -> list[_Line]:
    lines: list[_Line] = []
    position = 0
    for match in _LINE_BREAK.finditer(text):
        lines.append(_Line(offset + position, offset + match.start(), offset + match.end()))
        position = match.end()
    if position < len(text):
        lines.append(_Line(offset + position, offset + len(text), offset + len(text)))
    return lines


def _as_lines(inner: str, newline: str) -> str:
    """`inner` as whole lines in the note's newline style, ending with a blank line.

    The blank line puts the end marker at the top level whatever `inner` ends with (a quote,
    a list item), so the user's text after the block parses the same after every splice.
    """
    content = _LINE_BREAK.sub(newline, inner)
    if content and not content.endswith(newline):
        content += newline
    if content != newline and not content.endswith(newline + newline):
        content += newline
    return content


def _replace(text: str, markers: Markers, pair: tuple[_Line, _Line], inner: str) -> str | None:
    """`text` with new content in the block `pair`, or None if the result would not hold."""
    begin, end = pair
    # The style comes from the user's text alone: counted with our own lines, a note with mixed
    # endings could flip style from one splice to the next.
    newline = _newline_of_parts(text[: begin.start], text[end.end :])
    content = _as_lines(inner, newline)
    # The marker lines are inside the span, so they are ours to rewrite in canonical form: an
    # indented end marker could read as code behind new content, and a lone "\r" after the
    # begin marker could merge with content starting with "\n" into one CRLF break.
    replaced = (
        text[: begin.start] + markers.begin + newline + content + markers.end + text[end.end :]
    )
    return replaced if _holds_block(replaced, markers, begin.start, content) else None


def _append(text: str, markers: Markers, content: str, newline: str) -> str:
    prefix = text + ("" if not text or text[-1] in "\r\n" else newline)
    fence = _open_fence(prefix)
    if fence is not None:
        # The note ends inside a code fence it never closed, which would swallow our markers
        # and make every run append another block. Closing it only adds text after theirs.
        prefix += fence + newline
    prefix += _blank_line(prefix, newline)
    result = prefix + markers.begin + newline + content + markers.end + newline
    if not _holds_block(result, markers, len(prefix), content):
        raise UnsafeBlockError(
            "generated block text contains a marker line or leaves a code fence open"
        )
    return result


def _blank_line(prefix: str, newline: str) -> str:
    """What separates the user's (whole) lines from the block by one blank line."""
    if not prefix:
        return ""
    last = _lines(prefix)[-1]
    if not prefix[last.start : last.end].strip(" \t"):  # blank as markdown sees it
        return ""
    if prefix.endswith("\r") and newline == "\n":
        return "\n\n"  # "\r" + "\n" reads as one CRLF break, not two
    return newline


def code_lines(text: str) -> frozenset[int]:
    """The indices of the lines of `text` (no front matter) that are inside code blocks."""
    return _code_lines(text)


def open_fence(text: str) -> str | None:
    """The markup of a top-level code fence still open at the end of `text` (read whole, as
    text in the middle of a note: no front matter), if any."""
    return _open_fence_in(text)


def _open_fence(prefix: str) -> str | None:
    """The markup of a top-level code fence still open at the end of `prefix`, if any."""
    return _open_fence_in(prefix[_body_start(prefix) :])


def _open_fence_in(body: str) -> str | None:
    if "```" not in body and "~~~" not in body:
        return None
    probe = len(_lines(body))  # the index a line added at the end would get
    for token in _markdown().parse(body + "probe"):
        if token.type == "fence" and token.level == 0 and token.map is not None:
            first, stop = token.map
            if first < probe < stop:
                return token.markup
    return None


def _holds_block(text: str, markers: Markers, start: int, content: str) -> bool:
    """True if the next read of `text` finds the block starting at `start` holding `content`."""
    pair = _find_pair(text, markers)
    return (
        pair is not None
        and pair[0].start == start
        and text[pair[0].stop : pair[1].start] == content
    )
