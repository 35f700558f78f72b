"""Writing the task dashboard (`Tasks.base`) without ever overwriting a person's edits.

The file is vaultsched's only while it holds the marker line (vaultsched.core.dashboard); one
without it is refused and left byte for byte. The write goes through the NoteWriter (atomic,
never through a symlink out of the vault); a folder on the way that is a symlink is refused
even when it stays inside the vault.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path, PurePosixPath

from vaultsched.adapters.notefile import NotRegularFile, read_note_bytes
from vaultsched.adapters.notes import NoteWriter, Outcome
from vaultsched.core.dashboard import dashboard_text, owned
from vaultsched.core.errors import VaultschedError


def write_dashboard(root: Path, rel: str, writer: NoteWriter) -> Outcome:
    """Write the dashboard to `rel` (checked by core.dashboard.dashboard_path): WRITTEN, or
    UNCHANGED when it already says exactly that. Raises VaultschedError (exit 1) for a file
    that is the person's or a path vaultsched does not write through."""
    _check_folders(root, rel)
    _check_existing(root / rel, rel)

    def rewrite(text: str) -> str:
        if text and not owned(text):  # saved by a person since the check above
            raise _yours(rel)
        return dashboard_text()

    try:
        outcome = writer.update(rel, rewrite, create=True)
    except OSError as exc:
        raise VaultschedError(f"{rel}: not written: {exc.strerror or exc}", exit_code=1) from exc
    if outcome not in (Outcome.WRITTEN, Outcome.UNCHANGED):
        raise VaultschedError(f"{rel}: not written ({outcome})", exit_code=1)
    return outcome


def _check_folders(root: Path, rel: str) -> None:
    """Each folder of `rel` that exists is a real folder, not a symlink."""
    folder = root
    for part in PurePosixPath(rel).parent.parts:
        folder = folder / part
        try:
            mode = os.lstat(folder).st_mode
        except FileNotFoundError:
            return  # the rest is created as real folders
        if stat.S_ISLNK(mode):
            shown = folder.relative_to(root).as_posix()
            raise VaultschedError(
                f"{rel}: {shown} is a symlink: the dashboard is never written through one",
                exit_code=1,
            )
        if not stat.S_ISDIR(mode):
            shown = folder.relative_to(root).as_posix()
            raise VaultschedError(f"{rel}: {shown} is not a folder", exit_code=1)


def _check_existing(path: Path, rel: str) -> None:
    """An existing file at `path` must be a regular file that holds the marker line."""
    try:
        data = read_note_bytes(path)
    except FileNotFoundError:
        return
    except NotRegularFile as exc:
        message = f"{rel} is {exc.kind}, not a file: not written"
        raise VaultschedError(message, exit_code=1) from None
    if not owned(data.decode("utf-8", errors="replace")):
        raise _yours(rel)


def _yours(rel: str) -> VaultschedError:
    return VaultschedError(
        f"{rel} has no '# vaultsched:dashboard' line, so it is yours: not overwritten "
        "(move or delete it for a fresh dashboard, or give another PATH)",
        exit_code=1,
    )
