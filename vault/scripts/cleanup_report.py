"""Read-only: wikilinks to notes that do not exist, and attachments no note links to.

Exits 1 when it finds something, so the run shows under "needs attention" in the digest.
"""

from __future__ import annotations

import sys

from _vault import WIKILINK, files, notes, vault_root, without_generated_blocks


def main() -> int:
    root = vault_root()
    paths = list(notes(root))
    # Obsidian resolves [[Name]] by note name, [[Folder/Name]] by path, [[file.png]] by file name.
    known = {p.stem for p in paths} | {str(p.relative_to(root).with_suffix("")) for p in paths}
    attachments = [f for f in files(root) if f.suffix != ".md" and "scripts" not in f.parts]
    known |= {f.name for f in attachments}
    broken: list[str] = []
    linked: set[str] = set()
    for path in paths:
        text = without_generated_blocks(path.read_text(encoding="utf-8", errors="replace"))
        for link in WIKILINK.findall(text):
            target = link.strip()
            linked.add(target)
            if target not in known and target.removesuffix(".md") not in known:
                broken.append(f"{path.relative_to(root)}: [[{target}]]")
    unlinked = [str(f.relative_to(root)) for f in attachments if f.name not in linked]
    print(f"Broken links: {len(broken)}")
    print("\n".join(f"- {b}" for b in broken) or "- none")
    print(f"Unlinked attachments: {len(unlinked)}")
    print("\n".join(f"- {u}" for u in unlinked) or "- none")
    return 1 if broken or unlinked else 0


if __name__ == "__main__":
    sys.exit(main())
