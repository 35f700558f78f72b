"""What a person sees of the digest and a run block, through tests/obsidian_render.py's
Obsidian-like renderer (no browser here: the HTML it would screenshot)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from html.parser import HTMLParser
from zoneinfo import ZoneInfo

import pytest
from obsidian_render import render_note

from vaultsched.core.blocks import DIGEST, RUNS, splice_block
from vaultsched.core.model import Run, Status, Trigger
from vaultsched.core.views import render_digest_block, render_runs_block

UTC_ZONE = ZoneInfo("UTC")


def make_run(task: str, status: Status, hour: int, output: str = "") -> Run:
    return Run(
        run_id=f"{task}-{hour}",
        task=task,
        status=status,
        trigger=Trigger.SCHEDULE,
        started_at=datetime(2024, 5, 2, hour, tzinfo=UTC),
        host="laptop",
        exit_code=0 if status is Status.SUCCESS else 1,
        duration_s=1.0,
        output_tail=output,
    )


class Visible(HTMLParser):
    """The text a browser shows: no <style>, no <title>, each list item apart."""

    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.items: list[str] = []
        self.skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.skipping += tag in ("style", "title")
        if tag == "li":
            self.items.append("")

    def handle_endtag(self, tag: str) -> None:
        self.skipping -= tag in ("style", "title")

    def handle_data(self, data: str) -> None:
        if not self.skipping:
            self.text.append(data)
            if self.items:
                self.items[-1] += data


def visible(page: str) -> Visible:
    parser = Visible()
    parser.feed(page)
    return parser


def test_the_digest_marks_a_failure_and_a_success_differently() -> None:
    runs = [
        make_run("Tasks/Backup", Status.SUCCESS, 6),
        make_run("Tasks/Journal check", Status.FAILED, 7),
    ]
    inner = render_digest_block(date(2024, 5, 2), runs, UTC_ZONE)
    page = render_note(splice_block("My day. %% a private aside %%\n", DIGEST, inner), "2024-05-02")
    shown = visible(page)
    listed = [item for item in shown.items if re.match(r"\S+ \d\d:00:00 ", item)]
    assert [item.split(" ")[0] for item in listed] == ["❌", "✅"]  # newest first
    assert "failed" in listed[0] and "success" in listed[1]
    assert "".join(shown.items).count("❌") == 2  # the run, and its line in Needs attention
    text = "".join(shown.text)
    assert "My day." in text
    assert "%%" not in page and "vaultsched:digest" not in text and "private aside" not in text


def test_a_run_blocks_failure_and_success_are_different_callouts() -> None:
    runs = [
        make_run("Tasks/Journal check", Status.FAILED, 7, "Journal/2024-05-02.md is missing\n"),
        make_run("Tasks/Journal check", Status.SUCCESS, 6, "written\n"),
    ]
    note = "---\nschedule: '@daily'\ncommand: check\ntags: [a, b]\n---\nBody.\n"
    page = render_note(splice_block(note, RUNS, render_runs_block(runs, UTC_ZONE)), "Journal")
    newest = re.search(
        r'<div class="callout" data-callout="failure">\s*<div class="callout-title">'
        r"2024-05-02 07:00:00 · failed</div>",
        page,
    )
    assert newest, page  # the newest run open
    assert re.search(r'<details class="callout" data-callout="success">\s*<summary', page)  # folded
    assert "Journal/2024-05-02.md is missing" in page
    text = "".join(visible(page).text)
    assert "%%" not in page and "vaultsched:runs" not in text
    assert "Properties" in text and "schedule" in text and "@daily" in text
    assert "---" not in text  # the front matter is a table, not text


@pytest.mark.parametrize(
    ("markdown", "shown", "hidden"),
    [
        ("a %%inline%% b", "a  b", "inline"),
        ("before\n\n%%\nhidden\nlines\n%%\n\nafter", "before", "hidden"),
        ("`code %% kept %%`", "code %% kept %%", ""),
        ("```\n%% in a fence %%\n```", "%% in a fence %%", ""),
        ("100%\\% sure", "100%% sure", ""),  # vaultsched's escape of a `%%` it must show
    ],
)
def test_obsidian_comments_are_hidden_except_in_code(
    markdown: str, shown: str, hidden: str
) -> None:
    text = "".join(visible(render_note(markdown)).text)
    assert shown in text
    assert not hidden or hidden not in text


def test_wikilinks_task_items_and_callout_titles() -> None:
    page = render_note(
        "- [ ] open [[Tasks/Backup|Backup]]\n- [x] done\n\n> [!warning]+ Careful\n> body\n"
    )
    assert '<a href="#" class="internal-link" data-href="Tasks/Backup">Backup</a>' in page
    assert '<input type="checkbox" disabled> open' in page
    assert '<input type="checkbox" disabled checked> done' in page
    assert '<details class="callout" data-callout="warning" open="">' in page
    assert '<summary class="callout-title">Careful</summary><p>body</p>' in page


def test_vault_text_stays_text() -> None:
    page = render_note("---\nevil: <script>x</script>\n---\n<b>bold?</b> [[a<i>|<i>b</i>]]\n")
    assert "<script>" not in page and "<b>" not in page and "<i>" not in page
