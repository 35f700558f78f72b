"""Rendering run blocks and digests: readable in Obsidian, deterministic, and unbreakable by
whatever a command prints."""

from __future__ import annotations

import random
import re
from dataclasses import replace
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from vaultsched.core import views
from vaultsched.core.blocks import (
    DIGEST,
    RUNS,
    RUNS_BEGIN,
    RUNS_END,
    Markers,
    find_block,
    has_conflict_markers,
    has_malformed_markers,
    splice_block,
)
from vaultsched.core.model import ATTENTION, FAILURES, Run, Status, Trigger
from vaultsched.core.views import (
    ICONS,
    commit_message,
    fence_output,
    render_digest_block,
    render_runs_block,
)

UTC_ZONE = ZoneInfo("UTC")
WARSAW = ZoneInfo("Europe/Warsaw")
MD = MarkdownIt("commonmark")


def at(hour: int, minute: int = 0, second: int = 0, day: int = 2) -> datetime:
    return datetime(2024, 5, day, hour, minute, second, tzinfo=UTC)


def make_run(
    task: str = "Tasks/Daily briefing",
    status: Status = Status.SUCCESS,
    started: datetime | None = None,
    **fields: object,
) -> Run:
    run = Run(
        run_id=f"run-{task}-{status}",
        task=task,
        status=status,
        trigger=Trigger.SCHEDULE,
        started_at=started or at(7),
        host="laptop",
        exit_code=0 if status is Status.SUCCESS else 1,
        duration_s=1.5,
    )
    return replace(run, **fields)  # type: ignore[arg-type]


def block_inner(text: str, markers: Markers) -> str:
    span = find_block(text, markers)
    assert span is not None
    block = text[span[0] : span[1]].replace("\r\n", "\n")
    return block[block.index("\n") + 1 : block.rindex("\n") + 1]


def fences(markdown: str) -> list[str]:
    return [t.content for t in MD.parse(markdown) if t.type in ("fence", "code_block")]


# -- the run block ----------------------------------------------------------------------------


def test_run_block_example() -> None:
    runs = [
        make_run(
            status=Status.FAILED,
            started=at(5, 0, 3),
            exit_code=2,
            duration_s=3.21,
            output_tail="fetching feed\nerror: HTTP 503\n",
        ),
        make_run(started=at(5, day=1), trigger=Trigger.MANUAL, duration_s=74.4, host="server"),
    ]
    assert render_runs_block(runs, WARSAW) == (
        "## Runs\n"
        "\n"
        "> [!failure] 2024-05-02 07:00:03 · failed\n"
        "> trigger: schedule · exit code: 2 · duration: 3.2s · host: laptop\n"
        ">\n"
        "> ```\n"
        "> fetching feed\n"
        "> error: HTTP 503\n"
        "> ```\n"
        "\n"
        "> [!success]- 2024-05-01 07:00:00 · success\n"
        "> trigger: manual · exit code: 0 · duration: 1m14s · host: server\n"
        "\n"
    )


@pytest.mark.parametrize(
    ("status", "callout"),
    [
        (Status.SUCCESS, "success"),
        (Status.FAILED, "failure"),
        (Status.TIMEOUT, "failure"),
        (Status.ERROR, "failure"),
        (Status.INTERRUPTED, "failure"),
        (Status.SKIPPED, "warning"),
        (Status.UNTRUSTED, "warning"),
        (Status.AWAITING_APPROVAL, "warning"),
        (Status.RUNNING, "info"),
    ],
)
def test_callout_kind_follows_status(status: Status, callout: str) -> None:
    older = make_run(status=status, started=at(6))
    text = render_runs_block([make_run(status=status), older], UTC_ZONE)
    assert f"> [!{callout}] 2024-05-02 07:00:00 · {status}\n" in text
    assert f"> [!{callout}]- 2024-05-02 06:00:00 · {status}\n" in text


def test_every_status_renders() -> None:
    for status in Status:
        assert f"· {status}" in render_runs_block([make_run(status=status)], UTC_ZONE)


def test_only_the_newest_run_is_unfolded() -> None:
    runs = [make_run(started=at(hour)) for hour in (9, 8, 7, 6)]
    titles = re.findall(r"^> \[!success\](-?) ", render_runs_block(runs, UTC_ZONE), re.M)
    assert titles == ["", "-", "-", "-"]


def test_runs_are_shown_in_the_order_given() -> None:
    runs = [make_run(started=at(hour)) for hour in (9, 6, 8)]
    stamps = re.findall(r"2024-05-02 (\d\d):00:00", render_runs_block(runs, UTC_ZONE))
    assert stamps == ["09", "06", "08"]


def test_missing_values_and_retries() -> None:
    run = make_run(
        status=Status.RUNNING, exit_code=None, duration_s=None, attempt=3, trigger=Trigger.RETRY
    )
    assert "> trigger: retry · attempt: 3 · exit code: — · duration: — · host: laptop\n" in (
        render_runs_block([run], UTC_ZONE)
    )


def test_message_is_shown_and_empty_output_gets_no_fence() -> None:
    run = make_run(status=Status.ERROR, message="cwd does not exist", output_tail=" \n\n")
    text = render_runs_block([run], UTC_ZONE)
    assert "\n>\n> message: cwd does not exist\n" in text
    assert "```" not in text


@pytest.mark.parametrize("message", ["```", "~~~", "# heading", "> quote", "- item", "    x"])
def test_a_message_cannot_open_a_block_that_unfences_the_output(message: str) -> None:
    run = make_run(status=Status.ERROR, message=message, output_tail="%% not a comment\n")
    assert fences(render_runs_block([run], UTC_ZONE)) == ["%% not a comment\n"]


def test_notice_comes_first_as_a_warning() -> None:
    notice = "the last run was cut short"
    text = render_runs_block([make_run()], UTC_ZONE, notice=notice)
    assert text.startswith(f"## Runs\n\n> [!warning] Needs attention\n> {notice}\n\n> [!success] ")


@pytest.mark.parametrize(
    ("status", "title", "command"),
    [
        (Status.UNTRUSTED, "Not run until you trust it", 'vaultsched trust "Tasks/X"'),
        (Status.AWAITING_APPROVAL, "Waiting for your approval", 'vaultsched approve "Tasks/X"'),
    ],
)
def test_a_run_waiting_for_a_person_shows_its_command_as_code_once(
    status: Status, title: str, command: str
) -> None:
    notice = f"it is new; review it, then run: {command}"
    runs = [make_run("Tasks/X", status, message=notice)] * 2
    text = render_runs_block(runs, UTC_ZONE, notice=notice)
    assert text.startswith(
        f"## Runs\n\n> [!warning] {title}\n> it is new; review it, then run: `{command}`\n\n"
    )
    # The newest run does not repeat the notice; an older one keeps its own message.
    assert text.count(command) == 2 and text.count(f"> message: {notice}\n") == 1


def test_no_runs() -> None:
    assert render_runs_block([], UTC_ZONE) == "## Runs\n\nNo runs yet.\n\n"


def test_start_time_is_shown_in_the_tasks_zone() -> None:
    run = make_run(started=datetime(2024, 10, 27, 0, 30, tzinfo=UTC))
    assert "2024-10-27 02:30:00" in render_runs_block([run], WARSAW)  # still CEST
    run = make_run(started=datetime(2024, 10, 27, 1, 30, tzinfo=UTC))
    assert "2024-10-27 02:30:00" in render_runs_block([run], WARSAW)  # CET: the repeated hour


HOSTILE = f"a\r\n{RUNS_END}\rb\n%% hidden"


@pytest.mark.parametrize(
    "run",
    [make_run(status=Status.ERROR, message=HOSTILE), make_run(host=HOSTILE)],
    ids=["message", "host"],
)
def test_free_text_fields_cannot_escape_their_line(run: Run) -> None:
    text = render_runs_block([run], UTC_ZONE)
    assert f"\n{RUNS_END}" not in text
    assert "%%" not in text.replace("%\\%", "")  # no Obsidian comment can open
    note = splice_block("Body\n", RUNS, text)
    assert block_inner(note, RUNS) == text
    assert not has_malformed_markers(note, RUNS)


# -- fencing output ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "fence"),
    [
        ("plain", "```"),
        ("one ` tick", "```"),
        ("``` three", "````"),
        ("````\nfour", "`````"),
        ("x ``````` seven", "````````"),
    ],
)
def test_fence_is_longer_than_any_backtick_run(text: str, fence: str) -> None:
    assert fence_output(text) == f"{fence}\n{text}\n{fence}"


def test_fence_output_normalises_line_breaks_and_drops_trailing_newlines() -> None:
    assert fence_output("a\r\nb\rc\n\n") == "```\na\nb\nc\n```"
    assert fence_output("\n\nlead") == "```\n\n\nlead\n```"
    assert fence_output("") == "```\n```"


TRICKY_OUTPUTS = {
    "backticks": "before\n```\ninside?\n```\nafter",
    "four-backticks": "````\n`````python\n``",
    "tildes": "~~~\nx\n~~~~",
    "front-matter-fence": "---\ntitle: x\n---",
    "obsidian-comment": "%%\nhidden?\n%%",
    "end-marker": f"{RUNS_END}\nmore",
    "both-markers": f"{RUNS_BEGIN}\n  {RUNS_END}  \n{RUNS_BEGIN}",
    "digest-markers": "%% vaultsched:digest:end %%\n%% vaultsched:digest:begin %%",
    "conflict-markers": "<<<<<<< HEAD\nours\n=======\ntheirs\n>>>>>>> other",
    "links": "see [[Other note]] and [[Tasks/X|alias]] and ![[embed.png]]",
    "crlf": "line one\r\nline two\r\n\r\nline four\r\n",
    "lone-cr": f"progress 10%\rprogress 100%\r{RUNS_END}",
    "quote-and-callout": "> [!danger] fake\n> quoted",
    "html": "<!--\n<div>\n<script>",
    "indented": "    four spaces\n\tand a tab",
    "unicode": "Zażółć gęślą jaźń 🙂 — ✓",
    "blank-lines": "a\n\n\n\nb",
}


@pytest.mark.parametrize("output", TRICKY_OUTPUTS.values(), ids=TRICKY_OUTPUTS.keys())
@pytest.mark.parametrize("newline", ["\n", "\r\n"], ids=["lf", "crlf"])
def test_tricky_output_stays_inside_one_fence_of_the_block(output: str, newline: str) -> None:
    note = (
        "---\n# keep me\nschedule: '@daily'\ncommand: ./briefing.sh\n---\n"
        f"Body mentioning `{RUNS_BEGIN}` inline.\n"
    ).replace("\n", newline)
    runs = [
        make_run(status=Status.FAILED, output_tail=output),
        make_run(started=at(6), output_tail=output),
    ]
    inner = render_runs_block(runs, UTC_ZONE)
    spliced = splice_block(note, RUNS, inner)
    assert spliced.startswith(note)
    assert block_inner(spliced, RUNS) == inner
    assert not has_malformed_markers(spliced, RUNS)
    assert not has_conflict_markers(spliced)
    # The same block is found after another splice, with nothing else changed.
    assert splice_block(spliced, RUNS, inner) == spliced
    expected = re.sub(r"\r\n|\r", "\n", output).rstrip("\n") + "\n"
    if "\t" not in output:  # a tab right after `> ` is partly eaten as the quote's space
        assert fences(inner) == [expected, expected]
    else:
        assert len(fences(inner)) == 2


def test_every_callout_line_is_quoted() -> None:
    runs = [make_run(output_tail="\n".join(TRICKY_OUTPUTS.values()), message="m")]
    lines = render_runs_block(runs, UTC_ZONE).split("\n")
    assert lines[:2] == ["## Runs", ""]
    body = [line for line in lines[2:] if line]
    assert body
    assert all(line == ">" or line.startswith("> ") for line in body)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(output=st.text(), message=st.text(max_size=40), host=st.text(max_size=20))
def test_no_output_can_break_the_block(output: str, message: str, host: str) -> None:
    run = make_run(status=Status.FAILED, output_tail=output, message=message, host=host)
    inner = render_runs_block([run, run], UTC_ZONE)
    note = splice_block(f"Body\n\n{RUNS_BEGIN}\nold\n{RUNS_END}\nafter", RUNS, inner)
    assert note.startswith("Body\n\n") and note.endswith(f"{RUNS_END}\nafter")
    assert block_inner(note, RUNS) == inner
    assert not has_malformed_markers(note, RUNS)
    assert not has_conflict_markers(note)
    assert len(fences(inner)) == (2 if output.strip() else 0)


# -- the digest -------------------------------------------------------------------------------


def day_runs() -> list[Run]:
    return [
        make_run("Tasks/Backup", started=at(1), duration_s=620, host="server"),
        make_run("Tasks/Daily briefing", Status.FAILED, at(5), duration_s=3.21),
        make_run("Tasks/Sync inbox", Status.UNTRUSTED, at(6), exit_code=None, duration_s=None),
        make_run(
            "Projects/Deploy",
            Status.AWAITING_APPROVAL,
            at(7),
            exit_code=None,
            duration_s=None,
            host="server",
        ),
        make_run("Tasks/Backup", Status.TIMEOUT, at(8), duration_s=3600, attempt=2),
        make_run("Tasks/Watch", Status.RUNNING, at(9), exit_code=None, duration_s=None),
    ]


def test_digest_example() -> None:
    pending = [("Tasks/Report", "awaiting approval since 2024-05-01 09:00")]
    assert render_digest_block(date(2024, 5, 2), day_runs(), WARSAW, pending=pending) == (
        "## vaultsched — 2024-05-02\n"
        "\n"
        "6 runs · 2 failed\n"
        "\n"
        "### Needs attention\n"
        "\n"
        "- ❌ [[Tasks/Backup|Backup]] — timeout at 10:00:00: "
        'look at `vaultsched history "Tasks/Backup"`, then `vaultsched run-now "Tasks/Backup"`\n'
        "- ⏳ [[Projects/Deploy|Deploy]] — awaiting_approval at 09:00:00: "
        '`vaultsched approve "Projects/Deploy"`\n'
        "- 🔒 [[Tasks/Sync inbox|Sync inbox]] — untrusted at 08:00:00: "
        '`vaultsched trust "Tasks/Sync inbox"`\n'
        "- ❌ [[Tasks/Daily briefing|Daily briefing]] — failed at 07:00:00: "
        'look at `vaultsched history "Tasks/Daily briefing"`, '
        'then `vaultsched run-now "Tasks/Daily briefing"`\n'
        "- ⏳ [[Tasks/Report|Report]] — awaiting approval since 2024-05-01 09:00\n"
        "\n"
        "### Runs\n"
        "\n"
        "- 🔄 11:00:00 [[Tasks/Watch|Watch]] — running · — · laptop\n"
        "- ❌ 10:00:00 [[Tasks/Backup|Backup]] — timeout · 1h00m · laptop\n"
        "- ⏳ 09:00:00 [[Projects/Deploy|Deploy]] — awaiting_approval · — · server\n"
        "- 🔒 08:00:00 [[Tasks/Sync inbox|Sync inbox]] — untrusted · — · laptop\n"
        "- ❌ 07:00:00 [[Tasks/Daily briefing|Daily briefing]] — failed · 3.2s · laptop\n"
        "- ✅ 03:00:00 [[Tasks/Backup|Backup]] — success · 10m20s · server\n"
        "\n"
    )


def test_digest_is_deterministic_whatever_the_input_order() -> None:
    runs = [*day_runs(), make_run("Tasks/Same time", started=at(5)), make_run(started=at(5))]
    pending = [("Tasks/B", "b"), ("Tasks/A", "a")]
    expected = render_digest_block(date(2024, 5, 2), runs, UTC_ZONE, pending=pending)
    rng = random.Random(7)
    for _ in range(20):
        rng.shuffle(runs)
        rng.shuffle(pending)
        assert render_digest_block(date(2024, 5, 2), runs, UTC_ZONE, pending=pending) == expected


@pytest.mark.parametrize(
    "status",
    [Status.FAILED, Status.TIMEOUT, Status.ERROR, Status.INTERRUPTED],
)
def test_failures_count_and_ask_for_history_then_run_now(status: Status) -> None:
    text = render_digest_block(date(2024, 5, 2), [make_run("Tasks/X", status)], UTC_ZONE)
    assert "1 run · 1 failed" in text
    assert (
        f'- ❌ [[Tasks/X|X]] — {status} at 07:00:00: look at `vaultsched history "Tasks/X"`, '
        'then `vaultsched run-now "Tasks/X"`'
    ) in text


@pytest.mark.parametrize(
    ("status", "command", "icon"),
    [(Status.UNTRUSTED, "trust", "🔒"), (Status.AWAITING_APPROVAL, "approve", "⏳")],
)
def test_waiting_runs_are_not_failures_but_need_attention(
    status: Status, command: str, icon: str
) -> None:
    text = render_digest_block(date(2024, 5, 2), [make_run("Tasks/X", status)], UTC_ZONE)
    assert "1 run · 0 failed" in text
    assert f'- {icon} [[Tasks/X|X]] — {status} at 07:00:00: `vaultsched {command} "Tasks/X"`' in (
        text
    )


@pytest.mark.parametrize("status", [Status.SUCCESS, Status.SKIPPED, Status.RUNNING])
def test_quiet_statuses_need_no_attention(status: Status) -> None:
    assert status not in ATTENTION
    text = render_digest_block(date(2024, 5, 2), [make_run("Tasks/X", status)], UTC_ZONE)
    assert "Needs attention" not in text
    assert "0 failed" in text


def test_only_a_tasks_latest_run_of_the_day_counts_for_attention() -> None:
    runs = [
        make_run("Tasks/Fixed", Status.FAILED, at(6)),
        make_run("Tasks/Fixed", Status.SUCCESS, at(7)),
        make_run("Tasks/Broke", Status.SUCCESS, at(6)),
        make_run("Tasks/Broke", Status.ERROR, at(7)),
    ]
    text = render_digest_block(date(2024, 5, 2), runs, UTC_ZONE)
    attention = text.split("### Needs attention\n\n")[1].split("\n\n")[0]
    assert attention.splitlines() == [
        "- ❌ [[Tasks/Broke|Broke]] — error at 07:00:00: "
        'look at `vaultsched history "Tasks/Broke"`, then `vaultsched run-now "Tasks/Broke"`'
    ]
    assert "4 runs · 2 failed" in text


def test_pending_entries_are_listed_once_per_task() -> None:
    runs = [make_run("Tasks/X", Status.AWAITING_APPROVAL)]
    pending = [("Tasks/X", "pending since yesterday"), ("Tasks/Y", "pending\nsince %%Monday")]
    text = render_digest_block(date(2024, 5, 2), runs, UTC_ZONE, pending=pending)
    assert "pending since yesterday" not in text
    assert "- ⏳ [[Tasks/Y|Y]] — pending since %\\%Monday\n" in text


def test_pending_alone_shows_attention_on_a_day_without_runs() -> None:
    text = render_digest_block(date(2024, 5, 2), [], UTC_ZONE, pending=[("Tasks/Y", "waiting")])
    assert text == (
        "## vaultsched — 2024-05-02\n\n0 runs · 0 failed\n\n"
        "### Needs attention\n\n- ⏳ [[Tasks/Y|Y]] — waiting\n\n### Runs\n\nNo runs.\n\n"
    )


def test_digest_times_are_in_the_given_zone() -> None:
    text = render_digest_block(date(2024, 5, 2), [make_run(started=at(22, 15, 9))], WARSAW)
    assert "- ✅ 00:15:09 [[Tasks/Daily briefing|Daily briefing]]" in text


def test_digest_lists_the_days_runs_newest_first() -> None:
    runs = [make_run(f"Tasks/T{hour}", started=at(hour)) for hour in (9, 6, 8, 7)]
    text = render_digest_block(date(2024, 5, 2), runs, UTC_ZONE)
    listed = re.findall(r"^- ✅ (\d\d):00:00 ", text.split("### Runs")[1], re.M)
    assert listed == ["09", "08", "07", "06"]


def test_every_status_has_an_icon_and_a_failure_never_looks_like_a_success() -> None:
    assert set(ICONS) == set(Status)
    assert all(ICONS[status] != ICONS[Status.SUCCESS] for status in ATTENTION | FAILURES)
    for status in Status:
        text = render_digest_block(date(2024, 5, 2), [make_run("Tasks/X", status)], UTC_ZONE)
        assert f"- {ICONS[status]} 07:00:00 [[Tasks/X|X]] — {status} · " in text


def test_a_chained_run_names_the_task_it_ran_after() -> None:
    upstream = make_run("Tasks/Inbox briefing", started=at(7), run_id="up-1")
    chained = make_run(
        "Tasks/Draft", started=at(7, 0, 2), trigger=Trigger.AFTER, upstream_run="up-1"
    )
    text = render_digest_block(date(2024, 5, 2), [upstream, chained], UTC_ZONE)
    assert (
        "- ✅ 07:00:02 [[Tasks/Draft|Draft]] — success · after "
        "[[Tasks/Inbox briefing|Inbox briefing]] · 1.5s · laptop\n"
    ) in text
    # An upstream run of another day is not in this digest: the trigger alone is shown.
    alone = render_digest_block(date(2024, 5, 2), [chained], UTC_ZONE)
    assert "— success · after · 1.5s · laptop\n" in alone


@pytest.mark.parametrize("trigger", [Trigger.MANUAL, Trigger.APPROVED, Trigger.RETRY])
def test_a_run_not_fired_by_its_schedule_says_what_started_it(trigger: Trigger) -> None:
    text = render_digest_block(date(2024, 5, 2), [make_run(trigger=trigger)], UTC_ZONE)
    assert f"— success · {trigger} · 1.5s · laptop\n" in text


def test_digest_uses_a_list_not_a_table() -> None:
    text = render_digest_block(date(2024, 5, 2), day_runs(), UTC_ZONE)
    assert not [line for line in text.splitlines() if line.startswith("|")]
    assert all(t.type != "table_open" for t in MarkdownIt("commonmark").enable("table").parse(text))


@pytest.mark.parametrize(
    ("task", "link", "command"),
    [
        ("Top level", "[[Top level|Top level]]", '`vaultsched trust "Top level"`'),
        ("a/b/Deep note", "[[a/b/Deep note|Deep note]]", '`vaultsched trust "a/b/Deep note"`'),
        ("Tasks/a|b", "`Tasks/a|b`", '`vaultsched trust "Tasks/a|b"`'),
        ("Tasks/C# notes", "`Tasks/C# notes`", '`vaultsched trust "Tasks/C# notes"`'),
        ("Tasks/$HOME", "[[Tasks/$HOME|$HOME]]", "`vaultsched trust 'Tasks/$HOME'`"),
        ('Tasks/say "hi"', '[[Tasks/say "hi"|say "hi"]]', "`vaultsched trust 'Tasks/say \"hi\"'`"),
        ("Tasks/it's `x`", "`` Tasks/it's `x` ``", None),
    ],
)
def test_task_ids_are_linked_and_quoted_safely(task: str, link: str, command: str | None) -> None:
    text = render_digest_block(date(2024, 5, 2), [make_run(task, Status.UNTRUSTED)], UTC_ZONE)
    assert f"- 🔒 {link} — untrusted at 07:00:00: " in text
    if command is not None:
        assert f"- 🔒 {link} — untrusted at 07:00:00: {command}\n" in text


def test_backticks_in_an_id_get_a_longer_code_span() -> None:
    runs = [make_run("Tasks/a`b", Status.UNTRUSTED)]
    text = render_digest_block(date(2024, 5, 2), runs, UTC_ZONE)
    assert "``vaultsched trust 'Tasks/a`b'``" in text


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tasks=st.lists(st.text(min_size=1, max_size=15), min_size=1, max_size=4),
    host=st.text(max_size=15),
    reason=st.text(max_size=30),
    statuses=st.lists(st.sampled_from(list(Status)), min_size=1, max_size=4),
)
def test_no_task_id_host_or_reason_can_break_the_digest(
    tasks: list[str], host: str, reason: str, statuses: list[Status]
) -> None:
    runs = [
        make_run(task, status, at(7, i), host=host)
        for i, (task, status) in enumerate(zip(tasks, statuses, strict=False))
    ]
    inner = render_digest_block(date(2024, 5, 2), runs, UTC_ZONE, pending=[(tasks[0], reason)])
    note = splice_block("# My day\r\n\r\nNotes\r\n", DIGEST, inner)
    assert note.startswith("# My day\r\n\r\nNotes\r\n")
    assert block_inner(note, DIGEST) == inner
    assert not has_malformed_markers(note, DIGEST)
    assert not has_conflict_markers(note)
    assert fences(inner) == []


# -- workflow statuses and output notes -------------------------------------------------------


def test_a_successful_run_links_its_output_note() -> None:
    run = make_run(output_note="Briefings/2024-05-02.md")
    text = render_runs_block([run], UTC_ZONE)
    assert (
        "> trigger: schedule · exit code: 0 · duration: 1.5s · host: laptop"
        " · [[Briefings/2024-05-02|output]]\n"
    ) in text


@pytest.mark.parametrize("status", [Status.FAILED, Status.TIMEOUT, Status.SKIPPED])
def test_a_run_that_wrote_no_output_note_does_not_link_it(status: Status) -> None:
    run = make_run(status=status, output_note="Briefings/2024-05-02.md")
    assert "Briefings" not in render_runs_block([run], UTC_ZONE)


@pytest.mark.parametrize("path", ["a]]b.md", "a|b.md", "a#b.md", "a^b.md", "a%%b.md", "a`b.md"])
def test_an_output_note_a_wikilink_cannot_hold_is_shown_as_code(path: str) -> None:
    text = render_runs_block([make_run(output_note=path)], UTC_ZONE)
    details = text.split("host: laptop")[1].split("\n")[0]
    assert "[[" not in details and details.startswith(" · output: `")


@pytest.mark.parametrize(
    ("status", "callout"),
    [(Status.SKIPPED, "warning"), (Status.MISSED, "warning"), (Status.BLOCKED, "failure")],
)
def test_a_run_that_did_not_go_ahead_shows_its_reason(status: Status, callout: str) -> None:
    run = make_run(status=status, exit_code=None, duration_s=0.0, message="unchanged")
    text = render_runs_block([run], UTC_ZONE)
    assert f"> [!{callout}] 2024-05-02 07:00:00 · {status}\n" in text
    assert "\n>\n> reason: unchanged\n" in text


def test_the_digest_counts_skipped_missed_blocked_and_lost_when_there_are_any() -> None:
    statuses = [Status.SUCCESS] * 6 + [Status.FAILED]
    statuses += [Status.SKIPPED] * 2 + [Status.MISSED, Status.BLOCKED, Status.LOST]
    runs = [make_run(f"Tasks/T{i}", s) for i, s in enumerate(statuses)]
    text = render_digest_block(date(2024, 5, 2), runs, UTC_ZONE)
    assert "\n12 runs · 1 failed · 2 skipped · 1 missed · 1 blocked · 1 lost\n" in text
    quiet = render_digest_block(date(2024, 5, 2), runs[:7], UTC_ZONE)
    assert "\n7 runs · 1 failed\n" in quiet


def test_blocked_and_lost_need_attention_with_a_hint_and_skipped_missed_do_not() -> None:
    runs = [
        make_run("Tasks/B", Status.BLOCKED, exit_code=None, message="disk not mounted"),
        make_run("Tasks/L", Status.LOST, at(8), exit_code=None),
        make_run("Tasks/S", Status.SKIPPED, exit_code=None, message="unchanged"),
        make_run("Tasks/M", Status.MISSED, exit_code=None, message="outside its window"),
    ]
    text = render_digest_block(date(2024, 5, 2), runs, UTC_ZONE)
    attention = text.split("### Needs attention\n\n")[1].split("\n\n")[0]
    assert attention.splitlines() == [
        '- ❌ [[Tasks/L|L]] — lost at 08:00:00: look at `vaultsched history "Tasks/L"`, '
        'then `vaultsched run-now "Tasks/L"` (it started and was never heard of again)',
        '- ❌ [[Tasks/B|B]] — blocked at 07:00:00: look at `vaultsched history "Tasks/B"`, '
        'then `vaultsched run-now "Tasks/B"` once its check passes — disk not mounted',
    ]
    assert "- ⏭ 07:00:00 [[Tasks/S|S]] — skipped · 1.5s · laptop · unchanged\n" in text
    assert "[[Tasks/M|M]] — missed · 1.5s · laptop · outside its window\n" in text


def test_a_long_reason_in_the_digest_is_cut_and_kept_on_its_line() -> None:
    run = make_run(status=Status.SKIPPED, message="x" * 500 + "\n%%")
    text = render_digest_block(date(2024, 5, 2), [run], UTC_ZONE)
    item = next(line for line in text.splitlines() if "skipped ·" in line)
    assert item.endswith("x…") and len(item) < 250


def test_commit_messages_do_not_count_skipped_or_missed_as_failures() -> None:
    runs = [
        make_run("Tasks/A", Status.SKIPPED),
        make_run("Tasks/B", Status.MISSED),
        make_run("Tasks/C", Status.FAILED),
    ]
    assert commit_message(runs) == "vaultsched: 3 runs (1 failed)"
    assert commit_message(runs[:1]) == "vaultsched: skipped Tasks/A"


def test_a_digest_rendered_again_as_runs_land_is_the_digest_rendered_afresh() -> None:
    """Its lines are kept from one rendering to the next: a run that changed (finished), or
    whose upstream run came since, must still read as a first rendering has it."""
    upstream = make_run("Tasks/Fetch", started=at(6), run_id="up")
    chained = make_run("Tasks/Report", started=at(7), trigger=Trigger.AFTER, upstream_run="up")
    running = make_run("Tasks/Backup", Status.RUNNING, started=at(8), exit_code=None)
    day = date(2024, 5, 2)
    render_digest_block(day, [chained, running], WARSAW)  # lines kept
    later = [upstream, chained, replace(running, status=Status.FAILED, exit_code=2)]
    again = render_digest_block(day, later, WARSAW)
    views._lines_kept.clear()
    assert again == render_digest_block(day, later, WARSAW)
    assert "after [[Tasks/Fetch|Fetch]]" in again and "🔄" not in again
