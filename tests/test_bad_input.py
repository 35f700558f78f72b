"""Bad input is contained: whatever lands in the vault, indexing and `validate` give a
clear message per bad note, never crash, and leave the good notes alone."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import HOST, Cli, make_vault, write_note
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vaultsched.adapters.config import load_config
from vaultsched.adapters.vault import Vault, build_index
from vaultsched.cli.validate import validate_vault

GOOD = "---\nschedule: '@daily'\ncommand: echo good\n---\nA good task.\n"
SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

YAML_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True),
    st.text(max_size=30),
    st.sampled_from(["*/5 * * * *", "1:30", "yes", "off", "~", "&a", "*a", "!!binary x", "{", "["]),
)
KEYS = st.sampled_from(
    ["command", "schedule", "timezone", "timeout", "retries", "retry_delay", "catch_up",
     "overlap", "jitter", "cwd", "env", "stdin", "host", "notify", "keep_runs", "approval",
     "enabled", "comand", "schedul", "tags"]
)  # fmt: skip
VALUES = st.recursive(
    YAML_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=8,
)


def front_matter_lines(pairs: dict[str, object]) -> str:
    """Hand-rolled on purpose: broken YAML is part of the input space."""
    return "".join(f"{k}: {v!s}\n" for k, v in pairs.items())


def vault_with(root: Path) -> Vault:
    make_vault(root, repo=False)
    write_note(root, "Tasks/Good.md", GOOD)
    return Vault(root.resolve(), load_config(root), HOST)


def assert_contained(vault: Vault, bad: str) -> None:
    index = build_index(vault)
    assert "Tasks/Good" in index.tasks  # good notes unaffected
    checked, problems = validate_vault(vault, datetime(2026, 1, 1, tzinfo=UTC))
    assert checked >= 1
    for problem in problems:
        text = str(problem)
        assert "\n" not in text and text.startswith(problem.path)  # one line, `path:line: ...`
        assert "Traceback" not in text


@SETTINGS
@given(pairs=st.dictionaries(KEYS, VALUES, max_size=8), body=st.text(max_size=200))
def test_random_front_matter(
    tmp_path_factory: pytest.TempPathFactory, pairs: dict, body: str
) -> None:
    vault = vault_with(tmp_path_factory.mktemp("v"))
    write_note(vault.root, "Tasks/Bad.md", f"---\n{front_matter_lines(pairs)}---\n{body}")
    assert_contained(vault, "Tasks/Bad.md")


@SETTINGS
@given(data=st.binary(max_size=2000))
def test_random_bytes(tmp_path_factory: pytest.TempPathFactory, data: bytes) -> None:
    vault = vault_with(tmp_path_factory.mktemp("v"))
    (vault.root / "Tasks/Bytes.md").write_bytes(b"---\n" + data)
    (vault.root / "Tasks/Raw.md").write_bytes(data)
    assert_contained(vault, "Tasks/Bytes.md")


def test_nasty_files_each_get_a_message_and_good_notes_run(tmp_path: Path) -> None:
    root = tmp_path / "vault"
    vault = vault_with(root)
    nasty = {
        "Tasks/Huge front matter.md": "---\ncommand: x\n" + "k: " + "v" * 300_000 + "\n---\n",
        "Tasks/Deep.md": "---\ncommand: " + "[" * 5000 + "]" * 5000 + "\n---\n",
        "Tasks/Aliases.md": "---\na: &a [*a]\ncommand: *a\n---\n",
        "Tasks/Bomb.md": "---\n"
        + "".join(f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 9)}]\n" for i in range(1, 9))
        + "l0: &l0 x\ncommand: *l8\n---\n",
        "Tasks/No close.md": "---\ncommand: echo\n",
        "Tasks/Tabs.md": "---\ncommand:\techo\n\tschedule: x\n---\n",
    }
    for rel, text in nasty.items():
        write_note(root, rel, text)
    (root / "Tasks/Huge body.md").write_text(GOOD + "x" * 20_000_000)
    (root / "Tasks/Binary.md").write_bytes(b"\x00\xff\xfe" * 1000)
    (root / "Tasks/Latin1.md").write_bytes("---\ncommand: echo café\n---\n".encode("latin-1"))
    (root / os.fsdecode(b"Bad\xffname")).mkdir()
    (root / os.fsdecode(b"Bad\xffname") / "x.md").write_text(GOOD)
    (root / "Tasks/Good (Conflicted copy laptop 2026-11-20).md").write_text(GOOD)
    (root / "Tasks/Odd [name] #1 — ünïcode | pipe.md").write_text(GOOD)
    result = Cli(root)("validate", timeout=60)
    assert result.code == 1, result.err
    lines = (result.out + result.err).splitlines()
    for rel in ["Tasks/Deep.md", "Tasks/Aliases.md", "Tasks/Bomb.md", "Tasks/Latin1.md"]:
        assert any(line.startswith(rel + ":") for line in lines), (rel, lines)
    assert any("Huge front matter" in line for line in lines)
    assert any("not UTF-8" in line for line in lines)
    assert "Traceback" not in result.err
    listed = Cli(root)("list", "--json", timeout=60)
    assert listed.code == 0 and '"Tasks/Good"' in listed.out
    assert "Conflicted copy" not in listed.out
    assert "Odd [name] #1 — ünïcode | pipe" in listed.out
    assert "Tasks/Huge body" in build_index(vault).tasks  # its body is never read


def test_no_write_leaves_the_vault_through_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "vault"
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "Target.md").write_text(GOOD)
    make_vault(root, repo=False)
    (root / "Tasks").mkdir()
    (root / "Tasks/Linked.md").symlink_to(outside / "Target.md")
    (root / "Linked folder").symlink_to(outside, target_is_directory=True)
    (root / "Digests").symlink_to(outside, target_is_directory=True)
    write_note(root, "Tasks/Real.md", "---\ncommand: echo real\n---\n")
    cli = Cli(root)
    assert cli("run-now", "Real").code == 0
    assert sorted(p.name for p in outside.iterdir()) == ["Target.md"]
    assert (outside / "Target.md").read_text() == GOOD
    assert cli("run-now", "Linked").code == 2  # a symlink is not a task
    shutil.rmtree(outside)
