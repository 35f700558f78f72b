"""Which vault files a command reaches (pure, against a fake vault) and the real lister."""

from __future__ import annotations

import hashlib
import os
import posixpath
import tracemalloc
from pathlib import Path

import pytest

from vaultsched.core.blocks import RUNS_BEGIN, RUNS_END
from vaultsched.trust.fingerprint import VaultFiles
from vaultsched.trust.reach import MAX_FILES, Listing, reach, words

FILES = {
    "scripts/x.sh",
    "scripts/y.sh",
    "scripts/run.sh",
    "scripts/x.py",
    "scripts/pkg/__main__.py",
    "scripts/pkg/helper.py",
    "Tasks/T.md",
    "Makefile",
    "lib/env.sh",
    "scripts/x.awk",
    "site/package.json",
    "justfile",
    "Cargo.toml",
    "py/pyproject.toml",
    "py/conftest.py",
    "Rakefile",
    "Taskfile.yml",
    "tox.ini",
}


def fake(path: str) -> Listing:
    """A vault of FILES; folders are every prefix of them."""
    name = posixpath.normpath(path)
    if name == ".":
        return Listing(folder=True, whole_vault=True)
    if name in FILES:
        return Listing((name,))
    under = tuple(sorted(f for f in FILES if f.startswith(name + "/")))
    return Listing(under, folder=True) if under else Listing()


def files(command: str | tuple[str, ...], cwd: str | None = None, **env: str) -> tuple[str, ...]:
    return reach(command, cwd, fake, env, "Tasks/T.md").files


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("sh scripts/x.sh; echo done", ("scripts/x.sh",)),
        ("sh scripts/x.sh&&echo done", ("scripts/x.sh",)),
        ("cd scripts && ./run.sh", ("scripts/run.sh",)),
        ("cd scripts; cd ..; sh lib/env.sh", ("lib/env.sh",)),
        ("sh<scripts/x.sh", ("scripts/x.sh",)),
        ("cat scripts/x.sh|sh", ("scripts/x.sh",)),
        ('sh -c "$(cat scripts/x.sh)"', ("scripts/x.sh",)),
        ("sh -c `cat scripts/x.sh`", ("scripts/x.sh",)),
        ("sh -c 'cd scripts && sh run.sh'", ("scripts/run.sh",)),
        ("python3 tool --file=scripts/x.py", ("scripts/x.py",)),
        ("tool --files=scripts/x.sh,scripts/y.sh", ("scripts/x.sh", "scripts/y.sh")),
        ('sh "$VAULTSCHED_VAULT/scripts/x.sh"', ("scripts/x.sh",)),
        ("sh ${VAULTSCHED_VAULT}/scripts/x.sh", ("scripts/x.sh",)),
        ('cd "$VAULTSCHED_VAULT/scripts" && ./run.sh', ("scripts/run.sh",)),
        ("python3 scripts/pkg", ("scripts/pkg/__main__.py", "scripts/pkg/helper.py")),
        (
            "PYTHONPATH=lib:scripts/pkg python3 -c 'import helper'",
            ("lib/env.sh", "scripts/pkg/__main__.py", "scripts/pkg/helper.py"),
        ),
        ("make all", ("Makefile",)),
        ("echo hi > scripts/x.sh", ()),  # a file written is not code read
        ("echo hi | tee scripts/x.sh", ()),
        ('cat "$VAULTSCHED_NOTE" | sh', ("Tasks/T.md",)),
    ],
)
def test_the_files_a_command_reaches(command: str, expected: tuple[str, ...]) -> None:
    assert files(command) == expected


def test_cwd_list_commands_and_env_values() -> None:
    assert files("./run.sh", cwd="scripts") == ("scripts/run.sh",)
    assert files("sh $DIR/x.sh", DIR="lib") == ("lib/env.sh",)  # the value names lib/ too
    assert files("bash -c true", BASH_ENV="lib/env.sh") == ("lib/env.sh",)
    assert files(("python3", "scripts/x.py")) == ("scripts/x.py",)
    assert files(("sh", "-c", "cd scripts && ./run.sh")) == ("scripts/run.sh",)


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("awk -fscripts/x.awk", ("scripts/x.awk",)),
        ("sed -fscripts/x.sh in.txt", ("scripts/x.sh",)),
        ("make -fscripts/x.sh all", ("Makefile", "scripts/x.sh")),
        ("awk -f scripts/x.awk", ("scripts/x.awk",)),
    ],
)
def test_an_option_value_glued_to_a_short_flag(command: str, expected: tuple[str, ...]) -> None:
    assert files(command) == expected


@pytest.mark.parametrize(
    ("command", "cwd", "expected"),
    [
        ("npm run build", "site", ("site/package.json",)),
        ("cd site && yarn build", None, ("site/package.json",)),
        ("pnpm run build", "site", ("site/package.json",)),
        ("just deploy", None, ("justfile",)),
        ("task build", None, ("Taskfile.yml",)),
        ("tox -e lint", None, ("tox.ini",)),
        ("pytest -q", "py", ("py/conftest.py", "py/pyproject.toml", "tox.ini")),
        ("cargo run", None, ("Cargo.toml",)),
        ("poetry run app", "py", ("py/pyproject.toml",)),
        ("uv run app", "py", ("py/pyproject.toml",)),
        ("rake build", None, ("Rakefile",)),
    ],
)
def test_a_task_runner_covers_its_manifest_and_warns(
    command: str, cwd: str | None, expected: tuple[str, ...]
) -> None:
    found = reach(command, cwd, fake)
    assert found.files == expected
    program = command.rsplit("&& ", 1)[-1].split(" ", 1)[0]
    assert any(w.startswith(f"`{program}` runs what its ") for w in found.warnings)
    assert reach(f"{command} scripts/", cwd, fake).warnings == ()  # naming the folder


def test_a_named_file_is_covered_beyond_the_folder_cap() -> None:
    """A big data folder named first must not push the script out of the fingerprint."""
    data = tuple(f"data/{n:05}.csv" for n in range(MAX_FILES + 10))

    def big(path: str) -> Listing:
        name = posixpath.normpath(path)
        if name == "data":
            return Listing(data[:MAX_FILES], folder=True, capped=True)
        return fake(path)

    found = reach("python3 tool.py data/ scripts/x.py", None, big)
    assert found.capped and "scripts/x.py" in found.files
    assert len(found.files) == MAX_FILES + 1


def test_warnings_for_code_that_cannot_be_seen() -> None:
    def warned(command: str) -> str:
        return " ".join(reach(command, None, fake).warnings)

    assert "source ~/.profile" in warned("source ~/.profile && run")
    assert "source lib/env.sh" not in warned(". lib/env.sh && run")
    assert "$(cat /etc/x)" in warned('sh -c "$(cat /etc/x)"')
    assert "`-m tools.main` imports" in warned("python3 -m tools.main")
    assert "Makefile" in warned("make all")
    # Naming the folder covers what is imported from it, and the warning goes.
    assert warned("python3 -m tools.main scripts/") == ""
    assert warned("make -C scripts/ all") == ""
    assert "names the whole vault" in warned("grep -r TODO .")
    assert warned("sh scripts/x.sh") == ""


def test_words_split_on_shell_operators() -> None:
    assert words("a;b|c&&d<e>f") == ["a", ";", "b", "|", "c", "&&", "d", "<", "e", ">", "f"]
    assert words('sh -c "$(cat x)"') == ["sh", "-c", ";", "$", "(", "cat", "x", ")", ";"]
    assert "x" in words("sh 'unbalanced x")  # the shell refuses it; every word is still read


# -- the real lister ----------------------------------------------------------------------


def test_a_folder_is_listed_whole_without_following_symlinks_out(tmp_path: Path) -> None:
    root = tmp_path / "vault"
    (root / "scripts/pkg/sub").mkdir(parents=True)
    (root / "scripts/pkg/__pycache__").mkdir()
    (root / "scripts/pkg/a.py").write_text("a")
    (root / "scripts/pkg/sub/b.py").write_text("b")
    (root / "scripts/pkg/__pycache__/a.pyc").write_text("bytecode")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.py").write_text("s")
    (root / "scripts/pkg/out").symlink_to(outside)
    os.mkfifo(root / "scripts/pkg/fifo")
    listing = VaultFiles(root)("scripts/pkg")
    assert listing.folder
    # The symlink is listed as itself (its target is part of its content), never walked.
    assert listing.files == ("scripts/pkg/a.py", "scripts/pkg/out", "scripts/pkg/sub/b.py")
    link = VaultFiles(root).content("scripts/pkg/out", "")
    assert link.text == f"symlink to {outside}\n"
    assert VaultFiles(root)(str(outside / "secret.py")).files == ()
    assert VaultFiles(root)("scripts/pkg/../../../outside/secret.py").files == ()
    assert VaultFiles(root)("scripts/pkg/fifo").files == ()


def test_a_linked_folder_inside_the_vault_is_walked_once(tmp_path: Path) -> None:
    """`scripts/lib -> ../vendor/lib`: the code it holds is covered; links back make no loop."""
    root = tmp_path / "vault"
    (root / "scripts").mkdir(parents=True)
    (root / "vendor/lib").mkdir(parents=True)
    (root / "vendor/lib/util.sh").write_text("say() { :; }\n")
    (root / "scripts/main.sh").write_text(". scripts/lib/util.sh\n")
    (root / "scripts/lib").symlink_to("../vendor/lib")
    (root / "vendor/lib/back").symlink_to("../../scripts")  # a cycle
    (root / "vendor/lib/top").symlink_to("../..")  # the vault itself: not walked
    (root / "scripts/out").symlink_to(tmp_path)  # out of the vault: not walked
    listing = VaultFiles(root)("scripts/")
    assert listing.files == (
        "scripts/lib",
        "scripts/main.sh",
        "scripts/out",
        "vendor/lib/back",
        "vendor/lib/top",
        "vendor/lib/util.sh",
    )
    assert not listing.capped


def test_a_glob_is_expanded_and_a_new_match_is_listed(tmp_path: Path) -> None:
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts/a.sh").write_text("a")
    assert VaultFiles(tmp_path)("scripts/*.sh").files == ("scripts/a.sh",)
    (tmp_path / "scripts/b.sh").write_text("b")
    assert VaultFiles(tmp_path)("scripts/*.sh").files == ("scripts/a.sh", "scripts/b.sh")
    assert VaultFiles(tmp_path)(".").whole_vault


def test_the_task_note_itself_is_read_without_its_run_block(tmp_path: Path) -> None:
    note = tmp_path / "Tasks/T.md"
    note.parent.mkdir()
    text = "---\ncommand: x\n---\nBody\n"
    block = f"{RUNS_BEGIN}\n## Runs\n\nNo runs yet.\n{RUNS_END}\n"
    note.write_text(text)
    before = VaultFiles(tmp_path).content("Tasks/T.md", "Tasks/T.md")
    note.write_text(text + block)
    assert VaultFiles(tmp_path).content("Tasks/T.md", "Tasks/T.md") == before


def test_a_large_file_is_hashed_in_chunks_and_its_text_not_kept(tmp_path: Path) -> None:
    """A 1.5 GB file a sync drops into a named folder must not be read into memory whole."""
    big = tmp_path / "data/big.csv"
    big.parent.mkdir()
    with big.open("wb") as handle:
        handle.write(b"head\n")
        handle.truncate(64 * 1024 * 1024)  # sparse: costs no disk
    tracemalloc.start()
    try:
        content = VaultFiles(tmp_path).content("data/big.csv", "")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 * 1024 * 1024
    assert content.size == big.stat().st_size and content.text is None
    digest = hashlib.sha256()
    with big.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    assert content.sha256 == digest.hexdigest()
    small = tmp_path / "data/small.sh"
    small.write_bytes(b"echo \x00hi\n")
    assert VaultFiles(tmp_path).content("data/small.sh", "").text == "echo \x00hi\n"
