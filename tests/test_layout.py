"""The `.vaultsched/` layout: where files already are in existing vaults must not move."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from vaultsched.adapters import statefs
from vaultsched.adapters.ledger import Ledger
from vaultsched.core import layout


def test_paths_are_where_existing_vaults_keep_them() -> None:
    running = ".vaultsched/state/running"
    assert layout.CONFIG == ".vaultsched/config.toml"
    assert layout.MARKS == ".vaultsched/state/marks.json"
    assert layout.INSTANCE_LOCK == ".vaultsched/state/daemon.lock"
    assert layout.GIT_LOCK == ".vaultsched/state/git.lock"
    assert layout.DAEMON_LOG == ".vaultsched/logs/daemon.log"
    assert layout.running_lock("Tasks/Sub/A b") == f"{running}/Tasks%2FSub%2FA b.lock"
    assert layout.logs_dir("Tasks/A") == ".vaultsched/logs/Tasks/A"
    assert layout.run_log("Tasks/A", "R1") == ".vaultsched/logs/Tasks/A/R1.log"
    assert layout.ledger_file("2024-05", "my host") == ".vaultsched/runs/2024-05/my_host.jsonl"
    recovered = ".vaultsched/recovered/Tasks%2FA.md.S.ff"
    assert layout.recovered_file("Tasks/A.md", "S", "ff") == recovered
    assert layout.written_mark("Tasks/A.md").startswith(".vaultsched/state/written/")


@pytest.mark.parametrize(
    "rel",
    [
        layout.CONFIG,
        layout.MARKS,
        layout.running_lock("Tasks/A"),
        layout.run_log("Tasks/A", "R1"),
        layout.written_mark("Tasks/A.md"),
        layout.lock_beside(layout.ledger_file("2024-05", "h")),
    ],
)
def test_every_state_path_is_one_statefs_opens(tmp_path: Path, rel: str) -> None:
    statefs.write_atomic(tmp_path, rel, b"x")
    assert statefs.read_bytes(tmp_path, rel) == b"x"


def test_the_ledger_writes_where_the_layout_says(tmp_path: Path) -> None:
    path = Ledger(tmp_path, "my host").file_for(datetime(2024, 5, 31, 23, 30, tzinfo=UTC))
    assert path == tmp_path / layout.ledger_file("2024-05", "my host")


def test_info_exclude_says_what_the_gitignore_says() -> None:
    rules = layout.GITIGNORE_TEXT.splitlines()
    expected = tuple(
        f"/{layout.DIR}/{rule}" if rule.endswith("/") else f"/{layout.DIR}/**/{rule}"
        for rule in rules
    )
    assert expected == layout.EXCLUDE_RULES
