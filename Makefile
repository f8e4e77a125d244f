# Two commands for a newcomer: `make run` (a search on the embedded default) and `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# The TensorFlow extra: cpu (the CPU wheel) or gpu (with CUDA, for a GPU machine: `make bootstrap TENSORFLOW=gpu`).
# A venv keeps the one it was made with, so later `make run` / `make test` need no flag; `make clean` to switch.
TENSORFLOW ?= $(shell cat $(VENV)/.tensorflow 2>/dev/null || echo cpu)
STAMP := $(VENV)/.installed-$(TENSORFLOW)
# pytest processes for `make test` (pytest-xdist; its default scheduling: `--dist loadfile` would run schemathesis's
# operations, which share one test id, as a single test)
TEST_WORKERS ?= 2

.PHONY: run test test-long lint bootstrap clean

bootstrap: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test ! -f $(VENV)/.tensorflow || test "$$(cat $(VENV)/.tensorflow)" = '$(TENSORFLOW)' || \
		{ echo "$(VENV) has TensorFlow from the $$(cat $(VENV)/.tensorflow) extra; \`make clean bootstrap TENSORFLOW=$(TENSORFLOW)\` switches"; exit 1; }
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,$(TENSORFLOW)]'
	@echo '$(TENSORFLOW)' > $(VENV)/.tensorflow
	@touch $(STAMP)

run: $(STAMP)  # the default job: edgetpu_small space, Fashion-MNIST subset, edgetpu_usb, real training on SQLite (nas.db)
	$(BIN)/nas search --spec examples/fashion_edgetpu.yaml

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

test: $(STAMP) lint  # everything but the few tests that train for half a minute or more (marked `long`)
	$(BIN)/python -m pytest -m 'not long' -n $(TEST_WORKERS) --durations=15

test-long: $(STAMP)  # the long tests alone; CI runs them after `make test`
	$(BIN)/python -m pytest -m long

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
