"""Generate a realistic vault: N notes, T of them task notes, deterministic from a seed.

`python bench/make_vault.py DIR --notes 100000 --tasks 1000 --seed 1`; with `--store`, DIR is a
folder of vaults kept between runs (`cached`), each made on first use. Nested folders (about 40
notes each, up to three deep), bodies of a few hundred bytes to a few KB, front matter on some
ordinary notes, attachments, and a few malformed notes (bad YAML, an unquoted `*` schedule).
"""

from __future__ import annotations

import argparse
import hashlib
import random
import shutil
from pathlib import Path

from vaultsched.cli.scaffold import init_vault

WORDS = [
    "garden",
    "seed",
    "potato",
    "compost",
    "meeting",
    "draft",
    "idea",
    "review",
    "budget",
    "plan",
    "water",
    "shed",
    "tomato",
    "invoice",
    "trip",
    "book",
    "chapter",
    "note",
    "link",
    "project",
    "inbox",
    "week",
    "month",
    "call",
    "email",
    "list",
]
SCHEDULES = (
    *('"0 7 * * 1-5"', '"0 * * * *"', '"30 18 * * FRI"', "'@daily'", "'@weekly'"),
    *('"every 15m"', '"every 2h"', '"*/10 9-17 * * 1-5"', '"0 0 1 * *"'),
)


def paragraph(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def body(rng: random.Random) -> str:
    parts = [f"# {paragraph(rng, 3)}"]
    for _ in range(rng.randint(1, 8)):
        parts.append(paragraph(rng, rng.randint(20, 90)))
        if rng.random() < 0.3:
            parts.append(f"- [ ] {paragraph(rng, 5)}\n- [x] {paragraph(rng, 4)}")
        if rng.random() < 0.2:
            parts.append(f"See [[Note {rng.randint(0, 999)}]].")
    return "\n\n".join(parts) + "\n"


def folders(rng: random.Random, count: int) -> list[str]:
    """A folder tree one to three deep, about 40 notes a folder as in a long-kept vault."""
    tree: list[str] = []
    seen: set[str] = set()  # the same tree as a scan of `tree`, without its cost at 25,000
    while len(tree) < count:
        parent = rng.choice(tree) if tree and rng.random() < 0.7 else ""
        name = f"{rng.choice(WORDS).title()} {rng.randint(0, 30)}"
        path = f"{parent}/{name}" if parent else name
        if path.count("/") < 3 and path not in seen:
            tree.append(path)
            seen.add(path)
    return tree


def task_note(rng: random.Random, n: int, schedule: str | None) -> str:
    chosen = f'"{schedule}"' if schedule else rng.choice(SCHEDULES)
    return f"---\ntags: [vaultsched]\nschedule: {chosen}\ncommand: echo task {n}\n---\n{body(rng)}"


def make(root: Path, notes: int, tasks: int, seed: int, schedule: str | None = None) -> Path:
    rng = random.Random(seed)
    init_vault(root)
    for path in (root / "Tasks").glob("*.md"):
        path.unlink()  # only generated tasks: the counts stay exact
    bad = max(1, tasks // 100)
    tree = folders(rng, max(10, notes // 40))
    task_tree = folders(rng, max(5, tasks // 40))
    for n in range(notes):
        if n < tasks:
            rel, text = f"Tasks/{rng.choice(task_tree)}/Task {n}.md", task_note(rng, n, schedule)
        elif n < tasks + bad:
            broken = rng.choice(("schedule: */5 * * * *\ncommand: x\n", "command: [unclosed\n"))
            rel, text = f"Tasks/Broken {n}.md", f"---\n{broken}---\n{body(rng)}"
        else:
            front = "---\ntags: [note]\n---\n" if rng.random() < 0.3 else ""
            rel, text = f"{rng.choice(tree)}/Note {n}.md", front + body(rng)
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    attachments = root / "attachments"
    attachments.mkdir(exist_ok=True)
    for n in range(max(1, notes // 200)):
        (attachments / f"image {n}.png").write_bytes(rng.randbytes(rng.randint(200, 4000)))
    return root


def cached(store: Path, notes: int, tasks: int, seed: int, schedule: str | None = None) -> Path:
    """The vault `make` would generate, kept in `store` between runs: a million notes take
    minutes to write. Made on first use; one cut short (no `.done` beside it) is made again."""
    name = f"notes-{notes}-tasks-{tasks}-seed-{seed}"
    if schedule:
        name += "-" + hashlib.sha1(schedule.encode()).hexdigest()[:8]
    root, done = store / name, store / f"{name}.done"
    if not done.exists():
        shutil.rmtree(root, ignore_errors=True)
        store.mkdir(parents=True, exist_ok=True)
        make(root, notes, tasks, seed, schedule)
        done.touch()
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--notes", type=int, default=100_000)
    parser.add_argument("--tasks", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--task-schedule", help="force one schedule, e.g. 'every 1s'")
    parser.add_argument("--store", action="store_true", help="ROOT keeps vaults between runs")
    args = parser.parse_args()
    made = cached if args.store else make
    root = made(args.root, args.notes, args.tasks, args.seed, args.task_schedule)
    print(f"{root}: {args.notes} notes, {args.tasks} tasks")


if __name__ == "__main__":
    main()
