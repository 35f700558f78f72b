"""Generated attacks: hostile task notes, vault configs and ledger lines under the real daemon.

Everything a sync can write is generated at random from the task and config keys people use:
note names, every front-matter value, every config value, ledger records. Each string carries
shell metacharacters and a canary, a command outside the vault (also on PATH as `vsc-canary`)
that records that it ran. The user trusts nothing the attacker wrote, so afterwards:
- the canary never ran;
- no request reached the loopback listener that stands in for a notification or ping service;
- the bare repository outside the vault, offered as a git remote, received nothing;
- nothing was written outside the vault;
- the daemon stayed up and every command answered without an internal error (exit 3).
One variant also trusts a benign task that prints hostile text, and the config with a benign
notifier, so output and notification paths carry the hostile strings too.
"""

from __future__ import annotations

import http.server
import json
import os
import random
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import (
    Cli,
    DaemonProcess,
    InProcess,
    git,
    make_vault,
    runs,
    wait_for,
    write_note,
)

pytestmark = pytest.mark.integration

Start = Callable[..., DaemonProcess]

TASK_KEYS = (
    *("schedule", "timezone", "enabled", "timeout", "retries", "retry_delay", "catch_up"),
    *("overlap", "jitter", "cwd", "env", "stdin", "host", "notify", "keep_runs", "approval"),
    *("check", "if_changed", "after", "on", "output", "group", "max_runs", "until", "window"),
    *("ping", "executor"),
)
VALID: dict[str, list[Any]] = {
    "enabled": [True],
    "timeout": ["2s", "1m"],
    "retries": [0, 1],
    "retry_delay": ["1s"],
    "catch_up": [True, False],
    "overlap": ["skip", "queue"],
    "jitter": ["0s"],
    "stdin": ["body", "none"],
    "notify": ["always", "failure"],
    "keep_runs": [3],
    "approval": ["none", "required"],
    "timezone": ["UTC", "Europe/London"],
}
SHAPES = (
    "$({c})",
    "`{c}`",
    "; {c}",
    "| {c}",
    "&& {c} #",
    "\n{c}\n",
    "{c}",
    "'; {c}; '",
    '"; {c}; "',
    "${{IFS}}{c}",
    "--upload-pack={c}",
    "-c core.sshCommand={c}",
    "ext::sh -c {c}",
    "{{title}}$({c}){{message}}",
    "x\x1b]0;$({c})\x07\x1b[2K",
    "{{{{task}}}}`{c}`{{status}}",
    "../../{c}",
)


class Canary:
    """A command outside the vault that logs each time it runs, and a listener that logs each
    request: proof of code run or data sent where nobody trusted it."""

    def __init__(self, outside: Path) -> None:
        self.bin = outside / "bin"
        self.bin.mkdir(parents=True)
        self.log = outside / "canary.log"
        script = self.bin / "vsc-canary"
        script.write_text(f'#!/bin/sh\necho "ran: $*" >> {self.log}\n')
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        self.commands = (str(script), "vsc-canary", f"sh {script}")
        self.requests: list[str] = []
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def _handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        requests = self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requests.append(f"GET {self.path}")
                self.send_response(200)
                self.end_headers()

            def do_POST(self) -> None:
                requests.append(f"POST {self.path}")
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        return Handler

    def fired(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


class Attacker:
    """Hostile values from one seed, so a failure names the seed that reproduces it."""

    def __init__(self, seed: int, canary: Canary, remote: Path) -> None:
        self.rng = random.Random(seed)
        self.canary = canary
        self.remote = remote

    def string(self) -> str:
        shape = self.rng.choice(SHAPES)
        text = shape.format(c=self.rng.choice(self.canary.commands))
        return (
            text
            if self.rng.random() < 0.7
            else f"{self.rng.choice(SHAPES)}{text}".replace("{c}", "vsc-canary")
        )

    def value(self, depth: int = 0) -> Any:
        roll = self.rng.random()
        if depth < 2 and roll < 0.15:
            return [self.value(depth + 1) for _ in range(self.rng.randint(1, 3))]
        if depth < 2 and roll < 0.25:
            return {self.string(): self.value(depth + 1) for _ in range(self.rng.randint(1, 2))}
        if roll < 0.3:
            return self.rng.choice([True, False, 0, -1, 10**30, 1.5, None, "every 1s", "1s"])
        return self.string()

    def setting(self, key: str) -> Any:
        """Mostly what the key accepts, with hostile strings wherever a string goes; now and
        then anything at all (an invalid note must be contained, not run)."""
        if self.rng.random() < 0.25:
            return self.value()
        if key in VALID:
            return self.rng.choice(VALID[key])
        if key == "env":
            names = ("BASH_ENV", "PATH", "LD_PRELOAD", "PYTHONPATH", "X", "GIT_SSH_COMMAND")
            return {name: self.string() for name in self.rng.sample(names, 2)}
        return self.string()

    def front_matter(self) -> dict[str, Any]:
        front: dict[str, Any] = {"command": self.rng.choice([self.string(), [self.string()]])}
        for key in self.rng.sample(TASK_KEYS, self.rng.randint(2, 8)):
            front[key] = self.setting(key)
        if self.rng.random() < 0.7:
            front["schedule"] = "every 1s"  # so the daemon handles it at once, again and again
        return front

    def note_name(self) -> str:
        name = self.string().replace("/", "∕").replace("\n", " ").replace("\x00", "")
        return f"Tasks/{name[:80].strip('.') or 'x'}.md"

    def config(self, notifier: str | None = None) -> str:
        """A vault config with hostile values in every key that runs, sends or chooses where
        git talks. With `notifier`, the one the user reviewed and trusted: it runs `notifier`
        and sends nothing out, but its git remote is still hostile (never an option to git,
        never a path that is not a configured remote, trusted or not)."""

        def s() -> str:
            return json.dumps(self.string())

        remote = self.rng.choice([str(self.remote), self.string(), "--upload-pack=vsc-canary"])
        url = f"{self.canary.url}/{self.rng.randint(0, 99)}"
        command = json.dumps(notifier) if notifier else s()
        urls = [] if notifier else ["json://" + url.removeprefix("http://"), url]
        lines = [
            'timezone = "UTC"',
            "[notify]",
            'on = "always"',
            f"command = {command}",
            f"urls = {json.dumps(urls)}",
            "[git]",
            "sync = true",
            f"remote = {json.dumps(remote)}",
            'sync_interval = "1s"',
            "[digest]",
            f"format = {s()}",
        ]
        if notifier is None:
            lines += [
                "[ping]",
                f"url = {json.dumps(url + '/{task_slug}')}",
                f"daemon = {json.dumps(url + '/daemon')}",
                'daemon_interval = "1s"',
                "[metrics]",
                f"textfile = {json.dumps(str(self.remote.parent / 'metrics.prom'))}",
                "[executor]",
                'kind = "rq"',
                f"redis_url = {s()}",
            ]
        return "\n".join([*lines, ""])

    def ledger_line(self) -> str:
        record = {
            "type": "finish",
            "run_id": self.string(),
            "task": self.string(),
            "path": self.note_name(),
            "status": self.rng.choice(["failed", "success", self.string()]),
            "trigger": "schedule",
            "started_at": "2020-01-05T00:00:00+00:00",
            "finished_at": "2020-01-05T00:00:01+00:00",
            "scheduled_for": self.rng.choice(["2099-01-01T00:00:00+00:00", self.string()]),
            "host": self.string(),
            "output_tail": self.string(),
            "message": self.string(),
        }
        return json.dumps(record) + "\n"


def _write_attack(root: Path, attacker: Attacker, notes: int) -> list[Path]:
    (root / ".vaultsched/config.toml").write_text(attacker.config())
    forged = root / ".vaultsched/runs/2020-01/evil.jsonl"
    forged.parent.mkdir(parents=True, exist_ok=True)
    forged.write_text("".join(attacker.ledger_line() for _ in range(5)))
    written = []
    for _ in range(notes):
        front = yaml.safe_dump(attacker.front_matter(), allow_unicode=True, sort_keys=False)
        body = f"{attacker.string()}\n{{{{previous_output}}}} {attacker.string()}\n"
        written.append(write_note(root, attacker.note_name(), f"---\n{front}---\n{body}"))
    return written


def _outside_listing(outside: Path) -> set[str]:
    return {p.relative_to(outside).as_posix() for p in outside.rglob("*")}


@pytest.fixture
def attacked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Path, Path, Canary]]:
    monkeypatch.delenv("VAULTSCHED_TRUST")  # the real policy: only what this user trusted
    outside = tmp_path / "outside"
    outside.mkdir()
    canary = Canary(outside)
    monkeypatch.setenv("PATH", f"{canary.bin}{os.pathsep}{os.environ['PATH']}")
    try:
        yield make_vault(tmp_path / "vault", config='timezone = "UTC"\n'), outside, canary
    finally:
        canary.server.shutdown()
        canary.server.server_close()


def _trust_benign_parts(cli: Cli | InProcess, attacker: Attacker, outside: Path) -> Path:
    """The user trusts a task that prints hostile text, and a config whose notifier only
    records its arguments."""
    hostile = [attacker.string() for _ in range(4)]
    front = yaml.safe_dump({"schedule": "every 1s", "command": ["printf", "%s\\n", *hostile]})
    write_note(cli.root, "Tasks/Benign.md", f"---\n{front}---\nMine.\n")
    assert cli("trust", "Tasks/Benign").code == 0
    recorder = outside / "bin" / "vsc-record"
    record_log = outside / "notified.log"
    recorder.write_text(f'#!/bin/sh\nfor a in "$@"; do echo "arg: $a"; done >> {record_log}\n')
    recorder.chmod(0o755)
    notifier = f"{recorder} {{title}} {{message}}"
    (cli.root / ".vaultsched/config.toml").write_text(attacker.config(notifier))
    trusted = cli("trust", "--config")
    assert trusted.code == 0, trusted.err
    return record_log


@pytest.mark.timeout(300)
@pytest.mark.parametrize("seed", range(4))
def test_generated_hostile_vaults_never_reach_code_execution(
    attacked: tuple[Path, Path, Canary],
    daemons: Start,
    capsys: pytest.CaptureFixture[str],
    seed: int,
) -> None:
    root, outside, canary = attacked
    remote = outside / "remote.git"
    git(outside, "init", "-q", "--bare", str(remote))
    attacker = Attacker(seed, canary, remote)
    notes = _write_attack(root, attacker, notes=15)
    # One vault meets real `vaultsched` processes; the others `main` in this process, which
    # answers the same without a second of start-up for each of its twenty commands.
    cli = Cli(root) if seed == 0 else InProcess(root, capsys)
    record_log = _trust_benign_parts(cli, attacker, outside) if seed % 2 else None
    if record_log is None:  # something that fires every second, trusted or not
        write_note(root, "Tasks/Tick.md", "---\nschedule: every 1s\ncommand: 'true'\n---\n")
    before = _outside_listing(outside)

    valid = sum(t["valid"] for t in json.loads(cli("list", "--json").out))
    daemon = daemons(root)
    try:  # every valid note is refused once (untrusted), the trusted one runs every second
        enough = min(4, valid)  # however many of the generated notes happen to be valid
        wait_for(lambda: len(runs(root)) >= enough, timeout=60, what=f"runs (seed {seed})")
    except AssertionError:
        raise AssertionError(f"seed {seed}: no runs landed:\n{daemon.output()[-3000:]}") from None
    if record_log is not None:  # the trusted notifier runs, with hostile text as arguments
        wait_for(
            lambda: record_log.exists() and "arg: vaultsched:" in record_log.read_text(),
            timeout=60,
            what=f"the trusted notifier (seed {seed})",
        )
    for command in (["validate"], ["list", "--json"], ["status"], ["doctor"], ["sync"]):
        result = cli(*command)
        assert result.code != 3, f"seed {seed}: {command}: {result.err}"
    for path in notes[:5]:
        rel = path.relative_to(root).as_posix()
        for command in (["run-now", rel], ["next", rel], ["history", rel]):
            result = cli(*command)
            assert result.code != 3, f"seed {seed}: {command}: {result.err}"
    assert daemon.proc.poll() is None, f"seed {seed}: the daemon stopped:\n{daemon.output()}"
    assert daemon.stop() == 0, daemon.output()

    assert canary.fired() == "", f"seed {seed}: the canary ran:\n{canary.fired()}"
    assert canary.requests == [], f"seed {seed}: data was sent: {canary.requests}"
    assert git(outside, "--git-dir", str(remote), "for-each-ref") == ""
    new = _outside_listing(outside) - before - {"canary.log", "notified.log"}
    assert new == set(), f"seed {seed}: written outside the vault: {new}"
