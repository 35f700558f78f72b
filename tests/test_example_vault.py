"""The bundled example vault: valid, its scripts work, and `vaultsched demo` runs it."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import Cli, git, runs, wait_for

from vaultsched.model import Status

EXAMPLE = Path(__file__).resolve().parent.parent / "vault"
SCHEDULES = {
    "Tasks/Check links now": [],
    "Tasks/Daily briefing": ["0 7 * * 1-5"],
    "Tasks/Vault stats": ["0 * * * *"],
    "Tasks/Weekly cleanup report": ["0 18 * * FRI"],
}


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    root = tmp_path / "example"
    shutil.copytree(EXAMPLE, root)
    return root


def script(root: Path, name: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, f"scripts/{name}.py"],
        cwd=root,
        env={**os.environ, "VAULTSCHED_VAULT": str(root)},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_validates_and_lists_its_four_tasks(copy: Path) -> None:
    cli = Cli(copy)
    result = cli("validate")
    assert result.code == 0, result.out + result.err
    listed = json.loads(cli("list", "--json").out)
    assert {t["task"]: t["schedule"] for t in listed} == SCHEDULES
    assert all(t["valid"] and t["enabled"] for t in listed)


def test_scripts_report_what_the_vault_holds(copy: Path) -> None:
    stats = script(copy, "vault_stats")
    assert stats.returncode == 0
    assert "open items: 6" in stats.stdout and "attachments: 2" in stats.stdout

    report = script(copy, "cleanup_report")
    assert report.returncode == 1  # it found something: the run needs attention
    assert "Inbox.md: [[Missing note]]" in report.stdout
    assert "attachments/old-screenshot.png" in report.stdout
    assert "bed-plan.png" not in report.stdout  # linked from Projects/Garden

    briefing = script(copy, "briefing", stdin="- Call the plumber\n")
    assert briefing.returncode == 0
    assert "Order seed potatoes (Projects/Garden)" in briefing.stdout
    assert "- Call the plumber" in briefing.stdout


def test_run_now_feeds_the_briefing_its_own_body(copy: Path) -> None:
    git(copy, "init", "-q")
    result = Cli(copy)("run-now", "Daily briefing")
    assert result.code == 0, result.err
    assert "Water the tomatoes" in result.out  # a reminder from the note body, via stdin
    note = (copy / "Tasks/Daily briefing.md").read_text()
    assert "vaultsched:runs:begin" in note and "Water the tomatoes" in note
    assert git(copy, "log", "--format=%an").split() == ["vaultsched"]


@pytest.mark.integration
def test_demo_runs_the_sped_up_vault_until_ctrl_c(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VAULTSCHED_TRUST")  # the demo trusts its tasks itself
    target = tmp_path / "demo"
    proc = subprocess.Popen(
        [sys.executable, "-m", "vaultsched", "demo", str(target)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        wait_for(lambda: len(runs(target)) >= 1, timeout=40, what="a demo run")
        time.sleep(0.5)  # let the landing thread write the note
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, out
    assert f"Demo vault: {target}" in out.replace("\n", "")
    landed = runs(target)
    assert landed and all(run.task in out for run in landed)  # each run printed as it lands
    assert all(run.status is not Status.UNTRUSTED for run in landed)
    assert "Stopped." in out
    authors = set(git(target, "log", "--format=%an").split())
    assert "vaultsched" in authors
    assert git(target, "status", "--porcelain") == ""
