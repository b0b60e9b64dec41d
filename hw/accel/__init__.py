"""The Spikeformer accelerator: configuration, command format, compiler, RTL core and AXI top.

* :mod:`hw.accel.config` -- :class:`AcceleratorConfig`, one parameter object per build;
* :mod:`hw.accel.regmap` -- the AXI4-Lite register map (RTL, driver constants and docs);
* :mod:`hw.accel.descriptors` -- the command descriptor format and its field rules;
* :mod:`hw.accel.program` / :mod:`hw.accel.compiler` -- programs compiled from integer models;
* :mod:`hw.accel.emulator` -- functional model of the stream protocol;
* :mod:`hw.accel.perf` -- analytic cycle model;
* :mod:`hw.accel.core` / :mod:`hw.accel.top` -- the Amaranth accelerator.
"""

from hw.accel.config import ACCEL_CONFIGS, AcceleratorConfig, get_config

__all__ = ["ACCEL_CONFIGS", "AcceleratorConfig", "get_config"]
