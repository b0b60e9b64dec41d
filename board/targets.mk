# Board targets; included by the top Makefile, which defines PY (the venv's python), BUILD,
# EXPORT and the `setup` target.
#
#   make bitstream                 Verilog of the accelerator + Vivado batch flow (board/bitstream.tcl)
#                                  -> $(BOARD_OUT)/spikeformer.bit + spikeformer.hwh; needs `vivado`
#                                  on PATH and stops at once without it
#     ACCEL_CONFIG=pynq-z2         accelerator configuration (protocol.config presets)
#     CLOCK_MHZ=                   fabric clock override in MHz (default: none, the accelerator
#                                  configuration's clock_mhz in protocol/config.py); deploy passes
#                                  it to host.run for frames per second and timeouts
#     VIVADO_JOBS=4                parallel implementation jobs
#   make deploy BOARD=user@host    copy overlay, driver and export to a PYNQ board over ssh and run
#                                  `python -m host.run --backend pynq` there (docs/board.md)
#     DEPLOY_EXPORT=dir            export directory (default $(EXPORT)/export, what `make export` writes)
#     BOARD_DIR=spikeformer        directory on the board
#     SAMPLES=all                  test vectors to run (a number, or all the export stores)

BOARD_OUT ?= $(BUILD)/board
ACCEL_CONFIG ?= pynq-z2
CLOCK_MHZ ?=
VIVADO_JOBS ?= 4
DEPLOY_EXPORT ?= $(EXPORT)/export
BOARD_DIR ?= spikeformer
SAMPLES ?= all

.PHONY: bitstream deploy

bitstream: setup
	$(PY) -m host.bitstream --config $(ACCEL_CONFIG) $(if $(CLOCK_MHZ),--clock-mhz $(CLOCK_MHZ)) \
	  --jobs $(VIVADO_JOBS) --out $(BOARD_OUT)

deploy: setup
	@test -n "$(BOARD)" || { echo "usage: make deploy BOARD=<user@board-host> [DEPLOY_EXPORT=dir]" >&2; exit 2; }
	$(PY) -m host.deploy --board $(BOARD) --export $(DEPLOY_EXPORT) --overlay-dir $(BOARD_OUT) \
	  --stage $(BUILD)/deploy --board-dir $(BOARD_DIR) --config $(ACCEL_CONFIG) --samples $(SAMPLES) \
	  $(if $(CLOCK_MHZ),--clock-mhz $(CLOCK_MHZ))
