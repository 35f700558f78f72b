"""The example vault's tasks: `briefing`, `stats`, `cleanup`, `inbox`, `draft`, `journal` and
`archive`, one subcommand each.

One file on purpose: vaultsched's trust fingerprint covers the files a task's command names
(`python3 scripts/vault_tools.py stats`), so a helper module imported from here would not be
covered unless the command named its folder (`scripts/`). Standard library only.

- `briefing`: today's date, the vault's open items, and the list in the task note's body (the task
  has `stdin: body`, so vaultsched pipes the note's body here: edit the note to change it).
- `stats`: notes, words, open and done items, attachments.
- `cleanup`: wikilinks to notes that do not exist, attachments no note links to. Read-only, and
  it exits 0: a report that finds something has still succeeded.
- `inbox`: a short markdown briefing of `Inbox.md` (its open and done items); the task's `output`
  makes it a note of its own.
- `draft`: reads that briefing on stdin (`stdin: upstream`) and prints one line to add to
  `Follow-ups.md`: the next task appends it once a person approves.
- `journal`: exits 1 while the day's journal note (`Journal/YYYY-MM-DD.md`) does not exist:
  the failed run is the reminder.
- `archive`: moves the done items of `Inbox.md` to the end of `Archive.md`. The only subcommand
  that changes a note.
"""

from __future__ import annotations

import os
import re
import sys
import tomllib
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from urllib.parse import unquote

OPEN_ITEM = re.compile(r"^\s*[-*+] \[ \] (.+)$", re.MULTILINE)
DONE_ITEM = re.compile(r"^\s*[-*+] \[[xX]\] ", re.MULTILINE)
LIST_ITEM = re.compile(r"^\s*[-*+] (?!\[[ xX]\] )(.+)$")
# [[Target]], [[Target|alias]], [[Target#Heading]], [[Target^block]], and embeds ![[file.png]]
WIKILINK = re.compile(r"!?\[\[([^\]|#^\n]+)(?:[#^][^\]|\n]*)?(?:\|[^\]\n]*)?\]\]")
# [text](path) and ![](path) with a relative path (Obsidian's "use [[Wikilinks]]" turned off)
MDLINK = re.compile(r"!?\[[^\]\n]*\]\(<?([^)>\s:]+)>?\)")
FRONT_MATTER = re.compile(r"\A---\r?\n.*?^---[ \t]*$\r?\n?", re.DOTALL | re.MULTILINE)
RUN_BLOCK = re.compile(r"%% vaultsched:runs:begin %%.*?%% vaultsched:runs:end %%", re.DOTALL)
CODE = re.compile(r"^(```|~~~).*?^\1[ \t]*$|`[^`\n]*`", re.DOTALL | re.MULTILINE)
# A done item at the top level of a list, with its line break: what `archive` moves.
DONE_LINE = re.compile(r"^[-*+] \[[xX]\] (.+)$\n?", re.MULTILINE)
JOURNAL = "Journal"  # where Obsidian's Daily notes plugin files them (.obsidian/daily-notes.json)


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


def briefing(root: Path) -> None:
    body = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    print(f"Briefing for {date.today():%A %d %B %Y}")
    print()
    open_items = [
        f"- {item.strip()} ({path.relative_to(root).with_suffix('').as_posix()})"
        for path in vault_files(root)
        if path.suffix == ".md"
        for item in OPEN_ITEM.findall(prose(path))
    ]
    print(f"Open items: {len(open_items)}")
    print("\n".join(open_items) or "- nothing open")
    reminders = [f"- {m[1].strip()}" for line in body.splitlines() if (m := LIST_ITEM.match(line))]
    if reminders:
        print()
        print("From the note:")
        print("\n".join(reminders))


# Obsidian's own kinds of file (notes, Bases, canvases): everything else is an attachment.
NOT_ATTACHMENTS = {".md", ".base", ".canvas"}


def stats(root: Path) -> None:
    files = vault_files(root)
    notes = [prose(p) for p in files if p.suffix == ".md"]
    print(f"notes: {len(notes)}")
    print(f"words: {sum(len(text.split()) for text in notes)}")
    print(f"open items: {sum(len(OPEN_ITEM.findall(text)) for text in notes)}")
    print(f"done items: {sum(len(DONE_ITEM.findall(text)) for text in notes)}")
    print(f"attachments: {sum(1 for p in files if p.suffix not in NOT_ATTACHMENTS)}")


def cleanup(root: Path) -> None:
    files = vault_files(root)
    rel = {path: path.relative_to(root).as_posix() for path in files}
    notes = [path for path in files if path.suffix == ".md"]
    attachments = [path for path in files if path.suffix not in NOT_ATTACHMENTS]
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


def inbox(root: Path) -> None:
    text = prose(root / "Inbox.md")
    open_items = [item.strip() for item in OPEN_ITEM.findall(text)]
    done = len(DONE_ITEM.findall(text))
    print(f"# Inbox on {date.today():%A %d %B %Y}")
    print()
    print(f"From [[Inbox]]: {len(open_items)} open, {done} done.")
    print()
    print("## Open")
    print("\n".join(f"- {item}" for item in open_items) or "- nothing open")


def draft(root: Path) -> None:
    """One line for Follow-ups.md from the `inbox` briefing piped in; exits 1 without one."""
    briefing = "" if sys.stdin is None or sys.stdin.isatty() else sys.stdin.read()
    section = briefing.partition("## Open")[2]
    if not section:
        print("no briefing on stdin: this task runs after [[Inbox briefing]]", file=sys.stderr)
        raise SystemExit(1)
    items = [m[1].strip() for line in section.splitlines() if (m := LIST_ITEM.match(line))]
    items = [item for item in items if item != "nothing open"]
    if not items:
        print(f"{date.today():%Y-%m-%d}: the inbox is clear")
        return
    plain = [WIKILINK.sub(lambda m: m[1], item) for item in items]
    print(f"{date.today():%Y-%m-%d}: sort the inbox ({len(items)} open): {'; '.join(plain)}")


def run_day() -> date:
    """The day a scheduled run was due (a run that starts late still checks its own day), or
    today for a run by hand."""
    due = os.environ.get("VAULTSCHED_SCHEDULED_FOR", "")
    try:
        return datetime.fromisoformat(due).astimezone().date() if due else date.today()
    except ValueError:
        return date.today()


def journal(root: Path) -> int:
    """Exit 1 while the day's journal note is missing: the failed run is the reminder."""
    note = f"{JOURNAL}/{run_day():%Y-%m-%d}.md"
    if (root / note).is_file():
        print(f"{note} is written")
        return 0
    print(f"{note} does not exist yet: write today's journal note", file=sys.stderr)
    return 1


def archive(root: Path) -> int:
    """Move the done items of Inbox.md to the end of Archive.md; nothing else changes."""
    inbox_note, archive_note = root / "Inbox.md", root / "Archive.md"
    text = inbox_note.read_text(encoding="utf-8")
    # Not inside code, the front matter or a run block: those lines only look like items.
    kept = [m.span() for m in (*CODE.finditer(text), *FRONT_MATTER.finditer(text))]
    kept += [m.span() for m in RUN_BLOCK.finditer(text)]
    done = [m for m in DONE_LINE.finditer(text) if not any(a <= m.start() < b for a, b in kept)]
    if not done:
        print("nothing to archive: Inbox.md has no done items")
        return 0
    if not archive_note.exists():
        header = "Done items that [[Archive done items]] moved out of [[Inbox]].\n\n"
        archive_note.write_text(header, encoding="utf-8")
    with archive_note.open("a", encoding="utf-8") as handle:  # first: a crash loses no item
        handle.writelines(f"- [x] {m[1]} (archived {date.today():%Y-%m-%d})\n" for m in done)
    starts, ends = [0] + [m.end() for m in done], [m.start() for m in done] + [len(text)]
    rest = "".join(text[start:end] for start, end in zip(starts, ends, strict=True))
    temporary = inbox_note.with_name(".Inbox.md.archive-tmp")
    temporary.write_text(rest, encoding="utf-8")
    os.replace(temporary, inbox_note)  # an editor watching the inbox sees one whole change
    print(f"archived {len(done)} done item(s) from Inbox.md to Archive.md:")
    print("\n".join(f"- {m[1]}" for m in done))
    return 0


COMMANDS: dict[str, Callable[[Path], int | None]] = {
    "briefing": briefing,
    "stats": stats,
    "cleanup": cleanup,
    "inbox": inbox,
    "draft": draft,
    "journal": journal,
    "archive": archive,
}


def main(argv: list[str]) -> int:
    if len(argv) != 1 or argv[0] not in COMMANDS:
        print(f"usage: vault_tools.py {{{','.join(COMMANDS)}}}", file=sys.stderr)
        return 2
    return COMMANDS[argv[0]](vault_root()) or 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
