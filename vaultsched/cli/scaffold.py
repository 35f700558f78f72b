"""Creating things: a vault (`init`) and a task note (`new`). Neither ever overwrites a file."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path, PurePosixPath

import frontmatter
import yaml

from vaultsched.adapters import githooks
from vaultsched.adapters.config import TasksConfig, host_name
from vaultsched.adapters.git import Edit, Git, GitError
from vaultsched.adapters.vault import enclosing_vault, is_vault
from vaultsched.core import dashboard, layout
from vaultsched.core.errors import VaultschedError
from vaultsched.core.schedules import ScheduleError, parse_schedule
from vaultsched.trust.config import open_vault, trust_config
from vaultsched.trust.store import trust_created

EXAMPLE_TASK = "Tasks/Hello vaultsched.md"
# Writes a new note's properties: the safe dumper, block style. The note's layout is the
# template's (the body right under the closing `---`, as Obsidian writes it), not that of
# `frontmatter.dumps`, which puts a blank line there.
PROPERTIES = frontmatter.YAMLHandler()


def template(name: str) -> str:
    return resources.files("vaultsched").joinpath("templates", name).read_text(encoding="utf-8")


def task_text(name: str, schedule: str | None, command: str) -> str:
    properties: dict[str, object] = {}
    if schedule:
        properties["schedule"] = schedule
    properties["command"] = command
    properties["enabled"] = True
    # In the order a person reads them; the pure-Python dumper, because libyaml's writes an
    # emoji in a command as `\U0001F680`; one line per value however long.
    front = PROPERTIES.export(properties, Dumper=yaml.SafeDumper, sort_keys=False, width=1000)
    return template("task.md").format(front_matter=front + "\n", name=name)


@dataclass
class Created:
    root: Path
    files: list[str] = field(default_factory=list)
    git_initialised: bool = False
    notes: list[str] = field(default_factory=list)
    hooks: list[githooks.HookInstalled] = field(default_factory=list)


def _create(root: Path, rel: str, text: str, created: Created) -> None:
    path = root / rel
    if os.path.lexists(path):  # a symlink, even a dangling one, is not ours to replace
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("x", encoding="utf-8", newline="") as handle:
        handle.write(text)
    created.files.append(rel)


def init_vault(target: Path) -> Created:
    outer = enclosing_vault(target.resolve().parent)
    if outer is not None and not is_vault(target):
        # The outer vault would index the new one's notes: its example task, untrusted there.
        raise VaultschedError(
            f"{target} is inside the vault {outer}: its notes are already that vault's "
            f"(use --vault {outer}, or init a folder outside it)"
        )
    target.mkdir(parents=True, exist_ok=True)
    root = target.resolve()
    created = Created(root)
    _create(root, layout.CONFIG, template("config.toml"), created)
    _create(root, layout.GITIGNORE, layout.GITIGNORE_TEXT, created)
    _create(root, layout.GITATTRIBUTES, layout.GITATTRIBUTES_TEXT, created)
    example = task_text("Hello vaultsched", "@daily", 'echo "Hello from $VAULTSCHED_TASK"')
    if not any((root / "Tasks").glob("*.md")):
        _create(root, EXAMPLE_TASK, example, created)
    _create(root, dashboard.DEFAULT_PATH, dashboard.dashboard_text(), created)
    git = Git(root, host_name())
    if not git.usable:
        if _inside_other_repo(root):
            created.notes.append(
                "the vault is inside another git repository but not at its top: "
                "runs will not be committed (run `git init` in the vault to change that)"
            )
        else:
            git.init()
            created.git_initialised = True
    if layout.CONFIG in created.files:
        trust_config(root)  # what init writes it trusts, the config as much as the task
    if EXAMPLE_TASK in created.files:
        trust_created(open_vault(root), [EXAMPLE_TASK])
    if git.usable:
        try:
            created.hooks = githooks.install(git).hooks
        except (OSError, GitError) as exc:
            created.notes.append(f"git hooks not installed: {exc}")
    if git.usable and created.files:
        try:
            git.commit([Edit(rel) for rel in created.files], "vaultsched: init")
        except GitError as exc:
            created.notes.append(f"could not commit the new files: {exc}")
    return created


def _inside_other_repo(root: Path) -> bool:
    return any((parent / ".git").exists() for parent in root.parents)


def new_task_path(name: str, tasks: TasksConfig) -> str:
    """`Tasks/NAME.md`, or under the first of `[tasks] folders` when those leave out `Tasks/`:
    `new` makes a task, never a note that `[tasks]` keeps from being one."""
    folder = "Tasks" if not tasks.folders or "Tasks" in tasks.folders else tasks.folders[0]
    rel = PurePosixPath(folder, name.strip().removesuffix(".md") + ".md")
    if not name.strip() or ".." in rel.parts or any(p.startswith(".") for p in rel.parts):
        raise VaultschedError(f"not a usable task name: {name!r}")
    if not tasks.holds(str(rel)):
        raise VaultschedError(
            f"{rel} would not be a task: [tasks] exclude in {layout.CONFIG} leaves it out",
            exit_code=1,
        )
    return str(rel)


def create_task(root: Path, name: str, schedule: str | None, command: str) -> str:
    if schedule is not None:
        try:
            parse_schedule(schedule)
        except ScheduleError as exc:
            raise VaultschedError(f"--schedule: {exc}") from exc
    if not command.strip():
        raise VaultschedError("--command must not be empty")
    vault = open_vault(root)
    rel = new_task_path(name, vault.config.tasks)
    path = root / rel
    if path.exists():
        raise VaultschedError(f"{rel} already exists", exit_code=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("x", encoding="utf-8") as handle:
        handle.write(task_text(PurePosixPath(rel).stem, schedule, command))
    rel = rel.replace(os.sep, "/")
    trust_created(vault, [rel])
    return rel
