"""``POOL`` (max-pool of spikes) and ``ADD`` (residual add of bit-plane integers).

Both work on whole activation words, so every operation covers the ``T`` time steps
at once: a max-pool of spikes is the OR of the window's words
(:func:`contract.numerics.maxpool2d` on 0/1 values, zero padding), and a residual add is
a ripple-carry addition over bit planes, LSB first, with a ``T``-bit carry
(:func:`contract.numerics.residual_add`).
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import wiring

from hw.accel.loops import LoopNest, read_stage, registered
from hw.accel.ports import ADDRESS_BITS, engine_members
from hw.arith import equals
from protocol.config import AcceleratorConfig

__all__ = ["PoolEngine", "AddEngine"]


class _Engine(wiring.Component):
    """An engine that runs one loop nest: ``start`` -> one setup cycle -> loop -> pipeline empty."""

    def __init__(self, config: AcceleratorConfig, **ports: bool) -> None:
        self._config = config
        super().__init__(engine_members(config, **ports))

    def sequence(self, m: Module, loop: LoopNest, pipeline_busy: Signal) -> None:
        # One setup cycle lets the registered derived quantities settle before the loop samples them.
        setup = Signal()
        m.d.comb += loop.start.eq(setup)
        m.d.sync += setup.eq(self.start)
        with m.If(self.start):
            m.d.sync += self.busy.eq(1)
        with m.Elif(self.busy & ~setup & ~loop.active & ~pipeline_busy):
            m.d.sync += self.busy.eq(0)


class PoolEngine(_Engine):
    """``POOL``: ``out[oy, ox, c] = OR_{dy, dx} in[oy s + dy - pad_top, ox s + dx - pad_left, c]``.

    One window element per cycle (``out_h out_w C k^2`` cycles); rows and columns
    outside the input read as zero.
    """

    def __init__(self, config: AcceleratorConfig) -> None:
        super().__init__(config, read=True, write=True)

    def elaborate(self, platform: object) -> Module:
        m = Module()
        d = self.desc
        row = registered(m, d.in_w * d.in_c, "pool_row")
        s_row = registered(m, d.stride * d.in_w * d.in_c, "pool_s_row")
        s_c = registered(m, d.stride * d.in_c, "pool_s_c")
        o_row = registered(m, d.out_w * d.in_c, "pool_o_row")
        # The read port takes ADDRESS_BITS bits and additions carry only upwards, so the loop
        # keeps the address modulo 2**ADDRESS_BITS: a negative (padding) one just wraps, and
        # padded positions do not read anyway.
        start = d.src0 - d.pad_top * d.in_w * d.in_c - d.pad_left * d.in_c
        init = registered(m, start[:ADDRESS_BITS], "pool_init")

        m.submodules.loop = loop = LoopNest("pool", [("oy", 16), ("ox", 16), ("c", 16), ("dy", 8), ("dx", 8)])
        for level, count in (
            ("oy", d.out_h),
            ("ox", d.out_w),
            ("c", d.in_c),
            ("dy", d.kernel),
            ("dx", d.kernel),
        ):
            m.d.comb += loop.count[level].eq(count)
        addr = loop.output(
            "addr", ADDRESS_BITS, init, {"oy": s_row, "ox": s_c, "c": 1, "dy": row, "dx": d.in_c}
        )
        iy = loop.output("iy", signed(18), -d.pad_top, {"oy": d.stride, "dy": 1})
        ix = loop.output("ix", signed(18), -d.pad_left, {"ox": d.stride, "dx": 1})
        oaddr = loop.output("oaddr", ADDRESS_BITS, d.dst, {"oy": o_row, "ox": d.in_c, "c": 1})
        pad = Signal()
        m.d.comb += pad.eq((iy < 0) | (iy >= d.in_h) | (ix < 0) | (ix >= d.in_w))

        stage = read_stage(
            m,
            name="pool",
            active=loop.active,
            ready=1,
            meta={
                "pad": pad,
                "first": ~loop.idx["dy"].any() & ~loop.idx["dx"].any(),
                "end": loop.within("dy", "dx"),
                "oaddr": oaddr,
            },
        )
        m.d.comb += [
            loop.step.eq(loop.active & stage.advance),
            self.rd.addr.eq(addr),
            self.rd.en.eq(loop.active & stage.advance & ~pad),
        ]
        acc = Signal(self._config.timesteps)
        value = Mux(stage.meta["pad"], 0, self.rd.data) | Mux(stage.meta["first"], 0, acc)
        with m.If(stage.valid):
            m.d.sync += acc.eq(value)
        m.d.comb += [
            self.wr.en.eq(stage.valid & stage.meta["end"]),
            self.wr.addr.eq(stage.meta["oaddr"]),
            self.wr.data.eq(value),
        ]
        self.sequence(m, loop, stage.valid)
        return m


class AddEngine(_Engine):
    """``ADD``: ``out = a + b`` for ``count`` elements of ``planes_in`` / ``planes_in2`` planes.

    Per element and output plane ``j`` (``planes_out`` of them) it reads plane ``j`` of
    ``a`` and of ``b`` (zero beyond their planes) and writes
    ``a_j XOR b_j XOR carry``: two cycles per output plane.
    """

    def __init__(self, config: AcceleratorConfig) -> None:
        super().__init__(config, read=True, write=True)

    def elaborate(self, platform: object) -> Module:
        m = Module()
        d = self.desc
        m.submodules.loop = loop = LoopNest("add", [("e", 32), ("j", 8), ("op", 1)])
        m.d.comb += [loop.count["e"].eq(d.count), loop.count["j"].eq(d.planes_out), loop.count["op"].eq(2)]
        a_addr = loop.output("a", ADDRESS_BITS, d.src0, {"e": d.planes_in, "j": 1})
        b_addr = loop.output("b", ADDRESS_BITS, d.src1, {"e": d.planes_in2, "j": 1})
        o_addr = loop.output("o", ADDRESS_BITS, d.dst, {"e": d.planes_out, "j": 1})
        op, j = loop.idx["op"], loop.idx["j"]
        real = Signal()
        m.d.comb += real.eq(Mux(op, j < d.planes_in2, j < d.planes_in))

        stage = read_stage(
            m,
            name="add",
            active=loop.active,
            ready=1,
            meta={"op": op, "lsb": equals(j, 0), "real": real, "oaddr": o_addr},
        )
        m.d.comb += [
            loop.step.eq(loop.active & stage.advance),
            self.rd.addr.eq(Mux(op, b_addr, a_addr)),
            self.rd.en.eq(loop.active & stage.advance & real),
        ]
        t = self._config.timesteps
        a, carry = Signal(t), Signal(t)
        value = Mux(stage.meta["real"], self.rd.data, 0)
        carry_in = Mux(stage.meta["lsb"], 0, carry)
        with m.If(stage.valid & ~stage.meta["op"]):
            m.d.sync += a.eq(value)
        with m.If(stage.valid & stage.meta["op"]):
            m.d.sync += carry.eq((a & value) | (carry_in & (a ^ value)))
        m.d.comb += [
            self.wr.en.eq(stage.valid & stage.meta["op"]),
            self.wr.addr.eq(stage.meta["oaddr"]),
            self.wr.data.eq(a ^ value ^ carry_in),
        ]
        self.sequence(m, loop, stage.valid)
        return m
