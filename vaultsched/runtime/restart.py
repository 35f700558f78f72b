"""What a daemon picks up from the one before it: runs it left unfinished, its marks and
refusals, temp files of writes it was killed in."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime
from zoneinfo import ZoneInfo

from vaultsched.adapters import statefs
from vaultsched.adapters.ledger import host_file_stem
from vaultsched.adapters.notes import sweep_temp_files
from vaultsched.adapters.vault import Index, Vault, read_note
from vaultsched.core import layout
from vaultsched.core.model import Run, Status, Task
from vaultsched.core.planner import Planner
from vaultsched.runtime.dispatch import Dispatcher
from vaultsched.runtime.groups import Groups
from vaultsched.runtime.limits import COUNTED
from vaultsched.runtime.marks import load_marks
from vaultsched.runtime.record import Recorder
from vaultsched.runtime.run import Execution
from vaultsched.runtime.workspace import Workspace
from vaultsched.trust.store import fingerprint

log = logging.getLogger(__name__)


def recover_interrupted(execution: Execution, recorder: Recorder) -> None:
    """Runs of this host that started but never finished: vaultsched died during them."""
    workspace = recorder.workspace
    for run in workspace.ledger.runs():
        if run.status is not Status.RUNNING or run.host != workspace.vault.host or run.queue:
            continue  # another host's, or in the worker pool (`in_pool`)
        task = read_note(workspace.vault, f"{run.task}.md").task or stub_task(run)
        if not execution.idle(task):
            continue  # a `run-now` in another process is still running it
        recorder.interrupted(task, run)
        log.warning("%s: run %s was interrupted (vaultsched stopped)", run.task, run.run_id)


def in_pool(workspace: Workspace) -> list[Run]:
    """Runs this host's daemon handed to the worker pool and never saw finish."""
    own_file = host_file_stem(workspace.vault.host)
    return [
        run
        for path, run in workspace.ledger.runs_by_file()
        if path.stem == own_file and run.queue and run.status is Status.RUNNING
    ]


def restored_dispatcher(workspace: Workspace, index: Index, now: datetime) -> Dispatcher:
    """Dispatch as the last daemon left it: marks from the ledger and from `marks.json`, tasks
    without any started afresh, and the refusals it already recorded."""
    runs = workspace.ledger.runs_by_file()
    own_file = host_file_stem(workspace.vault.host)
    planner = Planner.from_ledger(((p.stem, r) for p, r in runs), index.tasks, own_file, now)
    load_marks(workspace.vault.root, planner, now)
    dispatcher = Dispatcher(planner, groups=Groups(workspace.vault.config.groups))
    for task in index.tasks.values():
        if task.id not in planner.marks:
            dispatcher.retimed(task.id, now)
    _remember_refusals(workspace, index, dispatcher)
    for _, run in runs:  # max_runs counts every run the ledger holds, whichever host ran it
        if run.status in COUNTED:
            counted = dispatcher.limits.counted
            counted[run.task] = counted.get(run.task, 0) + 1
    return dispatcher


def unfinished_chains(workspace: Workspace) -> list[Run]:
    """This host's runs whose `after` tasks never started (the daemon stopped first), each
    with only those in its `chain`. A downstream run names the run it follows, whatever became
    of it (run, refused, waiting for approval), so nothing starts twice."""
    runs = workspace.ledger.runs_by_file()
    own_file = host_file_stem(workspace.vault.host)
    started = {(run.task, run.upstream_run) for _, run in runs if run.upstream_run}
    unfinished = []
    for path, run in runs:
        if path.stem != own_file or not run.chain:
            continue
        left = tuple(ident for ident in run.chain if (ident, run.run_id) not in started)
        if left:
            unfinished.append(replace(run, chain=left))
    return unfinished


def _remember_refusals(workspace: Workspace, index: Index, dispatcher: Dispatcher) -> None:
    """A task whose latest run was refused as untrusted is not recorded again on restart."""
    latest = {run.task: run for run in workspace.ledger.runs()}
    for ident, task in index.tasks.items():
        run = latest.get(ident)
        if run is not None and run.status is Status.UNTRUSTED:
            dispatcher.refused[ident] = fingerprint(workspace.vault.root, task)


def sweep_cut_short_writes(vault: Vault, index: Index) -> None:
    """Temp files of writes a kill cut short; only where vaultsched writes: the task notes'
    folders, the digest folder, the folders output notes go to (where the template names
    one), and under `.vaultsched/` the state and each task's run outputs."""
    ids = (*index.tasks, *index.invalid)
    folders = {(vault.root / ident).parent for ident in ids}
    folders.add(vault.root / vault.config.digest.folder)
    folders |= {vault.root / folder for folder in _output_folders(index)}
    for leftover in sweep_temp_files(sorted(folders)):
        log.info("removed %s, left by an earlier write that was cut short", leftover)
    # marks.json and pings.json, the written marks, if_changed digests, run outputs
    state = [layout.STATE_DIR, layout.WRITTEN_DIR, layout.INPUTS_DIR, layout.NOTE_TEMPS_DIR]
    for rel in state + [layout.logs_dir(ident) for ident in ids]:
        for removed in statefs.sweep_temp(vault.root, rel):
            log.info("removed %s, left by an earlier write that was cut short", removed)


def _output_folders(index: Index) -> set[str]:
    """The folders of the tasks' `output` templates that name one without a placeholder."""
    found = set()
    for task in index.tasks.values():
        folder = (task.output or "").rpartition("/")[0]
        if folder and "{" not in folder:
            found.add(folder)
    return found


def lost_unseen(recorder: Recorder, run: Run, why: str) -> None:
    """Close a pool run this daemon cannot collect."""
    message = f"lost: dispatched to the worker pool, but {why}"
    recorder.closed(stub_task(run), run, Status.LOST, message)
    log.warning("%s: run %s %s", run.task, run.run_id, message)


def stub_task(run: Run) -> Task:
    """A stand-in for a task whose note is gone or broken, enough to record the interruption."""
    return Task(
        id=run.task, path=f"{run.task}.md", command="", schedules=(), timezone=ZoneInfo("UTC")
    )
