"""Spike-attention PE: the attention current ``sat_M(((Q K^T) V) << F)`` of one head and token group.

Q, K and V are binary spike matrices ``[G, d]`` (``G`` tokens of a group, ``d`` head
features). In exact integers ``(Q K^T) V == Q (K^T V)`` (:func:`contract.numerics.attention_accumulate`),
and this PE uses the second order:

* ``M = K^T V`` is a ``d x d`` matrix of counts ``M[c][j] = sum_g (k_g[c] AND v_g[j])``,
  accumulated one K/V row per cycle with ``d^2`` AND gates and counter increments, so
  K and V are never stored;
* each query row then gives ``o[j] = sum_c q[c] ? M[c][j] : 0``: ``d`` masked adder
  trees of ``d`` counts, one query row per cycle.

Why this order: the state is ``d^2`` counters of ``log2(G_max + 1)`` bits whatever
the group size, and both phases stream at one row per cycle. The other order,
``(Q K^T) V``, must buffer all ``G`` K and V rows and build ``G``-input adder trees per
output, which grows with the group: joint attention over ``T x N`` tokens (e.g.
``16 x 256``) is out of reach for it, while ``Q (K^T V)`` only needs ``G_max`` to size
its counters. No multiplier is needed in either phase: the only products are
spike x spike (AND) and spike x count (a mask).

Token groupings are a matter of which rows the sequencer streams as one group:
``joint`` (all ``T x N`` tokens), ``temporal`` (the ``T`` tokens of one position),
``spatial`` (the ``N`` tokens of one time step); ``G`` is set per group at run time
by the ``last`` flags. For a temporal group the ``G = T`` output rows are directly the
``T`` input currents of ``d`` attention-LIF neurons (a :class:`hw.lif_pe.LIFArray` with
``L = d`` lanes after a transpose); the other groupings go through the sequencer's
buffer to regroup rows by neuron.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from contract import numerics
from hw.arith import extend, saturate_unsigned, tree_sum
from protocol.params import AttentionParams

__all__ = [
    "SpikeAttention",
    "kv_layout",
    "q_layout",
    "output_layout",
    "pack_kv",
    "pack_q",
    "group_beats",
    "unpack_output",
    "reference",
]


def kv_layout(params: AttentionParams) -> data.StructLayout:
    """One K/V row (LSB first): ``k`` (``d`` bits, bit ``c`` = feature ``c``), ``v`` (``d``), ``last``."""
    return data.StructLayout(
        {"k": unsigned(params.head_dim), "v": unsigned(params.head_dim), "last": unsigned(1)}
    )


def q_layout(params: AttentionParams) -> data.StructLayout:
    """One query row (LSB first): ``q`` (``d`` bits), ``last`` (the group's final query)."""
    return data.StructLayout({"q": unsigned(params.head_dim), "last": unsigned(1)})


def output_layout(params: AttentionParams) -> data.StructLayout:
    """One output row (LSB first): ``current[j]`` (signed ``M`` bits at offset ``j * M``), ``last``."""
    return data.StructLayout(
        {
            "current": data.ArrayLayout(signed(params.membrane_bits), params.head_dim),
            "last": unsigned(1),
        }
    )


class SpikeAttention(wiring.Component):
    """Spike-attention PE for one head: ``K^T V`` counters, then masked adder trees per query.

    Operation per token group: stream its K/V rows into ``kv`` (the row with
    ``last`` set ends the group's keys), then its query rows into ``q``; every query
    row yields one output row ``sat_M((sum_c q[c] (K^T V)[c][j]) << F)`` on ``out``,
    whose ``last`` repeats the query's. After the query row with ``last`` the
    counters clear and the next group's K/V rows are taken at once. ``kv`` is only
    ready while keys are loaded and ``q`` only while queries are served, so the two
    streams may be offered concurrently.

    Rate and latency: one row per cycle in each phase (``d^2`` AND-accumulates or
    masked adds per cycle), ``G_kv + G_q`` cycles per group; an output row appears one
    cycle after its query row (:meth:`AttentionParams.cycles`).

    Parameters
    ----------
    params : AttentionParams
        ``head_dim`` (d), ``max_group`` (largest G), ``frac_bits`` (F), ``membrane_bits`` (M).

    Attributes
    ----------
    kv : In(stream.Signature(kv_layout(params)))
        ``k``, ``v``: ``d``-bit spike rows of one token (bit ``c`` = feature ``c``);
        ``last``: final K/V row of the group. Verilog ``kv__payload/valid/ready``.
    q : In(stream.Signature(q_layout(params)))
        ``q``: ``d``-bit query spike row; ``last``: final query of the group.
        Verilog ``q__payload/valid/ready``.
    out : Out(stream.Signature(output_layout(params)))
        ``current[j]``: signed ``M``-bit attention current of feature ``j`` at offset
        ``j * M``; ``last``: ends the group. Verilog ``out__payload/valid/ready``.
    group_overflow : Out(1)
        Sticky until reset: a group had more than ``max_group`` K/V rows, so its
        counters may have wrapped.
    """

    def __init__(self, params: AttentionParams) -> None:
        if not isinstance(params, AttentionParams):
            raise TypeError(f"SpikeAttention parameters must be an AttentionParams, not {params!r}")
        self._params = params
        super().__init__(
            {
                "kv": In(stream.Signature(kv_layout(params))),
                "q": In(stream.Signature(q_layout(params))),
                "out": Out(stream.Signature(output_layout(params))),
                "group_overflow": Out(1),
            }
        )

    @property
    def params(self) -> AttentionParams:
        return self._params

    def elaborate(self, platform: object) -> Module:
        m = Module()
        p = self._params
        features = range(p.head_dim)

        serving = Signal()  # 0: taking the group's K/V rows; 1: serving its queries
        rows = Signal(range(p.max_group + 1))
        take_kv = Signal()
        take_q = Signal()
        m.d.comb += [
            self.kv.ready.eq(~serving),
            self.q.ready.eq(serving & (~self.out.valid | self.out.ready)),
            take_kv.eq(self.kv.valid & self.kv.ready),
            take_q.eq(self.q.valid & self.q.ready),
        ]

        with m.If(take_kv):
            with m.If(rows == p.max_group):
                m.d.sync += self.group_overflow.eq(1)
            with m.Else():
                m.d.sync += rows.eq(rows + 1)
            with m.If(self.kv.payload.last):
                m.d.sync += serving.eq(1)
        with m.If(take_q & self.q.payload.last):
            m.d.sync += [serving.eq(0), rows.eq(0)]

        # K^T V: one counter per (c, j), incremented when k[c] AND v[j] is set.
        counts = [[Signal(p.count_bits, name=f"count{c}_{j}") for j in features] for c in features]
        for c in features:
            for j in features:
                with m.If(take_q & self.q.payload.last):
                    m.d.sync += counts[c][j].eq(0)
                with m.Elif(take_kv & self.kv.payload.k[c] & self.kv.payload.v[j]):
                    m.d.sync += counts[c][j].eq(counts[c][j] + 1)

        # Q (K^T V): per output feature j, the counts of the features c the query spikes on.
        with m.If(self.out.valid & self.out.ready):
            m.d.sync += self.out.valid.eq(0)
        with m.If(take_q):
            m.d.sync += [self.out.valid.eq(1), self.out.payload.last.eq(self.q.payload.last)]
        for j in features:
            total = Signal(p.sum_bits, name=f"sum{j}", reset_less=True)
            terms = [Mux(self.q.payload.q[c], extend(counts[c][j], p.sum_bits), 0) for c in features]
            with m.If(take_q):
                m.d.sync += total.eq(tree_sum(terms, p.sum_bits))
            # The sum is non-negative, so only the upper bound of the saturation applies.
            current = saturate_unsigned(total.shift_left(p.frac_bits), p.membrane_bits)
            m.d.comb += self.out.payload.current[j].eq(current)
        return m


def _row_bits(row: np.ndarray, params: AttentionParams, name: str) -> int:
    row = np.asarray(row, dtype=np.int64)
    if row.shape != (params.head_dim,) or ((row != 0) & (row != 1)).any():
        raise ValueError(f"{name} must be {params.head_dim} spikes in {{0, 1}}, not {row.tolist()}")
    return int(sum(int(bit) << c for c, bit in enumerate(row)))


def pack_kv(params: AttentionParams, k: np.ndarray, v: np.ndarray, *, last: bool = False) -> int:
    """Pack one K/V row: ``k``, ``v`` ``[d]`` spikes."""
    return (
        kv_layout(params)
        .const({"k": _row_bits(k, params, "k"), "v": _row_bits(v, params, "v"), "last": int(bool(last))})
        .as_bits()
    )


def pack_q(params: AttentionParams, q: np.ndarray, *, last: bool = False) -> int:
    """Pack one query row: ``q`` ``[d]`` spikes."""
    return q_layout(params).const({"q": _row_bits(q, params, "q"), "last": int(bool(last))}).as_bits()


def group_beats(
    params: AttentionParams, q: np.ndarray, k: np.ndarray, v: np.ndarray
) -> tuple[list[int], list[int]]:
    """``(kv_beats, q_beats)`` of one token group; ``q``, ``k``, ``v`` are ``[G, d]`` spikes."""
    q, k, v = (np.asarray(x, dtype=np.int64) for x in (q, k, v))
    if k.shape != v.shape or k.ndim != 2 or not 1 <= k.shape[0] <= params.max_group:
        raise ValueError(
            f"k and v must both be [G, {params.head_dim}] with 1 <= G <= {params.max_group}, "
            f"not {k.shape} and {v.shape}"
        )
    if q.ndim != 2 or q.shape[0] == 0:
        raise ValueError(f"q must be [G, {params.head_dim}] with G >= 1, not {q.shape}")
    kv_beats = [pack_kv(params, k[g], v[g], last=g == len(k) - 1) for g in range(len(k))]
    q_beats = [pack_q(params, q[g], last=g == len(q) - 1) for g in range(len(q))]
    return kv_beats, q_beats


def unpack_output(params: AttentionParams, word: int) -> tuple[np.ndarray, bool]:
    """Unpack one output row into ``(current [d] int64, last)``."""
    const = data.Const(output_layout(params), int(word))
    return np.array([const.current[j] for j in range(params.head_dim)], dtype=np.int64), bool(const.last)


def reference(params: AttentionParams, q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Reference currents ``[G, d]`` of :func:`contract.numerics.attention_current`."""
    return numerics.attention_current(q, k, v, frac_bits=params.frac_bits, membrane_bits=params.membrane_bits)
