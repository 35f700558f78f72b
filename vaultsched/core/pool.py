"""What the daemon and its workers say to each other through Redis, and how it is sealed.

Redis is a wire, not a trusted party: anyone who can write to it could rewrite a job. Every
message (the job's payload, a worker's start and finish reports) is JSON, never pickle, and
sealed with an HMAC-SHA256 under the pool key, a secret that lives only in the per-user
configuration of the daemon's host and of each worker, never in the vault or in Redis. A message
whose seal does not hold, or whose fields are not what they must be, is refused whole.

The payload names what to run but carries no command: the worker reads the task from its own
clone of the vault and runs it only if its fingerprint is the one the daemon scheduled and its
own user's trust store allows it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

# The one function a worker performs; a job naming any other is refused before it is imported.
JOB_FUNCTION = "vaultsched.runtime.worker.perform"

# A queue name's parts come from task notes (`host:`): kept to what a host name or label holds.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")
LABEL = "label:"
MAX_TEXT = 1024 * 1024  # of any one text field (an upstream output, a tail)
MIN_KEY_BYTES = 16


class SealError(ValueError):
    """A message that is not what a member of the pool sealed."""


def valid_name(name: str) -> bool:
    return _NAME.fullmatch(name) is not None


def queue_for(prefix: str, hosts: tuple[str, ...]) -> str:
    """The queue a task's runs go to: `PREFIX:any`, `PREFIX:host:NAME` or `PREFIX:label:L`.
    Raises ValueError, in words for the note, when `host` cannot name one queue."""
    if not hosts:
        return f"{prefix}:any"
    if len(hosts) > 1:
        raise ValueError("host: a worker pool sends a run to one queue: name one host or label")
    host = hosts[0]
    kind, name = ("label", host[len(LABEL) :]) if host.startswith(LABEL) else ("host", host)
    if not valid_name(name):
        raise ValueError(f"host: {host!r} is not a host name or label:NAME (letters, digits, .-_)")
    return f"{prefix}:{kind}:{name}"


def worker_queues(prefix: str, host: str, labels: tuple[str, ...]) -> list[str]:
    """What a worker on `host` listens to, its own queue first."""
    return [
        f"{prefix}:host:{host}",
        *(f"{prefix}:label:{label}" for label in labels),
        f"{prefix}:any",
    ]


@dataclass(frozen=True)
class Payload:
    """One run, as the daemon hands it to the pool. `run_id` is also the RQ job id."""

    run_id: str
    queue: str  # the queue it was sent to: a job moved to another is refused
    task: str  # the task id (its note's path without .md)
    commit: str  # the vault's commit the run was scheduled from
    fingerprint: str  # of the task as the daemon trusted it
    trigger: str
    scheduled_for: str | None
    attempt: int
    upstream_run: str
    timeout_s: float
    # What a local run reads from the vault's state, which a worker's clone does not hold.
    last_success: str | None
    previous_output: str
    upstream_output: str


@dataclass(frozen=True)
class Started:
    run_id: str
    host: str
    started_at: str


@dataclass(frozen=True)
class Finished:
    run_id: str
    host: str
    status: str
    started_at: str
    finished_at: str
    exit_code: int | None
    duration_s: float | None
    message: str
    output_tail: str
    stdout: str | None  # cleaned for notes and the next run; None: the command never ran


Message = Payload | Started | Finished
_FIELDS: dict[str, type[Any]] = {
    "payload": Payload,
    "started": Started,
    "finished": Finished,
}


def seal(key: bytes, message: Message) -> dict[str, Any]:
    kind = next(name for name, cls in _FIELDS.items() if isinstance(message, cls))
    body = {"kind": kind, **asdict(message)}
    return {"body": body, "seal": _mac(key, body)}


def unseal(key: bytes, sealed: object, expect: type[Message]) -> Any:
    """The message `sealed` holds, checked; raises SealError if the seal or a field is wrong."""
    if not isinstance(sealed, Mapping) or set(sealed) != {"body", "seal"}:
        raise SealError("not a sealed message")
    body, mac = sealed["body"], sealed["seal"]
    if not isinstance(body, Mapping) or not isinstance(mac, str):
        raise SealError("not a sealed message")
    if not hmac.compare_digest(_mac(key, dict(body)), mac):
        raise SealError("its seal does not match: it was not sealed with this pool's key")
    fields = {k: v for k, v in body.items() if k != "kind"}
    if _FIELDS.get(str(body.get("kind"))) is not expect:
        raise SealError(f"not a {expect.__name__.lower()} message")
    return _checked(expect, fields)


def _checked(cls: type[Message], fields: dict[str, Any]) -> Any:
    """Types checked even under a good seal: a bug on the other side must not reach a path."""
    try:
        message = cls(**fields)
    except TypeError as exc:
        raise SealError(f"fields: {exc}") from None
    for name, value in asdict(message).items():
        annotation = cls.__annotations__[name]
        if not _fits(value, annotation):
            raise SealError(f"{name}: not a {annotation}")
    return message


def _fits(value: object, annotation: str) -> bool:
    if value is None:
        return "None" in annotation
    if isinstance(value, bool):
        return False
    if isinstance(value, str):
        return "str" in annotation and len(value) <= MAX_TEXT
    if isinstance(value, int):
        return "int" in annotation or "float" in annotation
    if isinstance(value, float):
        return "float" in annotation
    return False


def _mac(key: bytes, body: Mapping[str, Any]) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hmac.new(key, canonical.encode("ascii"), hashlib.sha256).hexdigest()
