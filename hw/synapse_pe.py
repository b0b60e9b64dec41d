"""Synapse PE array with tick batching: one weight read feeds ``T`` accumulators.

A linear (or im2col'd convolution) layer's input currents are
``x[t, o] = sat_M((sum_i s[t, i] W[o, i]) << F + b[o])`` (:func:`contract.numerics.synaptic_current`
of :func:`contract.numerics.linear_accumulate`). The sums of all ``T`` time steps use the
same weights, so the array streams one input feature per beat: its ``T`` input bits
and the ``L`` weights of that feature, and each weight updates ``T`` accumulators.

Multi-bit inputs (pixels, event counts, residual sums; ``input_bits`` wide) are exact
as bit planes: ``x = sum_b 2**b x_b``, so a ``b``-bit feature is ``b`` beats, each
carrying one plane and its index; the plane only shifts the weight. Spike layers
use plane 0 only and run at ``L x T`` synaptic operations per cycle.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from contract import numerics
from hw.arith import extend, saturate
from protocol.params import SynapseArrayParams

__all__ = [
    "SynapseArray",
    "input_layout",
    "output_layout",
    "pack_input",
    "dot_product_beats",
    "unpack_output",
    "reference",
]


def input_layout(params: SynapseArrayParams) -> data.StructLayout:
    """Payload of one input beat (LSB first: ``spikes``, [``plane``], ``weight``, ``bias``, ``last``)."""
    fields: dict[str, object] = {"spikes": unsigned(params.timesteps)}
    if params.plane_bits:
        fields["plane"] = unsigned(params.plane_bits)
    fields.update(
        {
            "weight": data.ArrayLayout(signed(params.weight_bits), params.lanes),
            "bias": data.ArrayLayout(signed(params.bias_width), params.lanes),
            "last": unsigned(1),
        }
    )
    return data.StructLayout(fields)


def output_layout(params: SynapseArrayParams) -> data.StructLayout:
    """Payload of one output beat: ``current[l][t]``, the same layout as the LIF array's input currents."""
    return data.StructLayout(
        {
            "current": data.ArrayLayout(
                data.ArrayLayout(signed(params.membrane_bits), params.timesteps), params.lanes
            ),
        }
    )


class SynapseArray(wiring.Component):
    """Synapse PE array: ``L`` output neurons x ``T`` time steps of accumulators.

    Per accepted beat, for every lane ``l`` and step ``t``:
    ``acc[l][t] += spikes[t] ? weight[l] << plane : 0``. On a beat with ``last``
    set, the array emits ``sat_M(((acc + term) << F) + bias[l])`` for all lanes and
    steps and clears the accumulators, so dot products follow each other with no
    gap. The accumulators are ``acc_bits`` wide and wrap; :meth:`SynapseArrayParams.max_fan_in`
    bounds the exact fan-in and ``overflow`` reports a violation.

    Rate and latency: one beat per cycle (``L x T`` synaptic operations per cycle for
    spike inputs) while ``out.ready`` is high or no result is pending; a result appears
    one cycle after its ``last`` beat. A pending result that is not taken stalls the
    input (``inp.ready = ~out.valid | out.ready``).

    Parameters
    ----------
    params : SynapseArrayParams
        ``lanes`` (L), ``timesteps`` (T), ``weight_bits``, ``input_bits``, ``acc_bits``,
        ``frac_bits`` (F), ``membrane_bits`` (M), ``bias_bits``.

    Attributes
    ----------
    inp : In(stream.Signature(input_layout(params)))
        Fields LSB first: ``spikes`` (``T`` bits, bit ``t`` = input bit at step ``t``),
        ``plane`` (``plane_bits`` wide, the bit-plane index ``b`` of a multi-bit input;
        absent when ``input_bits == 1``; an index ``>= input_bits`` adds nothing),
        ``weight[l]`` (signed ``weight_bits``),
        ``bias[l]`` (signed ``bias_width``, only read on the ``last`` beat), ``last``
        (this beat ends the dot product). Verilog ``inp__payload/valid/ready``.
    out : Out(stream.Signature(output_layout(params)))
        ``current[l][t]``: signed ``M``-bit current at bit offset ``(l * T + t) * M``,
        identical to :func:`hw.lif_pe.input_layout`'s ``current`` field.
        Verilog ``out__payload/valid/ready``.
    overflow : Out(1)
        Sticky until reset: some accumulator left the signed ``acc_bits`` range, so a
        result may have wrapped (the fan-in bound was exceeded).
    """

    def __init__(self, params: SynapseArrayParams) -> None:
        if not isinstance(params, SynapseArrayParams):
            raise TypeError(f"SynapseArray parameters must be a SynapseArrayParams, not {params!r}")
        self._params = params
        super().__init__(
            {
                "inp": In(stream.Signature(input_layout(params))),
                "out": Out(stream.Signature(output_layout(params))),
                "overflow": Out(1),
            }
        )

    @property
    def params(self) -> SynapseArrayParams:
        return self._params

    def elaborate(self, platform: object) -> Module:
        m = Module()
        p = self._params
        lanes, steps = range(p.lanes), range(p.timesteps)
        beat = self.inp.payload
        # Result registers are wide enough for both the shifted sum and the bias, so the
        # final add sees equal-width operands.
        wide = max(p.acc_bits + p.frac_bits, p.bias_width)

        take = Signal()
        m.d.comb += [
            self.inp.ready.eq(~self.out.valid | self.out.ready),
            take.eq(self.inp.valid & self.inp.ready),
        ]
        with m.If(self.out.valid & self.out.ready):
            m.d.sync += self.out.valid.eq(0)
        with m.If(take & beat.last):
            m.d.sync += self.out.valid.eq(1)

        overflows = []
        for lane in lanes:
            # The weight shifted by the bit plane, at accumulator width: one shifter per
            # lane, shared by the T accumulators (the tick batching).
            if p.plane_bits:
                weight = Signal(signed(p.acc_bits), name=f"weight{lane}")
                with m.Switch(beat.plane):
                    for plane in range(p.input_bits):
                        with m.Case(plane):
                            m.d.comb += weight.eq(beat.weight[lane].shift_left(plane))
                    with m.Default():  # a plane index >= input_bits adds nothing
                        m.d.comb += weight.eq(0)
            else:
                weight = extend(beat.weight[lane], p.acc_bits)
            bias = Signal(signed(wide), name=f"bias{lane}", reset_less=True)
            with m.If(take & beat.last):
                m.d.sync += bias.eq(beat.bias[lane])

            for t in steps:
                acc = Signal(signed(p.acc_bits), name=f"acc{lane}_{t}")
                total = Signal(signed(p.acc_bits + 1), name=f"sum{lane}_{t}")
                result = Signal(signed(wide - p.frac_bits), name=f"result{lane}_{t}", reset_less=True)
                m.d.comb += total.eq(acc + Mux(beat.spikes[t], weight, 0))
                overflows.append(total[-1] ^ total[-2])
                with m.If(take):
                    m.d.sync += acc.eq(Mux(beat.last, 0, total[: p.acc_bits].as_signed()))
                    with m.If(beat.last):
                        m.d.sync += result.eq(total[: p.acc_bits].as_signed())
                current = saturate(result.shift_left(p.frac_bits) + bias, p.membrane_bits)
                m.d.comb += self.out.payload.current[lane][t].eq(current)

        with m.If(take & Cat(*overflows).any()):
            m.d.sync += self.overflow.eq(1)
        return m


def pack_input(
    params: SynapseArrayParams,
    spikes: np.ndarray,
    weights: np.ndarray,
    bias: np.ndarray,
    *,
    plane: int = 0,
    last: bool = False,
) -> int:
    """Pack one beat: ``spikes`` ``[T]`` (0/1, plane ``plane`` of the input), ``weights``/``bias`` ``[L]``."""
    spikes = np.asarray(spikes, dtype=np.int64)
    weights = np.asarray(weights, dtype=np.int64)
    bias = np.asarray(bias, dtype=np.int64)
    if spikes.shape != (params.timesteps,) or ((spikes != 0) & (spikes != 1)).any():
        raise ValueError(f"spikes must be {params.timesteps} values in {{0, 1}}, not {spikes.tolist()}")
    for name, values, bits in (("weights", weights, params.weight_bits), ("bias", bias, params.bias_width)):
        if values.shape != (params.lanes,):
            raise ValueError(f"{name} must have shape (L,) = {(params.lanes,)}, not {values.shape}")
        lo, hi = numerics.signed_range(bits)
        if values.min() < lo or values.max() > hi:
            raise ValueError(
                f"{name} must lie in the signed {bits}-bit range [{lo}, {hi}], "
                f"got [{values.min()}, {values.max()}]"
            )
    plane_ok = not isinstance(plane, bool) and isinstance(plane, (int, np.integer))
    if not plane_ok or not 0 <= plane < params.input_bits:
        raise ValueError(f"plane must be an integer in [0, {params.input_bits - 1}], not {plane!r}")
    fields: dict[str, object] = {"spikes": int(sum(int(s) << t for t, s in enumerate(spikes)))}
    if params.plane_bits:
        fields["plane"] = int(plane)
    fields.update({"weight": weights.tolist(), "bias": bias.tolist(), "last": int(bool(last))})
    return input_layout(params).const(fields).as_bits()


def dot_product_beats(
    params: SynapseArrayParams,
    values: np.ndarray,
    weights: np.ndarray,
    bias: np.ndarray,
    *,
    planes: int | None = None,
) -> list[int]:
    """Beats of one dot product: ``values`` ``[I, T]`` (>= 0), ``weights`` ``[L, I]``, ``bias`` ``[L]``.

    Each input feature becomes ``planes`` beats (bit planes LSB first, see
    :func:`contract.numerics.bit_planes`); ``planes`` defaults to the fewest that hold
    ``values.max()``. The bias rides on the final beat, which carries ``last``.
    """
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
    bit_planes = numerics.bit_planes(values, planes)  # [planes, I, T]; checks the value range
    beats = []
    for feature in range(values.shape[0]):
        for plane in range(planes):
            last = feature == values.shape[0] - 1 and plane == planes - 1
            beats.append(
                pack_input(
                    params,
                    bit_planes[plane, feature],
                    weights[:, feature],
                    bias if last else np.zeros(params.lanes, dtype=np.int64),
                    plane=plane,
                    last=last,
                )
            )
    return beats


def unpack_output(params: SynapseArrayParams, word: int) -> np.ndarray:
    """Unpack one output beat into currents ``[T, L]`` (time first, as in numerics)."""
    const = data.Const(output_layout(params), int(word))
    return np.array(
        [[const.current[lane][t] for lane in range(params.lanes)] for t in range(params.timesteps)],
        dtype=np.int64,
    )


def reference(
    params: SynapseArrayParams, values: np.ndarray, weights: np.ndarray, bias: np.ndarray
) -> np.ndarray:
    """Reference currents ``[T, L]``: ``synaptic_current(linear_accumulate(values.T, weights), bias)``."""
    acc = numerics.linear_accumulate(np.asarray(values).T, np.asarray(weights))
    return numerics.synaptic_current(
        acc, np.asarray(bias), frac_bits=params.frac_bits, membrane_bits=params.membrane_bits
    )
