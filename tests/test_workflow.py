"""Workflows' pure core: `after` references and cycles, windows, output paths, prompts."""

from __future__ import annotations

import posixpath
import unicodedata
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from vaultsched.core.model import Task, Window
from vaultsched.core.workflow import (
    OutputPathError,
    after_cycles,
    after_graph,
    cycle_message,
    expand_output,
    expand_prompt,
    in_window,
    next_window_start,
    resolve_after,
)

LONDON = ZoneInfo("Europe/London")
NEW_YORK = ZoneInfo("America/New_York")
APIA = ZoneInfo("Pacific/Apia")  # skipped the whole of 2011-12-30
RUN_ID = "20240502T070000-a1b2c3"


def task(task_id: str, *after: str, line: int = 1) -> Task:
    return Task(
        id=task_id,
        path=f"{task_id}.md",
        command="true",
        schedules=(),
        timezone=LONDON,
        after=after,
        key_lines={"after": line},
    )


# -- resolve_after ----------------------------------------------------------------------------

IDS = ["Tasks/Backup", "Tasks/Report", "Work/Report", "Inbox/Sync", "Sync"]


@pytest.mark.parametrize(
    ("reference", "expected"),
    [
        ("Tasks/Backup", "Tasks/Backup"),  # an id
        ("Tasks/Backup.md", "Tasks/Backup"),  # an id and .md
        ("Backup", "Tasks/Backup"),  # a note name only one task has
        ("Work/Report", "Work/Report"),  # the end of a path
        ("Sync", "Sync"),  # an exact id wins over the ends of longer ones
        ("backup", "Tasks/Backup"),  # case-blind, when nothing matches as written
    ],
)
def test_a_reference_resolves(reference: str, expected: str) -> None:
    ids, problems = resolve_after(IDS, task("Tasks/Me", reference))
    assert (ids, problems) == ((expected,), [])


def test_a_missing_reference_is_a_problem_naming_it_on_the_after_line() -> None:
    ids, problems = resolve_after(IDS, task("Tasks/Me", "Backup", "Nightly", line=7))
    assert ids == ("Tasks/Backup",)
    assert [str(p) for p in problems] == [
        "Tasks/Me.md:7: after: no task named 'Nightly' in the vault"
    ]


def test_an_ambiguous_reference_is_a_problem_naming_the_candidates() -> None:
    _, problems = resolve_after(IDS, task("Tasks/Me", "Report"))
    assert [p.message for p in problems] == [
        "after: 'Report' could be any of 2 tasks (Tasks/Report, Work/Report): "
        "write its path, e.g. 'Tasks/Report'"
    ]


def test_the_same_task_named_twice_is_one_target() -> None:
    ids, _ = resolve_after(IDS, task("Tasks/Me", "Backup", "Tasks/Backup.md", "Tasks/Backup"))
    assert ids == ("Tasks/Backup",)


def test_the_index_mapping_can_be_passed_as_it_is() -> None:
    tasks = {t.id: t for t in (task("A"), task("B", "A"))}
    assert resolve_after(tasks, tasks["B"]) == (("A",), [])


# -- cycles -----------------------------------------------------------------------------------


def test_cycles() -> None:
    edges = {"A": ["B"], "B": ["A"], "C": ["C"], "D": ["A"], "E": ["F"], "F": []}
    assert after_cycles(edges) == [["A", "B"], ["C"]]


def test_a_ring_and_a_figure_eight() -> None:
    assert after_cycles({"A": ["C"], "B": ["A"], "C": ["B"]}) == [["A", "B", "C"]]
    eight = {"A": ["B"], "B": ["A", "C"], "C": ["B"], "D": ["E"], "E": ["D"]}
    assert after_cycles(eight) == [["A", "B", "C"], ["D", "E"]]


def test_no_cycle_and_unknown_targets() -> None:
    assert after_cycles({"A": ["B", "missing"], "B": ["C"], "C": []}) == []


def test_a_long_chain_does_not_recurse() -> None:
    count = 20_000
    edges = {f"T{i}": [f"T{i + 1}"] for i in range(count)}
    assert after_cycles(edges) == []
    edges[f"T{count}"] = ["T0"]
    assert len(after_cycles(edges)[0]) == count + 1


@given(st.dictionaries(st.sampled_from("ABCDEF"), st.lists(st.sampled_from("ABCDEF"))))
def test_a_task_is_in_a_cycle_exactly_when_it_reaches_itself(edges: dict[str, list[str]]) -> None:
    in_cycles = {node for group in after_cycles(edges) for node in group}
    assert in_cycles == {node for node in edges if node in _reachable(edges, node)}


def _reachable(edges: dict[str, list[str]], start: str) -> set[str]:
    seen: set[str] = set()
    pending = list(edges.get(start, []))
    while pending:
        node = pending.pop()
        if node not in seen:
            seen.add(node)
            pending += edges.get(node, [])
    return seen


def test_every_note_in_a_cycle_gets_a_problem_and_a_missing_target_one() -> None:
    tasks = {
        t.id: t
        for t in (
            task("Tasks/A", "B", line=4),
            task("Tasks/B", "[[Tasks/C]]", "Tasks/A"),
            task("Tasks/C", "B"),
            task("Tasks/D", "A", "Gone"),
            task("Tasks/E", "Tasks/E", line=3),
        )
    }
    edges, problems = after_graph(tasks)
    assert edges["Tasks/D"] == ("Tasks/A",)
    assert sorted(str(p) for p in problems) == [
        "Tasks/A.md:4: a cycle of after: Tasks/A → Tasks/B → Tasks/A (each runs after the one "
        "before it)",
        "Tasks/B.md:1: a cycle of after: Tasks/B → Tasks/A → Tasks/B (each runs after the one "
        "before it)",
        "Tasks/B.md:1: after: no task named '[[Tasks/C]]' in the vault",
        "Tasks/D.md:1: after: no task named 'Gone' in the vault",
        "Tasks/E.md:3: a cycle of after: Tasks/E → Tasks/E (each runs after the one before it)",
    ]


def test_tasks_without_after_cost_no_table_of_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """Most vaults have no `after`: linking their tasks makes no table of every way to name
    one (15 ms for 1,000 tasks on a cold index), and looks for no cycle."""
    from vaultsched.core import workflow

    def refused(*_: object) -> None:
        raise AssertionError("a table of names was made")

    monkeypatch.setattr(workflow, "_add", refused)
    tasks = {t.id: t for t in (task("Tasks/A"), task("Tasks/B"))}
    assert after_graph(tasks, ["Tasks/Broken"]) == ({"Tasks/A": (), "Tasks/B": ()}, [])


def test_a_cycle_message_shows_the_shortest_ring_through_the_note() -> None:
    # B runs after A and C; A and C run after B: two rings through B, each of two tasks.
    tasks = {t.id: t for t in (task("A", "B"), task("B", "A", "C"), task("C", "B"))}
    _, problems = after_graph(tasks)
    messages = {p.path: p.message for p in problems}
    assert messages["B.md"].startswith("a cycle of after: B → A → B")
    assert messages["C.md"].startswith("a cycle of after: C → B → C")


def test_a_failed_task_note_still_exists_as_a_target() -> None:
    tasks = {"Tasks/A": task("Tasks/A", "Broken")}
    assert after_graph(tasks, invalid=["Tasks/Broken"]) == ({"Tasks/A": ("Tasks/Broken",)}, [])


def test_cycle_message() -> None:
    assert cycle_message(["A", "B"]).startswith("a cycle of after: A → B → A")


# -- windows ----------------------------------------------------------------------------------


def test_in_window() -> None:
    day = Window(time(9), time(17))
    assert in_window(day, time(9)) and in_window(day, time(16, 59, 59))
    assert not in_window(day, time(17)) and not in_window(day, time(8, 59))
    night = Window(time(22), time(6))
    assert in_window(night, time(23)) and in_window(night, time(0)) and in_window(night, time(5))
    assert not in_window(night, time(6)) and not in_window(night, time(12))
    assert in_window(night, time(22, 30, tzinfo=UTC))  # wall clock: a tzinfo is ignored


@pytest.mark.parametrize(
    ("window", "after", "expected"),
    [
        ((9, 17), datetime(2024, 5, 2, 7), datetime(2024, 5, 2, 9)),
        ((9, 17), datetime(2024, 5, 2, 9), datetime(2024, 5, 2, 9)),  # at the start: now
        ((9, 17), datetime(2024, 5, 2, 10), datetime(2024, 5, 3, 9)),  # opened already
        ((22, 6), datetime(2024, 5, 2, 23), datetime(2024, 5, 3, 22)),
        ((22, 6), datetime(2024, 5, 2, 12), datetime(2024, 5, 2, 22)),
        ((22, 6), datetime(2024, 12, 31, 23), datetime(2025, 1, 1, 22)),
    ],
)
def test_next_window_start(window: tuple[int, int], after: datetime, expected: datetime) -> None:
    opened = next_window_start(
        Window(time(window[0]), time(window[1])), after.replace(tzinfo=LONDON), LONDON
    )
    assert opened == expected.replace(tzinfo=LONDON)
    assert opened.tzinfo is LONDON


def test_a_start_in_the_spring_gap_opens_when_the_clock_jumps() -> None:
    # London: 2024-03-31 01:00 GMT becomes 02:00 BST.
    opened = next_window_start(
        Window(time(1, 30), time(3)), datetime(2024, 3, 31, tzinfo=UTC), LONDON
    )
    assert opened == datetime(2024, 3, 31, 1, tzinfo=UTC)
    assert (opened.hour, opened.minute) == (2, 0)
    # New York: 2024-03-10 02:00 EST becomes 03:00 EDT; a window that crosses midnight.
    night = Window(time(2, 30), time(1))
    opened = next_window_start(night, datetime(2024, 3, 10, tzinfo=NEW_YORK), NEW_YORK)
    assert opened == datetime(2024, 3, 10, 7, tzinfo=UTC)
    assert (opened.hour, opened.minute) == (3, 0)


def test_a_window_wholly_in_the_gap_does_not_open_that_day() -> None:
    opened = next_window_start(
        Window(time(1, 15), time(1, 45)), datetime(2024, 3, 31, tzinfo=UTC), LONDON
    )
    assert opened == datetime(2024, 4, 1, 1, 15, tzinfo=LONDON)


def test_a_start_in_the_repeated_hour_opens_at_each() -> None:
    # London: 2024-10-27 02:00 BST becomes 01:00 GMT, so 01:30 comes twice.
    window = Window(time(1, 30), time(1, 45))
    first = next_window_start(window, datetime(2024, 10, 27, tzinfo=UTC), LONDON)
    assert utc(first) == datetime(2024, 10, 27, 0, 30, tzinfo=UTC)
    second = next_window_start(window, first + timedelta(minutes=20), LONDON)
    assert utc(second) == datetime(2024, 10, 27, 1, 30, tzinfo=UTC)
    assert (second.hour, second.minute, second.fold) == (1, 30, 1)
    # New York: 2024-11-03 01:00-02:00 comes twice.
    ny = next_window_start(window, datetime(2024, 11, 3, 5, 50, tzinfo=UTC), NEW_YORK)
    assert utc(ny) == datetime(2024, 11, 3, 6, 30, tzinfo=UTC)


def utc(moment: datetime) -> datetime:
    """For comparing: `==` between zones is False for a time in a repeated hour (PEP 495), and
    within one zone it compares wall clocks, blind to fold."""
    return moment.astimezone(UTC)


def test_a_day_the_zone_skipped() -> None:
    window = Window(time(10), time(11))
    after = datetime(2011, 12, 29, 12, tzinfo=APIA)
    assert next_window_start(window, after, APIA) == datetime(2011, 12, 31, 10, tzinfo=APIA)
    crossing = Window(time(10), time(1))  # open at the skipped day's end: 31 Dec 00:00
    assert next_window_start(crossing, after, APIA) == datetime(2011, 12, 31, tzinfo=APIA)


def test_a_naive_time_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_window_start(Window(time(9), time(17)), datetime(2024, 5, 2), LONDON)


ZONES = st.sampled_from(
    [
        LONDON,
        NEW_YORK,
        APIA,
        ZoneInfo("Australia/Lord_Howe"),  # a 30 minute change
        ZoneInfo("America/Santiago"),  # changes at midnight
        ZoneInfo("Asia/Kolkata"),
        ZoneInfo("UTC"),
    ]
)
# Clock changes happen at night: most windows start or end near one.
HOURS = st.integers(0, 3) | st.integers(22, 23) | st.integers(0, 23)
MINUTES = st.builds(time, HOURS, st.sampled_from([0, 15, 30, 45]) | st.integers(0, 59))
WINDOWS = st.builds(Window, MINUTES, MINUTES).filter(lambda w: w.start != w.end)
# Around a clock change of one of ZONES (UTC), or anywhere.
CHANGES = [
    datetime(2024, 3, 31, 1),  # London
    datetime(2024, 10, 27, 1),
    datetime(2024, 3, 10, 7),  # New York
    datetime(2024, 11, 3, 6),
    datetime(2011, 12, 30, 10),  # Apia
    datetime(2024, 4, 6, 15),  # Lord Howe
    datetime(2024, 10, 5, 15, 30),
    datetime(2024, 4, 7, 3),  # Santiago
    datetime(2024, 9, 8, 4),
]
NEAR_CHANGES = st.builds(
    lambda change, minutes: change.replace(tzinfo=UTC) + timedelta(minutes=minutes),
    st.sampled_from(CHANGES),
    st.integers(-3 * 1440, 2 * 1440),
)
INSTANTS = NEAR_CHANGES | st.datetimes(
    min_value=datetime(2005, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC)
)


@given(WINDOWS, INSTANTS, ZONES, st.floats(0, 1))
def test_the_next_start_is_the_first_opening_at_or_after(
    window: Window, after: datetime, zone: ZoneInfo, fraction: float
) -> None:
    opened = utc(next_window_start(window, after, zone))
    assert opened >= after
    assert opened - after < timedelta(days=2, hours=1)
    assert in_window(window, opened.astimezone(zone).time())
    assert utc(next_window_start(window, opened, zone)) == opened
    # Nothing opens between: asked from any time in between, the answer is the same.
    between = after + (opened - after) * fraction
    assert utc(next_window_start(window, between, zone)) == opened


# -- output notes -----------------------------------------------------------------------------

WHEN = datetime(2024, 5, 2, 9, 5, tzinfo=LONDON)  # a Thursday


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("Results/{task} {date}", "Results/Backup 2024-05-02.md"),
        ("Results/{task}/{date:YYYY}/{date:MM-DD} {time}.md", "Results/Backup/2024/05-02 0905.md"),
        ("Log/{date:dddd, D MMMM}", "Log/Thursday, 2 May.md"),
        ("Log/{date:[Week] W}", "Log/Week 2024-W18-4.md"),
        ("Runs/{run_id}", f"Runs/{RUN_ID}.md"),
        ("Odd/{{braces}} and }", "Odd/{braces} and }.md"),
        ("Plain.md", "Plain.md"),
        ("Notes/a.txt", "Notes/a.txt.md"),
    ],
)
def test_expand_output(template: str, expected: str) -> None:
    assert expand_output(template, "Backup", RUN_ID, WHEN) == expected


def test_the_date_is_the_wall_date_given() -> None:
    late = datetime(2024, 5, 2, 23, 30, tzinfo=NEW_YORK)  # 3 May in UTC
    assert expand_output("{date} {time}", "T", RUN_ID, late) == "2024-05-02 2330.md"


@pytest.mark.parametrize(
    ("template", "task_name", "message"),
    [
        ("/etc/{task}", "x", "absolute"),
        ("../{task}", "x", "'..'"),
        ("Results/../../{task}", "x", "'..'"),
        ("Results//{task}", "x", "empty name"),
        ("Results/{task}/", "x", "empty name"),
        ("", "x", "empty name"),
        (".obsidian/{task}", "x", "hidden"),
        (".vaultsched/state/{task}", "x", "hidden"),
        ("Results/.git/{task}", "x", "hidden"),
        ("{task}", "", "empty name"),
        ("{task}.md", "", "hidden"),  # `.md` alone
        ("{task}", "..", "'..'"),
        ("Results/{task}", "a\x00b", "control character"),
        ("Results/{task}", "a\nb", "control character"),
        ("Results/{task}", "a\x7fb", "control character"),
        ("Results\\..\\{task}", "x", "backslash"),
        ("Results/{task}", "x" * 300, "too long"),
        ("Results/{nope}", "x", "unknown placeholder {nope}"),
        ("Results/{Task}", "x", "unknown placeholder"),
        ("Results/{ task }", "x", "unknown placeholder"),
        ("Results/{date:}", "x", "needs a format"),
        ("Results/{task", "x", "opens no placeholder"),
        ("{date:[..]}/x", "x", "'..'"),
    ],
)
def test_expand_output_refuses(template: str, task_name: str, message: str) -> None:
    with pytest.raises(OutputPathError, match=message.replace("(", r"\(").replace("{", r"\{")):
        expand_output(template, task_name, RUN_ID, WHEN)


def test_the_error_is_a_value_error() -> None:
    assert issubclass(OutputPathError, ValueError)


@given(
    template=st.lists(
        st.sampled_from(["{task}", "{run_id}", "{date}", "{time}", "/", "a", ".", "..", "{{"])
        | st.text(max_size=6)
        | st.text(max_size=12).map(lambda f: "{date:" + f.replace("{", "").replace("}", "") + "}"),
        max_size=8,
    ).map("".join),
    task_name=st.text(max_size=20),
    run_id=st.text(max_size=20),
    when=st.datetimes(timezones=ZONES),
)
def test_an_output_path_never_leaves_the_vault(
    template: str, task_name: str, run_id: str, when: datetime
) -> None:
    try:
        path = expand_output(template, task_name, run_id, when)
    except OutputPathError:
        return
    assert path.endswith(".md")
    assert posixpath.normpath(posixpath.join("/vault", path)).startswith("/vault/")
    assert not any(unicodedata.category(c) == "Cc" for c in path)
    for segment in path.split("/"):
        assert segment and not segment.startswith(".")


# -- prompts ----------------------------------------------------------------------------------

VALUES = {
    "date": "2024-05-02",
    "time": "09:05",
    "datetime": "2024-05-02T09:05:00+01:00",
    "task": "Tasks/Backup",
    "last_success": "",
    "previous_output": "/tmp/prev.txt",
}


def test_expand_prompt() -> None:
    body = "On {{date}} at {{time}} ({{datetime}}), {{task}} ran; last {{last_success}}.\n"
    assert expand_prompt(body, VALUES) == (
        "On 2024-05-02 at 09:05 (2024-05-02T09:05:00+01:00), Tasks/Backup ran; last .\n"
    )
    assert expand_prompt("Read {{previous_output}}", VALUES) == "Read /tmp/prev.txt"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("{{{{date}}", "{{date}}"),  # the escape writes `{{`, then plain text
        ("{{{{", "{{"),
        ("{{{{{{date}}", "{{2024-05-02"),
        (
            "{{other}} {{ date }} {{Date}} {date} {{date}",
            "{{other}} {{ date }} {{Date}} {date} {{date}",
        ),
        ("{{{date}}}", "{2024-05-02}"),
        ("}}", "}}"),
    ],
)
def test_expand_prompt_leaves_everything_else(body: str, expected: str) -> None:
    assert expand_prompt(body, VALUES) == expected


def test_a_missing_value_is_empty_and_values_are_not_expanded_again() -> None:
    assert expand_prompt("[{{last_success}}]", {}) == "[]"
    assert expand_prompt("{{task}}", {"task": "{{date}}", "date": "x"}) == "{{date}}"
    assert expand_prompt("{{extra}}", {"extra": "x"}) == "{{extra}}"


@given(st.text().filter(lambda body: "{{" not in body))
def test_a_body_without_placeholders_is_unchanged(body: str) -> None:
    assert expand_prompt(body, VALUES) == body


@given(st.text(alphabet="{}date x"))
def test_text_without_known_names_or_escapes_is_unchanged(body: str) -> None:
    if "{{{{" not in body and "{{date}}" not in body:
        assert expand_prompt(body, VALUES) == body


def test_a_long_cycle_is_cut_in_the_message() -> None:
    ring = [f"T{i:02}" for i in range(20)]
    message = cycle_message(ring)
    assert message.startswith("a cycle of after: T00 → T01 → T02 → T03 → T04 → T05 → … (20 tasks)")
    assert message.endswith("→ T00 (each runs after the one before it)")


def test_a_large_group_shows_one_cycle_of_it_on_every_note() -> None:
    # A hub and 70 spokes, each running after the other: one group of 71.
    spokes = [f"S{i:02}" for i in range(70)]
    tasks = {t.id: t for t in (task("Hub", *spokes), *(task(s, "Hub") for s in spokes))}
    _, problems = after_graph(tasks)
    assert len(problems) == 71
    assert {p.message for p in problems} == {
        "a cycle of after: Hub → S00 → Hub (each runs after the one before it, among 71 tasks "
        "that wait on one another)"
    }
