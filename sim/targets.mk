# RTL, simulation and synthesis targets; included by the top Makefile, which defines
# PY (the venv's python), VENV, BUILD and the `setup` target.
#
#   make rtl                      Verilog of every PE configuration -> $(BUILD)/rtl, then
#                                 verilator --lint-only -Wall (waivers: sim/lint.py)
#   make sim                      Verilator + cocotb regression of every configuration
#     WAVES=1                     ... writing $(BUILD)/sim/<config>/dump.fst
#     COCOTB_RANDOM_SEED=n        ... reproducing a run (the seed is printed)
#     SIM_CONFIGS="lif_l8_t4 .."  ... only these configurations (protocol.params.PE_CONFIGS names)
#     SIM_VECTORS=n               ... random vectors per configuration (default 10000)
#   make synth                    Yosys synth_xilinx per configuration ->
#                                 $(BUILD)/synth/resources.md and resources.csv

RTL_DIR ?= $(BUILD)/rtl
SIM_DIR ?= $(BUILD)/sim
SYNTH_DIR ?= $(BUILD)/synth
SIM_VECTORS ?= 10000
SIM_CONFIGS ?=
SYNTH_JOBS ?= 1

rtl: setup
	$(PY) -m hw.generate --out $(RTL_DIR)
	$(PY) -m sim.lint $(RTL_DIR)

sim: setup
	$(if $(WAVES),WAVES=$(WAVES)) $(PY) -m sim --out $(SIM_DIR) --vectors $(SIM_VECTORS) \
	  $(if $(COCOTB_RANDOM_SEED),--seed $(COCOTB_RANDOM_SEED)) $(foreach c,$(SIM_CONFIGS),--config $(c))

synth: rtl
	$(PY) -m sim.synth --rtl $(RTL_DIR) --out $(SYNTH_DIR) --jobs $(SYNTH_JOBS)
