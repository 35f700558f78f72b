"""`[digest] folder` needs no trust (a sync can set it): it must neither reach `.git/` nor out
of the vault, and a folder holding task notes must say why they never run."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import Cli, git, make_vault, write_note

TASK = "---\ncommand: echo backup\nschedule: every 2s\n---\nBody.\n"


@pytest.mark.parametrize("folder", [".git/hooks", "/tmp/digests", "a/../..", "", "Logs/.hidden"])
def test_a_digest_folder_outside_the_notes_is_a_config_error(tmp_path: Path, folder: str) -> None:
    root = make_vault(
        tmp_path / "vault", config=f'timezone = "UTC"\n[digest]\nfolder = "{folder}"\n'
    )
    write_note(root, "Tasks/Backup.md", TASK)
    git(root, "add", "-A")
    git(root, "commit", "-qm", "task")
    head = git(root, "rev-parse", "HEAD")
    ran = Cli(root)("run-now", "Tasks/Backup")
    assert ran.code == 2
    assert "[digest] folder" in ran.err
    assert not list((root / ".git/hooks").glob("*.md"))
    assert not Path("/tmp/digests").exists() or not list(Path("/tmp/digests").glob("*.md"))
    assert git(root, "rev-parse", "HEAD") == head
    git(root, "commit", "-q", "--allow-empty", "-m", "commits still work")


def test_task_notes_inside_the_digest_folder_are_reported(tmp_path: Path) -> None:
    root = make_vault(tmp_path / "vault", config='timezone = "UTC"\n[digest]\nfolder = "Tasks"\n')
    write_note(root, "Tasks/Backup.md", TASK)
    write_note(root, "Tasks/2024-01-01.md", "---\ntitle: a digest\n---\n")
    cli = Cli(root)
    doctor = cli("doctor")
    assert doctor.code == 1
    assert "fail digest folder" in doctor.out and "Tasks/Backup.md" in doctor.out
    assert "2024-01-01" not in doctor.out.split("digest folder")[1].splitlines()[0]
    validate = cli("validate")
    assert "Tasks/Backup.md" in validate.out + validate.err
    assert "inside the digest folder" in validate.out + validate.err
