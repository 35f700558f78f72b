"""The marks file: written when the marks it keeps move, and only then."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vaultsched.adapters import statefs
from vaultsched.core.planner import Planner
from vaultsched.runtime import marks
from vaultsched.runtime.marks import MarksFile, load_marks

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def test_unchanged_marks_are_not_written_again_and_a_failed_save_is_retried(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[bytes] = []
    real = statefs.write_atomic
    failing = False

    def write_atomic(root: Path, rel: str, data: bytes) -> None:
        if failing:
            raise OSError("disk full")
        writes.append(data)
        real(root, rel, data)

    monkeypatch.setattr(marks.statefs, "write_atomic", write_atomic)
    planner, saved = Planner(), MarksFile(tmp_path)
    planner.reset("Tasks/A", T0)

    saved.save(planner, T0)
    saved.save(planner, T0 + timedelta(seconds=1))
    assert len(writes) == 1

    planner.reset("Tasks/B", T0)
    failing = True
    saved.save(planner, T0)
    failing = False
    saved.save(planner, T0)  # the failed save is not taken for written
    saved.save(planner, T0)
    assert len(writes) == 2

    restored = Planner()
    load_marks(tmp_path, restored, T0)
    assert restored.own == {"Tasks/A": T0, "Tasks/B": T0}
