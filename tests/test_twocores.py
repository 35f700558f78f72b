"""The cold index on two cores: a forked second process indexes some of the vault's stretches,
and the index and the cache are those of one process walking it all; when the second process
dies or hands back garbage, the first does its share again. Each fork runs in a fresh
interpreter (a subprocess with one thread, as the CLI is), never in the test runner's."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import make_vault, write_note
from test_indexcache import generated

from vaultsched.adapters import twocores

TASK = "---\ncommand: echo one\nschedule: '@daily'\n---\nBody.\n"

# Runs in a subprocess: argv = vault, mode, output file. Indexes the vault and writes what
# came of it (pickled) and how many stretches this process indexed itself.
#   alone:   one process (may_fork says no)
#   shared:  two processes; the first waits in its first stretch until the second has done
#            one, so the second surely takes part
#   dies:    as shared, but the second is killed (SIGKILL) once it has done one stretch
#   garbage: as shared, but what the second hands back cannot be unpickled
SCRIPT = """
import os, pickle, signal, sys, time
from pathlib import Path
from vaultsched.adapters import indexcache, twocores, vault as V
from vaultsched.adapters.config import load_config
from vaultsched.core import layout

root, mode, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
indexcache.RACY_NS = -(10**12)  # every note cached, however new
vault = V.Vault(root=root, config=load_config(root), host="testhost")
marker = out.with_suffix(".second")
parent, mine, real = os.getpid(), [], V._index_stretch
V.ALONE_UNTIL = 0

def stretch(*args, **kwargs):
    part = real(*args, **kwargs)
    if os.getpid() != parent:
        marker.touch()
        if mode == "dies":
            os.kill(os.getpid(), signal.SIGKILL)
        if mode == "garbage":
            part.found.append(lambda: None)  # a lambda cannot be pickled
        return part
    mine.append(1)
    if len(mine) == 1 and mode != "alone":
        deadline = time.monotonic() + 60  # only so that a broken fork cannot hang the suite
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.005)
    return part

V._index_stretch = stretch
if mode == "alone":
    twocores.may_fork = lambda: False
else:
    assert twocores.may_fork(), "this test needs two cores"
(root / layout.INDEX_CACHE).unlink(missing_ok=True)
index = V.build_index(vault)
found = (
    list(index.tasks.items()), list(index.invalid.items()), index.problems, index.skipped,
    index.downstream, (root / layout.INDEX_CACHE).read_bytes(),
)
out.write_bytes(pickle.dumps((found, len(mine), marker.exists())))
"""

needs_two_cores = pytest.mark.skipif(
    not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
    reason="a second process needs a second core",
)


def hostile_vault(root: Path, tmp_path: Path) -> Path:
    """A generated vault (tasks, broken notes, ordinary notes, notes with problems) with what
    sync can put in one: links out and in, a FIFO, a name that is not UTF-8, a note too big to
    read, a task in the digest folder, a folder nobody may read, a folder of many notes."""
    generated(root)
    make_vault(root, repo=False)
    outside = write_note(tmp_path / "outside", "Out.md", TASK)
    (root / "Tasks/link-out.md").symlink_to(outside)
    (root / "Tasks/link-in.md").symlink_to(root / "Tasks/Typo.md")
    (root / "Linked").symlink_to(outside.parent)
    write_note(root, "Digests/Misplaced.md", TASK)
    write_note(root, "Tasks/Huge.md", "---\ncommand: x\nbig: '" + "x" * 70_000 + "'\n---\n")
    (root / os.fsdecode(b"Tasks/bad \xff name.md")).write_bytes(TASK.encode())
    os.mkfifo(root / "Tasks/pipe.md")
    write_note(root, "Locked/Task.md", TASK).parent.chmod(0)
    for n in range(600):  # a folder with more notes than one stretch takes
        write_note(root, f"Flat/Note {n}.md", TASK if n % 100 == 7 else f"note {n}\n")
    write_note(root, "Flat/Note 7 (conflicted copy).md", TASK)
    return root


@pytest.fixture
def hostile(tmp_path: Path) -> Iterator[Path]:
    root = hostile_vault(tmp_path / "vault", tmp_path)
    yield root
    (root / "Locked").chmod(0o755)


def indexed(root: Path, mode: str, tmp_path: Path) -> tuple[tuple[Any, ...], int, bool]:
    """What indexing `root` in `mode` (see SCRIPT) found; how many stretches the first process
    indexed; whether the second indexed any."""
    out = tmp_path / f"{mode}.pickle"
    subprocess.run([sys.executable, "-c", SCRIPT, str(root), mode, str(out)], check=True)
    found, mine, second = pickle.loads(out.read_bytes())
    return found, mine, second


@needs_two_cores
def test_two_processes_index_a_hostile_vault_as_one_does(hostile: Path, tmp_path: Path) -> None:
    alone, stretches, _ = indexed(hostile, "alone", tmp_path)
    shared, mine, second = indexed(hostile, "shared", tmp_path)
    tasks, invalid, problems, skipped, _, cache = alone
    assert len(tasks) >= 40 and invalid and problems and skipped and cache
    assert second and mine < stretches  # the second process did stretches the first did not
    assert shared == alone  # tasks and their order, invalid, problems, skipped, cache bytes


@needs_two_cores
@pytest.mark.parametrize("mode", ["dies", "garbage"])
def test_a_second_process_that_fails_leaves_its_share_to_the_first(
    hostile: Path, tmp_path: Path, mode: str
) -> None:
    alone, stretches, _ = indexed(hostile, "alone", tmp_path)
    found, mine, second = indexed(hostile, mode, tmp_path)
    assert second and mine == stretches  # it took a stretch, and the first did them all
    assert found == alone


def test_results_come_in_order_whatever_process_did_them() -> None:
    script = (
        "import json, os; from vaultsched.adapters import twocores\n"
        "print(json.dumps(twocores.shared(list(range(5000)), lambda i: (i * i, os.getpid()))))"
    )
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)
    assert [square for square, _ in json.loads(out.stdout)] == [i * i for i in range(5000)]


def test_a_small_job_is_done_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[int] = []

    def may_fork() -> bool:
        asked.append(1)
        return False

    monkeypatch.setattr(twocores, "may_fork", may_fork)
    done = twocores.in_order(list(range(10)), lambda i: i, lambda _: 1, alone_until=100)
    assert done == list(range(10)) and not asked
    done = twocores.in_order(list(range(10)), lambda i: i, lambda _: 1, alone_until=3)
    assert done == list(range(10)) and asked == [1]  # asked once, and went on alone


def test_a_process_with_threads_never_forks() -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert not twocores.may_fork()
    finally:
        stop.set()
        thread.join()


def test_one_core_is_no_reason_to_fork() -> None:
    script = (
        "import os; from vaultsched.adapters import twocores\n"
        "os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}); print(twocores.may_fork())"
    )
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no CPU affinity here")
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)
    assert out.stdout.strip() == b"False"


def test_no_second_process_to_be_had_means_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_fork() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    assert twocores.shared(list(range(50)), lambda i: i + 1) == list(range(1, 51))


def frame(token: int, results: list[Any]) -> bytes:
    data = pickle.dumps((token, results))
    return twocores._LENGTH.pack(len(data)) + data


@pytest.mark.parametrize(
    ("written", "whole"),
    [
        ([frame(1, ["c", "d"]), frame(0, ["a", "b"])], True),
        ([frame(0, ["a", "b"]), frame(0, ["a", "b"])], False),  # a group twice
        ([frame(0, ["a"])], False),  # a group's results, not all of them
        ([frame(2, ["e"])], False),  # no such group
        ([frame(0, ["a", "b"]), twocores._LENGTH.pack(5) + b"junk!"], False),  # garbled
        ([frame(0, ["a", "b"]), frame(1, ["c", "d"])[:-1]], False),  # cut short
        ([twocores._LENGTH.pack(3)], False),  # a length, and nothing after
    ],
    ids=["whole", "twice", "short group", "no group", "garbled", "cut short", "length only"],
)
def test_results_are_taken_whole_or_not_at_all(written: list[bytes], whole: bool) -> None:
    """What the second process hands back, frame by frame, split anywhere across reads."""
    read_end, write_end = os.pipe()
    received = twocores._Received(read_end, [(0, 2), (2, 4)])
    data = b"".join(written)
    try:
        for at in range(0, len(data), 7):  # a frame across several reads
            os.write(write_end, data[at : at + 7])
            received.take()
        os.close(write_end)
        received.finish()
    finally:
        os.close(read_end)
    assert received.whole == whole
    if whole:
        assert received.done == {0: "a", 1: "b", 2: "c", 3: "d"}


def test_results_larger_than_a_pipe_holds_come_whole() -> None:
    script = (
        "import json, os; from vaultsched.adapters import twocores\n"
        "done = twocores.shared(list(range(3000)), lambda i: 'x' * 2000 + str(i))\n"
        "print(json.dumps([d[2000:] for d in done]))"
    )
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)
    assert json.loads(out.stdout) == [str(i) for i in range(3000)]
