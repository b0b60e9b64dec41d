"""Amaranth RTL generators of the Spikeformer accelerator and their pure reference functions.

* :mod:`hw.lif_pe` -- parallel-time-step LIF array (``L`` lanes x ``T`` steps per beat);
* :mod:`hw.synapse_pe` -- synapse array with tick batching (one weight feeds ``T`` sums);
* :mod:`hw.attention_pe` -- spike attention ``Q (K^T V)`` with AND and adders only;
* :mod:`hw.arith` -- width-exact arithmetic helpers shared by the PEs;
* :mod:`hw.generate` -- deterministic Verilog plus a JSON port description per PE configuration;
* :mod:`hw.accel` -- the whole accelerator (sequencer, memories, engines, AXI top).

Parameters come from :mod:`protocol.params` and :mod:`protocol.config`; every PE computes
exactly the integer semantics of :mod:`contract.numerics`. Simulation, lint and synthesis
live in :mod:`sim`.
"""
