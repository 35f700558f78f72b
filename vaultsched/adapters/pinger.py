"""Sending pings over HTTP, on one background thread: never on a run's own path.

A ping waits in a bounded queue (a full queue drops it, with a log line); each gets up to
ATTEMPTS tries of TIMEOUT seconds, a short pause between them. Only http and https are spoken,
and a redirect is followed only to the same host. A ping that still fails is logged and kept,
the last one per URL, under `.vaultsched/state/` for `doctor`, with the URL as shown (its key
left out); the next ping to that URL that gets through clears it.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any
from urllib.parse import urlsplit

from vaultsched import __version__
from vaultsched.adapters import statefs
from vaultsched.core import layout

log = logging.getLogger(__name__)

USER_AGENT = f"vaultsched/{__version__}"
TIMEOUT = 10.0  # seconds, per attempt
ATTEMPTS = 3
PAUSES = (1.0, 2.0)  # before the second and the third attempt
QUEUE_SIZE = 100
FLUSH_GRACE = 5.0  # how long a command that ends waits for its pings to go out
KEEP_FAILURES = timedelta(days=7)
MAX_FAILURES = 50


@dataclass(frozen=True)
class Ping:
    url: str  # what is requested: the check's URL with its signal and run id
    body: bytes | None  # None: a GET; else a POST of these bytes
    check: str  # the check's URL, whose failures are kept (one per check)
    shown: str  # the check's URL fit to show (its key left out)
    who: str  # the task id, or "daemon"


@dataclass(frozen=True)
class Failure:
    who: str
    url: str  # as shown
    at: datetime
    error: str


class _SameHost(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to http(s) on the same host: a check's URL must not bounce a
    run's output anywhere else."""

    def redirect_request(  # noqa: PLR0917 - urllib calls it so
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: http.client.HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        old, new = urlsplit(req.full_url), urlsplit(newurl)
        if new.scheme not in ("http", "https") or new.hostname != old.hostname:
            raise urllib.error.HTTPError(
                req.full_url, code, "redirect to another host refused", headers, fp
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def opener() -> urllib.request.OpenerDirector:
    """http and https only (no `file:`, `ftp:` or `data:`), the environment's proxies."""
    director = urllib.request.OpenerDirector()
    for handler in (
        urllib.request.ProxyHandler(),
        urllib.request.HTTPHandler(),
        urllib.request.HTTPSHandler(),
        _SameHost(),
        urllib.request.HTTPDefaultErrorHandler(),
        urllib.request.HTTPErrorProcessor(),
    ):
        director.add_handler(handler)
    return director


class Pinger:
    """One worker thread, started with the first ping; `flush` waits (a while) for the queue."""

    def __init__(
        self,
        root: Path,
        open_url: Callable[..., Any] | None = None,
        pauses: Sequence[float] = PAUSES,
    ) -> None:
        self.root = root
        self._open = open_url or opener().open
        self._pauses = pauses
        self._queue: queue.Queue[Ping] = queue.Queue(QUEUE_SIZE)
        self._lock = threading.Condition()
        self._pending = 0
        self._thread: threading.Thread | None = None

    def send(self, ping: Ping) -> None:
        with self._lock:
            try:
                self._queue.put_nowait(ping)
            except queue.Full:
                log.warning("ping %s (%s) dropped: %d pings wait", ping.shown, ping.who, QUEUE_SIZE)
                return
            self._pending += 1
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, name="vaultsched-ping", daemon=True
                )
                self._thread.start()

    def flush(self, grace: float = FLUSH_GRACE) -> None:
        """Wait until every ping queued is sent or given up, at most `grace` seconds; what is
        left then is said in the log (and lost when the process ends)."""
        deadline = time.monotonic() + grace
        with self._lock:
            while self._pending and (left := deadline - time.monotonic()) > 0:
                self._lock.wait(left)
            if self._pending:
                log.warning("%d ping(s) not sent yet: vaultsched is stopping", self._pending)

    def _loop(self) -> None:
        while True:
            ping = self._queue.get()
            try:
                self._deliver(ping)
            except Exception:  # a ping must never take the worker down
                log.exception("ping %s (%s) failed inside vaultsched", ping.shown, ping.who)
            with self._lock:
                self._pending -= 1
                self._lock.notify_all()

    def _deliver(self, ping: Ping) -> None:
        error = ""
        for attempt in range(ATTEMPTS):
            if attempt:
                time.sleep(self._pauses[min(attempt, len(self._pauses)) - 1])
            try:
                self._request(ping)
            except (OSError, ValueError, http.client.HTTPException) as exc:
                error = _described(exc).replace(ping.url, ping.shown)
                continue
            _forget_failure(self.root, ping.check)
            return
        log.warning("ping %s (%s) failed %d times: %s", ping.shown, ping.who, ATTEMPTS, error)
        _keep_failure(self.root, ping, error)

    def _request(self, ping: Ping) -> None:
        request = urllib.request.Request(
            ping.url,
            data=ping.body,
            headers={"User-Agent": USER_AGENT, "Content-Type": "text/plain; charset=utf-8"},
            method="GET" if ping.body is None else "POST",
        )
        with self._open(request, timeout=TIMEOUT) as response:
            response.read(1024)


def _described(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__


# -- failures kept for `doctor` -------------------------------------------------------------------


def _key(url: str) -> str:
    """The URL's place in the file: a hash, so the file never holds the key itself."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]


def failures(root: Path, now: datetime) -> list[Failure]:
    """The last failure of each URL whose pings fail still (the last KEEP_FAILURES), oldest
    first; none if the file is missing, refused or unreadable."""
    found = []
    for entry in _read(root).values():
        try:
            at = datetime.fromisoformat(str(entry["at"]))
            failure = Failure(str(entry["who"]), str(entry["url"]), at, str(entry["error"]))
        except (KeyError, TypeError, ValueError):
            continue
        if now - at <= KEEP_FAILURES:
            found.append(failure)
    return sorted(found, key=lambda f: f.at)


def _read(root: Path) -> dict[str, Any]:
    try:
        data = statefs.read_bytes(root, layout.PING_FAILURES, limit=1 << 20)
        loaded = json.loads(data) if data else {}
    except (OSError, ValueError):
        return {}
    if not isinstance(loaded, dict):
        return {}
    return {key: entry for key, entry in loaded.items() if isinstance(entry, dict)}


def _keep_failure(root: Path, ping: Ping, error: str) -> None:
    now = datetime.now(UTC)
    entry = {"who": ping.who, "url": ping.shown, "at": now.isoformat(), "error": error}
    _update(root, lambda data: {**data, _key(ping.check): entry})


def _forget_failure(root: Path, url: str) -> None:
    if _key(url) in _read(root):  # the common case writes nothing
        _update(root, lambda data: {k: v for k, v in data.items() if k != _key(url)})


def _update(root: Path, change: Callable[[dict[str, Any]], dict[str, Any]]) -> None:
    try:
        with statefs.locked(root, layout.lock_beside(layout.PING_FAILURES)):
            data = change(_read(root))
            newest = sorted(data.items(), key=lambda kv: str(kv[1].get("at", "")))[-MAX_FAILURES:]
            text = json.dumps(dict(newest), indent=1, sort_keys=True) + "\n"
            statefs.write_atomic(root, layout.PING_FAILURES, text.encode(), durable=False)
    except OSError as exc:
        with contextlib.suppress(Exception):
            statefs.warn_refused(exc, "ping failure not kept")
