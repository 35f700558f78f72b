"""The daemon's Prometheus metrics, and the two ways out: an HTTP endpoint or a textfile.

`Metrics` holds the prometheus objects in a registry of its own (never the library's global
one) and is told what happens through a few `on_...` and `set_...` methods, from any thread.
Task ids come from note paths a sync may choose: the library escapes them as label values,
and `forget` drops a task's series when it leaves the index, so they are as many as the tasks.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.exposition import write_to_textfile

from vaultsched.core.errors import VaultschedError
from vaultsched.core.model import Run, Status

log = logging.getLogger(__name__)

TASK_STATES = ("valid", "invalid", "untrusted", "disabled")
DURATION_BUCKETS = (0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600, float("inf"))
LATENESS_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300, float("inf"))
TEXTFILE_EVERY = 1.0  # seconds: the most often the textfile is rewritten


class Metrics:
    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.on_change = on_change  # the textfile's writer is told
        self._lock = threading.Lock()
        self._pending = 0  # submitted, not started
        self._waiting = 0  # waiting for a group slot
        self._statuses: dict[str, set[str]] = {}  # task -> the status labels it has
        reg = self.registry
        self.runs = Counter(
            "vaultsched_runs", "Runs recorded by task and status.", ["task", "status"], registry=reg
        )
        self.duration = Histogram(
            "vaultsched_run_duration_seconds",
            "How long each run's process took.",
            ["task"],
            buckets=DURATION_BUCKETS,
            registry=reg,
        )
        self.last_success = Gauge(
            "vaultsched_last_success_timestamp_seconds",
            "When the task's last successful run on this host finished (Unix time).",
            ["task"],
            registry=reg,
        )
        self.next_fire = Gauge(
            "vaultsched_next_fire_timestamp_seconds",
            "When the task fires next (Unix time).",
            ["task"],
            registry=reg,
        )
        self.running = Gauge(
            "vaultsched_running", "1 while a run of the task is going.", ["task"], registry=reg
        )
        self.queue_depth = Gauge(
            "vaultsched_queue_depth",
            "Runs submitted but not started, plus runs waiting for a slot in their group.",
            registry=reg,
        )
        self.tasks = Gauge(
            "vaultsched_tasks",
            "Task notes by state: valid (will run), invalid, untrusted, disabled.",
            ["state"],
            registry=reg,
        )
        self.lateness = Histogram(
            "vaultsched_fire_lateness_seconds",
            "How late each scheduled fire started after its fire time.",
            buckets=LATENESS_BUCKETS,
            registry=reg,
        )
        self.up = Gauge("vaultsched_up", "1 while the daemon runs.", registry=reg)
        for state in TASK_STATES:
            self.tasks.labels(state).set(0)

    # -- what happens -----------------------------------------------------------------------------

    def on_run(self, run: Run) -> None:
        """A run was recorded (whatever its status: refused, skipped and missed ones too)."""
        with self._lock:
            self._statuses.setdefault(run.task, set()).add(str(run.status))
        self.runs.labels(run.task, str(run.status)).inc()
        if run.duration_s is not None:
            self.duration.labels(run.task).observe(run.duration_s)
        if run.status is Status.SUCCESS:
            self.last_success.labels(run.task).set((run.finished_at or run.started_at).timestamp())
        self.on_change()

    def on_submitted(self) -> None:
        with self._lock:
            self._pending += 1
            self._set_queue()
        self.on_change()

    def on_started(self, task: str, lateness: float | None) -> None:
        """A worker took a run up; `lateness`: seconds after its fire time, for a scheduled one."""
        with self._lock:
            self._pending = max(0, self._pending - 1)
            self._set_queue()
        self.running.labels(task).set(1)
        if lateness is not None:
            self.lateness.observe(max(0.0, lateness))
        self.on_change()

    def on_finished(self, task: str) -> None:
        self.running.labels(task).set(0)
        self.on_change()

    def set_waiting(self, count: int) -> None:
        with self._lock:
            changed, self._waiting = self._waiting != count, count
            self._set_queue()
        if changed:
            self.on_change()

    def set_tasks(self, counts: Mapping[str, int]) -> None:
        for state in TASK_STATES:
            self.tasks.labels(state).set(counts.get(state, 0))
        self.on_change()

    def set_next_fire(self, task: str, at: float | None) -> None:
        if at is None:
            self.next_fire.remove(task)
        else:
            self.next_fire.labels(task).set(at)

    def set_last_success(self, task: str, at: float) -> None:
        self.last_success.labels(task).set(at)

    def set_up(self, up: bool) -> None:
        self.up.set(1 if up else 0)
        self.on_change()

    def forget(self, task: str) -> None:
        """`task` left the index (removed, renamed): its series go with it."""
        with self._lock:
            statuses = self._statuses.pop(task, set())
        for status in statuses:
            self.runs.remove(task, status)
        for metric in (self.duration, self.last_success, self.next_fire, self.running):
            metric.remove(task)
        self.on_change()

    def changed(self) -> None:
        self.on_change()

    def _set_queue(self) -> None:
        self.queue_depth.set(self._pending + self._waiting)


# -- the ways out -------------------------------------------------------------------------------


class MetricsServer:
    """The HTTP endpoint (`/metrics`, any path), served on a thread of its own."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        try:
            server, thread = start_http_server(port, host, registry)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise VaultschedError(f"metrics: cannot listen on {host}:{port}: {reason}", 1) from exc
        self._server: WSGIServer = server
        self._thread = thread
        log.info("metrics on http://%s/metrics", _address(host, port))

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class TextfileWriter:
    """Writes the registry to `path` for node_exporter's textfile collector: temp file and
    rename, at most once per TEXTFILE_EVERY after a change, and once more at `close`."""

    def __init__(self, registry: CollectorRegistry, path: str) -> None:
        folder = Path(path).parent.resolve()
        if ".git" in folder.parts:  # a symlink on the way may lead there
            raise VaultschedError(f"[metrics] textfile must not be inside a .git folder: {path}")
        if not folder.is_dir():
            raise VaultschedError(f"[metrics] textfile: no such folder: {folder}", 1)
        self.path = str(folder / Path(path).name)
        self.registry = registry
        self._wanted = threading.Event()
        self._closing = threading.Event()
        self._failing = False
        self._thread = threading.Thread(target=self._loop, name="vaultsched-metrics", daemon=True)
        self._thread.start()

    def changed(self) -> None:
        self._wanted.set()

    def close(self) -> None:
        self._closing.set()
        self._wanted.set()
        self._thread.join()
        self._write()

    def _loop(self) -> None:
        while not self._closing.is_set():
            self._wanted.wait()
            if self._closing.is_set():
                return
            self._wanted.clear()
            self._write()
            self._closing.wait(TEXTFILE_EVERY)

    def _write(self) -> None:
        try:
            write_to_textfile(self.path, self.registry)
        except OSError as exc:
            if not self._failing:  # said once until it works again
                log.warning("metrics: cannot write %s: %s", self.path, exc.strerror or exc)
            self._failing = True
        else:
            self._failing = False


def _address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
