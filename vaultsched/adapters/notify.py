"""Notifications: a command and/or apprise URLs. A failing notifier is logged only.

Titles and messages carry note names and task output, and the vault is untrusted input: the
command is exec'd as a list of arguments, never through a shell, so no value is ever code.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import subprocess
from collections.abc import Callable, Mapping
from datetime import timedelta
from pathlib import Path

from vaultsched.adapters.config import NotifyConfig
from vaultsched.core.model import ATTENTION, Run, Status, Task

log = logging.getLogger(__name__)

COMMAND_TIMEOUT = 30.0


def wanted(task: Task, run: Run) -> bool:
    """`always`, or `failure` for any run a person should look at (ATTENTION); never for a run
    skipped because there was nothing to do (a `check` or `if_changed` said so)."""
    if run.status is Status.SKIPPED:
        return False
    return task.notify == "always" or (task.notify == "failure" and run.status in ATTENTION)


def title_and_message(run: Run) -> tuple[str, str]:
    title = f"vaultsched: {run.status} {run.note_name}"
    detail = (
        f"exit {run.exit_code}" if run.exit_code is not None else run.message or str(run.status)
    )
    tail = "\n".join(run.output_tail.splitlines()[-5:])
    message = f"{run.task}: {run.status} ({detail})" + (f"\n{tail}" if tail else "")
    return title, message


_PLACEHOLDER = re.compile(r"\{(title|message|task|status)\}")


def argv(template: str, values: Mapping[str, str]) -> list[str]:
    """The notify command as arguments: split once with shell-word rules, then each
    placeholder replaced by its value as plain text, so `"{title}"` is one whole argument and
    `--title={title}` keeps its prefix. Nothing is ever read by a shell again; other braces are
    left be (a user's `awk '{print}'` must survive)."""
    words = shlex.split(template)
    return [_fill(word, values) for word in words]


def _fill(word: str, values: Mapping[str, str]) -> str:
    filled = _PLACEHOLDER.sub(lambda m: values[m.group(1)], word)  # one pass: no re-expansion
    # An option can only come from the template: a note named `-o x` must not become one.
    return " " + filled if filled.startswith("-") and not word.startswith("-") else filled


# {vault file: sha256} of what a command reaches, as config trust recorded it in `reaches`.
Reached = Callable[[Path, str], dict[str, str]]


def send(config: NotifyConfig, task: Task, run: Run, root: Path, reached: Reached) -> None:
    """Notify about `run`; the command runs in the vault root `root`, where trust read it."""
    if wanted(task, run):
        said = title_and_message(run)
        _deliver(config, run.task, str(run.status), said, root=root, reached=reached)


def send_stuck(
    config: NotifyConfig, task: Task, run: Run, going: timedelta, *, root: Path, reached: Reached
) -> None:
    """Notify, once per run, that `run` has been going for `going`, far longer than usual."""
    if task.notify == "never":
        return
    minutes = int(going.total_seconds() // 60)
    title = f"vaultsched: stuck {run.note_name}"
    message = f"{run.task}: still running after {minutes} min, far longer than it usually takes"
    _deliver(config, run.task, "stuck", (title, message), root=root, reached=reached)


def _deliver(
    config: NotifyConfig,
    task_id: str,
    status: str,
    said: tuple[str, str],
    *,
    root: Path,
    reached: Reached,
) -> None:
    if not (config.command or config.urls):
        return
    title, message = said
    if config.command and _unchanged(config, root, reached):
        values = {"title": title, "message": message, "task": task_id, "status": status}
        _run_command(config.command, {key: _no_nul(value) for key, value in values.items()}, root)
    if config.urls:
        _send_apprise(config.urls, title, message)


def _unchanged(config: NotifyConfig, root: Path, reached: Reached) -> bool:
    """The vault files the command runs are still those read with the config: a daemon keeps
    its config for days, and a sync may rewrite the notifier script meanwhile."""
    if tuple(sorted(reached(root, config.command).items())) == config.reaches:
        return True
    log.warning(
        "[notify] command not run: a vault file it runs changed since the config was read;"
        " review it, then run: vaultsched trust --config (and restart the daemon)"
    )
    return False


def _no_nul(value: str) -> str:
    """Neither an argument nor an environment variable can carry a NUL byte."""
    return value.replace("\0", "")


def _run_command(template: str, values: Mapping[str, str], cwd: Path) -> None:
    try:
        command = argv(template, values)
    except ValueError as exc:  # unbalanced quotes in the user's template
        log.warning("[notify] command cannot be split into words: %s", exc)
        return
    if not command:
        return
    env = {**os.environ, **{f"VAULTSCHED_NOTIFY_{k.upper()}": v for k, v in values.items()}}
    try:
        proc = subprocess.run(
            command,
            shell=False,
            cwd=cwd,  # the folder trust resolved its paths in, whoever started vaultsched
            env=env,
            capture_output=True,
            timeout=COMMAND_TIMEOUT,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("notify command failed: %s", exc)
        return
    if proc.returncode != 0:
        error = proc.stderr.decode(errors="replace").strip().splitlines()[-1:] or [""]
        log.warning("notify command exited %d: %s", proc.returncode, error[0])


def _send_apprise(urls: tuple[str, ...], title: str, message: str) -> None:
    try:
        import apprise
    except ImportError:
        log.warning("[notify] urls need apprise: pip install 'vaultsched[notify]'")
        return
    try:
        sender = apprise.Apprise()
        for url in urls:
            sender.add(url)
        if not sender.notify(title=title, body=message):
            log.warning("apprise could not deliver the notification")
    except Exception as exc:  # a notifier must never break a run
        log.warning("apprise failed: %s", exc)
