"""Move detection and index deltas, without a watcher: a moved note keeps its task's history."""

from __future__ import annotations

from dataclasses import replace
from zoneinfo import ZoneInfo

import pytest
from conftest import task_note

from vaultsched.adapters import vault as vault_module
from vaultsched.adapters.vault import Index, Vault
from vaultsched.adapters.watcher import Changes
from vaultsched.core.model import Problem, Task
from vaultsched.core.schedules import parse_schedule
from vaultsched.runtime.follow import FileId, Follower, delta, match_moves
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
        moved=(("old", "moved"),),
        added=("new",),
        retimed=("edit",),
        removed=("gone",),
        changed=("edit", "gone", "moved", "new", "old"),
    )


def test_a_task_that_turned_invalid_is_not_removed() -> None:
    """Its marks stay, so fixing the note does not make it fire for the time it was broken."""
    found = delta(tasks(task("broken")), index_of(invalid=("broken",)), [])
    assert found == IndexDelta(changed=("broken",))


def test_a_disabled_task_is_retimed_not_removed() -> None:
    was = task("t")
    found = delta(tasks(was), index_of(replace(was, enabled=False)), [])
    assert found == IndexDelta(retimed=("t",), changed=("t",))


def counting(monkeypatch: pytest.MonkeyPatch, module: object, name: str) -> list[str]:
    """Count the calls of `module.name`, calling through."""
    calls: list[str] = []
    real = getattr(module, name)

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(str(args[0]) if args else "")
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, counted)
    return calls


def test_a_note_saved_with_the_same_front_matter_is_not_parsed_again(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemon's own run block (or a person's edit of the body) changes no task: no parse,
    no walk of the whole `after` graph, an empty delta."""
    front = "command: echo hi\nschedule: every 1h\n"
    task_note(vault.root, "Tasks/A.md", front)
    task_note(vault.root, "Tasks/B.md", front + "after: A\n")
    follower = Follower(vault)
    index = follower.load()
    held = dict(index.tasks)
    parses = counting(monkeypatch, vault_module, "parse_note")
    graphs = counting(monkeypatch, vault_module, "after_graph")

    task_note(vault.root, "Tasks/A.md", front, body="Body.\n\n## Runs\n\nran\n")
    found = follower.apply(Changes(paths={"Tasks/A.md", "Tasks/B.md"}))

    assert found == IndexDelta()
    assert (parses, graphs) == ([], [])
    assert follower.index.tasks == held and follower.index.downstream == {"Tasks/A": ("Tasks/B",)}


def test_a_front_matter_edit_saved_with_a_run_block_is_seen(vault: Vault) -> None:
    """Compared by content, not by who wrote last or when: a person's edit of the front matter
    that lands together with the daemon's write of the body is read."""
    front = "command: echo hi\nschedule: every 1h\n"
    task_note(vault.root, "Tasks/A.md", front)
    task_note(vault.root, "Tasks/B.md", front + "after: A\n")
    follower = Follower(vault)
    follower.load()

    task_note(vault.root, "Tasks/A.md", front.replace("1h", "2h"), body="## Runs\n\nran\n")
    task_note(vault.root, "Tasks/B.md", front)  # no longer after A
    found = follower.apply(Changes(paths={"Tasks/A.md", "Tasks/B.md"}))

    assert found == IndexDelta(retimed=("Tasks/A",), changed=("Tasks/A", "Tasks/B"))
    assert follower.index.tasks["Tasks/A"].schedules == (parse_schedule("every 2h"),)
    assert follower.index.downstream == {}


def test_a_task_made_invalid_is_read_again_and_relinked(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task that failed planning is invalid until its note is read again, as before."""
    task_note(vault.root, "Tasks/A.md", "command: echo hi\nschedule: every 1h\n")
    follower = Follower(vault)
    follower.load()
    follower.invalidate("Tasks/A", Problem("Tasks/A.md", 1, "cannot plan"))
    graphs = counting(monkeypatch, vault_module, "after_graph")

    follower.apply(Changes(paths={"Tasks/A.md"}))

    assert "Tasks/A" in follower.index.tasks and "Tasks/A" not in follower.index.invalid
    assert len(graphs) == 1


def _live_and_an_archive(vault: Vault) -> Follower:
    """A follower that has read `Tasks/Live` (fires every second), and an empty `Archive/`."""
    task_note(vault.root, "Tasks/Live.md", "command: echo hi\nschedule: every 1s\n")
    follower = Follower(vault)
    follower.load()
    (vault.root / "Archive").mkdir()
    return follower


def test_a_note_moved_in_whose_old_path_is_not_reported_yet_is_a_move_at_once(
    vault: Vault,
) -> None:
    """A move into a folder made a moment before: the watcher reports the new path first and
    the old one's deletion up to half a second later. The new task is that very file, so the
    old path is read again at once: one task, moved, never two firing under both names."""
    task_note(vault.root, "Tasks/Other.md", "command: echo other\nschedule: every 1s\n")
    follower = _live_and_an_archive(vault)
    (vault.root / "Tasks/Live.md").rename(vault.root / "Archive/Live.md")

    found = follower.apply(Changes(paths={"Archive/Live.md"}))

    assert found.moved == (("Tasks/Live", "Archive/Live"),) and found.added == ()
    assert set(follower.index.tasks) == {"Archive/Live", "Tasks/Other"}


def test_a_hard_link_of_a_task_note_is_a_second_task_not_a_move(vault: Vault) -> None:
    follower = _live_and_an_archive(vault)
    (vault.root / "Archive/Live.md").hardlink_to(vault.root / "Tasks/Live.md")

    found = follower.apply(Changes(paths={"Archive/Live.md"}))

    assert found.moved == () and found.added == ("Archive/Live",)
    assert set(follower.index.tasks) == {"Archive/Live", "Tasks/Live"}


def test_an_edit_that_keeps_every_after_does_not_walk_the_graph_again(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Most edits (a schedule, a command) leave the `after` graph as it was: relinking would
    walk the whole vault's graph for the same edges and problems."""
    front = "command: echo hi\nschedule: every 1h\n"
    task_note(vault.root, "Tasks/A.md", front)
    task_note(vault.root, "Tasks/B.md", front + "after: A\n")
    follower = Follower(vault)
    follower.load()
    graphs = counting(monkeypatch, vault_module, "after_graph")

    task_note(vault.root, "Tasks/A.md", front.replace("1h", "2h"))
    task_note(vault.root, "Tasks/B.md", "command: echo changed\nschedule: every 3h\nafter: A\n")
    found = follower.apply(Changes(paths={"Tasks/A.md", "Tasks/B.md"}))

    assert graphs == []
    assert found.retimed == ("Tasks/A", "Tasks/B")
    assert follower.index.tasks["Tasks/B"].command == "echo changed"
    assert follower.index.downstream == {"Tasks/A": ("Tasks/B",)}


@pytest.mark.parametrize(
    "after",
    ["Missing", "C"],  # naming no task; a cycle of one
)
def test_an_edit_of_a_task_held_out_for_its_after_walks_the_graph(
    vault: Vault, monkeypatch: pytest.MonkeyPatch, after: str
) -> None:
    """Whether it is still held out depends on other notes too: looked at again, and it stays
    out; once the vault lets it resolve (the task it names made, the cycle broken), it is in."""
    front = "command: echo hi\nschedule: every 1h\n"
    task_note(vault.root, "Tasks/C.md", f"{front}after: {after}\n")
    follower = Follower(vault)
    follower.load()
    assert "Tasks/C" in follower.index.invalid
    graphs = counting(monkeypatch, vault_module, "after_graph")

    task_note(vault.root, "Tasks/C.md", f"{front.replace('1h', '2h')}after: {after}\n")
    follower.apply(Changes(paths={"Tasks/C.md"}))
    assert len(graphs) == 1 and "Tasks/C" in follower.index.invalid

    if after == "Missing":
        task_note(vault.root, "Tasks/Missing.md", front)
        follower.apply(Changes(paths={"Tasks/Missing.md"}))
    else:
        task_note(vault.root, "Tasks/C.md", front)
        follower.apply(Changes(paths={"Tasks/C.md"}))
    assert "Tasks/C" in follower.index.tasks and "Tasks/C" not in follower.index.invalid


def test_a_task_whose_edit_names_another_after_is_relinked(vault: Vault) -> None:
    front = "command: echo hi\nschedule: every 1h\n"
    for name in ("A", "B"):
        task_note(vault.root, f"Tasks/{name}.md", front)
    task_note(vault.root, "Tasks/C.md", front + "after: A\n")
    follower = Follower(vault)
    follower.load()

    task_note(vault.root, "Tasks/C.md", front + "after: B\n")
    follower.apply(Changes(paths={"Tasks/C.md"}))
    assert follower.index.downstream == {"Tasks/B": ("Tasks/C",)}

    task_note(vault.root, "Tasks/C.md", front + "after: Nobody\n")
    follower.apply(Changes(paths={"Tasks/C.md"}))
    assert follower.index.downstream == {} and "Tasks/C" in follower.index.invalid


def test_an_after_edit_among_the_same_tasks_resolves_with_the_names_it_had(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The graph is walked again, but the table of every way to name a task, the most costly
    part in a vault of thousands, is made only when the set of tasks changed."""
    front = "command: echo hi\nschedule: every 1h\n"
    for name in ("A", "B", "C"):
        task_note(vault.root, f"Tasks/{name}.md", front)
    follower = Follower(vault)
    follower.load()
    tables = counting(monkeypatch, vault_module, "TaskNames")

    task_note(vault.root, "Tasks/C.md", front + "after: A\n")
    follower.apply(Changes(paths={"Tasks/C.md"}))
    task_note(vault.root, "Tasks/C.md", front + "after: B\n")
    follower.apply(Changes(paths={"Tasks/C.md"}))
    assert tables == [] and follower.index.downstream == {"Tasks/B": ("Tasks/C",)}

    task_note(vault.root, "Tasks/D.md", front + "after: C\n")
    follower.apply(Changes(paths={"Tasks/D.md"}))
    assert len(tables) == 1
    assert follower.index.downstream == {"Tasks/B": ("Tasks/C",), "Tasks/C": ("Tasks/D",)}
