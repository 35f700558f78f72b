"""Which vault files a task's command can be seen to reach, for the trust fingerprint.

Pure: the file system comes in as a `Lister`, so every case is a unit test. This is not a shell
parser and need not be one: it errs towards more words. The command is split on whitespace and
shell operators (`shlex` with `punctuation_chars`), a quoted or `$(…)` part is split again as a
script of its own, and each word is split once more on `=`, `,`, `:`, braces, quotes and
backticks (`--file=scripts/x.py`). Every piece is tried as a path against the task's `cwd`,
each folder a `cd` moved to, and the vault root; whatever exists in the vault is covered.
The values of the task's `env` are read the same way (`BASH_ENV`, `PYTHONPATH` name code).
"""

from __future__ import annotations

import posixpath
import re
import shlex
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

MAX_FILES = 2000  # more than this and the rest is not fingerprinted (`trust` says so)
_MAX_NESTING = 3
# Stands for the vault root while splitting: no command can hold a NUL (exec refuses it), so a
# word starting with it came from `$VAULTSCHED_VAULT` (or `$VAULTSCHED_NOTE`).
_ROOT = "\0"
_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")
_OPERATOR = re.compile(r"[;&|<>()]+")
_NESTED = re.compile(r"[\s;&|<>()`'\"]")  # a word holding these is a script of its own
_PIECES = re.compile(r"[\s;&|<>()`'\"=,:{}]+|\$\(")
_CAT_SUBSTITUTION = re.compile(r"(?:\$\(|`)\s*cat\s+['\"]?([^\s)`'\";|&]+)")
_WRITES = {">", ">>", ">|", "&>", "&>>"}  # the next word is a file written, not code read
_CHANGES_FOLDER = {"cd", "pushd"}
_SOURCES = {"source", "."}
# Programs that run what a manifest in their working folder defines (a Makefile's rules, a
# package.json's scripts): the manifest is covered, the code its entries call is not.
_RUNNERS = {
    **dict.fromkeys(("make", "gmake"), ("Makefile", "makefile", "GNUmakefile")),
    **dict.fromkeys(("npm", "yarn", "pnpm"), ("package.json",)),
    "just": ("justfile", "Justfile", ".justfile"),
    "task": ("Taskfile.yml", "Taskfile.yaml", "taskfile.yml", "taskfile.yaml"),
    "tox": ("tox.ini", "pyproject.toml", "setup.cfg"),
    "pytest": ("conftest.py", "pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg"),
    "cargo": ("Cargo.toml", "build.rs"),
    "poetry": ("pyproject.toml",),
    "uv": ("pyproject.toml",),
    "rake": ("Rakefile", "rakefile"),
}
_GLUED = re.compile(r"-[A-Za-z]")  # `-fscripts/x.awk`: a short option with its value attached
# Words that run the next word as the program (`env`, `sudo`) or set a variable for it.
_WRAPPERS = {"env", "exec", "command", "nohup", "nice", "sudo", "xargs", "builtin"}
_PYTHON = re.compile(r"(?:python[\d.]*|pypy[\d.]*)$")


@dataclass(frozen=True)
class Listing:
    """What one path names in the vault: the files it covers (vault-relative)."""

    files: tuple[str, ...] = ()
    folder: bool = False  # the path is a folder, fingerprinted whole
    whole_vault: bool = False  # the path is the vault root itself: not fingerprinted
    capped: bool = False  # a folder with more than MAX_FILES files


Lister = Callable[[str], Listing]


@dataclass(frozen=True)
class Reach:
    files: tuple[str, ...]
    warnings: tuple[str, ...]
    capped: bool = False


def reach(
    command: str | tuple[str, ...],
    cwd: str | None,
    lister: Lister,
    env: Mapping[str, str] | None = None,
    note: str = "",
) -> Reach:
    """The vault files `command` (run in `cwd`, with `env`, for the task note `note`) reaches."""
    walk = _Walk(cwd or "", lister)
    parts = [command] if isinstance(command, str) else list(command)
    for part in parts:
        expanded = _expand(part, env or {}, note)
        walk.words(_tokens(expanded))
        walk.cat_substitutions(expanded)
    if not isinstance(command, str):
        for word in command:  # an argv element is one word even with spaces in it
            walk.cover(word, "", split=False)
    for value in (env or {}).values():  # BASH_ENV, PYTHONPATH, a config file: reached too
        walk.cover(_expand(value, {}, note), "")
    return walk.result()


def words(command: str) -> list[str]:
    """The tokens `reach` reads in a command string (operators included), for tests."""
    return _tokens(_expand(command, {}, ""))


def _shown(token: str) -> str:
    return token.replace(_ROOT, "$VAULTSCHED_VAULT")


def _rooted(token: str) -> str:
    """`$VAULTSCHED_VAULT/x` (as split) as a path from the vault root."""
    return token.rsplit(_ROOT, 1)[1].lstrip("/") or "."


def _expand(text: str, env: Mapping[str, str], note: str) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name == "VAULTSCHED_VAULT":
            return _ROOT
        if name == "VAULTSCHED_NOTE":
            return f"{_ROOT}/{note}"
        if name == "PWD":
            return "."
        return env.get(name, match.group())

    return _VARIABLE.sub(value, text)


def _tokens(text: str, depth: int = 0) -> list[str]:
    lexer = shlex.shlex(text, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = ""  # a `#` inside a word is no comment; reading more words is safe
    try:
        tokens = list(lexer)
    except ValueError:  # unbalanced quotes: the shell refuses it, but read every word anyway
        tokens = [t for t in re.split(r"\s+|([;&|<>()]+)", text) if t]
    flat: list[str] = []
    for token in tokens:
        if depth < _MAX_NESTING and not _OPERATOR.fullmatch(token) and _NESTED.search(token):
            # A script of its own (`sh -c '…'`, `$(…)`): its first word is a command.
            flat.extend([";", *_tokens(token, depth + 1), ";"])
        else:
            flat.append(token)
    return flat


class _Walk:
    """One pass over the tokens: where `cd` has moved, what the next word means, what is found."""

    def __init__(self, cwd: str, lister: Lister) -> None:
        self.lister = lister
        self.bases = [cwd]
        self.files: dict[str, None] = {}
        self.warnings: dict[str, None] = {}
        self.folder_named = False
        self.capped = False
        self.from_folders = 0  # files covered because a folder or glob was named: capped
        self.needs_folder: list[str] = []  # warnings that naming a folder silences

    def words(self, tokens: list[str]) -> None:
        command_start, expect, writing, program = True, "", False, ""
        for token in tokens:
            if _OPERATOR.fullmatch(token):
                command_start, writing, program = True, False, ""
                expect = "write" if token in _WRITES else ""
                continue
            if expect == "write" or writing:
                expect = ""  # a file the command writes: not code it runs
                continue
            if command_start and (token in _WRAPPERS or "=" in token):
                self.cover(token, token)  # `PYTHONPATH=lib python3 …`: lib is reached
                continue
            if command_start and token != "$":
                program, command_start = posixpath.basename(token), False
                expect = self._command_word(program, token)
                if program == "tee":
                    writing = True
                continue
            expect = self._argument(token, expect, program)

    def _command_word(self, program: str, token: str) -> str:
        if program in _RUNNERS:
            self._runner(token, _RUNNERS[program])
            return ""
        if program in _CHANGES_FOLDER:
            return "cd"
        if program in _SOURCES:
            return "source"
        self.cover(token, token)
        return ""

    def _runner(self, token: str, manifests: tuple[str, ...]) -> None:
        for name in manifests:
            self.cover(name, token)
        self.needs_folder.append(
            f"`{_shown(token)}` runs what its {manifests[0]} defines: name the folder the code "
            "it calls is in (e.g. scripts/) in the command to fingerprint it"
        )

    def _argument(self, token: str, expect: str, program: str) -> str:
        if token.startswith("-"):
            self.cover(token, token)  # `--file=scripts/x.py`: the pieces after `=`
            if _GLUED.match(token) and len(token) > 2:
                self.cover(token[2:], token)  # `awk -fscripts/x.awk`, `make -fscripts/Makefile`
            if token == "-m" and _PYTHON.match(program):
                return "module"
            return expect if expect == "cd" else ""
        if expect == "cd":  # a folder to work in, not code: the words after it are resolved there
            self.bases.append(self._folder(token))
            return ""
        found = self.cover(token, token)
        if expect == "source" and not found:
            self.warnings[
                f"`source {_shown(token)}` reads a file that is not in the vault: "
                "vaultsched cannot see the code it runs"
            ] = None
        elif expect == "module":
            self._module(token)
        return ""

    def _folder(self, token: str) -> str:
        if _ROOT in token:
            return _rooted(token)
        return posixpath.normpath(posixpath.join(self.bases[-1], token))

    def _module(self, name: str) -> None:
        path = name.replace(".", "/")
        for candidate in (f"{path}.py", path, path.split("/")[0]):
            self.cover(candidate, name)
        self.needs_folder.append(
            f"`-m {_shown(name)}` imports modules vaultsched cannot see: name the folder they "
            "are in (e.g. scripts/) in the command to fingerprint it"
        )

    def cat_substitutions(self, text: str) -> None:
        for match in _CAT_SUBSTITUTION.finditer(text):
            if not self.cover(match.group(1), ""):
                self.warnings[
                    f"`$(cat {_shown(match.group(1))})` reads a "
                    "file that is not in the vault: vaultsched cannot see the code it runs"
                ] = None

    def cover(self, token: str, shown: str, *, split: bool = True) -> bool:
        """Fingerprint whatever `token` (and each piece of it) names; True if it named a file."""
        found = False
        for piece in dict.fromkeys([token, *(_PIECES.split(token) if split else ())]):
            for path, current in self._paths(piece):
                listing = self.lister(path)
                found = found or bool(listing.files)
                self._take(listing, _shown(shown or piece), current)
        return found

    def _paths(self, piece: str) -> Iterator[tuple[str, bool]]:
        """Where `piece` may point: (path, True) as the shell reads it now, then (path, False)
        against the earlier folders and the vault root, in case `cd` was misread."""
        if not piece or piece.startswith(("-", "$", "~")) or piece == _ROOT:
            return
        if _ROOT in piece:  # `$VAULTSCHED_VAULT/x`: the vault root's x, whatever the cwd
            yield _rooted(piece), True
            return
        if piece.startswith("/"):
            yield piece, True
            return
        current = posixpath.join(self.bases[-1], piece)
        yield current, True
        for other in dict.fromkeys([*(posixpath.join(b, piece) for b in self.bases), piece]):
            if other != current:
                yield other, False

    def _take(self, listing: Listing, shown: str, current: bool) -> None:
        if listing.whole_vault and current:
            self.warnings[
                f"`{shown}` names the whole vault, which is not fingerprinted (every note edit "
                "would untrust the task): name the folder its code is in"
            ] = None
        self.folder_named = self.folder_named or (listing.folder and not listing.whole_vault)
        self.capped = self.capped or listing.capped
        if not listing.folder and len(listing.files) == 1:
            # A file named on its own is always covered: a big data folder the command also
            # names must not push the script itself out of the fingerprint.
            self.files[listing.files[0]] = None
            return
        for rel in listing.files:
            if self.from_folders >= MAX_FILES:
                self.capped = True
                return
            if rel not in self.files:
                self.from_folders += 1
                self.files[rel] = None

    def result(self) -> Reach:
        warnings = list(self.warnings)
        if not self.folder_named:
            warnings += self.needs_folder
        if self.capped:
            warnings.append(
                f"the command reaches more than {MAX_FILES} files: only the first {MAX_FILES} "
                "are fingerprinted; name a smaller folder"
            )
        files = tuple(sorted(self.files))
        return Reach(files, tuple(dict.fromkeys(warnings)), self.capped)
