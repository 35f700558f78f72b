"""The runtime's stages for one command (`run-now`, `approve`, `reject`, `digest`, `pause`,
`new`): the same recording, landing and committing as the daemon's, on the caller's thread."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import BinaryIO

from vaultsched.adapters.git import Edit
from vaultsched.adapters.notes import NoteWriter
from vaultsched.adapters.vault import Vault
from vaultsched.core.model import Run, Task, Trigger
from vaultsched.runtime.approval import Approvals
from vaultsched.runtime.commit import Committer
from vaultsched.runtime.land import Lander
from vaultsched.runtime.messages import Job
from vaultsched.runtime.record import Recorder
from vaultsched.runtime.run import Execution
from vaultsched.runtime.workspace import Workspace, open_workspace, utc_now


@dataclass
class OneShot:
    workspace: Workspace
    lander: Lander
    recorder: Recorder

    @property
    def committer(self) -> Committer:
        return self.lander.committer

    def run(
        self,
        task: Task,
        trigger: Trigger,
        scheduled_for: datetime | None = None,
        echo: BinaryIO | None = None,
    ) -> Run:
        """Run `task` here and now, land it and commit."""
        run = Execution(self.recorder).run(Job(task, trigger, scheduled_for), echo)
        self.lander.commit()
        return run

    def settle(self, task: Task, outcome: str) -> Run | None:
        """Close the task's run that waits for approval (None if there is none); it is
        committed with the next `run` or `commit_landed`."""
        return Approvals(self.recorder).settle(task, outcome)

    def commit_landed(self) -> None:
        self.lander.commit()

    def digest(self, day: date) -> None:
        """Rebuild that day's digest from the ledger and commit it."""
        written = self.lander.refresh_digest(day)
        self.committer.commit(written, f"vaultsched: digest {day.isoformat()}")

    def commit(self, edits: Sequence[Edit], message: str) -> bool:
        return self.committer.commit(edits, message)


def one_shot(
    vault: Vault, clock: Callable[[], datetime] = utc_now, writer: NoteWriter | None = None
) -> OneShot:
    workspace = open_workspace(vault, clock, writer)
    lander = Lander(workspace, Committer(workspace))
    return OneShot(workspace, lander, Recorder(workspace, lambda item: lander.land([item])))
