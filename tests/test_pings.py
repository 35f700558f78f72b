"""Dead-man's-switch pings (healthchecks.io's protocol) against a real local HTTP server: the
URLs as data, then runs through the real CLI and a real daemon."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import Cli, DaemonProcess, runs_of, task_note, wait_for

from vaultsched.adapters.config import parse_config
from vaultsched.adapters.pinger import Ping, Pinger, failures
from vaultsched.core.errors import VaultschedError
from vaultsched.core.model import Status
from vaultsched.core.pings import rid, shown, slug, to_ping_url, url_for, with_signal
from vaultsched.core.taskfile import parse_task

SECRET = "s3cr3t-value-9876"


@dataclass(frozen=True)
class Hit:
    method: str
    path: str
    body: bytes
    agent: str


@dataclass
class Endpoint:
    server: ThreadingHTTPServer
    hits: list[Hit] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def paths(self) -> list[str]:
        return [hit.path for hit in self.hits]


def serve(handle: Callable[[BaseHTTPRequestHandler, Endpoint], None] | None = None) -> Endpoint:
    holder: list[Endpoint] = []

    class Handler(BaseHTTPRequestHandler):
        def _any(self) -> None:
            endpoint = holder[0]
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            agent = self.headers.get("User-Agent", "")
            endpoint.hits.append(Hit(self.command, self.path, body, agent))
            if handle is not None:
                handle(self, endpoint)
                return
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"OK")

        do_GET = do_POST = _any

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.block_on_close = False
    holder.append(Endpoint(server))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return holder[0]


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    found = serve()
    yield found
    found.server.shutdown()
    found.server.server_close()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ping_task(root: Path, url: str, command: str = "echo hello", extra: str = "") -> None:
    task_note(root, "Tasks/Backup job.md", f"command: {command}\nping: {url}\n{extra}")


# -- the URLs, as data ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        "file:///etc/passwd",
        "ftp://example.com/x",
        "https://user:pass@hc-ping.com/abc",
        "https://token@hc-ping.com/abc",
        "hc-ping.com/abc",
        "https://",
        "https://hc-ping.com/a b",
        "https://hc-ping.com/x#frag",
        "",
        42,
    ],
)
def test_a_ping_must_be_an_http_url_without_credentials(bad: object) -> None:
    with pytest.raises(ValueError, match="must"):
        to_ping_url(bad)


def test_a_task_note_ping_is_checked_by_validate() -> None:
    config = parse_config({"timezone": "UTC"})
    parsed = parse_task("T.md", "command: x\nping: file:///etc/passwd\n", config)
    assert parsed.task is None
    assert any("ping: must be an http" in p.message for p in parsed.problems)
    good = parse_task("T.md", "command: x\nping: https://hc-ping.com/abc\n", config)
    assert good.task is not None and good.task.ping == "https://hc-ping.com/abc"


def test_slugs_signals_and_what_is_shown() -> None:
    assert slug("Daily briefing (v2)!") == "daily-briefing-v2"
    template = "https://hc-ping.com/KEY123/{task_slug}"
    assert url_for("Daily briefing", None, template) == "https://hc-ping.com/KEY123/daily-briefing"
    assert url_for("X", "https://own/1", template) == "https://own/1"
    assert url_for("X", None, "") == ""
    assert with_signal("https://h/u/", "fail", "r1") == f"https://h/u/fail?rid={rid('r1')}"
    assert with_signal("https://h/u?create=1", "start") == "https://h/u/start?create=1"
    assert shown("https://hc-ping.com/KEY123/daily-briefing", "daily-briefing") == (
        "https://hc-ping.com/…/daily-briefing"
    )
    assert "KEY" not in shown("https://hc-ping.com/KEY123/x")
    assert rid("r1") == rid("r1") != rid("r2")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[ping]\nurl = "ftp://x/{task_slug}"\n', "must be an http"),
        ('[ping]\ndaemon = "https://u:p@x/y"\n', "user name or password"),
        ('[ping]\ndaemon_interval = "0s"\n', "daemon_interval"),
        ("[ping]\nurls = []\n", "unknown keys: urls"),
    ],
)
def test_bad_ping_config_is_an_error_naming_the_key(text: str, message: str) -> None:
    import tomllib

    with pytest.raises(VaultschedError, match=message):
        parse_config(tomllib.loads(text))


def test_a_redirect_to_another_host_is_not_followed(tmp_path: Path) -> None:
    other = serve()

    def bounce(handler: BaseHTTPRequestHandler, endpoint: Endpoint) -> None:
        if handler.path == "/ok":
            handler.send_response(200)
            handler.end_headers()
            return
        target = other.base.replace("127.0.0.1", "localhost") if "away" in handler.path else "/ok"
        handler.send_response(302)
        handler.send_header("Location", target + ("/stolen" if "away" in handler.path else ""))
        handler.end_headers()

    here = serve(bounce)
    try:
        pinger = Pinger(tmp_path, pauses=(0.0, 0.0))
        for path in ("/away", "/same"):
            url = here.base + path
            pinger.send(Ping(url, b"output", url, shown(url), "T"))
        pinger.flush(20)
        assert other.hits == []
        assert "/ok" in here.paths()  # a redirect on the same host is followed
        (failed,) = failures(tmp_path, _now())
        assert failed.error.startswith("HTTP 302") and failed.who == "T"
    finally:
        for server in (here.server, other.server):
            server.shutdown()
            server.server_close()


def _now() -> datetime:
    return datetime.now(UTC)


# -- runs through the real CLI --------------------------------------------------------------------


def test_a_run_sends_start_then_success_with_its_run_id(
    cli: Cli, vault_root: Path, endpoint: Endpoint
) -> None:
    ping_task(vault_root, endpoint.base + "/check")
    assert cli("run-now", "Backup job").code == 0
    (run,) = runs_of(vault_root, "Tasks/Backup job")
    wait_for(lambda: len(endpoint.hits) == 2, what="two pings")
    start, end = endpoint.hits
    assert (start.method, start.path) == ("GET", f"/check/start?rid={rid(run.run_id)}")
    assert (end.method, end.path) == ("POST", f"/check?rid={rid(run.run_id)}")
    assert b"hello" in end.body
    assert start.agent.startswith("vaultsched/")


def test_a_failing_run_sends_fail_with_its_redacted_output(
    cli: Cli, vault_root: Path, endpoint: Endpoint
) -> None:
    command = '"echo token=$API_TOKEN; exit 3"'
    ping_task(vault_root, endpoint.base + "/check", command, f"env:\n  API_TOKEN: {SECRET}\n")
    assert cli("run-now", "Backup job").code == 1
    (run,) = runs_of(vault_root, "Tasks/Backup job")
    assert run.status is Status.FAILED
    wait_for(lambda: len(endpoint.hits) == 2, what="two pings")
    end = endpoint.hits[1]
    assert end.path == f"/check/fail?rid={rid(run.run_id)}"
    assert b"token=[redacted]" in end.body
    assert SECRET.encode() not in end.body


def test_a_slow_endpoint_never_delays_the_run(cli: Cli, vault_root: Path) -> None:
    def slow(handler: BaseHTTPRequestHandler, endpoint: Endpoint) -> None:
        endpoint.release.wait(30)

    endpoint = serve(slow)
    try:
        ping_task(vault_root, endpoint.base + "/check")
        began = time.monotonic()
        assert cli("run-now", "Backup job").code == 0
        assert time.monotonic() - began < 15
        (run,) = runs_of(vault_root, "Tasks/Backup job")
        assert run.status is Status.SUCCESS
        assert run.duration_s is not None and run.duration_s < 5
    finally:
        endpoint.release.set()
        endpoint.server.shutdown()
        endpoint.server.server_close()


def test_a_dead_endpoint_never_fails_the_run_and_doctor_shows_it(
    cli: Cli, vault_root: Path
) -> None:
    ping_task(vault_root, f"http://127.0.0.1:{closed_port()}/SECRETKEY")
    assert cli("run-now", "Backup job").code == 0
    (run,) = runs_of(vault_root, "Tasks/Backup job")
    assert run.status is Status.SUCCESS
    doctor = cli("doctor")
    line = next(line for line in doctor.out.splitlines() if "pings" in line)
    assert "Tasks/Backup job" in line and "127.0.0.1" in line
    assert "SECRETKEY" not in doctor.out


def test_an_untrusted_ping_url_sends_nothing_until_trust_config(
    cli: Cli, vault_root: Path, endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VAULTSCHED_TRUST")
    config = vault_root / ".vaultsched/config.toml"
    config.write_text(f'timezone = "UTC"\n[ping]\nurl = "{endpoint.base}/KEY/{{task_slug}}"\n')
    task_note(vault_root, "Tasks/Backup job.md", "command: echo hello\n")
    assert cli("trust", "--yes", "Backup job").code == 0
    assert cli("run-now", "Backup job").code == 0
    time.sleep(0.5)
    assert endpoint.hits == []
    assert cli("trust", "--config").code == 0
    assert cli("run-now", "Backup job").code == 0
    wait_for(lambda: len(endpoint.hits) == 2, what="two pings")
    assert [hit.path.split("?")[0] for hit in endpoint.hits] == [
        "/KEY/backup-job/start",
        "/KEY/backup-job",
    ]


def test_a_task_that_adds_a_ping_is_untrusted_and_pings_nothing(
    cli: Cli, vault_root: Path, endpoint: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VAULTSCHED_TRUST")
    task_note(vault_root, "Tasks/Backup job.md", "command: echo hello\n")
    assert cli("trust", "--yes", "Backup job").code == 0
    ping_task(vault_root, endpoint.base + "/check")
    assert cli("run-now", "Backup job").code == 1
    assert [r.status for r in runs_of(vault_root, "Tasks/Backup job")] == [Status.UNTRUSTED]
    time.sleep(0.5)
    assert endpoint.hits == []


def test_the_daemon_pings_while_it_runs(
    vault_root: Path, endpoint: Endpoint, daemons: Callable[..., DaemonProcess]
) -> None:
    config = vault_root / ".vaultsched/config.toml"
    config.write_text(
        f'timezone = "UTC"\n[ping]\ndaemon = "{endpoint.base}/hb"\ndaemon_interval = "1s"\n'
    )
    daemon = daemons(vault_root)
    wait_for(lambda: endpoint.paths().count("/hb") >= 2, timeout=30, what="two heartbeats")
    assert endpoint.paths()[0] == "/hb/start"
    assert daemon.stop() == 0
