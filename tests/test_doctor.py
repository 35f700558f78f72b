"""`vaultsched doctor`: each kind of drift is named with its fix; a healthy vault is all ok."""

from __future__ import annotations

import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import Cli, git, write_note

from vaultsched.adapters.ledger import Ledger, finish_record
from vaultsched.core.model import Run, Status, Trigger

TASK = "---\nschedule: '@daily'\ncommand: echo hi\n---\nBody.\n"


def checks(cli: Cli) -> tuple[int, dict[str, dict[str, str]]]:
    result = cli("doctor", "--json")
    return result.code, {c["check"]: c for c in json.loads(result.out)}


def test_a_healthy_vault_is_all_ok(cli: Cli) -> None:
    write_note(cli.root, "Tasks/Fine.md", TASK)
    git(cli.root, "add", "-A")
    git(cli.root, "commit", "-qm", "task")
    assert cli("run-now", "Fine").code == 0
    code, found = checks(cli)
    assert code == 0
    assert {c["status"] for c in found.values()} == {"ok"}, found
    human = cli("doctor")
    assert human.code == 0 and "git: on branch main" in human.out


def test_every_kind_of_drift_is_named_with_its_fix(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = cli.root
    for name in ("Gone", "Shared", "Untrusted"):
        write_note(root, f"Tasks/{name}.md", TASK)
    write_note(root, "Tasks/Broken.md", "---\nschedule: */5 * * * *\ncommand: x\n---\n")
    assert cli("run-now", "Gone").code == 0
    (root / "Tasks/Gone.md").unlink()  # orphaned history
    (digest,) = (root / "Digests").glob("*.md")
    digest.unlink()  # a view lost
    write_note(root, "Tasks/Block.md", TASK + "%% vaultsched:runs:begin %%\nno end\n")
    write_note(root, "Conflicted.md", "<<<<<<< HEAD\nmine\n=======\ntheirs\n>>>>>>> other\n")
    write_note(root, "Tasks/Shared (Conflicted copy laptop 2026-11-20).md", TASK)
    now = datetime.now(UTC)
    for host in ("laptop", "server"):  # one unpinned task fired by two hosts
        run = Run(f"r-{host}", "Tasks/Shared", Status.SUCCESS, Trigger.SCHEDULE, now, host)
        Ledger(root, host).append(finish_record(run, "Tasks/Shared.md"))
    index_lock = root / ".git/index.lock"
    index_lock.write_text("")
    old = time.time() - timedelta(hours=1).total_seconds()
    os.utime(index_lock, (old, old))
    write_note(root, ".vaultsched/recovered/Tasks%2FBlock.md.20261124T005000.ab12", "typed\n")
    monkeypatch.delenv("VAULTSCHED_TRUST")
    assert cli("trust", "Shared", "Block").code == 0

    code, found = checks(cli)
    assert code == 1
    expect = {
        "task notes": ("fail", "vaultsched validate"),
        "trust": ("warn", 'vaultsched trust "Tasks/Untrusted"'),
        "run blocks": ("warn", "stray"),
        "conflict markers": ("fail", "resolve"),
        "notes and digests": ("warn", "vaultsched digest"),
        "ledger": ("warn", ""),
        "hosts": ("warn", "host:"),
        "locks": ("warn", "rm .git/index.lock"),
        "sync copies": ("warn", "merge"),
        "recovered saves": ("warn", ".vaultsched/recovered/"),
    }
    for name, (status, fix) in expect.items():
        assert found[name]["status"] == status, found[name]
        assert fix in found[name]["fix"], found[name]
    assert "Tasks/Gone" in found["ledger"]["detail"]
    assert "Tasks/Shared" in found["hosts"]["detail"]
    index_lock.unlink()


def test_git_states(cli: Cli, tmp_path: Path) -> None:
    git(cli.root, "checkout", "-q", "--detach")
    assert "detached HEAD" in checks(cli)[1]["git"]["detail"]
    plain = tmp_path / "plain"
    (plain / ".vaultsched").mkdir(parents=True)
    _, found = checks(Cli(plain))
    assert found["git"]["status"] == "warn" and found["git"]["fix"] == "git init"
    assert found["ledger"]["detail"].startswith("0 runs")
