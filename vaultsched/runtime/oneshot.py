"""The runtime's stages for one command (`run-now`, `approve`, `reject`, `digest`, `pause`,
`new`, `dashboard`): the same recording, landing and committing as the daemon's, on the
caller's thread."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import BinaryIO

from vaultsched.adapters.clock import utc_now
from vaultsched.adapters.dashboard import write_dashboard
from vaultsched.adapters.git import Edit
from vaultsched.adapters.notes import NoteWriter, Outcome
from vaultsched.adapters.vault import Index, Vault
from vaultsched.core.dashboard import dashboard_text
from vaultsched.core.errors import VaultschedError
from vaultsched.core.model import Run, Task
from vaultsched.runtime.approval import Approvals
from vaultsched.runtime.commit import Committer, enabled_edit
from vaultsched.runtime.dispatch import Dispatcher, chain_of
from vaultsched.runtime.land import Lander
from vaultsched.runtime.messages import AwaitApproval, Job, Submit, Upstream
from vaultsched.runtime.pings import Pings
from vaultsched.runtime.record import Recorder
from vaultsched.runtime.run import Execution
from vaultsched.runtime.workspace import Workspace, open_workspace


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
        job: Job,
        echo: BinaryIO | None = None,
        *,
        chain: Index | None = None,
        report: Callable[[Run], None] = lambda run: None,
    ) -> list[Run]:
        """Run `job` here and now and, given the vault's index (`chain`), the `after` tasks it
        starts, one after another, each `report`ed as it ends; land them and commit."""
        host = self.workspace.vault.host
        downstream = (
            (lambda run: chain_of(run, chain.tasks, chain.downstream, host, retried=False))
            if chain
            else None
        )
        execution = Execution(self.recorder, downstream=downstream or (lambda run: []))
        done = [execution.run(job, echo)]
        report(done[0])
        for run in done:  # grows as it goes: breadth first, each link after the one it follows
            for follower in self._followers(execution, run, chain, echo):
                report(follower)
                done.append(follower)
        self.lander.commit()
        self.recorder.pings.flush()
        return done

    def _followers(
        self, execution: Execution, run: Run, chain: Index | None, echo: BinaryIO | None
    ) -> Iterator[Run]:
        if chain is None:
            return
        # The daemon's decisions for the tasks a run starts (gone, paused, approval); trust is
        # the execution's own check, so each run is refused or run as the daemon's would be.
        for action in Dispatcher().chained([run], chain.tasks, lambda task: None):
            match action:
                case Submit(job):
                    yield execution.run(job, echo)
                case AwaitApproval(task, trigger, when, upstream):
                    yield Approvals(self.recorder).request(task, trigger, when, upstream)

    def upstream(self, run_id: str) -> Upstream | None:
        """The run `run_id` as the upstream of another, if the ledger has it."""
        if not run_id:
            return None
        found = (r for r in self.workspace.ledger.runs() if r.run_id == run_id)
        return next((Upstream(r.task, r.run_id) for r in found), None)

    def settle(self, task: Task, outcome: str) -> Run | None:
        """Close the task's run that waits for approval (None if there is none); it is
        committed with the next `run` or `commit_landed`."""
        return Approvals(self.recorder).settle(task, outcome)

    def commit_landed(self) -> None:
        self.lander.commit()
        self.recorder.pings.flush()

    def digest(self, day: date) -> None:
        """Rebuild that day's digest from the ledger and commit it."""
        written = self.lander.refresh_digest(day)
        self.committer.commit(written, f"vaultsched: digest {day.isoformat()}")

    def set_enabled(self, ident: str, rel: str, enabled: bool) -> Outcome:
        """`pause` and `resume`: a one-line edit of the note's `enabled`, committed; the
        outcome is UNCHANGED if it already said so."""
        edit = enabled_edit(rel, enabled)
        assert edit.apply is not None
        try:
            outcome = self.workspace.writer.update(rel, edit.apply)
        except ValueError as exc:
            raise VaultschedError(f"{rel}: {exc}", exit_code=1) from exc
        if outcome is Outcome.UNCHANGED:
            return outcome
        if outcome is not Outcome.WRITTEN:
            raise VaultschedError(f"{rel}: not written ({outcome})", exit_code=1)
        self.commit([edit], f"vaultsched: {'resume' if enabled else 'pause'} {ident}")
        return outcome

    def dashboard(self, rel: str) -> Outcome:
        """Write the task dashboard to `rel` and commit it; UNCHANGED if it already said so."""
        outcome = write_dashboard(self.workspace.vault.root, rel, self.workspace.writer)
        if outcome is Outcome.WRITTEN:
            # Exactly the text written, whatever the committed version held.
            edit = Edit(rel, lambda _committed: dashboard_text(), create=True)
            self.commit([edit], f"vaultsched: dashboard {rel}")
        return outcome

    def commit(self, edits: Sequence[Edit], message: str) -> bool:
        return self.committer.commit(edits, message)


def one_shot(
    vault: Vault, clock: Callable[[], datetime] = utc_now, writer: NoteWriter | None = None
) -> OneShot:
    workspace = open_workspace(vault, clock, writer)
    lander = Lander(workspace, Committer(workspace))
    recorder = Recorder(workspace, lambda item: lander.land([item]), Pings(workspace))
    return OneShot(workspace, lander, recorder)
