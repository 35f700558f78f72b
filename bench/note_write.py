"""Note write: the cost of one run-block write into a task note, alone and while an editor saves
the same note in place every 15 ms (the writer then has to wait out, compare and merge saves)."""

from __future__ import annotations

import argparse
import functools
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import save, summary, table

from vaultsched.adapters.notes import NoteWriter
from vaultsched.core import blocks

EDITOR = r"""
import sys, time
path, stop = sys.argv[1], sys.argv[2]
i = 0
while True:
    try:
        open(stop).close()
        break
    except FileNotFoundError:
        pass
    with open(path, encoding="utf-8") as handle:
        text = handle.read()
    at = text.find("%% vaultsched:runs:begin")
    text = text[:at] + f"typed {i}\n" + text[at:]
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    i += 1
    time.sleep(0.015)
print(i)
"""


def timed_writes(root: Path, writes: int) -> tuple[list[float], int]:
    """Milliseconds per write, and how many writes gave up (the note kept changing)."""
    writer = NoteWriter(root, quiet=0.0, max_wait=0.0)  # every write races the editor
    times = []
    gave_up = 0
    for n in range(writes):
        inner = "".join(f"> run {n} line {k}\n" for k in range(20))
        splice = functools.partial(blocks.splice_block, markers=blocks.RUNS, inner=inner)
        started = time.perf_counter()
        try:
            writer.update("n.md", splice)
        except OSError:
            gave_up += 1
        times.append((time.perf_counter() - started) * 1000)
    return times, gave_up


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--writes", type=int, default=500)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory(prefix="vaultsched-bench-") as tmp:
        root = Path(tmp)
        note = root / "n.md"
        start = "---\ncommand: x\n---\n" + "A line of my own notes.\n" * 120
        note.write_text(blocks.splice_block(start, blocks.RUNS, "none yet\n"))
        times, gave_up = timed_writes(root, args.writes)
        results["alone"] = {**summary(times), "gave_up": gave_up}
        stop = root / "stop"
        editor = subprocess.Popen(
            [sys.executable, "-c", EDITOR, str(note), str(stop)], stdout=subprocess.PIPE, text=True
        )
        times, gave_up = timed_writes(root, args.writes)
        results["editor saving every 15 ms"] = {**summary(times), "gave_up": gave_up}
        stop.touch()
        saves = int(editor.communicate(timeout=30)[0])
        kept = sum(f"typed {i}\n" in note.read_text() for i in range(saves))
    table(
        f"Note write: {args.writes} run-block writes into a 3 KB note (ms per write)",
        [
            [name, f"{s['p50']:.2f}", f"{s['p99']:.2f}", f"{s['max']:.2f}", s["gave_up"]]
            for name, s in results.items()
        ],
        ["case", "p50", "p99", "max", "gave up"],
    )
    print(f"  editor saves kept: {kept} of {saves}")
    save("note_write", {"writes": args.writes, **results, "saves": saves, "saves_kept": kept})


if __name__ == "__main__":
    main()
