"""Notes as Obsidian shows them, rendered to HTML and screenshotted with headless Chromium.

For looking at what vaultsched writes (run blocks, digests) the way a person reads it, without
Obsidian: `make screenshots VAULT=/path/to/vault` (after `make demo`, the demo's folder), or

    python tests/obsidian_render.py --vault VAULT [NOTE.md ...] [--out DIR]

which writes DIR/<note>.html and DIR/<note>.png for each note (default: the newest digest and
every note with a run block) and prints the PNG paths.

The renderer is markdown-it-py (CommonMark, tables, strikethrough) plus what Obsidian adds that
vaultsched's notes use: the YAML front matter shown as a properties table, callouts
(`> [!success]`, folded with `-`), `%%comments%%` hidden (inline and across lines),
`[[wikilinks]]` and `![[embeds]]`, and `- [ ]` task items. It is an approximation for the
eye, not a copy of Obsidian: themes, plugins and most of Obsidian's syntax are left out.
"""

from __future__ import annotations

import argparse
import html
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import yaml
from markdown_it import MarkdownIt
from markdown_it.rules_block import StateBlock
from markdown_it.rules_core import StateCore
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token

from vaultsched.core.blocks import FRONT_MATTER, RUNS_BEGIN

CALLOUT = re.compile(r"\[!([A-Za-z][\w-]*)\]([+-]?)[ \t]*(.*)")
TASK_ITEM = re.compile(r"\[([ xX])\] ")
COMMENT = "%%"
CHROMIUM = ("chromium", "chromium-browser", "google-chrome")


# -- markdown -------------------------------------------------------------------------------------


def markdown() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False}).enable(["table", "strikethrough"])
    md.block.ruler.before("paragraph", "comment", _comment_block, {"alt": ["paragraph"]})
    md.inline.ruler.before("backticks", "comment", _comment_inline)
    md.inline.ruler.before("link", "wikilink", _wikilink)
    md.core.ruler.after("block", "callout", _callouts)
    md.core.ruler.after("inline", "task_item", _task_items)
    return md


def _comment_block(state: StateBlock, start: int, end: int, silent: bool) -> bool:
    """A line that opens a `%%` comment: hidden up to the line that closes it (or the end)."""
    if state.sCount[start] - state.blkIndent >= 4:  # indented code
        return False
    line = _line(state, start)
    if not line.startswith(COMMENT):
        return False
    closing = line.find(COMMENT, len(COMMENT))
    if closing >= 0 and line[closing + len(COMMENT) :].strip():
        return False  # `%%x%% text`: a paragraph, whose inline rule hides the comment
    if silent:
        return True
    last = start
    if closing < 0:  # the comment goes on to the line holding the next `%%`
        last = next((n for n in range(start + 1, end) if COMMENT in _line(state, n)), end - 1)
    state.line = last + 1
    return True


def _line(state: StateBlock, number: int) -> str:
    return state.src[state.bMarks[number] + state.tShift[number] : state.eMarks[number]]


def _comment_inline(state: StateInline, silent: bool) -> bool:
    if not state.src.startswith(COMMENT, state.pos):
        return False
    closing = state.src.find(COMMENT, state.pos + len(COMMENT))
    if closing < 0:
        return False
    state.pos = closing + len(COMMENT)  # nothing is emitted: hidden, as in reading view
    return True


def _wikilink(state: StateInline, silent: bool) -> bool:
    embed = state.src.startswith("!", state.pos)
    start = state.pos + (3 if embed else 2)
    if not state.src.startswith("[[", start - 2):
        return False
    end = state.src.find("]]", start)
    inner = state.src[start:end] if end >= 0 else ""
    if not inner or "\n" in inner or "[" in inner:
        return False
    if not silent:
        target, _, alias = inner.partition("|")
        if embed:
            span = state.push("html_inline", "", 0)
            span.content = f'<span class="embed">{html.escape(target)}</span>'
        else:
            link = state.push("link_open", "a", 1)
            link.attrs = {"href": "#", "class": "internal-link", "data-href": target}
            state.push("text", "", 0).content = alias or target
            state.push("link_close", "a", -1)
    state.pos = end + 2
    return True


def _callouts(state: StateCore) -> None:
    """`> [!kind]± title` blockquotes become callouts: `-` folded, `+` foldable and open."""
    tokens = state.tokens
    index = 0
    while index < len(tokens):
        if _is_callout(tokens, index):
            _make_callout(tokens, index)
        index += 1


def _is_callout(tokens: Sequence[Token], index: int) -> bool:
    return (
        tokens[index].type == "blockquote_open"
        and index + 2 < len(tokens)
        and tokens[index + 1].type == "paragraph_open"
        and CALLOUT.fullmatch(tokens[index + 2].content.partition("\n")[0].strip()) is not None
    )


def _make_callout(tokens: list[Token], index: int) -> None:
    opening, inline = tokens[index], tokens[index + 2]
    first, _, rest = inline.content.partition("\n")
    match = CALLOUT.fullmatch(first.strip())
    assert match is not None
    kind, fold, title = match[1].lower(), match[2], match[3] or match[1].capitalize()
    container = "details" if fold else "div"
    closing = next(
        t for t in tokens[index + 1 :] if t.type == "blockquote_close" and t.level == opening.level
    )
    opening.tag = closing.tag = container
    opening.attrs = {"class": "callout", "data-callout": kind}
    if fold == "+":
        opening.attrs["open"] = ""
    title_tag = "summary" if fold else "div"
    tokens[index + 1] = Token("callout_title_open", title_tag, 1, attrs={"class": "callout-title"})
    inline.content = title
    after_title = Token("callout_title_close", title_tag, -1)
    if not rest.strip():
        tokens[index + 3] = after_title  # the paragraph was the title alone
        return
    body = Token("inline", "", 0, content=rest, children=[], map=inline.map)
    tokens[index + 3 : index + 3] = [after_title, Token("paragraph_open", "p", 1), body]


def _task_items(state: StateCore) -> None:
    """`- [ ] item` and `- [x] item` as checkboxes."""
    for before, token in zip(state.tokens, state.tokens[1:], strict=False):
        children = token.children or []
        if token.type != "inline" or before.type != "paragraph_open" or not children:
            continue
        match = TASK_ITEM.match(children[0].content)
        if children[0].type == "text" and match is not None:
            checked = " checked" if match[1] != " " else ""
            box = Token("html_inline", "", 0, content=f'<input type="checkbox" disabled{checked}> ')
            children[0].content = children[0].content[match.end() :]
            children.insert(0, box)


# -- a note as a page -----------------------------------------------------------------------------


def render_note(text: str, name: str = "") -> str:
    """The HTML page of a note: its name as the title, its properties, its rendered body."""
    match = FRONT_MATTER.match(text)
    properties = _properties(match["yaml"]) if match else ""
    body = markdown().render(text[match.end() :] if match else text)
    title = f'<div class="inline-title">{html.escape(name)}</div>' if name else ""
    return (
        f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{html.escape(name)}</title>'
        f"<style>{STYLE}</style></head>\n"
        f'<body><div class="view">{title}{properties}<div class="markdown">\n{body}</div>'
        "</div></body></html>\n"
    )


def _properties(front: str) -> str:
    try:
        values = yaml.safe_load(front)
    except yaml.YAMLError:
        return f'<pre class="properties">{html.escape(front)}</pre>'
    if not isinstance(values, dict) or not values:
        return ""
    rows = "".join(
        f'<tr><td class="key">{html.escape(str(key))}</td><td>{_value(value)}</td></tr>'
        for key, value in values.items()
    )
    return f'<table class="properties"><caption>Properties</caption>{rows}</table>'


def _value(value: object) -> str:
    if isinstance(value, list):
        return "".join(f'<span class="pill">{html.escape(str(item))}</span>' for item in value)
    if value is None:
        return '<span class="empty">Empty</span>'
    return html.escape(str(value))


STYLE = """
:root { color-scheme: dark; }
body { margin: 0; background: #1e1e1e; color: #dadada;
  font: 16px/1.55 -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; }
.view { max-width: 760px; margin: 0 auto; padding: 28px 36px 48px; }
.inline-title { font-size: 2em; font-weight: 700; margin: 0 0 12px; color: #dadada; }
h1, h2, h3 { color: #dadada; margin: 1.2em 0 0.5em; } h2 { font-size: 1.45em; }
h3 { font-size: 1.2em; }
a.internal-link { color: #a88bfa; text-decoration: none; }
code { font: 0.88em "DejaVu Sans Mono", monospace; background: #2a2a2a; padding: 1px 4px;
  border-radius: 4px; color: #e0a36b; }
pre { background: #262626; padding: 10px 12px; border-radius: 6px; overflow-x: auto; }
pre code { background: none; padding: 0; color: #dadada; }
ul { padding-left: 1.4em; } li { margin: 2px 0; }
input[type=checkbox] { margin-right: 6px; }
table.properties { border-collapse: collapse; margin: 0 0 20px; width: 100%; font-size: 0.9em;
  border-bottom: 1px solid #363636; }
table.properties caption { text-align: left; color: #999; padding-bottom: 4px; }
table.properties td { padding: 3px 8px 3px 0; vertical-align: top; }
table.properties td.key { color: #999; width: 130px; }
.pill { background: #3a3450; color: #c9b8ff; border-radius: 10px; padding: 0 8px;
  margin-right: 4px; }
.empty { color: #666; }
.embed { color: #999; font-style: italic; }
.callout { --c: 2, 122, 255; background: rgba(var(--c), 0.1); border-left: 3px solid
  rgba(var(--c), 0.8); border-radius: 4px; padding: 8px 14px; margin: 12px 0; }
.callout > p { margin: 6px 0; }
.callout-title { color: rgb(var(--c)); font-weight: 600; list-style: none; cursor: default; }
.callout-title::-webkit-details-marker { display: none; }
.callout-title::before { display: inline-block; width: 1.4em; }
details.callout:not([open]) > .callout-title::after { content: " ›"; color: #888; }
.callout[data-callout=success] { --c: 68, 207, 110; }
.callout[data-callout=success] > .callout-title::before { content: "✔"; }
.callout[data-callout=failure] { --c: 233, 49, 71; }
.callout[data-callout=failure] > .callout-title::before { content: "✘"; }
.callout[data-callout=warning] { --c: 236, 117, 0; }
.callout[data-callout=warning] > .callout-title::before { content: "⚠"; }
.callout[data-callout=info] > .callout-title::before { content: "ℹ"; }
"""


# -- screenshots ----------------------------------------------------------------------------------


def default_notes(vault: Path) -> list[Path]:
    """The newest digest and every note with a run block (hidden folders left out)."""
    notes = sorted(p for p in vault.rglob("*.md") if not any(s.startswith(".") for s in p.parts))
    digests = [p for p in notes if p.parent.name == "Digests"]
    with_runs = [p for p in notes if RUNS_BEGIN in p.read_text(encoding="utf-8", errors="replace")]
    return digests[-1:] + with_runs


def screenshot(page: Path, png: Path, width: int, height: int) -> None:
    browser = next((found for name in CHROMIUM if (found := shutil.which(name))), None)
    if browser is None:
        raise SystemExit("no chromium found: apt-get install chromium (make screenshots does)")
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--hide-scrollbars",
        f"--window-size={width},{height}",
        f"--screenshot={png}",
        page.resolve().as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    if done.returncode != 0 or not png.is_file():
        raise SystemExit(f"chromium failed on {page}:\n{done.stderr}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notes", nargs="*", type=Path, help="notes (default: see --vault)")
    parser.add_argument("--vault", type=Path, help="its newest digest and notes with runs")
    parser.add_argument("--out", type=Path, default=Path("/tmp/vaultsched-screenshots"))
    parser.add_argument("--width", type=int, default=900)
    parser.add_argument("--height", type=int, default=1400)
    args = parser.parse_args(argv)
    notes = [args.vault / n if args.vault else n for n in args.notes]
    if not notes and args.vault:
        notes = default_notes(args.vault)
    if not notes:
        parser.error("name notes, or a --vault to take its digest and task notes from")
    args.out.mkdir(parents=True, exist_ok=True)
    for note in notes:
        stem = re.sub(r"[^\w.-]+", "-", note.stem)
        page, png = args.out / f"{stem}.html", args.out / f"{stem}.png"
        page.write_text(render_note(note.read_text(encoding="utf-8"), note.stem), "utf-8")
        screenshot(page, png, args.width, args.height)
        print(png)
    return 0


if __name__ == "__main__":
    sys.exit(main())
