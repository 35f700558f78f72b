"""Config trust: the vault config's keys that run, send or pick git's remote need this user's
trust (`trust --config`) or must come from the per-user config."""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest
from conftest import Cli, DaemonProcess, InProcess, git, runs, wait_for, write_note

from vaultsched.adapters import notify
from vaultsched.core.model import Run, Status, Task, Trigger
from vaultsched.trust.config import CONFIG_ID, effective_config, trust_config
from vaultsched.trust.fingerprint import files_reached
from vaultsched.trust.store import TrustStore

IGNORED = "ignored (not trusted on this machine)"


@pytest.fixture(autouse=True)
def real_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAULTSCHED_TRUST")


def set_config(root: Path, text: str) -> None:
    (root / ".vaultsched" / "config.toml").write_text('timezone = "UTC"\n' + text)


def untrusted_task(root: Path, schedule: str = "") -> None:
    """A task note nobody trusted: its refusal is notified (`notify: failure`)."""
    front = f"schedule: {schedule}\n" if schedule else ""
    path = write_note(root, "Tasks/T.md", f"---\n{front}command: echo hi\n---\n")
    old = time.time() - 60
    os.utime(path, (old, old))


def user_config(text: str) -> None:
    path = Path(os.environ["XDG_CONFIG_HOME"]) / "vaultsched" / "config.toml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_an_untrusted_notify_command_in_the_vault_config_never_runs(
    vs: InProcess, tmp_path: Path, daemons: Callable[..., DaemonProcess]
) -> None:
    """The attack: a sync brings a config with `[notify] command` and an untrusted note; the
    note's refusal would be notified on every daemon host. The vault cannot relax trust."""
    marker = tmp_path / "MARKER"
    set_config(vs.root, f'trust = "any"\n\n[notify]\ncommand = "touch {marker}"\n')
    untrusted_task(vs.root, schedule="every 1s")
    daemon = daemons(vs.root)
    wait_for(lambda: any(r.status is Status.UNTRUSTED for r in runs(vs.root)), what="refusal")
    assert daemon.stop() == 0
    assert not marker.exists()
    log = daemon.output()
    assert log.count(IGNORED) == 1, log
    assert f"[notify] command {IGNORED}" in log
    assert f"vaultsched --vault {vs.root} trust --config" in log

    trusted = vs("trust", "--config")
    assert trusted.code == 0
    assert f'  [notify] command = "touch {marker}"' in trusted.out
    assert vs("run-now", "T").code == 1  # the task itself is still untrusted...
    assert marker.exists()  # ...and now its refusal is notified through the trusted command


def test_an_untrusted_notify_url_receives_nothing(vs: InProcess) -> None:
    """Exfiltration: `[notify] urls` would post note names and task output anywhere."""
    received: list[bytes] = []
    with loopback(received) as url:
        set_config(vs.root, f'[notify]\nurls = ["{url}"]\n')
        untrusted_task(vs.root)
        assert vs("run-now", "T").code == 1
        assert received == []
        status = json.loads(vs("status", "--json").out)["config"]
        assert (status["state"], status["keys"]) == ("untrusted", ["[notify] urls"])
        assert vs("trust", "--config").code == 0
        assert vs("run-now", "T").code == 1
    assert len(received) == 1


@pytest.fixture
def bare_remote(vs: InProcess, tmp_path: Path) -> Path:
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(remote))
    git(vs.root, "remote", "add", "origin", str(remote))
    return remote


def test_untrusted_sync_pushes_nothing(vs: InProcess, bare_remote: Path) -> None:
    set_config(vs.root, '[git]\nsync = true\nsync_interval = "1s"\n')
    write_note(vs.root, "Tasks/T.md", "---\ncommand: echo hi\n---\n")
    assert vs("trust", "T").code == 0
    assert vs("run-now", "T").code == 0
    once = vs("run", "--once")
    assert once.code == 0 and once.err.count(IGNORED) == 1, once.err
    assert git(bare_remote, "for-each-ref") == ""  # nothing pushed

    assert "[git] sync = true" in vs("trust", "--config").out
    assert vs("run", "--once").code == 0
    assert "refs/heads/main" in git(bare_remote, "for-each-ref")


def test_the_per_user_config_needs_no_trust_and_wins(vs: InProcess, tmp_path: Path) -> None:
    everywhere, here = tmp_path / "everywhere", tmp_path / "here"
    set_config(vs.root, f'[notify]\ncommand = "touch {tmp_path / "vault-said"}"\n')
    user_config(f'[notify]\ncommand = "touch {everywhere}"\n')
    untrusted_task(vs.root)
    assert vs("run-now", "T").code == 1
    assert everywhere.exists() and not (tmp_path / "vault-said").exists()

    user_config(
        f'[notify]\ncommand = "touch {everywhere}"\n\n'
        f'[vaults."{vs.root.resolve()}".notify]\ncommand = "touch {here}"\n'
    )
    assert vs("trust", "--config").code == 0  # even trusted, the vault's value loses
    assert vs("run-now", "T").code == 1
    assert here.exists() and not (tmp_path / "vault-said").exists()


def test_status_doctor_and_trust_show_the_config_trust_line(vs: InProcess) -> None:
    assert "config: nothing in .vaultsched/config.toml needs trust" in vs("status").out
    # Defaults need no trust.
    set_config(vs.root, '[git]\nremote = "origin"\nsync = false\n[notify]\ncommand = ""\n')
    assert json.loads(vs("status", "--json").out)["config"]["state"] == "none"

    set_config(vs.root, '[notify]\ncommand = "notify-send \\"{title}\\" \\u001b[8m"\n')
    status = vs("status")
    assert (
        "config: ignored until you trust them: [notify] command  ->  vaultsched trust --config"
        in status.out
    )
    doctor = vs("doctor", "--json")
    (check,) = [c for c in json.loads(doctor.out) if c["check"] == "config trust"]
    assert (check["status"], check["fix"]) == ("warn", "vaultsched trust --config")

    first = vs("trust", "--config")
    assert "\x1b" not in first.out  # what is trusted is what is shown: no raw escapes
    assert '[notify] command = "notify-send \\"{title}\\" \\u001b[8m"' in first.out
    assert "config: trusted: [notify] command" in vs("status").out

    set_config(vs.root, '[notify]\ncommand = "other"\n[git]\nsync = true\n')
    assert json.loads(vs("status", "--json").out)["config"]["state"] == "untrusted"
    again = vs("trust", "--config").out
    assert "changed since you last trusted it:" in again
    assert '  - [notify] command = "notify-send' in again
    assert '  + [notify] command = "other"' in again
    assert "  + [git] sync = true" in again
    assert vs("trust", "--config").out.count("unchanged since you last trusted it") == 1
    snapshot = Path(os.environ["XDG_STATE_HOME"]) / "vaultsched" / "trusted-config.json"
    assert snapshot.stat().st_mode & 0o777 == 0o600


def test_trust_any_from_outside_the_vault_relaxes_config_trust_too(
    vs: InProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    marker = tmp_path / "MARKER"
    set_config(vs.root, f'[notify]\ncommand = "touch {marker}"\n')
    untrusted_task(vs.root)
    monkeypatch.setenv("VAULTSCHED_TRUST", "any")
    assert json.loads(vs("status", "--json").out)["config"]["state"] == "any"
    assert vs("run-now", "T").code == 0
    assert not marker.exists()  # a success is not notified (`notify: failure`)...
    write_note(vs.root, "Tasks/F.md", "---\ncommand: exit 3\n---\n")
    assert vs("run-now", "F").code == 1
    assert marker.exists()  # ...a failure is, through the vault's command


def test_init_trusts_the_config_it_writes(tmp_path: Path) -> None:
    """Through the real process, as a new user starts (the other commands here run in-process)."""
    root = tmp_path / "new"
    assert Cli(root)("init", str(root)).code == 0
    assert CONFIG_ID in TrustStore().trusted(root)
    assert "config: nothing in .vaultsched/config.toml needs trust" in Cli(root)("status").out


class _Recorder(BaseHTTPRequestHandler):
    received: list[bytes]

    def do_POST(self) -> None:
        self.received.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@contextlib.contextmanager
def loopback(received: list[bytes]) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 recording POST bodies; yields apprise's json:// URL for it."""
    handler = type("Handler", (_Recorder,), {"received": received})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        yield f"json://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def test_a_vault_script_the_trusted_notify_command_runs_is_covered(
    vs: InProcess, tmp_path: Path
) -> None:
    """The attack: `[notify] command = "sh scripts/notify.sh {title}"` is trusted, then a sync
    rewrites scripts/notify.sh. The config is untrusted again and the notifier does not run."""
    marker, log = tmp_path / "MARKER", tmp_path / "notified"
    write_note(vs.root, "scripts/notify.sh", f'echo "$1" >> {log}\n')
    set_config(vs.root, '[notify]\ncommand = "sh scripts/notify.sh {title}"\n')
    trusted = vs("trust", "--config")
    assert "  covers scripts/notify.sh (sha256 " in trusted.out
    untrusted_task(vs.root)
    assert vs("run-now", "T").code == 1 and log.exists()  # run from the vault root

    write_note(vs.root, "scripts/notify.sh", f"touch {marker}\n")
    assert json.loads(vs("status", "--json").out)["config"]["state"] == "untrusted"
    assert vs("run-now", "T").code == 1
    assert not marker.exists()
    again = vs("trust", "--config").out
    assert "  - [notify] command reaches = " in again and not marker.exists()


def test_a_daemon_does_not_run_a_notify_script_edited_after_it_read_the_config(
    vault_root: Path, tmp_path: Path
) -> None:
    """A daemon keeps the config it read: the files the command runs are checked at each send."""
    marker, log = tmp_path / "MARKER", tmp_path / "notified"
    write_note(vault_root, "scripts/notify.sh", f"touch {log}\n")
    set_config(vault_root, '[notify]\ncommand = "sh scripts/notify.sh"\n')
    trust_config(vault_root)
    config = effective_config(vault_root).notify
    task = Task("Tasks/T", "Tasks/T.md", "x", (), effective_config(vault_root).timezone)
    run = Run("r", "Tasks/T", Status.FAILED, Trigger.MANUAL, datetime.now(UTC), "h")
    notify.send(config, task, run, vault_root, files_reached)
    assert log.exists()
    write_note(vault_root, "scripts/notify.sh", f"touch {marker}\n")
    notify.send(config, task, run, vault_root, files_reached)
    assert not marker.exists()
