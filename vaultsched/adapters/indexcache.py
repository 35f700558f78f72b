"""The index cache: what each note of the vault held, kept between starts, so that a start on
an unchanged vault stats every note and reads none.

Each note is known by its identity: path, size, mtime, ctime and inode. An edit changes the
ctime even when it puts the mtime back (nobody can set a ctime), so a note whose identity is
the one cached holds what it held then. For an ordinary note the cache keeps only that it is
one; for a task note, or a note with problems, its front matter text, parsed again at each start
(`vault.parse_note`, with the config of the day): whether a note is ordinary depends on its
text alone, so the index built from the cache is the one a full read builds.

An identity is kept as its 128-bit BLAKE2b digest, and the ordinary notes' digests as one
packed string (base64, in the JSON): the cache of a vault of 100,000 notes is 2 MB, not 8, and
is held as 100,000 digests, not as strings of a path and four numbers built twice over (which
took about 35 MB more at the peak, in a daemon that holds 50). Two identities that differ share
a digest only by a 2^-128 chance.

The cache sits in the vault (`.vaultsched/state/`), where a sync tool can write anything: it is
untrusted input. It is JSON, never pickle; it is signed (HMAC-SHA256) with a random key kept
per user outside the vault (`layout.index_cache_key`), over the format number, the vaultsched
version and the vault's path as well as the notes. A cache that is missing, truncated, corrupt,
from another version or another vault, or forged is ignored: every note is read.
"""

from __future__ import annotations

import binascii
import contextlib
import json
import logging
import os
import stat
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vaultsched import __version__
from vaultsched.adapters import statefs
from vaultsched.core import layout

log = logging.getLogger(__name__)

# Bump when what is cached, or what makes a note ordinary, changes.
FORMAT = 2
KEY_BYTES = 32
MAX_BYTES = 256 * 1024 * 1024  # far past a million notes; a larger file is refused unread
# A note changed within this long before the walk began is not cached: a second change in the
# same tick of the file system's clock (2 s on FAT) could leave its identity as it was.
RACY_NS = 3_000_000_000
ORDINARY = ""  # what an ordinary note is cached as: no text a task note can have
DIGEST_BYTES = 16


_NUMBERS = struct.Struct("<4Q").pack
_WORD = (1 << 64) - 1


def identity(rel: str, info: os.stat_result) -> bytes:
    """The digest of the note's path and stat: four numbers of 8 bytes, then the path, so two
    different notes or stats never make the same bytes. Numbers are taken modulo 2^64 (a
    hostile note's mtime can be set past 2262, or before 1970): two stats of one note can only
    wrap to the same if centuries apart, and an edit moves the ctime to the time of the edit."""
    try:  # a number from 0 to 2^64 - 1 is its own value modulo 2^64 (once per note, warm)
        numbers = _NUMBERS(info.st_size, info.st_mtime_ns, info.st_ctime_ns, info.st_ino)
    except struct.error:  # struct refuses any other
        numbers = _numbers_of(info)
    packed = numbers + rel.encode("utf-8", "surrogatepass")
    return (_blake2b or _load_blake2b())(packed, digest_size=DIGEST_BYTES).digest()


def _numbers_of(info: os.stat_result) -> bytes:
    """The four numbers of `identity`, each modulo 2^64."""
    word = _WORD
    return _NUMBERS(
        info.st_size & word, info.st_mtime_ns & word, info.st_ctime_ns & word, info.st_ino & word
    )


_blake2b: Callable[..., Any] | None = None


def _load_blake2b() -> Callable[..., Any]:
    """hashlib's BLAKE2b, imported on the first identity (an empty vault never loads hashlib;
    an `import` statement per note cost a lookup in sys.modules each)."""
    global _blake2b  # noqa: PLW0603 (loaded once, then a global read per note)
    from hashlib import blake2b

    _blake2b = blake2b
    return blake2b


@dataclass
class Tally:
    """What a stretch of the walk found true, in walk order: the ordinary notes' identities end
    to end (16 bytes a note, not an object each), the others' front matter; `hits`: how many
    came from the cache as loaded; `read`: a note read was kept. Small and plain, so that a
    second process can hand its stretch back (see `vault._shared`)."""

    ordinary: bytearray = field(default_factory=bytearray)
    fronts: dict[bytes, str] = field(default_factory=dict)
    hits: int = 0
    read: bool = False

    def keep(self, key: bytes, front: str) -> None:
        if front == ORDINARY:
            self.ordinary += key
        else:
            self.fronts[key] = front

    def add(self, later: Tally) -> None:
        """`later`'s notes after these: the tally of the two stretches walked one after the
        other."""
        self.ordinary += later.ordinary
        self.fronts.update(later.fronts)
        self.hits += later.hits
        self.read = self.read or later.read


@dataclass
class IndexCache:
    """One start's use of the cache: `known` as loaded, and what this walk found true
    (`found`, the tallies of its stretches added up in walk order)."""

    root: Path
    known: dict[bytes, str] = field(default_factory=dict)  # identity -> front or ORDINARY
    found: Tally = field(default_factory=Tally)
    # Notes changed since this are not kept (RACY_NS); taken before the walk begins.
    racy_from: int = field(default_factory=lambda: time.time_ns() - RACY_NS)

    @classmethod
    def load(cls, root: Path) -> IndexCache:
        cache = cls(root)  # `racy_from` first: the walk comes after it
        cache.known = _load(root)
        return cache

    def lookup(self, rel: str, entry: os.DirEntry[str], tally: Tally) -> str | None:
        """The front matter cached for the note as it is now (ORDINARY for an ordinary note),
        or None if it must be read; a hit is counted in `tally`. Once per note of the walk."""
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            return None
        if not stat.S_ISREG(info.st_mode):
            return None
        key = identity(rel, info)
        found = self.known.get(key)
        if found is not None:
            tally.hits += 1
            tally.keep(key, found)
        return found

    def remember(self, rel: str, opened: os.stat_result, front: str | None, tally: Tally) -> None:
        """What a note held when read, into `tally`: `front` for a task note or a note with
        problems, ORDINARY for any other (None: nothing to keep). `opened` is its stat before
        the read.

        Every change to a file moves its ctime to the time of the change, so the ctime alone
        tells whether a change could come within the same tick of the file system's clock."""
        if front is not None and opened.st_ctime_ns < self.racy_from:
            tally.read = True
            tally.keep(identity(rel, opened), front)

    def remember_ordinary(self, notes: list[tuple[str, os.stat_result]], tally: Tally) -> None:
        """`remember(rel, opened, ORDINARY, tally)` for each of `notes`, in order: what most
        notes of a cold index come to, kept in one call a stretch rather than one a note."""
        racy_from, ordinary, pack, blake2b = self.racy_from, tally.ordinary, _NUMBERS, _blake2b
        if blake2b is None:
            blake2b = _load_blake2b()
        size = DIGEST_BYTES
        for rel, opened in notes:  # `identity`, written out: once per note of the vault
            if opened.st_ctime_ns < racy_from:
                tally.read = True
                try:  # a number from 0 to 2^64 - 1 is its own value modulo 2^64
                    numbers = pack(
                        opened.st_size, opened.st_mtime_ns, opened.st_ctime_ns, opened.st_ino
                    )
                except struct.error:  # any other: as `identity` takes it
                    numbers = _numbers_of(opened)
                packed = numbers + rel.encode("utf-8", "surrogatepass")
                ordinary += blake2b(packed, digest_size=size).digest()

    def save(self) -> None:
        """Write what this walk found, if it differs from what was loaded (each note is walked
        once, and only one note has its path: all of `known` found again, and nothing read
        kept, is the cache as it was). Atomic: of two processes writing at once, the last wins,
        and each wrote only what it found true."""
        found = self.found
        unchanged = not found.read and found.hits == len(self.known)
        if unchanged or not _is_folder(self.root / layout.DIR):
            return  # nothing new, or not a vault vaultsched has set up: leave it as it is
        try:
            key = _key(create=True)
            if key is not None:
                statefs.prepare_state_dir(self.root)
                data = _sealed(key, self._body())
                statefs.write_atomic(self.root, layout.INDEX_CACHE, data, durable=False)
        except statefs.LinkRefused as exc:
            statefs.warn_refused(exc, "index cache not written")
        except OSError as exc:  # a read-only vault, a full disk: the next start reads more
            log.info("index cache not written: %s", exc)

    def _body(self) -> bytes:
        """The payload: format, version, vault, the ordinary notes' digests end to end in
        base64, the others' front matter by digest in hex; JSON as `json.dumps(...,
        separators=(",", ":"))` writes it, byte for byte, but the base64 put in as it is: it
        has nothing JSON escapes, and passing its 2 MB (100,000 notes) through json as text
        took half of the cache's writing, at the end of a cold index."""
        head = {"format": FORMAT, "vaultsched": __version__, "vault": str(self.root)}
        fronts = {key.hex(): front for key, front in self.found.fronts.items()}
        return b"".join(
            (
                _json(head)[:-1].encode("ascii"),
                b',"ordinary":"',
                binascii.b2a_base64(self.found.ordinary, newline=False),
                b'","fronts":',
                _json(fronts).encode("ascii"),
                b"}",
            )
        )


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"))


def _sealed(key: bytes, body: bytes) -> bytes:
    """The MAC's hex digits on the first line, then the JSON it signs."""
    return _mac(key, body) + b"\n" + body


def _mac(key: bytes, body: bytes) -> bytes:
    import hashlib  # here and below: an empty vault, no cache, never loads them
    import hmac

    return hmac.new(key, body, hashlib.sha256).hexdigest().encode("ascii")


def _load(root: Path) -> dict[bytes, str]:
    """The cached notes; none (every note is read) for anything but a sound, signed cache."""
    try:
        data = statefs.read_bytes(root, layout.INDEX_CACHE, limit=MAX_BYTES)
        key = _key(create=False) if data is not None else None
    except OSError as exc:
        log.info("index cache ignored: %s", exc)
        return {}
    if data is None or key is None:
        return {}
    import hmac

    mac, _, body = data.partition(b"\n")
    del data  # the body alone from here: a large vault's cache is not held twice
    if not hmac.compare_digest(mac, _mac(key, body)):
        log.info("index cache ignored: not signed by this user's key (reading every note)")
        return {}
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError):
        return {}
    del body
    return _notes(payload, root)


def _notes(payload: object, root: Path) -> dict[bytes, str]:
    """The notes of a payload of the expected shape, for this vault and this version."""
    if not isinstance(payload, dict):
        return {}
    header = (payload.get("format"), payload.get("vaultsched"), payload.get("vault"))
    if header != (FORMAT, __version__, str(root)):
        log.info("index cache ignored: written by another version or for another vault")
        return {}
    ordinary, fronts = payload.get("ordinary"), payload.get("fronts")
    if not isinstance(ordinary, str) or not isinstance(fronts, dict):
        return {}
    if not all(type(v) is str and v != ORDINARY for v in fronts.values()):
        return {}
    try:
        packed = binascii.a2b_base64(ordinary, strict_mode=True)
        tasks = {_digest(k): v for k, v in fronts.items()}
    except ValueError:  # not base64, not hex (binascii.Error is one), not a digest's length
        return {}
    if len(packed) % DIGEST_BYTES:
        return {}
    size = DIGEST_BYTES
    known = dict.fromkeys((packed[i : i + size] for i in range(0, len(packed), size)), ORDINARY)
    known.update(tasks)
    return known


def _digest(text: str) -> bytes:
    """A digest from its hex digits (keys of JSON objects are strings)."""
    found = bytes.fromhex(text)
    if len(found) != DIGEST_BYTES:
        raise ValueError(f"not a digest: {text!r}")
    return found


def _is_folder(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


# -- the per-user key ----------------------------------------------------------------------------


def _key(*, create: bool) -> bytes | None:
    """This user's key; made (0600) on first use if `create`. None if there is none, or it is
    not a regular file of the right size: the cache is then neither trusted nor written."""
    path = layout.index_cache_key()
    try:
        return _read_key(path)
    except FileNotFoundError:
        if not create:
            return None
    try:
        return _make_key(path)
    except FileExistsError:  # another process made it first
        return _read_key(path)


def _read_key(path: Path) -> bytes | None:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        key = os.read(fd, KEY_BYTES + 1)
    finally:
        os.close(fd)
    return key if len(key) == KEY_BYTES else None


def _make_key(path: Path) -> bytes:
    """Written whole under a temp name, then linked into place: no process ever reads a key
    half written, and of two made at once, one wins and both use it."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    import secrets

    key = secrets.token_bytes(KEY_BYTES)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    return key
