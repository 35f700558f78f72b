"""The systemd unit text and the cron fallback."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from vaultsched.adapters import service


def test_unit_runs_this_vaultsched_on_this_vault() -> None:
    text = service.unit_text(Path("/home/me/My Notes"), ["/opt/venv/bin/vaultsched"])
    lines = text.splitlines()
    assert "[Service]" in lines and "[Install]" in lines
    assert 'ExecStart="/opt/venv/bin/vaultsched" "--vault" "/home/me/My Notes" "run"' in lines
    assert "Restart=on-failure" in lines
    assert "WantedBy=default.target" in lines


def test_unit_quotes_percent_and_quotes() -> None:
    text = service.unit_text(Path('/v/100% "odd"'), ["/bin/vs"])
    assert 'ExecStart="/bin/vs" "--vault" "/v/100%% \\"odd\\"" "run"' in text


def test_default_command_is_absolute_and_runnable() -> None:
    argv = service.executable()
    assert Path(argv[0]).is_absolute() and Path(argv[0]).exists()


def test_cron_line_is_shell_safe() -> None:
    line = service.cron_line(Path("/home/me/My Notes"), ["/opt/vs"])
    assert line.startswith("@reboot ")
    words = shlex.split(line.removeprefix("@reboot ").split(" >> ")[0])
    assert words == ["/opt/vs", "--vault", "/home/me/My Notes", "run"]


def test_install_without_systemd_prints_the_cron_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setattr(service, "systemd_available", lambda: False)
    result = service.install(tmp_path / "vault")
    assert result.unit == tmp_path / "config/systemd/user/vaultsched.adapters.service"
    assert result.unit.read_text() == service.unit_text(tmp_path / "vault")
    assert any(m.startswith("@reboot ") for m in result.messages)
    removed = service.uninstall()
    assert not result.unit.exists()
    assert any("removed" in m for m in removed.messages)
