"""Dead-man's-switch pings in healthchecks.io's protocol, as data: which URL a run pings, the
signal its status sends, and a URL made fit to show (its key left out). No I/O.

A check's URL holds its secret (a UUID, or a project's ping key), so it is never shown whole.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from vaultsched.core.model import ATTENTION, Run, Status

SLUG = "{task_slug}"
BODY_BYTES = 10 * 1024  # an end ping carries at most this much of the run's output
_NOT_SLUG = re.compile(r"[^a-z0-9]+")
# A run id as a UUID (healthchecks takes only UUIDs as `rid`): the same run, the same UUID.
_RID_SPACE = "9b7c4f3e-2d1a-4c5b-8e6f-0a1b2c3d4e5f"


def to_ping_url(value: object) -> str:
    """An http(s) URL with a host and no user name or password in it."""
    text = value if isinstance(value, str) else ""
    if not text or any(c.isspace() or not c.isprintable() for c in text):
        raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is no number
    except ValueError:
        raise ValueError(f"must be an http:// or https:// URL, got {value!r}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an http:// or https:// URL, got {value!r}")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ValueError("must not hold a user name or password (user:pass@host)")
    if parts.fragment:
        raise ValueError("must not have a #fragment")
    return text


def to_ping_template(value: object) -> str:
    """The config's `[ping] url`: a URL once `{task_slug}` is filled in."""
    text = value if isinstance(value, str) else ""
    try:
        to_ping_url(text.replace(SLUG, "task"))
    except ValueError as exc:
        raise ValueError(str(exc).replace(repr(text.replace(SLUG, "task")), repr(value))) from None
    return text


def slug(name: str) -> str:
    """A task's name as healthchecks makes slugs: lower case, each run of other characters than
    a-z and 0-9 one `-`, none at either end (`Daily briefing` -> `daily-briefing`)."""
    return _NOT_SLUG.sub("-", name.lower()).strip("-")


def url_for(name: str, own: str | None, template: str) -> str:
    """The URL a task's runs ping: its own `ping`, else the config's template; "" for none."""
    if own:
        return own
    if not template:
        return ""
    filled = slug(name)
    return template.replace(SLUG, filled) if filled or SLUG not in template else ""


def rid(run_id: str) -> str:
    import uuid  # here: every command reads the config's pings, only a ping needs a UUID

    return str(uuid.uuid5(uuid.UUID(_RID_SPACE), run_id))


def with_signal(url: str, signal: str, run_id: str = "") -> str:
    """`url` + `/start` or `/fail` (`signal` "" for success), and `?rid=` when a run is given;
    a URL that has a query already keeps it."""
    parts = urlsplit(url)
    path = parts.path.rstrip("/") + (f"/{signal}" if signal else "")
    query = "&".join(q for q in (parts.query, f"rid={rid(run_id)}" if run_id else "") if q)
    return parts._replace(path=path, query=query).geturl()


def end_signal(run: Run) -> str | None:
    """What a finished run sends: "" (success), "fail" for a status that needs attention, or
    None (nothing). A skipped run had nothing to do, which is healthy; a missed fire never
    ran, and saying nothing lets the check's own schedule tell that it is late."""
    if run.status in (Status.SUCCESS, Status.SKIPPED):
        return ""
    if run.status in ATTENTION:
        return "fail"
    return None


def body_of(run: Run) -> bytes:
    """The end ping's body: the last BODY_BYTES of the run's output as its note shows it
    (redacted), cut on a character boundary."""
    data = run.output_tail.encode("utf-8")[-BODY_BYTES:]
    return data.decode("utf-8", errors="ignore").encode("utf-8")


def shown(url: str, keep: str = "") -> str:
    """`url` fit to show: its scheme and host; of its path only `keep` (a slug) when it is the
    last part; everything else, the key among it, as `…`."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "…"
    tail = f"/{keep}" if keep and parts.path.rstrip("/").endswith(f"/{keep}") else ""
    return f"{parts.scheme}://{host}{port}/…{tail}"
