"""The workflow fields of a task and a run: defaults that leave every existing note as it was."""

from __future__ import annotations

from dataclasses import replace
from datetime import time
from zoneinfo import ZoneInfo

from vaultsched.adapters.config import Config
from vaultsched.core.model import ATTENTION, FAILURES, RETRYABLE, Status, Trigger, Window
from vaultsched.core.taskfile import parse_task
from vaultsched.trust.fingerprint import Content, Snapshot, canonical_keys

CONFIG = Config(timezone=ZoneInfo("Europe/Warsaw"))
# Computed with the code before the workflow keys existed. A note that does not use them must
# keep its fingerprint: a change would silently untrust every task in every vault.
FINGERPRINTS = {
    'command: [python, scripts/x.py, 5]\nschedule: "@daily"\ncwd: sub\n'
    'env: {A: x, B: "2"}\nstdin: body\napproval: required\n': (
        "7d114b02944376f8d5e0e75f912582a8b1e02f91f35eee289061feea51f9cb39"
    ),
    "command: echo hi\n": "fc2121cc70f3467cfcded2b014d7246dc3f2b7662e5d39c87598c8723a06bac3",
}


def test_a_note_without_the_workflow_keys_keeps_its_fingerprint() -> None:
    for yaml_text, expected in FINGERPRINTS.items():
        task = parse_task("Tasks/T.md", yaml_text, CONFIG).task
        assert task is not None
        body = Content.of(b"hello\n") if task.stdin == "body" else None
        assert Snapshot(keys=canonical_keys(task), body=body).fingerprint == expected


def test_defaults_do_nothing() -> None:
    task = parse_task("Tasks/T.md", "command: echo hi\n", CONFIG).task
    assert task is not None
    assert (task.check, task.if_changed, task.after, task.on) == (None, (), (), "success")
    assert (task.output, task.group, task.max_runs, task.until, task.window) == (None,) * 5


def test_check_is_in_the_fingerprint() -> None:
    task = parse_task("Tasks/T.md", "command: echo hi\n", CONFIG).task
    assert task is not None
    assert canonical_keys(replace(task, check="test -f x"))["check"] == "test -f x"
    assert canonical_keys(replace(task, check=("test", "-f")))["check"] == ["test", "-f"]


def test_new_statuses_and_what_they_need() -> None:
    assert {Status.BLOCKED, Status.LOST} <= ATTENTION
    assert Status.MISSED not in ATTENTION and Status.SKIPPED not in ATTENTION
    assert not {Status.BLOCKED, Status.MISSED, Status.LOST} & FAILURES
    assert not {Status.BLOCKED, Status.MISSED} & RETRYABLE
    assert Status.LOST in RETRYABLE  # a worker that died: its run is tried again per `retries`
    assert Trigger("after") is Trigger.AFTER


def test_window() -> None:
    assert str(Window(time(22), time(6, 30))) == "22:00-06:30"
    assert Window(time(22), time(6)).crosses_midnight
    assert not Window(time(6), time(22)).crosses_midnight
