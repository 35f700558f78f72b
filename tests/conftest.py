"""Shared fixtures: an isolated home, real temp vaults with real git, and the real CLI."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from redisserver import RedisServer

from vaultsched.adapters.config import load_config
from vaultsched.adapters.ledger import Ledger
from vaultsched.adapters.vault import Vault
from vaultsched.cli.app import main
from vaultsched.core.model import Run, Status

HOST = "testhost"

# The suite gives the same answer on every run (CI, five runs in a row): hypothesis tries the
# same examples each time. `HYPOTHESIS_PROFILE=explore make test` searches afresh.
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


@pytest.fixture(autouse=True)
def isolated_env(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test may touch the real home, the real trust store or the user's git identity."""
    home = tmp_path_factory.mktemp("home")
    gitconfig = home / ".gitconfig"
    gitconfig.write_text(
        "[user]\n\tname = Test User\n\temail = user@example.com\n"
        "[init]\n\tdefaultBranch = main\n[advice]\n\tdetachedHead = false\n"
    )
    for name in list(os.environ):
        if name.startswith(("VAULTSCHED_", "GIT_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_STATE_HOME", str(home / ".local/state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    # The daemons' sockets for `list` (adapters/query.py): not in the real runtime folder.
    runtime = home / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("VAULTSCHED_HOST", HOST)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("TZ", "UTC")
    # Most tests write task notes as a sync would and expect them to run; the trust tests
    # (tests/test_trust.py) delete this to exercise the real policy.
    monkeypatch.setenv("VAULTSCHED_TRUST", "any")


def git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, check=True, capture_output=True, text=True
    ).stdout


def make_vault(root: Path, *, repo: bool = True, config: str = "") -> Path:
    (root / ".vaultsched").mkdir(parents=True, exist_ok=True)
    (root / ".obsidian").mkdir(exist_ok=True)
    (root / ".vaultsched" / ".gitignore").write_text("state/\nlogs/\n*.lock\n*.tmp\n")
    if config:
        (root / ".vaultsched" / "config.toml").write_text(config)
    if repo:
        git(root, "init", "-q")
        git(root, "add", "-A")
        git(root, "commit", "-q", "-m", "initial")
    return root


def write_note(root: Path, rel: str, text: str) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def vault_root(tmp_path: Path) -> Path:
    return make_vault(tmp_path / "vault", config='timezone = "UTC"\n')


@pytest.fixture
def vault(vault_root: Path) -> Vault:
    return Vault(root=vault_root.resolve(), config=load_config(vault_root), host=HOST)


@dataclass
class Result:
    code: int
    out: str
    err: str


@dataclass
class Cli:
    """The real `vaultsched` command, run as a subprocess against one vault."""

    root: Path

    def __call__(self, *args: str, input: str | None = None, timeout: float = 60) -> Result:
        proc = subprocess.run(
            [sys.executable, "-m", "vaultsched", "--vault", str(self.root), *args],
            capture_output=True,
            text=True,
            input=input,
            timeout=timeout,
            check=False,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def cli(vault_root: Path) -> Iterator[Cli]:
    yield Cli(vault_root)


@dataclass
class InProcess:
    """The same command line given to `main` in this process, as a shell's call reaches it:
    the exit code and the output, without a second of interpreter start-up per command."""

    root: Path
    capsys: pytest.CaptureFixture[str]

    def __call__(self, *args: str) -> Result:
        with _process_state_kept():
            code = main(["--vault", str(self.root), *args])
        out, err = self.capsys.readouterr()
        return Result(code, out, err)

    def json(self, *args: str, code: int = 0) -> Any:
        result = self(*args, "--json")
        assert result.code == code, result.err
        return json.loads(result.out)


# `Cli` or `InProcess`: a command line and its answer.
CommandLine = Callable[..., Result]


@contextmanager
def _process_state_kept() -> Iterator[None]:
    """`run` installs the daemon's signal handlers and log format: the tests that follow in
    this worker get the handlers and logging they had. Meanwhile the root logger has no
    handler, as in a fresh process: `main` adds its own, so log lines reach the captured
    stderr (not pytest's log capture), as a shell would see them."""
    handlers = {
        sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    }
    root = logging.getLogger()
    level, kept = root.level, [(h, h.formatter) for h in root.handlers]
    root.handlers = []
    try:
        yield
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
        root.setLevel(level)
        root.handlers = [h for h, _ in kept]
        for log_handler, formatter in kept:
            log_handler.setFormatter(formatter)


@pytest.fixture
def vs(vault_root: Path, capsys: pytest.CaptureFixture[str]) -> InProcess:
    return InProcess(vault_root, capsys)


@dataclass
class DaemonProcess:
    """A real `vaultsched run` in a subprocess, its stderr kept in a file."""

    root: Path
    proc: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        # Not before it has started: until its handlers are installed (a loaded machine may
        # take seconds to import), SIGTERM kills it outright (-15) instead of stopping it.
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            if "indexed " in self.output():
                break
            time.sleep(0.05)
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)


def start_daemon(root: Path, *args: str, env: dict[str, str] | None = None) -> DaemonProcess:
    log = root.parent / f"daemon-{time.monotonic_ns()}.log"
    with log.open("wb") as handle:
        proc = subprocess.Popen(
            [sys.executable, "-m", "vaultsched", "--vault", str(root), "run", *args],
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
        )
    daemon = DaemonProcess(root, proc, log)
    _STARTED.append(daemon)
    return daemon


_STARTED: list[DaemonProcess] = []


@pytest.fixture(autouse=True)
def _no_daemon_outlives_its_test() -> Iterator[None]:
    """A daemon a test started and did not stop (an assertion, or a stop that timed out,
    came first) is killed: left running, it loaded the machine for the rest of the suite."""
    yield
    while _STARTED:
        daemon = _STARTED.pop()
        if daemon.proc.poll() is None:
            daemon.proc.kill()
            daemon.proc.wait()


@pytest.fixture
def daemons() -> Callable[..., DaemonProcess]:
    """Start daemons; any still running at the end of the test are killed."""
    return start_daemon


def wait_for(
    predicate: Callable[[], object], timeout: float = 60.0, what: str = "condition"
) -> None:
    """Poll until `predicate` holds. The timeout is never a pass mark, only how long a loaded
    machine may take: 20 s was overrun by a daemon's first runs at load 13."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def runs(root: Path) -> list[Run]:
    return Ledger(root, HOST).runs()


def runs_of(root: Path, task: str, *statuses: Status) -> list[Run]:
    """The ledger's runs of `task`, of any status or of those given."""
    return [r for r in runs(root) if r.task == task and (not statuses or r.status in statuses)]


def task_note(root: Path, rel: str, front: str, body: str = "Body.\n") -> Path:
    """A task note saved a minute ago: settled, as if Obsidian had long finished saving it."""
    path = write_note(root, rel, f"---\n{front}---\n{body}")
    os.utime(path, (time.time() - 60, time.time() - 60))
    return path


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real Redis server of the test's own (tests/redisserver.py), stopped at its end."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def spliced(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Each text `blocks.splice_block` is asked to splice, in order (the real one still does)."""
    from vaultsched.core import blocks

    calls: list[str] = []
    real = blocks.splice_block

    def splice(text: str, markers: blocks.Markers, inner: str) -> str:
        calls.append(text)
        return real(text, markers, inner)

    monkeypatch.setattr(blocks, "splice_block", splice)
    return calls
