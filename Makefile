# Two commands matter: `make run` (daemon on the embedded SQLite default) and `make test`
# (everything, lint included). Both set up .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cksum < pyproject.toml | cut -d' ' -f1)

.PHONY: run test test-deps lint bench check clean constraints reference

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/remediator serve

check: $(STAMP)
	$(BIN)/remediator check
	$(BIN)/remediator test policies/tests/*.test.yaml policies/*/tests/*.test.yaml

# docs/reference.md from the config and policy models (a test fails when it is stale).
reference: $(STAMP)
	$(BIN)/python -m remediator.reference > docs/reference.md

test-deps:
	scripts/ensure-test-deps.sh

# Two workers, one test module each at a time (a module's fixtures, such as the image build,
# stay on one worker); each worker starts its own Docker engine, PostgreSQL and the rest.
PYTEST_WORKERS ?= 2
test: $(STAMP) test-deps lint
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

# An installed wheel's modules are compiled when pip installs it; this editable tree's are
# compiled here, so no start is measured compiling them (PYTHONDONTWRITEBYTECODE may be set).
bench: $(STAMP) test-deps
	$(BIN)/python -m compileall -q remediator
	$(BIN)/python bench/webhook_bench.py $(BENCH_ARGS)
	$(BIN)/python bench/storm.py $(STORM_ARGS)

# The exact runtime versions the image installs: a clean venv with only what pyproject asks.
constraints:
	rm -rf .constraints-venv && $(PY) -m venv .constraints-venv
	.constraints-venv/bin/pip install --quiet --disable-pip-version-check .
	{ sed -n '1,3p' constraints.txt; .constraints-venv/bin/pip freeze --exclude remediator; } > constraints.new
	mv constraints.new constraints.txt && rm -rf .constraints-venv

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis remediator.db*
