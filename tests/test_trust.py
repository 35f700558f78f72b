"""Trust before running: new or changed commands and scripts wait for a person.

Commands run in-process (`vs`) unless the test is about a daemon, a second command running at
the same time, or the exit codes of the real process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import Cli, DaemonProcess, InProcess, git, runs, wait_for, write_note

from vaultsched.adapters.vault import Vault, build_index
from vaultsched.core.model import Status, Task, Trigger
from vaultsched.trust import fingerprint as fingerprint_module
from vaultsched.trust.store import TrustStore

SCRIPT = "import sys\nprint('script v1')\n"


@pytest.fixture(autouse=True)
def real_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VAULTSCHED_TRUST")


def task_note(root: Path, rel: str, front: str) -> Path:
    path = write_note(root, rel, f"---\n{front}---\nBody.\n")
    old = time.time() - 60
    os.utime(path, (old, old))
    return path


def from_outside(root: Path, rel: str, text: str) -> None:
    """A second process writes the file, as a sync tool or `git pull` would."""
    code = "import pathlib, sys; pathlib.Path(sys.argv[1]).write_text(sys.argv[2])"
    subprocess.run([sys.executable, "-c", code, str(root / rel), text], check=True)


def test_a_new_task_is_refused_until_trusted(vs: InProcess) -> None:
    task_note(vs.root, "Tasks/T.md", "command: echo hi\n")
    refused = vs("run-now", "T")
    assert refused.code == 1
    assert 'vaultsched trust "Tasks/T"' in refused.err
    (run,) = runs(vs.root)
    assert run.status is Status.UNTRUSTED
    note = (vs.root / "Tasks/T.md").read_text()
    assert 'vaultsched trust "Tasks/T"' in note  # the exact line to run, in the note
    (digest,) = (vs.root / "Digests").glob("*.md")
    assert 'vaultsched trust "Tasks/T"' in digest.read_text()
    listed = json.loads(vs("list", "--json").out)
    assert listed[0]["trusted"] is False
    status = json.loads(vs("status", "--json").out)
    assert status["untrusted"] == [
        {"task": "Tasks/T", "why": "it is new", "fix": 'vaultsched trust "Tasks/T"'}
    ]

    trusted = vs("trust", "T")
    assert trusted.code == 0 and "trusted Tasks/T: echo hi" in trusted.out
    assert vs("run-now", "T").code == 0
    assert json.loads(vs("list", "--json").out)[0]["trusted"] is True


def test_changing_the_command_or_a_named_script_needs_trust_again(vs: InProcess) -> None:
    write_note(vs.root, "scripts/job.py", SCRIPT)
    task_note(vs.root, "Tasks/S.md", "command: [python3, scripts/job.py]\n")
    assert "scripts/job.py" in vs("trust", "--all").out
    assert vs("run-now", "S").code == 0

    from_outside(vs.root, "scripts/job.py", "print('pulled change')\n")
    assert vs("run-now", "S").code == 1
    assert vs("trust", "S").code == 0
    assert vs("run-now", "S").code == 0

    from_outside(vs.root, "Tasks/S.md", "---\ncommand: [python3, -c, 'print(1)']\n---\n")
    assert vs("run-now", "S").code == 1
    assert [r.status for r in runs(vs.root)] == [
        Status.SUCCESS,
        Status.UNTRUSTED,
        Status.SUCCESS,
        Status.UNTRUSTED,
    ]


def test_untrust_and_usage_errors(cli: Cli) -> None:
    """Through the real process (the rest mostly in-process, `vs`): the exit codes a shell sees."""
    task_note(cli.root, "Tasks/U.md", "command: 'true'\n")
    assert cli("trust", "U").code == 0
    assert cli("untrust", "U").code == 0
    assert cli("run-now", "U").code == 1
    assert cli("trust").code == 2  # neither tasks nor --all
    assert cli("trust", "Nope").code == 2


def test_the_vault_cannot_switch_trust_off_but_the_user_can(
    vs: InProcess, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = vs.root / ".vaultsched/config.toml"
    config.write_text('trust = "any"\n' + config.read_text())
    task_note(vs.root, "Tasks/V.md", "command: 'true'\n")
    refused = vs("run-now", "V")
    assert refused.code == 1 and 'vaultsched trust "Tasks/V"' in refused.err
    user_config = Path.home() / ".config/vaultsched/config.toml"
    user_config.parent.mkdir(parents=True)
    user_config.write_text('trust = "any"\n')
    assert vs("run-now", "V").code == 0
    user_config.unlink()
    monkeypatch.setenv("VAULTSCHED_TRUST", "any")
    assert vs("run-now", "V").code == 0


def test_init_and_new_trust_what_they_create(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path / "fresh"
    vs = InProcess(root, capsys)
    assert vs("init", str(root)).code == 0
    assert vs("new", "Mine", "--schedule", "@daily", "--command", "echo mine").code == 0
    listed = {r["task"]: r["trusted"] for r in vs.json("list")}
    assert listed == {"Tasks/Hello vaultsched": True, "Tasks/Mine": True}


def test_listing_a_vault_nothing_of_which_is_trusted_takes_no_fingerprint(
    vault: Vault, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`list` on a vault never trusted here (a fresh clone) answers "untrusted" for each task
    at once: a fingerprint reads every file a task's command names, 0.4 ms a task."""
    root, store = vault.root, TrustStore()
    task_note(root, "Tasks/A.md", "command: echo a\n")
    task = build_index(vault).tasks["Tasks/A"]
    taken: list[str] = []
    real = fingerprint_module.fingerprint

    def counted(root: Path, task: Task) -> str:
        taken.append(task.id)
        return real(root, task)

    monkeypatch.setattr("vaultsched.trust.store.fingerprint", counted)
    assert store.checker(root)(task) is False
    assert taken == []
    store.trust(root, [task])
    assert store.checker(root)(task) is True


@pytest.mark.integration
def test_a_moved_task_keeps_its_trust_and_a_copy_does_not_borrow_it(vault: Vault) -> None:
    root, store = vault.root, TrustStore()
    task_note(root, "Tasks/A.md", "command: echo a\n")
    task_note(root, "Tasks/Other.md", "command: echo other\n")
    store.trust(root, build_index(vault).tasks.values())
    text = (root / "Tasks/A.md").read_text()

    write_note(root, "Elsewhere/Copy.md", text)  # a copy while the original still exists
    checked = store.checker(root)
    tasks = build_index(vault).tasks
    assert checked(tasks["Tasks/A"]) and not checked(tasks["Elsewhere/Copy"])

    (root / "Elsewhere/Copy.md").unlink()
    (root / "Archive").mkdir()
    (root / "Tasks/A.md").rename(root / "Archive/A.md")  # a move: its trust goes with it
    write_note(root, "Elsewhere/Copy.md", text)  # and a copy made meanwhile: one takes it
    tasks = build_index(vault).tasks
    checked = store.checker(root)
    assert [checked(tasks["Archive/A"]), checked(tasks["Elsewhere/Copy"])] == [True, False]
    assert not store.is_trusted(root, tasks["Elsewhere/Copy"])  # a fresh reading agrees
    assert set(store.trusted(root)) == {"Archive/A", "Tasks/Other"}
    (root / "Done").mkdir()
    (root / "Archive/A.md").rename(root / "Done/A.md")
    store.trust(root, [build_index(vault).tasks["Done/A"]])  # trusted by hand: moved too
    assert set(store.trusted(root)) == {"Done/A", "Tasks/Other"}

    (root / "Tasks/Other.md").rename(root / "Archive/Other.md")
    write_note(root, "Archive/Other.md", "---\ncommand: echo changed\n---\n")  # and edited
    assert not store.is_trusted(root, build_index(vault).tasks["Archive/Other"])


def test_git_mv_keeps_a_task_trusted(vs: InProcess) -> None:
    task_note(vs.root, "Tasks/Backup.md", "command: echo backed up\n")
    assert vs("trust", "Backup").code == 0
    git(vs.root, "add", "-A")
    git(vs.root, "commit", "-qm", "task")
    git(vs.root, "mv", "Tasks", "Jobs")
    ran = vs("run-now", "Backup")
    assert ran.code == 0, ran.err
    (row,) = json.loads(vs("list", "--json").out)
    assert (row["task"], row["trusted"]) == ("Jobs/Backup", True)


def test_the_daemon_records_one_refusal_and_runs_once_trusted(
    vault_root: Path, daemons: Callable[..., DaemonProcess]
) -> None:
    task_note(vault_root, "Tasks/Tick.md", "schedule: every 1s\ncommand: echo tick\n")
    daemon = daemons(vault_root)
    wait_for(lambda: runs(vault_root), what="the refusal")
    time.sleep(2.5)  # several more fire times pass while it waits
    refusals = [r for r in runs(vault_root) if r.status is Status.UNTRUSTED]
    assert len(refusals) == 1 and refusals[0].trigger is Trigger.SCHEDULE
    assert Cli(vault_root)("trust", "Tick").code == 0
    wait_for(
        lambda: any(r.status is Status.SUCCESS for r in runs(vault_root)), what="a trusted run"
    )
    # A change pulled in from outside is refused again, once.
    from_outside(vault_root, "Tasks/Tick.md", "---\nschedule: every 1s\ncommand: echo tock\n---\n")
    wait_for(
        lambda: len([r for r in runs(vault_root) if r.status is Status.UNTRUSTED]) == 2,
        what="the second refusal",
    )
    assert daemon.stop() == 0
    assert not any("tock" in r.output_tail for r in runs(vault_root))


def fire_due_times(vs: InProcess, count: int) -> None:
    """`run --once` fires what came due since the last call: the first call only starts the
    clock for a new task, each later one (a second on) finds a due time."""
    for n in range(count + 1):
        if n:
            time.sleep(1.1)
        result = vs("run", "--once")
        assert result.code == 0, result.err


def test_approval_waits_one_pending_run_and_approve_runs_it(vs: InProcess) -> None:
    task_note(vs.root, "Tasks/A.md", "schedule: every 1s\napproval: required\ncommand: echo ok\n")
    assert vs("trust", "A").code == 0
    assert vs("approve", "A").code == 1  # nothing pending yet
    fire_due_times(vs, 2)  # two due times: the newer replaces the older
    pending = [r for r in runs(vs.root) if r.status is Status.AWAITING_APPROVAL]
    assert len(pending) == 1
    note = (vs.root / "Tasks/A.md").read_text()
    assert 'vaultsched approve "Tasks/A"' in note
    status = json.loads(vs("status", "--json").out)
    assert [p["task"] for p in status["awaiting_approval"]] == ["Tasks/A"]
    (digest,) = (vs.root / "Digests").glob("*.md")
    assert "awaiting_approval" in digest.read_text()
    approved = vs("approve", "A")
    assert approved.code == 0, approved.err
    assert "ok" in approved.out
    done = [r for r in runs(vs.root) if r.trigger is Trigger.APPROVED]
    assert [r.status for r in done] == [Status.SUCCESS]
    assert done[0].scheduled_for == pending[0].scheduled_for
    assert not [r for r in runs(vs.root) if r.status is Status.AWAITING_APPROVAL]
    assert vs("approve", "A").code == 1  # approving runs it once


def test_reject_drops_the_pending_run(vs: InProcess) -> None:
    task_note(vs.root, "Tasks/R.md", "schedule: every 1s\napproval: required\ncommand: echo no\n")
    assert vs("trust", "R").code == 0
    fire_due_times(vs, 1)
    assert vs("reject", "R").code == 0
    assert [(r.status, r.message) for r in runs(vs.root)] == [(Status.SKIPPED, "rejected")]
    assert vs("reject", "R").code == 1


# -- the vault is untrusted input: each path from a synced edit to a run --------------------


def marker_of(cli: Cli | InProcess) -> Path:
    """A file outside the vault that only an attacker's code would create."""
    return cli.root.parent / "MARKER"


def test_an_edited_body_is_not_piped_until_trusted_again(vs: InProcess) -> None:
    """`stdin: body` makes the body the program: a synced edit to it needs trust again."""
    marker = marker_of(vs)
    task_note(vs.root, "Tasks/Agent.md", "command: sh\nstdin: body\n")
    from_outside(vs.root, "Tasks/Agent.md", "---\ncommand: sh\nstdin: body\n---\necho safe\n")
    assert vs("trust", "Agent").code == 0
    assert "safe" in vs("run-now", "Agent").out
    assert vs("run-now", "Agent").code == 0  # the run block it wrote does not untrust it

    note = (vs.root / "Tasks/Agent.md").read_text()
    from_outside(vs.root, "Tasks/Agent.md", note.replace("echo safe", f"touch {marker}"))
    refused = vs("run-now", "Agent")
    assert refused.code == 1 and not marker.exists()
    assert runs(vs.root)[-1].status is Status.UNTRUSTED
    assert "its body (prompt) changed" in (vs.root / "Tasks/Agent.md").read_text()
    status = json.loads(vs("status", "--json").out)
    assert status["untrusted"][0]["why"] == "its body (prompt) changed"

    shown = vs("trust", "Agent")
    assert "-echo safe" in shown.out and f"+touch {marker}" in shown.out
    assert vs("run-now", "Agent").code == 0 and marker.exists()  # trusted on purpose now


SH_V1 = "echo v1\n"


@pytest.mark.parametrize(
    ("command", "script", "cwd"),
    [
        ("sh scripts/x.sh; echo done", "scripts/x.sh", ""),
        ("cd scripts && ./run.sh", "scripts/run.sh", ""),
        ("sh<scripts/x.sh", "scripts/x.sh", ""),
        ("cat scripts/x.sh|sh", "scripts/x.sh", ""),
        ('sh -c "$(cat scripts/x.sh)"', "scripts/x.sh", ""),
        (
            "python3 -c 'import runpy,sys; runpy.run_path(sys.argv[1][7:])' --file=scripts/x.py",
            "scripts/x.py",
            "",
        ),
        ("for f in scripts/*.sh; do sh $f; done", "scripts/x.sh", ""),
        ('sh "$VAULTSCHED_VAULT/scripts/x.sh"', "scripts/x.sh", "Projects"),
        ("python3 scripts/pkg", "scripts/pkg/helper.py", ""),
    ],
)
def test_an_edited_script_is_not_run_until_trusted_again(
    vs: InProcess, command: str, script: str, cwd: str
) -> None:
    marker = marker_of(vs)
    python = script.endswith(".py")
    write_note(vs.root, script, "print('v1')\n" if python else SH_V1)
    (vs.root / script).chmod(0o755)
    if script == "scripts/pkg/helper.py":
        write_note(vs.root, "scripts/pkg/__main__.py", "import helper\n")
    (vs.root / "Projects").mkdir(exist_ok=True)
    front = f"command: {json.dumps(command)}\n" + (f"cwd: {cwd}\n" if cwd else "")
    task_note(vs.root, "Tasks/S.md", front)
    assert vs("trust", "S").code == 0
    assert vs("run-now", "S").code == 0
    assert vs("run-now", "S").code == 0  # running it (bytecode, run block) changes nothing
    assert not list(vs.root.rglob("__pycache__"))  # bytecode goes outside the vault

    evil = f"open({str(marker)!r}, 'w')\n" if python else f"touch {marker}\n"
    from_outside(vs.root, script, evil)
    assert vs("run-now", "S").code == 1
    assert not marker.exists()
    assert runs(vs.root)[-1].status is Status.UNTRUSTED
    assert f"{script} changed" in runs(vs.root)[-1].message
    shown = vs("trust", "S").out
    assert f"+{evil.strip()}" in shown and f"{script} (trusted)" in shown


def test_a_new_glob_match_is_not_run_until_trusted_again(vs: InProcess) -> None:
    marker = marker_of(vs)
    write_note(vs.root, "scripts/a.sh", SH_V1)
    task_note(vs.root, "Tasks/G.md", 'command: "for f in scripts/*.sh; do sh $f; done"\n')
    assert vs("trust", "G").code == 0 and vs("run-now", "G").code == 0
    from_outside(vs.root, "scripts/b.sh", f"touch {marker}\n")
    assert vs("run-now", "G").code == 1 and not marker.exists()
    shown = vs("trust", "G").out
    assert "scripts/b.sh: new file" in shown and f"+touch {marker}" in shown


def test_dropping_approval_needs_trust_again(vs: InProcess) -> None:
    """A sync deleting `approval: required` must not make a destructive task run unattended."""
    marker = marker_of(vs)
    front = f"schedule: every 1s\napproval: required\ncommand: touch {marker}\n"
    task_note(vs.root, "Tasks/D.md", front)
    assert vs("trust", "D").code == 0
    note = (vs.root / "Tasks/D.md").read_text()
    from_outside(vs.root, "Tasks/D.md", note.replace("approval: required\n", ""))
    fire_due_times(vs, 1)
    assert not marker.exists()
    refused = runs(vs.root)[-1]
    assert refused.status is Status.UNTRUSTED
    assert "its approval changed" in refused.message
    assert '  approval: "required" -> "none"' in vs("trust", "D").out


def test_trust_yes_skips_the_display_and_warnings_name_unseen_code(vs: InProcess) -> None:
    task_note(vs.root, "Tasks/W.md", "command: 'source ~/.profile && python3 -m tools.run'\n")
    shown = vs("trust", "W")
    assert "never trusted; it will run:" in shown.out
    assert "`source ~/.profile` reads a file that is not in the vault" in shown.err
    assert "`-m tools.run` imports modules vaultsched cannot see" in shown.err
    quiet = vs("trust", "--yes", "W")
    assert quiet.out.splitlines() == ["trusted Tasks/W: source ~/.profile && python3 -m tools.run"]
    again = vs("trust", "--all")
    assert "Tasks/W: unchanged since you last trusted it" in again.out
    # One snapshot per trusted version, outside the vault, private, gone once not trusted.
    (snapshot,) = (Path.home() / ".local/state/vaultsched/snapshots").glob("*.json")
    assert snapshot.stat().st_mode & 0o777 == 0o600
    assert vs("untrust", "W").code == 0 and not snapshot.exists()


def test_control_characters_from_the_vault_are_shown_escaped(vs: InProcess) -> None:
    task_note(vs.root, "Tasks/E\x1b[2K.md", 'command: "echo \\e[2Khidden\\x9b"\n')
    for args in (("list",), ("status",), ("run-now", "Nope\x1b]0;x"), ("trust", "--all")):
        result = vs(*args)
        shown = result.out + result.err
        assert "\x1b" not in shown and "\x9b" not in shown, args
        assert "\\x1b" in shown, args
    assert "echo \\x1b[2Khidden\\x9b" in vs("trust", "--yes", "--all").out
    listed = vs("list", "--json").out
    assert "\x9b" not in listed and json.loads(listed)[0]["task"] == "Tasks/E\x1b[2K"


@pytest.mark.integration
def test_the_daemon_refuses_a_body_edited_by_a_sync(
    vault_root: Path, daemons: Callable[..., DaemonProcess]
) -> None:
    marker = vault_root.parent / "MARKER"
    front = "---\nschedule: every 1s\ncommand: sh\nstdin: body\n---\n"
    task_note(vault_root, "Tasks/Agent.md", "schedule: every 1s\ncommand: sh\nstdin: body\n")
    from_outside(vault_root, "Tasks/Agent.md", front + "echo safe\n")
    assert Cli(vault_root)("trust", "--yes", "Agent").code == 0
    daemon = daemons(vault_root)
    wait_for(
        lambda: [r for r in runs(vault_root) if r.status is Status.SUCCESS][1:],
        what="two trusted runs (the first run block does not untrust it)",
    )
    note = (vault_root / "Tasks/Agent.md").read_text()
    from_outside(vault_root, "Tasks/Agent.md", note.replace("echo safe", f"touch {marker}"))
    wait_for(
        lambda: any(r.status is Status.UNTRUSTED for r in runs(vault_root)), what="the refusal"
    )
    time.sleep(1.5)  # more fire times pass
    assert daemon.stop() == 0
    assert not marker.exists()
    assert not [r for r in runs(vault_root) if r.status is not Status.SUCCESS][1:]


def cli_process(cli: Cli, *args: str) -> subprocess.Popen[bytes]:
    """The real CLI in the background, as a second terminal or the daemon would run it."""
    argv = [sys.executable, "-m", "vaultsched", "--vault", str(cli.root), *args]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def replace_from_outside(root: Path, rel: str, text: str) -> None:
    """A sync's atomic replace: a shell already reading the old file keeps reading it."""
    (root / f"{rel}.new").write_text(text)
    (root / f"{rel}.new").replace(root / rel)


@pytest.mark.integration
def test_a_script_edited_while_a_queued_run_waits_is_not_run(cli: Cli) -> None:
    """`overlap: queue` waits a whole run for the slot: trust is checked once it is ours."""
    marker, started, release = marker_of(cli), cli.root.parent / "started", cli.root.parent / "go"
    wait_script = f"touch {started}; while [ ! -e {release} ]; do sleep 0.05; done\n"
    write_note(cli.root, "scripts/job.sh", wait_script)
    task_note(cli.root, "Tasks/Job.md", "command: sh scripts/job.sh\noverlap: queue\n")
    assert cli("trust", "--yes", "Job").code == 0
    first = cli_process(cli, "run-now", "Job")
    second = None
    try:
        wait_for(started.exists, timeout=60, what="the first run")
        second = cli_process(cli, "run-now", "Job")
        time.sleep(2)  # the second run-now is (most likely) waiting for the slot by now
        replace_from_outside(cli.root, "scripts/job.sh", f"touch {marker}\n")
    finally:
        release.touch()
        codes = [p.wait(timeout=60) for p in (first, second) if p is not None]
    assert codes == [0, 1]
    assert not marker.exists()
    assert [r.status for r in runs(cli.root)] == [Status.SUCCESS, Status.UNTRUSTED]


def test_a_manual_task_that_gains_a_schedule_is_not_fired(vs: InProcess) -> None:
    """A task trusted to run only by hand: a sync adding `schedule:` must not let the daemon
    fire it. Changing when a scheduled task runs needs no trust."""
    marker = marker_of(vs)
    task_note(vs.root, "Tasks/Wipe.md", f"command: touch {marker}\n")
    assert vs("trust", "--yes", "Wipe").code == 0
    note = (vs.root / "Tasks/Wipe.md").read_text()
    from_outside(vs.root, "Tasks/Wipe.md", note.replace("---\n", "---\nschedule: every 1s\n", 1))
    fire_due_times(vs, 1)
    assert not marker.exists()
    refused = runs(vs.root)[-1]
    assert refused.status is Status.UNTRUSTED and "its schedule changed" in refused.message
    assert "  schedule: false -> true" in vs("trust", "Wipe").out

    task_note(vs.root, "Tasks/Tick.md", "schedule: every 1h\ncommand: echo tick\n")
    assert vs("trust", "--yes", "Tick").code == 0
    from_outside(vs.root, "Tasks/Tick.md", "---\nschedule: every 2h\ncommand: echo tick\n---\n")
    listed = {r["task"]: r["trusted"] for r in json.loads(vs("list", "--json").out)}
    assert listed["Tasks/Tick"] is True


def test_a_module_synced_beside_a_trusted_python_script_is_not_imported(vs: InProcess) -> None:
    """Python puts a script's folder first on sys.path: a new `scripts/json.py` would shadow
    the standard library's without changing the trusted script. Tasks run with PYTHONSAFEPATH."""
    marker = marker_of(vs)
    write_note(vs.root, "scripts/report.py", "import json\nprint(json.dumps({'ok': 1}))\n")
    task_note(vs.root, "Tasks/Report.md", "command: python3 scripts/report.py\n")
    assert vs("trust", "--yes", "Report").code == 0
    from_outside(vs.root, "scripts/json.py", f"open({str(marker)!r}, 'w')\ndumps = str\n")
    assert vs("run-now", "Report").code == 0
    assert not marker.exists()
    assert '{"ok": 1}' in runs(vs.root)[-1].output_tail

    # Helpers beside the script: naming their folder covers them and makes them importable.
    write_note(vs.root, "scripts/helper.py", "NAME = 'helper'\n")
    write_note(vs.root, "scripts/main.py", "import helper\nprint(helper.NAME)\n")
    task_note(vs.root, "Tasks/Main.md", "command: PYTHONPATH=scripts python3 scripts/main.py\n")
    assert vs("trust", "--yes", "Main").code == 0 and vs("run-now", "Main").code == 0
    from_outside(vs.root, "scripts/helper.py", f"open({str(marker)!r}, 'w')\n")
    assert vs("run-now", "Main").code == 1 and not marker.exists()


@pytest.mark.parametrize(
    ("command", "cwd", "edited"),
    [
        ("awk -fscripts/x.awk", "", "scripts/x.awk"),
        ("npm run build", "site", "site/package.json"),
        ("sh scripts/main.sh scripts/", "", "vendor/lib/util.sh"),
    ],
)
def test_glued_options_runner_manifests_and_linked_folders_are_covered(
    vs: InProcess, command: str, cwd: str, edited: str
) -> None:
    """`awk -fscripts/x.awk`, a `package.json` npm runs, a folder linked into a named one."""
    write_note(vs.root, "scripts/x.awk", 'BEGIN { print "v1" }\n')
    write_note(vs.root, "site/package.json", '{"scripts": {"build": "echo v1"}}\n')
    write_note(vs.root, "vendor/lib/util.sh", "echo v1\n")
    write_note(vs.root, "scripts/main.sh", ". scripts/lib/util.sh\n")
    (vs.root / "scripts/lib").symlink_to("../vendor/lib")
    front = f"command: {json.dumps(command)}\n" + (f"cwd: {cwd}\n" if cwd else "")
    task_note(vs.root, "Tasks/R.md", front)
    assert vs("trust", "--yes", "R").code == 0
    from_outside(vs.root, edited, (vs.root / edited).read_text().replace("v1", "v2"))
    assert vs("run-now", "R").code == 1
    refused = runs(vs.root)[-1]
    assert refused.status is Status.UNTRUSTED and f"{edited} changed" in refused.message


# -- the fingerprint kept between runs --------------------------------------------------------


@pytest.fixture
def readings(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fingerprints kept even for files changed a moment ago (a tick apart is all the test
    needs), from an empty cache; each task id whose files were read again is listed."""
    monkeypatch.setattr(fingerprint_module, "_RACY_NS", 0)
    monkeypatch.setattr(fingerprint_module, "_PRINTS", {})
    taken: list[str] = []
    real = fingerprint_module.take_snapshot

    def counted(root: Path, task: Task, *args: object) -> fingerprint_module.Snapshot:
        taken.append(task.id)
        return real(root, task, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(fingerprint_module, "take_snapshot", counted)
    return taken


def _task(command: str) -> Task:
    return Task("Tasks/T", "Tasks/T.md", command, schedules=(), timezone=ZoneInfo("UTC"))


def _later_same_size(path: Path, text: str) -> None:
    """Rewrite `path` with `text` (as long as before), its mtime put back as it was."""
    before = path.stat()
    time.sleep(0.05)  # past the clock tick of the reading: a change shows in ctime
    path.write_text(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def _replaced_by_rename(path: Path, text: str) -> None:
    before = path.stat()
    time.sleep(0.05)
    fresh = path.with_suffix(".new")
    fresh.write_text(text)
    os.utime(fresh, ns=(before.st_atime_ns, before.st_mtime_ns))
    fresh.replace(path)


@pytest.mark.parametrize(
    ("command", "change"),
    [
        ("python3 scripts/job.py", lambda root: _later_same_size(root / "scripts/job.py", "#v2\n")),
        (
            "python3 scripts/job.py",
            lambda root: _replaced_by_rename(root / "scripts/job.py", "#v2\n"),
        ),
        ("python3 scripts/", lambda root: (root / "scripts/new.py").write_text("import os\n")),
        ("python3 scripts/*.py", lambda root: (root / "scripts/new.py").write_text("import os\n")),
        ("python3 scripts/", lambda root: (root / "scripts/lib/new.py").write_text("import os\n")),
        ("python3 lib/later.py", lambda root: write_note(root, "lib/later.py", "print(1)\n")),
        ("sh tools/run", lambda root: (root / "tools").symlink_to("scripts")),
    ],
    ids=[
        "edit-keeping-mtime",
        "replaced-by-rename",
        "new-in-folder",
        "new-glob-match",
        "new-in-empty-subfolder",
        "missing-script-appears",
        "folder-link-appears",
    ],
)
def test_a_kept_fingerprint_is_taken_again_once_anything_it_covers_changes(
    tmp_path: Path, readings: list[str], command: str, change: Callable[[Path], object]
) -> None:
    root = tmp_path
    write_note(root, "scripts/job.py", "#v1\n")
    write_note(root, "scripts/run", "echo run\n")
    (root / "scripts/lib").mkdir()
    task = _task(command)
    first = fingerprint_module.fingerprint(root, task)
    assert fingerprint_module.fingerprint(root, task) == first
    assert readings == ["Tasks/T"]  # the second time, nothing was read

    time.sleep(0.05)
    change(root)
    again = fingerprint_module.fingerprint(root, task)
    assert again != first
    assert again == fingerprint_module.take_snapshot(root, task).fingerprint


def test_a_file_changed_within_its_clock_tick_is_never_vouched_for(tmp_path: Path) -> None:
    write_note(tmp_path, "scripts/job.py", "#v1\n")
    task = _task("python3 scripts/job.py")
    witness = fingerprint_module.Witness()
    fingerprint_module.take_snapshot(tmp_path, task, None, witness)
    assert "scripts/job.py" in "".join(witness.seen) and not witness.complete
