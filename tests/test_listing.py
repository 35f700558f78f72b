"""`list` asks the vault's running daemon for its rows (adapters/query.py, cli/listing.py): the
answer must be the walk's, and no peer or answer may make `list` fail, hang or say otherwise."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import typer
from conftest import Cli, DaemonProcess, InProcess, task_note, wait_for

from vaultsched.adapters import query
from vaultsched.adapters.query import Handoff, QueryServer, daemon_socket, socket_path
from vaultsched.adapters.vault import build_index
from vaultsched.cli.app import _named, click_command
from vaultsched.cli.listing import ASK_DAEMON, ROW_SHAPE, context, from_daemon, rows_of
from vaultsched.cli.reports import ListRow
from vaultsched.trust.config import open_vault

NOW = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


def notes(root: Path) -> None:
    task_note(root, "Tasks/Yearly.md", 'schedule: "0 0 1 1 *"\ncommand: echo a\n')
    task_note(root, "Tasks/Manual.md", "command: echo b\n")
    task_note(root, "Tasks/After.md", 'after: "[[Manual]]"\ncommand: echo c\n')
    task_note(root, "Tasks/Broken.md", "schedule: bogus\ncommand: echo d\n")
    task_note(root, "Tasks/Gone.md", "command: echo e\n")


def walked(root: Path, now: datetime = NOW) -> list[ListRow]:
    vault = open_vault(root)
    return rows_of(vault, build_index(vault), now)


@pytest.mark.integration
def test_list_through_the_daemon_is_the_walk_after_edits(
    vault_root: Path,
    daemons: Callable[..., DaemonProcess],
    cli: Cli,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    notes(vault_root)
    daemon = daemons(vault_root)
    root = str(vault_root.resolve())
    wait_for(lambda: daemon_socket(root) is not None, what="the daemon's socket")
    # Edits while it runs: a schedule changed, a task added, one removed, one made invalid.
    task_note(vault_root, "Tasks/Yearly.md", 'schedule: "0 0 1 6 *"\ncommand: echo a\n')
    task_note(vault_root, "Tasks/New.md", 'schedule: "0 0 1 1 *"\ncommand: echo f\n')
    (vault_root / "Tasks/Gone.md").unlink()
    task_note(vault_root, "Tasks/Manual.md", "command: [echo\n")
    vault = open_vault(vault_root)

    def taken_in() -> bool:
        rows = from_daemon(vault, NOW)
        return rows is not None and [r["task"] for r in rows] == [
            r["task"] for r in walked(vault_root)
        ]

    wait_for(taken_in, what="the daemon to take the edits in")
    through = from_daemon(vault, NOW)
    assert through is not None  # the daemon answered: not the walk
    assert through == walked(vault_root)
    assert "0 0 1 6 *" in json.dumps(through)
    # The command line, both ways: the same bytes.
    asked = cli("list", "--json")
    monkeypatch.setenv(ASK_DAEMON, "0")
    assert asked.code == 0
    assert asked.out == cli("list", "--json").out
    assert daemon.stop() == 0
    assert daemon_socket(root) is None  # removed on the way out


@pytest.mark.integration
def test_a_dead_daemons_socket_is_walked_past_and_replaced(
    vault_root: Path, daemons: Callable[..., DaemonProcess], vs: InProcess
) -> None:
    notes(vault_root)
    root = str(vault_root.resolve())
    stale = bound(socket_path(root))
    stale.close()  # its file stays: a daemon killed outright
    assert daemon_socket(root) is not None
    assert from_daemon(open_vault(vault_root), NOW) is None  # refused: nobody listens
    assert [r["task"] for r in vs.json("list")] == [r["task"] for r in walked(vault_root)]
    daemons(vault_root)
    wait_for(lambda: from_daemon(open_vault(vault_root), NOW) is not None, what="an answer")


def bound(path: Path) -> socket.socket:
    path.parent.mkdir(mode=0o700, exist_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(4)
    return sock


@pytest.fixture
def peer(vault_root: Path) -> Iterator[Callable[..., None]]:
    """A peer listening where the vault's daemon would, answering each question with the
    bytes given, then closing (`stall`: then waiting instead, past any timeout)."""
    sock = bound(socket_path(str(vault_root.resolve())))
    stop = threading.Event()
    reply: list[tuple[bytes, bool]] = [(b"", False)]

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                while conn.recv(65536):
                    pass
                data, stall = reply[0]
                conn.sendall(data)
                if stall:
                    stop.wait(5)

    def answer(data: bytes, *, stall: bool = False) -> None:
        reply[0] = (data, stall)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield answer
    stop.set()
    sock.shutdown(socket.SHUT_RDWR)
    sock.close()
    thread.join(5)


def forged(root: Path, rows: object) -> bytes:
    """An answer in the right form, for this vault, with `rows` in it."""
    answer = {"context": context(open_vault(root)), "rows": rows}
    return query.ACCEPTED + json.dumps(answer).encode()


FAKE_ROW = {
    "task": "Tasks/Forged",
    "path": "Tasks/Forged.md",
    "schedule": [],
    "after": [],
    "enabled": True,
    "trusted": True,
    "valid": True,
    "errors": [],
    "next_run": None,
    "last_run": None,
    "last_status": None,
    "not_run_since": None,
}


@pytest.mark.parametrize(
    ("answer", "stall"),
    [
        (b"", False),
        (b"\x00\xff garbage", False),
        (b"+\x00\xff garbage", False),
        (b"+[]", False),
        (b'+{"busy": "rescanning"}', False),
        (b"+" + b"[" * 200_000 + b"]" * 200_000, False),  # nested past any recursion limit
        (b'+{"context": "another vault", "rows": []}', False),
        ("wrong types", False),
        ("a row too many keys", False),
        (b"", True),  # the question never taken: past the first timeout
        (b"+", True),  # taken, never answered: past the second
        (b'+{"context": ', True),  # half an answer
    ],
)
def test_an_answer_that_cannot_be_used_means_the_walk(
    vault_root: Path,
    peer: Callable[..., None],
    *,
    vs: InProcess,
    monkeypatch: pytest.MonkeyPatch,
    answer: object,
    stall: bool,
) -> None:
    notes(vault_root)
    expected = vs.json("list")  # the peer answers "" so far: the walk
    monkeypatch.setattr(query, "ACCEPT_TIMEOUT", 0.3)
    monkeypatch.setattr(query, "ANSWER_TIMEOUT", 0.3)
    if answer == "wrong types":
        answer = forged(vault_root, [{**FAKE_ROW, "valid": "yes"}])
    elif answer == "a row too many keys":
        answer = forged(vault_root, [{**FAKE_ROW, "run": "rm -rf ~"}])
    assert isinstance(answer, bytes)
    peer(answer, stall=stall)
    assert vs.json("list") == expected
    assert "Tasks/Forged" not in vs("list").out


def test_an_answer_is_used_only_from_a_folder_of_this_users_alone(
    vault_root: Path, peer: Callable[..., None], vs: InProcess
) -> None:
    """The test of the test: a well-formed answer is taken (the daemon is this user, as the
    socket's owner and its peer credentials show) ... unless others may write the folder."""
    notes(vault_root)
    expected = vs.json("list")
    peer(forged(vault_root, [FAKE_ROW]))
    assert vs.json("list") == [FAKE_ROW]
    folder = socket_path(str(vault_root.resolve())).parent
    folder.chmod(0o770)
    assert vs.json("list") == expected
    folder.chmod(0o700)


def test_the_option_turns_the_question_off(
    vault_root: Path,
    peer: Callable[..., None],
    vs: InProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    notes(vault_root)
    peer(forged(vault_root, [FAKE_ROW]))
    monkeypatch.setenv(ASK_DAEMON, "0")
    assert "Tasks/Forged" not in vs("list").out
    assert [r["task"] for r in vs.json("list")] == [r["task"] for r in walked(vault_root)]


def test_a_server_survives_bad_questions_and_says_the_asker_its_context(
    vault_root: Path,
) -> None:
    notes(vault_root)
    vault = open_vault(vault_root)
    root = str(vault_root.resolve())
    seen: list[dict[str, object]] = []

    def answer(question: dict[str, object]) -> object:
        seen.append(question)
        return {"context": context(vault), "rows": walked(vault_root)}

    server = QueryServer(root, answer)
    assert server.start()
    try:
        for bad in (b"not json", b"[1, 2]", b"\xff" * 70_000):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.connect(str(server.path))
                sock.sendall(bad)
                sock.shutdown(socket.SHUT_WR)
                sock.settimeout(5)
                assert sock.recv(10) == b""  # closed without an answer
        assert from_daemon(vault, NOW) == walked(vault_root)
        assert seen == [{"query": "list", "now": NOW.isoformat(), "context": context(vault)}]
        assert server.path.stat().st_mode & 0o777 == 0o600
        # A second daemon of the same vault does not take the socket of a live one.
        assert not QueryServer(root, answer).start()
        assert from_daemon(vault, NOW) is not None
    finally:
        server.close()
    assert not server.path.exists()


def test_the_daemons_answer_plans_at_the_askers_time_and_refuses_others(
    vault_root: Path,
) -> None:
    from vaultsched.cli.listing import answer

    notes(vault_root)
    vault = open_vault(vault_root)
    question = {"query": "list", "now": NOW.isoformat(), "context": context(vault)}
    assert answer(vault, build_index(vault), question) == {
        "context": context(vault),
        "rows": walked(vault_root),
    }
    for bad in ({**question, "query": "run-now"}, {**question, "now": "2026-03-29T01:30"}):
        assert "rows" not in answer(vault, build_index(vault), bad)  # type: ignore[operator]


def test_rows_from_the_fire_times_planned_already_are_the_rows_planned_again(
    vault_root: Path,
) -> None:
    """`rows_of` hands `list_rows` each task's next fire time as `drop_unplannable` found it,
    rather than working it out twice: the rows are the same either way."""
    from vaultsched.adapters.vault import drop_unplannable
    from vaultsched.cli.reports import list_rows

    notes(vault_root)
    task_note(vault_root, "Tasks/Night.md", "schedule: every 1h\nwindow: 09:00-17:00\ncommand: x\n")
    task_note(vault_root, "Tasks/Ended.md", "schedule: '@daily'\nuntil: 2026-03-01\ncommand: x\n")
    task_note(vault_root, "Tasks/Off.md", "schedule: '@daily'\nenabled: false\ncommand: x\n")
    vault = open_vault(vault_root)
    index = build_index(vault)
    fires = drop_unplannable(index, NOW)
    assert sorted(fires) == sorted(index.tasks) and fires["Tasks/Yearly"]
    rows = list_rows(index, [], NOW, lambda _: True, fires)
    assert rows == list_rows(index, [], NOW, lambda _: True)
    assert {row["task"]: row["next_run"] for row in rows if row["valid"]} == {
        "Tasks/After": None,
        "Tasks/Ended": None,
        "Tasks/Gone": None,
        "Tasks/Manual": None,
        "Tasks/Night": "2026-03-29T09:00:00+00:00",
        "Tasks/Off": None,
        "Tasks/Yearly": "2027-01-01T00:00:00+00:00",
    }


def test_handoff_gives_what_the_loop_gives_or_nothing_in_time() -> None:
    woken = threading.Event()
    handoff: Handoff[str] = Handoff(woken.set)
    assert handoff.ask(0.05) is None  # the loop had nothing settled to give
    assert woken.is_set() and not handoff.wanted

    def loop() -> None:
        while not handoff.wanted:
            woken.wait(0.01)
        handoff.give(None)  # not yet
        handoff.give("index")

    thread = threading.Thread(target=loop)
    thread.start()
    assert handoff.ask(10) == "index"
    thread.join()
    handoff.give("late")  # nobody asks: dropped
    assert handoff.ask(0.02) is None


def test_row_shape_names_every_field_of_a_list_row() -> None:
    assert set(ROW_SHAPE) == ListRow.__required_keys__ | ListRow.__optional_keys__


def test_the_command_named_skips_the_value_of_each_root_option_that_takes_one() -> None:
    root = typer.Typer()

    @root.callback()
    def _root(
        profile: str = typer.Option("default", "--profile", "-p"),
        verbose: bool = typer.Option(False, "--verbose"),
    ) -> None: ...

    @root.command("list")
    def _list() -> None: ...

    command = typer.main.get_command(root)
    assert _named(["--profile", "list", "next"], command) == "next"
    assert _named(["-p", "list", "next"], command) == "next"
    assert _named(["--verbose", "list"], command) == "list"
    assert _named(["--profile=list", "next"], command) == "next"
    # vaultsched's own root: `--vault` takes a value, `--version` does not.
    assert click_command(["--vault", "list", "next"]).commands.keys() == {"next"}  # type: ignore[attr-defined]
    assert click_command(["--version", "list"]).commands.keys() == {"list"}  # type: ignore[attr-defined]
