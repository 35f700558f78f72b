"""Carrying out what dispatch decided: the one place its actions meet executor, ledger and log."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from vaultsched.core.model import Problem, Run, Status, Task
from vaultsched.runtime import messages as m
from vaultsched.runtime.approval import Approvals
from vaultsched.runtime.execute import Executor

log = logging.getLogger("vaultsched.daemon")


@dataclass
class Actor:
    executor: Executor
    approvals: Approvals
    invalidate: Callable[[str, Problem], None]
    announce: Callable[[Run], None]  # every run recorded here or reported by the executor
    disable: Callable[[Task, str], None]  # a task done by itself (until, max_runs)

    def carry_out(self, actions: Sequence[m.Action]) -> None:
        for action in actions:
            match action:
                case m.Submit(job):
                    self.submit(job)
                case m.Invalid(task_id, problem):
                    self.invalidate(task_id, problem)
                    log.warning("%s is invalid and will not run: %s", task_id, problem.message)
                case m.Retrying(task_id, attempt, retries, delay):
                    log.info("%s: retry %d of %d in %s", task_id, attempt, retries, delay)
                case m.Expire(task, reason):
                    self.disable(task, reason)
                case m.Record() | m.Refuse() | m.AwaitApproval():
                    self.record(action)

    def submit(self, job: m.Job) -> None:
        self.executor.submit(job)

    def prepare(self, tasks: Sequence[Task]) -> None:
        self.executor.prepare(tasks)

    def record(self, action: m.Record | m.Refuse | m.AwaitApproval) -> None:
        recorder = self.approvals.recorder
        match action:
            case m.Record(task, status, trigger, message, when, upstream):
                run = recorder.record(task, status, trigger, message, when, upstream_run=upstream)
                self.announce(run)
            case m.Refuse(task, trigger, when, upstream):
                root, trust = recorder.workspace.vault.root, recorder.workspace.trust
                message = trust.refusal(root, task)
                refused = Status.UNTRUSTED
                run = recorder.record(task, refused, trigger, message, when, upstream_run=upstream)
                self.announce(run)
            case m.AwaitApproval(task, trigger, when, upstream):
                self.announce(self.approvals.request(task, trigger, when, upstream))


@dataclass
class DryRunActor(Actor):
    """`vaultsched run --dry-run`: says what would run; runs and records nothing."""

    done: Callable[[m.Job, Run | None], None] = lambda job, run: None

    def submit(self, job: m.Job) -> None:
        log.info("would run %s (%s, due %s)", job.task.id, job.trigger, job.scheduled_for)
        self.done(job, None)

    def prepare(self, tasks: Sequence[Task]) -> None:
        pass  # a dry run makes nothing

    def record(self, action: m.Record | m.Refuse | m.AwaitApproval) -> None:
        what = {m.Refuse: "untrusted", m.AwaitApproval: "awaiting approval"}.get(type(action))
        status = action.status if isinstance(action, m.Record) else what
        log.info("would record %s %s (%s)", status, action.task.id, action.trigger)
