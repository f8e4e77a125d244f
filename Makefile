# Two commands for a newcomer: `make run` (a search on the embedded default) and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# pytest processes for `make test` (pytest-xdist; its default scheduling: `--dist loadfile` would run schemathesis's
# operations, which share one test id, as a single test)
TEST_WORKERS ?= 2

.PHONY: run test test-long lint bootstrap clean

bootstrap: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)  # the default job: edgetpu_small space, Fashion-MNIST subset, edgetpu_usb, real training on SQLite (nas.db)
	$(BIN)/nas search --spec examples/fashion_edgetpu.yaml

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

test: $(STAMP) lint  # everything but the few tests that train for half a minute or more (marked `long`)
	$(BIN)/python -m pytest -m 'not long' -n $(TEST_WORKERS)

test-long: $(STAMP)  # the long tests alone; CI runs them after `make test`
	$(BIN)/python -m pytest -m long

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
