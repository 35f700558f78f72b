"""Shared by the example scripts: where the vault is and which notes count."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

SKIPPED = {"Digests"}  # vaultsched's daily digests are reports, not notes
WIKILINK = re.compile(r"!?\[\[([^\]|#^]+)(?:[#^][^\]|]*)?(?:\|[^\]]*)?\]\]")
OPEN_ITEM = re.compile(r"^\s*[-*] \[ \] (.+)$", re.MULTILINE)
DONE_ITEM = re.compile(r"^\s*[-*] \[[xX]\] ", re.MULTILINE)


def vault_root() -> Path:
    """vaultsched sets VAULTSCHED_VAULT for every run; by hand, run the script from the vault."""
    return Path(os.environ.get("VAULTSCHED_VAULT") or Path.cwd())


def visible(path: Path, root: Path) -> bool:
    parts = path.relative_to(root).parts
    return not any(p.startswith(".") for p in parts) and parts[0] not in SKIPPED


def notes(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*.md")):
        if visible(path, root):
            yield path


def files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if path.is_file() and visible(path, root):
            yield path


def without_generated_blocks(text: str) -> str:
    """A task note's run block quotes command output: not the user's own writing."""
    return re.sub(r"%% vaultsched:runs:begin %%.*?%% vaultsched:runs:end %%", "", text, flags=re.S)
