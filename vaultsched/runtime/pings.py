"""What pings go out, from the `Recorder`'s two wiring points (a run started, a run recorded as
over) and, in the daemon, a heartbeat. Each ping is handed to the `Pinger`'s queue, so a slow or
dead endpoint never delays a run nor fails it.

A task's own `ping` is part of its trust, so it is used for a run that started (trust was
checked just before) or, for a run that never started, while the task is trusted as it is now;
the config's `[ping] url` is in effect only once trusted (or from the per-user config).
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

from vaultsched.adapters.config import PingConfig
from vaultsched.adapters.pinger import Ping, Pinger
from vaultsched.core.model import Run, Status, Task
from vaultsched.core.pings import body_of, end_signal, shown, slug, url_for, with_signal
from vaultsched.runtime.workspace import Workspace

log = logging.getLogger(__name__)


class RunPings(Protocol):
    def started(self, task: Task, run: Run) -> None: ...

    def finished(self, task: Task, run: Run) -> None: ...

    def flush(self) -> None: ...


class NoPings:
    def started(self, task: Task, run: Run) -> None:
        pass

    def finished(self, task: Task, run: Run) -> None:
        pass

    def flush(self) -> None:
        pass


class Pings:
    def __init__(self, workspace: Workspace, pinger: Pinger | None = None) -> None:
        self.workspace = workspace
        self.config: PingConfig = workspace.vault.config.ping
        self.pinger = pinger or Pinger(workspace.vault.root)
        self._lock = threading.Lock()
        self._started: set[str] = set()  # run ids that sent a start ping, trust checked

    def started(self, task: Task, run: Run) -> None:
        url = url_for(task.name, task.ping, self.config.url)
        if not url:
            return
        with self._lock:
            self._started.add(run.run_id)
        self._send(task, url, with_signal(url, "start", run.run_id), None)

    def finished(self, task: Task, run: Run) -> None:
        with self._lock:
            ran = run.run_id in self._started
            self._started.discard(run.run_id)
        signal = end_signal(run)
        if signal is None:
            return
        own = task.ping if task.ping and (ran or self._trusted(task, run)) else None
        url = url_for(task.name, own, self.config.url)
        if url:
            self._send(task, url, with_signal(url, signal, run.run_id), body_of(run))

    def flush(self) -> None:
        self.pinger.flush()

    def _trusted(self, task: Task, run: Run) -> bool:
        """A run that never started (refused, skipped, waiting): the task's own URL only if
        the task is trusted as it is now."""
        if run.status is Status.UNTRUSTED:
            return False
        root = self.workspace.vault.root
        try:
            return self.workspace.trust.is_trusted(root, task)
        except OSError:
            return False

    def _send(self, task: Task, base: str, url: str, body: bytes | None) -> None:
        keep = "" if base == task.ping else slug(task.name)
        self.pinger.send(Ping(url, body, base, shown(base, keep), task.id))


class Heartbeat:
    """`[ping] daemon`: `URL/start` when the daemon starts, then `URL` every
    `daemon_interval` while it runs; nothing when it stops (a missing ping is the signal)."""

    def __init__(self, pinger: Pinger, config: PingConfig) -> None:
        self.pinger = pinger
        self.url = config.daemon
        self.interval = config.daemon_interval.total_seconds()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if not self.url:
            return
        self._beat("start")
        self._thread = threading.Thread(target=self._loop, name="vaultsched-heartbeat", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._beat("")

    def _beat(self, signal: str) -> None:
        url = with_signal(self.url, signal)
        self.pinger.send(Ping(url, None, self.url, shown(self.url), "daemon"))
