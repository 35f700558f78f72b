"""Values as a person writes them, in a task note's front matter or in `config.toml`: one
check for each kind, so the two files accept the same things (durations: `durations.py`).

A converter takes the value as parsed (an absent key has taken its default already) and returns
it typed, or raises ValueError with a message that leaves the key out: each caller names it in
its own style (`retries: must be ...` in `validate`, `keep_runs must be ...` for the config).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_Choice = TypeVar("_Choice", bound=str)


def to_bool(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"must be true or false, got {value!r}")
    return value


def at_least(minimum: int) -> Callable[[object], int]:
    def convert(value: object) -> int:
        # bool is an int to Python: `retries: yes` is no count
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"must be a whole number >= {minimum}, got {value!r}")
        return value

    return convert


def one_of(choices: tuple[_Choice, ...]) -> Callable[[object], _Choice]:
    """The choice equal to the value: typed as the choices are (a Literal alias)."""

    def convert(value: object) -> _Choice:
        for choice in choices:
            if value == choice:
                return choice
        raise ValueError(f"must be one of {', '.join(choices)}, got {value!r}")

    return convert


def to_zone(value: object) -> ZoneInfo:
    if not isinstance(value, str):
        raise ValueError(f"must be an IANA zone name such as Europe/Warsaw, got {value!r}")
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown timezone {value!r} (use an IANA name such as Europe/Warsaw)"
        ) from exc


def vault_glob(value: object) -> str:
    """A vault-relative glob: one that is absolute or climbs with `..` could match files outside
    the vault."""
    if not isinstance(value, str):
        raise ValueError(f"a glob must be a string, got {value!r}")
    if not value.strip():
        raise ValueError("a glob must not be empty")
    if value.startswith(("/", "~")):
        raise ValueError(f"{value!r} is not inside the vault: write a vault-relative glob")
    if ".." in value.replace("\\", "/").split("/"):
        raise ValueError(f"{value!r} climbs out with '..': write a vault-relative glob")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError(f"{value!r} has a control character")
    return value


def to_listen(value: object) -> tuple[str, int]:
    """`HOST:PORT` (`[::1]:9108` for an IPv6 address) as (host, port); the host is required,
    so listening on every interface is a choice written out (`0.0.0.0:9108`)."""
    text = value if isinstance(value, str) else ""
    host, sep, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    valid_host = bool(host) and not any(c.isspace() or c in "[]/" for c in host)
    if not sep or not valid_host or not port.isascii() or not port.isdigit():
        raise ValueError(f"must be HOST:PORT such as 127.0.0.1:9108, got {value!r}")
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"port must be 1-65535, got {value!r}")
    return host, int(port)
