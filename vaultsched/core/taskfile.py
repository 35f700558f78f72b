"""Turning a note's front matter into a `Task` or a list of `Problem`s. Pure: text in.

(`adapters/notefile.read_front_matter` reads the front matter lines of a note file.)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache, lru_cache
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo

from vaultsched.core.convert import at_least, one_of, to_bool, to_zone, vault_glob
from vaultsched.core.durations import parse_duration
from vaultsched.core.model import (
    AFTER_ON,
    APPROVALS,
    EXECUTORS,
    NOTIFY_ON,
    OVERLAPS,
    STDINS,
    Problem,
    Task,
    Window,
)
from vaultsched.core.pings import to_ping_url
from vaultsched.core.workflow import OutputPathError, expand_output

if TYPE_CHECKING:
    import yaml

    from vaultsched.adapters.config import Config
    from vaultsched.core.schedules import Schedule

_Choice = TypeVar("_Choice", bound=str)
MAX_FRONT_MATTER = 64 * 1024
FENCE = "---"
# Bounds on what one front matter may make us build (see `_check_expansion`).
MAX_NODES = 10_000
MAX_ALIASES = 100
# No duration may exceed this: every later sum (a deadline, a doubled retry delay, the next
# slot of an interval) then stays far inside what a datetime can hold.
# The `---` fence is line 1, so YAML line 0 is line 2 of the file.
FIRST_YAML_LINE = 2

KNOWN_KEYS = (
    "command",
    "schedule",
    "timezone",
    "enabled",
    "timeout",
    "retries",
    "retry_delay",
    "catch_up",
    "overlap",
    "jitter",
    "cwd",
    "env",
    "stdin",
    "host",
    "notify",
    "keep_runs",
    "approval",
    "check",
    "if_changed",
    "after",
    "on",
    "output",
    "group",
    "max_runs",
    "until",
    "window",
    "ping",
    "executor",
)
# What vaultsched itself writes into a task note (`[notes] properties`): never a typo.
WRITTEN_KEYS = ("last_run", "last_status", "next_run", "run_count")
_COMMAND_LINE = re.compile(r"^command\s*:", re.MULTILINE)


class FrontMatterTooBig(ValueError):
    """A front matter that would expand past the bounds if built (a "billion laughs")."""


class NotADate(ValueError):
    """A value YAML reads as a date that is none (`2024-02-30`): the whole front matter fails
    to build, so it is reported like invalid YAML, at its line."""

    def __init__(self, message: str, line: int) -> None:
        super().__init__(message)
        self.line = line


@dataclass(frozen=True)
class FrontMatterSpan:
    """Where the front matter sits in a whole note's text (character offsets)."""

    yaml_start: int  # first character after the opening fence line
    yaml_end: int  # first character of the closing fence line
    body_start: int  # first character after the closing fence line


def front_matter_span(text: str) -> FrontMatterSpan | None:
    from vaultsched.core.blocks import FRONT_MATTER  # not for every command: see `_import_yaml`

    match = FRONT_MATTER.match(text)
    if match is None:
        return None
    return FrontMatterSpan(match.start("yaml"), match.end("yaml"), match.end())


def front_matter_text(text: str) -> str | None:
    """The YAML of a whole note's text (as `read_front_matter` reads it from a file)."""
    span = front_matter_span(text)
    return None if span is None else text[span.yaml_start : span.yaml_end]


@dataclass(frozen=True)
class Parsed:
    """What one note's front matter says. `is_task` is true even when the task is invalid.

    `meant`: the note is clearly meant as a task (its `command` is a string or a list, or it
    has a `schedule`), not a note whose `command` property is something else (a plugin's
    `command: {name: ...}`): the pre-commit hook refuses only the first kind.
    """

    is_task: bool
    task: Task | None
    problems: tuple[Problem, ...]
    meant: bool = True

    @property
    def errors(self) -> tuple[Problem, ...]:
        return tuple(p for p in self.problems if p.severity == "error")


NOT_A_TASK = Parsed(False, None, ())


def task_id(rel_path: str) -> str:
    if rel_path.endswith(".md") and not rel_path.rpartition("/")[2].startswith("."):
        return rel_path[:-3]  # the case for every note: no path object per note on a cold index
    return str(PurePosixPath(rel_path).with_suffix(""))


def may_be_task(yaml_text: str) -> bool:
    """False for front matter that `parse_task` finds NOT_A_TASK without parsing it. Only the
    `command` and `schedule` keys make a note our business (a task, or the "no command" note),
    and most notes with front matter have neither: their YAML is skipped on a cold index. (A
    key spelled with YAML escapes, "\x63ommand", would slip through; nobody writes that.)"""
    return "command" in yaml_text or "schedule" in yaml_text


def parse_task(rel_path: str, yaml_text: str | None, config: Config) -> Parsed:
    """Validate one note's front matter. Never raises for bad input: problems are returned.

    Whether the answer is NOT_A_TASK depends on the text alone, never on `config`: the index
    cache (adapters/indexcache.py) keeps only that much of such a note between starts."""
    if yaml_text is None or not may_be_task(yaml_text):
        return NOT_A_TASK
    _import_yaml()
    try:
        return _parse(rel_path, yaml_text, config)
    except yaml.YAMLError as exc:
        return _yaml_failure(rel_path, yaml_text, exc)
    except FrontMatterTooBig as exc:
        return _unreadable(rel_path, yaml_text, str(exc))
    except NotADate as exc:
        return _unreadable(rel_path, yaml_text, str(exc), exc.line)
    except RecursionError:  # `[[[[…` thousands deep: building and checking it recurse per level
        return _unreadable(rel_path, yaml_text, "front matter is nested too deeply to read")


def _parse(rel_path: str, yaml_text: str, config: Config) -> Parsed:
    root, data = _load(yaml_text)
    if not isinstance(root, yaml.MappingNode) or not isinstance(data, dict):
        return NOT_A_TASK
    nodes = {k.value: (k, v) for k, v in root.value if isinstance(k, yaml.ScalarNode)}
    _unfold_on(nodes, data)
    if "command" not in data:
        if "schedule" in data:
            return Parsed(False, None, _no_command(rel_path, nodes))
        return NOT_A_TASK
    return _TaskBuilder(rel_path, data, nodes, config).build()


def _no_command(
    rel_path: str, nodes: Mapping[str, tuple[yaml.Node, yaml.Node]]
) -> tuple[Problem, ...]:
    """A note with a schedule and no `command`: not a task, and said so; a key that is a typo
    of `command` (`comand`) is the likely reason, and a warning."""
    line = _line(nodes["schedule"][0]) if "schedule" in nodes else 1
    found = [Problem(rel_path, line, "has a schedule but no command: not a task", "note")]
    for key, (key_node, _) in nodes.items():
        if near_miss(key) == "command":
            message = f"unknown key {key!r}: did you mean 'command'? (without it, not a task)"
            found.append(Problem(rel_path, _line(key_node), message, "warning"))
    return tuple(found)


def _unfold_on(nodes: Mapping[str, tuple[yaml.Node, yaml.Node]], data: dict[Any, Any]) -> None:
    """YAML 1.1 reads a plain `on:` key as the boolean true. People write `on: failure`
    unquoted, so that key is `on` again (a `yes:` key, also true, is left alone)."""
    key = nodes.get("on", (None, None))[0]
    if key is not None and key.tag.endswith(":bool") and True in data and "on" not in data:
        data["on"] = data.pop(True)


_Loader: Callable[[str], Any]  # PyYAML's loader class, see `_import_yaml`


@cache
def _import_yaml() -> None:
    """PyYAML, into this module's globals, for the first note that may be a task: not for
    every command that imports this module (`list` on an empty vault, `trust`, `doctor`)."""
    global yaml, _Loader  # noqa: PLW0603 - bound once, on first use, for every function here
    import yaml

    # libyaml's parser when PyYAML has it (the wheels do): the pure-Python one dominated a
    # cold index. The same safe constructor either way.
    _Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _load(yaml_text: str) -> tuple[yaml.Node | None, Any]:
    """Parse once: the node tree (for line numbers) and the data built from it."""
    loader = _Loader(yaml_text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None
        _check_expansion(root)
        try:
            return root, loader.construct_document(root)
        except ValueError as exc:
            found = _not_a_date(loader, root)
            if found is None:
                raise
            raise found from exc
    finally:
        loader.dispose()


def _not_a_date(loader: Any, root: yaml.Node) -> NotADate | None:
    """What failed to build, if it is a scalar YAML reads as a date (`2024-02-30`)."""
    pending = [root]
    while pending:
        node = pending.pop()
        pending.extend(reversed(_children(node)))
        if isinstance(node, yaml.ScalarNode) and node.tag.endswith(":timestamp"):
            try:
                loader.construct_yaml_timestamp(node)
            except ValueError as exc:
                message = f"YAML reads {node.value} as a date, and it is not one ({exc})"
                return NotADate(message, _line(node))
    return None


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a front matter that expands past MAX_NODES or uses over MAX_ALIASES aliases.

    Measured on the composed node graph, where an alias is one more reference to a node that
    is already there: the size of each node is counted once, so nine lines standing for a
    billion nodes cost nine steps here, and nothing is built until they pass. Iterative, so
    that depth costs no Python stack; an alias inside its own anchor expands without end.
    """
    sizes: dict[int, int] = {}  # id(node) -> nodes it expands to
    open_nodes: set[int] = set()  # on the current path: met again, it contains itself
    aliases = 0
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[key] > MAX_NODES:
                raise FrontMatterTooBig(
                    f"front matter expands to over {MAX_NODES:,} values through YAML aliases: "
                    "not read"
                )
        elif key in sizes or key in open_nodes:
            aliases += 1
            if key in open_nodes:
                raise FrontMatterTooBig("front matter has a YAML alias inside its own anchor")
            if aliases > MAX_ALIASES:
                raise FrontMatterTooBig(f"front matter uses over {MAX_ALIASES} YAML aliases")
        else:
            open_nodes.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in _children(node))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [item for pair in node.value for item in pair]
    return []


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + FIRST_YAML_LINE


def _yaml_failure(rel_path: str, text: str, exc: yaml.YAMLError) -> Parsed:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line_no = int(mark.line) if mark is not None else 0
    lines = text.splitlines()
    source = lines[line_no] if line_no < len(lines) else ""
    message = f"invalid YAML: {_one_line(exc)}"
    key, _, value = source.partition(":")
    if "alias" in str(exc) and value.strip().startswith("*"):
        message = (
            f'{key.strip()} starts with "*", which YAML reads as an alias: quote it, '
            f'e.g. {key.strip()}: "{value.strip()}"'
        )
    return _unreadable(rel_path, text, message, line_no + FIRST_YAML_LINE)


def _unreadable(rel_path: str, text: str, message: str, line: int = FIRST_YAML_LINE) -> Parsed:
    # A broken note that is not a task is not our business; one that looks like a task is.
    is_task = bool(_COMMAND_LINE.search(text))
    problems = (Problem(rel_path, line, message),) if is_task else ()
    return Parsed(is_task, None, problems)


def _one_line(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None)
    context = getattr(exc, "context", None)
    parts = [str(p) for p in (context, problem) if p]
    return ": ".join(parts) if parts else str(exc).splitlines()[0]


def edit_distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


@lru_cache(maxsize=4096)  # the same few keys (tags, aliases, ...) recur across a whole vault
def near_miss(key: str) -> str | None:
    """The known key an unknown one is probably a typo of (short keys allow only one edit)."""
    lowered = key.lower()
    for known in KNOWN_KEYS:
        limit = 1 if len(known) <= 4 else 2
        if abs(len(lowered) - len(known)) > limit:  # cheap, and rules out most keys
            continue
        if lowered != known and edit_distance(lowered, known) <= limit:
            return known
    return None


class _TaskBuilder:
    """Checks every known key, collecting all problems rather than stopping at the first."""

    def __init__(
        self,
        rel_path: str,
        data: dict[Any, Any],
        nodes: Mapping[str, tuple[yaml.Node, yaml.Node]],
        config: Config,
    ) -> None:
        self.path = rel_path
        self.data = data
        self.nodes = nodes
        self.config = config
        self.problems: list[Problem] = []

    def problem(self, key: str, message: str, node: yaml.Node | None = None) -> None:
        target = node if node is not None else self.nodes.get(key, (None, None))[1]
        line = _line(target) if target is not None else 1
        self.problems.append(Problem(self.path, line, f"{key}: {message}"))

    def get(self, key: str, default: Any, convert: Callable[[Any], Any]) -> Any:
        if key not in self.data or self.data[key] is None:
            return default
        try:
            return convert(self.data[key])
        except (ValueError, TypeError) as exc:
            self.problem(key, str(exc))
            return default

    def build(self) -> Parsed:
        self._warn_unknown_keys()
        command = self.get("command", None, _command)
        if command is None and not self.problems:
            self.problem("command", "must not be empty")
        zone: ZoneInfo = self.get("timezone", self.config.timezone, to_zone)
        schedules = self._schedules()
        task = Task(
            id=task_id(self.path),
            path=self.path,
            command=command or "",
            schedules=schedules,
            timezone=zone,
            enabled=self.get("enabled", True, to_bool),
            timeout=self._duration("timeout", self.config.default_timeout, positive=True),
            retries=self.get("retries", 0, at_least(0)),
            retry_delay=self._duration("retry_delay", timedelta(seconds=30)),
            catch_up=self.get("catch_up", True, to_bool),
            overlap=self.get("overlap", "skip", _choice(OVERLAPS)),
            jitter=self._duration("jitter", timedelta(0)),
            cwd=self.get("cwd", None, _nonempty_str),
            env=self.get("env", {}, _env),
            stdin=self.get("stdin", "none", _choice(STDINS)),
            hosts=self.get("host", (), _str_list),
            notify=self.get("notify", self.config.notify.on, _choice(NOTIFY_ON)),
            keep_runs=self.get("keep_runs", self.config.keep_runs, at_least(1)),
            approval=self.get("approval", "none", _choice(APPROVALS)),
            executor=self.get("executor", None, _choice(EXECUTORS)),
            **self._workflow(zone, bool(schedules)),
        )
        errors = [p for p in self.problems if p.severity == "error"]
        meant = isinstance(self.data["command"], str | list) or "schedule" in self.data
        return Parsed(True, None if errors else task, tuple(self.problems), meant)

    def _workflow(self, zone: ZoneInfo, scheduled: bool) -> dict[str, Any]:
        """The keys that tie tasks together and bound when they run."""
        after = self.get("after", (), _references)
        if "on" in self.data and not after:
            self.warn("on", "has no effect without after")
        window = self._window()
        if window is not None and not scheduled:
            self.warn("window", "has no effect without a schedule: it only defers scheduled fires")
        if self.data.get("stdin") == "upstream" and not after:
            self.warn(
                "stdin", "upstream without after: there is no upstream, the command reads nothing"
            )
        return {
            "check": self.get("check", None, _command_of("check")),
            "if_changed": self.get("if_changed", (), _globs),
            "after": after,
            "on": self.get("on", "success", _choice(AFTER_ON)),
            "output": self._output(zone),
            "group": self.get("group", None, _nonempty_str),
            "max_runs": self.get("max_runs", None, at_least(1)),
            "until": self.get("until", None, _until(zone)),
            "window": window,
            "ping": self.get("ping", None, to_ping_url),
            "key_lines": {key: _line(node) for key, (_, node) in self.nodes.items()},
        }

    def warn(self, key: str, message: str) -> None:
        line = _line(self.nodes[key][0]) if key in self.nodes else 1
        self.problems.append(Problem(self.path, line, f"{key}: {message}", "warning"))

    def _output(self, zone: ZoneInfo) -> str | None:
        """The template, tried once with sample values: a bad placeholder or a path that leaves
        the vault is a problem now, not a failed run later."""
        template: str | None = self.get("output", None, _nonempty_str)
        if template is None:
            return None
        sample_time = datetime(2024, 12, 31, 23, 59, tzinfo=zone)
        try:
            name = PurePosixPath(task_id(self.path)).name
            expand_output(template, name, _SAMPLE_RUN_ID, sample_time)
        except OutputPathError as exc:
            self.problem("output", str(exc))
            return None
        return template

    def _window(self) -> Window | None:
        node = self.nodes.get("window", (None, None))[1]
        text = node.value if isinstance(node, yaml.ScalarNode) else ""
        # YAML 1.1 reads 9:00 as the base-60 number 540 (`09:00-17:00` stays a string).
        if isinstance(self.data.get("window"), int) and ":" in text:
            message = (
                f'YAML reads {text} as a number; write a start and an end, e.g. "{text}-17:00"'
            )
            self.problem("window", message)
            return None
        window: Window | None = self.get("window", None, _window)
        return window

    def _warn_unknown_keys(self) -> None:
        for key, (key_node, _) in self.nodes.items():
            if key in KNOWN_KEYS or key in WRITTEN_KEYS:
                continue
            guess = near_miss(key)
            if guess is not None:
                message = f"unknown key {key!r}: did you mean {guess!r}?"
                self.problems.append(Problem(self.path, _line(key_node), message, "warning"))

    def _duration(self, key: str, default: timedelta, *, positive: bool = False) -> timedelta:
        node = self.nodes.get(key, (None, None))[1]
        # YAML 1.1 reads `1:30` as the base-60 integer 90: almost never what the user meant.
        # (A plain scalar has style None in PyYAML, "" in libyaml.)
        if isinstance(node, yaml.ScalarNode) and ":" in node.value and not node.style:
            self.problem(
                key,
                f"{node.value} is read by YAML as a base-60 number; write a duration such as "
                f'"1m30s" or "90s"',
            )
            return default
        value: timedelta = self.get(key, default, parse_duration)
        if positive and value <= timedelta(0):
            self.problem(key, "must be longer than 0s")
            return default
        return value

    def _schedules(self) -> tuple[Schedule, ...]:
        from vaultsched.core.schedules import ScheduleError, parse_schedule  # see `_import_yaml`

        raw = self.data.get("schedule")
        if raw is None:
            return ()
        node = self.nodes["schedule"][1]
        items = raw if isinstance(raw, list) else [raw]
        item_nodes = node.value if isinstance(node, yaml.SequenceNode) else [node]
        schedules: list[Schedule] = []
        for item, item_node in zip(items, item_nodes, strict=False):
            if not isinstance(item, str):
                self.problem(
                    "schedule", f"expected a cron line, macro or interval, got {item!r}", item_node
                )
                continue
            try:
                schedules.append(parse_schedule(item))
            except ScheduleError as exc:
                self.problem("schedule", str(exc), item_node)
        return tuple(dict.fromkeys(schedules))


def _command_of(key: str) -> Callable[[Any], str | tuple[str, ...]]:
    """`command`, and `check`, which is written the same way."""

    def convert(value: Any) -> str | tuple[str, ...]:
        if isinstance(value, bool):
            word = "true" if value else "false"
            raise ValueError(f'YAML reads {word} as a boolean: quote it, e.g. {key}: "{word}"')
        if isinstance(value, str):
            if not value.strip():
                raise ValueError("must not be empty")
            return _carried(value)
        if isinstance(value, list) and value:
            return tuple(_scalar_str(v, f"each item of a {key} list") for v in value)
        raise ValueError("must be a string (run with /bin/sh -c) or a list of strings (exec'd)")

    return convert


_command = _command_of("command")


def _scalar_str(value: Any, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise ValueError(f"{what} must be a string, got {value!r}")
    return _carried(str(value))


def _nonempty_str(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"must be a non-empty string, got {value!r}")
    return _carried(value)


def _carried(text: str) -> str:
    """A value that reaches a command line, an environment or a path: none can carry a NUL
    (YAML's "\\0"), and the run would fail to start; said now, by `validate`."""
    if "\0" in text:
        raise ValueError(
            "contains a NUL character (\\0), which no command line, environment or path can carry"
        )
    return text


def _str_list(value: Any) -> tuple[str, ...]:
    items = value if isinstance(value, list) else [value]
    return tuple(_scalar_str(v, "each item") for v in items)


def _choice(choices: tuple[_Choice, ...]) -> Callable[[Any], _Choice]:
    check = one_of(choices)

    def convert(value: Any) -> _Choice:
        if isinstance(value, bool):
            # YAML 1.1 turns off/no/yes into booleans; say so, or the message is baffling.
            raise ValueError(f"must be one of {', '.join(choices)} (YAML read a boolean: quote it)")
        return check(value)

    return convert


# What `output` is tried with when the note is read (a run id as the ledger makes them).
_SAMPLE_RUN_ID = "20241231T235900-a1b2c3"
_WINDOW = re.compile(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*", re.ASCII)
_WINDOW_EXAMPLE = 'write "HH:MM-HH:MM" in the task\'s zone, e.g. "22:00-06:00"'


def _globs(value: Any) -> tuple[str, ...]:
    return tuple(vault_glob(pattern) for pattern in _str_list(value))


def _references(value: Any) -> tuple[str, ...]:
    """The tasks named, as written less the link syntax; which task each names is settled
    against the whole vault later."""
    items = value if isinstance(value, list) else [value]
    if any(isinstance(item, list) for item in items):
        raise ValueError(_unquoted_link(items))
    return tuple(_reference(_scalar_str(item, "each item")) for item in items)


def _unquoted_link(items: list[Any]) -> str:
    inner = next(item for item in items if isinstance(item, list))
    name = inner[0] if len(inner) == 1 and isinstance(inner[0], str) else "Other task"
    return f'YAML reads [[{name}]] unquoted as a list in a list: quote it, e.g. after: "[[{name}]]"'


def _reference(text: str) -> str:
    reference = text.strip()
    if reference.startswith("[["):
        if not reference.endswith("]]"):
            raise ValueError(f"{text!r} opens a link with [[ and does not close it with ]]")
        # Only the target: `[[Task|shown as]]`, `[[Task#Heading]]` and `[[Task#^block]]`.
        reference = re.split(r"[|#^]", reference[2:-2], maxsplit=1)[0].strip()
    reference = reference.removesuffix(".md")
    if not reference:
        raise ValueError(f"{text!r} names no task")
    return reference


def _until(zone: ZoneInfo) -> Callable[[Any], datetime]:
    def convert(value: Any) -> datetime:
        when = _date_or_time(value)
        if not isinstance(when, datetime):
            # A date is the whole day: "until Friday" includes Friday, to its last instant
            # (the later one, if the zone repeats that hour).
            when = datetime.combine(when, time.max).replace(fold=1)
        if when.tzinfo is None:  # a wall time in the task's zone
            when = when.replace(tzinfo=zone)
        try:  # to the instant, then back: a time the clock skips becomes a real one
            return when.astimezone(UTC).astimezone(zone)
        except OverflowError:
            raise ValueError(f"{value!s} is too near the ends of the calendar") from None

    return convert


def _date_or_time(value: Any) -> date | datetime:
    if isinstance(value, date):  # YAML builds dates and times itself when unquoted
        return value
    expected = 'a date or a date and time, e.g. 2025-06-30 or "2025-06-30 18:00"'
    if not isinstance(value, str):
        raise ValueError(f"expected {expected}, got {value!r}")
    text = value.strip()
    for parse in (date.fromisoformat, datetime.fromisoformat):
        try:
            return parse(text)
        except ValueError:
            continue
    raise ValueError(f"expected {expected}, got {value!r}")


def _window(value: Any) -> Window:
    if not isinstance(value, str):
        raise ValueError(f"{_WINDOW_EXAMPLE}, got {value!r}")
    match = _WINDOW.fullmatch(value)
    if match is None:
        raise ValueError(f"{_WINDOW_EXAMPLE}, got {value!r}")
    hour, minute, end_hour, end_minute = (int(n) for n in match.groups())
    if max(hour, end_hour) > 23 or max(minute, end_minute) > 59:
        raise ValueError(
            f"{value!r} is not a time of day (00:00 to 23:59; the end of the day is 00:00)"
        )
    window = Window(time(hour, minute), time(end_hour, end_minute))
    if window.start == window.end:
        raise ValueError(f"{value!r} starts and ends at the same time: the window would be empty")
    return window


def _env(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ValueError("must be a map of NAME: value")
    env: dict[str, str] = {}
    for name, item in value.items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"{name!r} is not a valid environment variable name")
        env[name] = _scalar_str(item, f"the value of {name}")
    return env


def note_body(text: str) -> str:
    """A note's body for `stdin: body`: no front matter, no run block. The trust fingerprint
    covers exactly this text, so a run landing in the note never changes it."""
    front = front_matter_span(text)
    return without_run_block(text[front.body_start :] if front else text).strip("\r\n") + "\n"


def without_run_block(text: str) -> str:
    """The note as its author wrote it: the run block vaultsched writes taken out."""
    from vaultsched.core import blocks

    block = blocks.find_block(text, blocks.RUNS)
    return text if block is None else text[: block[0]] + text[block[1] :]
