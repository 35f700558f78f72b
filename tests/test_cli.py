"""The CLI on real temp vaults with real git: as a subprocess where the process is what a test
checks (a child's environment, stdin, signals, usage exit codes), in-process (`vs`) elsewhere."""

from __future__ import annotations

import json
import os
import random
import threading
import time
from datetime import UTC, datetime, timedelta
from itertools import islice
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import HOST, Cli, InProcess, git, make_vault, runs, write_note
from cronsim import CronSim
from schedule_cases import CASES

from vaultsched import __version__
from vaultsched.adapters.config import load_config
from vaultsched.adapters.ledger import Ledger, finish_record, new_run_id, start_record
from vaultsched.cli.app import main
from vaultsched.core import layout
from vaultsched.core.model import Run, Status, Trigger
from vaultsched.core.schedules import ScheduleError, parse_schedule

pytestmark = pytest.mark.integration

BEGIN, END = "%% vaultsched:runs:begin %%", "%% vaultsched:runs:end %%"


def task(command: str, *extra: str) -> str:
    lines = "".join(f"{e}\n" for e in extra)
    return f"---\ncommand: {command}\n{lines}---\n# Task\n\nMy notes.\n"


def settle(path: Path) -> None:
    """Pretend the note was saved long ago, so the 2 s edit guard does not hold writes back."""
    os.utime(path, (time.time() - 60, time.time() - 60))


def add_task(root: Path, rel: str, text: str, *, commit: bool = True) -> Path:
    path = write_note(root, rel, text)
    settle(path)
    if commit:
        git(root, "add", rel)
        git(root, "commit", "-qm", f"add {rel}")
    return path


def alive(pid: int) -> bool:
    """Running, not merely a zombie waiting for a parent (this container's init reaps none)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


def run_day(root: Path) -> str:
    """The day of the newest run: the digest it landed in, even if midnight has passed since."""
    newest = max(run.started_at for run in runs(root))
    # The vault's zone, not the machine's (the test process keeps the zone it started in).
    return newest.astimezone(load_config(root).timezone).date().isoformat()


# -- run-now -----------------------------------------------------------------------------------


def test_run_now_lands_everywhere_in_one_commit(cli: Cli) -> None:
    root = cli.root
    note = add_task(root, "Tasks/Hello.md", task('"echo hello; echo world >&2"'))
    before = note.read_bytes()
    head = git(root, "rev-parse", "HEAD").strip()

    result = cli("run-now", "Hello")

    assert result.code == 0, result.err
    assert result.out == "hello\nworld\n"  # streamed, stderr merged
    assert "success Tasks/Hello (exit 0" in result.err
    text = note.read_bytes()
    assert text.startswith(before)  # the user's bytes are an exact prefix
    block = text[len(before) :].decode()
    assert BEGIN in block and END in block and "[!success]" in block and "hello" in block
    digest = (root / "Digests" / f"{run_day(root)}.md").read_text()
    assert "[[Tasks/Hello|Hello]]" in digest
    (ledger,) = (root / ".vaultsched/runs").glob("*/*.jsonl")
    assert ledger.name == f"{HOST}.jsonl"
    records = [json.loads(line) for line in ledger.read_text().splitlines()]
    assert [r["type"] for r in records] == ["start", "finish"]
    assert records[1]["status"] == "success" and records[1]["exit_code"] == 0
    log = root / records[1]["log"]
    assert log.read_text() == "hello\nworld\n"
    assert git(root, "check-ignore", records[1]["log"]).strip() == records[1]["log"]
    # Exactly one commit, by vaultsched, with exactly the three files.
    assert git(root, "rev-list", "--count", f"{head}..HEAD").strip() == "1"
    subject = git(root, "log", "-1", "--format=%an|%s").strip()
    assert subject == "vaultsched|vaultsched: success Tasks/Hello"
    files = git(root, "show", "--name-only", "--format=", "HEAD").splitlines()
    assert sorted(f for f in files if f) == sorted(
        ["Tasks/Hello.md", f"Digests/{run_day(root)}.md", str(ledger.relative_to(root))]
    )
    assert git(root, "status", "--porcelain") == ""


def test_run_now_failure_exit_code_and_attention(cli: Cli) -> None:
    add_task(cli.root, "Tasks/Fail.md", task('"echo bad; exit 3"'))
    result = cli("run-now", "Tasks/Fail.md")
    assert result.code == 1
    assert "failed Tasks/Fail (exit 3" in result.err
    digest = (cli.root / "Digests" / f"{run_day(cli.root)}.md").read_text()
    assert "Needs attention" in digest
    assert 'vaultsched run-now "Tasks/Fail"' in digest
    assert "[!failure]" in (cli.root / "Tasks/Fail.md").read_text()


def test_run_now_argv_list_cwd_env_and_stdin_body(cli: Cli) -> None:
    root = cli.root
    (root / "work").mkdir()
    script = (
        "import os,sys; print(os.getcwd()); print(os.environ['GREETING']); print(sys.stdin.read())"
    )
    add_task(
        root,
        "Tasks/Agent.md",
        f'---\ncommand: [python3, -c, "{script}"]\ncwd: work\nenv:\n  GREETING: hi there\n'
        "stdin: body\n---\nSummarise my day.\n",
    )
    first = cli("run-now", "Agent")
    assert first.code == 0, first.err
    assert first.out.splitlines()[:3] == [
        str((root / "work").resolve()),
        "hi there",
        "Summarise my day.",
    ]
    # The run block itself is never fed back in on the next run.
    settle(root / "Tasks/Agent.md")
    second = cli("run-now", "Agent")
    assert second.out == first.out


def test_run_now_timeout_kills_the_group(cli: Cli, tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    add_task(
        cli.root, "Tasks/Slow.md", task(f'"sleep 60 & echo $! > {pidfile}; wait"', "timeout: 1s")
    )
    result = cli("run-now", "Slow")
    assert result.code == 1
    assert "timeout Tasks/Slow" in result.err
    assert not alive(int(pidfile.read_text()))


def test_run_now_cannot_start(vs: InProcess) -> None:
    add_task(vs.root, "Tasks/Nowhere.md", task("[/no/such/program]"))
    result = vs("run-now", "Nowhere")
    assert result.code == 1
    assert "error Tasks/Nowhere" in result.err
    assert "[!failure]" in (vs.root / "Tasks/Nowhere.md").read_text()


def test_output_that_looks_like_markup_cannot_break_the_note(vs: InProcess) -> None:
    nasty = "\n".join(["```", "````", "---", "%%", END, BEGIN, "<<<<<<< HEAD", "[[Link]]"])
    (vs.root / "nasty.txt").write_text(nasty + "\n")
    note = add_task(vs.root, "Tasks/Nasty.md", task('"cat nasty.txt"'))
    for _ in range(2):
        assert vs("run-now", "Nasty").code == 0
        settle(note)
    text = note.read_text()
    assert [line for line in text.splitlines() if line.strip() == BEGIN] == [BEGIN]
    assert [line for line in text.splitlines() if line.strip() == END] == [END]
    assert text.count("[!success]") == 2


@pytest.mark.parametrize(
    "original",
    [
        b"---\r\n# comment\r\nschedule: '@daily'   # trailing\r\n"
        b"command: echo hi\r\n---\r\nCRLF body\r\n",
        b"---\ncommand: echo hi\n---\nno trailing newline",
        '---\ncommand: echo zażółć 🎉\ntitle: "ünï"\n---\n# Ünïcödé 🎉\n'.encode(),
        b"---\ncommand: echo hi\n---\nI mention %% vaultsched:runs:begin %% inline.\n\n"
        b"```\n%% vaultsched:runs:begin %%\n```\n",
        b"---\ncommand: echo hi\n---\nbody\n\n"
        b"%% vaultsched:runs:begin %%\nold block, end marker deleted\n",
        b"---\ncommand: echo hi\n---\ntrailing spaces   \n\n\n",
    ],
    ids=[
        "crlf-comments",
        "no-final-newline",
        "unicode",
        "mentions-marker",
        "deleted-end",
        "whitespace",
    ],
)
def test_tricky_notes_are_preserved_byte_for_byte(vs: InProcess, original: bytes) -> None:
    note = vs.root / "Tasks/Tricky.md"
    note.parent.mkdir(parents=True, exist_ok=True)
    note.write_bytes(original)
    settle(note)
    assert vs("run-now", "Tricky").code == 0
    first = note.read_bytes()
    assert first.startswith(original)
    settle(note)
    assert vs("run-now", "Tricky").code == 0
    second = note.read_bytes()
    assert second.startswith(original)
    assert second.count(b"[!success]") == 2
    if b"\r\n" in original:
        assert b"\n" not in second.replace(b"\r\n", b"")


def test_a_note_being_edited_is_held_back_until_quiet(cli: Cli) -> None:
    note = add_task(cli.root, "Tasks/Busy.md", task("'true'"))
    note.write_text(note.read_text() + "typed just now\n")
    edited = note.stat().st_mtime
    assert cli("run-now", "Busy").code == 0
    assert "typed just now" in note.read_text()
    # The block write waited for 2 s of quiet after the person's save.
    assert note.stat().st_mtime - edited >= 2.0


def test_users_unrelated_changes_stay_uncommitted(vs: InProcess) -> None:
    root = vs.root
    add_task(root, "Tasks/T.md", task("'true'"))
    add_task(root, "Journal.md", "old\n")
    write_note(root, "Journal.md", "edited, not committed\n")
    write_note(root, "Scratch.md", "untracked\n")
    write_note(root, "Staged.md", "staged\n")
    git(root, "add", "Staged.md")
    assert vs("run-now", "T").code == 0
    status = sorted(git(root, "status", "--porcelain").splitlines())
    assert status == sorted(["A  Staged.md", " M Journal.md", "?? Scratch.md"])


def test_vault_without_git_runs_with_one_warning(tmp_path: Path) -> None:
    root = make_vault(tmp_path / "plain", repo=False)
    add_task(root, "Tasks/T.md", task("echo ok"), commit=False)
    result = Cli(root)("run-now", "T")
    assert result.code == 0
    assert result.err.count("not a git repository") == 1
    assert "[!success]" in (root / "Tasks/T.md").read_text()


def test_overlap_skip_against_a_running_instance(cli: Cli, tmp_path: Path) -> None:
    import subprocess
    import sys

    flag, release = tmp_path / "started", tmp_path / "release"
    # Runs until released, however long the second run-now takes to reach its overlap check.
    waits = f"touch {flag}; while [ ! -e {release} ]; do sleep 0.05; done"
    add_task(cli.root, "Tasks/Long.md", task(f'"{waits}"'))
    first = subprocess.Popen(
        [sys.executable, "-m", "vaultsched", "--vault", str(cli.root), "run-now", "Long"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not flag.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        # Were overlap broken, the second run would wait for a release: it comes, late.
        late = threading.Timer(60, release.touch)
        late.start()
        second = cli("run-now", "Long")
        late.cancel()
    finally:
        release.touch()
        assert first.wait(timeout=60) == 0
    assert second.code == 1
    assert "skipped Tasks/Long" in second.err


# -- listing, next, history --------------------------------------------------------------------


def test_list_json_shape(vs: InProcess) -> None:
    add_task(vs.root, "Tasks/A.md", task("'true'", "schedule: '*/5 * * * *'"))
    add_task(vs.root, "Tasks/Manual.md", task("'true'"))
    add_task(vs.root, "Tasks/Off.md", task("'true'", "schedule: '@daily'", "enabled: false"))
    add_task(vs.root, "Tasks/Broken.md", task("'true'", "schedule: */5 * * * *"))
    assert vs("run-now", "Manual").code == 0
    rows = {r["task"]: r for r in json.loads(vs("list", "--json").out)}
    assert set(rows) == {"Tasks/A", "Tasks/Manual", "Tasks/Off", "Tasks/Broken"}
    keys = {
        "task",
        "path",
        "schedule",
        "enabled",
        "trusted",
        "valid",
        "errors",
        "next_run",
        "last_run",
        "last_status",
    }
    assert all(keys <= set(r) for r in rows.values())
    assert rows["Tasks/A"]["schedule"] == ["*/5 * * * *"]
    assert datetime.fromisoformat(rows["Tasks/A"]["next_run"]).minute % 5 == 0
    assert rows["Tasks/Manual"]["last_status"] == "success"
    assert rows["Tasks/Manual"]["next_run"] is None
    assert rows["Tasks/Off"]["enabled"] is False and rows["Tasks/Off"]["next_run"] is None
    assert rows["Tasks/Broken"]["valid"] is False
    assert "quote it" in rows["Tasks/Broken"]["errors"][0]
    # Invalid: neither enabled nor disabled, trusted nor not (nothing in its note counts yet).
    assert rows["Tasks/Broken"]["enabled"] is None and rows["Tasks/Broken"]["trusted"] is None
    human = vs("list")
    assert human.code == 0 and "Tasks/A" in human.out and "INVALID" in human.out
    (broken,) = [line.split() for line in human.out.splitlines() if "Tasks/Broken" in line]
    assert broken[:7] == ["Tasks/Broken", "-", "-", "-", "-", "-", "INVALID:"]  # not "manual"


@pytest.mark.parametrize(("zone", "schedule", "start", "expected"), CASES)
def test_next_is_the_schedule_oracle(
    vs: InProcess, zone: str, schedule: str, start: str, expected: list[str]
) -> None:
    add_task(vs.root, "Tasks/N.md", task("'true'", f"schedule: '{schedule}'", f"timezone: {zone}"))
    result = vs("next", "N", "--from", start, "--count", str(len(expected)), "--json")
    assert result.code == 0, result.err
    assert [f["at"] for f in json.loads(result.out)] == expected
    assert {f["task"] for f in json.loads(result.out)} == {"Tasks/N"}


def test_next_never_fires_is_a_clear_message_not_a_hang(cli: Cli) -> None:
    add_task(cli.root, "Tasks/Never.md", task("'true'", "schedule: '0 0 31 2 *'"))
    result = cli("next", "Never", "--json", timeout=20)
    assert result.code == 1
    assert "never" in result.err and len(result.err.strip().splitlines()) == 1


def test_next_manual_and_all_tasks(vs: InProcess) -> None:
    add_task(vs.root, "Tasks/Manual.md", task("'true'"))
    add_task(vs.root, "Tasks/A.md", task("'true'", "schedule: 'every 1h'"))
    add_task(vs.root, "Tasks/B.md", task("'true'", "schedule: 'every 30m'"))
    assert vs("next", "Manual").code == 1
    fires = json.loads(
        vs("next", "--from", "2026-01-01T00:00:00+00:00", "--count", "3", "--json").out
    )
    assert fires == [
        {"task": "Tasks/B", "at": "2026-01-01T00:30:00+00:00"},
        {"task": "Tasks/A", "at": "2026-01-01T01:00:00+00:00"},
        {"task": "Tasks/B", "at": "2026-01-01T01:00:00+00:00"},
    ]


def test_history_json(vs: InProcess) -> None:
    add_task(vs.root, "Tasks/H.md", task('"exit ${CODE:-0}"'))
    for _ in range(3):
        vs("run-now", "H")
        settle(vs.root / "Tasks/H.md")
    rows = json.loads(vs("history", "H", "--json").out)
    assert len(rows) == 3
    assert [r["started_at"] for r in rows] == sorted(r["started_at"] for r in rows)
    keys = {
        "run_id",
        "task",
        "status",
        "exit_code",
        "trigger",
        "scheduled_for",
        "started_at",
        "finished_at",
        "duration_s",
        "host",
        "attempt",
    }
    assert keys <= set(rows[0])
    assert rows[0]["trigger"] == "manual" and rows[0]["host"] == HOST and rows[0]["attempt"] == 1
    assert len(json.loads(vs("history", "H", "-n", "2", "--json").out)) == 2
    assert "success" in vs("history", "H").out


# -- validate ----------------------------------------------------------------------------------


def test_validate_reports_every_problem_and_exits_1(vs: InProcess) -> None:
    add_task(vs.root, "Tasks/Good.md", task("'true'", "schedule: '@daily'"))
    add_task(vs.root, "Tasks/Alias.md", task("'true'", "schedule: */5 * * * *"))
    add_task(
        vs.root,
        "Tasks/Types.md",
        task("'true'", "retries: lots", "timezone: Nowhere/City", "comand: x"),
    )
    add_task(vs.root, "Tasks/Never.md", task("'true'", "schedule: '0 0 31 2 *'"))
    result = vs("validate")
    assert result.code == 1
    lines = result.out.splitlines()
    assert any(line.startswith('Tasks/Alias.md:3: schedule starts with "*"') for line in lines)
    assert "Tasks/Types.md:3: retries: must be a whole number >= 0, got 'lots'" in lines
    assert any(line.startswith("Tasks/Types.md:4: timezone: unknown timezone") for line in lines)
    assert "Tasks/Types.md:5: warning: unknown key 'comand': did you mean 'command'?" in lines
    assert any(line.startswith("Tasks/Never.md:3: schedule:") and "never" in line for line in lines)
    assert not any("Good" in line for line in lines)
    assert vs("validate", str(vs.root / "Tasks/Good.md")).code == 0
    one = vs("validate", "Tasks/Good.md")
    assert one.code == 0 and one.err == "1 task note checked: 0 errors, 0 warnings\n"


def test_validate_staged_checks_the_index_not_the_disk(vs: InProcess) -> None:
    root = vs.root
    write_note(root, "Tasks/S.md", task("'true'", "schedule: */5 * * * *"))
    git(root, "add", "Tasks/S.md")
    write_note(root, "Tasks/S.md", task("'true'", "schedule: '@daily'"))  # fixed on disk only
    result = vs("validate", "--staged")
    assert result.code == 1 and result.out.startswith("Tasks/S.md:3:")


def test_validate_staged_reads_odd_names_and_skips_links_submodules_and_deletions(
    vs: InProcess,
) -> None:
    root, broken = vs.root, task("'true'", "schedule: */5 * * * *")
    write_note(root, "Tasks/Gone.md", broken)
    git(root, "add", "Tasks/Gone.md")
    git(root, "commit", "-qm", "gone", "--no-verify")
    git(root, "rm", "-q", "--cached", "Tasks/Gone.md")  # a deletion staged: nothing to check
    for name in ("Tasks/two words\nlines.md", os.fsdecode(b"Tasks/caf\xe9.md")):
        write_note(root, name, broken)
    (root / "Tasks/Link.md").symlink_to("Gone.md")  # links and submodules are no notes
    git(root, "add", "-A", "Tasks")
    head = git(root, "rev-parse", "HEAD").strip()
    git(root, "update-index", "--add", "--cacheinfo", f"160000,{head},Tasks/Module.md")
    result = vs("validate", "--staged")
    assert result.code == 1, result.err
    assert result.out.count(":3: schedule") == 2, result.out
    assert "Tasks/two words\nlines.md:3:" in result.out
    assert "Tasks/caf\ufffd.md:3:" in result.out
    assert "Gone" not in result.out + result.err and "Link" not in result.out + result.err
    assert "Module" not in result.out + result.err


def test_validate_staged_in_a_repository_with_no_commit_yet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_vault(tmp_path / "new", repo=False, config='timezone = "UTC"\n')
    git(root, "init", "-q")
    write_note(root, "Tasks/S.md", task("'true'", "schedule: */5 * * * *"))
    git(root, "add", "-A")
    result = InProcess(root, capsys)("validate", "--staged")
    assert result.code == 1 and result.out.startswith("Tasks/S.md:3:"), result.err


# -- editing commands --------------------------------------------------------------------------


def test_pause_and_resume_edit_one_line_and_commit(vs: InProcess) -> None:
    original = (
        "---\n# keep me\nschedule: '@daily'  # daily\ncommand: echo hi\ntags: [x]\n---\nbody\n"
    )
    note = add_task(vs.root, "Tasks/P.md", original)
    assert vs("pause", "P").code == 0
    assert note.read_text() == original.replace("tags: [x]\n", "tags: [x]\nenabled: false\n")
    assert (
        git(vs.root, "log", "-1", "--format=%an|%s").strip()
        == "vaultsched|vaultsched: pause Tasks/P"
    )
    assert json.loads(vs("list", "--json").out)[0]["enabled"] is False
    settle(note)
    assert vs("resume", "P").code == 0
    assert note.read_text() == original.replace("tags: [x]\n", "tags: [x]\nenabled: true\n")
    assert "already enabled" in vs("resume", "P").out


def test_init_is_idempotent_and_never_overwrites(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "new vault"
    vs = InProcess(target, capsys)
    result = vs("init", str(target))
    assert result.code == 0, result.err
    for rel in [
        ".vaultsched/config.toml",
        ".vaultsched/.gitignore",
        ".vaultsched/.gitattributes",
        "Tasks/Hello vaultsched.md",
        "Tasks.base",
    ]:
        assert (target / rel).is_file(), rel
    assert "*.jsonl merge=union" in (target / ".vaultsched/.gitattributes").read_text()
    assert load_config(target).properties  # a new vault keeps run state as properties
    assert git(target, "log", "--format=%an|%s").strip() == "vaultsched|vaultsched: init"
    (target / ".vaultsched/config.toml").write_text('timezone = "UTC"\n')
    again = vs("init", str(target))
    assert again.code == 0 and "nothing to do" in again.out
    assert (target / ".vaultsched/config.toml").read_text() == 'timezone = "UTC"\n'
    assert vs("validate").code == 0
    assert vs("run-now", "Hello vaultsched").code == 0
    assert not load_config(target).properties  # the person's config said nothing: off


def test_init_refuses_a_vault_inside_a_vault(cli: Cli) -> None:
    inner = cli.root / "Projects" / "sub"
    result = cli("init", str(inner))
    assert result.code == 2
    assert f"inside the vault {cli.root}" in result.err
    assert not inner.exists()  # nothing made: the outer vault never sees a second example task
    assert cli("init", str(cli.root)).code == 0  # the vault itself: idempotent as ever


def test_new_creates_a_valid_task(vs: InProcess) -> None:
    result = vs("new", "Backup", "--schedule", "*/5 * * * *", "--command", "echo 'it''s' \"ok\"")
    assert result.code == 0, result.err
    rows = json.loads(vs("list", "--json").out)
    assert rows[0]["task"] == "Tasks/Backup" and rows[0]["schedule"] == ["*/5 * * * *"]
    assert vs("run-now", "Backup").out == "its ok\n"
    assert vs("new", "Backup", "--command", "x").code == 1
    bad = vs("new", "Other", "--schedule", "0 0 31 2 *", "--command", "x")
    assert bad.code == 2 and "never" in bad.err


def test_digest_rebuild_from_the_ledger_alone(vs: InProcess) -> None:
    add_task(vs.root, "Tasks/A.md", task("'true'"))
    add_task(vs.root, "Tasks/B.md", task("'false'"))
    vs("run-now", "A")
    vs("run-now", "B")
    day = run_day(vs.root)
    digest = vs.root / "Digests" / f"{day}.md"
    content = digest.read_text()
    digest.unlink()
    result = vs("digest", day)
    assert result.code == 0
    assert result.out.strip() == str(digest.resolve())
    assert digest.read_text() == content
    assert vs("digest").out.strip() == str(digest.resolve())


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["run-now", "Missing"], "unknown task 'Missing'"),
        (["history"], "Missing argument"),
        (["next", "--count", "0"], "--count"),
        (["frobnicate"], "No such command"),
        (["digest", "yesterday"], "not a date"),
    ],
)
def test_usage_errors_are_one_line_exit_2(cli: Cli, args: list[str], needle: str) -> None:
    result = cli(*args)
    assert result.code == 2
    assert needle in result.err
    assert len(result.err.strip().splitlines()) == 1
    assert "Traceback" not in result.err


def test_not_a_vault(tmp_path: Path) -> None:
    result = Cli(tmp_path)("list")
    assert result.code == 2
    assert result.err.startswith("vaultsched: not a vault:")


def test_version_alone(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"vaultsched {__version__}\n"


def test_every_command_works_from_a_folder_inside_the_vault(
    cli: Cli, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    add_task(cli.root, "Tasks/Home/Backup.md", task("'echo saved'", "schedule: '@daily'"))
    monkeypatch.chdir(cli.root / "Tasks")  # no --vault, no $VAULTSCHED_VAULT

    def run(*args: str) -> str:
        assert main(list(args)) == 0
        return capsys.readouterr().out

    assert "saved" in run("run-now", "Home/Backup.md")  # a path from this folder
    assert [r["status"] for r in json.loads(run("history", "Backup", "--json"))] == ["success"]
    assert [r["task"] for r in json.loads(run("list", "--json"))] == ["Tasks/Home/Backup"]
    run("validate", "Home/Backup.md")


def test_status_without_a_daemon_shows_todays_failures(vs: InProcess) -> None:
    add_task(vs.root, "Tasks/Bad.md", task("'exit 3'"))
    add_task(vs.root, "Tasks/Good.md", task("'true'"))
    assert vs("run-now", "Bad").code == 1
    assert vs("run-now", "Good").code == 0
    report = json.loads(vs("status", "--json").out)
    assert report["daemon"]["running"] is False
    assert report["running"] == []
    assert [(r["task"], r["status"]) for r in report["failures_today"]] == [("Tasks/Bad", "failed")]
    assert report["digest"].endswith(".md")
    text = vs("status").out
    assert "daemon: not running" in text and "failures today: 1" in text


def test_status_shows_one_line_per_failing_task(vs: InProcess) -> None:
    ledger = Ledger(vs.root, HOST)
    now = datetime.now(UTC).replace(microsecond=0)
    for name in ("Vacuum", "Backup"):
        add_task(vs.root, f"Tasks/{name}.md", task("'exit 1'", "schedule: '* * * * *'"))
    for i, name in enumerate(["Backup"] + ["Vacuum"] * 11):
        at = now - timedelta(seconds=12 - i)
        run = Run(f"r{i}", f"Tasks/{name}", Status.FAILED, Trigger.SCHEDULE, at, HOST, exit_code=1)
        ledger.append(finish_record(run, f"Tasks/{name}.md"))
    report = json.loads(vs("status", "--json").out)
    text = vs("status").out
    if (now - timedelta(seconds=12)).date() != datetime.now(UTC).date():  # the vault's zone
        pytest.skip("midnight passed: the runs are not all today's")
    assert len(report["failures_today"]) == 12  # as before, one row per run
    assert [(r["task"], r["count"], r["last_status"]) for r in report["failing_today"]] == [
        ("Tasks/Backup", 1, "failed"),
        ("Tasks/Vacuum", 11, "failed"),
    ]
    assert report["failing_today"][1]["last_failure"] == (now - timedelta(seconds=1)).isoformat()
    lines = text.splitlines()
    start = lines.index("failures today: 12 (2 tasks)")
    assert [line.split()[:2] for line in lines[start + 1 : start + 3]] == [
        ["Tasks/Backup", "1×"],
        ["Tasks/Vacuum", "11×"],
    ]
    assert sum(line.startswith("  Tasks/Vacuum") for line in lines) == 1


def test_next_agrees_with_cronsim_on_random_expressions(cli: Cli) -> None:
    """The CLI end to end on a few hundred seeded random lines, against an independent evaluator."""
    rng = random.Random(20261122)

    def field(low: int, high: int) -> str:
        a, b = sorted(rng.sample(range(low, high + 1), 2))
        return rng.choice(["*", f"*/{rng.randint(2, 9)}", str(a), f"{a}-{b}", f"{a},{b}"])

    zone = ZoneInfo("Europe/Warsaw")
    expressions = {
        f"Tasks/R{n:03}": " ".join(
            [field(0, 59), field(0, 23), field(1, 31), field(1, 12), field(0, 6)]
        )
        for n in range(300)
    }
    expressions = {i: e for i, e in expressions.items() if _fires(e)}
    assert len(expressions) > 250
    for ident, expression in expressions.items():
        text = task("'true'", f"schedule: '{expression}'", "timezone: Europe/Warsaw")
        write_note(cli.root, f"{ident}.md", text)
    result = cli("next", "--from", "2026-03-28T12:00", "--count", "400", "--json")
    assert result.code == 0, result.err
    start = datetime(2026, 3, 28, 12, 0, tzinfo=zone)
    expected = sorted(
        (fire.timestamp(), ident)
        for ident, expression in expressions.items()
        for fire in islice(CronSim(expression, start), 400)
    )[:400]
    got = [(datetime.fromisoformat(f["at"]).timestamp(), f["task"]) for f in json.loads(result.out)]
    assert got == expected


def _fires(expression: str) -> bool:
    try:
        parse_schedule(expression)
    except ScheduleError:
        return False
    return True


def test_secrets_never_reach_the_vault(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    token = "ghp_" + "A1b2C3d4E5f6G7h8I9j0" * 2
    monkeypatch.setenv("MY_PASSWORD", "hunter2hunter2")  # the runner's own environment
    command = f"'echo $API_TOKEN; echo $MY_PASSWORD; echo {token}; exit 1'"
    add_task(cli.root, "Tasks/Leaky.md", task(command, "env:", "  API_TOKEN: s3cr3t-value-123"))
    result = cli("run-now", "Leaky")
    assert result.code == 1
    assert "s3cr3t-value-123" in result.out  # the person at the terminal sees the real output
    secrets = ("s3cr3t-value-123", "hunter2hunter2", token)
    note = cli.root / "Tasks/Leaky.md"  # its front matter is the user's: only the block is ours
    vault_files = [p for p in cli.root.rglob("*") if p.is_file() and ".git" not in p.parts]
    messages = git(cli.root, "log", "--format=%B")
    for path in vault_files:
        text = path.read_text(errors="replace")
        if path == note:
            text = text.split("vaultsched:runs:begin", 1)[1]
        leaked = [s for s in secrets if s in text]
        if path.suffix == ".log":  # the full local log, git-ignored, keeps the real output
            assert git(cli.root, "check-ignore", str(path.relative_to(cli.root)))
            continue
        if path == cli.root / layout.INDEX_CACHE:
            # A copy of task notes' own front matter (`env:` and the command with them), kept
            # once the note is 3 s old (so on a loaded machine only): what the note holds, and
            # git-ignored; nothing of a run's, nor of the runner's environment.
            assert git(cli.root, "check-ignore", str(path.relative_to(cli.root)))
            assert "hunter2hunter2" not in text
            continue
        assert not leaked, f"{path} holds {leaked}"
    assert not [s for s in secrets if s in messages]
    assert "Tasks/Leaky.md" in git(cli.root, "show", "--name-only", "--format=", "HEAD")
    assert "[redacted]" in note.read_text()


def test_a_detached_head_still_gets_its_commits(vs: InProcess) -> None:
    add_task(vs.root, "Tasks/T.md", task("'true'"))
    git(vs.root, "checkout", "-q", "--detach")
    before = git(vs.root, "rev-parse", "HEAD")
    assert vs("run-now", "T").code == 0
    assert git(vs.root, "rev-parse", "HEAD") != before
    assert git(vs.root, "status", "--porcelain") == ""


def test_workflow_statuses_show_in_list_history_and_status(vs: InProcess) -> None:
    shown = {
        "S": (Status.SKIPPED, "unchanged"),
        "M": (Status.MISSED, "outside its window 09:00-17:00"),
        "B": (Status.BLOCKED, "check: disk not mounted"),
        "L": (Status.LOST, ""),
        "O": (Status.SUCCESS, ""),
    }
    ledger = Ledger(vs.root, HOST)
    for name, (status, message) in shown.items():
        add_task(vs.root, f"Tasks/{name}.md", task("'true'"))
        now = datetime.now(UTC)
        run = Run(new_run_id(now), f"Tasks/{name}", status, Trigger.SCHEDULE, now, HOST)
        output = "Briefings/today.md" if name == "O" else ""
        done = Run(**{**run.__dict__, "message": message, "output_note": output})
        ledger.append(finish_record(done, f"Tasks/{name}.md"))

    listed = {r["task"]: r["last_status"] for r in json.loads(vs("list", "--json").out)}
    assert listed == {f"Tasks/{n}": str(s) for n, (s, _) in shown.items()}
    assert "blocked" in vs("list").out and "missed" in vs("list").out
    history = vs("history", "B").out
    assert "blocked" in history and "check: disk not mounted" in history
    assert vs("history", "O").out.rstrip().endswith("-> Briefings/today.md")
    assert json.loads(vs("history", "O", "--json").out)[0]["output_note"] == "Briefings/today.md"

    report = json.loads(vs("status", "--json").out)
    assert report["failures_today"] == []
    assert report["today"] == "5 runs · 0 failed · 1 skipped · 1 missed · 1 blocked · 1 lost"
    assert [(a["task"], a["status"]) for a in report["attention"]] == [
        ("Tasks/B", "blocked"),
        ("Tasks/L", "lost"),
    ]
    text = vs("status").out
    assert "today: 5 runs · 0 failed · 1 skipped" in text
    assert 'blocked: Tasks/B (check: disk not mounted)  ->  vaultsched history "Tasks/B"' in text
    assert 'lost: Tasks/L  ->  vaultsched history "Tasks/L"' in text


def test_status_says_when_the_schedule_last_fired_what_did_not_run_and_what_is_stuck(
    vs: InProcess,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    add_task(vs.root, "Tasks/Hourly.md", "---\nschedule: '0 * * * *'\ncommand: 'true'\n---\n")
    add_task(vs.root, "Tasks/Slow.md", "---\ncommand: sleep 60\n---\n")
    ledger = Ledger(vs.root, HOST)
    fired = (now - timedelta(hours=3)).replace(minute=0, second=0)
    for task, status, start, seconds in [
        ("Tasks/Hourly", Status.SUCCESS, fired, 1.0),  # then the daemon went down
        ("Tasks/Slow", Status.SUCCESS, now - timedelta(days=1), 60.0),  # usually a minute
        ("Tasks/Slow", Status.RUNNING, now - timedelta(minutes=15), None),  # now 15 minutes in
    ]:
        trigger = Trigger.SCHEDULE if task == "Tasks/Hourly" else Trigger.MANUAL
        run = Run(
            f"r-{task[6:]}-{status}",
            task,
            status,
            trigger,
            start,
            HOST,
            scheduled_for=start if trigger is Trigger.SCHEDULE else None,
            finished_at=None if status is Status.RUNNING else start,
            duration_s=seconds,
        )
        record = start_record if status is Status.RUNNING else finish_record
        ledger.append(record(run, f"{task}.md"))
    report = json.loads(vs("status", "--json").out)
    assert report["last_fire"]["task"] == "Tasks/Hourly"
    (overdue,) = report["overdue"]
    assert overdue["task"] == "Tasks/Hourly"
    assert datetime.fromisoformat(overdue["due"]) > fired  # a later hour passed with no run
    assert [r["task"] for r in report["stuck"]] == ["Tasks/Slow"]  # 15 min > 10 min and 3 x 1 min
    text = vs("status").out
    assert "stuck: Tasks/Slow since" in text and "not run: Tasks/Hourly was due" in text
    assert f"last fire: Tasks/Hourly at {fired.isoformat()} (3h ago)" in text
    listed = {row["task"]: row for row in json.loads(vs("list", "--json").out)}
    assert listed["Tasks/Hourly"]["not_run_since"] == overdue["due"]
    assert listed["Tasks/Slow"]["not_run_since"] is None
    assert "not run: due" in vs("list").out
