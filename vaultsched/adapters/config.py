"""`.vaultsched/config.toml` in the vault, parsed.

What the rest of the code sees is the *effective* config (vaultsched/trust/config.py): the keys
that run something, send data out or choose where git talks are dropped unless this user
trusts them, and the per-user config's values for them are laid over the vault's.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import tzlocal

from vaultsched.adapters import statefs
from vaultsched.core import layout
from vaultsched.core.convert import at_least, one_of, to_bool, to_listen, to_zone, vault_glob
from vaultsched.core.durations import parse_duration
from vaultsched.core.errors import VaultschedError
from vaultsched.core.model import NOTIFY_ON, NotifyOn
from vaultsched.core.pings import to_ping_template, to_ping_url

if TYPE_CHECKING:
    from wcmatch import glob as wcglob

_T = TypeVar("_T")
MAX_CONFIG = 1 << 20
MIN_PING_INTERVAL = timedelta(seconds=1)
MAX_TASK_PATTERNS = 256  # entries of `[tasks] folders`, and of `exclude`
MAX_PATTERN = 1024  # characters in one of them


@dataclass(frozen=True)
class DigestConfig:
    folder: str = "Digests"
    format: str = "YYYY-MM-DD"


@dataclass(frozen=True)
class GitConfig:
    commit: bool = True
    sync: bool = False
    remote: str = "origin"
    sync_interval: timedelta = timedelta(minutes=5)


@dataclass(frozen=True)
class NotifyConfig:
    on: NotifyOn = "failure"
    command: str = ""
    urls: tuple[str, ...] = ()
    # {vault file: sha256} the command reached when the config was read (and trusted): a
    # daemon runs the notifier only while they are unchanged.
    reaches: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class MetricsConfig:
    listen: tuple[str, int] | None = None  # (host, port) to serve Prometheus metrics on
    textfile: str = ""  # an absolute `.prom` path for node_exporter's textfile collector


@dataclass(frozen=True)
class PingConfig:
    url: str = ""  # a URL template: `{task_slug}` is each task's name as a slug
    daemon: str = ""  # pinged every `daemon_interval` while the daemon runs
    daemon_interval: timedelta = timedelta(minutes=5)


@dataclass(frozen=True)
class ExecutorConfig:
    """`[executor]`: where runs execute. `rq`: on a pool of workers through Redis."""

    kind: str = "local"
    redis_url: str = ""  # `VAULTSCHED_REDIS_URL` wins
    queue_prefix: str = "vaultsched"
    fallback: str = "wait"  # Redis unreachable: hold runs until it returns, or `local`

    @property
    def pool(self) -> bool:
        return self.kind == "rq"


@dataclass(frozen=True)
class TasksConfig:
    """`[tasks]`: which notes can be tasks. Needs no trust: narrowing it stops tasks (as
    deleting their notes would), widening it only makes notes candidates, which still need
    trust to run (docs/security.md)."""

    folders: tuple[str, ...] = ()  # if set, only notes under these folders
    exclude: tuple[str, ...] = ()  # globs of notes (or of their folders) that never are

    @property
    def holds_every_note(self) -> bool:
        """True when `holds` is true of every note (neither `folders` nor `exclude` is set)."""
        return not self.folders and not self.exclude

    def holds(self, rel: str) -> bool:
        """Whether the note at `rel` (vault-relative, `/`-separated) can be a task."""
        if self.folders and not any(rel.startswith(f"{folder}/") for folder in self.folders):
            return False
        return not self.exclude or not _excluded(self.exclude, rel)

    def reaches_into(self, folder: str) -> bool:
        """Whether a note under `folder` can be a task (by `folders`): the walk of the vault
        skips the folders that cannot hold one."""
        if not self.folders:
            return True
        inside = f"{folder}/"
        return any(f"{f}/".startswith(inside) or inside.startswith(f"{f}/") for f in self.folders)


def _excluded(patterns: tuple[str, ...], rel: str) -> bool:
    """A glob matches the note's path, or one of its folders (`Templates` as `Templates/**`)."""
    match = _matcher(patterns).match
    parts = rel.split("/")
    return any(match("/".join(parts[:end])) for end in range(len(parts), 0, -1))


@lru_cache(maxsize=16)  # one config's patterns, matched against every note of the vault
def _matcher(patterns: tuple[str, ...]) -> wcglob.WcMatcher[str]:
    # Imported here: a config without `exclude` (an empty vault's `list`) never loads wcmatch.
    from wcmatch import glob as wcglob

    from vaultsched.adapters.inputs import FLAGS

    return wcglob.compile(list(patterns), flags=FLAGS)


@dataclass(frozen=True)
class Config:
    timezone: ZoneInfo
    default_timeout: timedelta = timedelta(hours=1)
    keep_runs: int = 10
    max_parallel: int = 4
    enabled: bool = True
    digest: DigestConfig = field(default_factory=DigestConfig)
    git: GitConfig = field(default_factory=GitConfig)
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    # `[notes] properties`: keep last_run, last_status, next_run and run_count in each task
    # note's front matter (`init` turns it on in the vaults it makes).
    properties: bool = False
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    ping: PingConfig = field(default_factory=PingConfig)
    # `[groups.NAME] max_parallel`: how many runs of the tasks naming the group may go at once
    # (a group no table names allows one).
    groups: Mapping[str, int] = field(default_factory=dict)
    tasks: TasksConfig = field(default_factory=TasksConfig)
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    # Vault keys not in effect because this user has not trusted them (`[notify] command`, ...).
    ignored: tuple[str, ...] = ()


def system_zone() -> ZoneInfo:
    zone = tzlocal.get_localzone()
    return zone if isinstance(zone, ZoneInfo) else ZoneInfo("UTC")


def host_name() -> str:
    """This host's name: `$VAULTSCHED_HOST`, else the machine's hostname (uname's, as
    `socket.gethostname` reads it on Linux, without loading the socket module)."""
    return os.environ.get("VAULTSCHED_HOST") or os.uname().nodename.split(".")[0] or "localhost"


def load_config(vault: Path) -> Config:
    """The vault's config as written, trusted or not: use `effective_config` to run anything."""
    return parse_config(read_config_file(vault))


def read_config_file(vault: Path) -> dict[str, object]:
    """The vault's `.vaultsched/config.toml` as a TOML table; empty when there is none.

    Read like every file under `.vaultsched/`: never through a symlink a sync brought (it
    could point anywhere on this machine), never a FIFO, never more than MAX_CONFIG bytes.
    """
    try:
        data = statefs.read_bytes(vault, layout.CONFIG, limit=MAX_CONFIG)
    except OSError as exc:
        detail = exc.strerror or str(exc)
        message = detail if detail.startswith(layout.CONFIG) else f"{layout.CONFIG}: {detail}"
        raise VaultschedError(message, exit_code=2) from exc
    if data is None:
        return {}
    import tomllib  # here: a vault without a config file (an empty one) never loads it

    try:
        return tomllib.loads(data.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise VaultschedError(f"{layout.CONFIG}: {exc}", exit_code=2) from exc


def parse_config(raw: dict[str, object], source: str = layout.CONFIG) -> Config:
    try:
        return _parse(raw)
    except (ValueError, TypeError, ZoneInfoNotFoundError) as exc:
        raise VaultschedError(f"{source}: {exc}", exit_code=2) from exc


def _parse(raw: dict[str, object]) -> Config:
    digest = _table(raw, "digest")
    git = _table(raw, "git")
    notify = _table(raw, "notify")
    metrics = _table(raw, "metrics")
    ping = _table(raw, "ping")
    zone = raw.get("timezone")
    return Config(
        timezone=_zone(zone) if zone else system_zone(),
        default_timeout=parse_duration(raw.get("default_timeout", "1h")),
        keep_runs=_get(raw, "keep_runs", 10, at_least(1)),
        max_parallel=_get(raw, "max_parallel", 4, at_least(1)),
        enabled=_get(raw, "enabled", True, to_bool),
        digest=DigestConfig(
            folder=_digest_folder(digest.get("folder", "Digests")),
            format=str(digest.get("format", "YYYY-MM-DD")),
        ),
        git=GitConfig(
            commit=_get(git, "commit", True, to_bool),
            sync=_get(git, "sync", False, to_bool),
            remote=str(git.get("remote", "origin")),
            sync_interval=parse_duration(git.get("sync_interval", "5m")),
        ),
        notify=NotifyConfig(
            on=_get(notify, "on", "failure", one_of(NOTIFY_ON)),
            command=str(notify.get("command", "")),
            urls=tuple(str(u) for u in _list(notify, "urls")),
        ),
        metrics=MetricsConfig(
            listen=_listen(metrics.get("listen", "")),
            textfile=_textfile(metrics.get("textfile", "")),
        ),
        ping=_ping(ping),
        groups=_groups(_table(raw, "groups")),
        tasks=_tasks(_table(raw, "tasks")),
        properties=_get(_table(raw, "notes"), "properties", False, to_bool),
        executor=_executor(_table(raw, "executor")),
    )


def _listen(value: object) -> tuple[str, int] | None:
    if value == "":
        return None
    try:
        return to_listen(value)
    except ValueError as exc:
        raise ValueError(f"[metrics] listen {exc}") from None


def _textfile(value: object) -> str:
    """An absolute path (or `~/...`) ending in `.prom`, never inside a `.git` folder: the
    file is replaced whole on every write, and git's hooks and config live in `.git/`."""
    if value == "":
        return ""
    text = value if isinstance(value, str) else ""
    path = Path(text).expanduser() if text.startswith("~/") else Path(text)
    if not path.is_absolute() or path.suffix != ".prom" or "\0" in text:
        raise ValueError(
            f"[metrics] textfile must be an absolute path ending in .prom, got {value!r}"
        )
    if ".git" in path.parts:
        raise ValueError(f"[metrics] textfile must not be inside a .git folder, got {value!r}")
    return str(path)


def _ping(raw: dict[str, object]) -> PingConfig:
    unknown = sorted(set(raw) - {"url", "daemon", "daemon_interval"})
    if unknown:
        raise ValueError(f"[ping] has unknown keys: {', '.join(unknown)}")
    url, daemon = raw.get("url", ""), raw.get("daemon", "")
    interval = _get(raw, "daemon_interval", "5m", parse_duration)
    if interval < MIN_PING_INTERVAL:
        raise ValueError(f"[ping] daemon_interval must be at least 1s, got {interval}")
    return PingConfig(
        url=_get(raw, "url", "", to_ping_template) if url != "" else "",
        daemon=_get(raw, "daemon", "", to_ping_url) if daemon != "" else "",
        daemon_interval=interval,
    )


def _executor(raw: dict[str, object]) -> ExecutorConfig:
    unknown = sorted(set(raw) - {"kind", "redis_url", "queue_prefix", "fallback"})
    if unknown:
        raise ValueError(f"[executor] has unknown keys: {', '.join(unknown)}")
    kind = _get(raw, "kind", "local", one_of(("local", "rq")))
    url = os.environ.get("VAULTSCHED_REDIS_URL") or raw.get("redis_url", "")
    if not isinstance(url, str):
        raise ValueError("[executor] redis_url must be a string")
    if kind == "rq":
        try:
            check_redis_url(url)
        except ValueError as exc:
            raise ValueError(f"[executor] redis_url: {exc}") from None
    prefix = raw.get("queue_prefix", "vaultsched")
    if not isinstance(prefix, str) or not _valid_prefix(prefix):
        raise ValueError(
            f"[executor] queue_prefix must be letters, digits, '.', '-' or '_', got {prefix!r}"
        )
    fallback = _get(raw, "fallback", "wait", one_of(("wait", "local")))
    return ExecutorConfig(kind, url, prefix, fallback)


def _valid_prefix(prefix: str) -> bool:
    """The pool's rule for names; core.pool (and its hashing) is imported only to check a
    prefix other than the default."""
    if prefix == "vaultsched":
        return True
    from vaultsched.core.pool import valid_name

    return valid_name(prefix)


def check_redis_url(url: str) -> None:
    """A Redis URL with a password, unless it only reaches this machine (loopback, a unix
    socket): a pool's queue decides what its workers run."""
    try:
        parsed = urlsplit(url)
        parsed.port  # noqa: B018 - raises ValueError for a port that is no number
    except ValueError:
        raise ValueError(f"is not a URL: {url!r}") from None
    if parsed.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"must start with redis://, rediss:// or unix://, got {url!r}")
    if parsed.scheme == "unix" or _loopback(parsed.hostname or ""):
        return
    if not parsed.password and "password=" not in parsed.query:
        raise ValueError(
            "a Redis server beyond this machine needs a password "
            "(redis://:PASSWORD@host:6379/0, or the password in VAULTSCHED_REDIS_URL)"
        )


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _groups(raw: dict[str, object]) -> dict[str, int]:
    """`[groups.NAME] max_parallel = N` for each group named."""
    groups = {}
    for name, table in raw.items():
        if not isinstance(table, dict):
            raise ValueError(f"[groups.{name}] must be a table")
        unknown = sorted(set(table) - {"max_parallel"})
        if unknown:
            raise ValueError(f"[groups.{name}] has unknown keys: {', '.join(unknown)}")
        groups[name] = _get(table, "max_parallel", 1, at_least(1))
    return groups


def _tasks(raw: dict[str, object]) -> TasksConfig:
    unknown = sorted(set(raw) - {"folders", "exclude"})
    if unknown:
        raise ValueError(f"[tasks] has unknown keys: {', '.join(unknown)}")
    folders = tuple(_folder(f, "[tasks] folders") for f in _patterns(raw, "folders", "Tasks"))
    exclude = _patterns(raw, "exclude", "Templates/**")
    try:
        excluded = tuple(vault_glob(pattern) for pattern in exclude)
        if excluded:  # no patterns, nothing to check: wcmatch not even imported
            _matcher(excluded)
    except Exception as exc:  # ours, or wcmatch's (too many brace expansions, ...)
        raise ValueError(f"[tasks] exclude: {exc}") from None
    return TasksConfig(tuple(dict.fromkeys(folders)), excluded)


def _patterns(raw: dict[str, object], key: str, example: str) -> tuple[str, ...]:
    """A list of strings, bounded: the config is synced, and matched against every note."""
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError(f'[tasks] {key} must be a list of strings, e.g. {key} = ["{example}"]')
    if len(value) > MAX_TASK_PATTERNS or any(len(v) > MAX_PATTERN for v in value):
        raise ValueError(
            f"[tasks] {key} is too long: at most {MAX_TASK_PATTERNS} entries of "
            f"{MAX_PATTERN} characters"
        )
    return tuple(value)


def _digest_folder(value: object) -> str:
    """The key needs no trust, so it must not reach `.git/` (digests written into
    `.git/hooks` break every commit), `.vaultsched/`, or out of the vault; nor be the whole
    vault (every note would be skipped as a digest)."""
    return _folder(value, "[digest] folder")


def _folder(value: object, what: str) -> str:
    """A plain folder inside the vault, as `a/b`: no leading `/`, no hidden, `.` or `..` part."""
    text = value if isinstance(value, str) else ""
    parts = text.rstrip("/").split("/")
    if (
        not text.strip()
        or text.startswith("/")
        or any(not p.strip() or p.startswith(".") or "\\" in p for p in parts)
        or any(ord(c) < 32 or ord(c) == 127 for c in text)
    ):
        raise ValueError(
            f"{what} must be a folder inside the vault (no leading '/', no '.' or "
            f"'..' parts, not empty), got {value!r}"
        )
    return "/".join(parts)


def _get(raw: dict[str, object], key: str, default: object, convert: Callable[[object], _T]) -> _T:
    """`raw[key]` (or `default`) converted; the message names the key: `enabled must be ...`."""
    try:
        return convert(raw.get(key, default))
    except ValueError as exc:
        raise ValueError(f"{key} {exc}") from None


def _zone(value: object) -> ZoneInfo:
    try:
        return to_zone(value)
    except ValueError as exc:  # `timezone: unknown timezone 'X' ...`, as validate says it
        raise ValueError(f"timezone: {exc}") from None


def _table(raw: dict[str, object], key: str) -> dict[str, object]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ValueError(f"[{key}] must be a table")
    return value


def _list(raw: dict[str, object], key: str) -> list[object]:
    value = raw.get(key, [])
    if not isinstance(value, list):
        raise ValueError(f"{key} must be a list")
    return value
