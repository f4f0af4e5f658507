# PEM-RT: every install step lives here, so a fresh clone needs nothing done by hand.
#   make demo   installs everything and runs the end-to-end demo (CPU only is fine)
#   make test   installs everything and runs the test suite (what .ci/run runs)
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: install test test-all lint typecheck demo bench plugins fuzz clean

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[all]'
	$(PY) -m pem_rt.setup_env
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m mypy
	$(PY) -m pytest -m "not slow and not gpu" -n auto

# The TensorRT plugin library (build/plugins/libpem_plugins.so), cached by a content hash.
plugins: $(STAMP)
	$(PY) -m plugins.builder

demo: $(STAMP)
	$(PY) -m pem_rt.demo

bench: $(STAMP)
	$(PY) -m benchmarks.run_all

# Every parser of a file a user may hand us, fuzzed with atheris for FUZZ_RUNS executions each (only the
# project's PemError may come out; a crash stops with the input saved as build/fuzz/crash-*).
FUZZ_RUNS ?= 1000000
FUZZ_TARGETS := sidecar onnx_metadata calibration_cache annotations sources_file checkpoint
fuzz: $(STAMP)
	mkdir -p build/fuzz
	for t in $(FUZZ_TARGETS); do \
	  $(PY) -m tests.fuzz.run $$t -runs=$(FUZZ_RUNS) -artifact_prefix=build/fuzz/ build/fuzz/$$t || exit 1; \
	done

test-all: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(STAMP)
	$(PY) -m mypy

clean:
	rm -rf $(VENV) build runs .pytest_cache .mypy_cache .ruff_cache
