"""Vault stats: notes, words, open and done items, attachments.

Self-contained on purpose: vaultsched's trust fingerprint covers the files a task's command
names (`python3 scripts/vault_stats.py`), so a helper module imported from here would not be
covered. Standard library only.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path

OPEN_ITEM = re.compile(r"^\s*[-*+] \[ \] (.+)$", re.MULTILINE)
DONE_ITEM = re.compile(r"^\s*[-*+] \[[xX]\] ", re.MULTILINE)
FRONT_MATTER = re.compile(r"\A---\r?\n.*?^---[ \t]*$\r?\n?", re.DOTALL | re.MULTILINE)
RUN_BLOCK = re.compile(r"%% vaultsched:runs:begin %%.*?%% vaultsched:runs:end %%", re.DOTALL)
CODE = re.compile(r"^(```|~~~).*?^\1[ \t]*$|`[^`\n]*`", re.DOTALL | re.MULTILINE)


def vault_root() -> Path:
    """vaultsched sets VAULTSCHED_VAULT for every run; by hand, run this from the vault."""
    return Path(os.environ.get("VAULTSCHED_VAULT") or Path.cwd())


def digest_folder(root: Path) -> str:
    try:
        config = tomllib.loads((root / ".vaultsched/config.toml").read_text(encoding="utf-8"))
        return str(config.get("digest", {}).get("folder", "Digests")).strip("/")
    except (OSError, tomllib.TOMLDecodeError, AttributeError):
        return "Digests"


def vault_files(root: Path) -> list[Path]:
    """Every file a person keeps here: no dot folders, no digests, no scripts."""
    skipped = {digest_folder(root), "scripts"}
    found = []
    for folder, dirs, names in os.walk(root):
        rel = Path(folder).relative_to(root)
        dirs[:] = [d for d in dirs if not d.startswith(".") and str(rel / d) not in skipped]
        found += [Path(folder, n) for n in names if not n.startswith(".")]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def prose(path: Path) -> str:
    """A note's own writing: no front matter, no run block, no code."""
    text = path.read_text(encoding="utf-8", errors="replace")
    return CODE.sub("", RUN_BLOCK.sub("", FRONT_MATTER.sub("", text, count=1)))


def main() -> int:
    root = vault_root()
    files = vault_files(root)
    notes = [prose(p) for p in files if p.suffix == ".md"]
    print(f"notes: {len(notes)}")
    print(f"words: {sum(len(text.split()) for text in notes)}")
    print(f"open items: {sum(len(OPEN_ITEM.findall(text)) for text in notes)}")
    print(f"done items: {sum(len(DONE_ITEM.findall(text)) for text in notes)}")
    print(f"attachments: {sum(1 for p in files if p.suffix != '.md')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
