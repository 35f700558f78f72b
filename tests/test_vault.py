"""Discovery (what counts as a note), identity and name resolution, on real folders."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_vault, write_note

from vaultsched.adapters.vault import (
    Skipped,
    Vault,
    build_index,
    is_conflict_copy,
    iter_notes,
    locate_vault,
    reread_note,
)
from vaultsched.core.errors import VaultschedError

TASK = "---\ncommand: echo hi\nschedule: '@daily'\n---\nbody\n"


def test_discovery_ignores_what_spec_says(vault: Vault, tmp_path: Path) -> None:
    root = vault.root
    for rel in [
        "Tasks/A.md",
        "Tasks/Sub/B.md",
        ".obsidian/x.md",
        ".trash/C.md",
        "Tasks/.hidden/D.md",
        "Digests/2026-01-01.md",
        "Tasks/A (Conflicted copy laptop 202401011200).md",
        "Tasks/A.sync-conflict-20240101-120000-ABCDEFG.md",
        "Tasks/A (conflicted copy).md",
        "Tasks/notes.txt",
    ]:
        write_note(root, rel, TASK)
    outside = tmp_path / "outside.md"
    outside.write_text(TASK)
    (root / "Tasks" / "link-out.md").symlink_to(outside)
    (root / "Tasks" / "link-in.md").symlink_to(root / "Tasks" / "A.md")
    (root / "Linked folder").symlink_to(tmp_path)
    assert list(iter_notes(vault)) == ["Tasks/A.md", "Tasks/Sub/B.md"]


def test_a_folder_swapped_for_a_link_since_the_walk_is_not_read_through(
    vault: Vault, tmp_path: Path
) -> None:
    """An event names `Tasks/Sub/B.md`, but a sync has made `Tasks/Sub` a link out of the vault
    meanwhile: the note at the end of the link is not read, and never becomes a task."""
    write_note(vault.root, "Tasks/Sub/B.md", TASK)
    assert reread_note(vault, "Tasks/Sub/B.md", None).parsed.task is not None
    outside = tmp_path / "outside"
    write_note(outside, "B.md", TASK)
    (vault.root / "Tasks/Sub/B.md").unlink()
    (vault.root / "Tasks/Sub").rmdir()
    (vault.root / "Tasks/Sub").symlink_to(outside)

    read = reread_note(vault, "Tasks/Sub/B.md", None)

    assert read.parsed.task is None and not read.read
    assert "symlink" in read.parsed.problems[0].message


def test_index_keeps_going_past_broken_notes(vault: Vault) -> None:
    write_note(vault.root, "A.md", TASK)
    write_note(vault.root, "Broken.md", "---\ncommand: x\nschedule: [oops\n---\n")
    (vault.root / "Latin1.md").write_bytes(b"---\ncommand: caf\xe9\n---\n")
    write_note(vault.root, "Plain.md", "# just a note\n")
    write_note(vault.root, "Bad type.md", "---\ncommand: x\nretries: many\n---\n")
    index = build_index(vault)
    assert list(index.tasks) == ["A"]
    assert sorted(index.invalid) == ["Bad type", "Broken"]
    assert any(p.path == "Latin1.md" and "not UTF-8" in p.message for p in index.problems)


def test_conflict_copy_names() -> None:
    assert is_conflict_copy("T/Backup (Conflicted copy MacBook 202401011200).md")
    assert is_conflict_copy("T/Backup (Anna's conflicted copy 2024-01-01).md")
    assert is_conflict_copy("T/Backup.sync-conflict-20240101-120000-ABCDEFG.md")
    assert not is_conflict_copy("T/Conflicts I had.md")


def test_the_walk_finds_conflict_copies_as_the_whole_path_tells(vault: Vault) -> None:
    """The walk asks the folder's part of the path once, the name's for each note: whatever
    `is_conflict_copy` says of the whole path, whether the copy's mark is in the name, spans
    folder and name, or sits in a folder of non-ASCII letters."""
    rels = [
        "Conflicts/A.md",
        "Conflicts/B (conflicted copy).md",
        "Dir (conflicted copy x/y).md",
        "Café/C (Conflicted copy laptop).md",
        "Café/D.md",
        "Plain/E.sync-conflict-20240101-120000-ABCDEFG.md",
        "Plain/F.md",
        "ÉTÉ (conflicted copy/G).md",
    ]
    for rel in rels:
        write_note(vault.root, rel, TASK)
    skipped: list[Skipped] = []
    found = list(iter_notes(vault, skipped))
    assert sorted(found) == sorted(r for r in rels if not is_conflict_copy(r))
    assert sorted(s.path for s in skipped) == sorted(r for r in rels if is_conflict_copy(r))
    assert len(found) == 3


def test_resolution(vault: Vault) -> None:
    for rel in ["Tasks/Daily briefing.md", "Tasks/Backup.md", "Other/Backup.md", "P/Home/Sync.md"]:
        write_note(vault.root, rel, TASK)
    index = build_index(vault)
    assert index.resolve("Tasks/Daily briefing") == "Tasks/Daily briefing"
    assert index.resolve("Tasks/Daily briefing.md") == "Tasks/Daily briefing"
    assert index.resolve("Daily briefing") == "Tasks/Daily briefing"
    assert index.resolve("Home/Sync.md") == "P/Home/Sync"  # a path typed in the folder P/
    with pytest.raises(
        VaultschedError, match="ambiguous task 'Backup': Other/Backup, Tasks/Backup"
    ):
        index.resolve("Backup")
    with pytest.raises(VaultschedError, match="did you mean: Tasks/Daily briefing") as info:
        index.resolve("briefing")
    assert info.value.exit_code == 2


def test_locate_vault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(VaultschedError, match="not a vault"):
        locate_vault(tmp_path)
    make_vault(tmp_path / "v", repo=False)
    assert locate_vault(tmp_path / "v") == (tmp_path / "v").resolve()
    monkeypatch.setenv("VAULTSCHED_VAULT", str(tmp_path / "v"))
    assert locate_vault(None) == (tmp_path / "v").resolve()
    with pytest.raises(VaultschedError, match="not a folder"):
        locate_vault(tmp_path / "missing")


def test_the_vault_is_found_from_any_folder_inside_it_as_git_finds_its_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_vault(tmp_path / "Notes", repo=False).resolve()
    deep = root / "Projects" / "2026"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    assert locate_vault(None) == root
    obsidian_only = tmp_path / "Other"
    (obsidian_only / ".obsidian").mkdir(parents=True)
    (obsidian_only / "Sub").mkdir()
    monkeypatch.chdir(obsidian_only / "Sub")
    assert locate_vault(None) == obsidian_only.resolve()
    monkeypatch.setenv("VAULTSCHED_VAULT", str(root))  # the variable wins over the folder
    assert locate_vault(None) == root


def test_not_a_vault_says_where_it_looked_and_never_suggests_a_vault_in_a_vault(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    monkeypatch.chdir(outside)
    with pytest.raises(VaultschedError) as info:
        locate_vault(None)
    message = str(info.value)
    assert f"in {outside.resolve()} or any folder above it" in message
    assert "--vault PATH" in message and "`vaultsched init PATH`" in message
    assert info.value.exit_code == 2
    root = make_vault(tmp_path / "Notes", repo=False).resolve()
    (root / "Tasks").mkdir()
    with pytest.raises(VaultschedError) as info:
        locate_vault(root / "Tasks")  # --vault names a folder inside a vault
    assert str(info.value) == (
        f"not a vault: {root / 'Tasks'} is inside the vault {root} (use --vault {root})"
    )
    assert "init" not in str(info.value)


def test_a_vault_with_many_folders_at_its_top_is_shared_from_its_first_stretch(
    vault: Vault,
) -> None:
    """A cold index forks its second process at once where the top of the vault holds
    MIN_STRETCHES folders still to walk; a smaller vault is read alone until ALONE_UNTIL."""
    from vaultsched.adapters import vault as vault_module

    for n in range(vault_module.MIN_STRETCHES - 1):
        write_note(vault.root, f"Folder {n}/Sub/Note.md", "note\n")
    few = vault_module._stretches(vault.root, vault.config)
    assert vault_module._alone_until(few) == vault_module.ALONE_UNTIL
    write_note(vault.root, "Last/Sub/Note.md", "note\n")
    many = vault_module._stretches(vault.root, vault.config)
    assert sum(1 for s in many if s.tree) >= vault_module.MIN_STRETCHES
    assert vault_module._alone_until(many) == 0
