"""Notifications with a real command; apprise when it is installed; failures never fatal."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import sys
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import Cli, make_vault, write_note

from vaultsched.adapters import notify
from vaultsched.adapters.config import NotifyConfig
from vaultsched.core.model import NotifyOn, Run, Status, Task, Trigger
from vaultsched.trust.fingerprint import files_reached

NOW = datetime(2026, 11, 22, 9, tzinfo=UTC)


def a_task(mode: NotifyOn) -> Task:
    return Task("Tasks/Back up", "Tasks/Back up.md", "x", (), ZoneInfo("UTC"), notify=mode)


def a_vault(tmp_path: Path) -> Path:
    """The vault root a notifier runs in: apart from the notifier scripts (outside the vault)."""
    root = tmp_path / "vault"
    root.mkdir(exist_ok=True)
    return root


def a_run(status: Status) -> Run:
    return Run(
        "r1",
        "Tasks/Back up",
        status,
        Trigger.SCHEDULE,
        NOW,
        "h",
        exit_code=3,
        output_tail="line 1\nit's $(broken)",
    )


@pytest.mark.parametrize(
    ("mode", "status", "sent"),
    [
        ("failure", Status.FAILED, True),
        ("failure", Status.SUCCESS, False),
        ("failure", Status.AWAITING_APPROVAL, True),
        ("always", Status.SUCCESS, True),
        ("never", Status.FAILED, False),
    ],
)
def test_command_form_with_a_real_script(
    tmp_path: Path, mode: NotifyOn, status: Status, sent: bool
) -> None:
    out = tmp_path / "got"
    script = tmp_path / "notifier.sh"
    script.write_text(f'#!/bin/sh\nprintf "%s|%s|%s|%s" "$1" "$2" "$3" "$4" > {out}\n')
    script.chmod(0o755)
    config = NotifyConfig(command=f"{script} {{title}} {{message}} {{task}} {{status}}")
    notify.send(config, a_task(mode), a_run(status), a_vault(tmp_path), files_reached)
    assert out.exists() is sent
    if sent:
        title, message, task, got_status = out.read_text().split("|")
        assert title == f"vaultsched: {status} Back up"
        assert message.startswith(f"Tasks/Back up: {status} (exit 3)")
        assert "it's $(broken)" in message  # shell-quoted, not executed
        assert (task, got_status) == ("Tasks/Back up", str(status))


def test_other_braces_in_the_command_survive(tmp_path: Path) -> None:
    out = tmp_path / "got"
    script = tmp_path / "notifier.sh"
    script.write_text(f'#!/bin/sh\nprintf "%s|%s" "$1" "$2" > {out}\n')
    script.chmod(0o755)
    config = NotifyConfig(command=f"{script} '{{print $1}}' {{status}}")
    notify.send(config, a_task("always"), a_run(Status.SUCCESS), a_vault(tmp_path), files_reached)
    assert out.read_text() == "{print $1}|success"


def test_a_failing_notifier_is_logged_not_raised(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.WARNING)
    for command, status in [
        ("sh -c 'exit 7'", Status.SUCCESS),
        ("/no/such/notifier", Status.SUCCESS),
        ("unbalanced 'quote", Status.FAILED),
    ]:
        notify.send(
            NotifyConfig(command=command),
            a_task("always"),
            a_run(status),
            a_vault(tmp_path),
            files_reached,
        )
    assert "notify command exited 7" in caplog.text
    assert "notify command failed" in caplog.text
    assert "cannot be split into words" in caplog.text


@pytest.mark.skipif(importlib.util.find_spec("apprise") is None, reason="apprise not installed")
def test_apprise_delivers_to_a_real_endpoint() -> None:
    """apprise's json:// posts to an HTTP server we run on loopback."""
    received: list[dict[str, object]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            received.append(json.loads(self.rfile.read(length)))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        url = f"json://127.0.0.1:{server.server_port}/"
        notify.send(
            NotifyConfig(urls=(url,)),
            a_task("always"),
            a_run(Status.FAILED),
            Path.cwd(),
            files_reached,
        )
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
    assert len(received) == 1
    assert received[0]["title"] == "vaultsched: failed Back up"
    assert str(received[0]["message"]).startswith("Tasks/Back up: failed (exit 3)")


def test_apprise_unreachable_is_only_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    notify.send(
        NotifyConfig(urls=("json://127.0.0.1:9/",)),
        a_task("always"),
        a_run(Status.FAILED),
        Path.cwd(),
        files_reached,
    )
    assert "could not deliver" in caplog.text or "apprise" in caplog.text


def test_apprise_missing_is_a_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import builtins

    real_import = builtins.__import__

    def no_apprise(name: str, *args: object, **kwargs: object) -> object:
        if name == "apprise":
            raise ImportError(name)
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_apprise)
    caplog.set_level(logging.WARNING)
    notify.send(
        NotifyConfig(urls=("json://x",)),
        a_task("always"),
        a_run(Status.SUCCESS),
        Path.cwd(),
        files_reached,
    )
    assert "pip install 'vaultsched[notify]'" in caplog.text


# -- the command is never read by a shell --------------------------------------------------------

VALUES = {"title": "t", "message": "m", "task": "Tasks/x", "status": "failed"}


@pytest.mark.parametrize(
    ("template", "values", "expected"),
    [
        # The example `init` writes: the quotes are shell-word quotes around one placeholder.
        (
            'notify-send "{title}" "{message}"',
            {**VALUES, "title": "a \"b\" $(id) `id` 'c'", "message": "l1\nl2; rm -rf ~"},
            ["notify-send", "a \"b\" $(id) `id` 'c'", "l1\nl2; rm -rf ~"],
        ),
        ("n --title={title} {status}", VALUES, ["n", "--title=t", "failed"]),
        ("n {title}:{status}", VALUES, ["n", "t:failed"]),
        # One pass: a value holding a placeholder is not expanded again.
        ("n {title} {message}", {**VALUES, "title": "{message}"}, ["n", "{message}", "m"]),
        # An option comes from the template only, never from a note's name.
        ("n -t {task}", {**VALUES, "task": "-o/evil"}, ["n", "-t", " -o/evil"]),
        ("n {task}", {**VALUES, "task": "--upload-pack=x"}, ["n", " --upload-pack=x"]),
        ("n '{print}' {nope}", VALUES, ["n", "{print}", "{nope}"]),
    ],
)
def test_placeholders_are_whole_arguments_never_shell_text(
    template: str, values: dict[str, str], expected: list[str]
) -> None:
    assert notify.argv(template, values) == expected


def test_values_reach_the_notifier_as_arguments_and_environment(tmp_path: Path) -> None:
    got = tmp_path / "got.json"
    script = recorder(tmp_path, got)
    config = NotifyConfig(command=f'{script} "{{title}}" "{{message}}" {{task}} {{status}}')
    notify.send(config, a_task("always"), a_run(Status.FAILED), a_vault(tmp_path), files_reached)
    (record,) = [json.loads(line) for line in got.read_text().splitlines()]
    title, message = notify.title_and_message(a_run(Status.FAILED))
    assert record["argv"] == [title, message, "Tasks/Back up", "failed"]
    assert record["env"] == {
        "VAULTSCHED_NOTIFY_TITLE": title,
        "VAULTSCHED_NOTIFY_MESSAGE": message,
        "VAULTSCHED_NOTIFY_TASK": "Tasks/Back up",
        "VAULTSCHED_NOTIFY_STATUS": "failed",
    }


def recorder(folder: Path, got: Path) -> Path:
    """A notifier outside the vault that appends its arguments and VAULTSCHED_NOTIFY_* to `got`."""
    script = folder / "recorder.py"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        "env = {k: v for k, v in os.environ.items() if k.startswith('VAULTSCHED_NOTIFY_')}\n"
        f"with open({str(got)!r}, 'a') as out:\n"
        "    out.write(json.dumps({'argv': sys.argv[1:], 'env': env}) + '\\n')\n"
    )
    script.chmod(0o755)
    return script


def test_a_hostile_note_name_or_output_runs_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attack on the old `notify-send "{title}" "{message}"` example, end to end: a synced
    note named `Weekly $(cd;touch pwned)` and a trusted task printing `$(...)` and backticks.
    Both notifications are sent; neither runs anything."""
    monkeypatch.delenv("VAULTSCHED_TRUST")
    home = Path(os.environ["HOME"])
    root = make_vault(tmp_path / "vault", config='timezone = "UTC"\n')
    cli = Cli(root)
    got = tmp_path / "got.json"
    user_config = Path(os.environ["XDG_CONFIG_HOME"]) / "vaultsched" / "config.toml"
    user_config.parent.mkdir(parents=True, exist_ok=True)
    template = f'{recorder(tmp_path, got)} "{{title}}" "{{message}}"'
    user_config.write_text(f"[notify]\ncommand = {json.dumps(template)}\n")
    evil = "Weekly $(cd;touch pwned1) `cd;touch pwned2`"
    write_note(root, f"Tasks/{evil}.md", "---\ncommand: echo hi\n---\n")
    printed = '$(cd;touch pwned3) `cd;touch pwned4` "; cd; touch pwned5; "'
    write_note(
        root,
        "Tasks/Out.md",
        f"---\ncommand: [printf, '%s\\n', {json.dumps(printed)}]\nnotify: always\n---\n",
    )
    assert cli("trust", "Out").code == 0

    assert cli("run-now", evil).code == 1  # untrusted: refused, and notified
    assert cli("run-now", "Out").code == 0

    records = [json.loads(line) for line in got.read_text().splitlines()]
    assert [len(r["argv"]) for r in records] == [2, 2]
    assert records[0]["argv"][0] == f"vaultsched: untrusted {evil}"
    assert printed in records[1]["argv"][1]
    assert not list(home.glob("pwned*")) and not list(tmp_path.rglob("pwned*"))


@pytest.mark.parametrize(
    ("notify_on", "status", "sent"),
    [
        ("failure", Status.BLOCKED, True),  # fail closed: a person must look
        ("failure", Status.SKIPPED, False),
        ("failure", Status.MISSED, False),
        ("always", Status.SKIPPED, False),  # nothing to do is no news
        ("always", Status.MISSED, True),
        ("never", Status.BLOCKED, False),
    ],
)
def test_which_workflow_statuses_notify(notify_on: NotifyOn, status: Status, sent: bool) -> None:
    task = Task("Tasks/T", "Tasks/T.md", "x", (), ZoneInfo("UTC"), notify=notify_on)
    run = Run("r", task.id, status, Trigger.SCHEDULE, datetime(2026, 3, 1, tzinfo=UTC), "h")
    assert notify.wanted(task, run) is sent
