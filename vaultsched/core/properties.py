"""The run state a task note keeps as properties (`[notes] properties = true`), so Obsidian's
Bases and searches can filter on it: values computed from the ledger's runs, no I/O."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from vaultsched.core.model import Run, Status, Task
from vaultsched.core.planner import Unplannable, task_fires, window_open
from vaultsched.core.workflow import next_window_start


def next_run(
    task: Task, after: datetime, fires: Sequence[datetime] | None = None
) -> datetime | None:
    """When the task fires next on its own, as its schedule, `window` and `until` allow; None
    for a manual or paused task, or one past its `until`. `fires`: `task_fires(task, after, 1)`
    if the caller has it already."""
    if task.manual or not task.enabled:
        return None
    if fires is None:
        try:
            fires = task_fires(task, after, 1)
        except Unplannable:
            return None
    if not fires:
        return None
    fire = fires[0]
    if task.window is not None and not window_open(task, fire):
        fire = next_window_start(task.window, fire, task.timezone)
    if task.until is not None and fire > task.until:
        return None
    return fire


def task_properties(task: Task, runs: Sequence[Run], now: datetime) -> dict[str, str]:
    """The four properties as YAML scalar text: times local to the task's zone without an
    offset (`2026-12-01T07:30:00`, which Obsidian shows as a date and time), "" for none.
    `runs`: the task's runs from the ledger, oldest first."""
    done = [run for run in runs if run.status is not Status.RUNNING]
    last = done[-1] if done else None
    upcoming = next_run(task, now)
    return {
        "last_run": _local(last.started_at, task) if last else "",
        "last_status": str(last.status) if last else "",
        "next_run": _local(upcoming, task) if upcoming else "",
        "run_count": str(len(done)),
    }


def _local(moment: datetime, task: Task) -> str:
    return moment.astimezone(task.timezone).strftime("%Y-%m-%dT%H:%M:%S")
