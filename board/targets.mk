# Board targets; included by the top Makefile, which defines PY (the venv's python), BUILD,
# EXPORT and the `setup` target.
#
#   make bitstream                 Verilog of the accelerator + Vivado batch flow (board/bitstream.tcl)
#                                  -> $(BOARD_OUT)/spikeformer.bit + spikeformer.hwh; needs `vivado`
#                                  on PATH and stops at once (exit 2) without it
#     ACCEL_CONFIG=pynq-z2         accelerator configuration (protocol.config presets: pynq-z2 on a
#                                  PYNQ-Z2, kv260 on a Kria KV260); default pynq-z2, or without it
#                                  the preset of BOARD_PART
#     BOARD_PART=                  Vivado part (default: the configuration's board part,
#                                  protocol.config.BOARD_PARTS); xc7z... builds the Zynq-7000 block
#                                  design, xczu.../xck... the Zynq UltraScale+ one
#     CLOCK_MHZ=                   fabric clock override in MHz (default: none, the accelerator
#                                  configuration's clock_mhz in protocol/config.py); deploy passes
#                                  it to host.run for frames per second and timeouts
#     VIVADO_JOBS=4                parallel implementation jobs
#   make deploy BOARD=user@host    copy overlay, driver and export to a PYNQ board over ssh and run
#                                  `python -m host.run --backend pynq` there (docs/board.md); the
#                                  same ACCEL_CONFIG / BOARD_PART as the bitstream
#     DEPLOY_EXPORT=dir            export directory (default $(EXPORT)/export, what `make export` writes)
#     BOARD_DIR=spikeformer        directory on the board
#     SAMPLES=all                  test vectors to run (a number, or all the export stores)

BOARD_OUT ?= $(BUILD)/board
BOARD_PART ?=
# Recursively expanded: a BOARD_PART given alone leaves the configuration to host.bitstream.
ACCEL_CONFIG ?= $(if $(BOARD_PART),,pynq-z2)
CLOCK_MHZ ?=
VIVADO_JOBS ?= 4
DEPLOY_EXPORT ?= $(EXPORT)/export
BOARD_DIR ?= spikeformer
SAMPLES ?= all

.PHONY: bitstream deploy

bitstream: setup
	$(PY) -m host.bitstream $(if $(ACCEL_CONFIG),--config $(ACCEL_CONFIG)) $(if $(CLOCK_MHZ),--clock-mhz $(CLOCK_MHZ)) \
	  --jobs $(VIVADO_JOBS) --out $(BOARD_OUT) $(if $(BOARD_PART),--part $(BOARD_PART))

deploy: setup
	@test -n "$(BOARD)" || { echo "usage: make deploy BOARD=<user@board-host> [DEPLOY_EXPORT=dir]" >&2; exit 2; }
	$(PY) -m host.deploy --board $(BOARD) --export $(DEPLOY_EXPORT) --overlay-dir $(BOARD_OUT) \
	  --stage $(BUILD)/deploy --board-dir $(BOARD_DIR) $(if $(ACCEL_CONFIG),--config $(ACCEL_CONFIG)) \
	  --samples $(SAMPLES) $(if $(CLOCK_MHZ),--clock-mhz $(CLOCK_MHZ)) $(if $(BOARD_PART),--part $(BOARD_PART))
