from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from vaultsched.ledger import Ledger, finish_record, new_run_id, start_record
from vaultsched.model import Run, Status, Trigger

T0 = datetime(2026, 11, 30, 23, 59, 58, tzinfo=UTC)


def a_run(task: str = "Tasks/A", at: datetime = T0, **changes: object) -> Run:
    fields: dict[str, object] = {
        "run_id": new_run_id(at),
        "task": task,
        "status": Status.RUNNING,
        "trigger": Trigger.SCHEDULE,
        "started_at": at,
        "host": "h1",
    }
    fields.update(changes)
    return Run(**fields)  # type: ignore[arg-type]


def test_start_then_finish_folds_into_one_run(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path, "h1")
    run = a_run()
    ledger.append(start_record(run, "Tasks/A.md"))
    assert ledger.runs()[0].status is Status.RUNNING
    done = Run(
        **{
            **run.__dict__,
            "status": Status.FAILED,
            "exit_code": 3,
            "finished_at": T0 + timedelta(seconds=4),
            "duration_s": 4.0,
            "output_tail": "boom",
        }
    )
    path = ledger.append(finish_record(done, "Tasks/A.md"))
    # The finish lands beside its start even though it happened in the next month.
    assert path == tmp_path / ".vaultsched/runs/2026-11/h1.jsonl"
    (folded,) = ledger.runs()
    assert (folded.status, folded.exit_code, folded.output_tail) == (Status.FAILED, 3, "boom")
    assert folded.scheduled_for is None


def test_hosts_get_their_own_files_and_are_all_read(tmp_path: Path) -> None:
    Ledger(tmp_path, "laptop").append(
        finish_record(a_run(status=Status.SUCCESS, host="laptop"), "A.md")
    )
    Ledger(tmp_path, "srv/1").append(
        finish_record(a_run(status=Status.SUCCESS, host="srv/1"), "A.md")
    )
    names = sorted(p.name for p in Ledger(tmp_path, "x").files())
    assert names == ["laptop.jsonl", "srv_1.jsonl"]
    assert len(Ledger(tmp_path, "x").runs()) == 2


def test_torn_last_line_is_tolerated_and_repaired(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path, "h1")
    first = a_run(status=Status.SUCCESS)
    path = ledger.append(finish_record(first, "A.md"))
    with path.open("a") as handle:
        handle.write('{"type":"start","run_id":"torn","ta')  # a crash mid-write
    assert [r.run_id for r in ledger.runs()] == [first.run_id]
    second = a_run(status=Status.SUCCESS, at=T0 + timedelta(seconds=1))
    ledger.append(finish_record(second, "A.md"))
    lines = path.read_text().splitlines()
    assert json.loads(lines[-1])["run_id"] == second.run_id
    assert [r.run_id for r in ledger.runs()] == [first.run_id, second.run_id]


def test_garbage_lines_are_passed_over(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path, "h1")
    path = ledger.append(finish_record(a_run(status=Status.SUCCESS), "A.md"))
    with path.open("a") as handle:
        handle.write(
            '[1,2]\n{"run_id": "x"}\n\x00\x00\n{"run_id":"y","type":"finish","status":"nope"}\n'
        )
    assert len(ledger.runs()) == 1


def test_runs_on_a_day_in_a_zone(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path, "h1")
    tz = ZoneInfo("Europe/Warsaw")
    # 23:30 UTC on Nov 30 is already Dec 1 in Warsaw; the file is the November one.
    ledger.append(
        finish_record(
            a_run(status=Status.SUCCESS, at=datetime(2026, 11, 30, 23, 30, tzinfo=UTC)), "A.md"
        )
    )
    ledger.append(
        finish_record(
            a_run(status=Status.SUCCESS, at=datetime(2026, 11, 30, 12, 0, tzinfo=UTC)), "A.md"
        )
    )
    assert len(ledger.runs_on(date(2026, 12, 1), tz)) == 1
    assert len(ledger.runs_on(date(2026, 11, 30), tz)) == 1


def test_run_ids_sort_by_time_and_are_unique() -> None:
    ids = [new_run_id(T0) for _ in range(200)]
    assert len(set(ids)) == 200
    assert new_run_id(T0) < new_run_id(T0 + timedelta(seconds=1))
