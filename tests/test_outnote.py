"""A run's output as a note: the text of a new note, the block in an existing one."""

from __future__ import annotations

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from vaultsched.core import blocks
from vaultsched.core.outnote import front_matter, output_block, put_output

RUN = "20260301T070000-abc123"


def put(text: str, stdout: str, *, new: bool = False, run_id: str = RUN) -> str:
    return put_output(text, task_name="Daily briefing", run_id=run_id, stdout=stdout, new=new)


def block_of(text: str) -> str:
    span = blocks.find_block(text, blocks.OUTPUT)
    assert span is not None, text
    return text[span[0] : span[1]]


def test_a_new_note_names_its_task_and_run_and_holds_the_output_in_its_block() -> None:
    assert put("", "# Briefing\n\n- rain at 3\n", new=True) == (
        "---\n"
        'vaultsched_task: "[[Daily briefing]]"\n'
        f'vaultsched_run: "{RUN}"\n'
        "---\n"
        "\n"
        "%% vaultsched:output:begin %%\n"
        "# Briefing\n"
        "\n"
        "- rain at 3\n"
        "\n"
        "%% vaultsched:output:end %%\n"
    )


def test_the_next_run_to_the_same_note_replaces_the_output() -> None:
    first = put("", "first\n", new=True)
    second = put(first, "second\n", run_id="20260302T070000-def456")
    assert "first" not in second and "second\n" in block_of(second)
    assert second.count(blocks.OUTPUT_BEGIN) == 1
    assert second.startswith(first[: first.index(blocks.OUTPUT_BEGIN)])  # properties kept


def test_an_existing_note_keeps_every_byte_outside_the_block() -> None:
    mine = "---\ntags: [daily]\n---\r\n# My page\r\n\r\nkeep me  \r\n"
    once = put(mine, "out 1\n")
    assert once.startswith(mine) and "vaultsched_task" not in once
    after = "\r\nwritten after the block\r\n"
    twice = put(once + after, "out 2\n")
    assert twice.startswith(mine) and twice.endswith(after)
    assert "out 1" not in twice and "out 2" in twice


def test_an_empty_existing_note_gets_the_block_first_and_no_properties() -> None:
    text = put("", "---\nfoo: bar\n---\nbody\n")
    assert text.startswith(blocks.OUTPUT_BEGIN + "\n")
    assert blocks.FRONT_MATTER.match(text) is None


def test_a_note_made_by_a_person_meanwhile_is_spliced_not_replaced() -> None:
    text = put("typed first\n", "out\n", new=True)
    assert text.startswith("typed first\n") and "vaultsched_task" not in text


@pytest.mark.parametrize(
    "name",
    ['He said "hi"', "back\\slash", "tab\there", "odd\x85next", "a: b - c", "Zürich 日報"],
)
def test_the_properties_stay_valid_yaml_whatever_the_task_is_called(name: str) -> None:
    parsed = yaml.safe_load(front_matter(name, RUN).strip("-\n"))
    assert parsed["vaultsched_task"] == f"[[{name}]]"
    assert parsed["vaultsched_run"] == RUN


def test_a_name_a_wikilink_cannot_hold_is_written_as_text() -> None:
    parsed = yaml.safe_load(front_matter("a]]b|c", RUN).strip("-\n"))
    assert parsed["vaultsched_task"] == "a]]b|c"


@pytest.mark.parametrize(
    "stdout",
    [
        "%% vaultsched:output:end %%\nafter\n",
        "  %% vaultsched:runs:begin %%\n",
        "```python\nnever closed\n",
        "~~~~\nnever closed\n",
        "50%% done\n",
        "`%%` in code, then %% open\n",
        "---\ntitle: not front matter\n---\n",
        "no final newline",
        "\r\nlone\rbreaks\r\n",
    ],
)
def test_no_output_breaks_the_note_around_its_block(stdout: str) -> None:
    mine = "# Mine\n"
    for text in (put("", stdout, new=True), put(mine, stdout)):
        again = put(text + "after the block\n", stdout)
        assert again.count(blocks.OUTPUT_BEGIN) == 1, again
        assert again.endswith(blocks.OUTPUT_END + "\nafter the block\n")
        assert not blocks.has_malformed_markers(again, blocks.OUTPUT)
        assert not blocks.has_malformed_markers(again, blocks.RUNS)


def test_the_output_is_written_as_markdown_not_fenced() -> None:
    assert output_block("# Title\n\n| a | b |\n|---|---|\n") == "# Title\n\n| a | b |\n|---|---|\n"


def test_an_open_comment_is_closed_inside_the_block() -> None:
    assert output_block("50%% done").endswith("50%% done\n%%\n")
    assert output_block("%%hidden%% shown\n") == "%%hidden%% shown\n"
    assert output_block("```\n%%\n```\n") == "```\n%%\n```\n"  # code is not a comment


@given(st.text(st.characters(codec="utf-8"), max_size=300))
def test_any_output_gives_one_block_that_the_next_run_replaces(stdout: str) -> None:
    mine = "# Mine\n\nkeep\n"
    once = put(mine, stdout)
    twice = put(once, "plain\n")
    assert twice.startswith(mine)
    assert twice.count(blocks.OUTPUT_BEGIN) == 1 or blocks.OUTPUT_BEGIN in stdout
    span = blocks.find_block(twice, blocks.OUTPUT)
    assert span is not None and "plain\n" in twice[span[0] : span[1]]
    assert put(twice, "plain\n") == twice
