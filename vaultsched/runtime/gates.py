"""What may stop a run before its command starts: `if_changed` (nothing it names changed since
the last success: `skipped`, reason `unchanged`) and `check` (a command of the task's own that
says go, skip or, failing, blocks the run). Either way the command never starts."""

from __future__ import annotations

import logging
from pathlib import Path

from vaultsched.adapters.inputs import inputs_digest, last_inputs, save_inputs
from vaultsched.core.contain import describe
from vaultsched.core.model import Run, Status, Task
from vaultsched.core.output import clean_output, gate_of
from vaultsched.runtime.process import Process, stopped

log = logging.getLogger(__name__)

UNCHANGED = "unchanged"  # the reason of a run if_changed skipped


def inputs_now(root: Path, task: Task) -> str | None:
    """The digest of what the task's `if_changed` names now; None without it (or if it cannot
    be taken: then the run goes ahead, as on a first run)."""
    if not task.if_changed:
        return None
    try:
        return inputs_digest(root, task.if_changed)
    except (OSError, ValueError) as exc:
        log.warning("%s: if_changed not read, the run goes ahead: %s", task.id, describe(exc))
        return None


def keep_inputs(root: Path, task: Task, digest: str) -> None:
    try:
        save_inputs(root, task.id, digest)
    except (OSError, ValueError) as exc:
        log.warning("%s: if_changed not kept: %s", task.id, describe(exc))


def gated(task: Task, process: Process, inputs: str | None, root: Path) -> Run | None:
    """None if the run goes ahead; else the run as it ends, its command never started:
    nothing `if_changed` names changed since the last success, or the `check` said so."""
    if inputs is not None and inputs == last_inputs(root, task.id):
        process.note("vaultsched: if_changed: nothing changed since the last success\n")
        return stopped(process.run_record, Status.SKIPPED, UNCHANGED, process.clock())
    return _checked(task, process)


def _checked(task: Task, process: Process) -> Run | None:
    """Run the task's `check`: None if the run goes ahead, else the run as it ends
    (`skipped`: nothing to do; `blocked`: the check failed, so the command never runs)."""
    if task.check is None:
        return None
    process.note("vaultsched: check\n")
    result = process.run(task.check, task.timeout, None, None)
    gate = gate_of(result, process.redact)
    if gate is None:
        process.note("vaultsched: check passed, the command runs\n")
        return None
    tail = clean_output(result.tail, redact=process.redact)
    return stopped(process.run_record, gate[0], gate[1], result.finished_at, tail)
