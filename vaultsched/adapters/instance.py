"""One daemon per vault per host: an flock'ed file that also says who holds it."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import signal
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from vaultsched.adapters import statefs
from vaultsched.core.errors import VaultschedError
from vaultsched.core.layout import INSTANCE_LOCK


@dataclass
class InstanceLock:
    root: Path
    _fd: int | None = None

    @property
    def path(self) -> Path:
        return self.root / INSTANCE_LOCK

    def acquire(self, host: str, since: datetime) -> None:
        try:
            fd = statefs.open_file(self.root, INSTANCE_LOCK, os.O_RDWR | os.O_CREAT)
        except statefs.LinkRefused as exc:
            raise VaultschedError(f"cannot take the daemon lock: {exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = self.holder() or {}
            pid, host = holder.get("pid", "?"), holder.get("host", "?")
            raise VaultschedError(
                f"another vaultsched daemon is running for {self.root}: pid {pid} "
                f"on {host} since {holder.get('since', '?')}"
            ) from None
        os.ftruncate(fd, 0)
        info = {"pid": os.getpid(), "host": host, "since": since.isoformat(timespec="seconds")}
        os.write(fd, json.dumps(info).encode())
        os.fsync(fd)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, 0)
            os.close(self._fd)
            self._fd = None

    def holder(self) -> dict[str, Any] | None:
        """Who holds the lock (pid, host, since), or None if no daemon is running."""
        try:
            fd = statefs.open_file(self.root, INSTANCE_LOCK, os.O_RDONLY)
        except OSError:  # none, or refused: no daemon can hold it
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                data = os.read(fd, 4096)
                try:
                    info = json.loads(data or b"{}")
                except ValueError:
                    info = {}
                return info if isinstance(info, dict) else {}
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def signal_daemon(self, host: str, sig: signal.Signals) -> int | None:
        """Send `sig` to this host's running daemon; its pid, or None if none runs."""
        holder = self.holder()
        if not holder or holder.get("host") != host or not isinstance(holder.get("pid"), int):
            return None
        try:
            os.kill(holder["pid"], sig)
        except ProcessLookupError:
            return None
        return int(holder["pid"])
