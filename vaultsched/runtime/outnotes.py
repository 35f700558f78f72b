"""Results as notes: a successful run's stdout written to the note its task's `output` names,
with the same no-clobber writes as the run block, for the commit that holds the run.

A note vaultsched creates is vaultsched's to add to git; a note that was already there is the
person's, and only the output block in it is vaultsched's (as for a task note, one not yet in
git is left for the person to commit). A write that is refused (a symlink, a folder in the
note's place, git conflict markers, a note that is not UTF-8) is a warning: the run lands all
the same, its output is in the run block and the log. A note that kept changing under the
write is tried again at the next commit.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vaultsched.adapters.git import Edit
from vaultsched.adapters.notes import Outcome
from vaultsched.core import blocks, outnote
from vaultsched.core.model import Status
from vaultsched.runtime.commit import Committer
from vaultsched.runtime.workspace import Workspace

if TYPE_CHECKING:
    from vaultsched.runtime.land import Landed

log = logging.getLogger(__name__)


def writes_output(item: Landed) -> bool:
    """Only a run whose command ran and succeeded replaces what the note shows."""
    return bool(
        item.task.output
        and item.run.output_note
        and item.stdout is not None
        and item.run.status is Status.SUCCESS
    )


@dataclass
class OutputNotes:
    """Not thread-safe: the Lander calls it under its lock."""

    workspace: Workspace
    committer: Committer
    _busy: dict[str, Landed] = field(default_factory=dict)  # by note: the newest run to retry
    # The run that made each note not committed yet: a later run's edit, applied by git to no
    # file at all, must give the note the same properties as it has on disk.
    _made_by: dict[str, str] = field(default_factory=dict)

    @property
    def has_pending(self) -> bool:
        return bool(self._busy)

    def write(self, batch: Sequence[Landed]) -> list[Edit]:
        """Write each note's newest output of the batch; the edits that were written."""
        newest = {item.run.output_note: item for item in batch if writes_output(item)}
        return [edit for item in newest.values() for edit in self._write(item)]

    def retry(self) -> list[Edit]:
        """Try again the notes that were busy."""
        items, self._busy = list(self._busy.values()), {}
        return [edit for item in items for edit in self._write(item)]

    def _write(self, item: Landed) -> list[Edit]:
        rel = item.run.output_note
        self._busy.pop(rel, None)  # this run is newer than any left over for the note
        new = self._new(rel, item.run.run_id)
        transform = functools.partial(
            outnote.put_output,
            task_name=item.task.name,
            run_id=self._made_by.get(rel, item.run.run_id),
            stdout=item.stdout or "",
            new=new,
        )
        try:
            outcome = self.workspace.writer.update(rel, transform, create=new)
        except (OSError, blocks.UnsafeBlockError) as exc:  # a folder in its place, say
            log.warning("%s: the output of %s was not written: %s", rel, item.task.id, exc)
            return []
        if outcome is Outcome.WRITTEN:
            return [Edit(rel, transform, create=new)]
        if outcome is Outcome.BUSY:
            self._busy[rel] = item
        elif outcome is not Outcome.UNCHANGED:
            log.warning("%s: the output of %s was not written (%s)", rel, item.task.id, outcome)
        return []

    def _new(self, rel: str, run_id: str) -> bool:
        """True if the note is vaultsched's to create: absent, or made by an earlier run and
        not committed yet."""
        if self._absent(rel):
            self._made_by[rel] = run_id
            return True
        if self.committer.creates(rel):
            return True
        self._made_by.pop(rel, None)
        return False

    def _absent(self, rel: str) -> bool:
        try:
            os.lstat(self.workspace.vault.root / rel)
        except FileNotFoundError:
            return True
        except OSError:  # a file where a folder of the path should be: the write will say
            return False
        return False
