"""What changed between the trusted version of a task and the current one, for a person.

Pure: two `Snapshot`s in, lines of text out. `describe` is what `vaultsched trust` shows before
it records; `what_changed` is the few words an untrusted run's message gives.
"""

from __future__ import annotations

import difflib
import json
from typing import Any

from vaultsched.adapters.terminal import escape
from vaultsched.trust.fingerprint import KEYS, Content, Snapshot

_INDENT = "    "
_QUIET: tuple[Any, ...] = (
    None,
    "none",
    {},
    [],
)  # a key with one of these values is not shown on first trust


def what_changed(before: Snapshot, now: Snapshot) -> str:
    """`its body (prompt) changed`, `scripts/x.py changed`, `its command and approval changed`."""
    keys = [k for k in _keys(before, now) if before.keys.get(k) != now.keys.get(k)]
    parts = [f"its {' and '.join(keys)}"] if keys else []
    if _sha(before.body) != _sha(now.body):
        parts.append("its body (prompt)")
    parts += [
        rel for rel in _rels(before, now) if _sha(before.files.get(rel)) != _sha(now.files.get(rel))
    ]
    if not parts:
        return "what it reaches changed"
    if len(parts) > 2:
        return f"{parts[0]}, {parts[1]} and {len(parts) - 2} more changed"
    return f"{' and '.join(parts)} changed"


def describe(task_id: str, before: Snapshot | None, now: Snapshot, *, known: bool) -> list[str]:
    """Lines to show before trusting `now`: a diff against `before`, or all of `now`."""
    if before is None:
        why = "no copy of the version trusted before was kept" if known else "never trusted"
        return [f"{task_id}: {why}; it will run:", *_everything(now)]
    if before.fingerprint == now.fingerprint:
        return [f"{task_id}: unchanged since you last trusted it"]
    lines = [f"{task_id}: changed since you last trusted it:"]
    for key in _keys(before, now):
        old, new = before.keys.get(key), now.keys.get(key)
        if old != new:
            lines.append(f"  {key}: {_value(old)} -> {_value(new)}")
    if _sha(before.body) != _sha(now.body):
        lines += _content_change("body (stdin)", before.body, now.body)
    for rel in _rels(before, now):
        old_file, new_file = before.files.get(rel), now.files.get(rel)
        if _sha(old_file) != _sha(new_file):
            lines += _content_change(rel, old_file, new_file)
    if before.capped != now.capped:
        lines.append(f"  more files than are fingerprinted: {before.capped} -> {now.capped}")
    return lines


def _everything(now: Snapshot) -> list[str]:
    lines = [f"  {key}: {_value(now.keys.get(key))}" for key in KEYS if key == "command"]
    lines += [
        f"  {key}: {_value(now.keys[key])}"
        for key in KEYS
        if key != "command" and now.keys.get(key) not in _QUIET
    ]
    if now.body is not None:
        lines.append("  body (stdin):")
        lines += _text_lines(now.body, "")
    lines += [f"  covers {rel} ({_size(content)})" for rel, content in sorted(now.files.items())]
    return lines


def _content_change(label: str, old: Content | None, new: Content | None) -> list[str]:
    if new is None:
        return [f"  {label}: removed"]
    if old is None:
        return [f"  {label}: new file ({_size(new)})", *_text_lines(new, "+")]
    if old.text is None or new.text is None:
        return [f"  {label}: changed, {_size(old)} -> {_size(new)} (binary or too large to show)"]
    diff = difflib.unified_diff(
        _lines(old.text),
        _lines(new.text),
        f"{label} (trusted)",
        f"{label} (now)",
        lineterm="",
    )
    return [f"  {label}:", *(_INDENT + line for line in diff)]


def _text_lines(content: Content, mark: str) -> list[str]:
    if content.text is None:
        return [f"{_INDENT}(binary or too large to show: {_size(content)})"]
    return [f"{_INDENT}{mark}{line}" for line in _lines(content.text)]


def _lines(text: str) -> list[str]:
    """Lines as the file has them: split on newline only, every other control character shown
    escaped. `splitlines` would also split on \x0b, \x0c, \r, \x1c-\x1e, \x85 and \u2028,
    so an edit from one of them to another would show as no change at all."""
    lines = [escape(line) for line in text.split("\n")]
    if lines[-1]:
        lines[-1] += "  (no newline at end of file)"  # or a trailing newline edit shows nothing
    else:
        lines.pop()
    return lines


def _keys(before: Snapshot, now: Snapshot) -> list[str]:
    extra = sorted((set(before.keys) | set(now.keys)) - set(KEYS))
    return [*KEYS, *extra]


def _rels(before: Snapshot, now: Snapshot) -> list[str]:
    return sorted(set(before.files) | set(now.files))


def _sha(content: Content | None) -> str | None:
    return content.sha256 if content else None


def _size(content: Content) -> str:
    return f"{content.size} bytes"


def _value(value: Any) -> str:
    # JSON: one line, quotes show where a string ends, control characters come out escaped.
    return json.dumps(value, ensure_ascii=False, sort_keys=True)
