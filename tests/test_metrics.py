"""The daemon's Prometheus metrics: the `Metrics` class on a registry of its own, then a real
daemon scraped over HTTP, its textfile, and `[metrics]` as keys that need trust."""

from __future__ import annotations

import os
import socket
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import Cli, DaemonProcess, wait_for
from conftest import runs_of as of
from conftest import task_note as note
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from vaultsched.adapters.config import parse_config
from vaultsched.adapters.metrics import Metrics, MetricsServer, TextfileWriter
from vaultsched.core.errors import VaultschedError
from vaultsched.core.model import Run, Status, Trigger

Start = Callable[..., DaemonProcess]
FAMILIES = {
    "vaultsched_runs",  # vaultsched_runs_total: the parser names a counter's family without it
    "vaultsched_run_duration_seconds",
    "vaultsched_last_success_timestamp_seconds",
    "vaultsched_next_fire_timestamp_seconds",
    "vaultsched_running",
    "vaultsched_queue_depth",
    "vaultsched_tasks",
    "vaultsched_fire_lateness_seconds",
    "vaultsched_up",
}


def samples(text: str) -> dict[str, list[Sample]]:
    """Each family's samples, by family name (without the library's `_created` series, which
    the text format shows as families of their own)."""
    found = text_string_to_metric_families(text)
    return {f.name: list(f.samples) for f in found if not f.name.endswith("_created")}


def value(found: dict[str, list[Sample]], name: str, **labels: str) -> float | None:
    for family in found.values():
        for sample in family:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return None


def a_run(task: str, status: Status, duration: float | None = 0.5) -> Run:
    at = datetime(2026, 11, 23, 7, 0, tzinfo=UTC)
    return Run("r1", task, status, Trigger.SCHEDULE, at, "h", finished_at=at, duration_s=duration)


# -- the Metrics class ----------------------------------------------------------------------------


def exposition(metrics: Metrics) -> dict[str, list[Sample]]:
    from prometheus_client import generate_latest

    return samples(generate_latest(metrics.registry).decode())


def test_runs_durations_and_last_success_by_task() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.on_run(a_run("Tasks/A", Status.SUCCESS))
    metrics.on_run(a_run("Tasks/A", Status.FAILED, 2.0))
    metrics.on_run(a_run("Tasks/A", Status.UNTRUSTED, None))
    found = exposition(metrics)
    assert set(found) == FAMILIES
    total = "vaultsched_runs_total"
    assert value(found, total, task="Tasks/A", status="success") == 1
    assert value(found, total, task="Tasks/A", status="failed") == 1
    assert value(found, total, task="Tasks/A", status="untrusted") == 1
    assert value(found, "vaultsched_run_duration_seconds_count", task="Tasks/A") == 2
    assert value(found, "vaultsched_run_duration_seconds_sum", task="Tasks/A") == 2.5
    stamp = datetime(2026, 11, 23, 7, 0, tzinfo=UTC).timestamp()
    assert value(found, "vaultsched_last_success_timestamp_seconds", task="Tasks/A") == stamp


def test_a_task_that_leaves_the_index_takes_its_series_with_it() -> None:
    metrics = Metrics(CollectorRegistry())
    for status in (Status.SUCCESS, Status.FAILED, Status.MISSED):
        metrics.on_run(a_run("Tasks/Gone", status))
    metrics.on_run(a_run("Tasks/Kept", Status.SUCCESS))
    metrics.on_started("Tasks/Gone", None)
    metrics.set_next_fire("Tasks/Gone", 1e9)
    metrics.forget("Tasks/Gone")
    found = exposition(metrics)
    labelled = {s.labels.get("task") for family in found.values() for s in family}
    assert labelled == {None, "Tasks/Kept"}


def test_queue_depth_counts_submitted_and_group_waiting_runs() -> None:
    metrics = Metrics(CollectorRegistry())
    metrics.on_submitted()
    metrics.on_submitted()
    metrics.set_waiting(3)
    assert value(exposition(metrics), "vaultsched_queue_depth") == 5
    metrics.on_started("Tasks/A", 0.25)
    found = exposition(metrics)
    assert value(found, "vaultsched_queue_depth") == 4
    assert value(found, "vaultsched_running", task="Tasks/A") == 1
    assert value(found, "vaultsched_fire_lateness_seconds_count") == 1
    assert value(found, "vaultsched_fire_lateness_seconds_sum") == 0.25
    metrics.on_finished("Tasks/A")
    assert value(exposition(metrics), "vaultsched_running", task="Tasks/A") == 0


def test_task_states_up_and_a_hostile_task_id_as_a_label() -> None:
    changes: list[None] = []
    metrics = Metrics(CollectorRegistry(), on_change=lambda: changes.append(None))
    metrics.set_tasks({"valid": 3, "invalid": 1})
    metrics.set_up(True)
    hostile = 'Tasks/a"} evil 1\n# TYPE x counter\\'
    metrics.on_run(a_run(hostile, Status.SUCCESS))
    found = exposition(metrics)
    states = {s.labels["state"]: s.value for s in found["vaultsched_tasks"]}
    assert states == {"valid": 3, "invalid": 1, "untrusted": 0, "disabled": 0}
    assert value(found, "vaultsched_up") == 1
    assert value(found, "vaultsched_runs_total", task=hostile, status="success") == 1
    assert "x" not in found
    assert changes


def test_the_textfile_is_written_after_a_change_and_at_close(tmp_path: Path) -> None:
    metrics = Metrics(CollectorRegistry())
    path = tmp_path / "vaultsched.prom"
    writer = TextfileWriter(metrics.registry, str(path))
    metrics.on_change = writer.changed
    metrics.set_up(True)
    wait_for(path.exists, what="the textfile")
    assert value(samples(path.read_text()), "vaultsched_up") == 1
    metrics.set_up(False)
    writer.close()
    assert value(samples(path.read_text()), "vaultsched_up") == 0
    assert [p.name for p in tmp_path.iterdir()] == ["vaultsched.prom"]  # no temp file left


def test_a_textfile_reached_through_a_link_into_git_is_refused(tmp_path: Path) -> None:
    (tmp_path / ".git" / "hooks").mkdir(parents=True)
    (tmp_path / "metrics").symlink_to(tmp_path / ".git" / "hooks")
    with pytest.raises(VaultschedError, match=r"\.git"):
        TextfileWriter(CollectorRegistry(), str(tmp_path / "metrics" / "v.prom"))


def test_a_port_in_use_is_one_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(VaultschedError, match=f"cannot listen on 127.0.0.1:{port}") as err:
            MetricsServer(CollectorRegistry(), "127.0.0.1", port)
    assert err.value.exit_code == 1


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('listen = "9108"', "[metrics] listen must be HOST:PORT"),
        ('listen = ":9108"', "[metrics] listen must be HOST:PORT"),
        ('listen = "localhost:0"', "[metrics] listen port must be 1-65535"),
        ("listen = 9108", "[metrics] listen must be HOST:PORT"),
        ('textfile = "metrics.prom"', "[metrics] textfile must be an absolute path"),
        ('textfile = "/tmp/x.txt"', "[metrics] textfile must be an absolute path ending in .prom"),
        ('textfile = "/v/.git/hooks/x.prom"', "[metrics] textfile must not be inside a .git"),
    ],
)
def test_bad_metrics_values_are_config_errors_naming_the_key(table: str, message: str) -> None:
    import tomllib

    with pytest.raises(VaultschedError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_config(tomllib.loads(f"[metrics]\n{table}\n"))


def test_listen_addresses() -> None:
    def listen(text: str) -> object:
        return parse_config({"metrics": {"listen": text}}).metrics.listen

    assert listen("127.0.0.1:9108") == ("127.0.0.1", 9108)
    assert listen("[::1]:9108") == ("::1", 9108)
    assert listen("localhost:1") == ("localhost", 1)


# -- a real daemon --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def scrape(port: int) -> dict[str, list[Sample]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        return samples(response.read().decode())


def set_config(root: Path, text: str) -> None:
    (root / ".vaultsched" / "config.toml").write_text('timezone = "UTC"\n' + text)


def three_kinds_of_task(root: Path) -> None:
    note(root, "Tasks/Tick.md", "schedule: every 1s\ncommand: echo tick\n")
    note(root, "Tasks/Paused.md", "schedule: every 1s\nenabled: false\ncommand: echo no\n")
    note(root, "Tasks/Broken.md", "schedule: nonsense\ncommand: echo no\n")


@pytest.mark.integration
def test_a_running_daemon_serves_every_metric(vault_root: Path, daemons: Start) -> None:
    three_kinds_of_task(vault_root)
    port = free_port()
    daemon = daemons(vault_root, "--metrics", f"127.0.0.1:{port}")
    wait_for(lambda: len(of(vault_root, "Tasks/Tick", Status.SUCCESS)) >= 2, what="2 runs")
    wait_for(
        lambda: (value(scrape(port), "vaultsched_runs_total", task="Tasks/Tick") or 0) >= 2,
        what="2 runs counted",
    )
    found = scrape(port)
    assert set(found) == FAMILIES
    now = time.time()
    tick = {"task": "Tasks/Tick"}
    assert (value(found, "vaultsched_runs_total", status="success", **tick) or 0) >= 2
    assert (value(found, "vaultsched_run_duration_seconds_count", **tick) or 0) >= 2
    assert now - 30 < (value(found, "vaultsched_last_success_timestamp_seconds", **tick) or 0)
    next_fire = value(found, "vaultsched_next_fire_timestamp_seconds", **tick) or 0
    assert now - 1 < next_fire < now + 5
    assert value(found, "vaultsched_next_fire_timestamp_seconds", task="Tasks/Paused") is None
    assert value(found, "vaultsched_running", **tick) in (0, 1)
    assert value(found, "vaultsched_queue_depth") is not None
    states = {s.labels["state"]: s.value for s in found["vaultsched_tasks"]}
    assert states == {"valid": 1, "invalid": 1, "untrusted": 0, "disabled": 1}
    assert (value(found, "vaultsched_fire_lateness_seconds_count") or 0) >= 2
    assert value(found, "vaultsched_up") == 1
    # A task deleted from the vault takes its series with it.
    (vault_root / "Tasks/Tick.md").unlink()
    wait_for(
        lambda: value(scrape(port), "vaultsched_runs_total", task="Tasks/Tick") is None,
        what="the deleted task's series gone",
    )
    assert daemon.stop() == 0
    assert not listening(port)


@pytest.mark.integration
def test_the_textfile_mode_writes_a_parsable_file(
    vault_root: Path, tmp_path: Path, daemons: Start
) -> None:
    path = tmp_path / "textfile" / "vaultsched.prom"
    path.parent.mkdir()
    set_config(vault_root, f'[metrics]\ntextfile = "{path}"\n')
    three_kinds_of_task(vault_root)
    daemon = daemons(vault_root)

    def successes() -> float:
        try:
            found = samples(path.read_text())
        except FileNotFoundError:
            return 0
        return value(found, "vaultsched_runs_total", task="Tasks/Tick", status="success") or 0

    wait_for(lambda: successes() >= 2, what="2 runs in the textfile")
    found = samples(path.read_text())
    assert set(found) == FAMILIES
    assert value(found, "vaultsched_up") == 1
    assert daemon.stop() == 0
    assert value(samples(path.read_text()), "vaultsched_up") == 0  # written once more at exit
    assert sorted(p.name for p in path.parent.iterdir()) == ["vaultsched.prom"]


@pytest.mark.integration
def test_an_untrusted_metrics_listen_opens_nothing_until_trust_config(
    cli: Cli, daemons: Start, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The attack: a sync writes `[metrics] listen = "0.0.0.0:PORT"` (or a textfile over some
    file of the user's) into the vault's config. Nothing opens until this user trusts it."""
    monkeypatch.delenv("VAULTSCHED_TRUST")
    port = free_port()
    target = tmp_path / "victim.prom"
    set_config(cli.root, f'[metrics]\nlisten = "127.0.0.1:{port}"\ntextfile = "{target}"\n')
    daemon = daemons(cli.root)
    wait_for(lambda: "ignored (not trusted" in daemon.output(), what="the daemon's warning")
    assert "[metrics] listen, [metrics] textfile" in daemon.output()
    time.sleep(0.5)
    assert not listening(port)
    assert not target.exists()
    assert daemon.stop() == 0
    trusted = cli("trust", "--config")
    assert trusted.code == 0, trusted.err
    assert f'[metrics] listen = "127.0.0.1:{port}"' in trusted.out
    daemon = daemons(cli.root)
    wait_for(lambda: listening(port), what="the trusted endpoint")
    assert value(scrape(port), "vaultsched_up") == 1
    wait_for(target.exists, what="the trusted textfile")
    assert daemon.stop() == 0


@pytest.mark.integration
def test_metrics_in_the_per_user_config_need_no_trust(
    cli: Cli, daemons: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VAULTSCHED_TRUST")
    port = free_port()
    user = Path(os.environ["XDG_CONFIG_HOME"]) / "vaultsched" / "config.toml"
    user.parent.mkdir(parents=True, exist_ok=True)
    user.write_text(f'[metrics]\nlisten = "127.0.0.1:{port}"\n')
    daemon = daemons(cli.root)
    wait_for(lambda: listening(port), what="the endpoint")
    assert "ignored" not in daemon.output()
    assert daemon.stop() == 0


@pytest.mark.integration
def test_bad_listen_values_and_a_port_in_use_stop_the_daemon_with_one_line(cli: Cli) -> None:
    set_config(cli.root, '[metrics]\nlisten = "9108"\n')
    bad = cli("run")
    assert bad.code == 2
    assert bad.err.strip().splitlines() == [
        "vaultsched: .vaultsched/config.toml: [metrics] listen must be HOST:PORT such as "
        "127.0.0.1:9108, got '9108'"
    ]
    set_config(cli.root, "")
    flag = cli("run", "--metrics", "nowhere")
    assert flag.code == 2
    assert "--metrics must be HOST:PORT" in flag.err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        busy = cli("run", "--metrics", f"127.0.0.1:{port}")
    assert busy.code == 1
    lines = busy.err.strip().splitlines()
    assert lines[-1] == (
        f"vaultsched: metrics: cannot listen on 127.0.0.1:{port}: Address already in use"
    )
    assert "Traceback" not in busy.err
