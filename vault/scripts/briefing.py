"""Daily briefing: today's date, the vault's open items, and the list in the task note's body.

The task has `stdin: body`, so vaultsched pipes the note's body (no front matter, no run block)
to this script: edit the note to change the briefing. Self-contained on purpose (the trust
fingerprint covers the files a command names). Standard library only.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from datetime import date
from pathlib import Path

OPEN_ITEM = re.compile(r"^\s*[-*+] \[ \] (.+)$", re.MULTILINE)
LIST_ITEM = re.compile(r"^\s*[-*+] (?!\[[ xX]\] )(.+)$")
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


def notes(root: Path) -> list[Path]:
    """Every note a person keeps here: no dot folders, no digests, no scripts."""
    skipped = {digest_folder(root), "scripts"}
    found = []
    for folder, dirs, names in os.walk(root):
        rel = Path(folder).relative_to(root)
        dirs[:] = [d for d in dirs if not d.startswith(".") and str(rel / d) not in skipped]
        found += [Path(folder, n) for n in names if n.endswith(".md") and not n.startswith(".")]
    return sorted(found, key=lambda p: p.relative_to(root).as_posix())


def prose(path: Path) -> str:
    """A note's own writing: no front matter, no run block, no code."""
    text = path.read_text(encoding="utf-8", errors="replace")
    return CODE.sub("", RUN_BLOCK.sub("", FRONT_MATTER.sub("", text, count=1)))


def main() -> int:
    root = vault_root()
    body = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    print(f"Briefing for {date.today():%A %d %B %Y}")
    print()
    open_items = [
        f"- {item.strip()} ({path.relative_to(root).with_suffix('').as_posix()})"
        for path in notes(root)
        for item in OPEN_ITEM.findall(prose(path))
    ]
    print(f"Open items: {len(open_items)}")
    print("\n".join(open_items) or "- nothing open")
    reminders = [f"- {m[1].strip()}" for line in body.splitlines() if (m := LIST_ITEM.match(line))]
    if reminders:
        print()
        print("From the note:")
        print("\n".join(reminders))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
