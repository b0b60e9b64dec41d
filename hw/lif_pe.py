"""Parallel-time-step LIF PE array: ``L`` neurons x ``T`` time steps per beat, one beat per cycle.

The input currents of all ``T`` time steps of a neuron are independent of its
membrane, so the membrane recurrence ``v[t] = f(v[t-1], x[t])`` can run as a
chain of ``T`` small stages (add, shift, compare, mux) in one pass: the membrane
lives only in pipeline registers and never goes back to memory. This module
implements exactly :func:`contract.numerics.lif_step` (arithmetic shift = floor,
``h >= theta`` fires, hard reset to 0), starting from ``v = 0`` on every beat.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Cat, Const, Module, Mux, Signal, Value, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from contract import numerics
from hw.arith import saturate
from protocol.params import LIFArrayParams

__all__ = ["LIFArray", "input_layout", "output_layout", "pack_input", "unpack_output", "reference"]


def input_layout(params: LIFArrayParams) -> data.StructLayout:
    """Payload of one input beat (fields LSB first: ``current``, ``threshold``, ``last``)."""
    return data.StructLayout(
        {
            "current": data.ArrayLayout(
                data.ArrayLayout(signed(params.membrane_bits), params.timesteps), params.lanes
            ),
            "threshold": data.ArrayLayout(signed(params.threshold_bits), params.lanes),
            "last": unsigned(1),
        }
    )


def output_layout(params: LIFArrayParams) -> data.StructLayout:
    """Payload of one output beat (fields LSB first: ``spikes``, ``last``)."""
    return data.StructLayout(
        {
            "spikes": data.ArrayLayout(unsigned(params.timesteps), params.lanes),
            "last": unsigned(1),
        }
    )


def _leak(diff: Value, shift: int) -> Value:
    """The leak term ``(x - v) >> k``: an arithmetic (flooring) shift of a signed value.

    Kept as a module-level function so that a test can replace it with a wrong one
    and show that the testbenches catch the mutated generator.
    """
    return diff >> shift


def _lif_step(
    m: Module, v: Value, x: Value, theta: Value, *, params: LIFArrayParams, name: str
) -> tuple[Value, Value]:
    """One neuron step; returns ``(spike, v_next)`` as in :func:`contract.numerics.lif_step`.

    ``v`` and ``x`` are ``M``-bit, ``theta`` is ``M + 1``-bit.
    """
    bits = params.membrane_bits
    spike = Signal(name=f"{name}_spike")
    if params.leak_shift == 0:
        # tau = 1: h = x, the membrane is forgotten. Compare at M bits (a saturated
        # threshold plus a "never fires" flag), since x has no M + 1-bit form here.
        never = ~theta[bits] & theta[bits - 1]  # theta >= 2**(M-1) exceeds every M-bit h
        m.d.comb += spike.eq((x >= saturate(theta, bits)) & ~never)
        return spike, Mux(spike, 0, x)
    # With k >= 1 the leak term (x - v) >> k fits M bits, and h = v + leak is exact in
    # the M + 1 bits of the sum, which then compares with theta at equal widths.
    leak = _leak(x - v, params.leak_shift)[:bits].as_signed()
    h = Signal(signed(bits + 1), name=f"{name}_h")
    m.d.comb += [
        h.eq(v + leak),
        spike.eq(h >= theta),
    ]
    return spike, Mux(spike, 0, h[:bits].as_signed())


class _StageRegisters:
    """Pipeline registers of one stage boundary, all loaded together when the chain advances."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self.updates: list[Value] = []

    def add(self, value: Value, name: str, *, reset_less: bool = True) -> Signal:
        # Data registers need no reset (only the valid bit does), which saves FPGA reset routing.
        reg = Signal(Value.cast(value).shape(), name=f"{self._prefix}_{name}", reset_less=reset_less)
        self.load(reg, value)
        return reg

    def load(self, target: Value, value: Value) -> None:
        """Load an existing register (an output port) at this boundary."""
        self.updates.append(target.eq(value))


class LIFArray(wiring.Component):
    """Parallel-time-step LIF PE array, fully pipelined.

    Each input beat carries the ``T`` input currents and the threshold of ``L``
    neurons; each output beat carries their ``L x T`` spikes. The array computes
    ``h = v + ((x - v) >> k)``, ``s = h >= theta``, ``v = 0 if s else h`` for
    ``t = 0 .. T-1`` from ``v = 0``, in ``ceil(T / stage_steps)`` register stages.
    There is no state between beats.

    Rate and latency: one beat per cycle (``L x T`` neuron steps per cycle) while
    ``out.ready`` is high; the output beat appears ``params.latency`` cycles after the
    input beat is accepted. Back-pressure stalls the whole chain
    (``inp.ready = ~out.valid | out.ready``), so no beat is lost or duplicated.

    Parameters
    ----------
    params : LIFArrayParams
        ``lanes`` (L), ``timesteps`` (T), ``membrane_bits`` (M), ``leak_shift`` (k),
        ``stage_steps``.

    Attributes
    ----------
    inp : In(stream.Signature(input_layout(params)))
        ``payload.current[l][t]``: signed ``M``-bit current of lane ``l`` at step ``t``,
        already saturated (:func:`contract.numerics.synaptic_current`); bit offset
        ``(l * T + t) * M``.
        ``payload.threshold[l]``: signed ``M + 1``-bit threshold of lane ``l``
        (:meth:`LIFArrayParams.clamp_threshold` maps any integer threshold here
        exactly); bit offset ``L * T * M + l * (M + 1)``.
        ``payload.last``: frame marker, passed through unchanged; top bit.
        Verilog ports ``inp__payload``, ``inp__valid``, ``inp__ready``.
    out : Out(stream.Signature(output_layout(params)))
        ``payload.spikes[l]``: ``T`` bits, bit ``t`` = spike of lane ``l`` at step ``t``;
        bit offset ``l * T + t``. ``payload.last``: the input beat's ``last``; top bit.
        Verilog ports ``out__payload``, ``out__valid``, ``out__ready``.
    """

    def __init__(self, params: LIFArrayParams) -> None:
        if not isinstance(params, LIFArrayParams):
            raise TypeError(f"LIFArray parameters must be a LIFArrayParams, not {params!r}")
        self._params = params
        super().__init__(
            {
                "inp": In(stream.Signature(input_layout(params))),
                "out": Out(stream.Signature(output_layout(params))),
            }
        )

    @property
    def params(self) -> LIFArrayParams:
        return self._params

    def elaborate(self, platform: object) -> Module:
        m = Module()
        p = self._params
        lanes, steps = range(p.lanes), range(p.timesteps)

        # The whole chain advances together unless a finished beat waits at the output.
        advance = self.inp.ready
        m.d.comb += advance.eq(~self.out.valid | self.out.ready)

        # Values entering the current stage; stage 0 reads the input port directly.
        valid: Value = self.inp.valid
        last: Value = self.inp.payload.last
        v: list[Value] = [Const(0, signed(p.membrane_bits)) for _ in lanes]
        theta: list[Value] = [self.inp.payload.threshold[lane] for lane in lanes]
        current: list[list[Value]] = [[self.inp.payload.current[lane][t] for t in steps] for lane in lanes]
        spikes: list[list[Value]] = [[] for _ in lanes]

        for stage in range(p.stages):
            first_step, end_step = stage * p.stage_steps, min((stage + 1) * p.stage_steps, p.timesteps)
            for t in range(first_step, end_step):
                for lane in lanes:
                    spike, v[lane] = _lif_step(
                        m, v[lane], current[lane][t], theta[lane], params=p, name=f"l{lane}_t{t}"
                    )
                    spikes[lane].append(spike)

            # Register boundary: carry only what later stages still read. The last
            # boundary is the output port itself.
            regs = _StageRegisters(f"s{stage}")
            if stage == p.stages - 1:
                regs.load(self.out.valid, valid)
                regs.load(self.out.payload.last, last)
                for lane in lanes:
                    regs.load(self.out.payload.spikes[lane], Cat(*spikes[lane]))
            else:
                valid = regs.add(valid, "valid", reset_less=False)
                last = regs.add(last, "last")
                spikes = [[regs.add(Cat(*spikes[lane]), f"spikes{lane}")] for lane in lanes]
                if p.leak_shift:  # with k = 0 no step reads the previous membrane
                    v = [regs.add(v[lane], f"v{lane}") for lane in lanes]
                theta = [regs.add(theta[lane], f"theta{lane}") for lane in lanes]
                current = [
                    [
                        regs.add(current[lane][t], f"x{lane}_{t}") if t >= end_step else current[lane][t]
                        for t in steps
                    ]
                    for lane in lanes
                ]
            with m.If(advance):
                m.d.sync += regs.updates

        return m


def pack_input(
    params: LIFArrayParams, currents: np.ndarray, thresholds: np.ndarray, *, last: bool = False
) -> int:
    """Pack one input beat: ``currents`` ``[T, L]`` (time first, as in numerics), ``thresholds`` ``[L]``."""
    currents = np.asarray(currents, dtype=np.int64)
    thresholds = np.asarray(thresholds, dtype=np.int64)
    if currents.shape != (params.timesteps, params.lanes):
        raise ValueError(
            f"currents must have shape (T, L) = {(params.timesteps, params.lanes)}, not {currents.shape}"
        )
    if thresholds.shape != (params.lanes,):
        raise ValueError(f"thresholds must have shape (L,) = {(params.lanes,)}, not {thresholds.shape}")
    _check_range("currents", currents, params.membrane_bits)
    _check_range("thresholds", thresholds, params.threshold_bits)
    const = input_layout(params).const(
        {
            "current": currents.T.tolist(),
            "threshold": thresholds.tolist(),
            "last": int(bool(last)),
        }
    )
    return const.as_bits()


def unpack_output(params: LIFArrayParams, word: int) -> tuple[np.ndarray, bool]:
    """Unpack one output beat into ``(spikes [T, L] int64 0/1, last)``."""
    const = data.Const(output_layout(params), int(word))
    spikes = np.array(
        [
            [(int(const.spikes[lane]) >> t) & 1 for lane in range(params.lanes)]
            for t in range(params.timesteps)
        ],
        dtype=np.int64,
    )
    return spikes, bool(const.last)


def reference(params: LIFArrayParams, currents: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Reference spikes ``[T, ..., L]`` of :func:`contract.numerics.lif` for currents ``[T, ..., L]``."""
    return numerics.lif(
        np.asarray(currents),
        np.asarray(thresholds),
        leak_shift=params.leak_shift,
        membrane_bits=params.membrane_bits,
    )


def _check_range(name: str, values: np.ndarray, bits: int) -> None:
    lo, hi = numerics.signed_range(bits)
    if values.size and (values.min() < lo or values.max() > hi):
        raise ValueError(
            f"{name} must lie in the signed {bits}-bit range [{lo}, {hi}], "
            f"got [{values.min()}, {values.max()}]"
        )
