from __future__ import annotations

import json
import math
import os
import re
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import wait_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaultsched.adapters import ledger as ledger_module
from vaultsched.adapters import statefs
from vaultsched.adapters.ledger import (
    EXIT_CODES,
    MAX_ATTEMPT,
    MAX_DURATION_S,
    MAX_TEXT,
    Ledger,
    _started,
    finish_record,
    new_run_id,
    run_from_records,
    start_record,
)
from vaultsched.cli.reports import history_row
from vaultsched.core.model import Run, Status, Trigger
from vaultsched.core.planner import Planner, future_dated
from vaultsched.core.views import render_digest_block, render_runs_block

T0 = datetime(2026, 11, 30, 23, 59, 58, tzinfo=UTC)


@pytest.fixture(params=["a command", "the daemon"])
def kept(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[bool]:
    """Each test so marked runs as a command does (each append opens the ledger file afresh)
    and as the daemon does (its folders and ledger files kept open)."""
    daemon = request.param == "the daemon"
    if daemon:
        statefs.keep_folders(tmp_path)
    yield daemon
    statefs.forget_folders(tmp_path)


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


def test_torn_last_line_is_tolerated_and_repaired(tmp_path: Path, kept: bool) -> None:
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
    # A burst's runs prepared for one instant all start in its millisecond.
    ids = [new_run_id(T0) for _ in range(10_000)]
    assert len(set(ids)) == 10_000  # 48 random bits: one chance in 5 million of a false alarm
    assert new_run_id(T0) < new_run_id(T0 + timedelta(seconds=1))
    assert new_run_id(T0) < new_run_id(T0 + timedelta(milliseconds=1)), "within one second"
    # Also a job id in a worker pool's queue, which RQ allows only these characters in.
    assert re.fullmatch(r"[A-Za-z0-9_-]+", new_run_id(T0))


# -- hostile records: a line in another host's file may hold anything ----------------------

NOW = "2026-11-30T12:00:00.000+00:00"
GOOD = {
    "type": "finish",
    "run_id": "x1",
    "task": "Tasks/A",
    "path": "Tasks/A.md",
    "trigger": "manual",
    "started_at": NOW,
    "host": "other",
    "attempt": 1,
    "status": "failed",
    "exit_code": 1,
    "finished_at": NOW,
    "duration_s": 0.5,
    "output_tail": "",
    "message": "",
    "log": "",
}
HOSTILE_FIELDS: list[tuple[str, object]] = [
    ("attempt", math.inf),
    ("attempt", -math.inf),
    ("attempt", math.nan),
    ("attempt", 10**30),
    ("attempt", 0),
    ("attempt", True),
    ("attempt", 1.0),
    ("attempt", "2"),
    ("exit_code", [1]),
    ("exit_code", 2**70),
    ("exit_code", math.nan),
    ("duration_s", "abc"),
    ("duration_s", -1),
    ("duration_s", math.inf),
    ("duration_s", math.nan),
    ("duration_s", 1e300),
    ("duration_s", {"s": 1}),
    ("started_at", "0001-01-01T00:00:00+14:00"),
    ("started_at", "9999-12-31T23:59:59-23:59"),
    ("started_at", "2026-11-30T12:00:00"),  # no zone
    ("started_at", "yesterday"),
    ("started_at", 1764504000),
    ("started_at", None),
    ("scheduled_for", "0001-01-01T00:00:00+14:00"),
    ("finished_at", "9999-12-31T23:59:59-23:59"),
    ("finished_at", ["2026"]),
    ("status", "exploded"),
    ("status", None),
    ("status", 1),
    ("trigger", "cron"),
    ("trigger", ["manual"]),
    ("type", "bogus"),
    ("type", None),
    ("run_id", 7),
    ("run_id", ""),
    ("run_id", {"a": 1}),
    ("task", None),
    ("task", ["Tasks/A"]),
    ("task", "T" * 5000),
    ("task", "../../home/someone/.bashrc"),  # closing an interrupted run would read it
    ("task", "/etc/passwd"),
    ("task", "Tasks/../../x"),
    ("task", ".vaultsched/config"),
    ("host", 1),
    ("message", "m" * (1024 * 1024)),
    ("message", {"text": "hi"}),
    ("output_tail", 12),
    ("log", False),
    ("path", 3),
]


def _hostile_file(tmp_path: Path, lines: list[str]) -> Path:
    """This host's good run, then `lines` in another host's file, as a sync brings them."""
    Ledger(tmp_path, "h1").append(finish_record(a_run(status=Status.SUCCESS), "Tasks/A.md"))
    path = tmp_path / ".vaultsched/runs/2026-11/other.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    return path


@pytest.mark.parametrize(("key", "value"), HOSTILE_FIELDS, ids=repr)
def test_a_hostile_field_skips_its_record_and_names_its_line(
    tmp_path: Path, key: str, value: object
) -> None:
    record = {**GOOD, key: value}
    lines = [json.dumps(GOOD | {"run_id": "fine"}), json.dumps(record)]  # writes NaN, Infinity
    path = _hostile_file(tmp_path, lines)
    ledger = Ledger(tmp_path, "me")
    assert [(r.host, r.run_id) for r in ledger.runs() if r.host == "other"] == [("other", "fine")]
    assert sorted(r.host for r in ledger.runs()) == ["h1", "other"]
    assert [(p, n) for p, n, _ in ledger.rejected()] == [(path, 2)]
    assert run_from_records([record]) is None


RENAME = {"type": "rename", "run_id": "rename-1", "from": "Tasks/A", "to": "Tasks/B"}
_FINISH = f'"type":"finish","run_id":"x","task":"Tasks/A","started_at":"{NOW}","status":"failed"'
HOSTILE_LINES = [
    "{" + _FINISH + ',"attempt":Infinity}',
    "{" + _FINISH + ',"duration_s":NaN}',
    "{" + _FINISH + ',"exit_code":-Infinity}',
    "{" + _FINISH + ',"attempt":' + "9" * 5000 + "}",  # past Python's int-from-text limit
    "[" * 100_000 + "]" * 100_000,  # deep enough for a RecursionError
    '{"a":' * 100_000 + "1" + "}" * 100_000,
    '"just a string"',
    "[1, 2]",
    "42",
    '{"run_id": "x"}',
    json.dumps(GOOD | {"message": "m" * (2 * 1024 * 1024)}),
    json.dumps(RENAME | {"started_at": "0001-01-01T00:00:00+14:00"}),
    json.dumps(RENAME | {"started_at": NOW, "to": ["Tasks/B"]}),
    json.dumps(RENAME | {"started_at": NOW, "from": None}),
    json.dumps(RENAME),
]


@pytest.mark.parametrize("line", HOSTILE_LINES, ids=lambda line: line[:60])
def test_a_hostile_line_is_skipped_and_named(tmp_path: Path, line: str) -> None:
    path = _hostile_file(tmp_path, [line, json.dumps(GOOD)])
    ledger = Ledger(tmp_path, "me")
    assert sorted(r.host for r in ledger.runs()) == ["h1", "other"]
    assert [(p, n) for p, n, _ in ledger.rejected()] == [(path, 1)]


def test_a_torn_line_goes_unremarked_and_a_raw_line_separator_splits_nothing(
    tmp_path: Path,
) -> None:
    # json.dumps(ensure_ascii=False) writes U+2028 raw; str.splitlines() would cut there.
    path = _hostile_file(tmp_path, ['{"type":"start","run_id"', json.dumps(GOOD)])
    with path.open("a", encoding="utf-8") as handle:
        record = GOOD | {"run_id": "x2", "message": "a\u2028b"}
        handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    ledger = Ledger(tmp_path, "me")
    assert [r.message for r in ledger.runs() if r.host == "other"] == ["", "a\u2028b"]
    assert ledger.rejected() == []


JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats()  # NaN and the infinities among them
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner),
    max_leaves=8,
)
OFFSETS = st.timedeltas(
    min_value=-timedelta(hours=23, minutes=59), max_value=timedelta(hours=23, minutes=59)
)
INSTANTS = st.builds(
    lambda moment, offset: moment.replace(tzinfo=timezone(offset)).isoformat(),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31)),
    OFFSETS,
)
KNOWN = st.sampled_from([*Status, *Trigger, "start", "finish", "rename", "Tasks/A", NOW])
VALUES = JSON | INSTANTS | KNOWN


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(changes=st.dictionaries(st.sampled_from([*GOOD, "from", "to"]), VALUES, max_size=6))
def test_no_record_raises_and_every_run_it_gives_renders(
    tmp_path: Path, changes: dict[str, object]
) -> None:
    """Whatever the fields hold, reading never raises; a record that is accepted gives a Run
    that the views, the planner and the history take without raising."""
    record = GOOD | changes
    path = tmp_path / ".vaultsched/runs/2026-11/other.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record) + "\n")
    ledger = Ledger(tmp_path, "me")
    runs = ledger.runs()
    if record.get("type") == "rename":  # gives no run; a malformed one is named by doctor
        assert runs == [] and len(ledger.rejected()) <= 1
    else:
        assert len(runs) + len(ledger.rejected()) == 1
    for run in runs:
        _use_everywhere(run)


def _use_everywhere(run: Run) -> None:
    tz = ZoneInfo("Pacific/Kiritimati")  # +14:00, the farthest a zone reaches
    render_runs_block([run], tz)
    render_digest_block(run.started_at.astimezone(tz).date(), [run], tz)
    json.dumps(history_row(run), allow_nan=False)
    future_dated(run, T0)
    planner = Planner()
    for moment in (run.scheduled_for, run.finished_at, run.started_at):
        if moment is not None:
            planner.advance(run.task, moment)
            assert abs(moment - T0) >= timedelta(0)
    assert str(run.attempt) + str(run.exit_code) + f"{run.duration_s or 0:.1f}"  # as `history`


def test_views_bound_what_an_extreme_but_valid_run_shows() -> None:
    run = a_run(
        status=Status.FAILED,
        attempt=MAX_ATTEMPT,
        exit_code=EXIT_CODES[1],
        duration_s=MAX_DURATION_S,
        message="m" * MAX_TEXT,
        output_tail="o" * MAX_TEXT,
    )
    assert len(render_runs_block([run], ZoneInfo("UTC"))) < 20_000
    assert len(history_row(run)["message"]) <= 2000


# -- a run's output note -------------------------------------------------------------------


def test_the_output_note_goes_round_the_finish_record(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path, "h1")
    done = a_run(status=Status.SUCCESS, output_note="Briefings/2026-11-30.md")
    ledger.append(finish_record(done, "Tasks/A.md"))
    assert ledger.runs()[0].output_note == "Briefings/2026-11-30.md"


def test_a_run_without_an_output_note_writes_the_record_it_always_did() -> None:
    assert "output_note" not in finish_record(a_run(status=Status.SUCCESS), "Tasks/A.md")


@pytest.mark.parametrize(
    "value",
    [
        "../outside.md",
        "/etc/passwd.md",
        ".obsidian/app.md",
        "Notes/.git/x.md",
        "Notes//x.md",
        "Notes/x.txt",
        "no-suffix",
        "back\\slash.md",
        "nul\x00.md",
        "line\nbreak.md",
        "a" * 5000 + ".md",
        "",
        42,
        None,
        ["Notes/x.md"],
        {"path": "Notes/x.md"},
    ],
    ids=repr,
)
def test_a_hostile_output_note_is_dropped_and_the_run_kept(tmp_path: Path, value: object) -> None:
    path = _hostile_file(tmp_path, [json.dumps(GOOD | {"output_note": value})])
    ledger = Ledger(tmp_path, "me")
    (theirs,) = [r for r in ledger.runs() if r.host == "other"]
    assert theirs.output_note == ""
    assert ledger.rejected() == []
    assert path.exists()
    assert "[[" not in render_runs_block([theirs], ZoneInfo("UTC")).split("host: other")[1]


def test_the_last_success_is_kept_as_lines_are_read_and_follows_renames(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path, "h")
    t0 = datetime(2026, 3, 1, 12, tzinfo=UTC)

    def add(run_id: str, task: str, status: Status, hours: int) -> None:
        at = t0 + timedelta(hours=hours)
        run = Run(run_id, task, status, Trigger.MANUAL, at, "h", finished_at=at)
        ledger.append(finish_record(run, f"{task}.md"))

    assert ledger.last_success("Tasks/A") is None
    add("r1", "Tasks/A", Status.SUCCESS, 0)
    add("r2", "Tasks/A", Status.FAILED, 1)
    assert ledger.last_success("Tasks/A") == t0
    ledger.append_rename("Tasks/A", "Archive/A", t0 + timedelta(hours=2))
    assert ledger.last_success("Archive/A") == t0  # its history came along
    add("r3", "Archive/A", Status.SUCCESS, 3)
    assert ledger.last_success("Archive/A") == t0 + timedelta(hours=3)
    # The same as folding the whole ledger says.
    folded = [r for r in ledger.runs_of("Archive/A") if r.status is Status.SUCCESS]
    assert max(r.started_at for r in folded) == ledger.last_success("Archive/A")


def _this_and_another_process(tmp_path: Path) -> tuple[Ledger, Ledger, Run]:
    """The ledger as this process and another one have it, and a successful run."""
    t0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
    ok = Run("r1", "Tasks/A", Status.SUCCESS, Trigger.MANUAL, t0, "h", finished_at=t0)
    return Ledger(tmp_path, "h"), Ledger(tmp_path, "h"), ok


def _reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each file under .vaultsched/ opened for reading from now on."""
    reads: list[str] = []
    real_open = statefs.open_file

    def open_file(root: Path, rel: str, flags: int, mode: int = 0o644) -> int:
        if not flags & (os.O_WRONLY | os.O_RDWR):
            reads.append(rel)
        return real_open(root, rel, flags, mode)

    monkeypatch.setattr(statefs, "open_file", open_file)
    return reads


def test_an_unchanged_ledger_is_not_read_again_and_another_writer_s_line_is_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every run's start asks for the last success: an unchanged file costs one lstat, its
    # unchanged folders (changed long ago) one fstat each.
    ledger, other, ok = _this_and_another_process(tmp_path)
    t0 = ok.started_at
    other.append(finish_record(ok, "Tasks/A.md"))
    later = datetime.now(UTC).timestamp() * 1e9 + 10 * statefs.RACY_NS
    monkeypatch.setattr(statefs.time, "time_ns", lambda: int(later))
    assert ledger.last_success("Tasks/A") == t0
    reads = _reads(monkeypatch)
    monkeypatch.setattr(statefs.os, "scandir", None)  # no folder is read
    assert ledger.last_success("Tasks/A") == t0 and reads == []
    t1 = t0 + timedelta(hours=1)
    other.append(finish_record(replace(ok, run_id="r2", started_at=t1, finished_at=t1), "x.md"))
    assert ledger.last_success("Tasks/A") == t1  # the file grew: read again


def test_a_line_this_process_appends_is_not_read_back_and_one_between_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kept: bool
) -> None:
    # A run's start asks for the last success right after the run before it appended.
    ledger, other, ok = _this_and_another_process(tmp_path)
    t0, reads = ok.started_at, _reads(monkeypatch)
    ledger.append(finish_record(ok, "Tasks/A.md"))  # a new file: nothing before it to read
    assert ledger.last_success("Tasks/A") == t0 and reads == []  # taken as it was written
    t1, t2 = t0 + timedelta(hours=1), t0 + timedelta(hours=2)
    other.append(finish_record(replace(ok, run_id="r2", started_at=t1, finished_at=t1), "x"))
    ledger.append(finish_record(replace(ok, run_id="r3", task="Tasks/B", started_at=t2), "y"))
    assert ledger.last_success("Tasks/A") == t1 and reads  # the other's line: read
    assert [r.run_id for r in ledger.runs()] == ["r1", "r2", "r3"]  # each once, in order
    assert [r.run_id for r in Ledger(tmp_path, "h").runs()] == ["r1", "r2", "r3"]


@pytest.mark.parametrize(
    "times",
    [
        {"started_at": "2026-11-30T23:59:59.999+00:00"},
        {"started_at": "2026-12-01T00:30:00.000+01:00"},  # November in UTC
        {"started_at": "2026-12-01T00:00:00+00:00"},
        {
            "started_at": "2026-12-01T00:00:00.000+00:00",
            "dispatched_at": "2026-11-30T23:59:59.000+00:00",
        },
    ],
)
def test_a_record_is_filed_under_the_month_of_its_time_in_utc(
    tmp_path: Path, times: dict[str, str]
) -> None:
    ledger = Ledger(tmp_path, "h")
    record = {"type": "start", "run_id": "r", "task": "Tasks/A", "path": "Tasks/A.md", **times}
    path = ledger.append(record)
    assert path.parent.name == f"{_started(record).astimezone(UTC):%Y-%m}"


def test_a_run_prepared_before_its_note_moved_follows_it(tmp_path: Path) -> None:
    """A run's start record is written a moment before the run starts: a note moved in that
    moment takes the run along; a run of the old id started well after the move stays."""
    ledger = Ledger(tmp_path, "h")
    moved = T0 + timedelta(hours=1)
    ledger.append(start_record(a_run(at=moved + timedelta(milliseconds=200)), "Tasks/A.md"))
    ledger.append_rename("Tasks/A", "Archive/A", moved)
    ledger.append(start_record(a_run(at=moved + timedelta(minutes=1)), "Tasks/A.md"))
    assert [r.task for r in ledger.runs()] == ["Archive/A", "Tasks/A"]


def test_start_records_of_one_instant_are_written_together(tmp_path: Path, kept: bool) -> None:
    ledger = Ledger(tmp_path, "h")
    runs = [a_run(task=f"Tasks/{n}", at=T0) for n in "ABC"]
    ledger.append_all([start_record(run, f"{run.task}.md") for run in runs])
    assert sorted(r.task for r in ledger.runs()) == ["Tasks/A", "Tasks/B", "Tasks/C"]
    with pytest.raises(ValueError, match="one month"):
        ledger.append_all([start_record(a_run(at=T0 + timedelta(days=d)), "A.md") for d in (0, 1)])


def test_a_record_not_durable_is_read_at_once_and_made_durable_by_the_next_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kept: bool
) -> None:
    """A finish record: written at once, fsync'ed by `sync` (landing's) or by the next durable
    record of its file, whichever comes first; never twice."""
    synced: list[int] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    ledger = Ledger(tmp_path, "h")
    run = a_run()
    ledger.append(start_record(run, "Tasks/A.md"))
    assert len(synced) == 1
    ledger.append_all([finish_record(replace(run, status=Status.SUCCESS), "A.md")], durable=False)
    assert len(synced) == 1 and [r.status for r in ledger.runs()] == [Status.SUCCESS]
    ledger.sync()
    ledger.sync()  # nothing written since: no fsync
    assert len(synced) == 2

    later = a_run(task="Tasks/B", at=T0 + timedelta(seconds=1))
    ledger.append_all([finish_record(later, "B.md")], durable=False)
    ledger.append(start_record(a_run(task="Tasks/C", at=T0), "C.md"))  # its fsync covers both
    ledger.sync()
    assert len(synced) == 3


def test_a_record_waits_for_no_fsync_but_its_own_and_writers_waiting_share_the_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While one start record's fsync is under way, a finish record (no fsync of its own) is
    written and returns at once, and two more start records written meanwhile are made
    durable by one fsync between them, begun after both were written."""
    ledger = Ledger(tmp_path, "h")
    path = ledger.append(start_record(a_run(task="Tasks/Z", at=T0), "Z.md"))  # the file exists
    synced: list[int] = []
    first_begun, let_go = threading.Event(), threading.Event()
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(fd)
        if len(synced) == 1:
            first_begun.set()
            assert let_go.wait(10)
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    runs = [a_run(task=f"Tasks/{n}", at=T0) for n in "ABC"]
    first = threading.Thread(target=ledger.append, args=(start_record(runs[0], "A.md"),))
    first.start()
    assert first_begun.wait(10)
    done = replace(runs[0], status=Status.SUCCESS, run_id="other")
    ledger.append_all([finish_record(done, "A.md")], durable=False)  # not held up
    more = [
        threading.Thread(target=ledger.append, args=(start_record(run, f"{run.task}.md"),))
        for run in runs[1:]
    ]
    for thread in more:
        thread.start()
    written = ledger._cache.written  # each writer's line is written before it waits
    wait_for(lambda: written[path] == 5, 10, "the three lines written")
    assert len(synced) == 1 and first.is_alive()
    let_go.set()
    for thread in [first, *more]:
        thread.join(10)
    assert len(synced) == 2  # the first, and one for the two that waited
    ledger.sync()
    assert len(synced) == 2  # the finish record was covered too
    assert {r.task for r in ledger.runs()} >= {"Tasks/A", "Tasks/B", "Tasks/C"}


def _whole_fold_by_task(ledger: Ledger) -> dict[str, list[Run]]:
    by_task: dict[str, list[Run]] = {}
    for run in ledger.runs():
        by_task.setdefault(run.task, []).append(run)
    return by_task


def test_one_tasks_runs_are_the_whole_folds_across_hosts_renames_and_appends(
    tmp_path: Path,
) -> None:
    """A view folds only the runs filed under its task (or an id renamed to it): the same runs
    as folding the whole ledger, after each append, and with another host's file too."""
    ledger, other = Ledger(tmp_path, "h1"), Ledger(tmp_path, "h2")
    moved = T0 + timedelta(hours=1)
    tasks = ["Tasks/A", "Tasks/B", "Archive/A", "Old/A", "Tasks/C"]
    steps = [
        lambda: ledger.append(start_record(a_run("Old/A"), "Old/A.md")),
        lambda: ledger.append_rename("Old/A", "Tasks/A", T0 + timedelta(minutes=1)),
        lambda: ledger.append(start_record(a_run("Tasks/B", at=T0), "Tasks/B.md")),
        # Started a moment after the move (prepared before it): follows it, twice.
        lambda: ledger.append(start_record(a_run("Tasks/A", at=moved), "Tasks/A.md")),
        lambda: other.append_rename("Tasks/A", "Archive/A", moved - timedelta(milliseconds=500)),
        lambda: other.append(start_record(a_run("Tasks/A", at=moved + timedelta(hours=1)), "x")),
        lambda: ledger.append(finish_record(a_run("Tasks/C", status=Status.SUCCESS), "C.md")),
    ]
    for step in steps:
        step()
        whole = _whole_fold_by_task(ledger)
        assert ledger.runs_of_tasks(tasks) == {task: whole.get(task, []) for task in tasks}
    assert [len(ledger.runs_of(task)) for task in tasks] == [1, 1, 2, 0, 1]


def test_a_run_finished_after_its_fold_is_folded_again(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path, "h1")
    run = a_run()
    ledger.append(start_record(run, "Tasks/A.md"))
    assert ledger.runs_of("Tasks/A")[0].status is Status.RUNNING
    assert ledger.runs()[0].status is Status.RUNNING
    ledger.append(finish_record(replace(run, status=Status.FAILED, exit_code=2), "Tasks/A.md"))
    assert ledger.runs_of("Tasks/A")[0].status is Status.FAILED
    assert ledger.runs()[0].exit_code == 2
    assert ledger.runs_on(T0.date(), UTC)[0].status is Status.FAILED


class _CountedPasses(list[tuple[datetime, str, str]]):
    passes = 0

    def __iter__(self) -> Iterator[tuple[datetime, str, str]]:
        self.passes += 1
        return super().__iter__()


def test_a_long_chain_of_renames_is_followed_in_one_pass() -> None:
    """A synced ledger can hold thousands of renames ending at a real task: a pass over them
    all for each link of the chain stalled every landing of that task for seconds."""
    from vaultsched.adapters.ledger import _rename_sources, _renamed_to

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    renames = _CountedPasses((t0, f"T/{n}", f"T/{n + 1}") for n in range(200))
    renames.append((t0, "T/200", "T/0"))  # and a loop back
    sources = _rename_sources(renames)
    assert _renamed_to("T/200", sources) == {f"T/{n}" for n in range(201)}
    assert _renamed_to("Other", sources) == {"Other"}  # a second task of the batch
    assert renames.passes == 1


def test_a_short_write_leaves_the_cache_unlike_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kept: bool
) -> None:
    ledger = Ledger(tmp_path, "h")
    t0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
    ok = Run("r1", "Tasks/A", Status.SUCCESS, Trigger.MANUAL, t0, "h", finished_at=t0)
    ledger.append(finish_record(ok, "Tasks/A.md"))
    assert [r.run_id for r in ledger.runs()] == ["r1"]
    real_write = os.write
    short = {"once": True}

    def write(fd: int, data: bytes) -> int:  # a disk filling up: part of the line lands
        if short.pop("once", False):
            return real_write(fd, data[:40])
        return real_write(fd, data)

    monkeypatch.setattr(ledger_module.os, "write", write)
    r2 = replace(ok, run_id="r2", started_at=t0 + timedelta(hours=1))
    ledger.append(start_record(r2, "Tasks/A.md"))  # written short; the cache takes it whole
    r3 = replace(ok, run_id="r3", task="Tasks/B", started_at=t0 + timedelta(hours=2))
    ledger.append(finish_record(r3, "Tasks/B.md"))  # repairs the torn line, appends r3
    cached = [r.run_id for r in ledger.runs()]
    fresh = [r.run_id for r in Ledger(tmp_path, "h").runs()]
    assert cached == fresh, (cached, fresh)


MID_MONTH = datetime(2026, 3, 14, 12, tzinfo=UTC)  # every append of a test in one file


def _appended(ledger: Ledger, n: int, task: str = "Tasks/A") -> Run:
    run = a_run(task=task, at=MID_MONTH + timedelta(seconds=n), status=Status.SUCCESS)
    ledger.append(finish_record(run, f"{task}.md"))
    return run


def test_the_daemon_s_kept_ledger_file_replaced_or_removed_is_opened_afresh(
    tmp_path: Path, kept: bool
) -> None:
    """A pull or a sync replaces the ledger file (a new file under its name), or a person
    removes it: the next line goes to the file the ledger has now, never to the old one."""
    ledger = Ledger(tmp_path, "h")
    path = ledger.file_for(_appended(ledger, 0).started_at)
    replaced = path.with_name("pulled.tmp")
    replaced.write_text(path.read_text())
    os.replace(replaced, path)  # as git writes a file: a new one renamed in
    second = _appended(ledger, 1)
    assert second.run_id in path.read_text()
    path.unlink()
    third = _appended(ledger, 2)
    assert [r.run_id for r in Ledger(tmp_path, "h").runs()] == [third.run_id]


def test_the_daemon_s_kept_lock_file_replaced_is_the_one_it_waits_for(
    tmp_path: Path, kept: bool
) -> None:
    """Another process takes the lock file it finds by name: a replaced one is the lock."""
    import fcntl

    ledger = Ledger(tmp_path, "h")
    path = ledger.file_for(_appended(ledger, 0).started_at)
    lock = path.with_name(path.name + ".lock")
    lock.unlink()
    with lock.open("w") as other:  # another process makes it anew and holds it
        fcntl.flock(other, fcntl.LOCK_EX)
        writer = threading.Thread(target=_appended, args=(ledger, 1))
        writer.start()
        writer.join(0.3)
        assert writer.is_alive()  # waits for the other process
        fcntl.flock(other, fcntl.LOCK_UN)
    writer.join(10)
    assert not writer.is_alive() and len(Ledger(tmp_path, "h").runs()) == 2


def test_the_daemon_keeps_a_few_ledger_files_open_and_lets_them_go(tmp_path: Path) -> None:
    """Two months' files and their locks at most; all closed once the ledger is gone."""
    import gc

    def open_now() -> int:
        return len(list(Path("/proc/self/fd").iterdir()))

    statefs.keep_folders(tmp_path)
    try:
        before = open_now()
        ledger = Ledger(tmp_path, "h")
        for month in range(1, 13):  # a year of months: only the last two stay open
            at = datetime(2026, month, 1, tzinfo=UTC)
            ledger.append(start_record(a_run(at=at), "A.md"))
            ledger.append(start_record(a_run(at=at + timedelta(seconds=1)), "A.md"))
        held = open_now() - before
        assert 0 < held <= 4 + len(statefs._kept[str(tmp_path)]._dirs), held
        assert len(ledger.runs()) == 24
        del ledger
        gc.collect()
        statefs.forget_folders(tmp_path)
        assert open_now() == before
    finally:
        statefs.forget_folders(tmp_path)


def test_a_name_the_daemon_cannot_open_for_a_while_leaves_no_stale_descriptor(
    tmp_path: Path, kept: bool
) -> None:
    """A sync puts a link at the ledger's name and takes it away again: the append meanwhile
    is refused, and the ones after go to the ledger file, never to another file the daemon
    opened since under a descriptor number the ledger once had."""
    ledger = Ledger(tmp_path, "h")
    path = ledger.file_for(_appended(ledger, 0).started_at)
    aside = path.with_name("aside")
    path.rename(aside)
    path.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(statefs.LinkRefused):
        _appended(ledger, 1)
    path.unlink()
    aside.rename(path)  # the sync undoes itself
    _appended(ledger, 2)
    victim = tmp_path / "victim.txt"
    fd = os.open(victim, os.O_RDWR | os.O_CREAT, 0o644)  # whatever the daemon opens next
    try:
        _appended(ledger, 3)
        path.unlink()
        _appended(ledger, 4)  # the name gone: a new file, nothing closed twice
    finally:
        os.close(fd)
    assert victim.read_text() == ""
    assert len(Ledger(tmp_path, "h").runs()) == 1


def test_a_lock_file_replaced_while_the_daemon_waits_for_it_is_waited_for_anew(
    tmp_path: Path,
) -> None:
    """Another process holds the lock, puts a new lock file in its place, holds that and lets
    the old one go: the daemon, given the old one, sees it is no longer the lock and waits."""
    import fcntl

    statefs.keep_folders(tmp_path)
    try:
        ledger = Ledger(tmp_path, "h")
        path = ledger.file_for(_appended(ledger, 0).started_at)
        lock = path.with_name(path.name + ".lock")
        with lock.open("r+") as old:
            fcntl.flock(old, fcntl.LOCK_EX)
            writer = threading.Thread(target=_appended, args=(ledger, 1))
            writer.start()
            writer.join(0.2)
            new = lock.with_name("new.lock")
            with new.open("w") as held:
                fcntl.flock(held, fcntl.LOCK_EX)
                os.replace(new, lock)
                fcntl.flock(old, fcntl.LOCK_UN)
                writer.join(0.3)
                assert writer.is_alive()  # waits for the lock that is the lock now
        writer.join(10)
        assert not writer.is_alive() and len(Ledger(tmp_path, "h").runs()) == 2
    finally:
        statefs.forget_folders(tmp_path)


def test_a_replaced_ledger_file_is_closed_only_once_its_pending_fsync_is_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A start record's fsync runs after the append lock is let go: a file replaced meanwhile
    (and so let go by the next append) is still open, and the same file, when it comes."""
    statefs.keep_folders(tmp_path)
    try:
        ledger = Ledger(tmp_path, "h")
        path = ledger.append(start_record(a_run(at=MID_MONTH), "A.md"))
        inode = path.stat().st_ino
        began, go, seen = threading.Event(), threading.Event(), []
        real = os.fsync

        def fsync(fd: int) -> None:
            if not began.is_set():
                began.set()
                go.wait(10)
                seen.append(os.fstat(fd).st_ino)  # raises if it was closed meanwhile
            real(fd)

        monkeypatch.setattr(ledger_module.os, "fsync", fsync)
        starting = threading.Thread(
            target=ledger.append, args=(start_record(a_run("Tasks/B", MID_MONTH), "B.md"),)
        )
        starting.start()
        assert began.wait(10)
        copy = path.with_name("copy")
        copy.write_bytes(path.read_bytes())
        os.replace(copy, path)
        done = a_run(at=MID_MONTH, status=Status.SUCCESS)
        ledger.append_all([finish_record(done, "A.md")], durable=False)
        go.set()
        starting.join(10)
        assert seen == [inode]
        assert len(ledger._cache.opened.retired) == 0  # closed once the fsync was done
    finally:
        statefs.forget_folders(tmp_path)
