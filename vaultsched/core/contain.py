"""The containment boundary: whatever goes wrong with one note stays a problem on that note.

Parsers have bugs; a note is whatever anyone who can write to the vault typed. An unexpected
exception while reading, parsing or planning one note must not stop `validate`, `list` or the
daemon for the whole vault. The places that handle one note at a time (`vault.read_note`,
`planner.task_fires`, the daemon's per-task steps) turn such an exception into the `Problem`
made here, and the rest of the vault goes on.
"""

from __future__ import annotations

import logging
import os
import traceback
from pathlib import PurePath

from vaultsched.core.model import Problem

log = logging.getLogger("vaultsched.core.contain")

# `except Exception` is what each boundary catches: RecursionError (a RuntimeError) and
# MemoryError are Exceptions too, and at these places they are one note's doing (a deep or
# exploding front matter). KeyboardInterrupt and SystemExit are not, and pass through.
_MAX_DETAIL = 200


def describe(exc: BaseException) -> str:
    """`Type: message (at file:line in function)`: one line that is enough to file a bug."""
    try:
        text = " ".join(str(exc).split())
    except Exception:  # an exception that cannot say what it is must not escape the boundary
        text = "(no message)"
    text = text if len(text) <= _MAX_DETAIL else text[:_MAX_DETAIL] + "..."
    frames = traceback.extract_tb(exc.__traceback__)
    where = ""
    if frames:
        last = frames[-1]
        where = f" (at {PurePath(last.filename).name}:{last.lineno} in {last.name})"
    return f"{type(exc).__name__}: {text or '-'}{where}"


def internal_problem(path: str, doing: str, exc: BaseException) -> Problem:
    """The problem an unexpected failure while `doing` one note becomes; logged once, with the
    whole traceback when VAULTSCHED_DEBUG is set."""
    detail = describe(exc)
    debug = bool(os.environ.get("VAULTSCHED_DEBUG"))
    log.warning(
        "%s: internal error while %s it: %s", path, doing, detail, exc_info=exc if debug else None
    )
    message = (
        f"vaultsched failed while {doing} this note ({detail}); it is skipped until the note "
        "changes, the rest of the vault goes on (this is a vaultsched bug: please report it)"
    )
    return Problem(path, 1, message)
