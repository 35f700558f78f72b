"""The vault on disk: where it is, which notes count, and the index of its tasks."""

from __future__ import annotations

import operator
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from pathlib import Path

from vaultsched.adapters import twocores
from vaultsched.adapters.config import Config
from vaultsched.adapters.indexcache import ORDINARY, IndexCache, Tally
from vaultsched.adapters.notefile import (
    NotRegularFile,
    NotUtf8Error,
    kind_of,
    link_on_path,
    read_front_matter,
    read_front_matter_opened,
)
from vaultsched.core import layout
from vaultsched.core.contain import internal_problem
from vaultsched.core.errors import VaultschedError
from vaultsched.core.model import Problem, Task
from vaultsched.core.planner import Unplannable, task_fires
from vaultsched.core.taskfile import NOT_A_TASK, Parsed, may_be_task, parse_task, task_id
from vaultsched.core.workflow import TaskNames, after_graph

# Sync tools' duplicates: "Note (Conflicted copy laptop 2024…).md" (Obsidian Sync, Dropbox),
# "Note.sync-conflict-20240101-120000-ABCDEF.md" (Syncthing), "Note (conflicted copy).md".
_CONFLICT_COPY = re.compile(r"\(.*conflicted copy.*\)\.md$|\.sync-conflict-[^/]*\.md$", re.I)


@dataclass(frozen=True)
class Vault:
    root: Path
    config: Config
    host: str

    def path(self, rel: str) -> Path:
        return self.root / rel

    @property
    def firing_host(self) -> str | None:
        """Whose tasks this host's daemon fires: those its `host:` allows here, or, when a
        worker pool runs them (which routes each by its `host:`), every task: None."""
        return None if self.config.executor.pool else self.host


def locate_vault(path: str | os.PathLike[str] | None) -> Path:
    """The vault's root: `--vault`, else `$VAULTSCHED_VAULT` (each must be a vault), else the
    nearest folder at or above the current one that holds `.obsidian/` or `.vaultsched/`, as
    git finds its repository."""
    given = path or os.environ.get("VAULTSCHED_VAULT")
    if not given:
        return _discover()
    chosen = Path(given).expanduser()
    if not chosen.is_dir():
        raise VaultschedError(f"not a vault: {chosen} is not a folder")
    root = chosen.resolve()
    if is_vault(root):
        return root
    outer = enclosing_vault(root.parent)
    if outer is not None:  # `init` here would make a vault inside a vault
        raise VaultschedError(
            f"not a vault: {root} is inside the vault {outer} (use --vault {outer})"
        )
    raise VaultschedError(
        f"not a vault: {root} has neither .obsidian/ nor {layout.DIR}/ "
        f"(run `vaultsched init {chosen}` to make it one)"
    )


def is_vault(folder: Path) -> bool:
    return (folder / ".obsidian").is_dir() or (folder / layout.DIR).is_dir()


def enclosing_vault(folder: Path) -> Path | None:
    """The nearest vault at or above `folder`, if any."""
    return next((f for f in (folder, *folder.parents) if is_vault(f)), None)


def _discover() -> Path:
    try:
        here = Path.cwd()
    except FileNotFoundError:
        raise VaultschedError("not a vault: the current folder no longer exists") from None
    found = enclosing_vault(here)
    if found is None:
        raise VaultschedError(
            f"not a vault: no .obsidian/ or {layout.DIR}/ in {here} or any folder above it "
            "(use --vault PATH, or make one with `vaultsched init PATH`)"
        )
    return found


def is_conflict_copy(rel_path: str) -> bool:
    # Run for every note of the vault: an ASCII path without "onflict" cannot match (only
    # non-ASCII letters fold to ASCII ones), and the test costs a fifth of the search.
    if rel_path.isascii() and "onflict" not in rel_path.lower():
        return False
    return bool(_CONFLICT_COPY.search(rel_path))


def is_ignored(rel_path: str, digest_folder: str) -> bool:
    """True for paths vaultsched never treats as notes."""
    # Plain string work: this runs for every file of the vault on a cold index.
    parts = rel_path.split("/")
    if not rel_path.endswith(".md") or any(part.startswith(".") for part in parts):
        return True
    folder = [p for p in digest_folder.strip("/").split("/") if p]
    return parts[: len(folder)] == folder or is_conflict_copy(rel_path)


@dataclass(frozen=True)
class Skipped:
    path: str
    reason: str


def iter_notes(vault: Vault, skipped: list[Skipped] | None = None) -> Iterator[str]:
    """Vault-relative paths of every note that counts, in a stable order.

    Symlinks are never followed: one that resolves outside the vault is out of bounds,
    and one that resolves inside is the same note as its target, indexed under the target's path
    (following it would index one task twice and fire it twice).

    Only notes that can be tasks (`[tasks] folders` and `exclude`) count: the others are not
    vaultsched's business, and a folder that can hold no task is not walked.
    """
    for rel, _ in _walk(vault.root, vault.config, skipped):
        yield rel


_NAME = operator.attrgetter("name")


def _walk(
    root: Path, config: Config, skipped: list[Skipped] | None
) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """`iter_notes`, each with its scandir entry."""
    return _walk_from([(str(root), "", False)], config, skipped)


_Folder = tuple[str, str, bool]  # (path, vault-relative path and "/", the digest folder?)


def _walk_from(
    pending: list[_Folder], config: Config, skipped: list[Skipped] | None
) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """The notes of the trees under `pending`. A stack, not recursion: a note deep in the
    tree is handed up once, not once per folder level (a cold index of a large vault is
    mostly this walk). A folder's notes come first, then its subfolders' (as os.walk did)."""
    while pending:
        notes, folders = _listed(pending.pop(), config, skipped)
        yield from notes
        pending.extend(reversed(folders))


def _listed(
    folder: _Folder, config: Config, skipped: list[Skipped] | None
) -> tuple[list[tuple[str, os.DirEntry[str]]], list[_Folder]]:
    """One step of the walk: the folder's notes and the subfolders to walk, in order."""
    path, rel_dir, digests = folder
    if digests:
        if skipped is not None:
            skipped.extend(Skipped(t, IN_DIGESTS) for t in _commands_in(Path(path), rel_dir))
        return [], []
    try:
        with os.scandir(path) as listing:
            entries = sorted(listing, key=_NAME)
    except OSError:
        return [], []
    folders = [e for e in entries if e.is_dir(follow_symlinks=False)]
    notes = _notes_in(entries, {e.name for e in folders}, rel_dir, config, skipped)
    return notes, _subfolders(folders, rel_dir, config, skipped is not None)


def _notes_in(
    entries: list[os.DirEntry[str]],
    folder_names: set[str],
    rel_dir: str,
    config: Config,
    skipped: list[Skipped] | None,
) -> list[tuple[str, os.DirEntry[str]]]:
    # scandir's entries know their type without a stat call per file; symlinks are neither
    # followed nor listed.
    notes = []
    holds = None if config.tasks.holds_every_note else config.tasks.holds
    # What `is_conflict_copy` and the UTF-8 check ask of the whole path, asked of the folder's
    # once: run for each note of the vault, they are mostly asked of plain ASCII names.
    dir_ascii = rel_dir.isascii()
    dir_plain = dir_ascii and "onflict" not in rel_dir.lower()  # "/" ends it: none spans both
    for entry in entries:
        name = entry.name
        # The folders on the way down were checked already (`is_ignored` in `_subfolders`):
        # only the file's own name is left to check, without splitting its path again.
        if name in folder_names or not name.endswith(".md") or name.startswith("."):
            continue
        rel = f"{rel_dir}{name}"
        if holds is not None and not holds(rel):
            continue
        ascii_name = dir_ascii and name.isascii()
        plain = dir_plain and ascii_name and "onflict" not in name.lower()
        if not plain and is_conflict_copy(rel):
            if skipped is not None:
                skipped.append(Skipped(rel, "sync-conflict copy: never run"))
            continue
        if not entry.is_file(follow_symlinks=False):  # the entry's type: no stat per note
            if skipped is not None and not entry.is_symlink():
                kind = kind_of(entry.stat(follow_symlinks=False).st_mode)
                skipped.append(Skipped(_printable(rel), str(NotRegularFile(kind).strerror)))
            continue
        if not ascii_name and not _utf8_name(rel):
            if skipped is not None:
                skipped.append(Skipped(_printable(rel), "file name is not UTF-8"))
            continue
        notes.append((rel, entry))
    return notes


def _subfolders(
    folders: list[os.DirEntry[str]], rel_dir: str, config: Config, with_digests: bool
) -> list[_Folder]:
    """The subfolders to walk, in order; the digest folder too (`with_digests`), only to
    list the tasks misplaced there."""
    found = []
    for entry in folders:
        rel = f"{rel_dir}{entry.name}"
        if entry.name.startswith(".") or not config.tasks.reaches_into(rel):
            continue
        if not is_ignored(f"{rel}/x.md", config.digest.folder):
            found.append((entry.path, f"{rel}/", False))
        elif rel == config.digest.folder and with_digests:
            found.append((entry.path, rel, True))
    return found


# A synced config can point `[digest] folder` at the task folder: its tasks then silently stop.
IN_DIGESTS = "inside the digest folder: not a task (vaultsched writes digests there)"
_PEEK = 8192


def _commands_in(folder: Path, rel_dir: str) -> list[str]:
    """Notes in the digest folder whose front matter has a `command` key: the person meant a
    task, and must see why it never runs. Regular files only, never through a link."""
    found = []
    for dirpath, dirnames, filenames in os.walk(folder):  # os.walk does not follow links
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        here = Path(dirpath)
        for name in sorted(n for n in filenames if n.endswith(".md") and not n.startswith(".")):
            if _has_command(here / name):
                found.append(f"{rel_dir}/{(here / name).relative_to(folder).as_posix()}")
    return found


def _has_command(path: Path) -> bool:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        head = handle.read(_PEEK).decode("utf-8", errors="replace")
    if not head.startswith("---"):
        return False
    front = head.split("\n---", 1)[0]
    return any(line.startswith("command:") for line in front.splitlines())


OUTSIDE_TASKS = "not a task: outside the task folders ([tasks] in .vaultsched/config.toml)"


def outside_tasks(vault: Vault, rel: str) -> Problem | None:
    """Why a note asked about by name is not a task, when `[tasks]` keeps it from being one
    though its front matter has a `command`."""
    if vault.config.tasks.holds(rel) or is_ignored(rel, vault.config.digest.folder):
        return None
    return Problem(rel, 1, OUTSIDE_TASKS, "note") if _has_command(vault.root / rel) else None


def _utf8_name(rel: str) -> bool:
    try:
        rel.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(rel: str) -> str:
    return rel.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def read_note(vault: Vault, rel: str) -> Parsed:
    """Parse one note's front matter; unreadable notes become problems, never exceptions.

    The containment boundary for reading and parsing: whatever one note holds (or whatever
    bug a parser has), the outcome is a `Parsed` for that note and the vault goes on.
    """
    return reread_note(vault, rel, None).parsed


@dataclass(frozen=True)
class NoteRead:
    """What a note said when it was read: its front matter (`read` False: it could not be
    read, and `parsed` says why) and the parse of it."""

    front: str | None
    parsed: Parsed
    read: bool = True


def reread_note(vault: Vault, rel: str, last: NoteRead | None) -> NoteRead:
    """`read_note`, and `last` itself if the note's front matter is still the one `last` was
    parsed from: a parse depends on the front matter alone (and the note's path and the
    config, which do not change), so the same text is the same `Parsed`. The daemon's own
    write of a run block leaves the front matter as it was, and costs no parse."""
    if not vault.config.tasks.holds(rel):  # not read at all: not vaultsched's business
        return NoteRead(None, NOT_A_TASK, read=False)
    if not rel.isascii() and not _utf8_name(rel):  # as the walk: such a note never counts
        problem = Problem(_printable(rel), 1, "file name is not UTF-8", "warning")
        return NoteRead(None, Parsed(False, None, (problem,)), read=False)
    folder = rel.rpartition("/")[0]
    if folder and link_on_path(vault.root, folder):  # swapped for a link since the walk
        problem = Problem(rel, 1, "a folder on its path is a symlink: not read", "warning")
        return NoteRead(None, Parsed(False, None, (problem,)), read=False)
    try:
        front = read_front_matter(f"{vault.root}/{rel}")
    except Exception as exc:  # the boundary: see `contain`
        return NoteRead(None, _unread(rel, exc), read=False)
    if last is not None and last.read and last.front == front:
        return last
    if front is None:  # most notes: no front matter, nothing to parse
        return NoteRead(None, NOT_A_TASK)
    return NoteRead(front, parse_note(rel, front, vault.config))


def _unread(rel: str, exc: Exception) -> Parsed:
    """What a note that could not be read is."""
    if isinstance(exc, FileNotFoundError):
        return NOT_A_TASK  # gone since it was listed: a deletion, not a problem
    if isinstance(exc, NotUtf8Error):
        return Parsed(False, None, (Problem(rel, 1, "not UTF-8: skipped", "warning"),))
    if isinstance(exc, NotRegularFile):
        if exc.kind in ("a symlink", "a folder"):
            return NOT_A_TASK  # never followed or read, as the walk never lists one as a note
        return Parsed(False, None, (Problem(rel, 1, str(exc.strerror), "warning"),))
    if isinstance(exc, OSError | ValueError):
        return Parsed(True, None, (Problem(rel, 1, f"cannot read front matter: {exc}"),))
    return Parsed(True, None, (internal_problem(rel, "reading", exc),))


def parse_note(rel: str, yaml_text: str | None, config: Config) -> Parsed:
    """`parse_task` behind the boundary: a parser's bug is this note's problem, not an escape.
    A note where `[tasks]` allows no task is none, whatever it holds."""
    if not config.tasks.holds(rel):
        return NOT_A_TASK
    try:
        return parse_task(rel, yaml_text, config)
    except Exception as exc:  # the boundary: see `contain`
        return Parsed(True, None, (internal_problem(rel, "parsing", exc),))


@dataclass
class Index:
    """Every task note of the vault. `invalid` holds task notes that failed validation."""

    tasks: dict[str, Task] = field(default_factory=dict)
    invalid: dict[str, tuple[Problem, ...]] = field(default_factory=dict)
    skipped: list[Skipped] = field(default_factory=list)
    # Upstream task id -> the tasks that run after it (`after`), valid tasks only.
    downstream: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # Keyed by note so that replacing one note's problems costs the same in a vault of any size.
    _problems: dict[str, tuple[Problem, ...]] = field(default_factory=dict)
    # Tasks that parsed but are held out for a problem with their `after` (a target that is
    # missing, a cycle): whether they run depends on other notes, so `link` looks again.
    # Each with the note's own problems (warnings), which it gets back.
    _unlinked: dict[str, tuple[Task, tuple[Problem, ...]]] = field(default_factory=dict)
    # False once a note was added, discarded or made invalid since the last `link`.
    _linked: bool = False
    # Since the last `link`: each note added or discarded, with the valid task it stood as at
    # that `link` (None: none); None, not a dict, when the whole graph must be walked again.
    _touched: dict[str, Task | None] | None = field(default=None, compare=False, repr=False)
    # The ids the last `link` resolved `after` among, and their `TaskNames`.
    _names: tuple[frozenset[str], TaskNames] | None = field(default=None, compare=False, repr=False)

    @property
    def problems(self) -> list[Problem]:
        return [p for found in self._problems.values() for p in found]

    def add(self, rel: str, parsed: Parsed) -> None:
        ident = task_id(rel)
        self.discard(ident)
        if parsed.problems:
            self._problems[ident] = parsed.problems
        if parsed.task is not None:
            self.tasks[parsed.task.id] = parsed.task
        elif parsed.is_task:
            self.invalid[ident] = parsed.errors

    def invalidate(self, ident: str, problem: Problem) -> None:
        """A task that failed after it was parsed (planning it raised): invalid, with `problem`,
        until its note changes and is read again."""
        self._linked = False
        self._touched = None
        self.tasks.pop(ident, None)
        self.invalid[ident] = (*self.invalid.get(ident, ()), problem)
        self._problems[ident] = (*self._problems.get(ident, ()), problem)

    def discard(self, ident: str) -> None:
        self._linked = False
        if self._touched is not None:
            self._touched.setdefault(ident, self.tasks.get(ident))
        self.tasks.pop(ident, None)
        self.invalid.pop(ident, None)
        self._problems.pop(ident, None)
        self._unlinked.pop(ident, None)

    def link(self) -> None:
        """Resolve every task's `after` across the vault, after any note changed: a task
        naming no task (or several), or in a cycle, is invalid until the vault changes again;
        one that was held out and now resolves is back. Nothing to do (a whole vault's graph
        not walked again) while no note was added, discarded or made invalid since the last."""
        if self._linked:
            return
        self._linked = True
        touched, self._touched = self._touched, {}
        if touched is not None and all(self._links_alike(i, was) for i, was in touched.items()):
            return  # an edit that left every `after` as it was (most edits): the same graph
        for ident, (task, own) in self._unlinked.items():
            self.invalid.pop(ident, None)
            self._problems[ident] = own
            self.tasks[ident] = task
        self._unlinked.clear()
        ids = frozenset(self.tasks.keys() | self.invalid.keys())
        if self._names is None or self._names[0] != ids:
            self._names = (ids, TaskNames(ids))
        edges, problems = after_graph(self.tasks, self.invalid, self._names[1])
        found: dict[str, list[Problem]] = {}
        for problem in problems:
            found.setdefault(task_id(problem.path), []).append(problem)
        for ident, held in found.items():
            own = self._problems.pop(ident, ())
            self._unlinked[ident] = (self.tasks.pop(ident), own)
            self.invalid[ident] = tuple(held)
            self._problems[ident] = (*own, *held)
        downstream: dict[str, list[str]] = {}
        for ident, targets in sorted(edges.items()):
            if ident in self.tasks:
                for target in targets:
                    downstream.setdefault(target, []).append(ident)
        self.downstream = {up: tuple(ids) for up, ids in downstream.items()}

    def _links_alike(self, ident: str, was: Task | None) -> bool:
        """Whether the note `ident`, linked as the valid task `was`, is a valid task again that
        the graph of `after` sees as it saw `was`: the same id, the same `after` on the same
        line. Then `link` would find every edge and every problem it found last time."""
        now = self.tasks.get(ident)
        return (
            was is not None
            and now is not None
            and now.after == was.after
            and now.path == was.path
            and now.key_lines.get("after", 1) == was.key_lines.get("after", 1)
        )

    def holds(self, ident: str, parsed: Parsed) -> bool:
        """True if the note `ident` stands in the index as `add(..., parsed)` left it: adding
        it again would change nothing."""
        if parsed.task is not None:  # valid, not held out by `link`, not made invalid since
            return self.tasks.get(ident) is parsed.task
        if ident in self.tasks or ident in self._unlinked:
            return False
        invalid = parsed.errors if parsed.is_task else None
        return self.invalid.get(ident) == invalid and self._problems.get(ident, ()) == (
            parsed.problems
        )

    def only(self, idents: set[str]) -> Index:
        """A copy holding only these notes' tasks and problems."""
        return Index(
            tasks={i: t for i, t in self.tasks.items() if i in idents},
            invalid={i: p for i, p in self.invalid.items() if i in idents},
            skipped=self.skipped,
            _problems={i: p for i, p in self._problems.items() if i in idents},
        )

    @property
    def ids(self) -> list[str]:
        return sorted({*self.tasks, *self.invalid})

    def resolve(self, name: str) -> str:
        """A task id from an id, a path with `.md`, or the end of one unique in the vault: a
        bare note name (as Obsidian resolves a link) or a path from a folder of the vault
        (`Backup.md` typed in `Tasks/`)."""
        ids = self.ids
        wanted = name.strip().removeprefix("./").removesuffix(".md")
        if wanted in ids:
            return wanted
        matches = [i for i in ids if i.endswith(f"/{wanted}")]
        if not matches:
            matches = [i for i in ids if wanted.lower() in i.lower()]
            hint = f"; did you mean: {', '.join(matches[:8])}" if matches else ""
            raise VaultschedError(f"unknown task {name!r}{hint}")
        if len(matches) > 1:
            raise VaultschedError(f"ambiguous task {name!r}: {', '.join(matches)}")
        return matches[0]

    def task(self, name: str) -> Task:
        """The valid task named `name`; an invalid one is a refusal (exit 1) listing why."""
        ident = self.resolve(name)
        if ident in self.invalid:
            reasons = "; ".join(str(p) for p in self.invalid[ident])
            raise VaultschedError(f"task {ident} is invalid: {reasons}", exit_code=1)
        return self.tasks[ident]


def build_index(vault: Vault, reads: dict[str, NoteRead] | None = None) -> Index:
    """Every note of the vault, read, or taken from the index cache where the note is as the
    cache knew it (its path, size, mtime, ctime and inode); the cache is written back when
    this walk found anything it did not know. `reads` gets what each note that counts said
    (for `reread_note`).

    The walk is cut into stretches (`_stretches`); on a large vault a second process does
    some of them (`twocores`), and what each found is taken in walk order: the same index and
    cache as one process walking it all."""
    index = Index()
    cache = IndexCache.load(vault.root)
    work = partial(_index_stretch, config=vault.config, cache=cache)
    stretches = _stretches(vault.root, vault.config)
    parts = twocores.in_order(stretches, work, _NOTES, _alone_until(stretches))
    parts.reverse()  # taken in walk order, each let go once taken: the identities not held twice
    while parts:
        part = parts.pop()
        index.skipped.extend(part.skipped)
        cache.found.add(part.tally)
        for rel, parsed, front in part.found:
            index.add(rel, parsed)
            if reads is not None:
                reads[rel] = NoteRead(front, parsed, read=front is not None)
    index.link()
    cache.save()
    return index


# Notes a process indexes alone before it shares the rest: a fork and the hand-back cost a
# few milliseconds, which a vault of a few thousand notes does not win back.
ALONE_UNTIL = 3000


def _alone_until(stretches: list[_Stretch]) -> int:
    """ALONE_UNTIL, or none at all where the top of the vault alone holds MIN_STRETCHES folders
    still to walk (the bench vault of 100,000 notes: 606; of 10,000: 85): a vault that large is
    shared from its first stretch, not after 3,000 notes read alone (30-50 ms before the fork,
    in a cold `list`). `_stretches` lists no further once it has MIN_STRETCHES, so a vault
    of fewer folders is listed whole, its notes counted, and left to ALONE_UNTIL."""
    trees = sum(1 for stretch in stretches if stretch.tree is not None)
    return 0 if trees >= MIN_STRETCHES else ALONE_UNTIL


# The walk is cut into at least this many stretches where the vault's folders allow, and no
# stretch of one folder's notes holds more than CHUNK notes: a stretch is what one process takes
# at a time, and the last one taken is what the other may wait for.
MIN_STRETCHES = 128
CHUNK = 256


@dataclass(frozen=True)
class _Stretch:
    """Notes of one folder listed already (with what its listing skipped), or a tree still to
    walk (`tree`)."""

    notes: tuple[tuple[str, os.DirEntry[str]], ...] = ()
    skipped: tuple[Skipped, ...] = ()
    tree: _Folder | None = None


@dataclass
class _Part:
    """What a stretch found: skipped files, the cache's tally, and each note that is a task
    or has problems, with its front matter (None: not read)."""

    skipped: list[Skipped]
    tally: Tally
    found: list[tuple[str, Parsed, str | None]]
    notes: int


_NOTES = operator.attrgetter("notes")


def _stretches(root: Path, config: Config) -> list[_Stretch]:
    """The walk, in its order, as stretches: the folders listed from the top down, a level at
    a time, until there are MIN_STRETCHES or no folder is left to list; each folder listed
    becomes its notes (in stretches of CHUNK) and its subfolders' trees."""
    stretches = [_Stretch(tree=(str(root), "", False))]
    grew = True
    while grew and len(stretches) < MIN_STRETCHES:
        grew, deeper = False, list[_Stretch]()
        for at, stretch in enumerate(stretches):
            enough = len(deeper) + len(stretches) - at >= MIN_STRETCHES
            if stretch.tree is None or stretch.tree[2] or enough:  # digests: one step, a leaf
                deeper.append(stretch)
                continue
            deeper += _opened(stretch.tree, config)
            grew = True
        stretches = deeper
    return stretches


def _opened(folder: _Folder, config: Config) -> list[_Stretch]:
    """A folder's tree as the stretches of its notes, then of its subfolders' trees."""
    skipped: list[Skipped] = []
    notes, folders = _listed(folder, config, skipped)
    own = [_Stretch(tuple(notes[at : at + CHUNK])) for at in range(0, len(notes), CHUNK)]
    if skipped:
        own[:1] = [_Stretch(own[0].notes if own else (), tuple(skipped))]
    return [*own, *(_Stretch(tree=sub) for sub in folders)]


def _index_stretch(stretch: _Stretch, config: Config, cache: IndexCache) -> _Part:
    """Each note of the stretch, read, or taken from the cache where it is as the cache
    knew it."""
    part = _Part(list(stretch.skipped), Tally(), [], 0)
    notes = (
        stretch.notes if stretch.tree is None else _walk_from([stretch.tree], config, part.skipped)
    )
    tally, found, count = part.tally, part.found, 0
    # A stat per note only where it can spare a read; cold, the read's own stat is kept.
    lookup = cache.lookup if cache.known else None
    read = read_front_matter_opened
    # The notes read that are ordinary, with their stats as read: kept in the cache in one go
    # (`remember_ordinary`), in walk order, before any note the cache had (`lookup` keeps
    # those at once). Most notes of a cold index end here: one list append each.
    ordinary: list[tuple[str, os.stat_result]] = []
    for rel, entry in notes:
        count += 1
        if lookup is not None:
            if ordinary:
                cache.remember_ordinary(ordinary, tally)
                ordinary.clear()
            front = lookup(rel, entry, tally)
            if front == ORDINARY:
                continue
            if front is not None:
                parsed = parse_note(rel, front, config)
                if parsed.is_task or parsed.problems:
                    found.append((rel, parsed, front))
                continue
        try:
            # The entry's path is the vault's, joined as the walk went down: `root/rel`.
            front, opened = read(entry.path)
        except Exception as exc:  # the boundary: see `contain`
            parsed = _unread(rel, exc)
            if parsed.is_task or parsed.problems:
                found.append((rel, parsed, None))
            continue
        # Most notes: no front matter, or one that names no task key: nothing to parse.
        if front is None or not may_be_task(front):
            ordinary.append((rel, opened))
            continue
        parsed = parse_note(rel, front, config)
        if parsed.is_task or parsed.problems:  # a task or a problem always comes of a front
            cache.remember(rel, opened, front or None, tally)
            found.append((rel, parsed, front))
        else:
            ordinary.append((rel, opened))
    if ordinary:
        cache.remember_ordinary(ordinary, tally)
    part.notes = count
    return part


def drop_unplannable(index: Index, now: datetime) -> dict[str, list[datetime]]:
    """Make invalid each task of `index` whose next fire time after `now` cannot be computed,
    so that `validate`, `list` and `doctor` show what the daemon would refuse. The next fire
    time of each task kept (`task_fires(task, now, 1)`), for `list` not to work it out again."""
    fires = {}
    for task in list(index.tasks.values()):
        try:
            fires[task.id] = task_fires(task, now, 1)
        except Unplannable as exc:
            index.invalidate(task.id, exc.problem)
    return fires


def planned_index(vault: Vault, now: datetime) -> Index:
    """The vault's index, with the tasks that cannot be planned from `now` made invalid."""
    index = build_index(vault)
    drop_unplannable(index, now)
    return index
