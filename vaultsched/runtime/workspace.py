"""The handles every stage of the runtime shares: the vault, its clock, ledger, git and writer."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from vaultsched.adapters import statefs
from vaultsched.adapters.clock import utc_now
from vaultsched.adapters.git import Git, GitError
from vaultsched.adapters.ledger import Ledger
from vaultsched.adapters.notes import NoteWriter
from vaultsched.adapters.vault import Vault
from vaultsched.trust.store import TrustStore

log = logging.getLogger(__name__)


@dataclass
class Workspace:
    vault: Vault
    clock: Callable[[], datetime]
    ledger: Ledger
    git: Git
    writer: NoteWriter
    trust: TrustStore = field(default_factory=TrustStore)


def open_workspace(
    vault: Vault,
    clock: Callable[[], datetime] = utc_now,
    writer: NoteWriter | None = None,
) -> Workspace:
    """Prepare `.vaultsched/` (before the first lock, log or ledger line) and open the vault."""
    statefs.prepare_state_dir(vault.root)
    workspace = Workspace(
        vault,
        clock,
        Ledger(vault.root, vault.host),
        Git(vault.root, vault.host),
        writer or NoteWriter(vault.root),
    )
    _exclude_state(workspace)
    return workspace


def _exclude_state(workspace: Workspace) -> None:
    """Logs and state out of git even if a pull rewrites `.vaultsched/.gitignore`."""
    if not workspace.vault.config.git.commit:
        return
    try:
        workspace.git.exclude_state()
    except (GitError, OSError) as exc:
        log.warning("could not add vaultsched's rules to git's info/exclude: %s", exc)
