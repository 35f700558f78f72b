"""The task dashboard (`Tasks.base`): valid Bases YAML, and never written over a person's file."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml
from conftest import Cli, git, write_note

from vaultsched.core.dashboard import (
    ATTENTION_VIEW,
    MARKER,
    DashboardPathError,
    dashboard,
    dashboard_path,
    dashboard_text,
    owned,
)

pytestmark = pytest.mark.integration

COLUMNS = ["file.name", "schedule", "enabled", "last_status", "last_run", "next_run", "run_count"]
NEEDS_ATTENTION = [
    "failed",
    "timeout",
    "error",
    "blocked",
    "lost",
    "untrusted",
    "awaiting_approval",
]
TASK = "---\nschedule: '@daily'\ncommand: echo hi\n---\n"


def quiet(path: Path) -> None:
    """As if saved a minute ago: the writer waits for a note edited in the last 2 s."""
    past = time.time() - 60
    os.utime(path, (past, past))


def head(root: Path) -> str:
    return git(root, "rev-parse", "HEAD").strip()


# -- the file ---------------------------------------------------------------------------------


def test_the_file_is_bases_yaml_with_both_views() -> None:
    text = dashboard_text()
    assert text.splitlines()[0] == MARKER
    data = yaml.safe_load(text)
    assert data == dashboard()
    assert data["filters"] == {"and": ['file.hasProperty("command")']}
    assert set(data["properties"]) == set(COLUMNS)
    assert all(set(conf) == {"displayName"} for conf in data["properties"].values())
    tasks, attention = data["views"]
    assert tasks["type"] == "table" and tasks["order"] == COLUMNS and "filters" not in tasks
    assert attention["type"] == "table" and attention["name"] == ATTENTION_VIEW
    assert attention["order"] == COLUMNS
    assert list(attention["filters"]) == ["or"]
    shown = {f'last_status == "{status}"' for status in NEEDS_ATTENTION}
    assert shown <= set(attention["filters"]["or"])
    # Only statuses a person should look at: the digest's "Needs attention" (interrupted too).
    assert set(attention["filters"]["or"]) == shown | {'last_status == "interrupted"'}
    for view in data["views"]:
        assert all(sort["direction"] in ("ASC", "DESC") for sort in view["sort"])


def test_whose_file_it_is() -> None:
    assert owned(dashboard_text())
    assert owned("views: []\n  " + MARKER + "\n")  # wherever the line went
    assert not owned("views: []\n")
    assert not owned("")


@pytest.mark.parametrize(
    ("given", "rel"),
    [(None, "Tasks.base"), ("Boards/Mine", "Boards/Mine.base"), ("A.base", "A.base")],
)
def test_the_path_defaults_and_gets_its_extension(given: str | None, rel: str) -> None:
    assert dashboard_path(given) == rel


# -- the command ------------------------------------------------------------------------------


def test_dashboard_writes_and_commits_then_changes_nothing(cli: Cli) -> None:
    write_note(cli.root, "Tasks/A.md", TASK)
    first = cli("dashboard")
    assert (first.code, first.out, first.err) == (0, "wrote Tasks.base\n", "")
    path = cli.root / "Tasks.base"
    assert path.read_text(encoding="utf-8") == dashboard_text()
    assert git(cli.root, "log", "-1", "--format=%s").strip() == "vaultsched: dashboard Tasks.base"
    assert git(cli.root, "show", "HEAD:Tasks.base") == dashboard_text()
    before, commit = path.stat(), head(cli.root)
    again = cli("dashboard")
    assert (again.code, again.out) == (0, "Tasks.base is up to date\n")
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert head(cli.root) == commit


@pytest.mark.parametrize("text", ["views:\n  - type: table\n    name: Mine\n", ""])
def test_a_person_s_file_is_refused_and_left_byte_for_byte(cli: Cli, text: str) -> None:
    path = cli.root / "Tasks.base"
    path.write_bytes(text.encode())
    quiet(path)
    commit = head(cli.root)
    result = cli("dashboard")
    assert result.code == 1 and result.out == ""
    assert result.err.count("\n") == 1 and "yours" in result.err
    assert path.read_bytes() == text.encode()
    assert head(cli.root) == commit


def test_a_file_that_keeps_the_marker_is_rewritten(cli: Cli) -> None:
    path = cli.root / "Tasks.base"
    path.write_text(f"{MARKER}\nviews: []\n", encoding="utf-8")
    quiet(path)
    result = cli("dashboard")
    assert result.code == 0, result.err
    assert path.read_text(encoding="utf-8") == dashboard_text()


def test_another_path_in_the_vault(cli: Cli) -> None:
    result = cli("dashboard", "Boards/Tasks")
    assert result.code == 0, result.err
    assert yaml.safe_load((cli.root / "Boards/Tasks.base").read_text()) == dashboard()
    assert not (cli.root / "Tasks.base").exists()


@pytest.mark.parametrize(
    "given", ["/tmp/x", "../x", "Boards/../../x", ".obsidian/x", "Boards/.hidden/x", "a\\b", ""]
)
def test_a_hostile_path_is_refused(cli: Cli, given: str) -> None:
    with pytest.raises(DashboardPathError):
        dashboard_path(given)
    before = sorted(p.name for p in cli.root.parent.iterdir())
    result = cli("dashboard", given)
    assert result.code == 2 and result.out == ""
    assert result.err.count("\n") == 1 and result.err.startswith("vaultsched: dashboard: ")
    assert sorted(p.name for p in cli.root.parent.iterdir()) == before
    assert not (cli.root / ".obsidian/x.base").exists()


@pytest.mark.parametrize("inside", [True, False])
def test_a_symlinked_folder_is_refused(cli: Cli, tmp_path: Path, inside: bool) -> None:
    target = cli.root / "Real" if inside else tmp_path / "elsewhere"
    target.mkdir()
    (cli.root / "Linked").symlink_to(target)
    result = cli("dashboard", "Linked/Tasks")
    assert result.code == 1 and result.err.count("\n") == 1 and "symlink" in result.err
    assert list(target.iterdir()) == []


def test_a_symlink_in_the_file_s_place_is_refused(cli: Cli, tmp_path: Path) -> None:
    outside = tmp_path / "outside.base"
    outside.write_text(f"{MARKER}\nmine\n")
    (cli.root / "Tasks.base").symlink_to(outside)
    result = cli("dashboard")
    assert result.code == 1 and "symlink" in result.err
    assert outside.read_text() == f"{MARKER}\nmine\n"
    assert (cli.root / "Tasks.base").is_symlink()


# -- init -------------------------------------------------------------------------------------


def test_init_writes_the_dashboard_and_never_overwrites_it(tmp_path: Path) -> None:
    target = tmp_path / "vault"
    assert Cli(target)("init", str(target)).code == 0
    path = target / "Tasks.base"
    assert path.read_text(encoding="utf-8") == dashboard_text()
    assert "Tasks.base" in git(target, "show", "--name-only", "--format=", "HEAD").splitlines()
    assert Cli(target)("dashboard").out == "Tasks.base is up to date\n"
    path.write_text("views: []\n")  # the person's now
    again = Cli(target)("init", str(target))
    assert again.code == 0 and "nothing to do" in again.out
    assert path.read_text() == "views: []\n"


def test_init_leaves_a_person_s_dashboard_alone(tmp_path: Path) -> None:
    target = tmp_path / "vault"
    target.mkdir()
    (target / "Tasks.base").write_text("views: []\n")
    result = Cli(target)("init", str(target))
    assert result.code == 0, result.err
    assert "Tasks.base" not in result.out
    assert (target / "Tasks.base").read_text() == "views: []\n"
