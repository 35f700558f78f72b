"""The ledger: append-only JSON Lines, the source of truth every note and digest is rebuilt from.

One file per host and month (`.vaultsched/runs/YYYY-MM/<host>.jsonl`), so hosts never write the
same file and git's `merge=union` can join them. A `start` record is fsync'ed before the process
is spawned and a `finish` record after it ends; a `finish` record repeats everything a reader
needs, so a run can be folded from it alone. A `finish` record is written at once but made
durable by the next fsync of its file (a start record's, or `sync`, which landing calls before
any view shows the run): an ended run's worker does not wait for the disk, and a power cut
before that fsync loses at most the finish of runs nothing shows yet (they read as interrupted).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import operator
import os
import stat
import threading
import weakref
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

from vaultsched.adapters import statefs
from vaultsched.core import layout
from vaultsched.core.layout import (
    LEDGER_SUFFIX,
    RUNS_DIR,
    ledger_file,
    ledger_month_dir,
    lock_beside,
)
from vaultsched.core.model import Run, Status, Trigger
from vaultsched.core.workflow import OutputPathError, check_note_path

_Enum = TypeVar("_Enum", Status, Trigger)
host_file_stem = layout.host_file_stem  # daemon.py imports it from here, for now


def new_run_id(now: datetime) -> str:
    """Sortable by start time, unique across hosts."""
    # Milliseconds too: two runs of a task in one second (an `every 1s`, a retry) must sort
    # in start order, since a run's previous output is the newest output file before its id.
    # Letters, digits, `_` and `-` only: it is also the run's job id in a worker pool's queue.
    # 48 random bits: the runs prepared for one instant all start at its very millisecond, and
    # with 24 two of them shared an id (their records then read as one run) about every four
    # days for ten `every 1s` tasks, once in thirty bursts of a thousand.
    utc = now.astimezone(UTC)
    import secrets  # here: `list` and `status` never make a run id

    return f"{utc:%Y%m%dT%H%M%S}_{utc.microsecond // 1000:03d}-{secrets.token_hex(6)}"


def iso_instant(moment: datetime | None) -> str | None:
    """How the ledger (and a worker pool's messages) write an instant: UTC, milliseconds."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds") if moment else None


# What a record must keep to become a Run. A line in another host's file (or in this host's,
# edited by a sync) may be hostile; within these bounds no later arithmetic, zone conversion,
# `int` to text conversion or rendering can overflow or blow up.
EARLIEST_YEAR, LATEST_YEAR = 1970, 9000  # an offset of up to a day cannot leave 1..9999
MAX_ATTEMPT = 10**9
EXIT_CODES = (-(2**31), 2**32)
MAX_DURATION_S = 36525 * 86400.0  # 100 years, the longest timeout a note can set
MAX_CHAIN = 1000  # tasks one run starts
MAX_ID = 4096  # run_id, task, host, path, log, rename ends
MAX_TEXT = 256 * 1024  # output_tail (4,000 characters when we write it) and message
RUN_RECORDS = ("start", "finish", "dispatched")  # the records that fold into a run
MAX_LINE = 4 * MAX_TEXT  # characters of one line; anything longer is not ours


class BadRecord(ValueError):
    """A record that cannot become a Run: skipped, and named (file and line) by `doctor`."""


def _parse_time(value: Any) -> datetime | None:
    """An aware instant within [EARLIEST_YEAR, LATEST_YEAR], or None for none; BadRecord for
    anything else (a time without a zone could not be compared with the others)."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > 64:
        raise BadRecord("a time that is not a string")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadRecord(f"not a time: {value!r}") from None
    if moment.tzinfo is None:
        raise BadRecord(f"no time zone in {value!r}")
    if not EARLIEST_YEAR <= moment.year <= LATEST_YEAR:
        raise BadRecord(f"a time out of range: {value!r}")
    return moment


def parse_instant(value: Any) -> datetime | None:
    """`_parse_time` for other untrusted files (marks.json): None for anything unusable."""
    try:
        return _parse_time(value)
    except BadRecord:
        return None


def _int(record: dict[str, Any], key: str, bounds: tuple[int, int]) -> int | None:
    value = record.get(key)
    if value is None:
        return None
    # bool is an int to Python, never one to us; a float (even 1.0) is not an attempt count
    if type(value) is not int or not bounds[0] <= value <= bounds[1]:
        raise BadRecord(f"{key} is not an integer in [{bounds[0]}, {bounds[1]}]")
    return value


def _seconds(record: dict[str, Any], key: str) -> float | None:
    value = record.get(key)
    if value is None:
        return None
    if type(value) not in (int, float) or not 0 <= value <= MAX_DURATION_S:
        raise BadRecord(f"{key} is not a number of seconds in [0, {MAX_DURATION_S:.0f}]")
    return float(value)


def _text(record: dict[str, Any], key: str, limit: int, default: str | None = "") -> str:
    value = record.get(key, default)
    if value is None:  # a finish record writes null for what it does not know
        value = default
    if not isinstance(value, str) or len(value) > limit or (default is None and not value):
        raise BadRecord(f"{key} is not a string of at most {limit} characters")
    return value


def _task_id(record: dict[str, Any], key: str) -> str:
    """A task id as vaultsched writes one: a vault-relative path without `.md`. Anything else
    (`..`, an absolute path, a hidden folder) would make the daemon read or write a note
    outside the vault when it closes an interrupted run."""
    value = _text(record, key, MAX_ID, default=None)
    parts = value.split("/")
    if "\x00" in value or any(not part or part.startswith(".") for part in parts):
        raise BadRecord(f"{key} is not a task id inside the vault")
    return value


def _note_path(record: dict[str, Any], key: str) -> str:
    """A vault-relative note path as `output` makes one, or "" for anything else: the note is
    linked from the run block, so a hostile value must not point out of the vault or break
    the link, but it costs the run only its link, never its record."""
    value = record.get(key)
    if not isinstance(value, str) or len(value) > MAX_ID or not value.endswith(".md"):
        return ""
    try:
        check_note_path(value)
    except OutputPathError:
        return ""
    return value


def _choice(record: dict[str, Any], key: str, enum: type[_Enum], default: _Enum) -> _Enum:
    value = record.get(key)
    if value is None:
        return default
    with contextlib.suppress(ValueError):
        if isinstance(value, str):
            return enum(value)
    raise BadRecord(f"{key} is not one of {', '.join(enum)}")


def start_record(run: Run, path: str) -> dict[str, Any]:
    return {
        "type": "start",
        "run_id": run.run_id,
        "task": run.task,
        "path": path,
        "trigger": str(run.trigger),
        "scheduled_for": iso_instant(run.scheduled_for),
        "started_at": iso_instant(run.started_at),
        "host": run.host,
        "attempt": run.attempt,
        **({"upstream_run": run.upstream_run} if run.upstream_run else {}),
        # A pool run's (a local run's after a pool it could not reach: its queue is "").
        **(_dispatch_fields(run) if run.dispatched_at is not None else {}),
    }


def dispatched_record(run: Run, path: str) -> dict[str, Any]:
    """A run handed to the worker pool, before any worker has it: the daemon's record that it
    is in flight, so a restart collects it and never enqueues it twice."""
    return {**start_record(run, path), "type": "dispatched"}


def _dispatch_fields(run: Run) -> dict[str, Any]:
    return {"queue": run.queue, "dispatched_at": iso_instant(run.dispatched_at)}


def finish_record(run: Run, path: str) -> dict[str, Any]:
    return {
        **start_record(run, path),
        "type": "finish",
        "status": str(run.status),
        "exit_code": run.exit_code,
        "finished_at": iso_instant(run.finished_at),
        "duration_s": run.duration_s,
        "output_tail": run.output_tail,
        "message": run.message,
        "log": run.log,
        **({"chain": list(run.chain)} if run.chain else {}),
        # Only when set: the lines of a task without `output` stay as they always were.
        **({"output_note": run.output_note} if run.output_note else {}),
    }


def run_from_records(records: Sequence[dict[str, Any]]) -> Run | None:
    """Fold the records of one run_id (oldest first) into a Run; None if they make no sense."""
    merged: dict[str, Any] = {}
    for record in records:
        merged.update({k: v for k, v in record.items() if v is not None})
    try:
        return _to_run(merged)
    except BadRecord:
        return None


def record_problem(record: dict[str, Any]) -> str | None:
    """Why `record` cannot be read (every record must fold into a Run, or a rename, on its
    own: a finish repeats its start), or None if it can."""
    try:
        if record.get("type") == "rename":
            _to_rename(record)
        else:
            _to_run(record)
    except BadRecord as exc:
        return str(exc)
    return None


def _to_run(merged: dict[str, Any]) -> Run:
    """The one door from a record to a Run: every field is checked for type and range here,
    so nothing downstream sees a value it could choke on. Raises BadRecord."""
    kind = merged.get("type")
    if kind not in RUN_RECORDS:  # a tuple: `in` a set would hash a hostile list
        raise BadRecord("type is not start, finish or dispatched")
    started_at = _parse_time(merged.get("started_at"))
    if started_at is None:
        raise BadRecord("no started_at")
    if kind == "finish" and merged.get("status") is None:
        raise BadRecord("a finish without a status")
    _text(merged, "path", MAX_ID)  # not kept, but a reader may show it
    return Run(
        run_id=_text(merged, "run_id", MAX_ID, default=None),
        task=_task_id(merged, "task"),
        status=_choice(merged, "status", Status, Status.RUNNING)
        if kind == "finish"
        else Status.RUNNING,
        trigger=_choice(merged, "trigger", Trigger, Trigger.MANUAL),
        started_at=started_at,
        host=_text(merged, "host", MAX_ID),
        attempt=_int(merged, "attempt", (1, MAX_ATTEMPT)) or 1,
        scheduled_for=_parse_time(merged.get("scheduled_for")),
        finished_at=_parse_time(merged.get("finished_at")),
        exit_code=_int(merged, "exit_code", EXIT_CODES),
        duration_s=_seconds(merged, "duration_s"),
        output_tail=_text(merged, "output_tail", MAX_TEXT),
        message=_text(merged, "message", MAX_TEXT),
        log=_text(merged, "log", MAX_ID),
        upstream_run=_text(merged, "upstream_run", MAX_ID),
        chain=_chain(merged),
        output_note=_note_path(merged, "output_note"),
        queue=_text(merged, "queue", MAX_ID),
        dispatched_at=_parse_time(merged.get("dispatched_at")),
    )


def _chain(record: dict[str, Any]) -> tuple[str, ...]:
    """The task ids a run starts: each a task id inside the vault, at most MAX_CHAIN."""
    value = record.get("chain")
    if value is None:
        return ()
    if type(value) is not list or len(value) > MAX_CHAIN:
        raise BadRecord(f"chain is not a list of at most {MAX_CHAIN} task ids")
    return tuple(_task_id({"chain": item}, "chain") for item in value)


def _to_rename(record: dict[str, Any]) -> tuple[datetime, str, str]:
    """(when, old id, new id) of a rename record. Raises BadRecord."""
    at = _parse_time(record.get("started_at"))
    if at is None:
        raise BadRecord("a rename without started_at")
    _text(record, "run_id", MAX_ID, default=None)
    old, new = (_task_id(record, key) for key in ("from", "to"))
    return at, old, new


@dataclass
class _FileRecords:
    """The parsed records of one ledger file, up to `offset` bytes."""

    identity: tuple[int, int]  # (device, inode): a replaced file is parsed afresh
    offset: int = 0
    lines: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)
    rejected: list[tuple[int, str]] = field(default_factory=list)  # (line number, why)
    # Kept as lines are parsed, so a run's start need not fold the whole ledger to know them:
    successes: dict[str, datetime] = field(default_factory=dict)  # task -> latest success start
    renames: list[tuple[str, str]] = field(default_factory=list)  # (old id, new id)
    # And so a view need not fold the whole ledger to show one task's runs:
    moves: list[tuple[datetime, str, str]] = field(default_factory=list)  # (when, old, new)
    by_run: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # run_id -> records
    by_task: dict[str, dict[str, None]] = field(default_factory=dict)  # task -> its run_ids

    def take(self, text: str, size: int) -> None:
        """Parse the whole lines `text` (`size` bytes of the file, from `offset`)."""
        known = len(self.records)
        # Split on \n alone: a record may hold a raw U+2028, which splitlines() breaks on.
        for line in text.split("\n")[:-1]:
            self.lines += 1
            _take_line(self, line)
        for record in self.records[known:]:
            self.note(record)
        self.offset += size

    def note(self, record: dict[str, Any]) -> None:
        """Keep what `record` (valid) says of a task's latest success, or a rename; index it."""
        if record.get("type") == "rename":
            self.renames.append((str(record["from"]), str(record["to"])))
            self.moves.append(_to_rename(record))  # checked when the line was read
            return
        run_id, task = str(record["run_id"]), str(record["task"])
        self.by_run.setdefault(run_id, []).append(record)
        self.by_task.setdefault(task, {})[run_id] = None
        if record.get("type") == "finish" and record.get("status") == "success":
            started = parse_instant(record.get("started_at"))
            task = str(record["task"])
            if started is not None and (
                task not in self.successes or started > self.successes[task]
            ):
                self.successes[task] = started


@dataclass
class _Open:
    fd: int
    identity: tuple[int, int]
    end: int = -1  # its size after this process's last whole line: that last byte is "\n"

    def named_by(self, info: os.stat_result | None) -> bool:
        """Whether the name `info` describes (None: no such file) is still this very file."""
        return (
            info is not None
            and stat.S_ISREG(info.st_mode)
            and (info.st_dev, info.st_ino) == self.identity
        )


@dataclass
class _Opened:
    """The ledger files the daemon appends to and their lock files, kept open: opening both
    afresh for each append was ten system calls of every run's start and finish. Before each
    append both names are looked at (one `stat` each, the file's under the lock): a file a pull,
    a person or a sync replaced or removed is opened afresh, so a line never goes to a file the
    ledger no longer has, nor a lock to a file other processes no longer take. Used under the
    ledger's append lock; a replaced ledger file is closed only once no fsync can be using it."""

    files: dict[str, _Open] = field(default_factory=dict)
    retired: set[int] = field(default_factory=set)

    def write(self, root: Path, rel: str, text: str) -> tuple[int, _Written | None]:
        """`_write_line`, through the files kept open (the descriptor stays this object's)."""
        folder, name = rel.rsplit("/", 1)
        lock_rel = lock_beside(rel)
        others = [kept for kept in self.files if kept not in (rel, lock_rel)]
        for old in others[: max(0, len(self.files) - KEPT_FILES + 2)]:  # last month's, say
            self.retired.add(self.files.pop(old).fd)
        with statefs.folder(root, folder, create=True) as dir_fd:
            lock = self._locked(root, dir_fd, lock_rel)
            try:
                info = _lstat(dir_fd, name)  # under the lock: no other process appends now
                kept = self._current(root, rel, info, _APPEND)
                if not kept.named_by(info):
                    info = os.fstat(kept.fd)
                assert info is not None
                written = _append(kept.fd, info, text, kept.end)
                kept.end = -1 if written is None else written.at + len(written.data)
                return kept.fd, written
            finally:
                fcntl.flock(lock.fd, fcntl.LOCK_UN)

    def _locked(self, root: Path, dir_fd: int, rel: str) -> _Open:
        """The lock file `rel`, locked; looked at once locked (the one kept is locked first,
        unseen): one replaced or removed meanwhile is not the one other processes take, and
        is let go for the file at the name now."""
        name = rel.rsplit("/", 1)[1]
        lock = self.files.get(rel) or self._current(root, rel, None, _LOCK)
        while True:
            fcntl.flock(lock.fd, fcntl.LOCK_EX)
            info = _lstat(dir_fd, name)
            if lock.named_by(info):
                return lock
            fcntl.flock(lock.fd, fcntl.LOCK_UN)
            lock = self._current(root, rel, info, _LOCK)

    def _current(self, root: Path, rel: str, info: os.stat_result | None, flags: int) -> _Open:
        """The file `rel` kept open, if `info` (its name looked at) is still that file; else
        opened afresh. Raises OSError if it cannot be (a link, a FIFO now at the name)."""
        kept = self.files.pop(rel, None)  # not kept, whatever comes next, unless it is current
        if kept is not None and kept.named_by(info):
            self.files[rel] = kept
            return kept
        if kept is not None:
            self.retired.add(kept.fd)
        fd = statefs.open_file(root, rel, flags)
        opened = os.fstat(fd)
        kept = self.files[rel] = _Open(fd, (opened.st_dev, opened.st_ino))
        return kept

    def close_retired(self) -> None:
        while self.retired:
            with contextlib.suppress(OSError):
                os.close(self.retired.pop())

    def close(self) -> None:
        self.retired.update(kept.fd for kept in self.files.values())
        self.files.clear()
        self.close_retired()


KEPT_FILES = 4  # two months' files and their locks


def _lstat(dir_fd: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return None


@dataclass
class _RecordCache:
    """Ledger files only grow: parse each appended line once, not on every read.

    The daemon rebuilds a note's run block from the ledger after every run; re-parsing a
    month of JSON each time would make landing cost grow with the month.
    """

    files: dict[Path, _FileRecords] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    # Held while a line is written (short: no fsync under it), and by `appends_held`.
    append_lock: threading.Lock = field(default_factory=threading.Lock)
    # Held while a file is fsync'ed: a writer waiting for it finds its line covered by the
    # fsync it waited for, more often than not (a group commit), and none waits for it to
    # write a line that needs no fsync of its own (a finish record).
    sync_lock: threading.Lock = field(default_factory=threading.Lock)
    written: dict[Path, int] = field(default_factory=dict)  # appends written to each file
    synced: dict[Path, int] = field(default_factory=dict)  # of those, made durable by an fsync
    syncing: int = 0  # durable appends written, their fsync still to come (under `settled`)
    settled: threading.Condition = field(default_factory=threading.Condition)
    # Each run as last folded, with the records it was folded from: a run whose records are
    # the same objects is not folded again (a burst's every landing folded every run anew).
    folds: dict[str, tuple[tuple[dict[str, Any], ...], Run | None]] = field(default_factory=dict)
    # The ledger's folders as last listed: a run's start asks for the ledger's files, and a
    # folder unchanged since is not read again.
    listings: dict[str, statefs.Listing] = field(default_factory=dict)
    opened: _Opened = field(default_factory=_Opened)

    def __post_init__(self) -> None:
        weakref.finalize(self, self.opened.close)  # a test's ledger, gone: its files closed

    def fold(self, run_id: str, records: list[dict[str, Any]]) -> Run | None:
        """`run_from_records(records)`, from the last fold of `run_id` if its records are the
        very same (a file parsed afresh makes new ones)."""
        folded = tuple(records)  # what is folded and kept: another thread may append meanwhile
        kept = self.folds.get(run_id)
        same = kept is not None and len(kept[0]) == len(folded)
        if kept is not None and same and all(map(operator.is_, kept[0], folded)):
            return kept[1]
        run = run_from_records(folded)
        self.folds[run_id] = (folded, run)
        return run

    def read(self, root: Path, path: Path) -> list[dict[str, Any]]:
        """The valid records of `path`, oldest first."""
        return list(self._parsed(root, path).records)

    def rejected(self, root: Path, path: Path) -> list[tuple[int, str]]:
        """(line number, why) of each line of `path` that is no valid record."""
        return list(self._parsed(root, path).rejected)

    def listing(self, root: Path, rel: str) -> list[statefs.Entry]:
        """What the ledger's folder `rel` holds (see `statefs.listing`)."""
        found = self.listings[rel] = statefs.listing(root, rel, self.listings.get(rel))
        return found.entries

    def _parsed(self, root: Path, path: Path) -> _FileRecords:
        rel = path.relative_to(root).as_posix()
        with self.lock:
            cached = self.files.get(path)
            if cached is not None and _unchanged(root, rel, cached):
                return cached
            try:
                fd = statefs.open_file(root, rel, os.O_RDONLY)
            except OSError as exc:
                if not isinstance(exc, FileNotFoundError):
                    statefs.warn_refused(exc, "ledger file not read")
                self.files.pop(path, None)
                return _FileRecords((0, 0))
            handle = os.fdopen(fd, "rb")
            with handle:
                info = os.fstat(handle.fileno())
                identity = (info.st_dev, info.st_ino)
                if cached is None or cached.identity != identity or info.st_size < cached.offset:
                    cached = self.files[path] = _FileRecords(identity)
                handle.seek(cached.offset)
                data = handle.read()
            end = data.rfind(b"\n") + 1  # a torn last line waits until it is complete
            cached.take(data[:end].decode("utf-8", errors="replace"), end)
            return cached

    def appended(self, path: Path, written: _Written) -> None:
        """This process appended `written` to `path`: taken as read if the cache had read the
        file up to where the lines went (so no other line came between), and not re-read.
        Every run's start asks the ledger (`last_success`) just after the last run's append."""
        with self.lock:
            cached = self.files.get(path)
            if cached is None and written.at == 0:  # a new file (a month's first line)
                cached = self.files[path] = _FileRecords(written.identity)
            if cached is None or cached.identity != written.identity:
                return
            if cached.offset == written.at:
                cached.take(written.text, len(written.data))


def _unchanged(root: Path, rel: str, parsed: _FileRecords) -> bool:
    """Whether the file is still the one parsed, every byte of it taken (one `lstat`, where
    reading it to its end takes an open, a stat, a read and a close)."""
    try:
        info = statefs.lstat(root, rel)
    except (OSError, ValueError):
        return False  # gone or refused: the full path says so
    same = (info.st_dev, info.st_ino) == parsed.identity
    return same and stat.S_ISREG(info.st_mode) and info.st_size == parsed.offset


def _no_constant(name: str) -> Any:
    raise BadRecord(f"{name} is not a number")  # Python's json would take it as a float


def _take_line(parsed: _FileRecords, line: str) -> None:
    """Keep the record on `line`, or note why it is none. A line that is not JSON at all is
    a torn write (a crash mid-append; the next append repairs the file) and goes unremarked;
    JSON that is no valid record is skipped and named by `doctor`."""
    if len(line) > MAX_LINE:
        parsed.rejected.append((parsed.lines, f"a line over {MAX_LINE} characters"))
        return
    try:
        record = json.loads(line, parse_constant=_no_constant)
    except json.JSONDecodeError:
        return
    except (ValueError, RecursionError) as exc:  # NaN, Infinity, a 5,000-digit int, [[[[…
        parsed.rejected.append((parsed.lines, str(exc)[:200]))
        return
    problem = "not a record" if not isinstance(record, dict) else record_problem(record)
    if problem is None:
        parsed.records.append(record)
    else:
        parsed.rejected.append((parsed.lines, problem))


@dataclass(frozen=True)
class Ledger:
    root: Path  # the vault root
    host: str
    _cache: _RecordCache = field(default_factory=_RecordCache, compare=False, repr=False)

    @property
    def folder(self) -> Path:
        return self.root / RUNS_DIR

    def file_for(self, started_at: datetime) -> Path:
        return self.root / ledger_file(f"{started_at.astimezone(UTC):%Y-%m}", self.host)

    def append(self, record: dict[str, Any]) -> Path:
        """Append one record durably; returns the file written. Repairs a torn last line first.

        Raises OSError (`statefs.LinkRefused` among them) if the record could not be written.
        """
        return self.append_all([record])

    def append_all(self, records: list[dict[str, Any]], *, durable: bool = True) -> Path:
        """`append` for records started in one month (the start records of runs due at the
        same instant): one write, one fsync. `durable` False: no fsync of its own; the next
        one of the file (another append's, or `sync`) makes it durable."""
        months = {_month(record) for record in records}
        if len(months) != 1:
            raise ValueError("records of one month at a time")
        rel = ledger_file(months.pop(), self.host)  # no pathlib: this is every run's start
        path = self.root / rel
        line = "".join(
            json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n"
            for record in records
        )
        cache = self._cache
        # Group commit: the line is written at once under the append lock, and made durable
        # by the first fsync of the file to begin after it; a writer that waited for the
        # fsync lock finds its line covered by the fsync before it when that one began after
        # its write. Ten runs starting together wait for a couple of disk flushes, not ten,
        # and a record that needs no fsync never waits for one. The file lock only ever
        # waits for another process.
        with cache.append_lock:
            if statefs.folders_kept(self.root):  # the daemon: its files stay open
                fd, written = cache.opened.write(self.root, rel, line)
                owned = False
            else:
                with statefs.locked(self.root, lock_beside(rel)):
                    fd, written = _write_line(self.root, rel, line)
                owned = True
            if written is not None:
                cache.appended(path, written)
            seq = cache.written[path] = cache.written.get(path, 0) + 1
            if durable:
                with cache.settled:
                    cache.syncing += 1
        try:
            if durable:
                self._sync_to(path, seq, fd)
        finally:
            if owned:
                os.close(fd)
            with cache.settled:
                cache.syncing -= durable
                cache.settled.notify_all()
                if not cache.syncing:  # no fsync can be using a file replaced meanwhile
                    cache.opened.close_retired()
        return path

    def _sync_to(self, path: Path, seq: int, fd: int) -> None:
        """Make the file's `seq` first appends durable, with `fd` (open on it) if need be."""
        cache = self._cache
        with cache.sync_lock:
            if cache.synced.get(path, 0) >= seq:
                return  # the fsync that ended as this one waited began after its write
            target = cache.written[path]  # every append counted here is written
            os.fsync(fd)
            cache.synced[path] = max(cache.synced.get(path, 0), target)

    def sync(self) -> None:
        """Make every record appended so far durable: one fsync per file written since its
        last. Raises OSError if one could not be."""
        cache = self._cache
        with cache.sync_lock:
            for path, target in sorted(dict(cache.written).items()):  # a copy: appends go on
                if cache.synced.get(path, 0) >= target:
                    continue
                fd = statefs.open_file(self.root, self._rel(path), os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
                cache.synced[path] = max(cache.synced.get(path, 0), target)

    def _rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    @contextlib.contextmanager
    def appends_held(self, now: datetime) -> Iterator[None]:
        """No record is appended by this host meanwhile (git sync rebases under it): a line
        added to a tracked file mid-rebase would stop the rebase and block its undoing."""
        path, cache = self.file_for(now), self._cache
        with cache.append_lock:
            with cache.settled:  # and every line written is through its fsync
                cache.settled.wait_for(lambda: not cache.syncing)
            with statefs.locked(self.root, lock_beside(self._rel(path))):
                yield

    def files(self, months: Iterable[str] | None = None) -> list[Path]:
        """Every host's ledger file; a linked month folder or file is passed over (and logged),
        never followed."""
        wanted = set(months) if months is not None else None
        found = []
        try:
            for month in self._cache.listing(self.root, RUNS_DIR):
                folder = ledger_month_dir(month.name)
                if month.kind == "link":
                    statefs.warn_refused(statefs.LinkRefused(folder), "ledger")
                if month.kind != "dir" or (wanted is not None and month.name not in wanted):
                    continue
                for entry in self._cache.listing(self.root, folder):
                    if entry.name.endswith(LEDGER_SUFFIX) and entry.kind != "dir":
                        found.append(self.root / folder / entry.name)
        except OSError as exc:  # .vaultsched or runs/ itself is a link
            statefs.warn_refused(exc, "ledger not read")
        return sorted(found)

    def records(self, months: Iterable[str] | None = None) -> Iterator[dict[str, Any]]:
        """Every readable record of every host; torn or corrupt lines are passed over."""
        for path in self.files(months):
            yield from self._cache.read(self.root, path)

    def rejected(self) -> list[tuple[Path, int, str]]:
        """(file, line number, why) of every line of every host's file that is no valid
        record: skipped by every view, named by `doctor`."""
        return [
            (path, number, why)
            for path in self.files()
            for number, why in self._cache.rejected(self.root, path)
        ]

    def append_rename(self, old: str, new: str, at: datetime) -> Path:
        """A task note was renamed or moved: its earlier runs follow it to the new id."""
        record = {
            "type": "rename",
            "run_id": f"rename-{new_run_id(at)}",
            "from": old,
            "to": new,
            "started_at": iso_instant(at),
        }
        return self.append(record)

    def _parsed_files(
        self, months: Iterable[str] | None = None
    ) -> tuple[list[_FileRecords], list[tuple[datetime, str, str]]]:
        """Every ledger file (of `months`) as parsed so far, and their renames in time order."""
        parsed = [self._cache._parsed(self.root, path) for path in self.files(months)]
        return parsed, sorted(move for records in parsed for move in records.moves)

    def runs(self, months: Iterable[str] | None = None) -> list[Run]:
        """All runs, folded, in start-time order, under their task's current id."""
        parsed, renames = self._parsed_files(months)
        if len(parsed) == 1:  # one host, one month: its runs are grouped already
            grouped = list(parsed[0].by_run.items())
        else:
            merged: dict[str, list[dict[str, Any]]] = {}
            for records in parsed:
                for run_id, some in list(records.by_run.items()):
                    merged.setdefault(run_id, []).extend(some)
            grouped = list(merged.items())
        fold = self._cache.fold
        runs = [run for run_id, records in grouped if (run := fold(run_id, records)) is not None]
        if renames:
            runs = [_follow(run, renames) for run in runs]
        return sorted(runs, key=_start_order)

    def runs_by_file(self) -> list[tuple[Path, Run]]:
        """Every run with the ledger file that holds it. Who wrote a record is known by its
        file, not by what the record says: a line in another host's file is that host's word."""
        grouped: dict[tuple[Path, str], list[dict[str, Any]]] = {}
        renames: list[tuple[datetime, str, str]] = []
        for path in self.files():
            parsed = self._cache._parsed(self.root, path)
            renames += parsed.moves
            for run_id, records in list(parsed.by_run.items()):
                grouped[path, run_id] = list(records)
        renames.sort()
        runs = []
        for (source, _), records in grouped.items():
            run = run_from_records(records)
            if run is not None:
                runs.append((source, _follow(run, renames) if renames else run))
        return sorted(runs, key=lambda pair: _start_order(pair[1]))

    def runs_of(self, task: str) -> list[Run]:
        return self.runs_of_tasks([task])[task]

    def runs_of_tasks(self, tasks: Iterable[str]) -> dict[str, list[Run]]:
        """Each task's runs, as `runs()` has them, folding only the runs ever filed under the
        task or an id it was renamed from: a landing batch shows a few tasks of thousands."""
        parsed, renames = self._parsed_files()
        sources = _rename_sources(renames)
        found: dict[str, list[Run]] = {}
        for task in tasks:
            names = _renamed_to(task, sources)
            run_ids = {
                run_id: None
                for records in parsed
                for name in sorted(names)
                for run_id in tuple(records.by_task.get(name, ()))  # a copy: it may grow
            }
            runs = []
            for run_id in run_ids:
                records = [r for each in parsed for r in each.by_run.get(run_id, ())]
                run = self._cache.fold(run_id, records)
                if run is not None and renames:
                    run = _follow(run, renames)
                if run is not None and run.task == task:
                    runs.append(run)
            found[task] = sorted(runs, key=_start_order)
        return found

    def last_success(self, task: str) -> datetime | None:
        """When the task's latest successful run started (under this id or one it was renamed
        from), without folding the ledger: what a run's start needs, at every start."""
        found: list[datetime] = []
        parsed = [self._cache._parsed(self.root, path) for path in self.files()]
        names = {task}
        for records in parsed:
            names |= {old for old, new in records.renames if new in names}
        for records in parsed:
            found += [records.successes[name] for name in names if name in records.successes]
        return max(found, default=None)

    def runs_on(self, day: date, tz: Any) -> list[Run]:
        """Runs that started on `day` in zone `tz`; reads only the months that can hold them."""
        start = datetime.combine(day, datetime.min.time(), tzinfo=tz)
        end = start + timedelta(days=1)
        months = {f"{m.astimezone(UTC):%Y-%m}" for m in (start, end)}
        # In UTC, as the ledger's times are: compared without asking `tz` each time.
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        return [r for r in self.runs(months) if start <= r.started_at < end]


# A run due at an instant is decided, and its start record written, a moment before it starts
# (the daemon's dispatch LEAD, 0.25 s): a note moved meanwhile leaves that run under its old id.
# A rename counts for the runs that start up to this long after it.
PREPARED_AHEAD = timedelta(seconds=1)


def _rename_sources(renames: Iterable[tuple[datetime, str, str]]) -> dict[str, list[str]]:
    """Each id renamed to, and the ids renamed to it: one pass over the renames for a whole
    landing batch (a synced ledger may hold thousands; a pass per link, or per task: seconds)."""
    sources: dict[str, list[str]] = {}
    for _, old, new in renames:
        sources.setdefault(new, []).append(old)
    return sources


def _renamed_to(task: str, sources: dict[str, list[str]]) -> set[str]:
    """`task` and every id that a chain of renames (`_rename_sources`) leads from to it."""
    names, todo = {task}, [task]
    while todo:
        for old in sources.get(todo.pop(), ()):
            if old not in names:
                names.add(old)
                todo.append(old)
    return names


def _start_order(run: Run) -> tuple[datetime, str]:
    return run.started_at, run.run_id


def _follow(run: Run, renames: list[tuple[datetime, str, str]]) -> Run:
    """The run under the id its note has after every later rename (see PREPARED_AHEAD)."""
    task = run.task
    for at, old, new in renames:
        if at + PREPARED_AHEAD >= run.started_at and old == task:
            task = new
    return run if task == run.task else replace(run, task=task)


def _month(record: dict[str, Any]) -> str:
    """The month (UTC) whose file holds `record` (see `_started`), read off the time as
    `iso_instant` writes it when it can be: this is every run's start and finish."""
    value = record.get("dispatched_at") or record.get("started_at")
    if isinstance(value, str) and len(value) == 29 and value.endswith("+00:00"):
        return value[:7]
    return f"{_started(record).astimezone(UTC):%Y-%m}"


def _started(record: dict[str, Any]) -> datetime:
    """When `record`'s run is filed: a pool run's records all go where its dispatch went,
    whenever a worker started it."""
    started = _parse_time(record.get("dispatched_at") or record["started_at"])
    assert started is not None
    return started


@dataclass(frozen=True)
class _Written:
    """An append of whole lines (`text`, as `data`) at byte `at` of the file `identity`."""

    identity: tuple[int, int]
    at: int
    text: str
    data: bytes


_APPEND = os.O_RDWR | os.O_APPEND | os.O_CREAT
_LOCK = os.O_RDWR | os.O_CREAT


def _write_line(root: Path, rel: str, text: str) -> tuple[int, _Written | None]:
    """Append `text` (whole lines) to the file, its torn last line repaired first; the file's
    descriptor, open, for the caller to fsync and close, and what went where (None: a torn
    line was repaired first)."""
    fd = statefs.open_file(root, rel, _APPEND)
    try:
        return fd, _append(fd, os.fstat(fd), text)
    except BaseException:
        os.close(fd)
        raise


def _append(fd: int, info: os.stat_result, text: str, clean_at: int = -1) -> _Written | None:
    """Append `text` to the file `fd` (which `info` describes, its lock held). `clean_at`: a
    size at which the file is known to end with a whole line (none came after this process's
    last), so its last byte need not be read."""
    data = text.encode("utf-8")
    size = info.st_size
    clean = size in (0, clean_at) or os.pread(fd, 1, size - 1) == b"\n"
    whole = os.write(fd, data if clean else b"\n" + data) == len(data)  # short: disk full
    identity = (info.st_dev, info.st_ino)
    return _Written(identity, size, text, data) if clean and whole else None
