"""The one place task processes are run (`core/output` makes their output fit for a note).

`run_process` supervises one child with a single `select` loop and no helper threads: the
merged stdout/stderr pipe, the stdin pipe and (on Linux) a pidfd that becomes readable when the
child exits. A daemon calls it from several threads at once, so it keeps no global state: no
signal handlers, no `os.chdir`, nothing shared between calls.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import selectors
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import BinaryIO

from vaultsched.adapters.clock import utc_now
from vaultsched.core.redact import Redactor

log = logging.getLogger(__name__)

TAIL_BYTES = 64 * 1024
STDOUT_BYTES = 1024 * 1024  # of stdout kept whole (an output note, the next run's input)
READ_CHUNK = 64 * 1024
# Once the task's own process has exited, a background child it left behind may keep the pipe
# open for ever; read what is already there for this long, then stop (without killing it).
DRAIN_AFTER_EXIT = 1.0
# Wake-up period used only where no event exists to wait on: no pidfd (non-Linux), or while
# waiting for a terminated process group to empty during the kill grace.
POLL_INTERVAL = 0.05
STDIN_CHUNK = 64 * 1024
MAX_WAIT = 3600.0


@dataclass(frozen=True)
class ProcessResult:
    exit_code: int | None  # None when it never started or was killed by a signal
    signal: int | None
    timed_out: bool
    error: str  # non-empty when the process could not start
    # The last TAIL_BYTES or so of combined stdout+stderr; with a redactor, never starting
    # part-way through a secret (so the whole tail can still be redacted).
    tail: bytes
    output_bytes: int  # total bytes the process wrote
    started_at: datetime
    finished_at: datetime
    pid: int | None
    # stdout alone, its first STDOUT_BYTES, unredacted; `stdout_cut`: there was more.
    stdout: bytes = b""
    stdout_cut: bool = False


def run_process(
    command: str | Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    stdin: bytes | None,
    timeout: float,
    log: BinaryIO | None,
    echo: BinaryIO | None = None,
    redact: Redactor | None = None,
    kill_grace: float = 10.0,
    now: Callable[[], datetime] = utc_now,
    on_start: Callable[[int], None] | None = None,
    held: Held | None = None,
) -> ProcessResult:
    """Run `command` to completion or timeout; never raises for a command that cannot start.

    `on_start(pid)` is called once the child exists; the pid is also its process group id, so
    a caller shutting down can `os.killpg(pid, SIGTERM)` a run that is still going. `log`
    (opened and closed by the caller) gets the full output as it comes, unredacted. `held`:
    the child `hold` started ahead for this command, which becomes it now.
    """
    sink = _Sink(log, echo, redact)
    started_at = now()
    proc: subprocess.Popen[bytes] | None
    if held is not None:
        proc, error = held.release(), ""
        stdin = stdin if held.piped else b""  # its stdin, closed at once: /dev/null is its own
    else:
        proc, error = _spawn(_argv(command), cwd, env, stdin is not None)
    if proc is None:
        sink.note(f"vaultsched: could not start: {error}\n".encode())
        return ProcessResult(None, None, False, error, b"", 0, started_at, now(), None)
    supervisor = _Supervisor(proc, sink, stdin, timeout, kill_grace)
    supervisor.run(on_start)
    code = proc.returncode
    return ProcessResult(
        exit_code=code if code is not None and code >= 0 else None,
        signal=-code if code is not None and code < 0 else None,
        timed_out=supervisor.timed_out,
        error="",
        tail=sink.tail(),
        output_bytes=sink.total,
        stdout=bytes(sink.stdout),
        stdout_cut=sink.stdout_cut,
        started_at=started_at,
        finished_at=now(),
        pid=proc.pid,
    )


# -- starting ----------------------------------------------------------------------------------


# A child started ahead of its time is the command's own `/bin/sh -c`, its script preceded by a
# wait for one line on stdin. What follows the line is the command's stdin; a command that reads
# none then gets /dev/null, opened for reading and writing as Popen's DEVNULL is. Everything else
# is `sh -c command` as the plain way runs it: on the same line (LINENO is the same), with no
# variable left behind, the last command exec'd in the shell's place. End of file instead of the
# line (the run was called off, or the process holding the pipe died): it exits, running nothing.
_GO = b"go\n"
_WAIT = 'IFS= read -r go && [ "$go" = go ] || exit 125; unset go; '
_NO_STDIN = "exec <>/dev/null; "


@dataclass
class Held:
    """A child `hold` started ahead of its time, waiting to run its command."""

    proc: subprocess.Popen[bytes]
    piped: bool  # the command reads what follows the line
    released: bool = False
    _once: threading.Lock = field(default_factory=threading.Lock)  # one line, ever

    def release(self) -> subprocess.Popen[bytes]:
        """Let it run the command now (one pipe write: no fork, no wait); once."""
        with self._once:
            if not self.released:
                self.released = True
                assert self.proc.stdin is not None
                with contextlib.suppress(OSError):  # it died meanwhile: its exit status says how
                    os.write(self.proc.stdin.fileno(), _GO)
        return self.proc

    def cancel(self) -> None:
        """Call it off, unless released: it exits without running anything."""
        with self._once:
            if self.released:
                return
            self.released = True
        for pipe in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                with contextlib.suppress(OSError):
                    pipe.close()
        try:
            self.proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:  # it cannot be stuck but in `read`; never leave it
            self.proc.kill()
            self.proc.wait()


def hold(command: str, *, cwd: Path, env: Mapping[str, str], piped: bool) -> Held | None:
    """Start the process of a shell `command` ahead of its time, to run it when
    `run_process(held=...)` releases it: then only a line is written, no process started.
    None if it cannot be started: the run then starts the plain way, which says why."""
    script = _WAIT + ("" if piped else _NO_STDIN) + command
    proc, _ = _spawn(_argv(script), cwd, env, True)
    return None if proc is None else Held(proc, piped)


def _argv(command: str | Sequence[str]) -> list[str]:
    if isinstance(command, str):
        return ["/bin/sh", "-c", command]
    return list(command)


def _spawn(
    argv: list[str], cwd: Path, env: Mapping[str, str], with_stdin: bool
) -> tuple[subprocess.Popen[bytes] | None, str]:
    if not argv:
        return None, "empty command"
    try:  # one stat, not `exists()` then `is_dir()`: this is every run's start
        cwd_is_dir = stat.S_ISDIR(cwd.stat().st_mode)
    except (OSError, ValueError):
        return None, f"cwd does not exist: {cwd}"
    if not cwd_is_dir:
        return None, f"cwd is not a directory: {cwd}"
    try:
        proc = subprocess.Popen(
            argv,
            # The pipes are read and written by descriptor (`os.read`, `os.write`): unbuffered
            # file objects, each made without the tty and seek checks of a buffered one.
            bufsize=0,
            cwd=cwd,
            env=dict(env),
            # Never the terminal's stdin: a task that reads stdin must see EOF, not hang.
            stdin=subprocess.PIPE if with_stdin else subprocess.DEVNULL,
            # Apart, so stdout alone can be handed on (an output note, the next task of a
            # chain); both go to the log and the tail as they come.
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            # Own session and process group, so a timeout can kill everything it forked.
            start_new_session=True,
        )
    except OSError as exc:
        return None, _start_error(exc, argv[0], cwd)
    except (ValueError, subprocess.SubprocessError) as exc:  # e.g. a NUL byte in an argument
        return None, f"could not start: {exc}"
    return proc, ""


def _start_error(exc: OSError, program: str, cwd: Path) -> str:
    # The child reports a failed chdir with the cwd as filename, a failed exec with argv[0].
    about_cwd = exc.filename is not None and os.fsdecode(exc.filename) == os.fsdecode(cwd)
    if isinstance(exc, FileNotFoundError):
        return f"cwd does not exist: {cwd}" if about_cwd else f"command not found: {program}"
    if isinstance(exc, PermissionError):
        return f"permission denied: {cwd if about_cwd else program}"
    if isinstance(exc, NotADirectoryError):
        return f"not a directory: {cwd if about_cwd else program}"
    return f"could not start {program}: {exc.strerror or exc}"


# -- output --------------------------------------------------------------------------------------


@dataclass
class _Sink:
    """Where output goes: the full log, the live echo, and a bounded in-memory tail."""

    _log: BinaryIO | None
    echo: BinaryIO | None
    redact: Redactor | None
    total: int = 0
    stdout: bytearray = field(default_factory=bytearray)
    stdout_cut: bool = False
    _buffer: bytearray = field(default_factory=bytearray)

    def write_stdout(self, chunk: bytes) -> None:
        room = STDOUT_BYTES - len(self.stdout)
        self.stdout += chunk[:room]
        self.stdout_cut = self.stdout_cut or len(chunk) > room
        self.write(chunk)

    def write(self, chunk: bytes) -> None:
        self.total += len(chunk)
        self._buffer += chunk
        # Trim in amortised steps rather than on every chunk: at most 2x TAIL_BYTES held.
        if len(self._buffer) > 2 * TAIL_BYTES:
            del self._buffer[: self._cut(len(self._buffer) - TAIL_BYTES)]
        self.note(chunk)
        self._echo(chunk)

    def note(self, chunk: bytes) -> None:
        """Append to the log only (also used for vaultsched's own could-not-start line)."""
        if self._log is None:
            return
        try:
            self._log.write(chunk)
        except OSError as exc:  # disk full: keep running the task, stop logging it
            log.warning("run log: %s; no longer written", exc)
            self._log = None

    def _echo(self, chunk: bytes) -> None:
        if self.echo is None:
            return
        try:
            self.echo.write(chunk)
            self.echo.flush()
        except (OSError, ValueError):  # the terminal went away (`run-now ... | head`)
            self.echo = None

    def tail(self) -> bytes:
        return bytes(self._buffer[self._cut(len(self._buffer) - TAIL_BYTES) :])

    def _cut(self, at: int) -> int:
        """Where to cut the buffer near `at`: never inside a secret (see Redactor.clean_cut)."""
        at = max(at, 0)
        return at if self.redact is None else self.redact.clean_cut(self._buffer, at)


# -- supervising -------------------------------------------------------------------------------


class _Supervisor:
    """One select loop over the output pipe, the stdin pipe and the child's exit.

    The run is over when the child has been reaped and the output pipe is at EOF, or
    DRAIN_AFTER_EXIT after the reap if a background child keeps the pipe open. After a timeout
    it is over only once the whole group is gone or has been sent SIGKILL.
    """

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        sink: _Sink,
        stdin: bytes | None,
        timeout: float,
        kill_grace: float,
    ) -> None:
        self.proc = proc
        self.sink = sink
        self.pgid = proc.pid  # start_new_session makes the child its group's leader
        self.kill_grace = kill_grace
        self.deadline = time.monotonic() + max(timeout, 0.0)
        self.timed_out = False
        self.kill_at: float | None = None  # set when SIGTERM is sent
        self.killed = False
        self.next_group_check = 0.0
        self.settled_at: float | None = None  # when nothing more is waited for but output
        # poll, not epoll: for the three or four descriptors of one run, epoll's set-up
        # (create, an add and a delete each, close: ten system calls a run) is its whole cost.
        self.selector = getattr(selectors, "PollSelector", selectors.DefaultSelector)()
        self.outputs: set[int] = set()  # the output pipes still open
        self.stdin_data = memoryview(stdin or b"")
        self.pidfd: int | None = None

    def run(self, on_start: Callable[[int], None] | None) -> None:
        try:
            if on_start is not None:  # inside the try: if it raises, the child is not orphaned
                on_start(self.proc.pid)
            self._register()
            while not self._finished():
                self._step()
        except BaseException:
            self._abandon()
            raise
        finally:
            self._close()

    def _register(self) -> None:
        assert self.proc.stdout is not None and self.proc.stderr is not None
        for pipe, write in (
            (self.proc.stdout, self.sink.write_stdout),
            (self.proc.stderr, self.sink.write),
        ):
            self.selector.register(pipe, selectors.EVENT_READ, functools.partial(self._read, write))
            self.outputs.add(pipe.fileno())
        if self.proc.stdin is not None:
            os.set_blocking(self.proc.stdin.fileno(), False)
            self.selector.register(self.proc.stdin, selectors.EVENT_WRITE, self._feed)
        self.pidfd = _pidfd_open(self.proc.pid)
        if self.pidfd is not None:
            self.selector.register(self.pidfd, selectors.EVENT_READ, self._on_exit)

    def _step(self) -> None:
        for key, _events in self.selector.select(self._wait()):
            if key.fd in self.outputs:
                key.data(key.fd)
            else:
                key.data()
        if self.pidfd is None and self.proc.returncode is None:
            self._on_exit()  # no pidfd on this system: poll
        self._check_clocks()

    def _finished(self) -> bool:
        if self.settled_at is None:
            return False
        return not self.outputs or time.monotonic() >= self.settled_at + DRAIN_AFTER_EXIT

    def _wait(self) -> float | None:
        now = time.monotonic()
        wakes = []
        if not self.timed_out:
            wakes.append(self.deadline)
        elif not self.killed:
            wakes.extend([self.kill_at or now, now + POLL_INTERVAL])
        if self.settled_at is not None:
            wakes.append(self.settled_at + DRAIN_AFTER_EXIT)
        if self.proc.returncode is None and self.pidfd is None:
            wakes.append(now + POLL_INTERVAL)
        if not wakes:
            return None
        # Capped because select() rejects an infinite or huge timeout (timeout=inf is allowed).
        return min(max(min(wakes) - now, 0.0), MAX_WAIT)

    # -- events

    def _read(self, write: Callable[[bytes], None], fd: int) -> None:
        try:
            chunk = os.read(fd, READ_CHUNK)
        except BlockingIOError:
            return
        if chunk:
            write(chunk)
        else:
            self.selector.unregister(fd)
            self.outputs.discard(fd)

    def _feed(self) -> None:
        assert self.proc.stdin is not None
        try:
            written = os.write(self.proc.stdin.fileno(), self.stdin_data[:STDIN_CHUNK])
        except BlockingIOError:
            return
        except BrokenPipeError:  # the task stopped reading: what it did not take is dropped
            written = len(self.stdin_data)
        self.stdin_data = self.stdin_data[written:]
        if not self.stdin_data:
            self._close_stdin()

    def _on_exit(self) -> None:
        if self.proc.poll() is None:
            return
        if self.pidfd is not None:
            self.selector.unregister(self.pidfd)
            os.close(self.pidfd)
            self.pidfd = None
        self._close_stdin()
        if not self.timed_out and self.settled_at is None:
            self.settled_at = time.monotonic()

    def _check_clocks(self) -> None:
        now = time.monotonic()
        if not self.timed_out and self.proc.returncode is None and now >= self.deadline:
            self.timed_out = True
            self.kill_at = now + self.kill_grace
            self._signal_group(signal.SIGTERM)
        if self.timed_out and not self.killed:
            if self.kill_at is not None and now >= self.kill_at:
                self._signal_group(signal.SIGKILL)
                self.killed = True
            elif self._group_gone(now):
                self.killed = True  # nothing left to kill
        if self.killed and self.settled_at is None and self.proc.returncode is not None:
            self.settled_at = now

    def _group_gone(self, now: float) -> bool:
        # While the leader lives the group does; after that, /proc is scanned at most once
        # per POLL_INTERVAL, however fast a surviving member writes output.
        if self.proc.returncode is None or now < self.next_group_check:
            return False
        self.next_group_check = now + POLL_INTERVAL
        return not _group_alive(self.pgid)

    # -- cleanup

    def _signal_group(self, sig: signal.Signals) -> None:
        # No such group: it is already empty (or, defensively, the child never became a group
        # leader). PermissionError: a member changed its credentials (setuid); nothing more can
        # be done about it from here.
        try:
            os.killpg(self.pgid, sig)
        except ProcessLookupError:
            if self.proc.returncode is None:  # not a group leader after all: the child alone
                self.proc.send_signal(sig)
        except PermissionError:
            pass

    def _abandon(self) -> None:
        """Interrupted (Ctrl-C in `run-now`): the task must not outlive us as an orphan."""
        try:
            self._signal_group(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=min(self.kill_grace, 2.0))
        finally:
            self._signal_group(signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=1.0)

    def _close_stdin(self) -> None:
        if self.proc.stdin is None or self.proc.stdin.closed:
            return
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(self.proc.stdin)
        with contextlib.suppress(OSError):
            self.proc.stdin.close()

    def _close(self) -> None:
        self._close_stdin()
        self.selector.close()
        if self.pidfd is not None:
            os.close(self.pidfd)
        for pipe in (self.proc.stdout, self.proc.stderr):
            if pipe is not None:
                pipe.close()
        if self.proc.returncode is None:  # only after an interruption; do not leave a zombie
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=1.0)


def _pidfd_open(pid: int) -> int | None:
    """A descriptor that polls readable when `pid` exits: waiting without a polling loop."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        return None
    try:
        fd: int = pidfd_open(pid)
    except OSError:  # kernel older than 5.3, or seccomp forbids it
        return None
    return fd


def _group_alive(pgid: int) -> bool:
    """Whether any non-zombie process is left in the group.

    `killpg(pgid, 0)` alone also counts zombies, and orphans whose reaper never reaps them
    (a container whose PID 1 is not an init) would make every timeout wait the full grace.
    """
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    proc = Path("/proc")
    if not proc.is_dir():
        return True
    return any(state != "Z" for state in _group_states(proc, pgid))


def _group_states(proc: Path, pgid: int) -> Iterator[str]:
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:  # exited while we looked
            continue
        # The command name is in parentheses and may contain spaces: parse after the last ")".
        fields = stat[stat.rfind(")") + 2 :].split()
        if len(fields) > 2 and fields[2] == str(pgid):
            yield fields[0]
