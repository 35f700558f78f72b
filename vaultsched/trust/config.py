"""Config trust: the vault config's keys that run something, send data out or choose where git
talks take effect only once this user has trusted their values (`vaultsched trust --config`).

A sync rewrites `.vaultsched/config.toml` as easily as a task note, so `[notify] command` is as
much code as a task's `command`, `[git] remote` decides where the whole vault is pushed, and
`[metrics] listen` opens a port and `[metrics] textfile` replaces a file wherever it points;
`[ping] url` and `[ping] daemon` send each run's output and the daemon's life to a URL.
The same keys in the per-user config (outside the vault, written only by this user) need no
trust and win over the vault's. Every other key stays in effect untrusted: a timezone or a
digest folder runs nothing and sends nothing anywhere.

The policy is decided here, once: `effective_config` is the Config every command works with.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Final, Literal, TypedDict

from vaultsched.adapters.config import Config, host_name, parse_config, read_config_file
from vaultsched.adapters.terminal import escape
from vaultsched.adapters.vault import Vault, locate_vault
from vaultsched.core import layout
from vaultsched.core.errors import VaultschedError
from vaultsched.trust.fingerprint import files_reached
from vaultsched.trust.store import TrustStore, policy

# The config's id in the trust store. A task id is a note's path, which never starts with a dot.
CONFIG_ID = layout.CONFIG
TRUST_COMMAND = "vaultsched trust --config"

VerdictState = Literal["none", "trusted", "any", "untrusted"]  # what `verdict` found
NOTHING: Final = "none"  # the vault config sets no sensitive key
TRUSTED: Final = "trusted"
RELAXED: Final = "any"  # trust policy `any`: in effect without review
UNTRUSTED: Final = "untrusted"


@dataclass(frozen=True)
class Sensitive:
    table: str
    key: str  # "*": the whole table
    harmless: object  # a value that needs no trust: the default, which runs and sends nothing

    @property
    def label(self) -> str:
        return f"[{self.table}]" if self.key == "*" else f"[{self.table}] {self.key}"


# Every vault config key that runs, sends or points git somewhere, one line each. A whole
# table is one line too: Sensitive("executor", "*", {}).
SENSITIVE: tuple[Sensitive, ...] = (
    Sensitive("notify", "command", ""),
    Sensitive("notify", "urls", []),
    Sensitive("git", "remote", "origin"),
    Sensitive("git", "sync", False),
    Sensitive("metrics", "listen", ""),  # opens a port
    Sensitive("metrics", "textfile", ""),  # replaces a file wherever it points
    Sensitive("ping", "url", ""),  # sends each run's output out
    Sensitive("ping", "daemon", ""),
    Sensitive("executor", "*", {}),  # sends runs to whoever reads the queue
)

Values = tuple[tuple[str, Any], ...]  # (label, JSON-safe value), in SENSITIVE order
NOTIFY_COMMAND = "[notify] command"
# In the kept snapshot beside the values: the vault files the notify command runs, for diffs.
REACHES = "[notify] command reaches"


class VerdictRow(TypedDict):
    state: VerdictState
    keys: list[str]
    fix: str | None


@dataclass(frozen=True)
class Verdict:
    state: VerdictState
    values: Values  # what the vault sets, whether or not it is in effect

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(label for label, _ in self.values)

    def describe(self) -> str:
        keys = ", ".join(self.labels)
        return {
            NOTHING: f"nothing in {layout.CONFIG} needs trust",
            TRUSTED: f"trusted: {keys}",
            RELAXED: f"in effect without review (trust policy `any`): {keys}",
            UNTRUSTED: f"ignored until you trust them: {keys}",
        }[self.state]

    def as_dict(self) -> VerdictRow:
        fix = TRUST_COMMAND if self.state == UNTRUSTED else None
        return {"state": self.state, "keys": list(self.labels), "fix": fix}


@dataclass(frozen=True)
class TrustedConfig:
    values: Values
    files: Mapping[str, str]  # {vault file: sha256} the notify command reaches
    changes: tuple[str, ...]  # `- key = old` / `+ key = new` lines since the last trust
    first: bool  # never trusted before on this machine


# -- the effective config ---------------------------------------------------------------------


def effective_config(root: Path) -> Config:
    """The vault's config with untrusted sensitive keys dropped and per-user values on top."""
    raw = read_config_file(root)
    judged = verdict(root, raw)
    untrusted = judged.state == UNTRUSTED
    layered = _layered(raw, SENSITIVE if untrusted else (), user_values(root))
    config = parse_config(layered)
    reaches = tuple(sorted(files_reached(root, config.notify.command).items()))
    config = replace(config, notify=replace(config.notify, reaches=reaches))
    return replace(config, ignored=judged.labels) if untrusted else config


def verdict(root: Path, raw: Mapping[str, object] | None = None) -> Verdict:
    values = sensitive_values(read_config_file(root) if raw is None else raw)
    if not values:
        return Verdict(NOTHING, values)
    if policy() == "any":
        return Verdict(RELAXED, values)
    current = fingerprint(values, notify_files(root, values))
    trusted = TrustStore().trusted(root).get(CONFIG_ID) == current
    return Verdict(TRUSTED if trusted else UNTRUSTED, values)


def sensitive_values(raw: Mapping[str, object]) -> Values:
    """The sensitive keys the vault config sets to anything but their harmless default."""
    found = []
    for item in SENSITIVE:
        table = raw.get(item.table)
        if not isinstance(table, dict):
            continue
        value = table if item.key == "*" else table.get(item.key, item.harmless)
        if not _is_harmless(value, item.harmless):
            found.append((item.label, _jsonable(value)))
    return tuple(found)


def fingerprint(values: Values, files: Mapping[str, str] | None = None) -> str:
    """The values, and the content of the vault files the notify command runs. Without such
    files the print is the values' alone, as before: a `notify-send` config stays trusted."""
    pairs = [list(pair) for pair in values]
    data: object = {"values": pairs, "files": dict(files)} if files else pairs
    canonical = json.dumps(data, sort_keys=True)
    import hashlib  # here: a vault with no config to trust never loads it

    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def notify_files(root: Path, values: Values) -> dict[str, str]:
    """{vault file: sha256} the vault's notify command reaches, run from the vault root."""
    command = dict(values).get(NOTIFY_COMMAND)
    return files_reached(root, command) if isinstance(command, str) and command else {}


def user_values(root: Path) -> dict[tuple[str, str], object]:
    """Sensitive keys from the per-user config: its top level, then `[vaults."<root>"]`."""
    raw = _user_config()
    vaults = raw.get("vaults")
    this = vaults.get(str(root.resolve())) if isinstance(vaults, dict) else None
    chosen: dict[tuple[str, str], object] = {}
    for layer in (raw, this if isinstance(this, dict) else {}):
        for item in SENSITIVE:
            table = layer.get(item.table)
            if isinstance(table, dict) and (item.key == "*" or item.key in table):
                chosen[(item.table, item.key)] = table if item.key == "*" else table[item.key]
    parse_config(_layered({}, (), chosen), source=str(layout.user_config()))  # say which file
    return chosen


def _layered(
    raw: Mapping[str, object],
    dropped: Iterable[Sensitive],
    overlay: Mapping[tuple[str, str], object],
) -> dict[str, object]:
    result = {key: dict(value) if isinstance(value, dict) else value for key, value in raw.items()}
    for item in dropped:
        table = result.get(item.table)
        if item.key == "*":
            result.pop(item.table, None)
        elif isinstance(table, dict):
            table.pop(item.key, None)
    for (name, key), value in overlay.items():
        if key == "*":
            result[name] = dict(value) if isinstance(value, dict) else value
            continue
        table = result.setdefault(name, {})
        if isinstance(table, dict):
            table[key] = value
    return result


def _user_config() -> dict[str, object]:
    path = layout.user_config()
    try:
        text = path.read_text(encoding="utf-8")
        import tomllib  # here: without a user config, no TOML parser is loaded

        return tomllib.loads(text)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:  # TOMLDecodeError and UnicodeDecodeError among them
        raise VaultschedError(f"{path}: {exc}", exit_code=2) from exc


def _is_harmless(value: object, harmless: object) -> bool:
    return type(value) is type(harmless) and value == harmless


def _jsonable(value: object) -> Any:
    """TOML dates and times as text, so values can be compared, stored and hashed."""
    return json.loads(json.dumps(value, default=str))


def ignored_message(root: Path, labels: Iterable[str]) -> str:
    """Config keys not in effect, and the exact command that trusts them (said once)."""
    command = f"vaultsched --vault {shlex.quote(str(root))} trust --config"
    return (
        f"{layout.CONFIG}: {', '.join(labels)} ignored (not trusted on this machine);"
        f" review them, then run: {command}"
    )


# -- trusting it --------------------------------------------------------------------------------


def trust_config(root: Path) -> TrustedConfig:
    """Record the fingerprint of the sensitive values the vault config sets right now."""
    values = sensitive_values(read_config_file(root))
    files = notify_files(root, values)
    before = _snapshot(root)
    TrustStore().record_fingerprint(root, CONFIG_ID, fingerprint(values, files))
    kept = (*values, (REACHES, files)) if files else values
    _save_snapshot(root, kept)
    changes = tuple(diff_lines(before or {}, kept))
    return TrustedConfig(values, files, changes, before is None)


def diff_lines(before: Mapping[str, Any], after: Values) -> list[str]:
    now = dict(after)
    labels = [*(item.label for item in SENSITIVE), REACHES]
    labels += sorted(set(before) - set(labels))  # a key this version no longer knows
    lines = []
    for label in labels:
        old, new = before.get(label), now.get(label)
        if label in before and (label not in now or old != new):
            lines.append(f"- {label} = {show(old)}")
        if label in now and (label not in before or old != new):
            lines.append(f"+ {label} = {show(new)}")
    return lines


def show(value: object) -> str:
    """A value as TOML-like text, on one line, with every control or invisible character
    escaped: what the terminal shows must be what is trusted."""
    return escape(json.dumps(value, ensure_ascii=False, default=str), one_line=True)


def _snapshot_path() -> Path:
    return layout.trusted_config_file(layout.trust_store())


def _snapshot(root: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(_snapshot_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    entry = data.get(str(root.resolve())) if isinstance(data, dict) else None
    return entry if isinstance(entry, dict) else None


def _save_snapshot(root: Path, values: Values) -> None:
    # Here: only a change writes, and both are slow to import (`list` never writes).
    from filelock import FileLock

    from vaultsched.adapters.notes import write_atomic

    path = _snapshot_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(layout.lock_beside(str(path))):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = {}
        if not isinstance(data, dict):
            data = {}
        data[str(root.resolve())] = dict(values)
        text = json.dumps(data, indent=2, sort_keys=True, ensure_ascii=True) + "\n"
        write_atomic(path, text.encode("utf-8"), mode=0o600)


def open_vault(path: str | os.PathLike[str] | None) -> Vault:
    """The vault with its effective config: what is not trusted is not in it."""
    root = locate_vault(path)
    return Vault(root=root, config=effective_config(root), host=host_name())
