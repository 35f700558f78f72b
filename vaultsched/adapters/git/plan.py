"""What a commit of vaultsched's edits holds, worked out from what git holds now.

A commit holds only vaultsched's own bytes. The person may have changed a note we write, staged
or not; `git add` would take their change along. So for each file, the pure edit vaultsched
made on disk (`Edit`) is applied again to the committed version, and to the staged version
when that differs, and the person's working tree is never read into a commit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from vaultsched.adapters.git.plumbing import Plumbing
from vaultsched.core.blocks import has_conflict_markers

log = logging.getLogger("vaultsched.adapters.git")

_REGULAR = ("100644", "100755")


@dataclass(frozen=True)
class Edit:
    """vaultsched's change to one file, as a commit must hold it.

    `apply` is the pure transform vaultsched applied on disk (a block spliced in, one property
    set). The commit holds it applied to the committed version, so a change of the person's
    that is not committed yet stays theirs. `apply=None`: the file is vaultsched's own (the
    ledger), committed whole from disk. `create`: a file git does not have may be added with
    `apply("")` (a digest); otherwise a note not yet in git is the person's to commit.
    """

    path: str
    apply: Callable[[str], str] | None = None
    create: bool = False


@dataclass(frozen=True)
class Entry:
    mode: str
    sha: str


CONFLICTED = Entry("", "")  # the index holds merge stages for the path: never touched


@dataclass(frozen=True)
class Change:
    path: str
    read_index: Entry | None  # the person's index entry the change was worked out from
    commit: Entry | None  # what the commit's tree gets (None: HEAD's entry stays)
    index: Entry | None  # what the person's index gets (None: left as it is)


@dataclass(frozen=True)
class Plan:
    head: str | None
    changes: tuple[Change, ...]


class _Refused(Exception):
    """The edit cannot be applied to the version git holds: leave that file out this time."""


@dataclass
class Planner:
    git: Plumbing
    _told: set[tuple[str, str]] = field(default_factory=set, repr=False)

    def plan(self, edits: Sequence[Edit]) -> Plan:
        """What the commit and the person's index get for each file, from what git holds now."""
        head = self.git._head()
        paths = [e.path for e in edits]
        in_head = tree_entries(self.git, head, paths)
        in_index = index_entries(self.git, paths)
        blobs = _blobs(self.git, {e.sha for e in [*in_head.values(), *in_index.values()] if e.sha})
        new = _NewBlobs()
        drafts = []
        for edit in edits:
            try:
                drafts.append(
                    self._draft(edit, in_head.get(edit.path), in_index.get(edit.path), blobs, new)
                )
            except _Refused as exc:
                self._tell(edit.path, str(exc))
        stored = new.store(self.git)
        return Plan(head, tuple(draft.change(stored) for draft in drafts))

    def _draft(
        self,
        edit: Edit,
        head: Entry | None,
        index: Entry | None,
        blobs: Mapping[str, bytes],
        new: _NewBlobs,
    ) -> _Draft:
        if index is CONFLICTED:
            raise _Refused("has unresolved merge conflicts in the index: not committed")
        if edit.apply is None:  # vaultsched's own file: ours whole, in the commit and the index
            mode = head.mode if head is not None else "100644"
            whole = new.entry(mode, (self.git.root / edit.path).read_bytes())
            return _Draft(edit.path, head, index, whole, whole)
        if head is None and index is None and not edit.create:
            raise _Refused("is not in git yet: left for you to commit (its runs are in the ledger)")
        committed = None
        if head is not None or edit.create:
            committed = self._applied(edit.apply, head, blobs, new)
        if index == head:  # nothing staged: the index follows the commit
            staged = committed
        elif index is None:  # the person staged its deletion: theirs to commit
            staged = None
        else:  # the person's staged version, with our edit in it too
            staged = self._applied(edit.apply, index, blobs, new)
        return _Draft(edit.path, head, index, committed, staged)

    def _applied(
        self,
        apply: Callable[[str], str],
        entry: Entry | None,
        blobs: Mapping[str, bytes],
        new: _NewBlobs,
    ) -> Entry:
        """`entry`'s text (nothing, if None) with the edit applied, as a blob to store."""
        if entry is not None and entry.mode not in _REGULAR:
            raise _Refused("is not a regular file in git: not committed")
        try:
            text = blobs[entry.sha].decode("utf-8") if entry is not None else ""
        except KeyError:
            raise _Refused("cannot be read from git: not committed") from None
        except UnicodeDecodeError:
            raise _Refused("is not UTF-8 in git: not committed") from None
        if has_conflict_markers(text):
            raise _Refused("has git conflict markers in git: not committed until resolved")
        try:
            edited = apply(text)
        except Exception as exc:  # whatever the edit raises, the person's bytes stay out
            raise _Refused(f"vaultsched's edit does not apply to it in git ({exc})") from exc
        if entry is not None and edited == text:
            return entry
        mode = entry.mode if entry is not None else "100644"
        return new.entry(mode, edited.encode("utf-8"))

    def _tell(self, path: str, why: str) -> None:
        """Said once per file and reason: it holds for every later commit too."""
        if (path, why) not in self._told:
            self._told.add((path, why))
            log.warning("%s %s", path, why)


def _new(entry: Entry | None, current: Entry | None) -> Entry | None:
    """`entry` if it changes `current`, else None (nothing to write)."""
    return entry if entry != current else None


_UNSTORED = "unstored:"  # the sha of a blob a plan still has to store: no sha looks so


@dataclass
class _NewBlobs:
    """The blobs a plan makes, stored together once it is worked out (one git call)."""

    _slots: dict[bytes, str] = field(default_factory=dict)

    def entry(self, mode: str, data: bytes) -> Entry:
        """An entry for `data`, its sha to be known once `store` has run."""
        return Entry(mode, self._slots.setdefault(data, f"{_UNSTORED}{len(self._slots)}"))

    def store(self, git: Plumbing) -> dict[str, str]:
        """Slot -> the sha git gave its blob."""
        return dict(zip(self._slots.values(), git.store_all(list(self._slots)), strict=True))


@dataclass(frozen=True)
class _Draft:
    """A file's change before its new blobs are stored: whether it changes anything is known
    by sha, so only afterwards (a ledger file git holds as it is changes nothing)."""

    path: str
    head: Entry | None
    index: Entry | None
    commit: Entry | None  # what the commit's tree would hold
    staged: Entry | None  # what the person's index would hold

    def change(self, stored: Mapping[str, str]) -> Change:
        commit, staged = (_stored(e, stored) for e in (self.commit, self.staged))
        return Change(self.path, self.index, _new(commit, self.head), _new(staged, self.index))


def _stored(entry: Entry | None, stored: Mapping[str, str]) -> Entry | None:
    if entry is None or not entry.sha.startswith(_UNSTORED):
        return entry
    return Entry(entry.mode, stored[entry.sha])


def tree_entries(git: Plumbing, head: str | None, paths: Sequence[str]) -> dict[str, Entry]:
    if head is None or not paths:
        return {}
    out = git._exec(["ls-tree", "-r", "-z", "--full-tree", head, "--", *paths]).decode()
    entries = {}
    for record in filter(None, out.split("\0")):
        meta, path = record.split("\t", 1)
        mode, kind, sha = meta.split()
        if kind == "blob":
            entries[path] = Entry(mode, sha)
    return entries


def index_entries(
    git: Plumbing, paths: Sequence[str], env: Mapping[str, str] | None = None
) -> dict[str, Entry]:
    if not paths:
        return {}
    out = git._exec(["ls-files", "-s", "-z", "--", *paths], env=env).decode()
    entries: dict[str, Entry] = {}
    for record in filter(None, out.split("\0")):
        meta, path = record.split("\t", 1)
        mode, sha, stage = meta.split()
        entries[path] = Entry(mode, sha) if stage == "0" else CONFLICTED
    return entries


def _blobs(git: Plumbing, shas: set[str]) -> dict[str, bytes]:
    if not shas:
        return {}
    wanted = sorted(shas)
    out = git._exec(["cat-file", "--batch"], input="".join(f"{s}\n" for s in wanted).encode())
    blobs, position = {}, 0
    for sha in wanted:
        header_end = out.index(b"\n", position)
        header = out[position:header_end].split()
        position = header_end + 1
        if len(header) != 3:  # "<sha> missing": a broken repository; that file is refused
            continue
        size = int(header[2])
        blobs[sha] = out[position : position + size]
        position += size + 1
    return blobs
