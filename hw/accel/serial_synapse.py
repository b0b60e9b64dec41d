"""Synapse array with clock-enable-gated accumulators, ``words`` inputs per beat and chunked output.

The arithmetic is the synapse PE's (:class:`hw.synapse_pe.SynapseArray`):
``acc[l][t] += spikes[t] ? weight[l] << plane : 0`` per input word, and on ``last`` the
result ``sat_M((acc << F) + bias[l])``. Three choices make it small enough for
``L x T x words >= 1024`` synaptic operations per cycle on an xc7z020:

* **The spike is the accumulator's clock enable.** A gated adder (``acc + (s ? w : 0)``)
  costs a LUT for the gate and a LUT for the sum bit per accumulator bit. Enabling the
  register with the spike leaves an ungated sum, and with ``words = 2`` the addend is one
  of ``w0``, ``w1`` or the lane's precomputed ``w0 + w1`` chosen by the two spikes: with
  the sum bit that is a six-input function, one LUT6 in front of the carry chain per
  accumulator bit. The shifted weights and the pair sum are per lane, shared by all ``T``
  accumulators of the lane.
* **Accumulators are cleared by a flush cycle**, not by a multiplexer: the cycle after a
  ``last`` beat copies every accumulator into its result register and resets it through
  the flip-flop's synchronous reset. The input waits during that cycle (one bubble per
  dot product).
* **Results leave in ``L / out_lanes`` chunks** through one chunk-wide shift / bias /
  saturation stage behind a multiplexer; the result registers free the accumulators, so
  the next dot product accumulates while the chunks leave.

Rate: one beat (``words`` input words) per cycle, plus the flush cycle; the flush also
waits while the previous result has chunks left.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from contract import numerics
from hw.arith import extend, saturate
from protocol.params import SynapseArrayParams

__all__ = ["SerialSynapseArray", "WORDS_PER_BEAT", "input_layout", "output_layout", "dot_product_beats"]

#: Input words per beat the array supports: two is the most a LUT6 selects with the sum bit.
WORDS_PER_BEAT = (1, 2)


def input_layout(params: SynapseArrayParams, words: int) -> data.StructLayout:
    """One beat: ``spikes[k]`` (``T`` bits), [``plane[k]``], ``weight[k][l]`` of input word ``k``,
    and ``bias[l]`` / ``last`` of the dot product."""
    fields: dict[str, object] = {"spikes": data.ArrayLayout(unsigned(params.timesteps), words)}
    if params.plane_bits:
        fields["plane"] = data.ArrayLayout(unsigned(params.plane_bits), words)
    fields.update(
        {
            "weight": data.ArrayLayout(data.ArrayLayout(signed(params.weight_bits), params.lanes), words),
            "bias": data.ArrayLayout(signed(params.bias_width), params.lanes),
            "last": unsigned(1),
        }
    )
    return data.StructLayout(fields)


def output_layout(params: SynapseArrayParams, out_lanes: int) -> data.StructLayout:
    """One chunk: ``current[l][t]`` of lanes ``chunk * out_lanes + l`` (the LIF array's current layout)."""
    return data.StructLayout(
        {
            "current": data.ArrayLayout(
                data.ArrayLayout(signed(params.membrane_bits), params.timesteps), out_lanes
            ),
            "chunk": unsigned(max(1, (params.lanes // out_lanes - 1).bit_length())),
        }
    )


def _check_words(words: object) -> int:
    if isinstance(words, bool) or words not in WORDS_PER_BEAT:
        raise ValueError(f"words per beat must be one of {WORDS_PER_BEAT}, not {words!r}")
    return int(words)  # type: ignore[arg-type]


class SerialSynapseArray(wiring.Component):
    """Synapse array of ``params`` taking ``words`` input words per beat; results leave
    ``out_lanes`` lanes per beat.

    Parameters
    ----------
    params : SynapseArrayParams
        As for :class:`hw.synapse_pe.SynapseArray`.
    out_lanes : int
        Lanes per output beat; divides ``params.lanes``.
    words : int
        Input words per beat (:data:`WORDS_PER_BEAT`); the array does ``L x T x words``
        synaptic operations per beat.

    Attributes
    ----------
    inp : In(stream.Signature(input_layout(params, words)))
        Input beats; a word with no spikes adds nothing (the tail of an odd fan-in).
    out : Out(stream.Signature(output_layout(params, out_lanes)))
        ``L / out_lanes`` beats per result, chunk 0 first.
    overflow : Out(1)
        Sticky: an accumulator left the signed ``acc_bits`` range.
    """

    def __init__(self, params: SynapseArrayParams, *, out_lanes: int, words: int = 1) -> None:
        if not isinstance(params, SynapseArrayParams):
            raise TypeError(f"SerialSynapseArray parameters must be a SynapseArrayParams, not {params!r}")
        if (
            isinstance(out_lanes, bool)
            or not isinstance(out_lanes, int)
            or out_lanes < 1
            or params.lanes % out_lanes
        ):
            raise ValueError(f"out_lanes must divide the {params.lanes} lanes, not {out_lanes!r}")
        self._params, self._out_lanes, self._words = params, out_lanes, _check_words(words)
        super().__init__(
            {
                "inp": In(stream.Signature(input_layout(params, self._words))),
                "out": Out(stream.Signature(output_layout(params, out_lanes))),
                "overflow": Out(1),
            }
        )

    def _shifted_weights(self, m: Module, lane: int) -> list[Signal]:
        """``weight[k][lane] << plane[k]`` for every input word ``k`` (shared by the lane's steps)."""
        p, beat = self._params, self.inp.payload
        width = p.weight_bits + (p.input_bits - 1 if p.plane_bits else 0)
        shifted = []
        for k in range(self._words):
            value = Signal(signed(width), name=f"weight{lane}_{k}")
            if p.plane_bits:
                with m.Switch(beat.plane[k]):
                    for plane in range(p.input_bits):
                        with m.Case(plane):
                            m.d.comb += value.eq(beat.weight[k][lane].shift_left(plane))
            else:
                m.d.comb += value.eq(beat.weight[k][lane])
            shifted.append(value)
        return shifted

    def elaborate(self, platform: object) -> Module:
        m = Module()
        p, out_lanes, words = self._params, self._out_lanes, self._words
        chunks = p.lanes // out_lanes
        beat = self.inp.payload
        wide = max(p.acc_bits + p.frac_bits, p.bias_width)

        chunk = Signal(range(chunks))
        pending = Signal()  # a result waits in the result registers
        leaving = Signal()  # its last chunk leaves this cycle
        flush = Signal()  # the cycle after a `last` beat
        flushing = Signal()  # ... that copies the accumulators out now
        take = Signal()
        m.d.comb += [
            leaving.eq(self.out.valid & self.out.ready & (chunk == chunks - 1)),
            flushing.eq(flush & (~pending | leaving)),
            self.inp.ready.eq(~flush),
            take.eq(self.inp.valid & self.inp.ready),
            self.out.valid.eq(pending),
            self.out.payload.chunk.eq(chunk),
        ]
        with m.If(self.out.valid & self.out.ready):
            m.d.sync += chunk.eq(Mux(chunk == chunks - 1, 0, chunk + 1))
        with m.If(flushing):
            m.d.sync += [pending.eq(1), flush.eq(0)]
        with m.Elif(leaving):
            m.d.sync += pending.eq(0)
        with m.If(take & beat.last):
            m.d.sync += flush.eq(1)

        # Per step: does any input word of the beat spike (the accumulators' clock enable)?
        fires = [Cat(*(beat.spikes[k][t] for k in range(words))).any() for t in range(p.timesteps)]
        overflows = []
        results = []
        biases = []
        for lane in range(p.lanes):
            # Negated per-lane addends: `acc - x` keeps the accumulator as the subtractor's
            # first operand, which Yosys' carry-chain mapping feeds to the carry mux
            # straight from the flip-flop (it may reorder the operands of an `acc + x`).
            shifted = self._shifted_weights(m, lane)
            width = len(shifted[0]) + words
            negated = [Signal(signed(width), name=f"neg_weight{lane}_{k}") for k in range(words)]
            m.d.comb += [neg.eq(-value) for neg, value in zip(negated, shifted, strict=True)]
            if words == 2:
                both = Signal(signed(width), name=f"neg_weight{lane}_pair")
                m.d.comb += both.eq(negated[0] - shifted[1])
            # The bias waits for the flush: the previous result's chunks still use theirs.
            staged = Signal(signed(p.bias_width), name=f"next_bias{lane}", reset_less=True)
            bias = Signal(signed(p.bias_width), name=f"bias{lane}", reset_less=True)
            with m.If(take & beat.last):
                m.d.sync += staged.eq(beat.bias[lane])
            with m.If(flushing):
                m.d.sync += bias.eq(staged)
            biases.append(bias)
            lane_results = []
            for t in range(p.timesteps):
                acc = Signal(signed(p.acc_bits), name=f"acc{lane}_{t}")
                total = Signal(signed(p.acc_bits + 1), name=f"sum{lane}_{t}")
                result = Signal(signed(p.acc_bits), name=f"result{lane}_{t}", reset_less=True)
                if words == 2:
                    # Only read when a spike enables the register, so "no spike" needs no zero;
                    # with the sum bit this is one LUT6 per accumulator bit.
                    subtrahend = Mux(beat.spikes[0][t], Mux(beat.spikes[1][t], both, negated[0]), negated[1])
                else:
                    subtrahend = negated[0]
                m.d.comb += total.eq(acc - subtrahend)
                overflows.append(fires[t] & (total[-1] ^ total[-2]))
                with m.If(flushing):
                    m.d.sync += [acc.eq(0), result.eq(acc)]
                with m.Elif(take & fires[t]):
                    m.d.sync += acc.eq(total[: p.acc_bits].as_signed())
                lane_results.append(result)
            results.append(lane_results)

        # One chunk-wide shift / bias / saturation stage behind a chunk multiplexer.
        for lane in range(out_lanes):
            bias = Signal(signed(p.bias_width), name=f"out_bias{lane}")
            picked = [Signal(signed(p.acc_bits), name=f"out_result{lane}_{t}") for t in range(p.timesteps)]
            with m.Switch(chunk):
                for k in range(chunks):
                    with m.Case(k):
                        source = k * out_lanes + lane
                        m.d.comb += bias.eq(biases[source])
                        m.d.comb += [picked[t].eq(results[source][t]) for t in range(p.timesteps)]
            for t in range(p.timesteps):
                shifted = extend(picked[t], wide - p.frac_bits).shift_left(p.frac_bits)
                current = saturate(shifted + extend(bias, wide), p.membrane_bits)
                m.d.comb += self.out.payload.current[lane][t].eq(current)

        with m.If(take & Cat(*overflows).any()):
            m.d.sync += self.overflow.eq(1)
        return m


def dot_product_beats(
    params: SynapseArrayParams,
    values: np.ndarray,
    weights: np.ndarray,
    bias: np.ndarray,
    *,
    words: int,
    planes: int | None = None,
) -> list[int]:
    """Beats of one dot product for :class:`SerialSynapseArray` with ``words`` words per beat.

    ``values`` ``[I, T]`` (>= 0), ``weights`` ``[L, I]``, ``bias`` ``[L]``. The input
    words are the features' bit planes, feature-major and LSB first (as
    :func:`hw.synapse_pe.dot_product_beats`), ``words`` to a beat; the last beat is filled
    up with silent words and carries the bias and ``last``.
    """
    words = _check_words(words)
    values = np.asarray(values, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.int64)
    if values.ndim != 2 or values.shape[1] != params.timesteps or values.shape[0] == 0:
        raise ValueError(
            f"values must have shape (I, T) with T = {params.timesteps} and I >= 1, not {values.shape}"
        )
    if weights.shape != (params.lanes, values.shape[0]):
        raise ValueError(
            f"weights must have shape (L, I) = {(params.lanes, values.shape[0])}, not {weights.shape}"
        )
    if planes is None:
        planes = max(1, int(values.max()).bit_length())
    if not 1 <= planes <= params.input_bits:
        raise ValueError(f"planes must be in [1, {params.input_bits}], not {planes}")
    bit_planes = numerics.bit_planes(values, planes)  # [planes, I, T]
    silent = (0, 0, np.zeros(params.lanes, dtype=np.int64))
    stream_ = [
        (int(sum(int(s) << t for t, s in enumerate(bit_planes[b, i]))), b, weights[:, i])
        for i in range(values.shape[0])
        for b in range(planes)
    ]
    stream_ += [silent] * (-len(stream_) % words)
    layout = input_layout(params, words)
    beats = []
    for start in range(0, len(stream_), words):
        group = stream_[start : start + words]
        last = start + words == len(stream_)
        fields: dict[str, object] = {
            "spikes": [spikes for spikes, _, _ in group],
            "weight": [w.tolist() for _, _, w in group],
            "bias": (bias if last else np.zeros(params.lanes, dtype=np.int64)).tolist(),
            "last": int(last),
        }
        if params.plane_bits:
            fields["plane"] = [plane for _, plane, _ in group]
        beats.append(layout.const(fields).as_bits())
    return beats
