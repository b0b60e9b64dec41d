"""The accelerator top: AXI4-Lite control/status slave and AXI4-Stream input/output.

Port names follow Vivado's interface inference (``s_axi_*``, ``s_axis_*``, ``m_axis_*``,
``aclk``, ``aresetn``), and the clock domain is local: ``aclk`` drives it and
``aresetn`` (active low, synchronous) resets it, so the generated Verilog has exactly
these ports and no ``clk``/``rst`` of its own.

The register decoder is built from :data:`protocol.regmap.REGISTERS`: every readable
register must have a value here (a missing one is an elaboration error), so the
register map, the RTL, the driver and the docs cannot drift apart. Reads take three
cycles (address, profile memory, data); writes are answered with ``OKAY`` (writes to
anything but ``CONTROL`` are ignored).
"""

from __future__ import annotations

from collections.abc import Mapping

from amaranth.hdl import (
    Cat,
    ClockDomain,
    ClockSignal,
    Const,
    Module,
    ResetInserter,
    ResetSignal,
    Signal,
    Value,
)
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from hw.accel.core import AcceleratorCore
from protocol import regmap
from protocol.config import STREAM_BITS, AcceleratorConfig

__all__ = ["AcceleratorTop", "TOP_NAME", "port_names"]

#: Verilog module name of the top.
TOP_NAME = "spikeformer_accel"

_ADDR = regmap.ADDRESS_BITS


class AcceleratorTop(wiring.Component):
    """AXI wrapper of :class:`hw.accel.core.AcceleratorCore`.

    Parameters
    ----------
    config : AcceleratorConfig

    Attributes
    ----------
    aclk, aresetn : In(1)
        Clock and active-low synchronous reset.
    s_axi_* :
        AXI4-Lite slave (32-bit data, ``ADDRESS_BITS``-bit byte address).
    s_axis_tdata, s_axis_tvalid, s_axis_tready, s_axis_tlast :
        Command stream in (64-bit).
    m_axis_tdata, m_axis_tvalid, m_axis_tready, m_axis_tlast, m_axis_tkeep :
        Output stream (64-bit, all bytes valid).
    """

    def __init__(self, config: AcceleratorConfig) -> None:
        if not isinstance(config, AcceleratorConfig):
            raise TypeError(f"AcceleratorTop needs an AcceleratorConfig, not {config!r}")
        self._config = config
        super().__init__(
            {
                "aclk": In(1),
                "aresetn": In(1),
                "s_axi_awaddr": In(_ADDR),
                "s_axi_awvalid": In(1),
                "s_axi_awready": Out(1),
                "s_axi_wdata": In(32),
                "s_axi_wstrb": In(4),
                "s_axi_wvalid": In(1),
                "s_axi_wready": Out(1),
                "s_axi_bresp": Out(2),
                "s_axi_bvalid": Out(1),
                "s_axi_bready": In(1),
                "s_axi_araddr": In(_ADDR),
                "s_axi_arvalid": In(1),
                "s_axi_arready": Out(1),
                "s_axi_rdata": Out(32),
                "s_axi_rresp": Out(2),
                "s_axi_rvalid": Out(1),
                "s_axi_rready": In(1),
                "s_axis_tdata": In(STREAM_BITS),
                "s_axis_tvalid": In(1),
                "s_axis_tready": Out(1),
                "s_axis_tlast": In(1),
                "m_axis_tdata": Out(STREAM_BITS),
                "m_axis_tvalid": Out(1),
                "m_axis_tready": In(1),
                "m_axis_tlast": Out(1),
                "m_axis_tkeep": Out(STREAM_BITS // 8),
            }
        )

    @property
    def config(self) -> AcceleratorConfig:
        return self._config

    def elaborate(self, platform: object) -> Module:
        m = Module()
        cfg = self._config
        m.domains.sync = ClockDomain("sync", local=True)
        m.d.comb += [ClockSignal("sync").eq(self.aclk), ResetSignal("sync").eq(~self.aresetn)]

        soft_reset = Signal()
        core = AcceleratorCore(cfg)
        m.submodules.core = ResetInserter(soft_reset)(core)

        # ---------------------------------------------------------------- streams
        m.d.comb += [
            core.words_in.valid.eq(self.s_axis_tvalid),
            core.words_in.payload.data.eq(self.s_axis_tdata),
            core.words_in.payload.last.eq(self.s_axis_tlast),
            self.s_axis_tready.eq(core.words_in.ready),
            self.m_axis_tvalid.eq(core.words_out.valid),
            self.m_axis_tdata.eq(core.words_out.payload.data),
            self.m_axis_tlast.eq(core.words_out.payload.last),
            self.m_axis_tkeep.eq((1 << (STREAM_BITS // 8)) - 1),
            core.words_out.ready.eq(self.m_axis_tready),
        ]

        # ---------------------------------------------------------------- AXI4-Lite writes
        write = Signal()
        m.d.comb += [
            write.eq(self.s_axi_awvalid & self.s_axi_wvalid & ~self.s_axi_bvalid),
            self.s_axi_awready.eq(write),
            self.s_axi_wready.eq(write),
            self.s_axi_bresp.eq(0),
        ]
        with m.If(self.s_axi_bvalid & self.s_axi_bready):
            m.d.sync += self.s_axi_bvalid.eq(0)
        with m.If(write):
            m.d.sync += self.s_axi_bvalid.eq(1)
        control = write & (self.s_axi_awaddr[2:] == regmap.offset("CONTROL") >> 2) & self.s_axi_wstrb[0]
        start_bit, _ = regmap.field_mask("CONTROL", "START")
        reset_bit, _ = regmap.field_mask("CONTROL", "SOFT_RESET")
        m.d.comb += [
            core.start.eq(control & self.s_axi_wdata[start_bit]),
            soft_reset.eq(control & self.s_axi_wdata[reset_bit]),
        ]

        # ---------------------------------------------------------------- AXI4-Lite reads
        word_addr = Signal(_ADDR - 2)
        pending = Signal(2)  # cycles until the read data is registered
        cycles_hi = Signal(32)
        m.d.comb += [
            self.s_axi_arready.eq(~pending.any() & ~self.s_axi_rvalid),
            self.s_axi_rresp.eq(0),
            core.profile_addr.eq(word_addr - (regmap.PROFILE_BASE >> 2)),
        ]
        with m.If(self.s_axi_arvalid & self.s_axi_arready):
            m.d.sync += [word_addr.eq(self.s_axi_araddr[2:]), pending.eq(2)]
        with m.If(pending.any()):
            m.d.sync += pending.eq(pending - 1)
        with m.If(self.s_axi_rvalid & self.s_axi_rready):
            m.d.sync += self.s_axi_rvalid.eq(0)

        values = self._register_values(core, cycles_hi)
        with m.If(pending == 1):
            m.d.sync += self.s_axi_rvalid.eq(1)
            with m.If(word_addr >= regmap.PROFILE_BASE >> 2):
                m.d.sync += self.s_axi_rdata.eq(core.profile_data)
            with m.Else():
                with m.Switch(word_addr):
                    for reg in regmap.REGISTERS:
                        if reg.access == "WO":
                            continue
                        with m.Case(reg.offset >> 2):
                            m.d.sync += self.s_axi_rdata.eq(values[reg.name])
                    # Unmapped words read 0: a default arm rather than an assignment before the
                    # switch, so that the generated `case` is complete.
                    with m.Default():
                        m.d.sync += self.s_axi_rdata.eq(0)
                # Reading CYCLES_LO latches the high half (a consistent 64-bit read); kept out of
                # the switch, where it would leave cycles_hi's `case` without a default.
                with m.If(word_addr == regmap.offset("CYCLES_LO") >> 2):
                    m.d.sync += cycles_hi.eq(core.cycles[32:])
        return m

    def _register_values(self, core: AcceleratorCore, cycles_hi: Signal) -> dict[str, Value]:
        cfg = self._config
        major, minor = regmap.VERSION
        status = {"BUSY": core.busy, "DONE": core.done, "ERROR": core.error.any()}
        values: dict[str, Value | int | Mapping[str, Value | int]] = {
            "ID": regmap.ACCEL_ID,
            "VERSION": {"MAJOR": major, "MINOR": minor},
            "CONFIG_HASH": cfg.config_hash,
            "STATUS": status,
            "ERROR": core.error,
            "DETAIL": core.detail,
            "ERROR_COMMAND": core.error_command,
            "COMMANDS": core.commands,
            "CYCLES_LO": core.cycles[:32],
            "CYCLES_HI": cycles_hi,
            "HW_TIMESTEPS": cfg.timesteps,
            "HW_LANES": {"LANES": cfg.lanes, "LIF_LANES": cfg.lif_lanes},
            "HW_AMEM_DEPTH": cfg.amem_depth,
            "HW_WMEM_DEPTH": cfg.wmem_depth,
            "HW_ATTENTION": {"HEAD_DIM": cfg.head_dim, "MAX_GROUP": cfg.max_group},
            "HW_PROFILE_DEPTH": cfg.profile_depth,
        }
        out = {}
        for reg in regmap.REGISTERS:
            if reg.access == "WO":
                continue
            if reg.name not in values:
                raise AssertionError(f"register {reg.name} of protocol.regmap has no value in the top")
            value = values[reg.name]
            out[reg.name] = _pack_fields(reg, value) if isinstance(value, Mapping) else Value.cast(value)
        return out


def _pack_fields(reg: regmap.Register, values: Mapping[str, Value | int]) -> Value:
    """A 32-bit register word with each field's value at its bit position."""
    parts, bit = [], 0
    for f in sorted(reg.fields, key=lambda f: f.bit):
        if f.bit > bit:
            parts.append(Const(0, f.bit - bit))
        value = values[f.name]
        parts.append(Const(value, f.width) if isinstance(value, int) else Value.cast(value)[: f.width])
        bit = f.bit + f.width
    if bit < 32:
        parts.append(Const(0, 32 - bit))
    return Cat(*parts)


def port_names(config: AcceleratorConfig) -> list[str]:
    """The top's Verilog port names, in signature order."""
    return list(AcceleratorTop(config).signature.members.keys())
