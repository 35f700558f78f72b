"""Chains of `after` tasks without threads or processes: the index resolving them across the
vault, which outcomes start which tasks, and dispatch starting them."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from vaultsched.adapters.config import Config
from vaultsched.adapters.vault import Index
from vaultsched.core.model import AfterOn, Run, Status, Task, Trigger
from vaultsched.core.taskfile import parse_task
from vaultsched.core.workflow import chain_targets
from vaultsched.runtime.dispatch import Dispatcher, chain_of
from vaultsched.runtime.messages import (
    OVERLAP_SKIPPED,
    AwaitApproval,
    Job,
    Record,
    Refuse,
    Submit,
    Upstream,
)
from vaultsched.trust.fingerprint import canonical_keys

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CONFIG = Config(timezone=ZoneInfo("UTC"))


def add(index: Index, name: str, front: str) -> None:
    rel = f"Tasks/{name}.md"
    index.add(rel, parse_task(rel, f"command: echo {name}\n{front}", CONFIG))


def trusted(_task: Task) -> str | None:
    return None


def test_a_missing_target_holds_a_task_out_until_it_appears() -> None:
    index = Index()
    add(index, "Act", 'after: "[[Draft]]"\n')
    index.link()
    assert "Tasks/Act" not in index.tasks
    (problem,) = index.invalid["Tasks/Act"]
    assert str(problem) == "Tasks/Act.md:3: after: no task named 'Draft' in the vault"
    add(index, "Draft", "")
    index.link()
    assert "Tasks/Act" in index.tasks and "Tasks/Act" not in index.invalid
    assert index.problems == [] and index.downstream == {"Tasks/Draft": ("Tasks/Act",)}


def test_every_task_of_a_cycle_is_invalid_and_a_task_after_it_is_not() -> None:
    index = Index()
    add(index, "A", 'after: "[[C]]"\n')
    add(index, "B", "after: Tasks/A\n")
    add(index, "C", "after: B\n")
    add(index, "D", "after: A\n")
    index.link()
    assert sorted(index.invalid) == ["Tasks/A", "Tasks/B", "Tasks/C"]
    assert all("cycle" in p.message for found in index.invalid.values() for p in found)
    assert list(index.tasks) == ["Tasks/D"] and index.downstream == {"Tasks/A": ("Tasks/D",)}
    add(index, "A", "")  # the cycle broken: all four run again
    index.link()
    assert index.invalid == {} and sorted(index.downstream) == ["Tasks/A", "Tasks/B"]


def test_a_held_out_task_keeps_its_own_warnings() -> None:
    index = Index()
    add(index, "Act", 'after: "[[Draft]]"\nonn: typo\n')
    index.link()
    warnings = [p for p in index.problems if p.severity == "warning"]
    add(index, "Draft", "")
    index.link()
    assert [p for p in index.problems if p.severity == "warning"] == warnings != []


def run(task: str, status: Status, attempt: int = 1, chain: tuple[str, ...] = ()) -> Run:
    return Run("r1", task, status, Trigger.SCHEDULE, T0, "h", attempt, chain=chain)


def downstream(on: AfterOn, **options: object) -> Task:
    task = parse_task("Tasks/D.md", f"command: x\nafter: U\non: {on}\n", CONFIG).task
    assert task is not None
    return task if not options else Task(**{**task.__dict__, **options})


UP = Task("Tasks/U", "Tasks/U.md", "x", (), ZoneInfo("UTC"), retries=1)


@pytest.mark.parametrize(
    ("on", "status", "attempt", "starts"),
    [
        ("success", Status.SUCCESS, 1, True),
        ("success", Status.FAILED, 2, False),
        ("failure", Status.FAILED, 1, False),  # a retry follows: not the last word yet
        ("failure", Status.FAILED, 2, True),
        ("failure", Status.TIMEOUT, 2, True),
        ("always", Status.SUCCESS, 1, True),
        ("always", Status.ERROR, 1, True),
        ("always", Status.SKIPPED, 1, False),  # nothing ran: no outcome to act on
        ("always", Status.BLOCKED, 1, False),
        ("always", Status.UNTRUSTED, 1, False),
    ],
)
def test_which_outcomes_start_a_downstream_task(
    on: AfterOn, status: Status, attempt: int, starts: bool
) -> None:
    targets = chain_targets(UP, run(UP.id, status, attempt), [downstream(on)], "here")
    assert targets == (["Tasks/D"] if starts else [])


def test_a_paused_task_or_one_for_another_host_is_not_started() -> None:
    paused, elsewhere = downstream("success", enabled=False), downstream("success", hosts=("x",))
    assert chain_targets(UP, run(UP.id, Status.SUCCESS), [paused, elsewhere], "here") == []
    assert chain_of(run("Tasks/Gone", Status.SUCCESS), {}, {}, "here") == []


def test_dispatch_starts_each_task_of_a_chain_through_trust_approval_and_overlap() -> None:
    d = Dispatcher()
    act = downstream("success")
    approve = Task("Tasks/Ok", "Tasks/Ok.md", "x", (), ZoneInfo("UTC"), approval="required")
    tasks = {t.id: t for t in (act, approve)}
    finished = run(UP.id, Status.SUCCESS, chain=("Tasks/D", "Tasks/Ok", "Tasks/Gone"))
    upstream = Upstream(UP.id, "r1")
    assert d.chained([finished], tasks, trusted) == [
        Submit(Job(act, Trigger.AFTER, upstream=upstream)),
        AwaitApproval(approve, Trigger.AFTER, None, "r1"),
    ]
    # While its run goes on, another start of it is missed (overlap: skip).
    assert d.chained([finished], {"Tasks/D": act}, trusted) == [
        Record(act, Status.MISSED, Trigger.AFTER, OVERLAP_SKIPPED, None, "r1")
    ]
    assert d.chained([finished], {"Tasks/D": act}, lambda _: "v1") == [
        Refuse(act, Trigger.AFTER, None, "r1")
    ]
    d.stopping = True
    assert d.chained([finished], tasks, trusted) == []


def test_a_task_given_an_after_by_a_sync_is_no_longer_the_task_trusted() -> None:
    manual = Task("Tasks/M", "Tasks/M.md", "x", (), ZoneInfo("UTC"))
    chained = Task("Tasks/M", "Tasks/M.md", "x", (), ZoneInfo("UTC"), after=("Other",))
    assert canonical_keys(manual)["schedule"] is False
    assert canonical_keys(chained)["schedule"] is True  # the daemon would start it by itself
    assert canonical_keys(manual) != canonical_keys(chained)
