# Two entry points for a fresh machine: `make demo` and `make test`.
# Both create .venv when missing; a second run reinstalls nothing (the stamp file records it).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.medactive-installed
# torch first: the CPU build of 2.13.0 lies on this disk; a bare `torch` would pull a CUDA build.
TORCH_SPEC ?= torch==2.13.0

.PHONY: demo test lint bench install clean chromium labelstudio-env monailabel-env

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
test: lint chromium labelstudio-env monailabel-env
	$(BIN)/python -m pytest -q

chromium:
	.ci/ensure-chromium

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m mypy

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_strategies.py

# Label Studio, for the ML backend's end-to-end test (tests/annotate/test_labelstudio_live.py):
# it pins far more packages than medactive, so it gets its own environment (label-studio-sdk
# comes with it), made once from PyPI.
LS_VENV := .venv-labelstudio
LS_STAMP := $(LS_VENV)/.installed
LABEL_STUDIO_SPEC ?= label-studio==1.23.2

$(LS_STAMP):
	$(PYTHON) -m venv $(LS_VENV)
	PIP_REQUIRE_VIRTUALENV=1 $(LS_VENV)/bin/python -m pip install --quiet --upgrade pip
	PIP_REQUIRE_VIRTUALENV=1 $(LS_VENV)/bin/python -m pip install --quiet "$(LABEL_STUDIO_SPEC)"
	touch $(LS_STAMP)

labelstudio-env: $(LS_STAMP)

# MONAI Label, for the [monailabel] strategy's test (tests/integrations/test_monailabel.py): it
# pins numpy below 2 and brings ITK and MLflow, so it gets its own environment too, with
# medactive itself installed from this checkout. torch and numpy<2 go in the same resolve:
# alone, monailabel's torchvision pulls a newer torch, and the resolver backtracks for long.
MONAI_VENV := .venv-monailabel
MONAI_STAMP := $(MONAI_VENV)/.installed

$(MONAI_STAMP): pyproject.toml
	$(PYTHON) -m venv $(MONAI_VENV)
	PIP_REQUIRE_VIRTUALENV=1 $(MONAI_VENV)/bin/python -m pip install --quiet --upgrade pip
	PIP_REQUIRE_VIRTUALENV=1 $(MONAI_VENV)/bin/python -m pip install --quiet "$(TORCH_SPEC)" \
		"numpy<2" -e ".[monailabel]"
	touch $(MONAI_STAMP)

monailabel-env: $(MONAI_STAMP)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
