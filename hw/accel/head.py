"""``HEAD``: sum-pool over time and tokens, then integer logits to the output stream.

``P[c] = sum_{n, t} x[t, n, c]`` (:func:`contract.numerics.sum_pool`) is accumulated
from the bit-plane words as ``sum_b 2**b popcount(word_{n,c,b})``, one word per cycle,
into the pool memory. Then, per class ``j``, the payload brings its 64-bit bias and
its ``D`` weights (``64 / weight_bits`` per stream word), one multiply-accumulate per
cycle gives ``sum_c W[j, c] P[c]``, and the logit ``(acc << F) + bias``
(:func:`contract.numerics.head_logits`, int64) goes to the output stream; the last
class's word carries ``last``.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed
from amaranth.lib import wiring
from amaranth.lib.memory import Memory

from hw.accel.loops import LoopNest, read_stage, registered
from hw.accel.ports import ADDRESS_BITS, engine_members
from hw.arith import extend, tree_sum, word_at
from protocol.config import STREAM_BITS, AcceleratorConfig

__all__ = ["HeadEngine"]


class HeadEngine(wiring.Component):
    """The ``HEAD`` command engine (see the module docstring).

    Attributes
    ----------
    start, desc, tmask, busy :
        Engine control.
    rd : Out(amem_read_signature)
        Residual-stream word reads.
    words_in : In(word_stream())
        Per class: the bias word, then the weight words.
    words_out : Out(word_stream())
        One logit per class (two's complement int64).
    """

    def __init__(self, config: AcceleratorConfig) -> None:
        self._config = config
        # With the two-bank memory a read also returns the next word: two bit planes a cycle.
        self._planes_per_read = config.words_per_beat
        super().__init__(
            engine_members(
                config, read=True, read_pairs=self._planes_per_read == 2, words_in=True, words_out=True
            )
        )

    def elaborate(self, platform: object) -> Module:
        m = Module()
        cfg = self._config
        d = self.desc
        steps, pool_bits = cfg.timesteps, cfg.pool_bits
        wbits = cfg.numerics.weight_bits
        per = STREAM_BITS // wbits
        acc_bits = cfg.head_acc_bits

        m.submodules.pmem = pmem = Memory(shape=pool_bits, depth=cfg.max_features, init=[])
        pmem_wr = pmem.write_port()
        pmem_rd = pmem.read_port(transparent_for=())

        # ---------------------------------------------------------------- sum-pool
        dp = registered(m, d.in_c * d.planes_in, "head_dp")
        # The feature index addresses the pooled sums directly: the descriptor check keeps
        # in_c <= max_features (the memory depth), so it needs no more bits than the address.
        m.submodules.loop = loop = LoopNest("head", [("c", len(pmem_wr.addr)), ("n", 16), ("b", 5)])
        g = self._planes_per_read
        reads = d.planes_in if g == 1 else (d.planes_in + 1) >> 1
        m.d.comb += [loop.count["c"].eq(d.in_c), loop.count["n"].eq(d.in_w), loop.count["b"].eq(reads)]
        addr = loop.output("addr", ADDRESS_BITS, d.src0, {"c": d.planes_in, "n": dp, "b": g})
        plane = Signal(6)
        m.d.comb += plane.eq(loop.idx["b"] * g)
        meta = {
            "plane": plane,
            "c": loop.idx["c"],
            "first": ~loop.idx["n"].any() & ~loop.idx["b"].any(),
            "end": loop.within("n", "b"),
        }
        if g == 2:
            meta["second"] = plane + 1 < d.planes_in
        stage = read_stage(m, name="head", active=loop.active, ready=1, meta=meta)
        m.d.comb += [
            loop.step.eq(loop.active & stage.advance),
            self.rd.addr.eq(addr),
            self.rd.en.eq(loop.active & stage.advance),
        ]
        count_bits = steps.bit_length()

        def ones(word: Value) -> Value:
            return tree_sum([extend(bit, count_bits) for bit in word], count_bits)

        weighted = ones(self.rd.data) << stage.meta["plane"]
        if g == 2:
            weighted = weighted + Mux(
                stage.meta["second"], ones(self.rd.next) << (stage.meta["plane"] + 1), 0
            )
        pool_acc = Signal(pool_bits)
        total = Signal(pool_bits)
        m.d.comb += total.eq(Mux(stage.meta["first"], 0, pool_acc) + weighted)
        with m.If(stage.valid):
            m.d.sync += pool_acc.eq(total)
        m.d.comb += [
            pmem_wr.en.eq(stage.valid & stage.meta["end"]),
            pmem_wr.addr.eq(stage.meta["c"]),
            pmem_wr.data.eq(total),
        ]

        # ---------------------------------------------------------------- logits
        words, out = self.words_in, self.words_out
        bias = Signal(signed(STREAM_BITS))
        weights = Signal(STREAM_BITS)
        slot = Signal(range(per))
        feature = Signal(16)
        klass = Signal(16)
        acc = Signal(signed(acc_bits))
        issue = Signal()
        mac_valid = Signal()
        mac_weight = Signal(signed(wbits))
        m.d.comb += [pmem_rd.addr.eq(feature), pmem_rd.en.eq(issue)]
        m.d.sync += [mac_valid.eq(issue), mac_weight.eq(word_at(weights, slot, wbits).as_signed())]
        with m.If(mac_valid):
            m.d.sync += acc.eq((acc + mac_weight * pmem_rd.data)[:acc_bits].as_signed())
        shifted = Cat(Const(0, cfg.numerics.frac_bits), acc).as_signed()
        m.d.comb += [
            out.payload.data.eq((extend(shifted, STREAM_BITS) + bias)[:STREAM_BITS]),
            out.payload.last.eq(klass == d.classes - 1),
        ]

        with m.FSM(name="head_fsm"):
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [self.busy.eq(1), klass.eq(0)]
                    m.next = "SETUP"
            with m.State("SETUP"):
                m.d.comb += loop.start.eq(1)
                m.next = "POOL"
            with m.State("POOL"):
                with m.If(~loop.active & ~stage.valid):
                    m.next = "BIAS"
            with m.State("BIAS"):
                m.d.comb += words.ready.eq(1)
                with m.If(words.valid):
                    m.d.sync += [bias.eq(words.payload.data), acc.eq(0), feature.eq(0)]
                    m.next = "WORD"
            with m.State("WORD"):
                m.d.comb += words.ready.eq(1)
                with m.If(words.valid):
                    m.d.sync += [weights.eq(words.payload.data), slot.eq(0)]
                    m.next = "MAC"
            with m.State("MAC"):
                m.d.comb += issue.eq(1)
                m.d.sync += [feature.eq(feature + 1), slot.eq(slot + 1)]
                with m.If(feature == d.in_c - 1):
                    m.next = "FLUSH"
                with m.Elif(slot == per - 1):
                    m.next = "WORD"
            with m.State("FLUSH"):
                m.next = "OUT"
            with m.State("OUT"):
                m.d.comb += out.valid.eq(1)
                with m.If(out.ready):
                    m.d.sync += klass.eq(klass + 1)
                    m.next = "BIAS"
                    with m.If(out.payload.last):
                        m.d.sync += self.busy.eq(0)
                        m.next = "IDLE"
        return m
