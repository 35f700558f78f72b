"""`if_changed`: the digest of what a task's globs match, on real folders, and its state file.

The vault is untrusted: hidden folders, links out of it, FIFOs and huge trees must neither be
read nor hang the walk, and a hostile state file must only ever mean "run"."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import pytest
from conftest import write_note

from vaultsched.adapters import inputs, statefs
from vaultsched.adapters.inputs import inputs_digest, last_inputs, save_inputs
from vaultsched.core import layout

GLOB = ("Inbox/**/*.md",)


@pytest.fixture
def vault(tmp_path: Path) -> Path:
    root = tmp_path / "vault"
    write_note(root, "Inbox/a.md", "a")
    write_note(root, "Inbox/sub/deeper/b.md", "b")
    write_note(root, "Notes/c.md", "c")
    return root


def test_globstar_matches_nested_files_and_nothing_else(vault: Path) -> None:
    before = inputs_digest(vault, GLOB)
    write_note(vault, "Inbox/sub/deeper/b.md", "changed")
    nested = inputs_digest(vault, GLOB)
    assert nested != before
    write_note(vault, "Notes/c.md", "changed")  # outside the glob
    write_note(vault, "Inbox/sub/picture.png", "not .md")
    assert inputs_digest(vault, GLOB) == nested


def test_the_digest_is_deterministic_and_an_empty_match_has_one(vault: Path) -> None:
    assert inputs_digest(vault, GLOB) == inputs_digest(vault, list(GLOB))
    assert len(inputs_digest(vault, GLOB)) == 64
    assert inputs_digest(vault, ["Nowhere/*.md"]) == inputs_digest(vault, ["Empty/**"])
    assert inputs_digest(vault, []) == inputs_digest(vault, ["Nowhere/*.md"])


def test_several_globs_and_braces(vault: Path) -> None:
    both = inputs_digest(vault, ["Inbox/*.md", "Notes/*.md"])
    assert both == inputs_digest(vault, ["{Inbox,Notes}/*.md"])
    assert both == inputs_digest(vault, ["Notes/*.md", "Inbox/*.md", "Inbox/a.md"])
    assert both != inputs_digest(vault, ["Inbox/*.md"])
    assert inputs_digest(vault, ["./Inbox/./*.md"]) == inputs_digest(vault, ["Inbox/*.md"])
    assert inputs_digest(vault, ["."]) == inputs_digest(vault, [])


def test_hidden_files_and_folders_never_match(vault: Path) -> None:
    before = inputs_digest(vault, ["**/*.md"])
    for rel in (".obsidian/workspace.md", ".git/x.md", ".vaultsched/logs/y.md", "Inbox/.h.md"):
        write_note(vault, rel, "hidden")
    write_note(vault, "Inbox/.hidden/z.md", "hidden")
    assert inputs_digest(vault, ["**/*.md"]) == before
    assert inputs_digest(vault, GLOB) == inputs_digest(vault, ["Inbox/**"])
    # Not even named literally: the walk never enters a hidden folder.
    assert inputs_digest(vault, [".obsidian/*.md"]) == inputs_digest(vault, [])


def test_a_symlinked_file_is_not_followed(vault: Path, tmp_path: Path) -> None:
    secret = write_note(tmp_path / "outside", "secret.md", "secret")
    before = inputs_digest(vault, GLOB)
    (vault / "Inbox/link.md").symlink_to(secret)
    assert inputs_digest(vault, GLOB) == before
    secret.write_text("secret changed", encoding="utf-8")
    assert inputs_digest(vault, GLOB) == before
    (vault / "Inbox/inside.md").symlink_to(vault / "Notes/c.md")  # even inside the vault
    assert inputs_digest(vault, GLOB) == before


def test_a_symlinked_folder_is_not_followed(vault: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    write_note(outside, "x.md", "outside")
    before = inputs_digest(vault, GLOB)
    (vault / "Inbox/linked").symlink_to(outside, target_is_directory=True)
    assert inputs_digest(vault, GLOB) == before
    assert inputs_digest(vault, ["Inbox/linked/*.md"]) == inputs_digest(vault, [])
    write_note(outside, "x.md", "changed")
    write_note(outside, "new.md", "new")
    assert inputs_digest(vault, GLOB) == before
    # A link in the middle of a literal path is refused too.
    (vault / "Linked").symlink_to(outside, target_is_directory=True)
    assert inputs_digest(vault, ["Linked/x.md"]) == inputs_digest(vault, [])


def test_the_vault_root_itself_may_be_a_link(vault: Path, tmp_path: Path) -> None:
    link = tmp_path / "via-link"
    link.symlink_to(vault, target_is_directory=True)
    assert inputs_digest(link, GLOB) == inputs_digest(vault, GLOB)


def test_a_fifo_in_the_tree_does_not_hang_and_is_not_matched(vault: Path) -> None:
    before = inputs_digest(vault, GLOB)
    os.mkfifo(vault / "Inbox/pipe.md")
    result: list[str] = []
    worker = threading.Thread(target=lambda: result.append(inputs_digest(vault, GLOB)))
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "inputs_digest hung on a FIFO"
    assert result == [before]


def test_a_content_change_changes_the_digest(vault: Path) -> None:
    before = inputs_digest(vault, GLOB)
    write_note(vault, "Inbox/a.md", "b")  # same size, other bytes
    assert inputs_digest(vault, GLOB) != before
    write_note(vault, "Inbox/a.md", "a")
    assert inputs_digest(vault, GLOB) == before


def test_touching_a_file_changes_nothing(vault: Path) -> None:
    before = inputs_digest(vault, GLOB)
    path = vault / "Inbox/a.md"
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns + 10**10, stat.st_mtime_ns + 10**10))
    path.touch()
    assert inputs_digest(vault, GLOB) == before


def test_renaming_adding_and_removing_a_matching_file_change_it(vault: Path) -> None:
    before = inputs_digest(vault, GLOB)
    (vault / "Inbox/a.md").rename(vault / "Inbox/renamed.md")
    renamed = inputs_digest(vault, GLOB)
    assert renamed != before
    (vault / "Inbox/renamed.md").rename(vault / "Inbox/a.md")
    assert inputs_digest(vault, GLOB) == before
    write_note(vault, "Inbox/new.md", "")  # even an empty file
    added = inputs_digest(vault, GLOB)
    assert added not in (before, renamed)
    (vault / "Inbox/new.md").unlink()
    assert inputs_digest(vault, GLOB) == before
    (vault / "Inbox/a.md").unlink()
    assert inputs_digest(vault, GLOB) not in (before, renamed, added)


def test_content_moved_between_files_is_a_change(vault: Path) -> None:
    write_note(vault, "Inbox/one.md", "1")
    write_note(vault, "Inbox/two.md", "2")
    before = inputs_digest(vault, GLOB)
    write_note(vault, "Inbox/one.md", "2")
    write_note(vault, "Inbox/two.md", "1")
    assert inputs_digest(vault, GLOB) != before


def test_a_large_file_is_hashed_in_chunks(vault: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inputs, "CHUNK", 7)
    write_note(vault, "Inbox/big.md", "0123456789" * 100)
    small_chunks = inputs_digest(vault, GLOB)
    monkeypatch.setattr(inputs, "CHUNK", 1 << 20)
    assert inputs_digest(vault, GLOB) == small_chunks


def test_beyond_the_cap_the_digest_is_capped_and_one_warning_is_logged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=inputs.__name__)
    monkeypatch.setattr(inputs, "MAX_FILES", 3)
    monkeypatch.setattr(inputs, "_warned", set())
    root = tmp_path / "vault"
    for n in range(3):
        write_note(root, f"Inbox/{n}.md", str(n))
    at_cap = inputs_digest(root, GLOB)
    assert caplog.records == []
    write_note(root, "Inbox/3.md", "3")
    capped = inputs_digest(root, GLOB)
    assert capped != at_cap
    assert inputs_digest(root, GLOB) == capped  # deterministic
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "more than 3 files" in warnings[0].getMessage()
    write_note(root, "Inbox/3.md", "changed")  # beyond the cap: not watched
    assert inputs_digest(root, GLOB) == capped
    write_note(root, "Inbox/0.md", "changed")  # within it: watched
    assert inputs_digest(root, GLOB) != capped
    assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1


def test_folders_beyond_the_depth_bound_are_not_walked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(inputs, "MAX_DEPTH", 3)
    monkeypatch.setattr(inputs, "_warned", set())
    root = tmp_path / "vault"
    write_note(root, "a/b/c/ok.md", "x")
    shallow = inputs_digest(root, ["**/*.md"])
    write_note(root, "a/b/c/d/deep.md", "x")
    capped = inputs_digest(root, ["**/*.md"])
    assert capped != shallow
    write_note(root, "a/b/c/d/deep.md", "changed")
    assert inputs_digest(root, ["**/*.md"]) == capped


@pytest.mark.parametrize(
    "glob", ["/etc/*", "~/notes/*.md", "../*.md", "Inbox/../../x.md", "Inbox\\..\\x", "", " "]
)
def test_absolute_or_climbing_globs_are_refused(vault: Path, glob: str) -> None:
    with pytest.raises(ValueError):
        inputs_digest(vault, ["Inbox/*.md", glob])


def test_a_brace_bomb_is_refused(vault: Path) -> None:
    with pytest.raises(ValueError):
        inputs_digest(vault, ["{a,b}" * 20])


def test_state_round_trip(tmp_path: Path) -> None:
    assert last_inputs(tmp_path, "Tasks/A") is None  # first run: always runs
    digest = inputs_digest(tmp_path, GLOB)
    save_inputs(tmp_path, "Tasks/A", digest)
    assert last_inputs(tmp_path, "Tasks/A") == digest
    assert last_inputs(tmp_path, "Tasks/B") is None
    other = "f" * 64
    save_inputs(tmp_path, "Tasks/A", other)
    assert last_inputs(tmp_path, "Tasks/A") == other
    assert (tmp_path / layout.inputs_file("Tasks/A")).is_file()
    assert layout.inputs_file("Tasks/A") == ".vaultsched/state/inputs/Tasks%2FA.sha256"
    with pytest.raises(ValueError):
        save_inputs(tmp_path, "Tasks/A", "not a digest")


@pytest.mark.parametrize(
    "content", [b"", b"garbage", b"ab" * 31, b"\xff\xfe" * 40, b"0" * 65, b"F" * 64, b"0" * 500]
)
def test_a_torn_or_hostile_state_file_reads_none(tmp_path: Path, content: bytes) -> None:
    statefs.write_atomic(tmp_path, layout.inputs_file("Tasks/A"), content)
    assert last_inputs(tmp_path, "Tasks/A") is None


def test_a_symlink_at_the_state_path_is_never_followed(tmp_path: Path) -> None:
    root, outside = tmp_path / "vault", tmp_path / "outside"
    root.mkdir()
    target = outside / "planted"
    target.parent.mkdir()
    target.write_text("a" * 64 + "\n", encoding="utf-8")
    state = root / layout.inputs_file("Tasks/A")
    state.parent.mkdir(parents=True)
    state.symlink_to(target)
    assert last_inputs(root, "Tasks/A") is None
    with pytest.raises(statefs.LinkRefused):
        save_inputs(root, "Tasks/A", "b" * 64)
    assert target.read_text(encoding="utf-8") == "a" * 64 + "\n"


def test_a_symlinked_state_folder_is_never_followed(tmp_path: Path) -> None:
    root, outside = tmp_path / "vault", tmp_path / "outside"
    outside.mkdir()
    (outside / "Tasks%2FA.sha256").write_text("a" * 64, encoding="utf-8")
    (root / layout.STATE_DIR).mkdir(parents=True)
    (root / layout.INPUTS_DIR).symlink_to(outside, target_is_directory=True)
    assert last_inputs(root, "Tasks/A") is None
    with pytest.raises(statefs.LinkRefused):
        save_inputs(root, "Tasks/A", "b" * 64)
    assert sorted(p.name for p in outside.iterdir()) == ["Tasks%2FA.sha256"]


def test_a_fifo_at_the_state_path_reads_none(tmp_path: Path) -> None:
    state = tmp_path / layout.inputs_file("Tasks/A")
    state.parent.mkdir(parents=True)
    os.mkfifo(state)
    assert last_inputs(tmp_path, "Tasks/A") is None
