"""The daemon keeps the folders under `.vaultsched/` open: a kept descriptor is the folder that
was checked, so nothing swapped in its place is ever followed, and a folder deleted or kept
long enough is walked (and checked) again."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from zoneinfo import ZoneInfo

import pytest

from vaultsched.adapters import statefs
from vaultsched.core.model import Task
from vaultsched.runtime.context import task_logs
from vaultsched.runtime.run import KEEP_LOGS, _prune_logs

LOGS = ".vaultsched/logs/Tasks"


@pytest.fixture
def kept(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / LOGS).mkdir(parents=True)
    statefs.keep_folders(tmp_path)
    yield tmp_path
    statefs.forget_folders(tmp_path)


def _open_fds() -> int:
    return len(list(Path("/proc/self/fd").iterdir()))


def _swap_for_link(root: Path, rel: str, outside: Path) -> None:
    (root / rel).rename(root / ".vaultsched/moved")
    outside.mkdir()
    (root / rel).symlink_to(outside, target_is_directory=True)


def test_a_link_swapped_in_for_a_kept_folder_is_never_followed(
    kept: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("outside") / "target"
    statefs.write_atomic(kept, f"{LOGS}/a.log", b"1")  # walked: kept
    _swap_for_link(kept, ".vaultsched/logs", outside)
    statefs.write_atomic(kept, f"{LOGS}/b.log", b"2")  # the folder that was checked
    assert (kept / ".vaultsched/moved/Tasks/b.log").read_bytes() == b"2"
    assert list(outside.iterdir()) == []


def test_a_kept_folder_is_walked_again_after_a_while(
    kept: Path, tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    outside = tmp_path_factory.mktemp("outside") / "target"
    monkeypatch.setattr(statefs, "KEEP_FOR", 0.0)
    statefs.write_atomic(kept, f"{LOGS}/a.log", b"1")
    _swap_for_link(kept, ".vaultsched/logs", outside)
    with pytest.raises(statefs.LinkRefused):
        statefs.write_atomic(kept, f"{LOGS}/b.log", b"2")
    assert list(outside.iterdir()) == []


def test_a_linked_folder_is_refused_and_never_kept(kept: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (kept / ".vaultsched/state").symlink_to(outside, target_is_directory=True)
    for _ in range(2):
        with pytest.raises(statefs.LinkRefused):
            statefs.write_atomic(kept, ".vaultsched/state/marks.json", b"{}")
    assert list(outside.iterdir()) == []


def test_a_deleted_kept_folder_is_made_again(kept: Path) -> None:
    statefs.write_atomic(kept, f"{LOGS}/a.log", b"1")
    shutil.rmtree(kept / ".vaultsched/logs")
    statefs.write_atomic(kept, f"{LOGS}/b.log", b"2")
    assert [e.name for e in statefs.entries(kept, LOGS)] == ["b.log"]


def test_kept_descriptors_are_bounded_and_closed_when_forgotten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(statefs, "KEEP_MAX", 4)
    before = _open_fds()
    statefs.keep_folders(tmp_path)
    for n in range(10):
        statefs.write_atomic(tmp_path, f".vaultsched/state/f{n}/x", b"")
        statefs.write_atomic(tmp_path, f".vaultsched/logs/Tasks/T{n}/deeper/x.log", b"")
    assert _open_fds() <= before + 4
    statefs.forget_folders(tmp_path)
    assert _open_fds() == before
    assert (tmp_path / ".vaultsched/logs/Tasks/T9/deeper/x.log").exists()


def test_pruning_keeps_the_last_logs_and_lists_only_when_it_may_have_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / ".vaultsched/logs/Tasks/A"
    folder.mkdir(parents=True)
    names = [f"20260301T0000{n:02d}_000-aaaaaa" for n in range(KEEP_LOGS + 5)]
    for name in names[: KEEP_LOGS - 1]:
        (folder / f"{name}.log").write_text("")
    before = task_logs(tmp_path, "Tasks/A")
    (folder / f"{names[KEEP_LOGS - 1]}.log").write_text("")  # this run's own log

    listed: list[str] = []
    entries = statefs.entries

    def listing(root: Path, rel: str) -> list[statefs.Entry]:
        listed.append(rel)
        return entries(root, rel)

    monkeypatch.setattr(statefs, "entries", listing)
    _prune_logs(tmp_path, "Tasks/A", before)  # 49 before, 50 now: nothing to do, no listing
    assert listed == [] and len(list(folder.iterdir())) == KEEP_LOGS

    for name in names[KEEP_LOGS:]:
        (folder / f"{name}.log").write_text("")
        (folder / f"{name}.out").write_text("")
    before = task_logs(tmp_path, "Tasks/A")
    listed.clear()
    _prune_logs(tmp_path, "Tasks/A", before)  # over KEEP_LOGS: listed again, then pruned
    kept = sorted(p.name for p in folder.iterdir() if p.suffix == ".log")
    assert kept == [f"{name}.log" for name in names[-KEEP_LOGS:]]
    assert len(list(folder.glob("*.out"))) == 5
    _prune_logs(tmp_path, "Tasks/A", None)  # refused folder: nothing listed, nothing removed
    assert len(listed) == 1


def test_the_run_listing_is_what_a_refused_folder_gives(tmp_path: Path) -> None:
    (tmp_path / ".vaultsched/logs").mkdir(parents=True)
    (tmp_path / ".vaultsched/logs/Tasks").symlink_to(tmp_path, target_is_directory=True)
    assert task_logs(tmp_path, "Tasks/A") is None
    assert task_logs(tmp_path, "Other/B") == []


@pytest.mark.parametrize(
    "rel", [".vaultsched/a/b", ".vaultsched//a/./b/", ".vaultsched/../a", "/.vaultsched/a", "x/a"]
)
def test_paths_read_as_before(rel: str) -> None:
    """The quick split reads a plain path as pathlib does, and leaves anything else to it."""
    parts = PurePosixPath(rel).parts
    if parts[0] != ".vaultsched" or ".." in parts:
        with pytest.raises(ValueError):
            statefs._parts(rel)
    else:
        assert statefs._parts(rel) == parts


@pytest.mark.parametrize("ident", ["A", "Tasks/A", "Tasks/Sub/A b", "Tasks/./A", "Tasks/A/"])
def test_a_task_name_is_its_ids_last_part(ident: str) -> None:
    task = Task(ident, f"{ident}.md", "echo", (), ZoneInfo("UTC"))
    assert task.name == PurePosixPath(ident).name


def test_a_task_s_own_folder_is_kept_and_the_oldest_kept_goes_first(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A run reaches its task's log folder several times (its listing, its log, its output):
    # walked once. A burst of many tasks lets go of the folders kept longest, not of all.
    monkeypatch.setattr(statefs, "KEEP_MAX", 8)
    statefs.keep_folders(tmp_path)
    try:
        for n in range(12):
            statefs.write_atomic(tmp_path, f".vaultsched/logs/Tasks/A/T{n}/x.log", b"")
        kept = statefs._kept[str(tmp_path)]._dirs
        assert (".vaultsched", "logs", "Tasks", "A", "T11") in kept
        assert (".vaultsched", "logs", "Tasks", "A", "T0") not in kept
        assert (".vaultsched", "logs", "Tasks", "A") in kept and len(kept) <= 8
    finally:
        statefs.forget_folders(tmp_path)
