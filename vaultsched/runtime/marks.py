"""The planner's marks the ledger does not hold (fire times skipped as missed, tasks started
afresh), kept in `.vaultsched/state/marks.json` across restarts.

The file is JSON objects of task id -> mark, one a line, a later line's word for a task standing
over an earlier one's (null: no mark kept). Each save appends one line with only the marks that
moved: with ten thousand tasks loaded, ten of them due each second, a save rewriting every mark
was most of the daemon's work at each due second. The whole file is written afresh, atomically,
at the daemon's first save and once the appended marks outnumber the marks kept.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from vaultsched.adapters import statefs
from vaultsched.adapters.ledger import parse_instant
from vaultsched.core import layout
from vaultsched.core.planner import Planner

# Appended marks, at the fewest, before the file is written afresh.
COMPACT_AFTER = 1000
# Far past what a hundred thousand tasks' marks, appended to twice over, take; a file larger
# (a sync tool can carry anything here) is not read: every start would hold it all at once.
MAX_BYTES = 64 * 1024 * 1024


def load_marks(root: Path, planner: Planner, now: datetime) -> None:
    try:
        data = statefs.read_bytes(root, layout.MARKS, limit=MAX_BYTES) or b"{}"
    except OSError as exc:
        statefs.warn_refused(exc, "marks not read")
        return
    # Git-ignored, but a sync tool can carry it: each mark is checked like a ledger time
    # (aware, years 1970-9000), so no later comparison or zone conversion can overflow.
    marks: dict[str, datetime] = {}
    for task_id, stamp in _entries(data):
        moment = parse_instant(stamp)
        if moment is None:  # null (or unusable): no mark kept
            marks.pop(task_id, None)
        else:
            marks[task_id] = moment
    planner.restore(marks, now)


def _entries(data: bytes) -> list[tuple[str, object]]:
    """(task id, stamp) from each object of the file, in order. A line that is no JSON object
    (a crash cut an append short, a hand edit) is passed over; the lines around it stand."""
    try:
        objects = [json.loads(data)]  # written afresh (by a version before appending: indented)
    except (ValueError, RecursionError):
        objects = []
        for line in data.splitlines():
            with contextlib.suppress(ValueError, RecursionError):
                objects.append(json.loads(line))
    return [(str(k), v) for found in objects if isinstance(found, dict) for k, v in found.items()]


def save_marks(root: Path, planner: Planner, now: datetime) -> dict[str, datetime] | None:
    """Write the marks kept across restarts afresh; what was written, or None if it failed."""
    saved = planner.saved(now)
    data = json.dumps({k: v.isoformat() for k, v in sorted(saved.items())})
    try:
        statefs.write_atomic(root, layout.MARKS, data.encode() + b"\n")
    except OSError as exc:
        statefs.warn_refused(exc, "marks not saved")
        return None
    return saved


def append_marks(root: Path, moved: dict[str, datetime | None]) -> bool:
    """Append the marks that moved (durably: like a file written afresh); False if it failed."""
    line = json.dumps({k: v.isoformat() if v else None for k, v in moved.items()}) + "\n"
    try:
        fd = statefs.open_file(root, layout.MARKS, os.O_WRONLY | os.O_APPEND)
        with os.fdopen(fd, "ab") as handle:
            handle.write(line.encode())
            handle.flush()
            os.fsync(fd)
    except OSError as exc:
        statefs.warn_refused(exc, "marks not saved")
        return False
    return True


@dataclass
class MarksFile:
    """The marks file as this daemon keeps it: a save appends the marks that moved since the
    last, and writes nothing if none did; the file is written afresh at the first save, after
    a save that failed, and once the marks appended outnumber the marks kept."""

    root: Path
    _appended: int | None = None  # marks appended since it was written afresh; None: not yet

    def save(self, planner: Planner, now: datetime) -> None:
        moved = planner.unsaved(now)
        if self._appended is not None and not moved:
            return
        if self._appended is None or self._appended > max(COMPACT_AFTER, len(planner.own)):
            self._appended = None if save_marks(self.root, planner, now) is None else 0
        elif append_marks(self.root, moved):
            self._appended += len(moved)
        else:  # a torn line may be left: the next save writes it all afresh
            self._appended = None
