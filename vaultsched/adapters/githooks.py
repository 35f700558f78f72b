"""`vaultsched hooks install`: put vaultsched's git hooks into a vault's repository.

A hook already there (the user's, Obsidian Git's, a framework's) is never clobbered: it is moved
aside to `<name>.before-vaultsched` and vaultsched's hook runs it first, with the same arguments,
so it keeps its veto. Installing again updates vaultsched's hooks and nothing else.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal

from vaultsched.adapters.git import Git
from vaultsched.adapters.service import executable

HOOKS = ("pre-commit", "post-merge", "post-checkout")
OURS = "# vaultsched hook ("
CHAINED = ".before-vaultsched"
_SAFE_PATH = re.compile(r"^[A-Za-z0-9_./+@:,-]+$")  # fits inside "…" in sh with no escaping


# What became of one hook: `chained` is installed with the user's hook kept aside and run
# first; `conflict` is not installed (both the hook and its aside copy exist).
HookOutcome = Literal["installed", "chained", "updated", "unchanged", "conflict"]


@dataclass(frozen=True)
class HookInstalled:
    name: str
    outcome: HookOutcome
    message: str  # the line `hooks install` prints


@dataclass
class Installed:
    hooks_dir: Path
    hooks: list[HookInstalled] = field(default_factory=list)

    @property
    def messages(self) -> list[str]:
        return [hook.message for hook in self.hooks]


def hook_text(name: str) -> str:
    """The hook as shipped, with this vaultsched as the fallback when it is not on PATH."""
    text = (resources.files("vaultsched") / "hooks" / name).read_text(encoding="utf-8")
    command = executable()
    fallback = command[0] if len(command) == 1 and _SAFE_PATH.match(command[0]) else "vaultsched"
    return text.replace("@VAULTSCHED@", fallback)


def install(git: Git) -> Installed:
    if not git.usable:
        raise OSError(f"{git.root} is not the top of a git repository")
    hooks_dir = git.hooks_dir()
    hooks_dir.mkdir(parents=True, exist_ok=True)
    result = Installed(hooks_dir)
    for name in HOOKS:
        result.hooks.append(_install_one(hooks_dir / name, hook_text(name)))
    return result


def _install_one(target: Path, text: str) -> HookInstalled:
    name = target.name
    if target.exists() or target.is_symlink():
        current = target.read_text(encoding="utf-8", errors="replace") if target.is_file() else ""
        if OURS in current:
            if current == text:
                return HookInstalled(name, "unchanged", f"{name}: up to date")
            _write_hook(target, text)
            return HookInstalled(name, "updated", f"{name}: updated")
        aside = target.with_name(name + CHAINED)
        if aside.exists() or aside.is_symlink():
            why = f"{target} and {aside} both exist; merge them by hand"
            return HookInstalled(name, "conflict", f"{name}: not installed: {why}")
        target.rename(aside)
        _write_hook(target, text)
        kept = f"your existing hook runs first (kept as {aside.name})"
        return HookInstalled(name, "chained", f"{name}: installed; {kept}")
    _write_hook(target, text)
    return HookInstalled(name, "installed", f"{name}: installed")


def _write_hook(target: Path, text: str) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.chmod(0o755)
    os.replace(tmp, target)
