"""The task dashboard: an Obsidian Bases file (`Tasks.base`) with a table of every task note.
Pure: the file's content as data, its text, and whose it is.

The format follows Obsidian's published Bases syntax, https://help.obsidian.md/bases/syntax
(top-level `filters`, `properties` with `displayName`, `views` with `type`, `name`, `filters`,
`order`), and its functions, https://help.obsidian.md/bases/functions (`file.hasProperty`).
A view's `sort` (a list of `property` and `direction`) is what Obsidian itself writes when a
table is sorted in the app; a Bases view keeps such settings of its own.

vaultsched owns the file only while it holds the marker line: a file without it is the
person's, never rewritten.
"""

from __future__ import annotations

from typing import Any

import yaml

from vaultsched.core.model import ATTENTION, Status
from vaultsched.core.workflow import OutputPathError, check_note_path

DEFAULT_PATH = "Tasks.base"
EXTENSION = ".base"
MARKER = "# vaultsched:dashboard — written by vaultsched; delete this line to keep your edits"
_MARKER_START = "# vaultsched:dashboard"
ALL_VIEW = "Tasks"
ATTENTION_VIEW = "Needs attention"
# The columns, in order: the note's name, then properties of the task note. The last four are
# the ones vaultsched keeps in each task note as its runs land.
COLUMNS = ("file.name", "schedule", "enabled", "last_status", "last_run", "next_run", "run_count")
DISPLAY_NAMES = {
    "file.name": "Task",
    "schedule": "Schedule",
    "enabled": "Enabled",
    "last_status": "Last status",
    "last_run": "Last run",
    "next_run": "Next run",
    "run_count": "Runs",
}
# A task note is a note with a `command` property.
TASK_FILTER = 'file.hasProperty("command")'
# The statuses the digest lists under "Needs attention", in the order of the model.
ATTENTION_STATUSES = tuple(status.value for status in Status if status in ATTENTION)


class DashboardPathError(ValueError):
    """A dashboard path that is not a `.base` file inside the vault, out of hidden folders."""


def dashboard() -> dict[str, Any]:
    """The dashboard as the data of a `.base` file."""
    return {
        "filters": {"and": [TASK_FILTER]},
        "properties": {column: {"displayName": DISPLAY_NAMES[column]} for column in COLUMNS},
        "views": [
            {
                "type": "table",
                "name": ALL_VIEW,
                "order": list(COLUMNS),
                "sort": [{"property": "file.name", "direction": "ASC"}],
            },
            {
                "type": "table",
                "name": ATTENTION_VIEW,
                "filters": {"or": [f"last_status == {_string(s)}" for s in ATTENTION_STATUSES]},
                "order": list(COLUMNS),
                "sort": [{"property": "last_run", "direction": "DESC"}],
            },
        ],
    }


def dashboard_text() -> str:
    """The file vaultsched writes: the marker line, then the dashboard as YAML."""
    body = yaml.safe_dump(dashboard(), sort_keys=False, allow_unicode=True, width=1000)
    return f"{MARKER}\n{body}"


def owned(text: str) -> bool:
    """True while the file still holds the marker line (vaultsched may rewrite it)."""
    return any(line.strip().startswith(_MARKER_START) for line in text.splitlines())


def dashboard_path(path: str | None) -> str:
    """The vault-relative path of the dashboard: `Tasks.base` by default, `.base` added when
    missing. Raises DashboardPathError for a path that could land outside the vault or in a
    hidden folder."""
    rel = DEFAULT_PATH if path is None else path.strip()
    if not rel.endswith(EXTENSION):
        rel += EXTENSION
    try:
        check_note_path(rel)
    except OutputPathError as exc:
        raise DashboardPathError(str(exc)) from None
    return rel


def _string(value: str) -> str:
    """A text literal of the Bases expression language (double-quoted)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
