"""Rendering the two generated blocks (a task note's runs, the daily digest) from `Run`s.

Pure and deterministic: the same runs give byte-identical text, because `vaultsched digest DATE`
rebuilds a digest from the ledger and must reproduce what the daemon wrote. Nothing here reads
a clock, the locale or the environment.

Everything taken from outside (command output, messages, host names, task ids) is either fenced
or flattened to one line inside a callout or list item, so no run can forge a marker line, open
an Obsidian `%%` comment, or otherwise break the note around it.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from pathlib import PurePosixPath
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from vaultsched.core.durations import format_duration
from vaultsched.core.model import ATTENTION, FAILURES, Run, Status, Trigger

if TYPE_CHECKING:
    from vaultsched.adapters.vault import Vault

_CALLOUT = {
    Status.SUCCESS: "success",
    Status.FAILED: "failure",
    Status.TIMEOUT: "failure",
    Status.ERROR: "failure",
    Status.INTERRUPTED: "failure",
    Status.SKIPPED: "warning",
    Status.UNTRUSTED: "warning",
    Status.AWAITING_APPROVAL: "warning",
    Status.RUNNING: "info",
    Status.BLOCKED: "failure",
    Status.MISSED: "warning",
    Status.LOST: "failure",
}
# The mark that starts each digest line, so a glance down the list tells a failure from a
# success (the status word follows it; these are only for the eye).
ICONS = {
    Status.SUCCESS: "✅",
    Status.FAILED: "❌",
    Status.TIMEOUT: "❌",
    Status.ERROR: "❌",
    Status.INTERRUPTED: "❌",
    Status.BLOCKED: "❌",
    Status.LOST: "❌",
    Status.SKIPPED: "⏭",
    Status.MISSED: "⏭",
    Status.AWAITING_APPROVAL: "⏳",
    Status.UNTRUSTED: "🔒",
    Status.RUNNING: "🔄",
}
PENDING_ICON = ICONS[Status.AWAITING_APPROVAL]
# Statuses whose message says why the task did not run (or not yet): shown as its reason.
_REASONED = frozenset({Status.SKIPPED, Status.MISSED, Status.BLOCKED})
# A note's notice for a run that waits for a person: its title, and the verb that resolves it.
_WAITING = {
    Status.UNTRUSTED: ("Not run until you trust it", "trust"),
    Status.AWAITING_APPROVAL: ("Waiting for your approval", "approve"),
}
# Counted in the digest's header beside `failed`, when there are any, in this order.
_COUNTED = (Status.SKIPPED, Status.MISSED, Status.BLOCKED, Status.LOST)
REASON_SHOWN = 120  # characters of a reason in a digest line
DIGEST_LINES_KEPT = 20_000  # rendered digest lines remembered (see _lines_kept)
_MISSING = "—"
# The same line breaks as markdown-it and blocks.py: a lone \r would start a new line that
# escapes the callout's `> ` prefix.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_BACKTICKS = re.compile(r"`+")
# What a wikilink cannot carry: `|` ends the target, `#`/`^` start a heading or block
# reference, brackets end the link, a backtick could pair with one outside it as code.
_WIKILINK_UNSAFE = re.compile(r"[\[\]|#^`]|%%")
_SHELL_UNSAFE_IN_DOUBLE_QUOTES = re.compile(r'["$`\\!]')
# What a note shows of a run's message and output. Ours are far shorter (the output tail is cut
# to 4,000 characters when it is recorded); another host's ledger line may not be.
MESSAGE_SHOWN = 2000
OUTPUT_SHOWN = 8000


# -- task note run block --------------------------------------------------------------------


def render_runs_block(runs: Sequence[Run], tz: ZoneInfo, *, notice: str = "") -> str:
    """Lines between a task note's run markers: `## Runs`, then `runs` as given, newest first."""
    parts = ["## Runs"]
    newest = runs[0] if runs else None
    if notice:
        parts.append(_notice_callout(notice, newest))
    parts.extend(
        # The newest run's message is the notice above it when it waits for a person: once.
        _run_callout(run, tz, folded=index > 0, said="" if index else notice)
        for index, run in enumerate(runs)
    )
    if not runs:
        parts.append("No runs yet.")
    # The closing blank line keeps the end marker (and the user's text after it) out of the
    # last callout: a line right after a quote would lazily join its paragraph.
    return "\n\n".join(parts) + "\n\n"


def fence_output(text: str) -> str:
    """`text` in a backtick fence longer than any backtick run inside it, so nothing closes it."""
    body = _LINE_BREAK.sub("\n", text).rstrip("\n")
    longest = max((len(run) for run in _BACKTICKS.findall(body)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{body}\n{fence}" if body else f"{fence}\n{fence}"


def _notice_callout(notice: str, newest: Run | None) -> str:
    """What waits for a person, first: a short title, then the notice with its command as code
    (copyable) when it is the newest run's own `trust`/`approve` line."""
    text, title = _one_line(notice), "Needs attention"
    if newest is not None and newest.status in _WAITING:
        title, verb = _WAITING[newest.status]
        command = fix_command(verb, newest.task)
        text = text.replace(command, _code(command), 1)
    return f"> [!warning] {title}\n> {text}"


def _run_callout(run: Run, tz: ZoneInfo, *, folded: bool, said: str = "") -> str:
    fold = "-" if folded else ""
    lines = [
        f"[!{_CALLOUT[run.status]}]{fold} {_stamp(run.started_at, tz)} · {run.status}",
        _run_details(run),
    ]
    if run.message and run.message != said:
        # The label keeps the message inline text: starting a line, "```" or "#" would open a
        # fence or heading inside the callout.
        label = "reason" if run.status in _REASONED else "message"
        lines += ["", f"{label}: {_one_line(clip(run.message, MESSAGE_SHOWN))}"]
    if run.output_tail.strip():
        tail = run.output_tail[-OUTPUT_SHOWN:]  # the end of an output is what tells
        lines += ["", *fence_output(tail).split("\n")]
    return "\n".join(_quoted(line) for line in lines)


def _run_details(run: Run) -> str:
    fields = [f"trigger: {run.trigger}"]
    if run.attempt > 1:
        fields.append(f"attempt: {run.attempt}")
    exit_code = _MISSING if run.exit_code is None else str(run.exit_code)
    fields += [
        f"exit code: {exit_code}",
        f"duration: {_duration(run)}",
        f"host: {_one_line(run.host)}",
    ]
    if run.output_note and run.status is Status.SUCCESS:  # a failed run wrote no output note
        fields.append(_output_link(run.output_note))
    return " · ".join(fields)


def _output_link(path: str) -> str:
    """`[[path|output]]` (Obsidian resolves the path without `.md`), or the path as code."""
    target = path.removesuffix(".md")
    if _WIKILINK_UNSAFE.search(target) or _LINE_BREAK.search(target):
        return f"output: {_code(_one_line(path))}"
    return f"[[{target}|output]]"


def _quoted(line: str) -> str:
    return f"> {line}" if line else ">"


# -- daily digest ---------------------------------------------------------------------------


def render_digest_block(
    day: date,
    runs: Sequence[Run],
    tz: ZoneInfo,
    *,
    pending: Sequence[tuple[str, str]] = (),
) -> str:
    """The lines between a digest's markers: counts, what needs attention, every run; both
    lists newest first, as in a task note, so what just happened is at the top."""
    ordered = sorted(runs, key=_chronological)
    parts = [f"## vaultsched — {day.isoformat()}", counts_line(ordered)]
    attention = _attention_items(ordered, tz, pending)
    if attention:
        parts += ["### Needs attention", "\n".join(attention)]
    tasks_by_run = {run.run_id: run.task for run in ordered}
    items = [_digest_item(run, tz, tasks_by_run) for run in reversed(ordered)]
    parts += ["### Runs", "\n".join(items) if items else "No runs."]
    return "\n\n".join(parts) + "\n\n"


def _chronological(run: Run) -> tuple[datetime, str, str]:
    # Ties on the start time are broken by fields, never by input order: determinism.
    return run.started_at, run.task, run.run_id


def counted(count: int, noun: str) -> str:
    """`1 task note`, `2 task notes`, `0 errors`."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def counts_line(runs: Sequence[Run]) -> str:
    """`12 runs · 1 failed · 2 skipped · 1 blocked`: failures always, the others when any."""
    failed = sum(run.status in FAILURES for run in runs)
    parts = [counted(len(runs), "run"), f"{failed} failed"]
    for status in _COUNTED:
        count = sum(run.status is status for run in runs)
        if count:
            parts.append(f"{count} {status}")
    return " · ".join(parts)


def _attention_items(
    ordered: Sequence[Run], tz: ZoneInfo, pending: Iterable[tuple[str, str]]
) -> list[str]:
    latest = {run.task: run for run in ordered}  # chronological, so the last run wins
    flagged = sorted(
        (run for run in latest.values() if run.status in ATTENTION),
        key=_chronological,
        reverse=True,
    )
    items = [_attention_item(run, tz) for run in flagged]
    listed = {run.task for run in flagged}
    for task, reason in sorted(pending):
        if task not in listed:  # one entry per task
            items.append(f"- {PENDING_ICON} {_link(task)} — {_one_line(reason)}")
            listed.add(task)
    return items


def _attention_item(run: Run, tz: ZoneInfo) -> str:
    what = f"{_link(run.task)} — {run.status} at {_clock(run.started_at, tz)}"
    return f"- {ICONS[run.status]} {what}: {_resolution(run)}"


def _resolution(run: Run) -> str:
    if run.status is Status.UNTRUSTED:
        return _code(fix_command("trust", run.task))
    if run.status is Status.AWAITING_APPROVAL:
        return _code(fix_command("approve", run.task))
    history, rerun = fix_command("history", run.task), fix_command("run-now", run.task)
    look = f"look at {_code(history)}, then {_code(rerun)}"
    # A reason comes last: a backtick in it has no code span of ours after it to pair with.
    if run.status is Status.BLOCKED:
        return f"{look} once its check passes — {_reason(run)}"
    if run.status is Status.LOST:
        return f"{look} (it started and was never heard of again)"
    return look


def _reason(run: Run) -> str:
    return _one_line(clip(run.message, REASON_SHOWN)) if run.message else "no reason given"


# Each run's digest line as last rendered, by run_id: a day's digest is rendered again as its
# runs land, every earlier line the same. Kept for the very same Run object only (the ledger
# hands out the same object while a run's records stay the same): no Run is hashed or compared.
_lines_kept: dict[str, tuple[Run, ZoneInfo, str | None, str]] = {}


def _digest_item(run: Run, tz: ZoneInfo, tasks_by_run: Mapping[str, str]) -> str:
    upstream = tasks_by_run.get(run.upstream_run) if run.upstream_run else None
    kept = _lines_kept.get(run.run_id)
    if kept is not None and kept[0] is run and kept[1] == tz and kept[2] == upstream:
        return kept[3]
    line = _digest_line(run, tz, upstream)
    if len(_lines_kept) >= DIGEST_LINES_KEPT:
        _lines_kept.clear()  # a new day's runs, most often: start again
    _lines_kept[run.run_id] = (run, tz, upstream, line)
    return line


def _digest_line(run: Run, tz: ZoneInfo, upstream: str | None) -> str:
    when = _clock(run.started_at, tz)
    details = [str(run.status)]
    if run.trigger is not Trigger.SCHEDULE:
        details.append(_trigger(run, upstream))
    details += [_duration(run), _one_line(run.host)]
    if run.status in _REASONED and run.message:
        details.append(_reason(run))  # last, as in the attention list
    return f"- {ICONS[run.status]} {when} {_link(run.task)} — {' · '.join(details)}"


def _trigger(run: Run, upstream: str | None) -> str:
    """`manual`, `retry`...; for a chained run, the task it ran after (`upstream`: known when
    that ran the same day, for the digest only knows the day's runs)."""
    if run.trigger is Trigger.AFTER and upstream is not None:
        return f"after {_link(upstream)}"
    return str(run.trigger)


# -- small pieces ---------------------------------------------------------------------------


def _stamp(moment: datetime, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S")


def _clock(moment: datetime, tz: ZoneInfo) -> str:
    return moment.astimezone(tz).strftime("%H:%M:%S")


def _duration(run: Run) -> str:
    return _MISSING if run.duration_s is None else format_duration(run.duration_s)


def clip(text: str, limit: int) -> str:
    """`text`, cut to `limit` characters with an ellipsis if longer."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _one_line(text: str) -> str:
    """Text safe inside one callout or list line: no line breaks, no Obsidian `%%` comment."""
    flat = _LINE_BREAK.sub(" ", text)
    # `%\%` renders as `%%` but is not a comment delimiter (it would hide the rest of the block).
    return re.sub(r"%(?=%)", r"%\\", flat)


def _link(task: str) -> str:
    """`[[id|name]]`, or the id as code when it holds characters a wikilink cannot carry."""
    if _WIKILINK_UNSAFE.search(task) or _LINE_BREAK.search(task):
        return _code(_one_line(task))
    return f"[[{task}|{PurePosixPath(task).name}]]"


def fix_command(verb: str, task: str, program: str = "vaultsched") -> str:
    """The exact `vaultsched VERB TASK` line a person runs, quoted for any shell. `program` is
    how they call vaultsched (already quoted), `--vault` and all, where plain `vaultsched` in
    the vault's folder would not do."""
    # Double quotes read best, but `$`, backticks, `"`, `\` and `!` are live inside them.
    quoted = shlex.quote(task) if _SHELL_UNSAFE_IN_DOUBLE_QUOTES.search(task) else f'"{task}"'
    return f"{program} {verb} {quoted}"


def _code(text: str) -> str:
    """An inline code span that no backtick inside `text` can close early."""
    text = _LINE_BREAK.sub(" ", text)  # a break would let the next line escape the list item
    longest = max((len(run) for run in _BACKTICKS.findall(text)), default=0)
    delimiter = "`" * (longest + 1)
    padded = f" {text} " if text.startswith("`") or text.endswith("`") else text
    return f"{delimiter}{padded}{delimiter}"


def digest_path(vault: Vault, day: date) -> str:
    """The digest note of `day`, relative to the vault (named by `[digest] format`)."""
    import arrow  # here: slow to import, and only naming a digest needs it

    name = arrow.Arrow(day.year, day.month, day.day).format(vault.config.digest.format)
    return f"{vault.config.digest.folder}/{name}.md"


def commit_message(runs: Sequence[Run]) -> str:
    if not runs:
        return "vaultsched: update"
    if len(runs) == 1:
        return f"vaultsched: {runs[0].status} {runs[0].task}"
    failed = sum(r.status in FAILURES for r in runs)
    return f"vaultsched: {len(runs)} runs ({failed} failed)"
