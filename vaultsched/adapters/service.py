"""`vaultsched service`: a `systemd --user` unit for the daemon, or the cron line where there is
no systemd. The unit file is the one thing vaultsched writes outside the vault, on request."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from vaultsched.core import layout

UNIT = "vaultsched.adapters.service"


def executable() -> list[str]:
    """How to start this very vaultsched: its console script beside this Python, else -m."""
    script = Path(sys.executable).with_name("vaultsched")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "vaultsched"]


def _quote(arg: str) -> str:
    """Quote one word for ExecStart (systemd.syntax): double quotes, `%` doubled."""
    escaped = arg.replace("\\", "\\\\").replace('"', '\\"').replace("%", "%%")
    return f'"{escaped}"'


def unit_text(vault: Path, command: list[str] | None = None) -> str:
    argv = [*(command or executable()), "--vault", str(vault), "run"]
    return (
        "[Unit]\n"
        f"Description=vaultsched for {vault}\n"
        "After=network-online.target\n"
        "\n"
        "[Service]\n"
        "Type=simple\n"
        f"ExecStart={' '.join(_quote(a) for a in argv)}\n"
        "Restart=on-failure\n"
        "RestartSec=10\n"
        # SIGTERM lets running tasks finish for up to 30 s, then kills; leave room.
        "TimeoutStopSec=60\n"
        "Environment=PYTHONUNBUFFERED=1\n"
        "\n"
        "[Install]\n"
        "WantedBy=default.target\n"
    )


def cron_line(vault: Path, command: list[str] | None = None) -> str:
    argv = " ".join(
        shlex.quote(a) for a in [*(command or executable()), "--vault", str(vault), "run"]
    )
    log = shlex.quote(str(vault / layout.DAEMON_LOG))
    return f"@reboot {argv} >> {log} 2>&1"


def unit_path() -> Path:
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return config / "systemd" / "user" / UNIT


def systemd_available() -> bool:
    if shutil.which("systemctl") is None:
        return False
    probe = subprocess.run(
        ["systemctl", "--user", "show-environment"], capture_output=True, check=False, timeout=10
    )
    return probe.returncode == 0


@dataclass(frozen=True)
class ServiceResult:
    unit: Path | None
    enabled: bool
    messages: tuple[str, ...]


def _systemctl(*args: str) -> str:
    proc = subprocess.run(
        ["systemctl", "--user", *args], capture_output=True, text=True, check=False, timeout=30
    )
    return "" if proc.returncode == 0 else (proc.stderr.strip() or f"systemctl {args[0]} failed")


def install(vault: Path) -> ServiceResult:
    path = unit_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(unit_text(vault))
    if not systemd_available():
        return ServiceResult(
            path,
            False,
            (
                f"wrote {path}, but systemd --user is not available here",
                "start the daemon at boot from cron instead (crontab -e):",
                cron_line(vault),
            ),
        )
    errors = [e for e in (_systemctl("daemon-reload"), _systemctl("enable", "--now", UNIT)) if e]
    if errors:
        return ServiceResult(path, False, (f"wrote {path}", *errors))
    return ServiceResult(path, True, (f"wrote {path}", f"enabled and started {UNIT}"))


def uninstall() -> ServiceResult:
    path = unit_path()
    messages: list[str] = []
    if systemd_available():
        _systemctl("disable", "--now", UNIT)
        messages.append(f"disabled {UNIT}")
    if path.exists():
        path.unlink()
        messages.append(f"removed {path}")
        if systemd_available():
            _systemctl("daemon-reload")
    else:
        messages.append(f"{path} was not installed")
    return ServiceResult(None, False, tuple(messages))


def status() -> ServiceResult:
    path = unit_path()
    if not path.exists():
        return ServiceResult(None, False, ("not installed (vaultsched service install)",))
    if not systemd_available():
        return ServiceResult(path, False, (f"{path} exists; systemd --user is not available",))
    proc = subprocess.run(
        ["systemctl", "--user", "is-active", UNIT], capture_output=True, text=True, check=False
    )
    state = proc.stdout.strip() or "unknown"
    return ServiceResult(path, state == "active", (f"{UNIT}: {state}", f"unit: {path}"))
