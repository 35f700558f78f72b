"""What a run is told about itself: the run-context variables in its environment, the
placeholders of a `stdin: body` prompt, and the files it reads from earlier runs (the previous
run's output, an upstream run's output) and keeps between runs (its state folder)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from vaultsched.adapters import statefs
from vaultsched.core import layout
from vaultsched.core.model import Run, Task
from vaultsched.runtime.messages import Job
from vaultsched.runtime.workspace import Workspace

log = logging.getLogger(__name__)

OUTPUT_SUFFIX = ".out"
PROMPT_OUTPUT_CHARS = 64 * 1024  # of the previous output put into a prompt
MAX_OUTPUT_FILE = 8 * 1024 * 1024  # an output file is at most ~1 MB as written; refuse more


@dataclass(frozen=True)
class Context:
    """One run's view of its task's history; paths are vault-relative, "" when there is none."""

    root: Path
    task: Task
    run: Run
    last_success: datetime | None
    previous_output: str
    upstream_output: str
    state_dir: str

    def variables(self) -> dict[str, str]:
        run = self.run
        return {
            "VAULTSCHED_VAULT": str(self.root),
            "VAULTSCHED_TASK": self.task.id,
            "VAULTSCHED_NOTE": str(self.root / self.task.path),
            "VAULTSCHED_RUN_ID": run.run_id,
            "VAULTSCHED_TRIGGER": str(run.trigger),
            "VAULTSCHED_SCHEDULED_FOR": _iso(run.scheduled_for),
            "VAULTSCHED_ATTEMPT": str(run.attempt),
            "VAULTSCHED_LAST_SUCCESS_AT": _iso(self.last_success),
            "VAULTSCHED_PREVIOUS_OUTPUT": self._absolute(self.previous_output),
            "VAULTSCHED_UPSTREAM_OUTPUT": self._absolute(self.upstream_output),
            "VAULTSCHED_UPSTREAM_RUN": run.upstream_run,
            "VAULTSCHED_STATE_DIR": self._absolute(self.state_dir),
        }

    def prompt_values(self) -> dict[str, str]:
        """The values of a prompt's placeholders: times in the task's zone."""
        local = self.run.started_at.astimezone(self.task.timezone)
        return {
            "date": f"{local:%Y-%m-%d}",
            "time": f"{local:%H:%M}",
            "datetime": local.isoformat(timespec="seconds"),
            "task": self.task.name,
            "last_success": _iso(self.last_success),
            "previous_output": self.read(self.previous_output)[:PROMPT_OUTPUT_CHARS],
        }

    def read(self, rel: str) -> str:
        """An earlier run's output; "" if there is none or it cannot be read."""
        if not rel:
            return ""
        try:
            data = statefs.read_bytes(self.root, rel, limit=MAX_OUTPUT_FILE)
        except (OSError, ValueError):  # refused: a link, too big, a forged path
            return ""
        return (data or b"").decode("utf-8", errors="replace")

    def _absolute(self, rel: str) -> str:
        return str(self.root / rel) if rel else ""


def _iso(moment: datetime | None) -> str:
    return "" if moment is None else moment.isoformat()


def context_for(
    workspace: Workspace, job: Job, run: Run, logs: list[statefs.Entry] | None = None
) -> Context:
    """`logs`: what the task's log folder holds, if already listed (see `task_logs`)."""
    root, task = workspace.vault.root, job.task
    if logs is None:
        logs = task_logs(root, task.id) or []
    upstream = ""
    if job.upstream is not None:
        upstream = _existing(root, layout.run_output(job.upstream.task, job.upstream.run_id))
    return Context(
        root=root,
        task=task,
        run=run,
        last_success=workspace.ledger.last_success(task.id),
        previous_output=_previous_output(task.id, run.run_id, logs),
        upstream_output=upstream,
        state_dir=_state_dir(root, task.id),
    )


def task_logs(root: Path, task_id: str) -> list[statefs.Entry] | None:
    """What the task's log folder holds; None if it is refused (a link)."""
    try:
        return statefs.entries(root, layout.logs_dir(task_id))
    except OSError:
        return None


def _previous_output(task_id: str, run_id: str, found: list[statefs.Entry]) -> str:
    """The newest output file of this task's earlier runs (run ids sort by start time), of
    what its log folder holds."""
    folder = layout.logs_dir(task_id)
    earlier = [
        e.name
        for e in found
        if e.kind == "file" and e.name.endswith(OUTPUT_SUFFIX) and e.name < run_id
    ]
    return f"{folder}/{max(earlier)}" if earlier else ""


def _existing(root: Path, rel: str) -> str:
    """`rel` if it is a file under `.vaultsched/`; "" if not, or refused (a link, or a path a
    forged ledger line made, such as a run id with `..` in it)."""
    try:
        os.close(statefs.open_file(root, rel, os.O_RDONLY))
    except (OSError, ValueError):
        return ""
    return rel


def _state_dir(root: Path, task_id: str) -> str:
    """The task's state folder, made if missing (never through a link); "" if refused."""
    rel = layout.task_state_dir(task_id)
    try:
        with statefs.folder(root, rel, create=True):
            return rel
    except OSError as exc:
        statefs.warn_refused(exc, f"{task_id}: no state folder")
        return ""


def save_output(
    root: Path, run: Run, text: str, *, durable: bool, log_fd: int | None = None
) -> None:
    """Keep a run's redacted stdout for the task's next run and its `after` tasks. `durable`
    (synced to disk before the finish record) when the run starts `after` tasks: a daemon
    that crashes then starts them on its next start, with this output. Otherwise a crash may
    lose it, and the next run sees no previous output: not worth an fsync per run.

    `log_fd`: the run's log, open, when it holds exactly these bytes (the command wrote only
    to stdout, nothing was redacted or cleaned): the output is then that file under a second
    name, not a second file (making a file is most of a short run's cost in the kernel)."""
    rel = layout.run_output(run.task, run.run_id)
    if log_fd is not None:
        try:
            statefs.link_open(root, log_fd, rel, durable=durable)
            return
        except OSError:
            pass  # no /proc, say: written as a file of its own
    try:
        statefs.write_atomic(root, rel, text.encode(), durable=durable)
    except OSError as exc:
        statefs.warn_refused(exc, f"{run.task}: output not kept for the next run")
