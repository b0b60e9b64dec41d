"""Amaranth processing elements (PEs) of the Spikeformer accelerator.

* :mod:`hw.params` -- one frozen parameter object per PE configuration, the named
  sweep configurations (:data:`hw.params.PE_CONFIGS`) and the analytic cycle figures;
* :mod:`hw.lif_pe` -- parallel-time-step LIF array (``L`` lanes x ``T`` steps per beat);
* :mod:`hw.synapse_pe` -- synapse array with tick batching (one weight feeds ``T`` sums);
* :mod:`hw.attention_pe` -- spike attention ``Q (K^T V)`` with AND and adders only;
* :mod:`hw.generate` -- deterministic Verilog plus a JSON port description per configuration;
* :mod:`hw.testbench` -- stream drivers for unit tests in Amaranth's simulator.

Every PE computes exactly the integer semantics of :mod:`golden.numerics`.
"""

from hw.params import PE_CONFIGS, AttentionParams, LIFArrayParams, SynapseArrayParams

__all__ = ["PE_CONFIGS", "AttentionParams", "LIFArrayParams", "SynapseArrayParams"]
