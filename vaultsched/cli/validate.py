"""`vaultsched validate`: every problem of the task notes asked about, as `path:line: message`."""

from __future__ import annotations

import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from vaultsched.adapters.git import Git, GitError
from vaultsched.adapters.vault import (
    Index,
    Vault,
    build_index,
    drop_unplannable,
    is_ignored,
    iter_notes,
    parse_note,
    read_note,
)
from vaultsched.core.errors import VaultschedError
from vaultsched.core.model import Problem
from vaultsched.core.taskfile import front_matter_text


def validate_vault(
    vault: Vault, now: datetime, paths: Iterable[str] = ()
) -> tuple[int, list[Problem]]:
    """(task notes checked, problems) for the whole vault or the given files and folders; a
    task whose next fire time after `now` cannot be computed is one of them."""
    wanted = [_relative(vault, p) for p in paths]
    if not wanted:
        index = build_index(vault)
        drop_unplannable(index, now)
        return len(index.ids), index.problems + [
            _skip_problem(s.path, s.reason) for s in index.skipped
        ]
    index = Index()
    notes = list(iter_notes(vault, index.skipped))
    for rel in wanted:
        chosen = [n for n in notes if n == rel or n.startswith(rel.rstrip("/") + "/") or rel == "."]
        if not chosen and not (vault.root / rel).exists():
            raise VaultschedError(f"no such file or folder in the vault: {rel}")
        for note in chosen:
            index.add(note, read_note(vault, note))
    drop_unplannable(index, now)
    return len(index.ids), index.problems


def validate_staged(vault: Vault) -> tuple[int, list[Problem]]:
    """Check what git has staged (for the pre-commit hook): the index's content, not the disk's."""
    git = Git(vault.root, vault.host)
    if not git.usable:
        raise VaultschedError(f"{vault.root} is not the top of a git repository")
    index = Index()
    try:
        for rel in git.staged_files():
            if is_ignored(rel, vault.config.digest.folder):
                continue
            # Split as the note on disk is read, so both verdicts agree; not by python-frontmatter,
            # whose split differs (`...` and a BOM not read, `----` taken for a fence) and whose
            # load would build the YAML before parse_note bounds its aliases.
            yaml_text = front_matter_text(git.show_staged(rel))
            index.add(rel, parse_note(rel, yaml_text, vault.config))
    except GitError as exc:
        raise VaultschedError(f"git: {exc}", exit_code=1) from exc
    return len(index.ids), index.problems


def _relative(vault: Vault, given: str) -> str:
    path = Path(given)
    absolute = (path if path.is_absolute() else Path.cwd() / path).resolve()
    if not absolute.exists() and not path.is_absolute():
        absolute = (vault.root / path).resolve()  # also accept vault-relative paths
    try:
        rel = absolute.relative_to(vault.root)
    except ValueError as exc:
        raise VaultschedError(f"{given} is outside the vault {vault.root}") from exc
    return "." if str(rel) == "." else str(rel).replace(os.sep, "/")


def _skip_problem(path: str, reason: str) -> Problem:
    return Problem(path, 1, reason, "warning")
