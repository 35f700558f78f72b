"""Counts for the whole vault: notes, words, open and done items, attachments."""

from __future__ import annotations

from _vault import DONE_ITEM, OPEN_ITEM, files, notes, vault_root, without_generated_blocks


def main() -> None:
    root = vault_root()
    note_count = words = open_items = done_items = 0
    for path in notes(root):
        text = without_generated_blocks(path.read_text(encoding="utf-8", errors="replace"))
        note_count += 1
        words += len(text.split())
        open_items += len(OPEN_ITEM.findall(text))
        done_items += len(DONE_ITEM.findall(text))
    attachments = sum(1 for f in files(root) if f.suffix != ".md" and "scripts" not in f.parts)
    print(f"notes: {note_count}")
    print(f"words: {words}")
    print(f"open items: {open_items}")
    print(f"done items: {done_items}")
    print(f"attachments: {attachments}")


if __name__ == "__main__":
    main()
