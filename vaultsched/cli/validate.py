"""`vaultsched validate`: every problem of the task notes asked about, as `path:line: message`."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from vaultsched.adapters.git import Git, GitError
from vaultsched.adapters.git.batch import read_blobs, staged_changes
from vaultsched.adapters.vault import (
    Index,
    Skipped,
    Vault,
    build_index,
    drop_unplannable,
    is_ignored,
    iter_notes,
    outside_tasks,
    parse_note,
    read_note,
)
from vaultsched.core.errors import VaultschedError
from vaultsched.core.model import Problem
from vaultsched.core.taskfile import Parsed, front_matter_text, task_id


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
    skipped: list[Skipped] = []
    notes = list(iter_notes(vault, skipped))
    parsed: dict[str, Parsed] = {}
    for rel in wanted:
        chosen = [n for n in notes if n == rel or n.startswith(rel.rstrip("/") + "/") or rel == "."]
        if not chosen and not (vault.root / rel).exists():
            raise VaultschedError(f"no such file or folder in the vault: {rel}")
        parsed.update((note, read_note(vault, note)) for note in chosen)
    index = _linked(vault, parsed)
    index.skipped = skipped
    drop_unplannable(index, now)
    outside = [p for rel in wanted if (p := outside_tasks(vault, rel)) is not None]
    return len(index.ids), index.problems + outside


def validate_staged(vault: Vault) -> tuple[int, list[Problem]]:
    """Check what git has staged (for the pre-commit hook): the index's content, not the disk's."""
    git = Git(vault.root, vault.host)
    if not git.usable:
        raise VaultschedError(f"{vault.root} is not the top of a git repository")
    try:
        # One git for the list, one for every blob: a process per note took 85 s for 10,000.
        # Links and submodules are no notes (a task is never read through a link).
        staged = [
            change
            for change in staged_changes(git)
            if change.is_file and not is_ignored(change.shown_path, vault.config.digest.folder)
        ]
        blobs = read_blobs(git, (change.sha for change in staged))
    except GitError as exc:
        raise VaultschedError(f"git: {exc}", exit_code=1) from exc
    parsed: dict[str, Parsed] = {}
    for change in staged:
        rel = change.shown_path
        if change.sha not in blobs:
            raise VaultschedError(f"git: {rel}: its staged blob cannot be read", exit_code=1)
        # Split as the note on disk is read, so both verdicts agree; not by python-frontmatter,
        # whose split differs (`...` and a BOM not read, `----` taken for a fence) and whose
        # load would build the YAML before parse_note bounds its aliases.
        yaml_text = front_matter_text(blobs[change.sha].decode("utf-8", errors="replace"))
        parsed[rel] = _lenient(parse_note(rel, yaml_text, vault.config))
    index = _linked(vault, parsed)
    return len(index.ids), index.problems


def _lenient(parsed: Parsed) -> Parsed:
    """The hook refuses only notes clearly meant as tasks: a note whose `command` property is
    something else (`command: {name: ...}` for a plugin) is committed, its errors shown as
    warnings (`validate` and `list` still show it as an invalid task)."""
    if parsed.meant:
        return parsed
    warnings = tuple(
        dataclasses.replace(p, severity="warning", message=f"{p.message}{_NOT_REFUSED}")
        if p.severity == "error"
        else p
        for p in parsed.problems
    )
    return dataclasses.replace(parsed, problems=warnings)


_NOT_REFUSED = " (not refused: this `command` does not look like a task's)"


def _linked(vault: Vault, parsed: dict[str, Parsed]) -> Index:
    """The index of these notes, each `after` resolved against the whole vault: the notes on
    disk, these notes' versions in place of theirs. The rest of the vault is read only if one
    of them has an `after`; its problems are not these notes' and are left out."""
    index = Index()
    for rel, one in parsed.items():
        index.add(rel, one)
    if not any(task.after for task in index.tasks.values()):
        return index
    whole = build_index(vault)
    for rel, one in parsed.items():
        whole.add(rel, one)
    whole.link()
    return whole.only({task_id(rel) for rel in parsed})


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
