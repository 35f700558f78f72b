"""Workflows through the real daemon: check gates, chains of `after` tasks with their output
handed over, the run-context variables, and a chain that survives a daemon killed half-way."""

from __future__ import annotations

import functools
import itertools
import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import Cli, DaemonProcess, git, make_vault, runs, wait_for
from conftest import runs_of as of
from conftest import task_note as note

from vaultsched.core.model import Status, Trigger

pytestmark = pytest.mark.integration

Start = Callable[..., DaemonProcess]
LOADED = 90.0  # seconds a daemon may take to get there on a loaded machine (never a pass mark)


def commit_notes(root: Path) -> None:
    git(root, "add", "-A", ".")
    git(root, "commit", "-qm", "tasks")


def test_a_check_skips_blocks_or_lets_the_command_run(vault_root: Path, daemons: Start) -> None:
    (vault_root / "scripts").mkdir()
    gate = vault_root / "scripts/gate.sh"
    gate.write_text('echo "nothing new"; exit 10\n')
    ran = vault_root / "ran.txt"
    command = f"command: echo ran >> {ran}\n"
    note(vault_root, "Tasks/Gated.md", f"schedule: every 1s\ncheck: sh scripts/gate.sh\n{command}")
    commit_notes(vault_root)
    daemon = daemons(vault_root)
    wait_for(
        lambda: len(of(vault_root, "Tasks/Gated", Status.SKIPPED)) >= 2,
        what="skips",
        timeout=LOADED,
    )
    assert not ran.exists(), "a skipped run started the command"
    skipped = of(vault_root, "Tasks/Gated", Status.SKIPPED)[0]
    assert skipped.message == "nothing new" and skipped.exit_code is None
    daemon.stop()
    # The check's script is covered by trust like the command's: a changed gate is refused.
    gate.write_text("echo boom >&2; exit 3\n")
    daemon = daemons(vault_root, env={"VAULTSCHED_TRUST": ""})
    wait_for(
        lambda: of(vault_root, "Tasks/Gated", Status.UNTRUSTED) != [],
        what="refusal",
        timeout=LOADED,
    )
    daemon.stop()
    daemon = daemons(vault_root)
    wait_for(
        lambda: of(vault_root, "Tasks/Gated", Status.BLOCKED) != [], what="blocked", timeout=LOADED
    )
    blocked = of(vault_root, "Tasks/Gated", Status.BLOCKED)[0]
    assert blocked.message == "check exited 3: boom" and not ran.exists()
    gate.write_text("exit 0\n")
    wait_for(
        lambda: of(vault_root, "Tasks/Gated", Status.SUCCESS) != [], what="a run", timeout=LOADED
    )
    daemon.stop()
    assert ran.read_text().startswith("ran\n")
    text = (vault_root / "Tasks/Gated.md").read_text()
    assert "[!success]" in text and "blocked" in text


def test_run_now_runs_the_chain_and_hands_its_output_on(vault_root: Path) -> None:
    seen = vault_root / "seen.json"
    dump = (
        "python3 -c 'import json,os,sys; json.dump({**{k: v for k, v in os.environ.items() "
        'if k.startswith("VAULTSCHED_")}, "stdin": sys.stdin.read()}, '
        f'open("{seen}", "w"))\''
    )
    draft_front = 'output: "Drafts/{task} {run_id}"\ncommand: echo draft text; echo noise >&2\n'
    note(vault_root, "Tasks/Draft.md", draft_front)
    note(
        vault_root,
        "Tasks/Act.md",
        f'after: "[[Draft]]"\nstdin: upstream\ncommand: >-\n  {dump}\n',
    )
    note(vault_root, "Tasks/Alert.md", 'after: "[[Draft]]"\non: failure\ncommand: echo alert\n')
    commit_notes(vault_root)
    cli = Cli(vault_root)
    alone = cli("run-now", "--no-chain", "Draft")
    assert alone.code == 0, alone.err
    assert of(vault_root, "Tasks/Act") == [] and not seen.exists()
    chained = cli("run-now", "Draft")
    assert chained.code == 0, chained.err
    assert "vaultsched: success Tasks/Act" in chained.err
    (draft,) = [r for r in of(vault_root, "Tasks/Draft") if r.chain]
    assert draft.chain == ("Tasks/Act",)
    (act,) = of(vault_root, "Tasks/Act")
    assert act.trigger is Trigger.AFTER and act.upstream_run == draft.run_id
    env = json.loads(seen.read_text())
    assert env["stdin"] == "draft text\n"  # stdout only: stderr is in the log, not handed on
    assert Path(env["VAULTSCHED_UPSTREAM_OUTPUT"]).read_text() == "draft text\n"
    assert env["VAULTSCHED_UPSTREAM_RUN"] == draft.run_id
    assert env["VAULTSCHED_TRIGGER"] == "after" and env["VAULTSCHED_ATTEMPT"] == "1"
    assert env["VAULTSCHED_TASK"] == "Tasks/Act" and env["VAULTSCHED_SCHEDULED_FOR"] == ""
    assert env["VAULTSCHED_LAST_SUCCESS_AT"] == "" and env["VAULTSCHED_PREVIOUS_OUTPUT"] == ""
    state = Path(env["VAULTSCHED_STATE_DIR"])
    assert state.is_dir() and state == vault_root / ".vaultsched/state/tasks/Tasks/Act"
    assert of(vault_root, "Tasks/Alert") == [], "on: failure ran after a success"
    # The draft's stdout is a note of its own, linked from its run block, committed.
    output = vault_root / draft.output_note
    assert draft.output_note == f"Drafts/Draft {draft.run_id}.md"
    assert "draft text" in output.read_text() and "noise" not in output.read_text()
    assert f"[[Drafts/Draft {draft.run_id}|output]]" in (vault_root / "Tasks/Draft.md").read_text()
    assert git(vault_root, "ls-files", draft.output_note).strip() == draft.output_note
    # The next run of the act sees its last success and its previous output.
    assert cli("run-now", "--no-chain", "Act").code == 0
    again = json.loads(seen.read_text())
    assert again["VAULTSCHED_LAST_SUCCESS_AT"] == act.started_at.isoformat()
    assert again["VAULTSCHED_PREVIOUS_OUTPUT"].endswith(f"{act.run_id}.out")
    assert again["stdin"] == "" and again["VAULTSCHED_UPSTREAM_OUTPUT"] == ""


ONCE = "if [ -f started ]; then exit 10; fi; touch started"


def test_a_chain_of_a_hundred_runs_in_order_across_a_restart(
    vault_root: Path, daemons: Start
) -> None:
    """Each link once, in order; the daemon is stopped while link 40 runs and started again."""
    order = vault_root / "order.txt"
    links = 100
    head = f"schedule: every 1s\ncheck: {ONCE}\ncommand: echo 0 >> {order}\n"
    note(vault_root, "Tasks/C000.md", head)
    for i in range(1, links):
        slow = "sleep 1; " if i == 40 else ""
        command = f"command: {slow}echo {i} >> {order}\n"
        note(vault_root, f"Tasks/C{i:03}.md", f'after: "[[C{i - 1:03}]]"\n{command}')
    commit_notes(vault_root)
    daemon = daemons(vault_root)
    wait_for(
        lambda: of(vault_root, "Tasks/C040") != [] or _count(order) > 40,
        timeout=180,
        what="link 40",
    )
    assert daemon.stop() == 0  # SIGTERM while link 40 runs: it finishes, its chain waits
    stopped_at = _count(order)
    assert stopped_at < links
    daemons(vault_root)
    last = f"Tasks/C{links - 1:03}"
    # Finished, not only started: its start record is on disk before its process runs.
    wait_for(lambda: of(vault_root, last, Status.SUCCESS) != [], timeout=240, what="the last link")
    assert [int(x) for x in order.read_text().split()] == list(range(links))
    for i in range(1, links):
        ran = of(vault_root, f"Tasks/C{i:03}")
        assert len(ran) == 1 and ran[0].status is Status.SUCCESS, f"link {i}: {ran}"


def _disabled(path: Path) -> bool:
    return "enabled: false" in path.read_text()


def _count(path: Path) -> int:
    return path.read_text().count("\n") if path.exists() else 0


def test_max_runs_and_until_stop_a_task_which_disables_itself(
    vault_root: Path, daemons: Start
) -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=4)).replace(microsecond=0)
    note(vault_root, "Tasks/Thrice.md", "schedule: every 1s\nmax_runs: 3\ncommand: 'true'\n")
    until = f"until: '{soon.isoformat()}'\n"
    note(vault_root, "Tasks/Until.md", f"schedule: every 1s\n{until}command: 'true'\n")
    commit_notes(vault_root)
    daemon = daemons(vault_root)
    for name in ("Thrice", "Until"):
        wait_for(
            functools.partial(_disabled, vault_root / f"Tasks/{name}.md"), what=name, timeout=LOADED
        )
    time.sleep(1.5)
    assert daemon.stop() == 0
    assert len(of(vault_root, "Tasks/Thrice")) == 3
    # A loaded machine may start the daemon after `until`: then it never ran, and still stops.
    until_runs = of(vault_root, "Tasks/Until")
    assert all(r.scheduled_for is not None and r.scheduled_for <= soon for r in until_runs)
    for name in ("Thrice", "Until"):  # one line changed, the rest as written; committed
        text = (vault_root / f"Tasks/{name}.md").read_text()
        assert text.startswith("---\nschedule: every 1s\n") and "enabled: false\n" in text
    assert git(vault_root, "status", "--porcelain") == ""
    # Enabled again by hand, max_runs still 3: a restarted daemon counts from the ledger.
    path = vault_root / "Tasks/Thrice.md"
    path.write_text(path.read_text().replace("enabled: false\n", ""))
    daemon = daemons(vault_root)
    wait_for(lambda: "enabled: false" in path.read_text(), what="disabled again", timeout=LOADED)
    assert daemon.stop() == 0
    assert len(of(vault_root, "Tasks/Thrice")) == 3


def test_a_shut_window_holds_fires_back(vault_root: Path, daemons: Start) -> None:
    now = datetime.now(UTC)
    opens, shuts = now + timedelta(hours=2), now + timedelta(hours=3)
    window = f"window: '{opens:%H:%M}-{shuts:%H:%M}'\ntimezone: UTC\n"
    note(vault_root, "Tasks/Later.md", f"schedule: every 1s\n{window}command: 'true'\n")
    note(vault_root, "Tasks/Now.md", "schedule: every 1s\ncommand: 'true'\n")
    commit_notes(vault_root)
    daemon = daemons(vault_root)
    wait_for(
        lambda: len(of(vault_root, "Tasks/Now")) >= 3, what="the unwindowed task", timeout=LOADED
    )
    assert daemon.stop() == 0
    assert of(vault_root, "Tasks/Later") == []


def test_if_changed_runs_once_per_change_of_what_it_names(vault_root: Path) -> None:
    (vault_root / "Inbox").mkdir()
    item = vault_root / "Inbox/one.md"
    item.write_text("first\n")
    counter = vault_root / "count.txt"
    front = f"if_changed: 'Inbox/**/*.md'\ncommand: echo x >> {counter}\n"
    note(vault_root, "Tasks/Digest.md", front)
    commit_notes(vault_root)
    cli = Cli(vault_root)
    assert cli("run-now", "Digest").code == 0  # the first run always runs
    skipped = cli("run-now", "Digest")
    assert skipped.code == 1 and "skipped Tasks/Digest (unchanged" in skipped.err
    os.utime(item)  # touched, not changed
    assert cli("run-now", "Digest").code == 1
    item.write_text("second\n")
    assert cli("run-now", "Digest").code == 0
    (vault_root / "Inbox/deep").mkdir()
    (vault_root / "Inbox/deep/two.md").write_text("new\n")
    assert cli("run-now", "Digest").code == 0
    assert counter.read_text().count("x") == 3
    statuses = [r.status for r in of(vault_root, "Tasks/Digest")]
    assert statuses.count(Status.SKIPPED) == 2 and Status.SUCCESS in statuses


def test_tasks_of_one_group_never_run_at_once(tmp_path: Path, daemons: Start) -> None:
    root = make_vault(tmp_path / "v", config='timezone = "UTC"\n[groups.api]\nmax_parallel = 1\n')
    for name in ("A", "B", "C"):
        front = "schedule: every 1s\ngroup: api\ncommand: sleep 0.4\n"
        note(root, f"Tasks/{name}.md", front)
    commit_notes(root)
    daemon = daemons(root)
    wait_for(lambda: len(runs(root)) >= 6, what="six runs", timeout=LOADED)
    assert daemon.stop() == 0
    ran = sorted((r.started_at, r.finished_at) for r in runs(root) if r.status is Status.SUCCESS)
    assert {r.task for r in runs(root)} == {"Tasks/A", "Tasks/B", "Tasks/C"}
    for (_, end), (start, _) in itertools.pairwise(ran):
        assert end is not None and start >= end, "two runs of the group overlapped"


def test_a_prompt_gets_its_placeholders_filled_and_nothing_else(vault_root: Path) -> None:
    seen = vault_root / "prompt.txt"
    body = (
        "Brief for {{task}} on {{date}} at {{time}}.\n"
        "Since: {{last_success}}\nBefore: {{previous_output}}\n"
        "Literal: {{{{date}} and {{unknown}} and {date}\n"
    )
    front = f"timezone: UTC\nstdin: body\ncommand: tee {seen}\n"
    note(vault_root, "Tasks/Agent.md", front, body)
    commit_notes(vault_root)
    cli = Cli(vault_root)
    assert cli("run-now", "Agent").code == 0
    (first,) = of(vault_root, "Tasks/Agent")
    day = first.started_at.astimezone(UTC)
    lines = seen.read_text().splitlines()
    assert lines[0] == f"Brief for Agent on {day:%Y-%m-%d} at {day:%H:%M}."
    assert lines[1:3] == ["Since: ", "Before: "]  # no success, no output yet
    assert lines[3] == "Literal: {{date}} and {{unknown}} and {date}"
    assert cli("run-now", "Agent").code == 0
    again = seen.read_text()
    assert f"Since: {first.started_at.isoformat()}" in again
    assert "Before: Brief for Agent" in again  # the previous run's stdout, as it was printed
