"""Move detection and index deltas, without a watcher: a moved note keeps its task's history."""

from __future__ import annotations

from dataclasses import replace
from zoneinfo import ZoneInfo

from vaultsched.adapters.vault import Index
from vaultsched.core.model import Task
from vaultsched.core.schedules import parse_schedule
from vaultsched.runtime.follow import FileId, delta, match_moves
from vaultsched.runtime.messages import IndexDelta


def task(ident: str, command: str = "true", schedule: str = "every 1m") -> Task:
    return Task(ident, f"{ident}.md", command, (parse_schedule(schedule),), ZoneInfo("UTC"))


def tasks(*made: Task) -> dict[str, Task]:
    return {t.id: t for t in made}


def no_files(_rel: str) -> FileId | None:
    return None


def moves(before: dict[str, Task], after: dict[str, Task], **kw: object) -> list[tuple[str, str]]:
    options: dict[str, object] = {"recent": set(), "file_id": no_files, "files": {}, **kw}
    return match_moves(before, after, options.pop("reported", []), **options)  # type: ignore[arg-type]


def test_a_reported_move_of_a_task_is_a_move() -> None:
    before, after = tasks(task("A/x")), tasks(task("B/x"))
    assert moves(before, after, reported=[("A/x", "B/x")]) == [("A/x", "B/x")]


def test_a_deletion_and_a_creation_of_the_same_definition_is_a_move() -> None:
    """What sync tools do, and inotify for a move into a folder made a moment before."""
    assert moves(tasks(task("A/x")), tasks(task("B/y"))) == [("A/x", "B/y")]


def test_a_different_definition_is_a_new_task_not_a_move() -> None:
    assert moves(tasks(task("A/x")), tasks(task("B/y", command="other"))) == []


def test_two_identical_candidates_are_ambiguous_unless_the_file_tells() -> None:
    before = tasks(task("A/x"))
    after = tasks(task("B/y"), task("C/z"))
    assert moves(before, after) == []
    inode = {"C/z.md": (1, 42)}
    assert moves(before, after, file_id=inode.get, files={"A/x": (1, 42)}) == [("A/x", "C/z")]


def test_the_same_file_is_a_move_even_if_the_definition_changed() -> None:
    before, after = tasks(task("A/x")), tasks(task("B/y", command="edited"))
    found = moves(before, after, file_id={"B/y.md": (1, 7)}.get, files={"A/x": (1, 7)})
    assert found == [("A/x", "B/y")]


def test_a_task_that_appeared_recently_may_be_the_vanished_ones_move() -> None:
    """The creation came in an earlier batch, the deletion in this one."""
    before = tasks(task("A/x"), task("B/y"))
    after = tasks(task("B/y"))
    assert moves(before, after) == []
    assert moves(before, after, recent={"B/y"}) == [("A/x", "B/y")]


def index_of(*made: Task, invalid: tuple[str, ...] = ()) -> Index:
    index = Index()
    index.tasks.update(tasks(*made))
    index.invalid.update({i: () for i in invalid})
    return index


def test_delta_names_what_was_added_retimed_removed_and_moved() -> None:
    before = tasks(task("keep"), task("edit"), task("gone"), task("old"))
    after = index_of(task("keep"), task("edit", schedule="every 2m"), task("new"), task("moved"))
    found = delta(before, after, [("old", "moved")])
    assert found == IndexDelta(
        moved=(("old", "moved"),), added=("new",), retimed=("edit",), removed=("gone",)
    )


def test_a_task_that_turned_invalid_is_not_removed() -> None:
    """Its marks stay, so fixing the note does not make it fire for the time it was broken."""
    found = delta(tasks(task("broken")), index_of(invalid=("broken",)), [])
    assert found == IndexDelta()


def test_a_disabled_task_is_retimed_not_removed() -> None:
    was = task("t")
    found = delta(tasks(was), index_of(replace(was, enabled=False)), [])
    assert found == IndexDelta(retimed=("t",))
