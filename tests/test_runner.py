"""run_process with real subprocesses, and clean_output."""

from __future__ import annotations

import contextlib
import io
import os
import re
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from vaultsched.adapters.runner import (
    STDOUT_BYTES,
    TAIL_BYTES,
    ProcessResult,
    _Sink,
    hold,
    run_process,
)
from vaultsched.core.output import clean_output
from vaultsched.core.redact import redactor_for

BASE_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C"}


def run(
    command: str | list[str], cwd: Path, *, log_path: Path | None = None, **kwargs: Any
) -> ProcessResult:
    kwargs.setdefault("env", BASE_ENV)
    kwargs.setdefault("stdin", None)
    kwargs.setdefault("timeout", 10.0)
    if log_path is None:
        return run_process(command, cwd=cwd, log=None, **kwargs)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab", buffering=0) as log:
        return run_process(command, cwd=cwd, log=log, **kwargs)


def timed(command: str | list[str], cwd: Path, **kwargs: Any) -> tuple[ProcessResult, float]:
    start = time.monotonic()
    result = run(command, cwd, **kwargs)
    return result, time.monotonic() - start


def alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie nobody reaped (a container's PID 1 may not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


def dies_soon(pid: int) -> bool:
    """A killed process finishes dying asynchronously: allow it a moment."""
    deadline = time.monotonic() + 1.0
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


@pytest.fixture
def leftovers() -> Iterator[list[int]]:
    """Pids of background children a test deliberately leaves running; killed afterwards."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


# -- commands, exit codes, environment -------------------------------------------------------


def test_shell_string_runs_with_sh_and_reports_exit_code(tmp_path: Path) -> None:
    result = run("echo out; echo err >&2; exit 3", tmp_path)
    assert result.exit_code == 3
    assert result.signal is None
    assert not result.timed_out
    assert result.error == ""
    assert result.tail == b"out\nerr\n"
    assert result.output_bytes == 8
    assert result.pid is not None


def test_argv_list_is_executed_without_a_shell(tmp_path: Path) -> None:
    result = run(["printf", "%s|", "$HOME", "a b", "*"], tmp_path)
    assert result.exit_code == 0
    assert result.tail == b"$HOME|a b|*|"


def test_death_by_signal_has_no_exit_code(tmp_path: Path) -> None:
    result = run("kill -KILL $$", tmp_path)
    assert result.exit_code is None
    assert result.signal == signal.SIGKILL
    assert not result.timed_out


def test_missing_program_in_a_shell_string_is_exit_127_not_an_error(tmp_path: Path) -> None:
    result = run("no-such-program-xyz", tmp_path)
    assert result.exit_code == 127
    assert result.error == ""


def test_env_is_the_whole_environment_of_the_child(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VAULTSCHED_TEST_LEAK", "from-parent")
    env = {**BASE_ENV, "GREETING": "hello there"}
    result = run('echo "$GREETING|${VAULTSCHED_TEST_LEAK-unset}"', tmp_path, env=env)
    assert result.tail == b"hello there|unset\n"


def test_cwd_is_honoured(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    result = run(["pwd", "-P"], tmp_path / "sub")
    assert result.tail.decode().strip() == str((tmp_path / "sub").resolve())


def test_clock_is_injected(tmp_path: Path) -> None:
    ticks = iter([datetime(2030, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, 0, 0, 5, tzinfo=UTC)])
    result = run("true", tmp_path, now=lambda: next(ticks))
    assert result.finished_at - result.started_at == timedelta(seconds=5)


def test_on_start_receives_the_pid(tmp_path: Path) -> None:
    seen: list[int] = []
    result = run("echo $$", tmp_path, on_start=seen.append)
    assert seen == [result.pid]
    assert result.tail == f"{result.pid}\n".encode()


def test_an_interrupted_supervisor_does_not_orphan_the_task(tmp_path: Path) -> None:
    seen: list[int] = []

    def interrupt(pid: int) -> None:
        seen.append(pid)
        raise KeyboardInterrupt  # as Ctrl-C in `run-now` would, mid-run

    with pytest.raises(KeyboardInterrupt):
        run("sleep 30", tmp_path, on_start=interrupt, kill_grace=0.5)
    assert dies_soon(seen[0])


# -- stdin ---------------------------------------------------------------------------------------


def test_stdin_bytes_are_delivered_then_closed(tmp_path: Path) -> None:
    result = run("cat; echo END", tmp_path, stdin="héllo\n".encode())
    assert result.tail == "héllo\nEND\n".encode()


def test_large_stdin_and_large_output_do_not_deadlock(tmp_path: Path) -> None:
    data = os.urandom(3 * 1024 * 1024)
    result = run(["cat"], tmp_path, stdin=data, timeout=10)
    assert result.exit_code == 0
    assert result.output_bytes == len(data)
    assert result.tail == data[-TAIL_BYTES:]


def test_stdin_the_task_never_reads_is_dropped_quietly(tmp_path: Path) -> None:
    result, elapsed = timed("exit 0", tmp_path, stdin=b"x" * (2 * 1024 * 1024))
    assert result.exit_code == 0
    assert elapsed < 3


def test_stdin_none_is_dev_null_even_when_ours_is_an_open_pipe(tmp_path: Path) -> None:
    # Our own stdin is a pipe nobody writes to or closes, like a terminal nobody types in:
    # a task that inherited it would hang in `cat` until the timeout.
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from vaultsched.adapters.runner import run_process\n"
        "r = run_process('cat; readlink /proc/self/fd/0', cwd=Path(sys.argv[1]),"
        " env=dict(os.environ), stdin=None, timeout=5, log=None)\n"
        "print(r.exit_code, r.timed_out, r.tail.decode().strip())\n"
    )
    command = [sys.executable, "-c", script, str(tmp_path)]
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        start = time.monotonic()
        out = proc.stdout.read()  # until that process exits; its stdin stays open meanwhile
        elapsed = time.monotonic() - start
        proc.stdin.close()
    assert out.decode().split() == ["0", "False", "/dev/null"]
    assert elapsed < 4


# -- could not start -------------------------------------------------------------------------------


def test_missing_cwd_is_an_error_result(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "run.log"
    missing = tmp_path / "nope"
    result = run("true", missing, log_path=log)
    assert result.error == f"cwd does not exist: {missing}"
    assert result.exit_code is None
    assert result.pid is None
    assert result.tail == b""
    assert "cwd does not exist" in log.read_text()


def test_missing_executable_in_a_list_is_an_error_result(tmp_path: Path) -> None:
    result = run(["no-such-program-xyz", "--flag"], tmp_path)
    assert result.error == "command not found: no-such-program-xyz"
    assert result.exit_code is None
    assert result.signal is None


def test_non_executable_file_in_a_list_is_permission_denied(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    result = run(["./script.sh"], tmp_path)
    assert result.error == "permission denied: ./script.sh"
    assert result.exit_code is None


# -- timeout -------------------------------------------------------------------------------------


def test_timeout_kills_the_whole_group_including_a_forked_grandchild(tmp_path: Path) -> None:
    result, elapsed = timed("sleep 30 & echo $!; sleep 30", tmp_path, timeout=0.5, kill_grace=5)
    grandchild = int(result.tail.split()[0])
    assert result.timed_out
    assert result.signal == signal.SIGTERM
    assert result.exit_code is None
    # Everything died on SIGTERM, so the grace period is not waited out.
    assert elapsed < 2.5
    assert dies_soon(grandchild)


def test_kill_grace_escalates_to_sigkill_for_the_group(tmp_path: Path) -> None:
    script = "trap '' TERM; sleep 30 & echo $!; sleep 30"  # sleeps inherit the ignored TERM
    result, elapsed = timed(script, tmp_path, timeout=0.3, kill_grace=0.5)
    grandchild = int(result.tail.split()[0])
    assert result.timed_out
    assert result.signal == signal.SIGKILL
    assert 0.75 < elapsed < 3
    assert dies_soon(grandchild)


def test_a_group_member_ignoring_term_is_killed_after_the_leader_exits(tmp_path: Path) -> None:
    script = "(trap '' TERM; sleep 30) & echo $!; sleep 30"
    result, elapsed = timed(script, tmp_path, timeout=0.3, kill_grace=0.5)
    assert result.timed_out
    assert result.signal == signal.SIGTERM  # the leader itself obeyed
    assert elapsed >= 0.75  # but the survivor was waited for, then killed
    assert dies_soon(int(result.tail.split()[0]))


# -- output --------------------------------------------------------------------------------------


def test_fifty_megabytes_of_output_keeps_memory_bounded_and_the_tail_right(
    tmp_path: Path,
) -> None:
    size, line = 50_000_000, b"0123456789\n"
    log = tmp_path / "big.log"
    tracemalloc.start()
    try:
        result = run(f"yes 0123456789 | head -c {size}; printf END", tmp_path, log_path=log)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    start = size + 3 - TAIL_BYTES
    expected = bytes(line[i % len(line)] for i in range(start, size)) + b"END"
    assert result.exit_code == 0
    assert result.output_bytes == size + 3
    assert result.tail == expected
    assert log.stat().st_size == size + 3
    assert len(result.stdout) == STDOUT_BYTES and result.stdout_cut
    assert result.stdout.startswith(line)
    # The tail and the first megabyte of stdout (and its copy into the result) are all held.
    assert peak < 2 * STDOUT_BYTES + 1_000_000, f"peak Python allocations {peak} bytes"


def test_stdout_is_kept_apart_from_stderr_and_both_reach_the_log(tmp_path: Path) -> None:
    log = tmp_path / "run.log"
    result = run("echo out1; echo err1 >&2; sleep 0.1; echo out2", tmp_path, log_path=log)
    assert result.stdout == b"out1\nout2\n" and not result.stdout_cut
    assert sorted(result.tail.splitlines()) == [b"err1", b"out1", b"out2"]
    assert sorted(log.read_bytes().splitlines()) == [b"err1", b"out1", b"out2"]


def test_background_child_holding_the_pipe_does_not_block_the_return(
    tmp_path: Path, leftovers: list[int]
) -> None:
    result, elapsed = timed("sleep 30 & echo $!", tmp_path, timeout=20)
    child = int(result.tail.split()[0])
    leftovers.append(child)
    assert result.exit_code == 0
    assert not result.timed_out
    assert elapsed < 2.5  # about one second of draining after the shell exited
    assert alive(child)  # not a timeout: such children are left alone


def test_output_after_exit_is_still_drained(tmp_path: Path) -> None:
    result = run("(sleep 0.3; echo late) & echo early", tmp_path)
    assert result.tail == b"early\nlate\n"


def test_echo_and_log_receive_the_whole_stream(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "task" / "run.log"
    echo = io.BytesIO()
    result = run("seq 1 40000; echo done >&2", tmp_path, log_path=log, echo=echo)
    expected = "".join(f"{i}\n" for i in range(1, 40001)).encode() + b"done\n"
    assert len(expected) > TAIL_BYTES
    assert echo.getvalue() == expected
    assert log.read_bytes() == expected
    assert result.output_bytes == len(expected)
    assert result.tail == expected[-TAIL_BYTES:]


def test_parallel_runs_in_threads_do_not_mix(tmp_path: Path) -> None:
    results: dict[int, ProcessResult] = {}

    def worker(n: int) -> None:
        results[n] = run(f"for i in 1 2 3; do echo {n}; sleep 0.05; done", tmp_path)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert {n: r.tail for n, r in results.items()} == {n: f"{n}\n".encode() * 3 for n in range(6)}


# -- clean_output --------------------------------------------------------------------------------


# -- a process started ahead of its time ------------------------------------------------------

# What a shell command can see of how it was started; its second line is a syntax error.
SELF_PORTRAIT = (
    'echo "$0|$#|${go-unset}|$(pwd)|$X|$LINENO"; ls -l /proc/$$/fd/0 | sed "s/.*-> //"; '
    "cat; echo $$\nif"
)


@pytest.mark.parametrize("stdin", [None, b"the body\n"])
def test_a_held_command_runs_on_release_exactly_as_the_plain_way(
    tmp_path: Path, stdin: bytes | None
) -> None:
    env = {**BASE_ENV, "X": "x value", "PWD": "/stale"}
    plain = run(SELF_PORTRAIT, tmp_path, env=env, stdin=stdin)
    held = hold(SELF_PORTRAIT, cwd=tmp_path, env=env, piped=stdin is not None)
    assert held is not None
    time.sleep(0.2)
    assert alive(held.proc.pid)  # waiting, having run nothing
    released = run(SELF_PORTRAIT, tmp_path, env=env, stdin=stdin, held=held)
    assert released.pid == held.proc.pid

    def seen(result: ProcessResult) -> tuple[int | None, str]:
        # The pipe's inode first, then the pid as a whole number: a pipe inode holding the
        # pid's digits made the two runs differ (found once in a busy `make test`).
        text = re.sub(r"pipe:\[\d+\]", "pipe", result.tail.decode())
        return result.exit_code, re.sub(rf"\b{result.pid}\b", "PID", text)

    assert seen(released) == seen(plain)
    exit_code, text = seen(released)
    assert exit_code == 2 and "2: Syntax error" in text  # the same line as the plain way
    assert f"/bin/sh|0|unset|{tmp_path}|x value|" in text
    assert ("the body" in text) == (stdin is not None)
    assert ("/dev/null" in text) == (stdin is None)


def test_a_process_s_pipes_are_unbuffered_and_its_missing_cwd_is_named(tmp_path: Path) -> None:
    # Read and written by descriptor: no buffered object, nor its tty and seek checks, each run.
    held = hold("true", cwd=tmp_path, env=BASE_ENV, piped=True)
    assert held is not None
    pipes = (held.proc.stdin, held.proc.stdout, held.proc.stderr)
    assert all(type(pipe) is io.FileIO for pipe in pipes)
    held.cancel()
    assert hold("true", cwd=tmp_path / "gone", env=BASE_ENV, piped=True) is None
    result = run_process(
        "true", cwd=tmp_path / "gone", env=BASE_ENV, stdin=None, timeout=5, log=None
    )
    assert result.error == f"cwd does not exist: {tmp_path / 'gone'}"


def test_a_held_command_called_off_runs_nothing(tmp_path: Path) -> None:
    held = hold("touch ran", cwd=tmp_path, env=BASE_ENV, piped=False)
    assert held is not None
    held.cancel()
    assert held.proc.returncode == 125
    assert not (tmp_path / "ran").exists()
    held.cancel()  # twice is harmless


HOLDER = """
import os, sys
from pathlib import Path
from vaultsched.adapters.runner import hold
held = hold("touch ran", cwd=Path(sys.argv[1]), env={"PATH": os.environ["PATH"]}, piped=False)
print(held.proc.pid, flush=True)
os.kill(os.getpid(), 9)
"""


def test_a_held_command_runs_nothing_once_its_holder_is_killed(tmp_path: Path) -> None:
    """SIGKILL before the instant: the process that would have run finds its pipe closed."""
    holder = subprocess.run(
        [sys.executable, "-c", HOLDER, str(tmp_path)], capture_output=True, check=False
    )
    assert holder.returncode == -signal.SIGKILL
    assert dies_soon(int(holder.stdout))
    assert not (tmp_path / "ran").exists()


def test_clean_output_strips_ansi_sequences() -> None:
    raw = (
        b"\x1b[1;31mred\x1b[0m plain\n"
        b"\x1b]0;window title\x07\x1b]8;;https://x.test\x1b\\link\x1b]8;;\x1b\\\n"
        b"\x1b(Bcharset\x1b=keypad\x1b[?25lcursor\x1b[2K\n"
    )
    assert clean_output(raw) == "red plain\nlink\ncharsetkeypadcursor"


def test_clean_output_keeps_the_last_drawing_of_a_progress_bar() -> None:
    raw = b"start\r\n 10%\r 50%\r100%\ndone\r\n"
    assert clean_output(raw) == "start\n100%\ndone"


def test_clean_output_line_ending_in_a_carriage_return_keeps_its_text() -> None:
    assert clean_output(b"fetching 3/3\r") == "fetching 3/3"


def test_clean_output_replaces_invalid_utf8_and_drops_control_characters() -> None:
    raw = b"ok \xff\xfe bytes\x00\x07\x08 \tkept\x7f\xc2\x9b\n"
    assert clean_output(raw) == "ok \ufffd\ufffd bytes \tkept"


def test_clean_output_strips_trailing_blank_lines_only() -> None:
    assert clean_output(b"\nfirst\n\nlast\n\n  \n\n") == "\nfirst\n\nlast"


def test_clean_output_short_output_is_unchanged() -> None:
    text = "\n".join(f"line {i}" for i in range(20))
    assert clean_output(text.encode()) == text


def test_clean_output_keeps_the_last_lines_with_a_header_within_the_limit() -> None:
    raw = "".join(f"line {i}\n" for i in range(1, 31)).encode()
    lines = clean_output(raw).split("\n")
    assert len(lines) == 20
    assert lines[0] == "… (11 earlier lines not shown)"
    assert lines[1] == "line 12"
    assert lines[-1] == "line 30"


def test_clean_output_respects_max_chars() -> None:
    raw = "".join(f"{i:03d} " + "x" * 395 + "\n" for i in range(15)).encode()  # 400 per line
    out = clean_output(raw, max_chars=2000)
    lines = out.split("\n")
    assert len(out) <= 2000
    assert lines[0] == "… (11 earlier lines not shown)"
    assert [line[:3] for line in lines[1:]] == ["011", "012", "013", "014"]


def test_clean_output_one_huge_line_shows_its_end() -> None:
    raw = b"a" * 10_000 + b"END"
    out = clean_output(raw)
    assert len(out) <= 4000
    assert out.startswith("…a")
    assert out.endswith("aEND")


def test_clean_output_of_nothing_is_empty() -> None:
    assert clean_output(b"") == ""
    assert clean_output(b"\x1b[0m\n\n") == ""


def test_the_tail_is_never_cut_inside_a_secret() -> None:
    """The in-memory tail is trimmed as output comes; a secret split by that cut (and by two
    reads) is left out whole rather than kept in part where redaction cannot see it."""
    secret = b"k3y-Zp8Qw2Lx7Vn4"
    sink = _Sink(None, None, redactor_for({"API_KEY": secret.decode()}))
    sink.write(b"a" * (TAIL_BYTES + 100) + secret[:8])
    sink.write(secret[8:] + b"b" * (TAIL_BYTES - 11))  # trimmed 5 bytes into the secret
    tail = sink.tail()
    assert tail == b"b" * (TAIL_BYTES - 11)
    assert clean_output(tail, redact=sink.redact).endswith("b")
