"""The planner's marks the ledger does not hold (fire times skipped as missed, tasks started
afresh), kept in `.vaultsched/state/marks.json` across restarts."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from vaultsched.adapters import statefs
from vaultsched.adapters.ledger import parse_instant
from vaultsched.core import layout
from vaultsched.core.planner import Planner


def load_marks(root: Path, planner: Planner, now: datetime) -> None:
    try:
        saved = json.loads(statefs.read_bytes(root, layout.MARKS) or b"{}")
    except OSError as exc:
        statefs.warn_refused(exc, "marks not read")
        return
    except (ValueError, RecursionError):  # torn or hand-edited: the ledger alone it is
        return
    # Git-ignored, but a sync tool can carry it: each mark is checked like a ledger time
    # (aware, years 1970-9000), so no later comparison or zone conversion can overflow.
    marks = {}
    for task_id, stamp in saved.items() if isinstance(saved, dict) else ():
        moment = parse_instant(stamp)
        if moment is not None:
            marks[str(task_id)] = moment
    planner.restore(marks, now)


def save_marks(root: Path, planner: Planner, now: datetime) -> dict[str, datetime] | None:
    """Write the marks kept across restarts; what was written, or None if it failed."""
    saved = planner.saved(now)
    data = json.dumps({k: v.isoformat() for k, v in sorted(saved.items())}, indent=0)
    try:
        statefs.write_atomic(root, layout.MARKS, data.encode())
    except OSError as exc:
        statefs.warn_refused(exc, "marks not saved")
        return None
    return saved


@dataclass
class MarksFile:
    """The marks file as this daemon last wrote it, written again only when the marks it
    keeps moved: a burst's every batch of file events asked for a save of a thousand
    unchanged marks, fsyncs and all. A save that failed is tried again at the next."""

    root: Path
    _written: dict[str, datetime] | None = None

    def save(self, planner: Planner, now: datetime) -> None:
        if planner.saved(now) != self._written:
            self._written = save_marks(self.root, planner, now)
