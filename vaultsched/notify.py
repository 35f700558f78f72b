"""Notifications (SPEC §9): a command and/or apprise URLs. A failing notifier is logged only."""

from __future__ import annotations

import logging
import shlex
import subprocess

from vaultsched.config import NotifyConfig
from vaultsched.model import ATTENTION, Run, Task

log = logging.getLogger(__name__)

COMMAND_TIMEOUT = 30.0


def wanted(task: Task, run: Run) -> bool:
    """`always`, or `failure` for any run a person should look at (ATTENTION)."""
    return task.notify == "always" or (task.notify == "failure" and run.status in ATTENTION)


def title_and_message(run: Run) -> tuple[str, str]:
    title = f"vaultsched: {run.status} {run.note_name}"
    detail = (
        f"exit {run.exit_code}" if run.exit_code is not None else run.message or str(run.status)
    )
    tail = "\n".join(run.output_tail.splitlines()[-5:])
    message = f"{run.task}: {run.status} ({detail})" + (f"\n{tail}" if tail else "")
    return title, message


def fill(template: str, values: dict[str, str]) -> str:
    """Substitute {title} {message} {task} {status}, shell-quoted; other braces are left be
    (a user's `awk '{print}'` must survive)."""
    for key, value in values.items():
        template = template.replace("{" + key + "}", shlex.quote(value))
    return template


def send(config: NotifyConfig, task: Task, run: Run) -> None:
    if not wanted(task, run) or not (config.command or config.urls):
        return
    title, message = title_and_message(run)
    if config.command:
        values = {"title": title, "message": message, "task": run.task, "status": str(run.status)}
        _run_command(fill(config.command, values))
    if config.urls:
        _send_apprise(config.urls, title, message)


def _run_command(command: str) -> None:
    try:
        proc = subprocess.run(
            command,
            shell=True,
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
