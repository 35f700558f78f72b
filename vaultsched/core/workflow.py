"""Workflows between tasks, as pure functions: which tasks an `after` names, cycles of them, a
task's time window, where a run's output note goes, and the placeholders of a prompt.

No clock and no files: every time, zone and name comes in as an argument.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo

from vaultsched.core.model import FAILURES, RETRYABLE, AfterOn, Problem, Run, Status, Task, Window

# -- after: references and cycles -------------------------------------------------------------


def resolve_after(task_ids: Iterable[str], task: Task) -> tuple[tuple[str, ...], list[Problem]]:
    """The ids `task.after` names, in order, each once; a problem for each reference that names
    no task or more than one. `task_ids` may be the index's tasks (a mapping by id).

    A reference is a task id (`Tasks/Backup`, `.md` or not) or, as Obsidian resolves a link,
    the end of one (`Backup`, `Tasks/Backup`) that only one task has; an exact id wins over
    the ends of longer ones. Case counts, unless only a case-blind match exists.
    """
    return _resolve(TaskNames(task_ids), task)


class TaskNames:
    """Every way a reference can name a task, looked up at once: a vault of thousands of
    tasks resolves each reference without a pass over all of them. Made for a set of ids,
    it serves every `after_graph` of that same set (most edits change no task's id)."""

    def __init__(self, task_ids: Iterable[str]) -> None:
        self.task_ids = list(task_ids)

    @cached_property
    def tables(self) -> tuple[dict[str, set[str]], ...]:
        """Made on the first lookup: a vault where no task has an `after` makes none (a cold
        index of 1,000 such tasks spent 15 ms making them)."""
        # In the order they are tried: ids, ends of ids, then both blind to case.
        tables: tuple[dict[str, set[str]], ...] = ({}, {}, {}, {})
        for task_id in self.task_ids:
            parts = task_id.split("/")
            ends = ["/".join(parts[i:]) for i in range(1, len(parts))]
            _add(tables[0], [task_id], task_id)
            _add(tables[1], ends, task_id)
            _add(tables[2], [task_id.casefold()], task_id)
            _add(tables[3], [end.casefold() for end in ends], task_id)
        return tables

    def lookup(self, reference: str) -> list[str]:
        ref = reference.removesuffix(".md")
        keys = (ref, ref, ref.casefold(), ref.casefold())
        for table, key in zip(self.tables, keys, strict=True):
            if key in table:
                return sorted(table[key])
        return []


def _add(table: dict[str, set[str]], keys: list[str], task_id: str) -> None:
    for key in keys:
        table.setdefault(key, set()).add(task_id)


def _resolve(names: TaskNames, task: Task) -> tuple[tuple[str, ...], list[Problem]]:
    line = task.key_lines.get("after", 1)
    found: list[str] = []
    problems: list[Problem] = []
    for reference in task.after:
        matches = names.lookup(reference)
        if len(matches) == 1:
            found.append(matches[0])
        else:
            problems.append(Problem(task.path, line, _unresolved(reference, matches)))
    return tuple(dict.fromkeys(found)), problems


def _unresolved(reference: str, matches: list[str]) -> str:
    if not matches:
        return f"after: no task named {reference!r} in the vault"
    shown = ", ".join(matches[:5]) + (", ..." if len(matches) > 5 else "")
    return (
        f"after: {reference!r} could be any of {len(matches)} tasks ({shown}): "
        f"write its path, e.g. {matches[0]!r}"
    )


def after_graph(
    tasks: Mapping[str, Task], invalid: Iterable[str] = (), names: TaskNames | None = None
) -> tuple[dict[str, tuple[str, ...]], list[Problem]]:
    """Each task's resolved `after` targets, and every problem with them: references that name
    no task or several, and cycles (on every note in one). `invalid`: ids of task notes that
    failed validation; they exist, so naming one is not "no task named". `names`: the
    `TaskNames` of exactly those ids (and of `tasks`'), if the caller holds them already."""
    if names is None:
        names = TaskNames([*tasks, *invalid])
    edges: dict[str, tuple[str, ...]] = {}
    problems: list[Problem] = []
    for task in tasks.values():
        edges[task.id], found = _resolve(names, task)
        problems += found
    return edges, problems + cycle_problems(tasks, edges)


def after_cycles(edges: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Every group of tasks that wait on one another through `after` (task id -> the ids it
    runs after): two or more that reach each other, or one that names itself. Each group is
    sorted, and so is the list, so a vault always reports its cycles the same way."""
    # A task after no other is in no cycle (nor does leaving it out split one): most tasks.
    graph = {node: sorted(set(targets)) for node, targets in edges.items() if targets}
    return sorted(
        component
        for component in _strongly_connected(graph)
        if len(component) > 1 or component[0] in graph.get(component[0], ())
    )


# Past this many tasks in one cycle, each note shows one cycle of the group rather than the
# shortest through itself: a search from every member would cost the square of the group.
_CYCLE_SEARCHES = 64


def cycle_problems(tasks: Mapping[str, Task], edges: Mapping[str, Iterable[str]]) -> list[Problem]:
    """A problem on every note in a cycle of `after`, showing the shortest cycle through it."""
    downstream: dict[str, set[str]] = {}
    for node, targets in edges.items():
        for target in targets:
            downstream.setdefault(target, set()).add(node)
    problems = []
    for members in after_cycles(edges):
        group = set(members)
        shared = _shortest_cycle(downstream, members[0], group)
        for member in members:
            task = tasks.get(member)
            if task is None:
                continue
            search = len(members) <= _CYCLE_SEARCHES
            cycle = _shortest_cycle(downstream, member, group) if search else shared
            line = task.key_lines.get("after", 1)
            problems.append(Problem(task.path, line, cycle_message(cycle, len(members))))
    return problems


def _strongly_connected(graph: Mapping[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm without recursion (a chain of thousands of notes must not hit the
    stack limit)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            targets = graph.get(node, [])
            if child < len(targets):
                work.append((node, child + 1))
                target = targets[child]
                if target not in index:
                    work.append((target, 0))
                elif target in on_stack:
                    low[node] = min(low[node], index[target])
                continue
            if work:  # back in the caller: it takes the lowest link this node reached
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                components.append(_pop_component(stack, on_stack, node))
    return components


def _pop_component(stack: list[str], on_stack: set[str], node: str) -> list[str]:
    component = []
    while True:
        member = stack.pop()
        on_stack.discard(member)
        component.append(member)
        if member == node:
            return sorted(component)


def _shortest_cycle(downstream: Mapping[str, set[str]], start: str, members: set[str]) -> list[str]:
    """`start` and the tasks after it, each running after the one before, back to `start`
    (breadth first, so the shortest such ring; ties go to the smaller id)."""
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for target in sorted(downstream.get(node, set()) & members):
                if target == start:
                    return _path_to(came_from, node, start)
                if target not in came_from:
                    came_from[target] = node
                    following.append(target)
        frontier = following
    return [start]  # unreachable for a member of a cycle


def _path_to(came_from: Mapping[str, str], node: str, start: str) -> list[str]:
    path = [node]
    while path[-1] != start:
        path.append(came_from[path[-1]])
    return path[::-1]


_CYCLE_SHOWN = 8  # tasks named in a cycle's message; a longer one is cut in the middle


def cycle_message(cycle: Sequence[str], group: int = 0) -> str:
    """`a cycle of after: A → B → A`: each task runs after the one before it. `group`: how many
    tasks wait on one another, said when the cycle shown is not all of them."""
    names = [*cycle, cycle[0]]
    if len(names) > _CYCLE_SHOWN:
        names = [*names[: _CYCLE_SHOWN - 2], f"… ({len(cycle)} tasks)", names[-1]]
    among = f", among {group} tasks that wait on one another" if group > len(cycle) else ""
    return f"a cycle of after: {' → '.join(names)} (each runs after the one before it{among})"


# -- chains: which tasks a finished run starts -------------------------------------------------

# The outcomes each `on` starts a downstream run for. Runs that never ran the command (skipped,
# blocked, refused, waiting for approval, missed) start nothing: there is no outcome to act on.
_STARTS: dict[AfterOn, frozenset[Status]] = {
    "success": frozenset({Status.SUCCESS}),
    "failure": FAILURES,
    "always": FAILURES | {Status.SUCCESS},
}


def final(task: Task, run: Run, *, retried: bool = True) -> bool:
    """Whether `run` is the last word of its fire time: not a failure `retries` tries again
    (`retried`: the daemon makes retries; a person's run-now does not)."""
    return not (retried and run.status in RETRYABLE and run.attempt <= task.retries)


def fires_on(task: Task, host: str | None) -> bool:
    """Whether `host`'s daemon fires `task` (None: a daemon with a worker pool, which fires
    every task and sends each to the queue its `host:` names)."""
    return host is None or not task.hosts or host in task.hosts


def chain_targets(
    upstream: Task, run: Run, downstream: Iterable[Task], host: str | None, *, retried: bool = True
) -> list[str]:
    """The tasks among `downstream` (those naming `upstream` in `after`) that `run` starts:
    its outcome is what their `on` waits for, they are enabled and may run on `host`."""
    if not final(upstream, run, retried=retried):
        return []
    return [
        task.id
        for task in downstream
        if run.status in _STARTS[task.on] and task.enabled and fires_on(task, host)
    ]


# -- window -----------------------------------------------------------------------------------


def in_window(window: Window, local_time: time) -> bool:
    """Whether a wall-clock time (in the task's zone) is inside the window."""
    moment = local_time.replace(tzinfo=None)
    if window.crosses_midnight:
        return moment >= window.start or moment < window.end
    return window.start <= moment < window.end


def next_window_start(window: Window, after: datetime, zone: ZoneInfo) -> datetime:
    """The first instant at or after `after` at which the window opens, in `zone` (compare it
    in UTC: within one zone Python compares wall clocks, blind to a repeated hour's fold).

    Worked out in wall time, then placed on the clock: a start inside a spring-forward gap
    opens the window at the gap's end, if that is still inside the window (else the window
    does not open that day); a start in an hour that repeats opens it at both, as the wall
    clock does.
    """
    if after.tzinfo is None:
        raise ValueError("next_window_start needs an aware datetime")
    first_day = after.astimezone(zone).date() - timedelta(days=1)
    for offset in range(8):  # a window opens on nearly every day; a skipped day is rare
        for opening in _openings(window, first_day + timedelta(days=offset), zone):
            if opening.astimezone(UTC) >= after.astimezone(UTC):
                return opening
    raise ValueError(f"window {window} does not open within a week of {after.isoformat()}")


def _openings(window: Window, day: date, zone: ZoneInfo) -> list[datetime]:
    wall = datetime.combine(day, window.start)
    earlier, later = wall.replace(tzinfo=zone, fold=0), wall.replace(tzinfo=zone, fold=1)
    if earlier.utcoffset() == later.utcoffset():
        return [earlier]
    if _exists(earlier):  # a repeated hour: the window opens each time the clock shows it
        return [earlier, later]
    from vaultsched.core.schedules import gap_end  # here: `list` on no task never loads it

    opens = gap_end(wall, zone)
    return [opens] if in_window(window, opens.time()) else []


def _exists(moment: datetime) -> bool:
    """Whether an aware time's wall clock is one the zone's clock really shows."""
    zone = moment.tzinfo
    back = moment.astimezone(UTC).astimezone(zone)
    return back.replace(tzinfo=None) == moment.replace(tzinfo=None)


# -- output notes -----------------------------------------------------------------------------


class OutputPathError(ValueError):
    """An `output` template that is malformed, or a path from it that is not a safe note path
    inside the vault. The message says which, fit for `validate`."""


OUTPUT_PLACEHOLDERS = ("task", "date", "date:FORMAT", "time", "run_id")
# `{{` and `}}` write a brace; `{name}` or `{date:FORMAT}` is a placeholder; a lone `{` is a
# mistake (a lone `}` is only a character).
_OUTPUT_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|\{")
_MAX_SEGMENT_BYTES = 255  # the longest file name the usual file systems allow


def expand_output(template: str, task_name: str, run_id: str, when: datetime) -> str:
    """The vault-relative note path for a run's output. `when` is the run's time in the task's
    zone; `.md` is added unless the path has it. Raises OutputPathError."""

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        if match.group(1) is None:
            raise OutputPathError("a '{' opens no placeholder (write '{{' for a brace)")
        return _placeholder(match.group(1), task_name, run_id, when)

    path = _OUTPUT_TOKEN.sub(replace, template)
    check_note_path(path)  # before `.md` is added: `Results/` is a folder with no note named
    if not path.endswith(".md"):
        path += ".md"
        check_note_path(path)
    return path


def _placeholder(name: str, task_name: str, run_id: str, when: datetime) -> str:
    if name == "task":
        return task_name
    if name == "run_id":
        return run_id
    if name == "date":
        return f"{when:%Y-%m-%d}"
    if name == "time":
        return f"{when:%H%M}"
    if name.startswith("date:"):
        return _moment_format(when, name.removeprefix("date:"))
    known = ", ".join("{" + p + "}" for p in OUTPUT_PLACEHOLDERS)
    raise OutputPathError(f"unknown placeholder {{{name}}} (known: {known})")


def _moment_format(when: datetime, pattern: str) -> str:
    """moment.js tokens (YYYY, MM, DD, dddd, ...), as the digest's file names use them."""
    if not pattern:
        raise OutputPathError("{date:} needs a format, e.g. {date:YYYY-MM}")
    import arrow  # here: slow to import, and only a `{date:...}` placeholder needs it

    return arrow.Arrow.fromdatetime(when).format(pattern)


def _shown(path: str) -> str:
    return repr(path) if len(path) <= 120 else repr(path[:120]) + "..."


def check_note_path(path: str) -> None:
    """Refuse a path that could land outside the vault, in a hidden folder (`.obsidian`, `.git`,
    vaultsched's own) or not be a file name at all. Raises OutputPathError."""
    if path.startswith("/"):
        raise OutputPathError(f"{_shown(path)} is absolute; the note must be inside the vault")
    if "\\" in path:  # a separator to a Windows machine the vault syncs to
        raise OutputPathError(f"{_shown(path)} has a backslash")
    if any(unicodedata.category(c) == "Cc" for c in path):
        raise OutputPathError(f"{_shown(path)} has a control character")
    for segment in path.split("/"):
        _check_segment(path, segment)


def _check_segment(path: str, segment: str) -> None:
    if segment == "":
        raise OutputPathError(f"{_shown(path)} has an empty name ('//', or '/' at an end)")
    if segment == "..":
        raise OutputPathError(f"{_shown(path)} climbs out with '..'")
    if segment.startswith("."):
        raise OutputPathError(f"{_shown(path)} names a hidden file or folder ({segment!r})")
    if len(segment.encode("utf-8", "surrogatepass")) > _MAX_SEGMENT_BYTES:
        raise OutputPathError(f"a name in {_shown(path)} is too long for a file name")


# -- prompt placeholders ----------------------------------------------------------------------

PROMPT_PLACEHOLDERS = ("date", "time", "datetime", "task", "last_success", "previous_output")
# `{{{{` writes `{{`: matched first, so `{{{{date}}` is the text `{{date}}`.
_PROMPT_TOKEN = re.compile(r"\{\{\{\{|\{\{(" + "|".join(PROMPT_PLACEHOLDERS) + r")\}\}")


def expand_prompt(body: str, values: Mapping[str, str]) -> str:
    """A note's body with its placeholders (`{{date}}`, ...) replaced, for piping to a command.
    A placeholder missing from `values` is empty (`{{last_success}}` before any success);
    anything else, `{{other}}` included, is left exactly as written, and a value is never
    itself expanded."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        return "{{" if name is None else values.get(name, "")

    return _PROMPT_TOKEN.sub(replace, body)
