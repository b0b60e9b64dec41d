"""Synapse array with chunked output: the resource-lean variant for large ``L x T``.

Same input beats and the same arithmetic as :class:`hw.synapse_pe.SynapseArray`
(``acc += spikes[t] ? weight << plane : 0``; on ``last`` the result is
``sat_M((acc << F) + bias)``), but the ``L x T`` results leave in ``L / out_lanes``
chunks of ``out_lanes`` lanes, one chunk per beat. The PE computes the shift, bias add
and saturation of all ``L x T`` outputs in parallel, which at ``L x T = 1024`` is larger
than an xc7z020; here one chunk-wide stage serves all chunks through a multiplexer, and
result registers free the accumulators at once, so the next dot product accumulates
while the chunks leave.

Rate: one beat per cycle; a result's chunks leave at one per cycle while ``out.ready``;
the input stalls only when a new result is complete before the previous one has left.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from hw.arith import extend, saturate
from hw.params import SynapseArrayParams
from hw.synapse_pe import input_layout

__all__ = ["SerialSynapseArray", "output_layout"]


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


class SerialSynapseArray(wiring.Component):
    """Synapse array of ``params`` whose results leave ``out_lanes`` lanes per beat.

    Parameters
    ----------
    params : SynapseArrayParams
        As for :class:`hw.synapse_pe.SynapseArray`.
    out_lanes : int
        Lanes per output beat; divides ``params.lanes``.

    Attributes
    ----------
    inp : In(stream.Signature(hw.synapse_pe.input_layout(params)))
        The PE's input beats.
    out : Out(stream.Signature(output_layout(params, out_lanes)))
        ``L / out_lanes`` beats per result, chunk 0 first.
    overflow : Out(1)
        Sticky: an accumulator left the signed ``acc_bits`` range.
    """

    def __init__(self, params: SynapseArrayParams, *, out_lanes: int) -> None:
        if not isinstance(params, SynapseArrayParams):
            raise TypeError(f"SerialSynapseArray parameters must be a SynapseArrayParams, not {params!r}")
        if (
            isinstance(out_lanes, bool)
            or not isinstance(out_lanes, int)
            or out_lanes < 1
            or params.lanes % out_lanes
        ):
            raise ValueError(f"out_lanes must divide the {params.lanes} lanes, not {out_lanes!r}")
        self._params, self._out_lanes = params, out_lanes
        super().__init__(
            {
                "inp": In(stream.Signature(input_layout(params))),
                "out": Out(stream.Signature(output_layout(params, out_lanes))),
                "overflow": Out(1),
            }
        )

    def elaborate(self, platform: object) -> Module:
        m = Module()
        p, out_lanes = self._params, self._out_lanes
        chunks = p.lanes // out_lanes
        beat = self.inp.payload
        wide = max(p.acc_bits + p.frac_bits, p.bias_width)

        chunk = Signal(range(chunks))
        pending = Signal()  # results waiting to leave
        leaving = Signal()  # the last chunk leaves this cycle
        take = Signal()
        m.d.comb += [
            leaving.eq(self.out.valid & self.out.ready & (chunk == chunks - 1)),
            self.inp.ready.eq(~pending | leaving | ~beat.last),
            take.eq(self.inp.valid & self.inp.ready),
            self.out.valid.eq(pending),
            self.out.payload.chunk.eq(chunk),
        ]
        with m.If(self.out.valid & self.out.ready):
            m.d.sync += chunk.eq(Mux(chunk == chunks - 1, 0, chunk + 1))
        with m.If(leaving):
            m.d.sync += pending.eq(0)
        with m.If(take & beat.last):
            m.d.sync += pending.eq(1)

        overflows = []
        results = []
        biases = []
        for lane in range(p.lanes):
            if p.plane_bits:
                weight = Signal(signed(p.acc_bits), name=f"weight{lane}")
                with m.Switch(beat.plane):
                    for plane in range(p.input_bits):
                        with m.Case(plane):
                            m.d.comb += weight.eq(beat.weight[lane].shift_left(plane))
            else:
                weight = extend(beat.weight[lane], p.acc_bits)
            bias = Signal(signed(p.bias_width), name=f"bias{lane}", reset_less=True)
            with m.If(take & beat.last):
                m.d.sync += bias.eq(beat.bias[lane])
            biases.append(bias)
            lane_results = []
            for t in range(p.timesteps):
                acc = Signal(signed(p.acc_bits), name=f"acc{lane}_{t}")
                total = Signal(signed(p.acc_bits + 1), name=f"sum{lane}_{t}")
                result = Signal(signed(p.acc_bits), name=f"result{lane}_{t}", reset_less=True)
                m.d.comb += total.eq(acc + Mux(beat.spikes[t], weight, 0))
                overflows.append(total[-1] ^ total[-2])
                with m.If(take):
                    m.d.sync += acc.eq(Mux(beat.last, 0, total[: p.acc_bits].as_signed()))
                    with m.If(beat.last):
                        m.d.sync += result.eq(total[: p.acc_bits].as_signed())
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
