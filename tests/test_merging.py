"""Sync conflict resolution: the person's text is never dropped; blocks are set aside."""

from __future__ import annotations

from pathlib import Path

from conftest import git

from vaultsched.blocks import RUNS_BEGIN, RUNS_END
from vaultsched.git import Git
from vaultsched.merging import PLACEHOLDER, merge_note, put_back, set_aside, union_lines
from vaultsched.sync import rebase_resolving


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
