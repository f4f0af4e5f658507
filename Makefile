# PEM-RT: every install step lives here, so a fresh clone needs nothing done by hand.
#   make demo   installs everything and runs the end-to-end demo (CPU only is fine)
#   make test   installs everything and runs the test suite (what .ci/run runs)
# On a Jetson (JetPack 6, found by /etc/nv_tegra_release) TensorRT, CUDA and a GStreamer-enabled OpenCV
# belong to the system python3.10: the venv is made with --system-site-packages so it sees them, and gets
# only what JetPack lacks ('.[jetson]': no pip OpenCV or TensorRT to shadow the system's).
TEGRA_RELEASE ?= /etc/nv_tegra_release
ifneq ($(wildcard $(TEGRA_RELEASE)),)
PYTHON ?= python3.10
VENV_FLAGS ?= --system-site-packages
EXTRAS ?= jetson
SYSTEM_PACKAGES ?= ffmpeg
else
PYTHON ?= python3.11
VENV_FLAGS ?=
EXTRAS ?= all
# ffprobe checks recordings, Chromium loads the live view in the tests (both from the system packages)
SYSTEM_PACKAGES ?= ffmpeg chromium fonts-dejavu-core
endif
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install system-packages test test-all lint typecheck demo bench plugins fuzz clean

install: system-packages $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV_FLAGS) $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	$(PY) -m pem_rt.setup_env
	touch $(STAMP)

# apt-get only when a tool is missing (Debian / Ubuntu; elsewhere install them by hand)
system-packages:
	@missing=""; \
	for pkg in $(SYSTEM_PACKAGES); do \
		case $$pkg in ffmpeg) tool=ffprobe;; fonts-*) continue;; *) tool=$$pkg;; esac; \
		command -v $$tool >/dev/null 2>&1 || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "apt-get install$$missing"; \
		$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing $(filter fonts-%,$(SYSTEM_PACKAGES)) \
		|| { $(SUDO) apt-get update && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; }; \
	fi

test: system-packages $(STAMP)
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
FUZZ_TARGETS := sidecar onnx_metadata calibration_cache annotations sources_file checkpoint checkpoint_content
fuzz: $(STAMP)
	mkdir -p build/fuzz
	for t in $(FUZZ_TARGETS); do \
	  $(PY) -m tests.fuzz.run $$t -runs=$(FUZZ_RUNS) -rss_limit_mb=8192 -artifact_prefix=build/fuzz/ build/fuzz/$$t || exit 1; \
	done

test-all: system-packages $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

typecheck: $(STAMP)
	$(PY) -m mypy

clean:
	rm -rf $(VENV) build runs .pytest_cache .mypy_cache .ruff_cache
