"""Telling an in-place save under way from a finished one (Linux read leases)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from vaultsched.adapters.leases import writers_open

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux leases")

HOLD_OPEN = r"""
import sys
with open(sys.argv[1], "a") as handle:
    print("open", flush=True)
    sys.stdin.readline()
"""


def test_a_writer_in_another_process_is_seen_until_it_closes(tmp_path: Path) -> None:
    note = tmp_path / "n.md"
    note.write_text("text\n")
    fd = os.open(note, os.O_RDONLY)
    try:
        assert writers_open(fd) is False
        holder = subprocess.Popen(
            [sys.executable, "-c", HOLD_OPEN, str(note)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        assert writers_open(fd) is True
        assert writers_open(fd) is True  # a probe takes nothing away: still seen
        holder.communicate("done\n", timeout=10)
        assert writers_open(fd) is False
        # Readers do not count, and a probe holds nothing: a writer opens at once.
        with note.open() as reader, note.open("a") as writer:
            assert reader and writer
    finally:
        os.close(fd)


def test_a_file_we_cannot_lease_is_unknown_not_busy(tmp_path: Path) -> None:
    folder = os.open(tmp_path, os.O_RDONLY)  # not a regular file: the kernel refuses a lease
    try:
        assert writers_open(folder) is None
    finally:
        os.close(folder)
