"""`vaultsched demo`: the bundled example vault, copied, git-initialised and sped up."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import yaml

from vaultsched.adapters.config import host_name
from vaultsched.adapters.git import Git
from vaultsched.adapters.vault import build_index
from vaultsched.core.errors import VaultschedError
from vaultsched.core.frontmatter_edit import set_scalar
from vaultsched.core.taskfile import front_matter_text
from vaultsched.trust.config import open_vault, trust_config
from vaultsched.trust.store import trust_created

# Fast enough to watch, slow enough to read: one speed per task, in path order.
SPEEDS = ("every 10s", "every 15s", "every 20s", "every 30s")


def bundled_vault() -> Path:
    source = Path(__file__).resolve().parents[2] / "vault"
    if not (source / ".obsidian").is_dir():
        raise VaultschedError(
            f"the example vault is not at {source}: run the demo from a source checkout (make demo)"
        )
    return source


def prepare(target: Path | None = None, source: Path | None = None) -> Path:
    """Copy the example vault to `target` (default: a new temporary folder) and make it ready."""
    origin = source or bundled_vault()
    if target is None:
        target = Path(tempfile.mkdtemp(prefix="vaultsched-demo-"))
    elif target.exists() and any(target.iterdir()):
        raise VaultschedError(f"{target} is not empty: choose a new folder for the demo")
    shutil.copytree(origin, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".git"))
    sped_up = speed_up(target)
    git = Git(target, host_name())
    git.init()
    git.commit_all("vaultsched demo vault")
    if not sped_up:
        raise VaultschedError(f"no scheduled task notes found in {origin}")
    trust_config(target)  # the bundled config, as shipped
    vault = open_vault(target)
    trust_created(vault, [task.path for task in build_index(vault).tasks.values()])
    return target.resolve()


def speed_up(root: Path) -> list[str]:
    """Give every scheduled task a seconds-level `every` schedule (one-line edits)."""
    changed: list[str] = []
    notes = sorted(p for p in root.rglob("*.md") if not any(s.startswith(".") for s in p.parts))
    for path in notes:
        text = path.read_text(encoding="utf-8")
        front = yaml.safe_load(front_matter_text(text) or "") or {}
        if not isinstance(front, dict) or "command" not in front or "schedule" not in front:
            continue
        speed = SPEEDS[len(changed) % len(SPEEDS)]
        # The note's own comment (if any) still describes the real schedule: say so first.
        value = f'"{speed}"  # sped up for the demo; really {front["schedule"]!r}'
        path.write_text(set_scalar(text, "schedule", value), encoding="utf-8")
        changed.append(str(path.relative_to(root)))
    return changed
