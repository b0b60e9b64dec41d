"""``POOL`` (max-pool of spikes) and ``ADD`` (residual add of bit-plane integers).

Both work on whole activation words, so every operation covers the ``T`` time steps
at once: a max-pool of spikes is the OR of the window's words
(:func:`contract.numerics.maxpool2d` on 0/1 values, zero padding), and a residual add is
a ripple-carry addition over bit planes, LSB first, with a ``T``-bit carry
(:func:`contract.numerics.residual_add`).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, Value, signed
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

    def write_words(
        self, m: Module, *, strobe: Value, addr: Value, words: list[Value], second_valid: Value | None = None
    ) -> None:
        """Write ``words[0]`` at ``addr`` on ``strobe`` and, with two words and ``second_valid``,
        ``words[1]`` at ``addr + 1`` in the same cycle (the write port's second lane: the
        other bank of the two-bank memory)."""
        m.d.comb += [self.wr.en.eq(strobe), self.wr.addr.eq(addr), self.wr.data.eq(words[0])]
        if len(words) == 2:
            m.d.comb += [self.wr.next_en.eq(second_valid), self.wr.next_data.eq(words[1])]

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

    One window element per cycle, for ``g`` channels at once (``g = 2`` with the two-bank
    memory, whose reads return a word and the next one, the next channel's, and whose write
    port takes the pair; else ``g = 1``): ``out_h out_w ceil(C / g) k^2`` cycles. Rows and
    columns outside the input read as zero.
    """

    def __init__(self, config: AcceleratorConfig) -> None:
        self._channels_per_visit = config.words_per_beat
        pairs = self._channels_per_visit == 2
        super().__init__(config, read=True, read_pairs=pairs, write=True, write_pairs=pairs)

    def elaborate(self, platform: object) -> Module:
        m = Module()
        d = self.desc
        g = self._channels_per_visit
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
            ("c", d.in_c if g == 1 else (d.in_c + 1) >> 1),
            ("dy", d.kernel),
            ("dx", d.kernel),
        ):
            m.d.comb += loop.count[level].eq(count)
        addr = loop.output(
            "addr", ADDRESS_BITS, init, {"oy": s_row, "ox": s_c, "c": g, "dy": row, "dx": d.in_c}
        )
        iy = loop.output("iy", signed(18), -d.pad_top, {"oy": d.stride, "dy": 1})
        ix = loop.output("ix", signed(18), -d.pad_left, {"ox": d.stride, "dx": 1})
        oaddr = loop.output("oaddr", ADDRESS_BITS, d.dst, {"oy": o_row, "ox": d.in_c, "c": g})
        pad = Signal()
        m.d.comb += pad.eq((iy < 0) | (iy >= d.in_h) | (ix < 0) | (ix >= d.in_w))

        meta = {
            "pad": pad,
            "first": ~loop.idx["dy"].any() & ~loop.idx["dx"].any(),
            "end": loop.within("dy", "dx"),
            "oaddr": oaddr,
        }
        if g == 2:
            meta["second"] = loop.idx["c"] * 2 + 1 < d.in_c
        stage = read_stage(m, name="pool", active=loop.active, ready=1, meta=meta)
        m.d.comb += [
            loop.step.eq(loop.active & stage.advance),
            self.rd.addr.eq(addr),
            self.rd.en.eq(loop.active & stage.advance & ~pad),
        ]
        words = [self.rd.data] if g == 1 else [self.rd.data, self.rd.next]
        # An odd C's last visit reads a word past its channels into acc1, which is never written.
        real = ~stage.meta["pad"]
        acc = [Signal(self._config.timesteps, name=f"acc{i}") for i in range(g)]
        values = [
            Mux(real, word, 0) | Mux(stage.meta["first"], 0, acc_i)
            for word, acc_i in zip(words, acc, strict=True)
        ]
        with m.If(stage.valid):
            m.d.sync += [acc_i.eq(value) for acc_i, value in zip(acc, values, strict=True)]
        self.write_words(
            m,
            strobe=stage.valid & stage.meta["end"],
            addr=stage.meta["oaddr"],
            words=values,
            second_valid=stage.meta.get("second"),
        )
        self.sequence(m, loop, stage.valid)
        return m


class AddEngine(_Engine):
    """``ADD``: ``out = a + b`` for ``count`` elements of ``planes_in`` / ``planes_in2`` planes.

    Per element it visits the ``planes_out`` output planes ``g`` at a time (``g = 2`` with the
    two-bank memory, whose reads return a word and the next one, else ``g = 1``): one cycle
    reads planes ``j .. j + g - 1`` of ``a``, the next those of ``b`` (zero beyond their
    planes), and the ripple-carry sum ``a_j XOR b_j XOR carry`` of the ``g`` planes is written
    in the ``b`` cycle (two words through the write port's second lane): ``2 ceil(planes_out / g)``
    cycles per element.
    """

    def __init__(self, config: AcceleratorConfig) -> None:
        self._planes_per_visit = config.words_per_beat
        pairs = self._planes_per_visit == 2
        super().__init__(config, read=True, read_pairs=pairs, write=True, write_pairs=pairs)

    def elaborate(self, platform: object) -> Module:
        m = Module()
        d = self.desc
        g = self._planes_per_visit
        m.submodules.loop = loop = LoopNest("add", [("e", 32), ("j", 8), ("op", 1)])
        visits = d.planes_out if g == 1 else (d.planes_out + 1) >> 1
        m.d.comb += [loop.count["e"].eq(d.count), loop.count["j"].eq(visits), loop.count["op"].eq(2)]
        a_addr = loop.output("a", ADDRESS_BITS, d.src0, {"e": d.planes_in, "j": g})
        b_addr = loop.output("b", ADDRESS_BITS, d.src1, {"e": d.planes_in2, "j": g})
        o_addr = loop.output("o", ADDRESS_BITS, d.dst, {"e": d.planes_out, "j": g})
        op = loop.idx["op"]
        plane = Signal(9)
        m.d.comb += plane.eq(loop.idx["j"] * g)
        planes = Mux(op, d.planes_in2, d.planes_in)
        # real[i]: plane ``plane + i`` of the operand read this cycle exists.
        real = [Signal(name=f"real{i}") for i in range(g)]
        m.d.comb += [flag.eq(plane + i < planes) for i, flag in enumerate(real)]

        meta = {"op": op, "lsb": equals(loop.idx["j"], 0), "real": Cat(*real), "oaddr": o_addr}
        if g == 2:
            meta["second"] = plane + 1 < d.planes_out
        stage = read_stage(m, name="add", active=loop.active, ready=1, meta=meta)
        m.d.comb += [
            loop.step.eq(loop.active & stage.advance),
            self.rd.addr.eq(Mux(op, b_addr, a_addr)),
            self.rd.en.eq(loop.active & stage.advance & real[0]),
        ]
        t = self._config.timesteps
        words = [self.rd.data] if g == 1 else [self.rd.data, self.rd.next]
        values = [Mux(stage.meta["real"][i], word, 0) for i, word in enumerate(words)]
        a = [Signal(t, name=f"a{i}") for i in range(g)]
        carry = Signal(t)
        with m.If(stage.valid & ~stage.meta["op"]):
            m.d.sync += [reg.eq(value) for reg, value in zip(a, values, strict=True)]
        sums, carry_in = [], Mux(stage.meta["lsb"], 0, carry)
        for a_i, b_i in zip(a, values, strict=True):
            sums.append(a_i ^ b_i ^ carry_in)
            carry_in = (a_i & b_i) | (carry_in & (a_i ^ b_i))
        with m.If(stage.valid & stage.meta["op"]):
            m.d.sync += carry.eq(carry_in)

        self.write_words(
            m,
            strobe=stage.valid & stage.meta["op"],
            addr=stage.meta["oaddr"],
            words=sums,
            second_valid=stage.meta.get("second"),
        )
        self.sequence(m, loop, stage.valid)
        return m
