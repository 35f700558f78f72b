"""The daily briefing: today's date, the vault's open items, and the note body from stdin."""

from __future__ import annotations

import sys
from datetime import date

from _vault import OPEN_ITEM, notes, vault_root, without_generated_blocks


def main() -> None:
    root = vault_root()
    body = sys.stdin.read() if not sys.stdin.isatty() else ""
    print(f"Briefing for {date.today():%A %d %B %Y}")
    print()
    open_items = []
    for path in notes(root):
        text = without_generated_blocks(path.read_text(encoding="utf-8", errors="replace"))
        for item in OPEN_ITEM.findall(text):
            open_items.append(f"- {item.strip()} ({path.relative_to(root).with_suffix('')})")
    print(f"Open items: {len(open_items)}")
    print("\n".join(open_items) if open_items else "- nothing open")
    reminders = [line for line in body.splitlines() if line.lstrip().startswith(("- ", "* "))]
    if reminders:
        print()
        print("Reminders from the note:")
        print("\n".join(reminders))


if __name__ == "__main__":
    main()
