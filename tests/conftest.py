"""Shared fixtures: an isolated home, real temp vaults with real git, and the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from vaultsched.config import load_config
from vaultsched.vault import Vault

HOST = "testhost"


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
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(gitconfig))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("VAULTSCHED_HOST", HOST)
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.setenv("TZ", "UTC")


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
