"""Minimal text edits of a note's front matter: one value, or one added line, nothing else.

python-frontmatter re-dumps YAML sorted and without comments, so a user's front matter is
never written back through a YAML dumper: we locate the value with PyYAML's node marks and
replace exactly those characters.
"""

from __future__ import annotations

from collections.abc import Mapping

import yaml

from vaultsched.core.blocks import newline_of
from vaultsched.core.taskfile import front_matter_span


def set_scalar(text: str, key: str, value: str) -> str:
    """Set top-level `key` to the YAML scalar text `value`, keeping every other byte."""
    return set_scalars(text, {key: value})


def set_scalars(text: str, values: Mapping[str, str]) -> str:
    """Set each top-level key of `values` to its YAML scalar text, keeping every other byte:
    a value in place, a missing key as a line added at the end. One parse of the front matter
    (a burst lands many notes); the same text back when no value differs (nothing to write).
    Raises ValueError for a note without front matter, or a key whose value is not one scalar."""
    span = front_matter_span(text)
    if span is None:
        raise ValueError("the note has no front matter")
    start, closing = span.yaml_start, span.yaml_end
    yaml_text = text[start:closing]
    root = yaml.compose(yaml_text, Loader=yaml.SafeLoader)
    if root is not None and not isinstance(root, yaml.MappingNode):
        raise ValueError("the front matter is not a map of properties")
    found = {
        key.value: value
        for key, value in (root.value if root is not None else [])
        if isinstance(key, yaml.ScalarNode) and key.value in values
    }
    edits: list[tuple[int, int, str]] = []  # (begin, end, text) in `text`
    added = []
    for key, value in values.items():
        node = found.get(key)
        if node is None:
            added.append(f"{key}: {value}" if value else f"{key}:")
            continue
        if not isinstance(node, yaml.ScalarNode):
            raise ValueError(f"{key} is not a single value; edit it by hand")
        begin, end = node.start_mark.index, node.end_mark.index
        if yaml_text[begin:end] == value:
            continue
        spaced = " " + value if begin == end and not yaml_text[:begin].endswith(" ") else value
        edits.append((start + begin, start + end, spaced))
    if added:
        newline = newline_of(text)
        edits.append((closing, closing, "".join(line + newline for line in added)))
    for begin, end, value in sorted(edits, reverse=True):
        text = text[:begin] + value + text[end:]
    return text
