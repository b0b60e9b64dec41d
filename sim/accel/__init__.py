"""Simulation, lint and synthesis of the whole accelerator (:mod:`hw.accel`).

* :mod:`sim.accel.rtl` -- the top's Verilog and waivers for a configuration, regenerated only
  when its inputs change (what the host's simulated backend, :mod:`host.backends.native_backend`,
  builds under Verilator, and what ``make bitstream`` gives Vivado);
* :mod:`sim.accel.testbench` -- the core in Amaranth's simulator (fast unit tests);
* :mod:`sim.accel.lint` -- the top's Verilator waivers;
* :mod:`sim.accel.synth` -- Yosys resource estimate of a configuration on its board's part
  (xc7z020, or the K26's xck26 with URAM).
"""
