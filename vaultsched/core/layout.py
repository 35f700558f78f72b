"""Where vaultsched keeps its files: every path under `.vaultsched/`, named once.

Paths are vault-relative POSIX strings, the form `statefs` opens (never following a link):

    .vaultsched/                        DIR
    ├── config.toml                     CONFIG           the vault's settings (committed)
    ├── .gitignore                      GITIGNORE        GITIGNORE_TEXT: state, logs, locks out
    ├── .gitattributes                  GITATTRIBUTES    GITATTRIBUTES_TEXT: ledgers merge by union
    ├── runs/                           RUNS_DIR         the ledger (committed)
    │   └── 2024-05/                    ledger_month_dir(month)
    │       ├── <host>.jsonl            ledger_file(month, host)
    │       └── <host>.jsonl.lock       lock_beside(ledger file): one appender at a time
    ├── recovered/                      RECOVERED_DIR    saves a note write displaced
    │   └── Tasks%2FA.md.<stamp>.<hex>  recovered_file(note, stamp, token)
    ├── logs/                           LOGS_DIR         full, unredacted output (ignored)
    │   ├── daemon.log                  DAEMON_LOG       the cron line's output
    │   └── Tasks/A/                    logs_dir(task id)
    │       ├── <run id>.log            run_log(task id, run id)
    │       ├── <run id>.out            run_output(task id, run id): its stdout, redacted
    │       └── .spare-log              spare_log(task id): the next run's log, made ahead
    └── state/                          STATE_DIR        this host's own (ignored)
        ├── daemon.lock                 INSTANCE_LOCK    one daemon per vault per host
        ├── git.lock                    GIT_LOCK         one git call at a time
        ├── index.cache                 INDEX_CACHE      what each note held, by its stat
        ├── inputs/Tasks%2FA.sha256     inputs_file(task id): `if_changed` at its last success
        ├── marks.json                  MARKS            fire times decided that no run shows
        ├── running/tasks.lock          TASK_LOCKS       one run of a task at a time: a byte each
        ├── running/Tasks%2FA.lock      running_lock(task id): the same, where byte locks are not
        ├── tasks/Tasks/A/              task_state_dir(task id): the task's own, between runs
        ├── writing/                    NOTE_TEMPS_DIR   a note's next text, fsynced, then renamed
        ├── writing.lock                NOTE_LOCKS       one check-and-rename of a note at a time
        ├── written/<sha1 of note>      written_mark(note): vaultsched's last write of it, where
        │                               the note cannot carry it (no extended attributes)
        └── written.lock                WRITTEN_LOCK     one process setting a mark at a time

Outside the vault, per user (a vault must not be able to vouch for itself):

    $XDG_STATE_HOME/vaultsched/         (~/.local/state/vaultsched)
    ├── trust.json                      trust_store()
    ├── trust.json.lock
    ├── trusted-config.json             trusted_config_file(store): config values last trusted
    ├── index-cache.key                 index_cache_key(): signs every vault's INDEX_CACHE
    ├── snapshots/<fingerprint>.json    snapshots_dir(store): what each trusted print was
    └── worker/                         worker_dir(): a pool worker's run logs and task state
    $XDG_CONFIG_HOME/vaultsched/config.toml   user_config()
    $XDG_CONFIG_HOME/vaultsched/pool.key      pool_key(): seals what goes through Redis
    $XDG_CACHE_HOME/vaultsched/pycache/       pycache_dir(): tasks' Python bytecode
"""

from __future__ import annotations

import os
import re
from pathlib import Path

DIR = ".vaultsched"
CONFIG = f"{DIR}/config.toml"
GITIGNORE = f"{DIR}/.gitignore"
GITATTRIBUTES = f"{DIR}/.gitattributes"
RUNS_DIR = f"{DIR}/runs"
RECOVERED_DIR = f"{DIR}/recovered"
LOGS_DIR = f"{DIR}/logs"
DAEMON_LOG = f"{LOGS_DIR}/daemon.log"
STATE_DIR = f"{DIR}/state"
INSTANCE_LOCK = f"{STATE_DIR}/daemon.lock"
GIT_LOCK = f"{STATE_DIR}/git.lock"
INDEX_CACHE = f"{STATE_DIR}/index.cache"  # adapters/indexcache.py: a warm start reads no note
MARKS = f"{STATE_DIR}/marks.json"
INPUTS_DIR = f"{STATE_DIR}/inputs"
RUNNING_DIR = f"{STATE_DIR}/running"
TASK_LOCKS = f"{RUNNING_DIR}/tasks.lock"  # a byte of it locked per task (statefs.locked_key)
WRITTEN_DIR = f"{STATE_DIR}/written"
WRITTEN_LOCK = f"{WRITTEN_DIR}.lock"
NOTE_TEMPS_DIR = f"{STATE_DIR}/writing"  # a note's next text, before its rename into place
NOTE_LOCKS = f"{NOTE_TEMPS_DIR}.lock"  # a byte of it locked per note (statefs.locked_key)
TASKS_STATE_DIR = f"{STATE_DIR}/tasks"
PING_FAILURES = f"{STATE_DIR}/pings.json"  # the last failed ping of each URL, for `doctor`
LEDGER_SUFFIX = ".jsonl"

# This host's state, the full logs and lock files never belong in git. `init` writes this, and
# so does every command that creates `.vaultsched/` (statefs.prepare_state_dir), so a vault
# someone just runs vaultsched in, never `init`ed, has a clean `git status` too.
GITIGNORE_TEXT = "state/\nlogs/\n*.lock\n*.tmp\n"
# Each host appends to its own ledger file; a merge keeps every host's lines.
GITATTRIBUTES_TEXT = f"*{LEDGER_SUFFIX} merge=union\n"
# GITIGNORE_TEXT in the repository root's terms, for `.git/info/exclude`: the vault's
# .gitignore is vault content a pull can rewrite, `info/exclude` is never pulled.
EXCLUDE_RULES = (f"/{STATE_DIR}/", f"/{LOGS_DIR}/", f"/{DIR}/**/*.lock", f"/{DIR}/**/*.tmp")
# A file that must be ignored in each of the folders that must stay out of git (doctor asks git).
MUST_IGNORE = (f"{LOGS_DIR}/x.log", f"{STATE_DIR}/x")


def file_safe(name: str) -> str:
    """A task id or note path as one file name: its folders joined by `%2F`."""
    return name.replace("/", "%2F")


def host_file_stem(host: str) -> str:
    """The name (without .jsonl) of `host`'s ledger files."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", host) or "host"


def ledger_month_dir(month: str) -> str:
    """`month` is `YYYY-MM` (UTC)."""
    return f"{RUNS_DIR}/{month}"


def ledger_file(month: str, host: str) -> str:
    return f"{ledger_month_dir(month)}/{host_file_stem(host)}{LEDGER_SUFFIX}"


def lock_beside(path: str) -> str:
    """The lock file that guards `path`; `*.lock` keeps it out of git."""
    return f"{path}.lock"


def logs_dir(task_id: str) -> str:
    """A task's run logs. The id's folders are kept (`logs/Tasks/A/`), not escaped."""
    return f"{LOGS_DIR}/{task_id}"


def run_log(task_id: str, run_id: str) -> str:
    return f"{logs_dir(task_id)}/{run_id}.log"


def spare_log(task_id: str) -> str:
    """An empty file made ahead, that the task's next run renames to its log: making a file
    costs far more than renaming one on some file systems (ext4 with many files just deleted)."""
    return f"{logs_dir(task_id)}/.spare-log"


def run_output(task_id: str, run_id: str) -> str:
    """A run's stdout, redacted: what the next run of the task and an `after` task read."""
    return f"{logs_dir(task_id)}/{run_id}.out"


def task_state_dir(task_id: str) -> str:
    """A task's own folder (VAULTSCHED_STATE_DIR), kept between runs and out of git."""
    return f"{TASKS_STATE_DIR}/{task_id}"


def running_lock(task_id: str) -> str:
    """The per-task lock a run holds, shared by the daemon and the CLI on this host."""
    return f"{RUNNING_DIR}/{file_safe(task_id)}.lock"


def inputs_file(task_id: str) -> str:
    """The digest of the files a task's `if_changed` matched when its last successful run
    started (this host's: a run on another host is not seen)."""
    return f"{INPUTS_DIR}/{file_safe(task_id)}.sha256"


def written_mark(note: str) -> str:
    """Where the hash of vaultsched's last write of `note` (vault-relative) is kept."""
    import hashlib  # here: importing it (OpenSSL) costs every command its start-up

    return f"{WRITTEN_DIR}/{hashlib.sha1(note.encode('utf-8')).hexdigest()}"


def recovered_file(note: str, stamp: str, token: str) -> str:
    return f"{RECOVERED_DIR}/{file_safe(note)}.{stamp}.{token}"


# -- per user, outside the vault -----------------------------------------------------------------


def _xdg(name: str, default: str) -> Path:
    return Path(os.environ.get(name) or Path.home() / default)


def trust_store() -> Path:
    return _xdg("XDG_STATE_HOME", ".local/state") / "vaultsched" / "trust.json"


def snapshots_dir(store: Path) -> Path:
    return store.parent / "snapshots"


def trusted_config_file(store: Path) -> Path:
    return store.parent / "trusted-config.json"


def index_cache_key() -> Path:
    """The key that authenticates INDEX_CACHE: per user, beside the trust store, never synced."""
    return trust_store().parent / "index-cache.key"


def user_config() -> Path:
    return _xdg("XDG_CONFIG_HOME", ".config") / "vaultsched" / "config.toml"


def pool_key() -> Path:
    """The secret that seals what the daemon and its workers say through Redis."""
    return _xdg("XDG_CONFIG_HOME", ".config") / "vaultsched" / "pool.key"


def worker_dir() -> Path:
    """A worker's own files (run logs, each task's state): never in the vault it runs from."""
    return _xdg("XDG_STATE_HOME", ".local/state") / "vaultsched" / "worker"


def pycache_dir() -> Path:
    """Where tasks' Python bytecode goes (PYTHONPYCACHEPREFIX): outside the vault."""
    return _xdg("XDG_CACHE_HOME", ".cache") / "vaultsched" / "pycache"
