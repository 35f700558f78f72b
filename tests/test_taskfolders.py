"""`[tasks] folders` and `exclude`: which notes can be tasks. A synced config sets them, so
hostile values are a clear error and never reach past the vault."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import HOST, Cli, make_vault, write_note

from vaultsched.adapters.config import load_config, parse_config
from vaultsched.adapters.vault import Vault, build_index, iter_notes, read_note
from vaultsched.cli.validate import validate_vault
from vaultsched.core.errors import VaultschedError

TASK = "---\ncommand: echo hi\nschedule: '@daily'\n---\n"
PLUGIN = "---\ncommand: {name: Undo last commit}\n---\n"
NOW = datetime(2025, 1, 1, tzinfo=UTC)


def vault_with(tmp_path: Path, tasks: str, notes: dict[str, str]) -> Vault:
    root = make_vault(tmp_path / "vault", repo=False, config=f'timezone = "UTC"\n[tasks]\n{tasks}')
    for rel, text in notes.items():
        write_note(root, rel, text)
    return Vault(root.resolve(), load_config(root), HOST)


def test_only_notes_in_the_task_folders_and_not_excluded_are_tasks(tmp_path: Path) -> None:
    vault = vault_with(
        tmp_path,
        'folders = ["Tasks", "Projects/Jobs/"]\nexclude = ["Tasks/Templates", "**/*.draft.md"]\n',
        {
            "Tasks/A.md": TASK,
            "Tasks/Sub/B.md": TASK,
            "Tasks/Templates/T.md": TASK,
            "Tasks/C.draft.md": TASK,
            "Projects/Jobs/J.md": TASK,
            "Projects/P.md": TASK,
            "Projects/Jobsite/X.md": TASK,
            "Notes/Cmd.md": PLUGIN,
            "Root.md": TASK,
        },
    )
    assert list(iter_notes(vault)) == ["Projects/Jobs/J.md", "Tasks/A.md", "Tasks/Sub/B.md"]
    index = build_index(vault)
    assert index.ids == ["Projects/Jobs/J", "Tasks/A", "Tasks/Sub/B"]
    assert index.problems == []
    # A note outside is no task however it is reached (the daemon reads notes as they change).
    assert not read_note(vault, "Notes/Cmd.md").is_task
    assert not read_note(vault, "Tasks/Templates/T.md").is_task


def test_exclude_alone_keeps_every_other_folder(tmp_path: Path) -> None:
    vault = vault_with(
        tmp_path, 'exclude = ["Templates/**"]\n', {"Templates/T.md": TASK, "Any/A.md": TASK}
    )
    assert build_index(vault).ids == ["Any/A"]


def test_validate_says_why_a_note_named_outside_the_task_folders_is_no_task(
    tmp_path: Path,
) -> None:
    vault = vault_with(
        tmp_path, 'folders = ["Tasks"]\n', {"Jobs/Backup.md": TASK, "Jobs/Plain.md": "# hi\n"}
    )
    checked, problems = validate_vault(vault, NOW, [str(vault.root / "Jobs/Backup.md")])
    assert checked == 0
    assert [str(p) for p in problems] == [
        "Jobs/Backup.md:1: note: not a task: outside the task folders "
        "([tasks] in .vaultsched/config.toml)"
    ]
    assert validate_vault(vault, NOW, [str(vault.root / "Jobs/Plain.md")]) == (0, [])
    assert validate_vault(vault, NOW) == (0, [])  # the whole vault: not our business


@pytest.mark.parametrize(
    ("tasks", "said"),
    [
        ('folders = ["../Elsewhere"]', "[tasks] folders must be a folder inside the vault"),
        ('folders = ["/etc"]', "[tasks] folders must be a folder inside the vault"),
        ('folders = [".git/hooks"]', "[tasks] folders must be a folder inside the vault"),
        ('folders = ["Tasks/../.."]', "[tasks] folders must be a folder inside the vault"),
        ('folders = ["Tasks\\u0000"]', "[tasks] folders must be a folder inside the vault"),
        ('folders = [""]', "[tasks] folders must be a folder inside the vault"),
        ('folders = "Tasks"', 'folders must be a list of strings, e.g. folders = ["Tasks"]'),
        ("exclude = [1]", "[tasks] exclude must be a list of strings"),
        ('exclude = ["../**"]', "[tasks] exclude: '../**' climbs out with '..'"),
        ('exclude = ["/home/**"]', "[tasks] exclude: '/home/**' is not inside the vault"),
        ('exclude = ["~/x"]', "[tasks] exclude: '~/x' is not inside the vault"),
        ('exclude = [""]', "[tasks] exclude: a glob must not be empty"),
        (f'exclude = ["{"{a,b}" * 12}"]', "[tasks] exclude: "),  # 4,096 expansions
        ("exclude = [" + '"x", ' * 300 + "]", "[tasks] exclude is too long: at most 256"),
        (f'folders = ["{"a" * 2000}"]', "[tasks] folders is too long"),
        ("exlude = []", "[tasks] has unknown keys: exlude"),
    ],
)
def test_hostile_task_folders_are_a_clear_config_error(tasks: str, said: str) -> None:
    with pytest.raises(VaultschedError) as caught:
        parse_config(tomllib.loads(f"[tasks]\n{tasks}\n"))
    message = str(caught.value)
    assert said in message and "\n" not in message
    assert caught.value.exit_code == 2


def test_new_writes_into_a_task_folder(tmp_path: Path) -> None:
    root = make_vault(tmp_path / "vault", config='[tasks]\nfolders = ["Jobs"]\n')
    cli = Cli(root)
    made = cli("new", "Backup", "--schedule", "@daily", "--command", "echo b")
    assert made.code == 0, made.err
    assert (root / "Jobs/Backup.md").is_file() and not (root / "Tasks").exists()
    (root / ".vaultsched/config.toml").write_text('[tasks]\nexclude = ["Tasks/No*"]\n')
    refused = cli("new", "Nope", "--command", "echo n")
    assert refused.code == 1 and "Tasks/Nope.md would not be a task" in refused.err
