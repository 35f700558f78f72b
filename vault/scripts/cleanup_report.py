"""Weekly cleanup report: wikilinks to notes that do not exist, attachments no note links to.

Read-only: it changes nothing, it lists what to fix by hand, and it exits 0 (a report that
finds something has still succeeded). Self-contained on purpose (the trust fingerprint covers
the files a command names). Standard library only.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from urllib.parse import unquote

# [[Target]], [[Target|alias]], [[Target#Heading]], [[Target^block]], and embeds ![[file.png]]
WIKILINK = re.compile(r"!?\[\[([^\]|#^\n]+)(?:[#^][^\]|\n]*)?(?:\|[^\]\n]*)?\]\]")
# [text](path) and ![](path) with a relative path (Obsidian's "use [[Wikilinks]]" turned off)
MDLINK = re.compile(r"!?\[[^\]\n]*\]\(<?([^)>\s:]+)>?\)")
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
    """A note's own writing: no front matter, no run block, no code (links there are examples)."""
    text = path.read_text(encoding="utf-8", errors="replace")
    return CODE.sub("", RUN_BLOCK.sub("", FRONT_MATTER.sub("", text, count=1)))


def main() -> int:
    root = vault_root()
    files = vault_files(root)
    rel = {path: path.relative_to(root).as_posix() for path in files}
    notes = [path for path in files if path.suffix == ".md"]
    attachments = [path for path in files if path.suffix != ".md"]
    # Obsidian resolves [[Name]] by note name, [[Folder/Name]] by path, [[file.png]] by file name.
    targets = {path.stem for path in notes} | {rel[path].removesuffix(".md") for path in notes}
    targets |= {path.name for path in attachments} | {rel[path] for path in attachments}
    broken: list[str] = []
    linked: set[str] = set()
    for note in notes:
        text = prose(note)
        for link in WIKILINK.findall(text):
            target = link.strip().removesuffix(".md")
            linked.add(target)
            if target not in targets:
                broken.append(f"{rel[note]}: [[{target}]]")
        for link in MDLINK.findall(text):  # relative to the note, or to the vault root
            linked.add(os.path.normpath(note.parent.relative_to(root) / unquote(link)))
            linked.add(os.path.normpath(unquote(link)))
    unlinked = [
        rel[path] for path in attachments if path.name not in linked and rel[path] not in linked
    ]
    print(f"Broken links: {len(broken)}")
    print("\n".join(f"- {line}" for line in broken) or "- none")
    print(f"Unlinked attachments: {len(unlinked)}")
    print("\n".join(f"- {line}" for line in unlinked) or "- none")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
