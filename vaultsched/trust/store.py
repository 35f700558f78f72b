"""Trust, like `direnv allow`: a task runs only once this user has approved what it would run.

A task note is code execution, and anyone who can write to the vault (a sync tool, a git pull,
a plugin) could otherwise run commands on every machine with a daemon. What is trusted is a
fingerprint (`fingerprint.py`) of the task's settings, its body when that is piped to the
command, and every vault file the command can be seen to reach (`reach.py`).

The store lives outside the vault (`$XDG_STATE_HOME/vaultsched/trust.json`), and the policy can
be relaxed only from outside it (`VAULTSCHED_TRUST=any`, `~/.config/vaultsched/config.toml`):
a vault must not be able to vouch for itself. Beside the store, `snapshots/` keeps a copy of
each trusted version (text cut to a size), so `vaultsched trust` can show what changed since.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from vaultsched.adapters.vault import Vault, read_note
from vaultsched.core import layout
from vaultsched.core.model import Task
from vaultsched.core.views import fix_command
from vaultsched.trust.diff import describe, what_changed
from vaultsched.trust.fingerprint import (
    Identity,
    Snapshot,
    fingerprint,
    identity_of,
    take_snapshot,
)

POLICIES = ("ask", "any")


def policy() -> str:
    """`any` trusts every task; `ask` (the default) trusts only what this user approved."""
    chosen = os.environ.get("VAULTSCHED_TRUST", "").strip().lower()
    if not chosen:
        chosen = str(_USER_CONFIG.read(layout.user_config()).get("trust", "")).strip().lower()
    return chosen if chosen in POLICIES else "ask"


class _ReadOnce:
    """A small file parsed once, then again only when its identity changes (see `Witness`:
    one changed within 2 s of its reading is read afresh every time). Shared between threads;
    what it returns must not be changed."""

    RACY_NS = 2 * 10**9

    def __init__(self, parse: Callable[[bytes], dict[str, Any]]) -> None:
        self._parse = parse
        self._kept: tuple[str, Identity, dict[str, Any]] | None = None
        self._lock = threading.Lock()

    def read(self, path: Path) -> dict[str, Any]:
        """The file parsed; {} if it is missing, unreadable or not what `parse` takes."""
        try:
            found: Identity = identity_of(path.stat())
        except OSError:
            found = None
        with self._lock:
            kept = self._kept
        if kept is not None and found is not None and kept[:2] == (str(path), found):
            return kept[2]
        try:
            parsed = self._parse(path.read_bytes())
        except (OSError, ValueError):  # a damaged file counts as none (tomllib's errors too)
            parsed = {}
        if found is not None and found[5] < time.time_ns() - self.RACY_NS:
            with self._lock:
                self._kept = (str(path), found, parsed)
        return parsed


def _json_map(data: bytes) -> dict[str, Any]:
    loaded = json.loads(data.decode("utf-8"))
    return loaded if isinstance(loaded, dict) else {}


def _toml(data: bytes) -> dict[str, Any]:
    import tomllib  # here: without a user config, no TOML parser is loaded

    return tomllib.loads(data.decode("utf-8"))


_USER_CONFIG = _ReadOnce(_toml)


# Text kept in one snapshot across its files; past it, a diff shows sizes only.
SNAPSHOT_TEXT_CAP = 4 * 1024 * 1024


class TrustStore:
    """`{vault real path: {task id: fingerprint}}` in one JSON file, shared by every vault, and
    `snapshots/<fingerprint>.json` beside it: what each trusted fingerprint was made of.

    Ids starting with "." are not tasks: `.vaultsched/config.toml` holds the config's trust in
    the same map, so every change here touches only the ids it is given."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or layout.trust_store()
        self.snapshots = layout.snapshots_dir(self.path)
        # Read before every run: parsed again only once the file changed. A damaged store
        # trusts nothing; it is rewritten on the next `trust`.
        self._stored = _ReadOnce(_json_map)

    def _load(self) -> dict[str, dict[str, str]]:
        """The whole store, a copy the caller may change."""
        return {
            ident: dict(entry) if isinstance(entry, dict) else entry
            for ident, entry in self._stored.read(self.path).items()
        }

    def trusted(self, root: Path) -> dict[str, str]:
        entry = self._stored.read(self.path).get(str(root.resolve()), {})
        return dict(entry) if isinstance(entry, dict) else {}

    def is_trusted(self, root: Path, task: Task, body: str | None = None) -> bool:
        """`body`: the text about to be piped (`stdin: body`), so exactly that is checked."""
        if policy() == "any":
            return True
        return self._holds(root, task, fingerprint(root, task, body), self.trusted(root))

    def checker(self, root: Path) -> Callable[[Task], bool]:
        """`is_trusted` for many tasks against one reading of the store (listing a vault)."""
        if policy() == "any":
            return lambda task: True
        known = self.trusted(root)
        if not known:  # nothing of this vault is trusted: no fingerprint could change that
            return lambda task: False
        return lambda task: self._holds(root, task, fingerprint(root, task), known)

    def _holds(self, root: Path, task: Task, print_: str, known: dict[str, str]) -> bool:
        """Trusted under its id, or moved here with its trust (`_follow_move`)."""
        if known.get(task.id) == print_:
            return True
        if not any(fp == print_ and _gone(root, ident) for ident, fp in known.items()):
            return False  # the common case: no lock, no write
        old = self._follow_move(root, task.id, print_)
        if old is None:
            return False
        known.pop(old, None)  # this reading of the store too: no second task takes it
        known[task.id] = print_
        return True

    def _follow_move(self, root: Path, ident: str, print_: str) -> str | None:
        """A task note moved (renamed in Obsidian, `git mv`, a folder moved): its trust goes
        with it. The record of a task whose note no longer exists, with exactly this
        fingerprint, is moved to `ident`, under the store's lock: a move, never a copy, so a
        record is taken at most once, and a copy of a trusted note made while the original
        still exists is not trusted. The id the record had, or None if there was none (or
        another process took it first for this same task: `ident` then holds it)."""
        moved: list[str] = []

        def take(entry: dict[str, str]) -> None:
            if entry.get(ident) == print_:
                moved.append(ident)
                return
            gone = sorted(i for i, fp in entry.items() if fp == print_ and _gone(root, i))
            if gone:
                entry[ident] = entry.pop(gone[0])
                moved.append(gone[0])

        self._update(root, take)
        return moved[0] if moved else None

    def trust(self, root: Path, tasks: Iterable[Task]) -> list[str]:
        return self.record(root, {task.id: take_snapshot(root, task) for task in tasks})

    def record(self, root: Path, snapshots: Mapping[str, Snapshot]) -> list[str]:
        """Trust exactly these snapshots (what `trust` showed), keeping a copy of each."""
        for snapshot in snapshots.values():
            self._save_snapshot(snapshot)
        prints = {ident: snapshot.fingerprint for ident, snapshot in snapshots.items()}

        def change(entry: dict[str, str]) -> None:
            # Trusting a moved note by hand is its move: the record it left is not kept for a
            # copy to take later.
            for ident in [i for i, fp in entry.items() if fp in prints.values() and _gone(root, i)]:
                entry.pop(ident)
            entry.update(prints)

        self._update(root, change)
        return sorted(prints)

    def record_fingerprint(self, root: Path, ident: str, fingerprint: str) -> None:
        """Trust one fingerprint under `ident`: the vault config's, under a reserved id."""
        self._update(root, lambda entry: entry.update({ident: fingerprint}))

    def untrust(self, root: Path, task_ids: Iterable[str]) -> None:
        ids = set(task_ids)
        self._update(root, lambda entry: [entry.pop(i, None) for i in ids])

    def _update(self, root: Path, change: Callable[[dict[str, str]], object]) -> None:
        # Here: only a change writes, and both are slow to import (`list` never writes).
        from filelock import FileLock

        from vaultsched.adapters.notes import write_atomic

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(layout.lock_beside(str(self.path))):
            data = self._load()
            entry = data.setdefault(str(root.resolve()), {})
            change(entry)
            text = json.dumps(data, indent=2, sort_keys=True) + "\n"
            write_atomic(self.path, text.encode("utf-8"), mode=0o600)
            self._forget_snapshots(data)

    # -- snapshots: what a trusted fingerprint was made of ----------------------------------

    def last_trusted(self, root: Path, task_id: str) -> tuple[bool, Snapshot | None]:
        """(was a version of it ever trusted, that version's snapshot if one was kept)."""
        stored = self.trusted(root).get(task_id)
        if not isinstance(stored, str):
            return False, None
        try:
            data = json.loads(self._snapshot_path(stored).read_text(encoding="utf-8"))
            return True, Snapshot.from_json(data)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return True, None

    def changes(self, root: Path, task_id: str, now: Snapshot) -> list[str]:
        """What `trust` shows before recording `now`."""
        known, before = self.last_trusted(root, task_id)
        return describe(task_id, before, now, known=known)

    def why_untrusted(self, root: Path, task: Task) -> str:
        """What changed since the trusted version, in a few words (`its body (prompt) changed`)."""
        known, before = self.last_trusted(root, task.id)
        if not known:
            return "it is new"
        if before is None:
            return "its command (or a file it reaches) is new or changed"
        return what_changed(before, take_snapshot(root, task))

    def refusal(self, root: Path, task: Task) -> str:
        """The message of an untrusted run (note, digest, ledger): what changed, and the fix."""
        return untrusted_message(task.id, self.why_untrusted(root, task))

    def _snapshot_path(self, print_: str) -> Path:
        if not print_.isalnum():  # a damaged store must not name a path
            raise ValueError(print_)
        return self.snapshots / f"{print_}.json"

    def _save_snapshot(self, snapshot: Snapshot) -> None:
        from vaultsched.adapters.notes import write_atomic  # see _update

        self.snapshots.mkdir(mode=0o700, parents=True, exist_ok=True)
        data = json.dumps(snapshot.to_json(SNAPSHOT_TEXT_CAP), sort_keys=True).encode("utf-8")
        write_atomic(self._snapshot_path(snapshot.fingerprint), data, mode=0o600)

    def _forget_snapshots(self, data: Mapping[str, object]) -> None:
        """Keep only the snapshots some entry of the store still names: bounded on disk."""
        named = {
            fp
            for entry in data.values()
            if isinstance(entry, dict)
            for fp in entry.values()
            if isinstance(fp, str)
        }
        with contextlib.suppress(OSError):
            for path in self.snapshots.glob("*.json"):
                if path.stem not in named:
                    path.unlink(missing_ok=True)


def _gone(root: Path, ident: str) -> bool:
    """Whether the note of the task a record names no longer exists (ids starting with "."
    are not tasks: the config's trust)."""
    return not ident.startswith(".") and not os.path.lexists(root / f"{ident}.md")


def trust_created(vault: Vault, rels: Iterable[str]) -> list[str]:
    """`init`, `new` and `demo` trust the task notes they have just written themselves."""
    tasks = [t for rel in rels if (t := read_note(vault, rel).task) is not None]
    return TrustStore().trust(vault.root, tasks)


def trust_command(task_id: str) -> str:
    """The exact line a person runs to trust a task (shown in notes, digest, `status`)."""
    return fix_command("trust", task_id)


def approve_command(task_id: str) -> str:
    return fix_command("approve", task_id)


def untrusted_message(
    task_id: str, why: str = "its command (or a file it reaches) is new or changed"
) -> str:
    return f"untrusted: {why}; review it, then run: {trust_command(task_id)}"
