"""Notifications with a real command; apprise when it is installed; failures never fatal."""

from __future__ import annotations

import importlib.util
import json
import logging
import threading
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from vaultsched import notify
from vaultsched.config import NotifyConfig
from vaultsched.model import Run, Status, Task, Trigger

NOW = datetime(2026, 11, 22, 9, tzinfo=UTC)


def a_task(mode: str) -> Task:
    return Task("Tasks/Back up", "Tasks/Back up.md", "x", (), ZoneInfo("UTC"), notify=mode)


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
    tmp_path: Path, mode: str, status: Status, sent: bool
) -> None:
    out = tmp_path / "got"
    script = tmp_path / "notifier.sh"
    script.write_text(f'#!/bin/sh\nprintf "%s|%s|%s|%s" "$1" "$2" "$3" "$4" > {out}\n')
    script.chmod(0o755)
    config = NotifyConfig(command=f"{script} {{title}} {{message}} {{task}} {{status}}")
    notify.send(config, a_task(mode), a_run(status))
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
    notify.send(config, a_task("always"), a_run(Status.SUCCESS))
    assert out.read_text() == "{print $1}|success"


def test_a_failing_notifier_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    notify.send(NotifyConfig(command="sh -c 'exit 7'"), a_task("always"), a_run(Status.SUCCESS))
    notify.send(NotifyConfig(command="/no/such/notifier"), a_task("always"), a_run(Status.SUCCESS))
    notify.send(NotifyConfig(command="unbalanced 'quote"), a_task("always"), a_run(Status.FAILED))
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
        notify.send(NotifyConfig(urls=(url,)), a_task("always"), a_run(Status.FAILED))
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
    assert len(received) == 1
    assert received[0]["title"] == "vaultsched: failed Back up"
    assert str(received[0]["message"]).startswith("Tasks/Back up: failed (exit 3)")


def test_apprise_unreachable_is_only_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    notify.send(NotifyConfig(urls=("json://127.0.0.1:9/",)), a_task("always"), a_run(Status.FAILED))
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
    notify.send(NotifyConfig(urls=("json://x",)), a_task("always"), a_run(Status.SUCCESS))
    assert "pip install 'vaultsched[notify]'" in caplog.text
