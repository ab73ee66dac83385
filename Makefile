# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv when missing; a second run reinstalls nothing (the stamp file records it).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.medactive-installed
# torch first: the CPU build of 2.13.0 lies on this disk; a bare `torch` would pull a CUDA build.
TORCH_SPEC ?= torch==2.13.0

.PHONY: demo test lint bench install clean chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/medactive demo

# The lint runs first, so CI (.ci/run calls `make test`) enforces it: ruff, then mypy over the
# whole package (config in pyproject.toml; about 30 s from an empty cache on 2 cores at load 6).
# The browser tests need Debian's chromium: `chromium` installs it when it is missing.
test: lint chromium
	$(BIN)/python -m pytest -q

chromium:
	.ci/ensure-chromium

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_strategies.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
