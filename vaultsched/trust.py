"""Trust, like `direnv allow`: a task runs only once this user has approved what it would run.

A task note is code execution, and anyone who can write to the vault (a sync tool, a git pull,
a plugin) could otherwise run commands on every machine with a daemon. What is trusted is a
fingerprint of the task's `command`, `cwd`, `env` and `stdin`, plus the content of every vault
file the command names, so a pulled change to `scripts/vault_tools.py` needs trust again too.

The store lives outside the vault (`$XDG_STATE_HOME/vaultsched/trust.json`), and the policy can
be relaxed only from outside it (`VAULTSCHED_TRUST=any`, `~/.config/vaultsched/config.toml`):
a vault must not be able to vouch for itself.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import tomllib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from filelock import FileLock

from vaultsched.model import Task
from vaultsched.notes import write_atomic
from vaultsched.vault import Vault, read_note
from vaultsched.views import fix_command

POLICIES = ("ask", "any")


def _xdg(name: str, default: str) -> Path:
    return Path(os.environ.get(name) or Path.home() / default)


def store_path() -> Path:
    return _xdg("XDG_STATE_HOME", ".local/state") / "vaultsched" / "trust.json"


def user_config_path() -> Path:
    return _xdg("XDG_CONFIG_HOME", ".config") / "vaultsched" / "config.toml"


def policy() -> str:
    """`any` trusts every task; `ask` (the default) trusts only what this user approved."""
    chosen = os.environ.get("VAULTSCHED_TRUST", "").strip().lower()
    if not chosen:
        try:
            with user_config_path().open("rb") as handle:
                chosen = str(tomllib.load(handle).get("trust", "")).strip().lower()
        except (OSError, tomllib.TOMLDecodeError):
            chosen = ""
    return chosen if chosen in POLICIES else "ask"


def fingerprint(root: Path, task: Task) -> str:
    """sha256 over what the task would run: its settings and the vault files it names."""
    canonical = {
        "command": task.command if isinstance(task.command, str) else list(task.command),
        "cwd": task.cwd,
        "env": dict(sorted(task.env.items())),
        "stdin": task.stdin,
    }
    digest = hashlib.sha256(json.dumps(canonical, sort_keys=True).encode("utf-8"))
    for rel, content in named_files(root, task):
        digest.update(f"\0{rel}\0".encode())
        digest.update(hashlib.sha256(content).digest())
    return digest.hexdigest()


def named_files(root: Path, task: Task) -> Iterator[tuple[str, bytes]]:
    """(vault path, content) of each file inside the vault that the command names as a word."""
    real_root = root.resolve()
    base = (root / Path(task.cwd).expanduser()) if task.cwd else root
    seen: set[str] = set()
    for word in _words(task.command):
        for candidate in (base / word, root / word):
            try:
                real = candidate.resolve()
                if not real.is_file() or not real.is_relative_to(real_root):
                    continue
                rel = real.relative_to(real_root).as_posix()
                if rel not in seen:
                    seen.add(rel)
                    yield rel, real.read_bytes()
            except (OSError, ValueError):
                continue


def _words(command: str | tuple[str, ...]) -> list[str]:
    if not isinstance(command, str):
        return [w for w in command if w]
    try:
        return shlex.split(command)
    except ValueError:  # unbalanced quotes: the shell will refuse it anyway
        return command.split()


class TrustStore:
    """`{vault real path: {task id: fingerprint}}` in one JSON file, shared by every vault."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or store_path()

    def _load(self) -> dict[str, dict[str, str]]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            # A damaged store trusts nothing; it is rewritten on the next `trust`.
            return {}
        return data if isinstance(data, dict) else {}

    def trusted(self, root: Path) -> dict[str, str]:
        entry = self._load().get(str(root.resolve()), {})
        return entry if isinstance(entry, dict) else {}

    def is_trusted(self, root: Path, task: Task) -> bool:
        return self.checker(root)(task)

    def checker(self, root: Path) -> Callable[[Task], bool]:
        """`is_trusted` for many tasks against one reading of the store (listing a vault)."""
        if policy() == "any":
            return lambda task: True
        known = self.trusted(root)
        return lambda task: known.get(task.id) == fingerprint(root, task)

    def trust(self, root: Path, tasks: Iterable[Task]) -> list[str]:
        prints = {task.id: fingerprint(root, task) for task in tasks}
        self._update(root, lambda entry: entry.update(prints))
        return sorted(prints)

    def record(self, root: Path, ident: str, fingerprint: str) -> None:
        """Trust one fingerprint under `ident`: the vault config's, under a reserved id."""
        self._update(root, lambda entry: entry.update({ident: fingerprint}))

    def untrust(self, root: Path, task_ids: Iterable[str]) -> None:
        ids = set(task_ids)
        self._update(root, lambda entry: [entry.pop(i, None) for i in ids])

    def _update(self, root: Path, change: Callable[[dict[str, str]], object]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(str(self.path) + ".lock"):
            data = self._load()
            entry = data.setdefault(str(root.resolve()), {})
            change(entry)
            text = json.dumps(data, indent=2, sort_keys=True) + "\n"
            write_atomic(self.path, text.encode("utf-8"), mode=0o600)


def trust_created(vault: Vault, rels: Iterable[str]) -> list[str]:
    """`init`, `new` and `demo` trust the task notes they have just written themselves."""
    tasks = [t for rel in rels if (t := read_note(vault, rel).task) is not None]
    return TrustStore().trust(vault.root, tasks)


def trust_command(task_id: str) -> str:
    """The exact line a person runs to trust a task (shown in notes, digest, `status`)."""
    return fix_command("trust", task_id)


def approve_command(task_id: str) -> str:
    return fix_command("approve", task_id)


def untrusted_message(task_id: str) -> str:
    return (
        "untrusted: its command (or a script it names) is new or changed; "
        f"review it, then run: {trust_command(task_id)}"
    )
