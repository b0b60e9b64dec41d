"""The accelerator's protocol, shared by the RTL, the testbenches and the driver (numpy only).

* :mod:`protocol.params` -- one parameter object per PE configuration and its cycle figures;
* :mod:`protocol.config` -- :class:`~protocol.config.AcceleratorConfig`, one parameter object
  per accelerator build (lanes, T, memories, clock);
* :mod:`protocol.regmap` -- the AXI4-Lite register map (RTL decoder, driver constants, docs);
* :mod:`protocol.descriptors` -- the command descriptor's field table, encoding and field rules;
* :mod:`protocol.program` -- compiled programs and the activation-word packing;
* :mod:`protocol.compiler` -- integer model -> program (allocation, building, band tiling);
* :mod:`protocol.bands`, :mod:`protocol.segments` -- band geometry and multi-segment programs;
* :mod:`protocol.emulator` -- functional model of the stream protocol;
* :mod:`protocol.perf` -- the cycle model.

Nothing here imports Amaranth or torch: the board runtime (:mod:`host`) runs on it alone,
and the RTL (:mod:`hw.accel`) builds its layouts from the same tables.
"""
