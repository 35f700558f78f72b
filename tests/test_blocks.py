"""Splicing generated blocks into notes people wrote: every byte outside the block is theirs."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from vaultsched.core import blocks
from vaultsched.core.blocks import (
    DIGEST,
    DIGEST_BEGIN,
    DIGEST_END,
    RUNS,
    RUNS_BEGIN,
    RUNS_END,
    Markers,
    UnsafeBlockError,
    find_block,
    has_conflict_markers,
    has_malformed_markers,
    newline_of,
    splice_block,
)

INNER = "## Runs\n\n> [!success] 2024-05-01 07:00:00 · success\n> trigger: schedule\n\n"
OTHER = "## Runs\n\n> [!failure] 2024-05-02 07:00:00 · failed\n\n"
BLOCK = f"{RUNS_BEGIN}\n{INNER}{RUNS_END}\n"


def outside(text: str, markers: Markers = RUNS) -> str:
    """The note without its valid block: what belongs to the user."""
    span = find_block(text, markers)
    assert span is not None, text
    return text[: span[0]] + text[span[1] :]


def inside(text: str, markers: Markers = RUNS) -> str:
    """The lines between the valid block's markers."""
    span = find_block(text, markers)
    assert span is not None, text
    block = text[span[0] : span[1]]
    first_break = block.index("\n") + 1
    return block[first_break : block.rindex("\n") + 1]


# -- constants and newline_of -----------------------------------------------------------------


def assert_appended_then_replaced(text: str) -> None:
    """The first splice appends a block after the text; the next replaces only that block."""
    first = splice_block(text, RUNS, INNER)
    assert first == text + "\n" + BLOCK
    second = splice_block(first, RUNS, OTHER)
    assert second == text + "\n" + f"{RUNS_BEGIN}\n{OTHER}{RUNS_END}\n"


def test_marker_constants() -> None:
    assert (RUNS.begin, RUNS.end) == ("%% vaultsched:runs:begin %%", "%% vaultsched:runs:end %%")
    assert (DIGEST.begin, DIGEST.end) == (DIGEST_BEGIN, DIGEST_END)
    assert DIGEST_BEGIN == "%% vaultsched:digest:begin %%"
    assert DIGEST_END == "%% vaultsched:digest:end %%"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "\n"),
        ("no break at all", "\n"),
        ("a\nb\n", "\n"),
        ("a\r\nb\r\n", "\r\n"),
        ("a\r\nb", "\r\n"),
        ("a\r\nb\r\nc\n", "\r\n"),  # mostly CRLF: one stray LF does not flip the style
        ("a\nb\nc\r\n", "\n"),
    ],
)
def test_newline_of(text: str, expected: str) -> None:
    assert newline_of(text) == expected


# -- appending a fresh block ------------------------------------------------------------------


def test_empty_note_gets_just_the_block() -> None:
    assert splice_block("", RUNS, INNER) == BLOCK


def test_append_after_text_with_final_newline_leaves_one_blank_line() -> None:
    assert splice_block("Body.\n", RUNS, INNER) == "Body.\n\n" + BLOCK


def test_append_after_text_already_ending_in_a_blank_line() -> None:
    assert splice_block("Body.\n\n", RUNS, INNER) == "Body.\n\n" + BLOCK
    assert splice_block("Body.\n  \n", RUNS, INNER) == "Body.\n  \n" + BLOCK


def test_append_to_text_without_final_newline_keeps_it_an_exact_prefix() -> None:
    text = "Body with trailing spaces   "
    result = splice_block(text, RUNS, INNER)
    assert result == text + "\n\n" + BLOCK
    assert result.startswith(text)


def test_crlf_note_gets_a_crlf_block_and_its_bytes_stay() -> None:
    text = "---\r\ncommand: echo hi\r\n---\r\nBody\r\nno final newline"
    result = splice_block(text, RUNS, INNER)
    assert result.startswith(text)
    added = result[len(text) :]
    assert "\n" not in added.replace("\r\n", "")
    assert added == ("\n\n" + BLOCK).replace("\n", "\r\n")
    assert inside(result).replace("\r\n", "\n") == INNER


def test_inner_with_crlf_or_no_final_newline_is_normalised() -> None:
    assert inside(splice_block("x\n", RUNS, "a\r\nb\n\n")) == "a\nb\n\n"
    assert inside(splice_block("x\r\n", RUNS, "a\nb\n\n")) == "a\r\nb\r\n\r\n"


@pytest.mark.parametrize(
    ("inner", "content"),
    [("", "\n"), ("\n", "\n"), ("a", "a\n\n"), ("a\n", "a\n\n"), ("> q\n\n", "> q\n\n")],
)
def test_content_always_ends_with_a_blank_line(inner: str, content: str) -> None:
    # So the end marker never lazily joins a quote or list item that `inner` ends with.
    assert inside(splice_block("x\n", RUNS, inner)) == content


def test_empty_inner_gives_one_blank_line() -> None:
    result = splice_block("x\n", RUNS, "")
    assert result == f"x\n\n{RUNS_BEGIN}\n\n{RUNS_END}\n"
    assert splice_block(result, RUNS, INNER) == "x\n\n" + BLOCK


def test_note_that_is_only_front_matter() -> None:
    for text in ("---\ncommand: echo\n---\n", "---\ncommand: echo\n---"):
        result = splice_block(text, RUNS, INNER)
        assert result.startswith(text)
        assert result.endswith("\n\n" + BLOCK)


def test_front_matter_formatting_comments_and_key_order_survive() -> None:
    text = (
        "---\n"
        "# my comment, keep me\n"
        "schedule:   '@daily'    # odd spacing\n"
        "command: >-\n"
        "  echo folded\n"
        "tags: [b, a]\n"
        "---\n"
        "Zażółć gęślą jaźń 🙂 — unicode body\t\n"
    )
    assert_appended_then_replaced(text)


def test_unicode_line_separators_are_not_line_breaks() -> None:
    # str.splitlines would split on these; markdown-it and Obsidian do not.
    text = f"a\u2028{RUNS_BEGIN}\x0cb\n"
    result = splice_block(text, RUNS, INNER)
    assert result == text + "\n" + BLOCK


# -- replacing an existing block ----------------------------------------------------------------


def test_replacing_keeps_text_before_and_after_byte_for_byte() -> None:
    before = "---\nb: 2\na: 1 # c\n---\nIntro  \n\n"
    after = "\nText the user wrote after the block.\r\nno newline"
    text = before + BLOCK.rstrip("\n") + after
    result = splice_block(text, RUNS, OTHER)
    assert result == before + f"{RUNS_BEGIN}\n{OTHER}{RUNS_END}" + after


def test_marker_lines_with_surrounding_whitespace_count_and_are_rewritten() -> None:
    text = f"x\n  {RUNS_BEGIN}\t\nold\n\t{RUNS_END}  \ny"
    assert find_block(text, RUNS) == (2, text.index("\ny"))
    result = splice_block(text, RUNS, "new\n\n")
    assert result == f"x\n{RUNS_BEGIN}\nnew\n\n{RUNS_END}\ny"
    assert outside(result) == outside(text)


def test_end_marker_as_last_line_without_newline() -> None:
    text = f"x\n\n{RUNS_BEGIN}\nold\n{RUNS_END}"
    assert find_block(text, RUNS) == (3, len(text))
    assert splice_block(text, RUNS, "new\n\n") == f"x\n\n{RUNS_BEGIN}\nnew\n\n{RUNS_END}"


def test_find_block_span_excludes_the_end_lines_newline() -> None:
    text = "a\n\n" + BLOCK
    start, end = find_block(text, RUNS) or (0, 0)
    assert text[start:end] == BLOCK.rstrip("\n")


def test_splicing_the_same_inner_twice_changes_nothing() -> None:
    once = splice_block("Body\n", RUNS, INNER)
    assert splice_block(once, RUNS, INNER) == once


def test_runs_and_digest_blocks_are_independent() -> None:
    text = splice_block("x\n", RUNS, "runs\n\n")
    text = splice_block(text, DIGEST, "digest\n\n")
    assert inside(text, RUNS) == "runs\n\n"
    assert inside(text, DIGEST) == "digest\n\n"
    updated = splice_block(text, RUNS, "runs 2\n\n")
    assert inside(updated, DIGEST) == "digest\n\n"
    assert outside(updated) == outside(text)


# -- markers that do not count ------------------------------------------------------------------


def test_inline_mention_of_a_marker_is_not_a_marker() -> None:
    text = f"Use `{RUNS_BEGIN}` and then {RUNS_END} in prose.\n"
    assert find_block(text, RUNS) is None
    assert not has_malformed_markers(text, RUNS)


@pytest.mark.parametrize(
    "body",
    [
        f"```\n{RUNS_BEGIN}\nx\n{RUNS_END}\n```\n",
        f"~~~markdown\n{RUNS_BEGIN}\nx\n{RUNS_END}\n~~~\n",
        f"para\n\n    {RUNS_BEGIN}\n    x\n    {RUNS_END}\n",
        f"- item\n\n  ```\n  {RUNS_BEGIN}\n  {RUNS_END}\n  ```\n",
        f"> ```\n> {RUNS_BEGIN}\n> {RUNS_END}\n> ```\n",
    ],
    ids=["backtick-fence", "tilde-fence", "indented-code", "fence-in-list", "fence-in-quote"],
)
def test_markers_inside_code_blocks_do_not_count(body: str) -> None:
    text = "Docs for the block format:\n\n" + body
    assert find_block(text, RUNS) is None
    assert not has_malformed_markers(text, RUNS)
    result = splice_block(text, RUNS, INNER)
    assert result.startswith(text)
    assert inside(result) == INNER
    assert splice_block(result, RUNS, OTHER) == text + "\n" + f"{RUNS_BEGIN}\n{OTHER}{RUNS_END}\n"


def test_markers_inside_front_matter_do_not_count() -> None:
    text = f"---\nnote: |\n  {RUNS_BEGIN}\n  {RUNS_END}\ncommand: echo\n---\nBody\n"
    assert find_block(text, RUNS) is None
    assert not has_malformed_markers(text, RUNS)
    result = splice_block(text, RUNS, INNER)
    assert result == text + "\n" + BLOCK


def test_a_fence_in_front_matter_does_not_swallow_the_body() -> None:
    # Parsed as markdown, an indented ``` in a YAML block scalar would open a code fence running
    # to the end of the note; the front matter is not markdown, so it must not.
    text = f"---\nnote: |\n  ```\ncommand: echo\n---\nBody\n\n{BLOCK}"
    assert find_block(text, RUNS) is not None
    assert splice_block(text, RUNS, OTHER).count(RUNS_BEGIN) == 1


def test_note_ending_inside_an_unclosed_fence_gets_it_closed_before_the_block() -> None:
    text = "Body\n\n````python\nprint('never closed')"
    result = splice_block(text, RUNS, INNER)
    assert result == text + "\n````\n\n" + BLOCK
    again = splice_block(result, RUNS, OTHER)
    assert again.count(RUNS_BEGIN) == 1
    assert outside(again) == outside(result)


def test_unclosed_tilde_fence_is_closed_with_tildes() -> None:
    result = splice_block("~~~~\ncode\n", RUNS, INNER)
    assert result == "~~~~\ncode\n~~~~\n\n" + BLOCK


# -- broken pairs: append a fresh block, touch nothing ------------------------------------------


def test_user_deleted_end_marker() -> None:
    text = f"Body\n\n{RUNS_BEGIN}\n## Runs\nold run\n"
    assert find_block(text, RUNS) is None
    assert has_malformed_markers(text, RUNS)
    assert_appended_then_replaced(text)


def test_user_deleted_begin_marker() -> None:
    text = f"Body\n\n## Runs\nold run\n{RUNS_END}\nmore\n"
    assert find_block(text, RUNS) is None
    assert has_malformed_markers(text, RUNS)
    first = splice_block(text, RUNS, INNER)
    assert first == text + "\n" + BLOCK
    assert splice_block(first, RUNS, OTHER).count(RUNS_BEGIN) == 1


def test_markers_in_the_wrong_order() -> None:
    text = f"{RUNS_END}\nx\n{RUNS_BEGIN}\n"
    assert find_block(text, RUNS) is None
    assert splice_block(text, RUNS, INNER) == text + "\n" + BLOCK


def test_two_blocks_update_the_last_and_keep_the_first() -> None:
    first_block = f"{RUNS_BEGIN}\ncopied\n{RUNS_END}\n"
    text = "Body\n\n" + first_block + "\nmiddle\n\n" + BLOCK
    assert has_malformed_markers(text, RUNS)
    result = splice_block(text, RUNS, OTHER)
    fresh = f"{RUNS_BEGIN}\n{OTHER}{RUNS_END}\n"
    assert result == "Body\n\n" + first_block + "\nmiddle\n\n" + fresh


def test_orphan_begin_after_a_good_pair_leaves_the_pair_in_charge() -> None:
    text = BLOCK + f"\nnotes\n{RUNS_BEGIN}\n"
    assert has_malformed_markers(text, RUNS)
    result = splice_block(text, RUNS, OTHER)
    assert result == f"{RUNS_BEGIN}\n{OTHER}{RUNS_END}\n" + f"\nnotes\n{RUNS_BEGIN}\n"


def test_indented_end_marker_is_rewritten_so_it_cannot_become_code() -> None:
    # Lazily continuing "old", the indented end marker counts; left indented after our content
    # (which ends with a blank line) it would read as indented code.
    text = f"{RUNS_BEGIN}\nold\n      {RUNS_END}\nafter\n"
    assert find_block(text, RUNS) is not None
    result = splice_block(text, RUNS, "new\n\n")
    assert result == f"{RUNS_BEGIN}\nnew\n\n{RUNS_END}\nafter\n"


def test_rewrite_that_would_expose_a_later_pair_appends_instead() -> None:
    # The end marker lazily continues a list item, so the indented fence after it is inside
    # that item and the second pair is code. Behind new content the end marker stands at the
    # top level, the fence line becomes paragraph text, and the second pair would count.
    text = f"{RUNS_BEGIN}\n- item\n{RUNS_END}\n    ```\n    {RUNS_BEGIN}\n    {RUNS_END}\n"
    assert find_block(text, RUNS) == (0, text.index("\n    ```"))
    result = splice_block(text, RUNS, INNER)
    assert result == text + "\n" + BLOCK
    assert splice_block(result, RUNS, OTHER) == text + "\n" + f"{RUNS_BEGIN}\n{OTHER}{RUNS_END}\n"


def test_newline_style_is_taken_from_the_users_text_only() -> None:
    # Two CRLF lines of the user's against LF lines in the old block: CRLF wins, and keeps
    # winning once our CRLF lines replace the LF ones (counting ours would flip it back).
    text = f"a\r\nb\r\n{RUNS_BEGIN}\nold\nold\nold\n{RUNS_END}\n"
    once = splice_block(text, RUNS, "x\n")
    assert once == f"a\r\nb\r\n{RUNS_BEGIN}\r\nx\r\n\r\n{RUNS_END}\n"
    assert splice_block(once, RUNS, "x\n") == once


def test_lone_cr_line_breaks_do_not_merge_with_ours() -> None:
    result = splice_block("a\r", RUNS, INNER)
    assert result == "a\r\n\n" + BLOCK
    replaced = splice_block(f"x\r{RUNS_BEGIN}\rold\r{RUNS_END}\r", RUNS, "\nnew\n\n")
    assert replaced == f"x\r{RUNS_BEGIN}\n\nnew\n\n{RUNS_END}\r"


# -- unsafe inner text is refused -----------------------------------------------------------------


@pytest.mark.parametrize(
    "inner",
    [f"{RUNS_END}\n", f"  {RUNS_BEGIN}\n", "```\nunclosed\n", f"x\r{RUNS_END}"],
    ids=["end-marker", "begin-marker", "open-fence", "marker-after-lone-cr"],
)
@pytest.mark.parametrize("text", ["", "Body\n", BLOCK], ids=["empty", "no-block", "block"])
def test_inner_that_would_hide_the_block_is_refused(text: str, inner: str) -> None:
    with pytest.raises(UnsafeBlockError):
        splice_block(text, RUNS, inner)


def test_quoted_marker_lines_in_inner_are_fine() -> None:
    inner = f"> {RUNS_END}\n> ```\n> {RUNS_BEGIN}\n\n"
    result = splice_block("x\n", RUNS, inner)
    assert inside(result) == inner
    assert not has_malformed_markers(result, RUNS)


# -- doctor's checks -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "malformed"),
    [
        ("", False),
        ("just text\n", False),
        (BLOCK, False),
        ("x\n\n" + BLOCK + "after\n", False),
        (f"{RUNS_BEGIN}\n", True),
        (f"{RUNS_END}\n", True),
        (f"{RUNS_END}\n{RUNS_BEGIN}\n", True),
        (BLOCK + BLOCK, True),
        (f"{RUNS_BEGIN}\n{BLOCK}", True),
        (f"{DIGEST_BEGIN}\n", False),  # the other kind of block
    ],
)
def test_has_malformed_markers(text: str, malformed: bool) -> None:
    assert has_malformed_markers(text, RUNS) is malformed


CONFLICT = "<<<<<<< HEAD\nmine\n=======\ntheirs\n>>>>>>> origin/main\n"


@pytest.mark.parametrize(
    ("text", "conflicted"),
    [
        (CONFLICT, True),
        ("before\n" + CONFLICT.replace("\n", "\r\n") + "after", True),
        ("<<<<<<<\nmine\n=======\ntheirs\n>>>>>>>", True),
        ("```\n" + CONFLICT + "```\n", True),  # git puts markers wherever the conflict is
        ("Title\n=======\n", False),  # a setext heading
        ("> <<<<<<< HEAD\n> =======\n> >>>>>>> x\n", False),  # quoted in a callout
        ("<<<<<<<< eight\n=======\n>>>>>>> x\n", False),
        (">>>>>>> x\n=======\n<<<<<<< HEAD\n", False),
        ("<<<<<<< HEAD\nmine\n", False),
        ("", False),
    ],
)
def test_has_conflict_markers(text: str, conflicted: bool) -> None:
    assert has_conflict_markers(text) is conflicted


# -- properties ----------------------------------------------------------------------------------

_USER_LINES = st.sampled_from(
    [
        RUNS_BEGIN,
        RUNS_END,
        f"  {RUNS_BEGIN}  ",
        f"\t{RUNS_END}",
        f"    {RUNS_BEGIN}",
        f"> {RUNS_END}",
        f"- {RUNS_BEGIN}",
        f"Inline {RUNS_BEGIN} mention",
        DIGEST_BEGIN,
        "```",
        "````md",
        "~~~",
        "    indented code",
        "---",
        "...",
        "%%",
        "",
        "   ",
        "text",
        "> quote",
        "- item",
        "  continued",
        "<!--",
        "<pre>",
        "key: value # comment",
        "# Heading",
        "=======",
        "Zażółć 🙂",
        "trailing   ",
    ]
)
_LINE = st.one_of(_USER_LINES, _USER_LINES, st.text(max_size=8))
_BREAK = st.sampled_from(["\n", "\n", "\r\n", "\r\n", "\r"])


@st.composite
def user_texts(draw: st.DrawFn) -> str:
    lines = draw(st.lists(_LINE, max_size=14))
    breaks = draw(st.lists(_BREAK, min_size=len(lines), max_size=len(lines)))
    text = "".join(line + brk for line, brk in zip(lines, breaks, strict=True))
    if draw(st.booleans()):
        text = text.rstrip("\r\n")
    return text


_INNER_LINES = st.sampled_from(
    [
        "## Runs",
        "",
        ">",
        "> [!success]- 2024-05-01 07:00:00 · success",
        f"> {RUNS_END}",
        f"> {RUNS_BEGIN}",
        "> ```",
        "> ````",
        "> ---",
        "- 07:00:00 [[Tasks/a|a]] — failed",
        "Zażółć 🙂",
    ]
)
inners = st.lists(_INNER_LINES, max_size=8).map(lambda lines: "".join(f"{x}\n" for x in lines))


def users_newline(text: str) -> str:
    """The newline style of the text around the block (counted apart: no CRLF across it)."""
    span = find_block(text, RUNS)
    if span is None:
        return newline_of(text)
    before, after = text[: span[0]], text[span[1] :]
    crlf = before.count("\r\n") + after.count("\r\n")
    lf = before.count("\n") + after.count("\n") - crlf
    return "\r\n" if crlf > lf else "\n"


def content_of(inner: str, newline: str) -> str:
    """What the block holds for `inner`: whole lines in `newline`, then a blank line."""
    content = inner.replace("\n", newline)
    if content == newline or content.endswith(newline * 2):
        return content
    return content + newline


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=user_texts(), first=inners, second=inners)
@example(text="```", first=INNER, second=OTHER)
@example(text=f"{RUNS_BEGIN}\r{RUNS_END}", first="\n", second="")
@example(text="---\na: 1\n---", first=INNER, second=OTHER)
def test_splicing_is_stable_and_keeps_the_users_text(text: str, first: str, second: str) -> None:
    once = splice_block(text, RUNS, first)
    # Replaced in place: the style of the text around the block; appended: of the whole text.
    styles = {users_newline(text), newline_of(text)}
    assert inside(once) in {content_of(first, newline) for newline in styles}
    if find_block(text, RUNS) is None:
        assert once.startswith(text)
    else:  # the block was replaced in place, or (a pair that breaks on rewrite) appended to
        assert outside(once) == outside(text) or once.startswith(text)
    twice = splice_block(once, RUNS, second)
    assert outside(twice) == outside(once)
    assert inside(twice) == content_of(second, users_newline(once))
    assert splice_block(once, RUNS, first) == once


def _marker_hits_line_by_line(text: str, markers: Markers) -> list[tuple[bool, int, int, int]]:
    """The marker lines as found before the one-scan search: every line of the body read."""
    start = blocks._body_start(text)
    body = text[start:]
    code = blocks.code_lines(body)
    found = []
    for index, line in enumerate(blocks._lines(body, start)):
        stripped = text[line.start : line.end].strip(" \t")
        if stripped in (markers.begin, markers.end) and index not in code:
            found.append((stripped == markers.begin, line.start, line.end, line.stop))
    return found


@given(text=user_texts(), markers=st.sampled_from([RUNS, DIGEST]))
@example(text=f"a\r\n  {RUNS_BEGIN} \t\r{RUNS_END}x\n{RUNS_END}", markers=RUNS)
@example(text=f"{RUNS_BEGIN} {RUNS_END}\n\r\n{RUNS_END}", markers=RUNS)
@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
def test_the_one_scan_finds_the_marker_lines_reading_each_line_finds(
    text: str, markers: Markers
) -> None:
    hits = [
        (hit.is_begin, hit.line.start, hit.line.end, hit.line.stop)
        for hit in blocks._marker_hits(text, markers)
    ]
    assert hits == _marker_hits_line_by_line(text, markers)


def test_parses_are_kept_by_size_not_count() -> None:
    cache = blocks._ParseCache(limit=10)
    cache.put("abcd", frozenset({1}))
    cache.put("efgh", frozenset({2}))
    assert cache.get("abcd") == frozenset({1})  # now the newest
    cache.put("ijkl", frozenset())  # 12 characters: the oldest goes
    assert cache.get("efgh") is None
    assert cache.get("abcd") == frozenset({1}) and cache.get("ijkl") == frozenset()
    cache.put("x" * 50, frozenset())  # one text over the limit is still kept, alone
    assert cache.get("x" * 50) == frozenset() and cache.get("abcd") is None


# Lines that open, continue or close every kind of block markdown-it knows, for the text above a
# block (what the marker lines are judged by is parsed from the first marker line on, when the
# text above cannot reach it).
_ABOVE_LINES = st.sampled_from(
    [
        *("", "", "  ", "\t", "text", "# Heading", "Heading", "===", "---", "***", "    code"),
        *("\tcode", "> quote", ">", "> > deep", "> ```", "- item", "  item text", "1. one"),
        *("2) two", "* star", "+ plus", "   - nested", "     deep item", "```", "~~~", "````"),
        *("``` py", "<pre>", "</pre>", "<!--", "-->", "<div>", "</div>", "<script>", "<?php"),
        *("?>", "<![CDATA[", "]]>", "<!DOCTYPE x>", "<a href='x'>", " <p>", "[ref]: /url"),
        *('"title', '  "title"', "[ref]:", "  /url", "| a | b |", "|---|---|", "%%", "%% x %%"),
        *(RUNS_BEGIN, RUNS_END, f"  {RUNS_END}", f"    {RUNS_BEGIN}", f"> {RUNS_BEGIN}"),
    ]
)


@st.composite
def texts_with_a_block(draw: st.DrawFn) -> str:
    """The person's text, a blank line or not, a block, more of their text."""
    parts = [
        draw(st.lists(st.one_of(_ABOVE_LINES, st.text(max_size=6)), max_size=12)),
        draw(st.sampled_from([[""], [""], [], ["  "]])),
        [RUNS_BEGIN],
        draw(st.lists(st.one_of(_INNER_LINES, _ABOVE_LINES), max_size=6)),
        draw(st.sampled_from([[RUNS_END], [RUNS_END], [f" {RUNS_END}"], []])),
        draw(st.lists(_ABOVE_LINES, max_size=5)),
    ]
    lines = [line for part in parts for line in part]
    breaks = draw(st.lists(_BREAK, min_size=len(lines), max_size=len(lines)))
    front = draw(st.sampled_from(["", "---\na: 1\n---\n"]))
    return front + "".join(line + brk for line, brk in zip(lines, breaks, strict=True))


@given(text=texts_with_a_block())
@example(text=f"<pre>\n\n{RUNS_BEGIN}\n```\n{RUNS_END}\n")
@example(text=f"- a\n\n  {RUNS_BEGIN}\n{RUNS_END}\n")
@example(text=f"> a\n\n{RUNS_BEGIN}\n{RUNS_END}\n")
@example(text=f"[x]: /u\n\n{RUNS_BEGIN}\n    ```\n{RUNS_END}\n")
# Past markdown-it's nesting cut-off a list swallows the rest of the note, fence and all.
@example(text="- " * 25 + f"x\n\n{RUNS_BEGIN}\n```\n{RUNS_END}\n```\n\n{RUNS_END}\n")
@example(text="".join("  " * n + "- x\n" for n in range(30)) + f"\n{RUNS_BEGIN}\n```\n{RUNS_END}\n")
@example(text="\t- " * 8 + f"x\n\n{RUNS_BEGIN}\n```\n{RUNS_END}\n```\n\n{RUNS_END}\n")
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_marker_lines_judged_from_the_first_are_those_the_whole_note_gives(text: str) -> None:
    hits = [
        (hit.is_begin, hit.line.start, hit.line.end, hit.line.stop)
        for hit in blocks._marker_hits(text, RUNS)
    ]
    assert hits == _marker_hits_line_by_line(text, RUNS)


def _parses(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts markdown-it parses from now on."""
    parsed: list[str] = []
    real = blocks._code_lines

    def counting(body: str) -> frozenset[int]:
        parsed.append(body)
        return real(body)

    monkeypatch.setattr(blocks, "_code_lines", counting)
    return parsed


ABOVE = "---\ntags: [x]\n---\n# Plan\n\n" + "A paragraph of the person's own words.\n\n" * 50


def test_a_block_below_plain_text_is_spliced_parsing_only_the_block(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A splice parses the lines from the block on, not the person's text above it, which a
    burst of a thousand notes paid for in each note."""
    parsed = _parses(monkeypatch)
    fenced = "## Runs\n\n> [!success] 10:00 · success\n>\n> ```\n> output\n> ```\n"
    once = splice_block(ABOVE, RUNS, fenced)
    twice = splice_block(once, RUNS, fenced.replace("output", "more"))
    assert twice == ABOVE + f"{RUNS_BEGIN}\n{fenced.replace('output', 'more')}\n{RUNS_END}\n"
    assert parsed and all(body.startswith(RUNS_BEGIN) for body in parsed)


def test_a_digest_is_spliced_without_a_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    """No fence above a marker line at the first column: it cannot be code, nothing is parsed
    (a digest is a list as long as the day, rebuilt with every batch)."""
    parsed = _parses(monkeypatch)
    day = "".join(f"- 10:00:{n % 60:02} [[Tasks/T{n}|T{n}]] — success\n" for n in range(500))
    once = splice_block("# 2026-12-02\n", DIGEST, day)
    assert splice_block(once, DIGEST, day + "- 11:00:00 [[Tasks/X|X]] — failed\n") != once
    assert parsed == []
