"""The marks file: only the marks that moved are written (appended), and read back whole."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vaultsched.adapters import statefs
from vaultsched.core import layout
from vaultsched.core.planner import Planner
from vaultsched.runtime import marks
from vaultsched.runtime.marks import MarksFile, load_marks

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
S = timedelta(seconds=1)


def lines(root: Path) -> list[dict[str, str | None]]:
    return [json.loads(line) for line in (root / layout.MARKS).read_text().splitlines()]


def restored(root: Path, now: datetime = T0) -> dict[str, datetime]:
    planner = Planner()
    load_marks(root, planner, now)
    return planner.own


def test_only_the_marks_that_moved_are_written_and_a_failed_save_writes_all_afresh(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    planner, saved = Planner(), MarksFile(tmp_path)
    planner.reset("Tasks/A", T0)
    planner.reset("Tasks/B", T0)
    saved.save(planner, T0)  # the first save: the file written afresh
    saved.save(planner, T0 + S)
    assert lines(tmp_path) == [{"Tasks/A": T0.isoformat(), "Tasks/B": T0.isoformat()}]

    planner.reset("Tasks/B", T0 + S)
    saved.save(planner, T0 + S)
    planner.forget("Tasks/A")
    saved.save(planner, T0 + S)
    assert lines(tmp_path)[1:] == [{"Tasks/B": (T0 + S).isoformat()}, {"Tasks/A": None}]
    assert restored(tmp_path) == {"Tasks/B": T0 + S}

    def refused(*_args: object) -> int:
        raise OSError("disk full")

    monkeypatch.setattr(marks.statefs, "open_file", refused)
    planner.reset("Tasks/C", T0 + 2 * S)
    saved.save(planner, T0 + 2 * S)  # not appended: the next save writes them all
    monkeypatch.setattr(marks.statefs, "open_file", statefs.open_file)
    saved.save(planner, T0 + 2 * S)
    assert lines(tmp_path) == [
        {"Tasks/B": (T0 + S).isoformat(), "Tasks/C": (T0 + 2 * S).isoformat()}
    ]


def test_the_file_is_written_afresh_once_the_appended_marks_outnumber_the_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(marks, "COMPACT_AFTER", 3)
    planner, saved = Planner(), MarksFile(tmp_path)
    planner.reset("Tasks/A", T0)
    saved.save(planner, T0)
    for n in range(1, 6):
        planner.reset("Tasks/A", T0 + n * S)
        saved.save(planner, T0 + n * S)
    assert len(lines(tmp_path)) < 5
    assert restored(tmp_path, T0 + 5 * S) == {"Tasks/A": T0 + 5 * S}


def test_a_torn_or_foreign_line_is_passed_over_and_an_indented_file_still_read(
    tmp_path: Path,
) -> None:
    later = (T0 + S).isoformat()
    torn = f'{{"Tasks/A": "{T0.isoformat()}"}}\n[1]\n{{"Tasks/B": "{later}"}}\n{{"Tasks/A": "20'
    statefs.write_atomic(tmp_path, layout.MARKS, torn.encode())
    assert restored(tmp_path) == {"Tasks/A": T0, "Tasks/B": T0 + S}

    old = json.dumps({"Tasks/A": T0.isoformat(), "Tasks/B": later}, indent=0)  # before appends
    statefs.write_atomic(tmp_path, layout.MARKS, old.encode())
    assert restored(tmp_path) == {"Tasks/A": T0, "Tasks/B": T0 + S}


def test_a_mark_past_skew_is_not_kept(tmp_path: Path) -> None:
    planner, saved = Planner(), MarksFile(tmp_path)
    planner.reset("Tasks/A", T0)
    saved.save(planner, T0)
    planner.reset("Tasks/A", T0 + timedelta(hours=1))  # the clock is set back an hour after
    saved.save(planner, T0)
    assert restored(tmp_path) == {}


def test_a_huge_file_is_not_read(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(marks, "MAX_BYTES", 100)
    line = json.dumps({"Tasks/A": T0.isoformat()}) + "\n"
    statefs.write_atomic(tmp_path, layout.MARKS, (line * 4).encode())  # a synced giant
    assert restored(tmp_path) == {}  # the ledger alone, as for a file that cannot be read
