"""``LOAD`` and ``STORE``: move activation words between the streams and the activation memory.

A stream word carries ``64 / T`` activation words, the lowest address in the lowest
bits (:func:`protocol.program.words_to_stream`). Both engines move one activation word
per cycle, or two consecutive ones (one in each bank) with the two-bank memory
(:attr:`~protocol.config.AcceleratorConfig.transfer_words_per_cycle`); ``STORE`` ends its
packet with ``last`` (AXI4-Stream TLAST).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal
from amaranth.lib import wiring

from hw.accel.loops import LoopNest, read_stage
from hw.accel.ports import engine_members
from hw.arith import word_at
from protocol.config import STREAM_BITS, AcceleratorConfig

__all__ = ["LoadEngine", "StoreEngine"]


class LoadEngine(wiring.Component):
    """``LOAD``: ``count`` activation words from the input stream to ``dst``, ``g`` per cycle.

    Parameters
    ----------
    config : AcceleratorConfig

    Attributes
    ----------
    start, desc, tmask, busy :
        Engine control (:func:`hw.accel.ports.engine_members`).
    wr : Out(amem_write_signature)
        Activation-memory writes.
    words_in : In(word_stream())
        The payload words.
    """

    def __init__(self, config: AcceleratorConfig) -> None:
        self._config = config
        self._pairs = config.transfer_words_per_cycle == 2
        super().__init__(engine_members(config, write=True, write_pairs=self._pairs, words_in=True))

    def elaborate(self, platform: object) -> Module:
        m = Module()
        t = self._config.timesteps
        per = STREAM_BITS // t
        g = 2 if self._pairs else 1
        d = self.desc

        index = Signal(32)  # next activation word to write
        sub = Signal(range(per))  # its slot in the buffered stream word
        buffer = Signal(STREAM_BITS)
        full = Signal()
        final = Signal()
        take = Signal()
        m.d.comb += [
            final.eq(index + g >= d.count),
            # A new stream word may enter while the buffer's last slot(s) are written.
            self.words_in.ready.eq(self.busy & (~full | ((sub == per - g) & ~final))),
            take.eq(self.words_in.valid & self.words_in.ready),
            self.wr.addr.eq(d.dst + index),
            self.wr.en.eq(full),
            self.wr.data.eq(word_at(buffer, sub, t)),
        ]
        if g == 2:  # slots come in pairs (per is even), the count may be odd
            m.d.comb += [
                self.wr.next_en.eq(index + 1 < d.count),
                self.wr.next_data.eq(word_at(buffer, sub + 1, t)),
            ]
        with m.If(self.start):
            m.d.sync += [self.busy.eq(1), index.eq(0), sub.eq(0), full.eq(0)]
        with m.Elif(self.busy):
            with m.If(full):
                m.d.sync += [index.eq(index + g), sub.eq(sub + g)]
                with m.If(final):
                    m.d.sync += [self.busy.eq(0), full.eq(0)]
                with m.Elif(sub == per - g):
                    m.d.sync += full.eq(0)
            with m.If(take):
                m.d.sync += [buffer.eq(self.words_in.payload.data), full.eq(1), sub.eq(0)]
        return m


class StoreEngine(wiring.Component):
    """``STORE``: ``count`` activation words from ``src0`` to the output stream, ``g`` per cycle.

    Attributes
    ----------
    start, desc, tmask, busy :
        Engine control.
    rd : Out(amem_read_signature)
        Activation-memory reads.
    words_out : Out(word_stream())
        The packet; its final word has ``last`` set.
    """

    def __init__(self, config: AcceleratorConfig) -> None:
        self._config = config
        self._pairs = config.transfer_words_per_cycle == 2
        super().__init__(engine_members(config, read=True, read_pairs=self._pairs, words_out=True))

    def elaborate(self, platform: object) -> Module:
        m = Module()
        t = self._config.timesteps
        per = STREAM_BITS // t
        g = 2 if self._pairs else 1
        d = self.desc

        m.submodules.loop = loop = LoopNest("store", [("i", 32)])
        addr = loop.output("addr", 32, d.src0, {"i": g})
        m.d.comb += loop.count["i"].eq(d.count if g == 1 else (d.count + 1) >> 1)

        out = self.words_out
        pack = Signal(STREAM_BITS)
        slot = Signal(range(per))
        meta = {"slot": slot, "final": loop.final}
        if g == 2:  # an odd count's last pair has one word
            meta["second"] = ~loop.final | ~d.count[0]
        stage = read_stage(m, name="store", active=loop.active, ready=~out.valid | out.ready, meta=meta)
        m.d.comb += [
            loop.start.eq(self.start),
            loop.step.eq(loop.active & stage.advance),
            self.rd.addr.eq(addr),
            self.rd.en.eq(loop.active & stage.advance),
        ]
        with m.If(loop.active & stage.advance):
            m.d.sync += slot.eq(slot + g)  # wraps: per is a power of two

        # The word that includes this cycle's activation word(s), in its slot(s).
        words = self.rd.data if g == 1 else Cat(self.rd.data, Mux(stage.meta["second"], self.rd.next, 0))
        merged = Signal(STREAM_BITS)
        with m.Switch(stage.meta["slot"][g - 1 :]):  # the slot of a pair is even
            for k in range(per // g):
                s = k * g
                with m.Case(k):
                    m.d.comb += merged.eq(Cat(pack[: s * t], words, pack[(s + g) * t :]))
        consume = stage.valid & (~out.valid | out.ready)
        flush = consume & ((stage.meta["slot"] == per - g) | stage.meta["final"])

        with m.If(out.valid & out.ready):
            m.d.sync += out.valid.eq(0)
            with m.If(out.payload.last):
                m.d.sync += self.busy.eq(0)
        with m.If(consume):
            m.d.sync += pack.eq(Mux(flush, 0, merged))
        with m.If(flush):
            m.d.sync += [
                out.valid.eq(1),
                out.payload.data.eq(merged),
                out.payload.last.eq(stage.meta["final"]),
            ]
        with m.If(self.start):
            m.d.sync += [self.busy.eq(1), slot.eq(0), pack.eq(0)]
        return m
