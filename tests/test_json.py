"""`--json` of every command that reports something: one JSON document on stdout, of the shape
README's "JSON output" lists, and the exit code the text output has. Run in-process (the
`main` a shell calls), except where the real streams of a task's output matter."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from conftest import Cli, InProcess, git, runs, task_note

from vaultsched.core.model import Status

Shape = dict[str, type | tuple[type, ...]]
OPTIONAL_STR = (str, type(None))
RUN_KEYS: Shape = {
    "run_id": str,
    "task": str,
    "status": str,
    "exit_code": (int, type(None)),
    "trigger": str,
    "scheduled_for": OPTIONAL_STR,
    "started_at": str,
    "finished_at": str,
    "duration_s": float,
    "host": str,
    "attempt": int,
    "message": str,
    "log": str,
    "output_note": str,
    "queue": str,
    "waiting": bool,
}


def shaped(row: object, keys: Shape) -> dict[str, Any]:
    """`row` is an object with exactly these keys, each of its type; returned for more checks."""
    assert isinstance(row, dict)
    assert set(row) == set(keys)
    wrong = {k: row[k] for k, kind in keys.items() if not isinstance(row[k], kind)}
    assert wrong == {}
    return row


def committed(root: Path) -> None:
    git(root, "add", "-A")
    git(root, "commit", "-qm", "tasks")


# -- runs --------------------------------------------------------------------------------------


def test_run_now_prints_its_runs_and_streams_task_output_to_stderr(cli: Cli) -> None:
    task_note(cli.root, "Tasks/A.md", "command: echo out-of-A; echo err-of-A >&2\n")
    task_note(cli.root, "Tasks/B.md", 'after: "[[A]]"\ncommand: echo out-of-B\n')
    committed(cli.root)

    result = cli("run-now", "A", "--json")

    assert result.code == 0, result.err
    rows = json.loads(result.out)  # nothing the tasks printed is in stdout
    assert [(r["task"], r["status"], r["trigger"]) for r in rows] == [
        ("Tasks/A", "success", "manual"),
        ("Tasks/B", "success", "after"),
    ]
    first = shaped(rows[0], RUN_KEYS)
    assert first["exit_code"] == 0 and first["run_id"] == runs(cli.root)[0].run_id
    assert "out-of-A" in result.err and "err-of-A" in result.err and "out-of-B" in result.err


def test_run_now_json_of_a_failed_run_exits_1(cli: Cli) -> None:
    task_note(cli.root, "Tasks/Bad.md", "command: echo oops; exit 3\n")
    committed(cli.root)
    result = cli("run-now", "Bad", "--json", "--no-chain")
    assert result.code == 1
    (row,) = json.loads(result.out)
    assert (row["status"], row["exit_code"]) == ("failed", 3)


def test_approve_and_reject_print_what_they_did(vs: InProcess) -> None:
    task_note(vs.root, "Tasks/A.md", "command: echo a\n")
    for name in ("Act", "Other"):
        task_note(
            vs.root, f"Tasks/{name}.md", 'after: "[[A]]"\napproval: required\ncommand: echo go\n'
        )
    committed(vs.root)
    assert vs("run-now", "A").code == 0  # both followers now wait for approval

    (approved,) = vs.json("approve", "Act")
    shaped(approved, RUN_KEYS)
    assert (approved["task"], approved["status"], approved["trigger"]) == (
        "Tasks/Act",
        "success",
        "approved",
    )
    dropped: Shape = {"task": str, "run_id": str, "scheduled_for": OPTIONAL_STR}
    rejected = shaped(vs.json("reject", "Other"), dropped)
    assert rejected["task"] == "Tasks/Other"
    closed = [r for r in runs(vs.root) if r.run_id == rejected["run_id"]]
    assert [(r.status, r.message) for r in closed] == [(Status.SKIPPED, "rejected")]


# -- validate ----------------------------------------------------------------------------------


def test_validate_json_lists_each_problem_and_exits_1_on_an_error(vs: InProcess) -> None:
    task_note(vs.root, "Tasks/Good.md", "schedule: '@daily'\ncommand: echo ok\n")
    task_note(vs.root, "Tasks/Bad.md", "schedule: every fortnight\ncommand: echo ok\n")
    problems = vs.json("validate", code=1)
    (problem,) = problems
    shaped(problem, {"path": str, "line": int, "severity": str, "message": str})
    assert (problem["path"], problem["line"], problem["severity"]) == ("Tasks/Bad.md", 2, "error")
    assert vs.json("validate", "Tasks/Good.md") == []


# -- what changes a task -----------------------------------------------------------------------


def test_trust_and_untrust_print_what_they_recorded(vs: InProcess) -> None:
    task_note(vs.root, "Tasks/A.md", "command: sh scripts/a.sh\n")
    (vs.root / "scripts").mkdir()
    (vs.root / "scripts/a.sh").write_text("echo a\n")
    report = vs.json("trust", "A")
    assert report["config"] is None
    (row,) = report["tasks"]
    shaped(row, {"task": str, "command": str, "files": list, "changes": list, "warnings": list})
    assert (row["task"], row["command"], row["files"]) == (
        "Tasks/A",
        "sh scripts/a.sh",
        ["scripts/a.sh"],
    )
    assert row["changes"]  # first trust: what it is now

    untrusted = vs.json("untrust", "A")
    assert untrusted == {"tasks": [{"task": "Tasks/A"}]}


def test_trust_config_json(vs: InProcess) -> None:
    (vs.root / ".vaultsched/config.toml").write_text(
        'timezone = "UTC"\n\n[notify]\ncommand = "notify-send vaultsched"\n'
    )
    report = vs.json("trust", "--config")
    assert report["tasks"] == []
    config = shaped(report["config"], {"keys": list, "files": dict, "changes": list, "first": bool})
    assert config["keys"] == [{"key": "[notify] command", "value": "notify-send vaultsched"}]
    assert config["first"] is True


def test_pause_resume_and_new(vs: InProcess) -> None:
    new = vs.json("new", "Backup", "--schedule", "0 3 * * *", "--command", "echo hi")
    assert new == {
        "task": "Tasks/Backup",
        "path": "Tasks/Backup.md",
        "schedule": "0 3 * * *",
        "command": "echo hi",
    }
    settled = time.time() - 60  # saved long ago: the edit guard holds back no write
    os.utime(vs.root / "Tasks/Backup.md", (settled, settled))
    paused = {"task": "Tasks/Backup", "path": "Tasks/Backup.md", "enabled": False, "changed": True}
    assert vs.json("pause", "Backup") == paused
    assert vs.json("pause", "Backup") == {**paused, "changed": False}
    assert vs.json("resume", "Backup") == {**paused, "enabled": True}


# -- what is written ---------------------------------------------------------------------------


def test_digest_and_dashboard_print_their_paths(vs: InProcess) -> None:
    digest = vs.json("digest", "2026-03-01")
    assert digest == {
        "date": "2026-03-01",
        "path": str(vs.root.resolve() / "Digests" / "2026-03-01.md"),
    }
    assert Path(digest["path"]).is_file()
    assert vs.json("dashboard", "Boards/Tasks") == {"path": "Boards/Tasks.base", "written": True}
    assert vs.json("dashboard", "Boards/Tasks") == {"path": "Boards/Tasks.base", "written": False}


def test_init_json_says_what_it_created(tmp_path: Path, vs: InProcess) -> None:
    target = tmp_path / "fresh"
    report = vs.json("init", str(target))
    shaped(
        report,
        {"root": str, "created": list, "git_initialised": bool, "hooks": list, "notes": list},
    )
    assert report["root"] == str(target.resolve()) and report["git_initialised"] is True
    assert ".vaultsched/config.toml" in report["created"]
    assert [(h["hook"], h["outcome"]) for h in report["hooks"]] == [
        ("pre-commit", "installed"),
        ("post-merge", "installed"),
        ("post-checkout", "installed"),
    ]
    shaped(report["hooks"][0], {"hook": str, "outcome": str, "message": str})
    again = vs.json("init", str(target))
    assert again["created"] == [] and again["git_initialised"] is False


def test_hooks_install_json(vs: InProcess) -> None:
    hook = vs.root / ".git/hooks/pre-commit"
    hook.write_text("#!/bin/sh\necho mine\n")
    report = vs.json("hooks", "install")
    assert report["hooks_dir"] == str(vs.root.resolve() / ".git/hooks")
    outcomes = {h["hook"]: h["outcome"] for h in report["hooks"]}
    assert outcomes == {
        "pre-commit": "chained",
        "post-merge": "installed",
        "post-checkout": "installed",
    }
    again = vs.json("hooks", "install")
    assert {h["outcome"] for h in again["hooks"]} == {"unchanged"}


# -- the daemon, the remote, the service -------------------------------------------------------


def test_reindex_without_a_daemon(vs: InProcess) -> None:
    assert vs.json("reindex") == {"signalled": False, "pid": None}


def test_sync_json(tmp_path: Path, vs: InProcess) -> None:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(vs.root, "remote", "add", "origin", str(remote))
    git(vs.root, "push", "-q", "-u", "origin", "HEAD")
    assert vs.json("sync") == {"remote": "origin", "pulled": 0}


def test_service_status_json_when_not_installed(vs: InProcess) -> None:
    row = vs.json("service", "status")
    assert row["unit"] is None and row["active"] is False
    assert row["messages"] and all(isinstance(m, str) for m in row["messages"])
