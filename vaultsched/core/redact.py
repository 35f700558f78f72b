"""Secrets never reach the vault: every text written to it goes through a `Redactor` first.

Two sources of secrets: the values of environment variables whose names look secret, and token
shapes that are recognisable on their own (a key printed by a script that was never in the
environment). Both are matched by one compiled regex, so a redaction is one pass over the text.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# How far past a cut in the output a token shape is looked for, so that one spanning the cut is
# seen whole: real tokens are a few hundred characters at most. A literal value reaches its
# own length further.
TOKEN_REACH = 4096
SECRET_NAME_PARTS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "KEY", "AUTH", "CREDENTIAL")
MIN_SECRET_LENGTH = 6
REDACTED = "[redacted]"

# Minimum lengths are set so that ordinary words and identifiers never match: real tokens are
# far longer (ghp_ + 36, sk- + 40 or more, AKIA + 16) and random, so they also contain a digit
# or an upper-case letter, which a kebab-case word after "sk-" does not; Slack tokens always
# hold digits ("xoxo-hugs-and-kisses" is not one).
# The distinctive prefixes (ghp_, github_pat_, xoxb-) match even glued to a word; "sk-", "AKIA"
# and "Bearer" need a boundary before them ("task-runner-..."). That check is a lookbehind
# placed after the literal prefix: written the other way round the regex engine cannot skip
# ahead to the prefix, and the whole pattern gets about five times slower.
_TOKEN_SHAPES = (
    r"gh[pousr]_[A-Za-z0-9]{20,}",
    r"github_pat_[A-Za-z0-9_]{20,}",
    r"sk-(?<![A-Za-z0-9_-]sk-)(?=[a-z_-]*[0-9A-Z])[A-Za-z0-9_-]{20,}",
    r"xox[abeprs]-(?=[A-Za-z-]*[0-9])[A-Za-z0-9-]{10,}",
    r"A[KS]IA(?<![A-Z0-9]A[KS]IA)[A-Z0-9]{16}(?![A-Z0-9])",
)
# Keeps the word and redacts what follows; the token must hold a digit so that prose such as
# "Bearer authentication" is left alone.
_BEARER = (
    r"(?P<bearer>[Bb]earer(?<![A-Za-z0-9_][Bb]earer)\s+)"
    r"(?=[A-Za-z._~+/=-]*[0-9])[A-Za-z0-9._~+/=-]{8,}"
)


@dataclass(frozen=True)
class Redactor:
    values: tuple[str, ...]  # literal secret values, longest first
    _pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_pattern", _compile(self.values))

    def __call__(self, text: str) -> str:
        """`text` with every secret value and token shape replaced by "[redacted]"."""
        return self._pattern.sub(_replacement, text)

    def clean_cut(self, data: bytes | bytearray, cut: int) -> int:
        """Where to cut `data`, keeping `data[result:]`, so the part kept never starts with
        the end of a secret: `cut` itself, or the end of the secret that spans it.

        Output is cut to size (a bounded tail in memory) before it is redacted; a secret
        split by that cut would no longer match, and its tail would reach the vault.
        """
        if cut <= 0:
            return 0
        reach = TOKEN_REACH + max((len(v.encode()) for v in self.values), default=0)
        start, end = max(cut - reach, 0), cut + reach
        while True:
            spans = _byte_spans(self._pattern, data[start:end], start)
            over = next(((s, e) for s, e in spans if s < cut < e), None)
            if over is None:
                return cut
            if over[1] < end or end >= len(data):  # it ends inside the window, or the data
                return over[1]
            end += reach  # it runs to the window's edge: it may go on past it


def _byte_spans(
    pattern: re.Pattern[str], data: bytes | bytearray, offset: int
) -> list[tuple[int, int]]:
    """Matches of `pattern` in `data` as byte offsets. surrogateescape keeps one character per
    undecodable byte, so offsets map back exactly, wherever in a character `data` begins."""
    text = data.decode("utf-8", errors="surrogateescape")
    spans = []
    for match in pattern.finditer(text):
        start = offset + len(text[: match.start()].encode("utf-8", errors="surrogateescape"))
        length = len(match.group().encode("utf-8", errors="surrogateescape"))
        spans.append((start, start + length))
    return spans


def redactor_for(*envs: Mapping[str, str]) -> Redactor:
    """A redactor for the secret-looking variables of `envs` (a task's env, the daemon's)."""
    values: set[str] = set()
    for env in envs:
        for name, value in env.items():
            if _is_secret_name(name):
                values.update(_secret_values(value))
    return Redactor(tuple(sorted(values, key=lambda v: (-len(v), v))))


@functools.lru_cache(maxsize=4096)  # the same environment's names, at every run's start
def _is_secret_name(name: str) -> bool:
    upper = name.upper()
    return any(part in upper for part in SECRET_NAME_PARTS)


def _secret_values(value: str) -> Iterable[str]:
    # A multi-line secret (a PEM key) may reach a note only in part, since a note shows the
    # last lines of output: each of its lines is a secret of its own too.
    candidates = {value, value.strip(), *value.splitlines()}
    return (c for c in candidates if len(c.strip()) >= MIN_SECRET_LENGTH)


def _compile(values: tuple[str, ...]) -> re.Pattern[str]:
    # Longest first, so a secret containing another secret is replaced whole.
    literals = [re.escape(v) for v in sorted(values, key=len, reverse=True)]
    return re.compile("|".join([*literals, _BEARER, *_TOKEN_SHAPES]))


def _replacement(match: re.Match[str]) -> str:
    return (match.group("bearer") or "") + REDACTED
