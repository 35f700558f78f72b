"""`list`'s rows: from the vault's running daemon when it can answer, else from a walk.

Both sides build the rows with the same code (`rows_of`) from the same inputs: the daemon from
a copy of the index it keeps current, `list` from a fresh walk. What else goes into them (the
config as trusted, the host, the trust store and policy, the version) is the `context`, which
the answer must echo exactly, or `list` walks."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vaultsched.adapters.vault import Index, Vault
    from vaultsched.cli.reports import ListRow

# Off (0, false, no, off): `list` never asks the daemon (tests compare both ways).
ASK_DAEMON = "VAULTSCHED_ASK_DAEMON"


def rows_of(vault: Vault, index: Index, now: datetime) -> list[ListRow]:
    """`list`'s rows from an index not yet planned (made invalid where it cannot be planned
    from `now`): the ledger and trust are read only for a vault with a task note."""
    from vaultsched.adapters.vault import drop_unplannable

    fires = drop_unplannable(index, now)
    if not (index.tasks or index.invalid):
        return []
    from vaultsched.adapters.ledger import Ledger
    from vaultsched.cli.reports import list_rows
    from vaultsched.trust.store import TrustStore

    runs = Ledger(vault.root, vault.host).runs()
    return list_rows(index, runs, now, TrustStore().checker(vault.root), fires)


def list_rows_now(vault: Vault, now: datetime) -> list[ListRow]:
    """The daemon's rows if it answers, else the walk's."""
    rows = None if _off() else from_daemon(vault, now)
    if rows is not None:
        return rows
    from vaultsched.adapters.vault import build_index

    return rows_of(vault, build_index(vault), now)


def _off() -> bool:
    return os.environ.get(ASK_DAEMON, "1").strip().lower() in ("0", "false", "no", "off")


def context(vault: Vault) -> str:
    """Everything but the notes that the rows depend on, as one string both sides make."""
    import dataclasses

    from vaultsched import __version__
    from vaultsched.core import layout
    from vaultsched.trust.store import policy

    real = dataclasses.replace(vault, root=vault.root.resolve())
    return repr((__version__, repr(real), str(layout.trust_store()), policy()))


def from_daemon(vault: Vault, now: datetime) -> list[ListRow] | None:
    """The rows the vault's daemon sends, checked; None if it sends none that can be used."""
    from vaultsched.adapters.query import ask, daemon_socket

    path = daemon_socket(str(vault.root.resolve()))
    if path is None:
        return None
    asked = context(vault)
    answer = ask(path, {"query": "list", "now": now.isoformat(), "context": asked})
    if not isinstance(answer, dict) or answer.get("context") != asked:
        return None
    rows = answer.get("rows")
    if not isinstance(rows, list) or not all(_is_row(row) for row in rows):
        return None
    return rows


def answer(vault: Vault, index: Index, question: Mapping[str, object]) -> object:
    """The daemon's side: `list`'s rows from `index` (a copy: planning it changes it), at the
    asker's `now`, with the daemon's own context for the asker to compare."""
    if question.get("query") != "list":
        return {"error": "unknown query"}
    when = question.get("now")
    try:
        now = datetime.fromisoformat(when) if isinstance(when, str) else None
    except ValueError:
        now = None
    if now is None or now.tzinfo is None:
        return {"error": "now: not an aware ISO 8601 time"}
    return {"context": context(vault), "rows": rows_of(vault, index, now)}


def _text(value: object) -> bool:
    return isinstance(value, str)


def _maybe_text(value: object) -> bool:
    return value is None or isinstance(value, str)


def _texts(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _flag(value: object) -> bool:
    return isinstance(value, bool)


def _maybe_flag(value: object) -> bool:
    return value is None or isinstance(value, bool)


# What each field of a `ListRow` may hold (tests/test_listing.py checks it names them all).
ROW_SHAPE = {
    "task": _text,
    "path": _text,
    "schedule": _texts,
    "after": _texts,
    "enabled": _maybe_flag,
    "trusted": _maybe_flag,
    "valid": _flag,
    "errors": _texts,
    "next_run": _maybe_text,
    "last_run": _maybe_text,
    "last_status": _maybe_text,
    "not_run_since": _maybe_text,
}


def _is_row(row: object) -> bool:
    return (
        isinstance(row, dict)
        and row.keys() == ROW_SHAPE.keys()
        and all(fits(row[key]) for key, fits in ROW_SHAPE.items())
    )
