# Two set-up commands, from a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --disable-pip-version-check
STAMP := $(VENV)/.installed
RUN_STAMP := $(VENV)/.installed-run

.PHONY: test lint unit demo screenshots bench bench-quick bench-scale clean

# The venv starts without pip: its own copy (ensurepip) takes seconds to install, longer than
# everything the demo needs. The demo's install runs the system's pip into it when that pip can
# (`--python`, pip >= 22.3); `make test` gives the venv its own pip first.
$(BIN)/python:
	$(PYTHON) -m venv --without-pip $(VENV)

# What vaultsched needs to run, and nothing else: `make demo` on a fresh clone. Byte-compiling
# every installed module would take longer than the install; Python compiles what it imports.
$(RUN_STAMP): pyproject.toml | $(BIN)/python
	@if $(PYTHON) -m pip --python $(BIN)/python --version >/dev/null 2>&1; then \
		pip="$(PYTHON) -m pip --python $(BIN)/python"; \
	else $(BIN)/python -m ensurepip --default-pip >/dev/null && pip="$(BIN)/python -m pip"; fi; \
	echo "$$pip install -e ."; $$pip --disable-pip-version-check install --quiet --no-compile -e .
	touch $(RUN_STAMP)

# The test toolchain (a superset: it satisfies the demo's stamp too).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip --version >/dev/null 2>&1 || $(BIN)/python -m ensurepip --default-pip
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[test]'
	touch $(STAMP) $(RUN_STAMP)

# Three workers on two cores: most tests wait on real daemons, git and processes, not on the CPU.
# The worker-pool tests start their own Redis (Debian's redis-server) on a free loopback port.
test: $(STAMP) lint
	@command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server; } >/dev/null 2>&1 \
		|| echo "redis-server not installed (apt-get install redis-server): the worker-pool tests are skipped"
	$(BIN)/python -m pytest -q -n 3 --durations=15

lint: $(STAMP)
	$(BIN)/ruff check vaultsched tests bench vault/scripts
	$(BIN)/ruff format --check vaultsched tests bench vault/scripts
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/python -m pytest -q -m "not integration"

demo: $(RUN_STAMP)
	$(BIN)/vaultsched demo

# Notes as Obsidian shows them, as PNGs (tests/obsidian_render.py): the newest digest and every note
# with a run block of VAULT (the folder `make demo` printed), or the NOTES given, into OUT.
OUT ?= /tmp/vaultsched-screenshots
screenshots: $(RUN_STAMP)
	@test -n "$(VAULT)" || { echo "usage: make screenshots VAULT=path/to/vault [NOTES='a.md b.md']"; exit 2; }
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq chromium; } >/dev/null
	@fc-list 2>/dev/null | grep -qi emoji || { apt-get update -qq && apt-get install -y -qq \
		fonts-noto-color-emoji; } >/dev/null 2>&1 \
		|| echo "no emoji font (apt-get install fonts-noto-color-emoji): status icons show as boxes"
	$(BIN)/python tests/obsidian_render.py --vault "$(VAULT)" --out "$(OUT)" $(NOTES)

# Not part of `make test`: figures, not pass/fail. Results: bench/results/*.json and
# docs/benchmarks.md. `bench` takes about 9 minutes on 2 cores, `bench-quick` about 1.5.
BENCH := cd bench && ../$(BIN)/python
BENCH_STAMP := $(VENV)/.bench-installed

$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[test,bench]'
	@command -v rg >/dev/null || { apt-get update -qq && apt-get install -y -qq ripgrep; } >/dev/null 2>&1 \
		|| echo "ripgrep not installed (apt-get install ripgrep): grep stands in as the floor"
	@command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server; } >/dev/null 2>&1 \
		|| echo "redis-server not installed (apt-get install redis-server): pool.py cannot run"
	touch $(BENCH_STAMP)

# One recipe, two sizes (target-specific variables).
bench: NOTES := 100000
bench: REPEAT := 3
bench: EDITS := 200
bench: WINDOW := 60
bench: BURST := 1000
bench: WRITES := 500
bench-quick: NOTES := 10000
bench-quick: REPEAT := 1
bench-quick: EDITS := 50
bench-quick: WINDOW := 8
bench-quick: BURST := 200
bench-quick: WRITES := 200
# On the small vault the daemon is up in a second: less waiting for the burst and the window.
bench-quick: LEAD := --lead 4
bench-quick: SETTLE := --settle 4
# Its small vaults are written once and kept (in BENCH_VAULTS, as bench-scale keeps its own).
bench-quick: KEEP = --vaults "$(BENCH_VAULTS)"

bench bench-quick: $(BENCH_STAMP)
	$(BENCH) cold_index.py --notes $(NOTES) --repeat $(REPEAT) $(KEEP)
	$(BENCH) list_daemon.py --notes $(NOTES) --repeat $(REPEAT) $(KEEP)
	$(BENCH) edit_latency.py --edits $(EDITS) --tasks 1000
	$(BENCH) firing_precision.py --tasks 1000 --due 10 --seconds $(WINDOW)
	$(BENCH) idle_cost.py --tasks 1000 --window $(WINDOW) $(SETTLE)
	$(BENCH) burst.py --tasks $(BURST) $(LEAD)
	$(BENCH) pool.py --tasks $(BURST) $(LEAD)
	$(BENCH) memory.py --notes $(NOTES) $(KEEP)
	$(BENCH) note_write.py --writes $(WRITES)
	$(BENCH) startup.py --repeat $(REPEAT)0
	$(if $(filter bench,$@),$(BENCH) firing_latency.py --seconds 30)

# Not part of `make bench`: the same figures at 10,000, 100,000 and 1,000,000 notes and with
# 10,000 tasks, and how each cost grows (bench/scale.py). The generated vaults are kept in
# BENCH_VAULTS and reused: the first run also writes them (the million notes: about 5 GB and
# 5 minutes). About 32 minutes on 2 cores after that.
BENCH_VAULTS ?= $(HOME)/.cache/vaultsched-bench

bench-scale: $(BENCH_STAMP)
	$(BENCH) scale.py --vaults "$(BENCH_VAULTS)"

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
