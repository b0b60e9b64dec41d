"""The Spikeformer accelerator: configuration, command format, compiler, RTL and its simulation.

Host side (pure Python):

* :mod:`hw.accel.config` -- :class:`AcceleratorConfig`, one parameter object per build;
* :mod:`hw.accel.regmap` -- the AXI4-Lite register map (RTL decoder, driver constants, docs);
* :mod:`hw.accel.descriptors` -- the command descriptor format and its field rules;
* :mod:`hw.accel.program`, :mod:`hw.accel.compiler` -- programs compiled from integer models;
* :mod:`hw.accel.bands`, :mod:`hw.accel.banding` -- band tiling of oversize conv stages (geometry,
  emission), :mod:`hw.accel.segments` -- the host side of band-tiled (multi-segment) programs;
* :mod:`hw.accel.emulator` -- functional model of the stream protocol;
* :mod:`hw.accel.perf` -- analytic cycle model.

RTL (Amaranth): :mod:`hw.accel.top` (AXI) around :mod:`hw.accel.core` (sequencer, memories),
the engines :mod:`~hw.accel.transfer`, :mod:`~hw.accel.conv`, :mod:`~hw.accel.elementwise`,
:mod:`~hw.accel.attention`, :mod:`~hw.accel.head`, the shared :mod:`~hw.accel.lifunit`,
:mod:`~hw.accel.serial_synapse`, the two-bank :mod:`~hw.accel.banked` memories and the helpers
:mod:`~hw.accel.loops`, :mod:`~hw.accel.ports`.

Tools: :mod:`hw.accel.generate` (Verilog), :mod:`hw.accel.verilator` + :mod:`hw.accel.cocotb_bench`
(Verilator + cocotb runs), :mod:`hw.accel.testbench` (Amaranth simulator), :mod:`hw.accel.synth`
(Yosys estimate).
"""

from hw.accel.config import ACCEL_CONFIGS, AcceleratorConfig, get_config

__all__ = ["ACCEL_CONFIGS", "AcceleratorConfig", "get_config"]
