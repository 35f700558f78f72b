"""Sync conflict resolution: the person's text is never dropped; blocks are set aside."""

from __future__ import annotations

import subprocess
import tempfile
from collections import Counter
from pathlib import Path

import pytest
from conftest import git, make_vault, write_note
from hypothesis import given, settings
from hypothesis import strategies as st

from vaultsched.adapters.git import Git
from vaultsched.core.blocks import RUNS_BEGIN, RUNS_END
from vaultsched.core.merging import (
    PLACEHOLDER,
    drop_merged_copies,
    merge_note,
    put_back,
    set_aside,
    union_lines,
    union_merge,
)
from vaultsched.runtime.sync import rebase_resolving


def note(body: str, block: str) -> str:
    return f"---\ncommand: x\n---\n{body}\n{RUNS_BEGIN}\n{block}\n{RUNS_END}\n"


def test_an_edit_next_to_the_block_survives_a_block_change_on_the_other_side() -> None:
    base = note("Body.", "run 1")
    laptop = note("Body.\nadded on the laptop", "run 1")
    server = note("Body.", "run 1\nrun 2")
    merged = merge_note(base, laptop, server)
    assert "added on the laptop" in merged
    assert merged.count(RUNS_BEGIN) == 1 and PLACEHOLDER not in merged
    assert merge_note(base, server, laptop).count("added on the laptop") == 1


def test_a_line_the_person_added_where_the_other_side_added_the_block_stays_above_it() -> None:
    """The block was appended on one machine while the person wrote below the body on the
    other: their line stays where they wrote it, the block after it (it came after the block
    once, below the run history)."""
    base = "---\ncommand: x\n---\nBody.\n"
    blocked = f"{base}\n{RUNS_BEGIN}\nrun 1\n{RUNS_END}\n"
    edited = base + "added\n"
    for ours, theirs in ((blocked, edited), (edited, blocked)):
        assert merge_note(base, ours, theirs) == f"{edited}\n{RUNS_BEGIN}\nrun 1\n{RUNS_END}\n"
    # A note without a final newline (Obsidian adds none): the last line is on both sides.
    bare = base.rstrip("\n")
    for ours, theirs in ((blocked, bare + "\nadded"), (bare + "\nadded", blocked)):
        merged = merge_note(bare, ours, theirs)
        assert merged.index("added") < merged.index(RUNS_BEGIN), merged


def test_both_sides_editing_the_same_line_keeps_both() -> None:
    base = note("Body.", "b")
    merged = merge_note(base, note("Body mine.", "b"), note("Body theirs.", "c"))
    assert "Body mine." in merged and "Body theirs." in merged


def test_crlf_notes_stay_crlf() -> None:
    base = "a\r\nb\r\n"
    merged = merge_note(base, "a\r\nb\r\nmine\r\n", "theirs\r\na\r\nb\r\n")
    assert merged == "theirs\r\na\r\nb\r\nmine\r\n"


def test_set_aside_and_put_back_round_trip() -> None:
    text = note("Body.", "runs")
    aside, kept = set_aside(text)
    assert PLACEHOLDER in aside and RUNS_BEGIN not in aside
    assert put_back(aside, kept) == text


def test_ledger_lines_are_a_union() -> None:
    assert union_lines("a\nb\n", "b\nc\n") == "a\nb\nc\n"
    assert union_lines("a", "a\nz") == "a\nz\n"


def test_a_rebase_stop_is_resolved_in_a_real_repository(tmp_path: Path) -> None:
    """Both sides changed lines next to each other in a CRLF note: both kept, still CRLF."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    path = root / "n.md"

    def commit(text: str, message: str) -> None:
        path.write_bytes(text.replace("\n", "\r\n").encode())
        git(root, "commit", "-qam" if git(root, "ls-files") else "-qm", message)

    path.write_bytes(b"")
    git(root, "add", "n.md")
    commit(note("Body.", "run 1"), "base")
    git(root, "checkout", "-qb", "server")
    commit(note("Body.", "run 1\nrun 2"), "server run")
    git(root, "checkout", "-q", "main")
    commit(note("Body.\nlaptop line", "run 1"), "laptop edit")
    rebase_resolving(Git(root, "testhost"), "server")
    merged = path.read_bytes().decode()
    assert "laptop line\r\n" in merged and merged.count(RUNS_BEGIN) == 1
    assert "\n" not in merged.replace("\r\n", "")
    assert git(root, "status", "--porcelain", "--untracked-files=no") == ""


FRONT = "---\nschedule: every 1s\nhost: server\ncommand: echo server\n---\n"


def runs_block(*lines: str) -> str:
    return f"{RUNS_BEGIN}\n## Runs\n" + "".join(f"- {line}\n" for line in lines) + f"\n{RUNS_END}\n"


def commit_note(root: Path, text: str, message: str) -> None:
    write_note(root, "Tasks/Job.md", text)
    git(root, "add", "Tasks/Job.md")
    git(root, "commit", "-qm", message, "--no-verify")


@pytest.mark.parametrize("blocks", [("run 1",), ("run 1", "run 2")], ids=["same", "newer"])
def test_a_block_both_machines_added_apart_is_kept_once(
    tmp_path: Path, blocks: tuple[str, ...]
) -> None:
    """The other machine shows its run in the task note; here the person's edit was committed
    before any block, then this machine rebuilt the view from the pulled ledger. Replayed onto
    the other's commit, the edit conflicts (merged with the block set aside: the person's line
    first, where they wrote it); so does our view then, whose block gives way to the other's
    until the sync rebuilds it from the merged ledger."""
    root = make_vault(tmp_path / "vault")
    commit_note(root, FRONT + "Body.\n", "task")
    git(root, "checkout", "-qb", "upstream")
    commit_note(root, FRONT + "Body.\n\n" + runs_block("run 1"), "server: run 1")
    git(root, "checkout", "-q", "-")
    commit_note(root, FRONT + "Body.\nlaptop edit\n", "laptop edit")
    ours = FRONT + "Body.\nlaptop edit\n\n" + runs_block(*blocks)
    commit_note(root, ours, "laptop: the view rebuilt")

    assert rebase_resolving(Git(root, "laptop"), "upstream") == {"Tasks/Job.md"}  # to rebuild

    note = (root / "Tasks/Job.md").read_text(encoding="utf-8")
    assert git(root, "status", "--porcelain") == ""
    assert git(root, "show", "HEAD:Tasks/Job.md") == note
    assert note.count(RUNS_BEGIN) == 1 and note.count(RUNS_END) == 1, note
    assert note == FRONT + "Body.\nlaptop edit\n\n" + runs_block("run 1")


def test_a_copy_of_the_block_a_merge_made_is_dropped_and_the_persons_lines_stay() -> None:
    up = note("Body.", "run 1")
    mine = note("Body.\nmine", "run 1\nrun 2")
    merged = note("Body.", "run 1") + "mine\n" + f"{RUNS_BEGIN}\nrun 1\nrun 2\n{RUNS_END}\n"
    assert drop_merged_copies(merged, (up, mine)) == note("Body.\nmine", "run 1\nrun 2")
    crlf = merged.replace("\n", "\r\n")
    expected = note("Body.\nmine", "run 1\nrun 2").replace("\n", "\r\n")
    sides = (up.replace("\n", "\r\n"), mine.replace("\n", "\r\n"))
    assert drop_merged_copies(crlf, sides) == expected


def test_a_block_the_person_copied_is_theirs_and_stays() -> None:
    copied = f"{RUNS_BEGIN}\ncopied\n{RUNS_END}\n"
    up, mine = copied + note("Body.", "run 1"), copied + note("Body.\nmine", "run 1")
    merged = copied + note("Body.", "run 1") + "mine\n" + f"{RUNS_BEGIN}\nrun 1\n{RUNS_END}\n"
    assert drop_merged_copies(merged, (up, mine)) == copied + note("Body.\nmine", "run 1")
    assert drop_merged_copies(up, (up, up)) == up  # as many pairs as a side had: all stay
    # A pair that is no side's own block is the person's, even where there is one too many.
    other = merged.replace("run 1\n" + RUNS_END, "edited\n" + RUNS_END, 1)
    assert drop_merged_copies(other, (up, mine)) == other


# -- the three-way merge, against `git merge-file --union` ----------------------------------


def git_union(base: str, ours: str, theirs: str) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for name, text in (("ours", ours), ("base", base), ("theirs", theirs)):
            path = Path(tmp) / name
            path.write_bytes(text.encode())
            paths.append(str(path))
        return subprocess.run(
            ["git", "merge-file", "-p", "--union", *paths], capture_output=True, check=False
        ).stdout.decode()


@st.composite
def edited(draw: st.DrawFn, lines: list[str], low: int, high: int, tag: str) -> list[str]:
    """`lines` with a few inserts, deletes and replacements, all within lines[low:high]."""
    out = list(lines)
    for n in range(draw(st.integers(0, 3))):
        at = draw(st.integers(low, high))
        op = draw(st.sampled_from("idr"))
        if op == "i":
            out.insert(at, f"{tag}{n}\n")
            high += 1
        elif at < high:
            if op == "d":
                del out[at]
                high -= 1
            else:
                out[at] = f"{tag}{n}\n"
    return out


base_lines = st.lists(st.sampled_from(["a\n", "b\n", "\n", "- [ ] x\n"]), max_size=8)


def _bare(text: str) -> Counter[str]:
    return Counter(text.splitlines())


@settings(max_examples=400, deadline=None)
@given(st.data(), base_lines, st.tuples(st.booleans(), st.booleans(), st.booleans()))
def test_merge_keeps_every_line_either_side_added_and_glues_none(
    data: st.DataObject, base: list[str], no_final_newline: tuple[bool, bool, bool]
) -> None:
    ours = data.draw(edited(base, 0, len(base), "o"))
    theirs = data.draw(edited(base, 0, len(base), "t"))
    b, o, t = ("".join(x) for x in (base, ours, theirs))
    # Any of the three may lack its final line break, as a note saved by an editor may.
    b, o, t = (
        x[:-1] if cut and x.endswith("\n") else x
        for x, cut in zip((b, o, t), no_final_newline, strict=True)
    )
    merged = _bare(union_merge(b, o, t))
    for side in (o, t):
        assert not _bare(side) - _bare(b) - merged  # nothing either side added is lost
    assert not merged - _bare(b) - _bare(o) - _bare(t)  # and no line glued to another
    assert union_merge(b, b, t) == t and union_merge(b, o, b) == o and union_merge(b, o, o) == o


@settings(max_examples=300, deadline=None)
@given(st.data(), st.integers(1, 10))
def test_merge_matches_git_where_the_changes_are_apart(data: st.DataObject, size: int) -> None:
    """Line `keep` stays untouched between the two sides' changes: git and we must agree."""
    base = [f"line {i}\n" for i in range(size)]
    keep = data.draw(st.integers(0, size - 1))
    ours = data.draw(edited(base, 0, keep, "o"))
    theirs = data.draw(edited(base, keep + 1, size, "t"))
    b, o, t = ("".join(x) for x in (base, ours, theirs))
    assert union_merge(b, o, t) == git_union(b, o, t)
    assert union_merge(b, t, o) == git_union(b, t, o)


def test_same_place_changes_keep_both_ours_first() -> None:
    base = "top\nend\n"
    assert union_merge(base, "top\nmine\nend\n", "top\ntheirs\nend\n") == (
        "top\nmine\ntheirs\nend\n"
    )
    assert union_merge(base, "top\nsame\nend\n", "top\nsame\nend\n") == "top\nsame\nend\n"
    assert union_merge("a", "mine", "theirs") == "mine\ntheirs"  # no line glued to another


def test_adjacent_changes_both_apply_where_git_would_resurrect_a_deleted_line() -> None:
    base = "l0\nl1\nl2\n"
    assert union_merge(base, "l2\n", "l0\nl1\nnew\n") == "new\n"
    assert "l0" in git_union(base, "l2\n", "l0\nl1\nnew\n")  # git's union keeps it


def test_a_version_without_a_final_newline_is_never_glued_to_a_line_after_it() -> None:
    assert union_merge("b\n", "b", "b\nt1") == "b\nt1"
    synced = union_merge("# N\nline\n", "# N\nline", "# N\nline\nfrom server\n")
    assert synced == "# N\nline\nfrom server\n"


def test_lines_both_sides_share_in_a_clash_come_once() -> None:
    merged = union_merge("a\nb\nz\n", "a\nx\nb\nz\n", "a\nx\nY\nz\n")
    assert merged.splitlines().count("x") == 1 and "Y" in merged and "b" in merged
