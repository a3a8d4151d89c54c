# Everything bootstraps from a bare Python 3.11+: a private uv in .tools/, the locked
# dependencies in .venv/, Prometheus and HAProxy from apt when missing and we are root.
PYTHON ?= python3
TOOLS  := .tools
UV     := $(shell command -v uv 2>/dev/null || echo $(TOOLS)/bin/uv)
VENV   := .venv
# Tests mostly wait on bakes and timers, so more workers than cores pays; each has its own servers.
TEST_WORKERS ?= 3
BIN    := $(VENV)/bin

.PHONY: all venv bytecode system unleash prometheus test lint typecheck unit demo dev bench chaos clean

all: test

$(TOOLS)/bin/uv:
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv

# Compiled once here: where PYTHONDONTWRITEBYTECODE is set (CI images often set it) every
# process would otherwise compile each module it imports, seconds for each test worker and
# command line call.
$(BIN)/shiprail: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen --compile-bytecode --python $(PYTHON)
	@touch $@

venv: $(BIN)/shiprail

# Our own modules, for the same reason (a stale file is recompiled in memory, never wrong).
bytecode: venv
	@$(BIN)/python -m compileall -q -j 0 shiprail tests bench

system:
	@sh scripts/ensure-system.sh

prometheus: system

# The Unleash server (npm, locked in shiprail/devstack/unleash) on Node from the PyPI wheel.
unleash: venv
	$(BIN)/python -c "from shiprail.devstack.unleash import install; install()"

lint: venv
	$(BIN)/ruff check shiprail tests bench
	$(BIN)/ruff format --check shiprail tests bench

typecheck: venv
	$(BIN)/mypy shiprail

unit: venv
	$(BIN)/pytest -q tests/unit

test: venv bytecode system unleash lint typecheck
	$(BIN)/pytest -q -n $(TEST_WORKERS) --dist loadgroup

demo: venv bytecode system
	$(BIN)/shiprail demo $(if $(SCENARIO),--scenario $(SCENARIO),)

dev: venv
	$(BIN)/shiprail dev

bench: venv bytecode system
	$(BIN)/python -m bench.gates
	$(BIN)/python -m bench.oracle_power --seed 2029
	$(BIN)/python -m bench.oracle_buckets bench/results/gates-random-2031.json
	$(BIN)/python -m bench.orchestrator
	SHIPRAIL_FULL_PROMISE=1 $(BIN)/pytest -q -m long tests/unit/test_overdispersion.py tests/unit/test_learned_noise.py

# Many rollouts while workers are SIGKILLed and the dev server restarts (a small run is in `make test`).
chaos: venv bytecode system
	$(BIN)/python -m tests.chaos --rollouts $(or $(ROLLOUTS),50) --kills $(or $(KILLS),20) --restarts $(or $(RESTARTS),3) --departures $(or $(DEPARTURES),3)

clean:
	rm -rf $(VENV) $(TOOLS) .pytest_cache .mypy_cache .ruff_cache
