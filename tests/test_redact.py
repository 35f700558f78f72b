"""Secrets never reach the vault: env values by name, and token shapes by look."""

from __future__ import annotations

import random
import string
import sys
import time

import pytest
from conftest import Cli, git, runs, write_note

from vaultsched.adapters.runner import TAIL_BYTES
from vaultsched.core.output import clean_output
from vaultsched.core.redact import SECRET_NAME_PARTS, Redactor, redactor_for

R = "[redacted]"
NO_SECRETS = Redactor(())


@pytest.mark.parametrize(
    "token",
    [
        "ghp_" + "A1b2C3d4E5" * 3 + "abcdef",
        "gho_16C7e42F292c6912E7710c838347Ae178B4a",
        "ghu_16C7e42F292c6912E7710c838347Ae178B4a",
        "ghs_16C7e42F292c6912E7710c838347Ae178B4a",
        "ghr_16C7e42F292c6912E7710c838347Ae178B4a",
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJ",
        "sk-" + "aB3" * 16,
        "sk-ant-api03-" + "xY9_-" * 12,
        "sk-proj-" + "Zq8r" * 12,
        "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        "xoxp-123456789012-123456789012-123456789012-abcdef0123456789",
        "AKIAIOSFODNN7EXAMPLE",
    ],
)
def test_token_shapes_are_redacted_in_context(token: str) -> None:
    text = f"export X={token}\nusing '{token}'."
    assert NO_SECRETS(text) == f"export X={R}\nusing '{R}'."


def test_bearer_keeps_the_word_and_redacts_the_token() -> None:
    jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9P"
    assert NO_SECRETS(f"Authorization: Bearer {jwt}\n") == f"Authorization: Bearer {R}\n"
    assert NO_SECRETS("header bearer abc123def456ghi") == f"header bearer {R}"


@pytest.mark.parametrize(
    "text",
    [
        "task-runner finished",
        "skip this step",
        "a risk-free change",
        "sk-ab",
        "sk-1234",
        "use sk-learn-compatible-pipelines-everywhere",
        "ask-for-permission-before-every-deploy-2",
        "xoxo-hugs-and-kisses-from-everyone",
        "ghp_short1",
        "AKIA1234",
        "NOTAKIAIOSFODNN7EXAMPLE",
        "Bearer authentication is configured",
        "Bearer token",
        "KEY=value",
    ],
)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert NO_SECRETS(text) == text


@pytest.mark.parametrize("part", SECRET_NAME_PARTS)
def test_each_name_part_marks_a_secret_in_any_case(part: str) -> None:
    redact = redactor_for({f"my_{part.lower()}_var": "s3cr3t-value"})
    assert redact.values == ("s3cr3t-value",)
    assert redact("value is s3cr3t-value!") == f"value is {R}!"


def test_env_value_is_redacted_even_inside_a_longer_word() -> None:
    redact = redactor_for({"API_TOKEN": "hunter22"})
    assert redact("url=https://x.test/?t=hunter22&u=1 xhunter22x") == (
        f"url=https://x.test/?t={R}&u=1 x{R}x"
    )


def test_short_values_and_ordinary_names_are_not_secrets() -> None:
    redact = redactor_for(
        {"DB_PASSWORD": "abc12", "HOME": "/home/someone", "EDITOR": "vim-secret"},
    )
    assert redact.values == ()
    assert redact("abc12 /home/someone vim-secret") == "abc12 /home/someone vim-secret"


def test_values_from_several_envs_are_merged_longest_first() -> None:
    redact = redactor_for({"A_KEY": "abcdef"}, {"B_SECRET": "abcdefghij"}, {"C_KEY": "abcdef"})
    assert redact.values == ("abcdefghij", "abcdef")
    # The longer secret wins where both match, so no fragment of it is left behind.
    assert redact("abcdefghij abcdef") == f"{R} {R}"


def test_redactor_orders_values_itself() -> None:
    redact = Redactor(("abcdef", "abcdefghij"))
    assert redact("abcdefghij") == R


def test_each_line_of_a_multiline_secret_is_a_secret() -> None:
    pem = "-----BEGIN KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEF\nbase64linetwo==\n-----END KEY-----"
    redact = redactor_for({"SSH_PRIVATE_KEY": pem})
    assert redact("tail: base64linetwo==\n") == f"tail: {R}\n"
    assert redact(pem) == R


def test_regex_metacharacters_in_values_are_literal() -> None:
    redact = redactor_for({"PASSWD": "a.b*c+d(e)"})
    assert redact("a.b*c+d(e) aXb*c+d(e)") == f"{R} aXb*c+d(e)"


def test_64kib_with_fifty_secrets_is_fast() -> None:
    rng = random.Random(7)
    alphabet = string.ascii_letters + string.digits
    env = {f"SVC{i}_TOKEN": "".join(rng.choices(alphabet, k=rng.randint(8, 60))) for i in range(50)}
    redact = redactor_for(env)
    text = "".join(rng.choices(alphabet + " \n", k=64 * 1024)) + env["SVC7_TOKEN"]
    start = time.perf_counter()
    out = redact(text)
    elapsed = time.perf_counter() - start
    assert out.endswith(R)
    assert elapsed < 0.2, f"{elapsed * 1000:.1f} ms"


# -- secrets cut by the output's limits (the note's 4,000 characters and 20 lines, the
#    in-memory tail, a pipe read) -----------------------------------------------------------

ENV_SECRET = "s3cr3t-Q7vX9kP2mW4nL8rT6yZ"  # 26 characters, in DEPLOY_TOKEN
GH_TOKEN = "ghp_" + "Xa7Kq2Lm9Pz4Rt6Vw8Yb3Nc5Hd1Jf0Gs2Ue4"  # a token shape, from no env var
PEM_LINES = [
    "-----BEGIN TEST KEY-----",
    *(f"MIIB{i}gIBAAJBAKj34GkxFhD9{i}vcNLYLInFEX6Ppy1tPf9Cnzj4p4WGeKLs1P" for i in range(6)),
    "-----END TEST KEY-----",
]
EMIT = """\
import os, sys, time
out = sys.stdout.buffer
def w(text):
    out.write(text.encode())
    out.flush()
mode, arg = sys.argv[1], int(sys.argv[2])
secret = os.environ["DEPLOY_TOKEN"] if "env" in mode else "ghp_" + os.environ["PIECE"]
if mode.startswith("shown"):  # the secret's last 13 characters inside the shown window
    w("x" * 5000 + secret + "y" * arg + "\\n")
elif mode.startswith(("tail", "chunk")):  # the tail's cut 13 characters into the secret
    w("z" * 200000 + "\\nstart\\n" + secret[:13])
    if mode.startswith("chunk"):
        time.sleep(0.3)  # the rest comes in another read()
    w(secret[13:] + "\\a" * arg + "\\nend\\n")
else:  # a multi-line key across the 20-line cut
    w("".join(f"filler {n}\\n" for n in range(30)) + os.environ["SIGNING_KEY"] + "\\n")
    w("".join(f"after {n}\\n" for n in range(15)))
"""


def fragments(secret: str, size: int = 6) -> set[str]:
    return {secret[i : i + size] for i in range(len(secret) - size + 1)}


def test_a_secret_cut_by_any_output_limit_never_reaches_the_vault(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = cli.root
    monkeypatch.setenv("DEPLOY_TOKEN", ENV_SECRET)
    monkeypatch.setenv("PIECE", GH_TOKEN.removeprefix("ghp_"))
    monkeypatch.setenv("SIGNING_KEY", "\n".join(PEM_LINES))
    write_note(root, "scripts/emit.py", EMIT)
    shown = len(clean_output(b"y" * 10_000)) - 1  # characters of one long line a note shows
    tail_fill = TAIL_BYTES - len("\nend\n")
    cases = {
        "shown-env": shown - 13,
        "shown-token": shown - 13,
        "tail-env": tail_fill - (len(ENV_SECRET) - 13),
        "tail-token": tail_fill - (len(GH_TOKEN) - 13),
        "chunk-env": tail_fill - (len(ENV_SECRET) - 13),
        "lines": 0,
    }
    for mode, arg in cases.items():
        command = f"{sys.executable} scripts/emit.py {mode} {arg}"
        write_note(root, f"Tasks/{mode}.md", f"---\ncommand: {command}\n---\n")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "tasks")
    for mode in cases:
        result = cli("run-now", f"Tasks/{mode}")
        assert result.code == 0, result.err
        tail = runs(root)[-1].output_tail
        # Cut by the note's limits: redacted whole first. Cut by the tail: left out whole.
        assert R in tail if mode.startswith(("shown", "lines")) else tail.endswith("end")

    written = git(root, "log", "-p", "--all")
    for path in root.rglob("*"):
        rel = path.relative_to(root).as_posix()
        if path.is_file() and not rel.startswith((".git/", ".vaultsched/logs/")):
            written += path.read_text(errors="replace")
    for secret in (ENV_SECRET, GH_TOKEN, *PEM_LINES):
        leaked = [f for f in fragments(secret) if f in written]
        assert not leaked, (secret, leaked)
    # The full log is local and git-ignored: it keeps the output as printed.
    logs = "".join(p.read_text() for p in (root / ".vaultsched/logs").rglob("*.log"))
    assert ENV_SECRET in logs and GH_TOKEN in logs
