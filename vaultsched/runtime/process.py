"""The processes of one run (its check, then its command) and what is piped to them."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from vaultsched.adapters.runner import Held, ProcessResult, hold, run_process
from vaultsched.core.contain import describe
from vaultsched.core.layout import run_log
from vaultsched.core.model import Run, Status, Task
from vaultsched.core.output import clean_output, clean_stdout, status_of
from vaultsched.core.redact import Redactor, redactor_for
from vaultsched.core.workflow import OutputPathError, expand_output, expand_prompt
from vaultsched.runtime.context import Context

log = logging.getLogger(__name__)


def stdin_for(task: Task, body: str | None, context: Context) -> bytes | None:
    """What is piped to the command: the note's body with its placeholders filled in, or the
    output of the run this one follows; None: nothing (the command reads EOF)."""
    if task.stdin == "body" and body is not None:
        return expand_prompt(body, context.prompt_values()).encode("utf-8")
    if task.stdin == "upstream":
        return context.read(context.upstream_output).encode("utf-8")
    return None


def output_note(task: Task, run: Run) -> str:
    """Where the task's `output` puts this run's stdout; "" if nowhere (or, with a template
    `validate` passed, a path that still fails: a placeholder's value made it unsafe)."""
    if task.output is None:
        return ""
    try:
        when = run.started_at.astimezone(task.timezone)
        return expand_output(task.output, task.name, run.run_id, when)
    except OutputPathError as exc:
        log.warning("%s: output not written: %s", task.id, exc)
        return ""


def ended(run: Run, result: ProcessResult, redact: Redactor) -> tuple[Run, str | None]:
    """`run` as its process ended, and its stdout made fit to hand on (None: it never ran)."""
    status, message = status_of(result)
    tail = clean_output(result.tail, redact=redact)
    finished = stopped(run, status, redact(message), result.finished_at, tail)
    finished = replace(finished, exit_code=result.exit_code)
    if result.pid is None:
        return finished, None
    return finished, clean_stdout(result.stdout, cut=result.stdout_cut, redact=redact)


def stopped(run: Run, status: Status, message: str, at: datetime, tail: str = "") -> Run:
    """`run` as it ended at `at`, its command never started (or, for `finished`, its end)."""
    return replace(
        run,
        status=status,
        finished_at=at,
        duration_s=seconds(run.started_at, at),
        output_tail=tail,
        message=message,
        log=run_log(run.task, run.run_id),
    )


def seconds(start: datetime, end: datetime) -> float:
    return round((end - start).total_seconds(), 3)


@dataclass
class Process:
    """Starting a run's processes (its check, its command): one environment, cwd and log,
    each process known to `cancel` while it lives."""

    task: Task
    run_record: Run
    env: dict[str, str]
    cwd: Path
    log: BinaryIO | None
    clock: Callable[[], datetime]
    children: dict[str, int]  # run id -> process group, of what is running now
    began: Callable[[], None] = lambda: None  # told once a process has started
    redact: Redactor = field(init=False)

    def __post_init__(self) -> None:
        self.redact = redactor_for(self.env)

    def note(self, line: str) -> None:
        if self.log is not None:
            with contextlib.suppress(OSError):
                self.log.write(line.encode())

    @contextlib.contextmanager
    def held(self, command: str | tuple[str, ...], stdin: bytes | None) -> Iterator[Held | None]:
        """The command's process started now, to become the command when `run` is given it;
        called off if it is not. None for an argv (it runs exactly as given, started then)."""
        started = None
        if isinstance(command, str):
            started = hold(command, cwd=self.cwd, env=self.env, piped=stdin is not None)
        try:
            yield started
        finally:
            if started is not None:
                started.cancel()

    def run(
        self,
        command: str | tuple[str, ...],
        timeout: timedelta,
        stdin: bytes | None,
        echo: BinaryIO | None,
        held: Held | None = None,
    ) -> ProcessResult:
        run_id = self.run_record.run_id
        try:
            return run_process(
                command,
                cwd=self.cwd,
                env=self.env,
                stdin=stdin,
                timeout=max(timeout.total_seconds(), 0.0),
                log=self.log,
                echo=echo,
                redact=self.redact,
                now=self.clock,
                on_start=self._started,
                held=held,
            )
        except Exception as exc:  # the start record is written: it must get its finish
            message = f"internal error before the start: {describe(exc)}"
            log.warning("%s: %s", self.task.id, message)
            started, now = self.run_record.started_at, self.clock()
            return ProcessResult(None, None, False, message, b"", 0, started, now, None)
        finally:
            self.children.pop(run_id, None)

    def _started(self, pid: int) -> None:
        self.children[self.run_record.run_id] = pid
        self.began()
