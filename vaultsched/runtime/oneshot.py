"""The runtime's stages for one command (`run-now`, `approve`, `reject`, `digest`, `pause`,
`new`): the same recording, landing and committing as the daemon's, on the caller's thread."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import BinaryIO

from vaultsched.adapters.git import Edit
from vaultsched.adapters.notes import NoteWriter, Outcome
from vaultsched.adapters.vault import Vault
from vaultsched.core.errors import VaultschedError
from vaultsched.core.frontmatter_edit import set_scalar
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

    def set_enabled(self, ident: str, rel: str, enabled: bool) -> Outcome:
        """`pause` and `resume`: a one-line edit of the note's `enabled`, committed; the
        outcome is UNCHANGED if it already said so."""
        # One transform: written to the note, and applied by git to its committed version.
        apply = functools.partial(set_scalar, key="enabled", value="true" if enabled else "false")
        try:
            outcome = self.workspace.writer.update(rel, apply)
        except ValueError as exc:
            raise VaultschedError(f"{rel}: {exc}", exit_code=1) from exc
        if outcome is Outcome.UNCHANGED:
            return outcome
        if outcome is not Outcome.WRITTEN:
            raise VaultschedError(f"{rel}: not written ({outcome})", exit_code=1)
        self.commit([Edit(rel, apply)], f"vaultsched: {'resume' if enabled else 'pause'} {ident}")
        return outcome

    def commit(self, edits: Sequence[Edit], message: str) -> bool:
        return self.committer.commit(edits, message)


def one_shot(
    vault: Vault, clock: Callable[[], datetime] = utc_now, writer: NoteWriter | None = None
) -> OneShot:
    workspace = open_workspace(vault, clock, writer)
    lander = Lander(workspace, Committer(workspace))
    return OneShot(workspace, lander, Recorder(workspace, lambda item: lander.land([item])))
