# amaranth: UnusedElaboratable=no
"""cocotb testbench of the spike-attention PE (:class:`hw.attention_pe.SpikeAttention`).

One token group of ``G`` tokens is streamed as ``G`` K/V rows on ``kv`` and ``G``
query rows on ``q`` (both streams offered at once, as a sequencer would); every
query row yields an output row of ``d`` currents, compared with
:func:`golden.numerics.attention_current`. A "vector" is one input row (K/V or Q).
The tests:

* ``random_vectors``: random group sizes up to ``max_group`` and spike densities,
  under random idle and back-pressure; :data:`sim.bench.VECTORS_ENV` rows.
* ``groupings``: a token tensor ``[T, 1, N, heads * d]`` cut into groups by
  :func:`golden.intmodel.group_tokens` for ``joint``, ``temporal`` and ``spatial``
  (divided attention is temporal then spatial), compared group by group.
* ``edge_vectors``: all-zero and all-one rows, ``G = 1`` and ``G = max_group`` with
  every spike set (the largest sums: the current saturates for narrow membranes),
  one-hot rows.
* ``group_overflow``: ``max_group + 1`` K/V rows raise the sticky ``group_overflow``.
* ``exported_vectors``: Q/K/V spikes of an exported attention layer (``SIM_EXPORT_VECTORS``).
* ``throughput``: groups back to back at one row per cycle: ``params.cycles(G)``
  per group, ``d^2`` operations per cycle.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import cocotb
import numpy as np
from cocotb.handle import SimHandleBase

from golden import numerics
from golden.intmodel import group_tokens
from hw.attention_pe import SpikeAttention
from hw.params import AttentionParams
from sim.bench import (
    EXPORT_VECTORS_ENV,
    StreamBench,
    assert_cycles,
    budget_cycles,
    load_params,
    stimulus_rng,
    vector_budget,
)

#: Token groupings of the hardware model (``divided`` = ``temporal`` then ``spatial``).
GROUPINGS = ("joint", "temporal", "spatial")


@dataclass
class Group:
    """One token group: ``q``, ``k``, ``v`` spikes ``[G, d]``."""

    q: np.ndarray
    k: np.ndarray
    v: np.ndarray

    @property
    def rows(self) -> int:
        return 2 * len(self.k)


def _bits(row: np.ndarray) -> int:
    return int(sum(int(bit) << c for c, bit in enumerate(row)))


class AttentionBench(StreamBench):
    """Streams token groups into the attention PE and checks every output row."""

    def __init__(self, dut: SimHandleBase) -> None:
        self.params = load_params(AttentionParams)
        super().__init__(dut, component=SpikeAttention(self.params), inputs=["kv", "q"], outputs=["out"])

    def reference(self, group: Group) -> np.ndarray:
        """Expected currents ``[G, d]``."""
        p = self.params
        return numerics.attention_current(group.q, group.k, group.v, frac_bits=p.frac_bits,
                                          membrane_bits=p.membrane_bits)

    def queue(self, groups: list[Group]) -> None:
        """Queue the K/V and the query rows of ``groups`` on their streams."""
        for group in groups:
            size = len(group.k)
            self.send("kv", [{"k": _bits(group.k[g]), "v": _bits(group.v[g]), "last": int(g == size - 1)}
                             for g in range(size)])
            self.send("q", [{"q": _bits(group.q[g]), "last": int(g == size - 1)} for g in range(size)])

    async def check(self, groups: list[Group], *, valid_prob: float = 1.0, ready_prob: float = 1.0) -> None:
        """Stream ``groups`` and compare every output row and its ``last`` flag."""
        p = self.params
        start = len(self.sinks["out"].words)
        self.set_traffic(valid_prob=valid_prob, ready_prob=ready_prob)
        self.queue(groups)
        rows = sum(len(g.q) for g in groups)
        budget = budget_cycles(sum(g.rows for g in groups), valid_prob=valid_prob, ready_prob=ready_prob,
                               latency=p.latency)
        await self.sinks["out"].wait_for(start + rows, max_cycles=budget)
        received = self.received("out", start)
        if len(received) != rows:
            raise AssertionError(f"{len(received)} output rows for {rows} query rows")
        offset = 0
        for n, group in enumerate(groups):
            size = len(group.q)
            words = received[offset:offset + size]
            offset += size
            got = np.array([w["current"] for w in words], dtype=np.int64)
            last = [w["last"] for w in words]
            expected = self.reference(group)
            if not np.array_equal(got, expected):
                g, j = np.argwhere(got != expected)[0]
                raise AssertionError(
                    f"group {n} (G = {size}) differs from golden.numerics.attention_current ({p}): query "
                    f"row {g}, feature {j}: expected {expected[g, j]}, got {got[g, j]}; q[{g}] = "
                    f"{group.q[g].tolist()}, k column sums {group.k.sum(axis=0).tolist()}")
            if last != [0] * (size - 1) + [1]:
                raise AssertionError(f"group {n}: output 'last' flags {last}, expected only on the final row")

    def group_overflow(self) -> int:
        return int(self.dut.group_overflow.value)


def random_group(p: AttentionParams, rng: np.random.Generator, size: int | None = None) -> Group:
    """A random group: size uniform in ``[1, max_group]`` unless given, one density per matrix."""
    size = int(rng.integers(1, p.max_group, endpoint=True)) if size is None else size
    q, k, v = (rng.random((size, p.head_dim)) < rng.choice([0.05, 0.25, 0.5, 0.9]) for _ in range(3))
    return Group(q.astype(np.int64), k.astype(np.int64), v.astype(np.int64))


def token_shape(p: AttentionParams) -> tuple[int, int]:
    """``(T, N)`` of a token tensor whose joint group (``T * N`` tokens) fits ``max_group``."""
    steps = 1 << (math.isqrt(p.max_group).bit_length() - 1)
    return steps, max(1, p.max_group // steps)


def grouped(p: AttentionParams, rng: np.random.Generator, grouping: str, heads: int = 2) -> list[Group]:
    """Groups of one random token tensor ``[T, 1, N, heads * d]`` under ``grouping``."""
    steps, tokens = token_shape(p)
    x = [(rng.random((steps, 1, tokens, heads * p.head_dim)) < 0.3).astype(np.int64) for _ in range(3)]
    q, k, v = (group_tokens(t, grouping=grouping, heads=heads) for t in x)
    size = q.shape[-2]
    q, k, v = (t.reshape(-1, size, p.head_dim) for t in (q, k, v))
    return [Group(q[i], k[i], v[i]) for i in range(len(q))]


def edge_groups(p: AttentionParams, rng: np.random.Generator) -> list[Group]:
    """All-zero / all-one rows, the smallest and largest group, one-hot rows."""
    d = p.head_dim
    groups = []
    for size in sorted({1, 2, p.max_group}):
        zeros, ones = np.zeros((size, d), dtype=np.int64), np.ones((size, d), dtype=np.int64)
        groups += [Group(ones, ones, ones), Group(zeros, ones, ones), Group(ones, zeros, ones),
                   Group(ones, ones, zeros), Group(zeros, zeros, zeros)]
        onehot = np.eye(d, dtype=np.int64)[rng.integers(0, d, size=size)]
        groups.append(Group(onehot, onehot, ones))
    return groups


def exported_groups(path: str) -> list[Group]:
    """Token groups of an exported attention layer."""
    with np.load(path) as data:
        q, k, v = (data[name].astype(np.int64) for name in ("q", "k", "v"))
    if q.shape != k.shape or q.shape != v.shape or q.ndim < 2:
        raise ValueError(f"{path}: q, k, v must be equal shapes [..., G, d], got "
                         f"{q.shape}, {k.shape}, {v.shape}")
    size, d = q.shape[-2:]
    q, k, v = (t.reshape(-1, size, d) for t in (q, k, v))
    return [Group(q[i], k[i], v[i]) for i in range(len(q))]


@cocotb.test()
async def random_vectors(dut: SimHandleBase) -> None:
    tb = AttentionBench(dut)
    await tb.reset()
    rng = stimulus_rng()
    budget = vector_budget(2000)
    groups_checked = rows = 0
    parts = [budget // 3, budget // 3, budget - 2 * (budget // 3)]
    for part, (valid_prob, ready_prob) in zip(parts, ((1.0, 1.0), (0.6, 1.0), (0.7, 0.4)), strict=True):
        groups: list[Group] = []
        while sum(g.rows for g in groups) < part:
            groups.append(random_group(tb.params, rng))
        if not groups:
            continue
        await tb.check(groups, valid_prob=valid_prob, ready_prob=ready_prob)
        groups_checked += len(groups)
        rows += sum(g.rows for g in groups)
    await tb.expect_quiet(8)
    assert tb.group_overflow() == 0, "group_overflow raised by groups within max_group"
    dut._log.info("random_vectors: %d rows in %d groups match golden.numerics.attention_current",
                  rows, groups_checked)


@cocotb.test()
async def groupings(dut: SimHandleBase) -> None:
    tb = AttentionBench(dut)
    await tb.reset()
    rng = stimulus_rng()
    for grouping in GROUPINGS:
        groups = grouped(tb.params, rng, grouping)
        await tb.check(groups, valid_prob=0.8, ready_prob=0.8)
        dut._log.info("groupings: %s: %d groups of %d tokens match", grouping, len(groups), len(groups[0].q))
    assert tb.group_overflow() == 0


@cocotb.test()
async def edge_vectors(dut: SimHandleBase) -> None:
    tb = AttentionBench(dut)
    await tb.reset()
    groups = edge_groups(tb.params, stimulus_rng())
    await tb.check(groups, valid_prob=0.8, ready_prob=0.7)
    await tb.expect_quiet(8)
    assert tb.group_overflow() == 0
    dut._log.info("edge_vectors: %d groups match", len(groups))


@cocotb.test()
async def group_overflow(dut: SimHandleBase) -> None:
    tb = AttentionBench(dut)
    await tb.reset()
    p = tb.params
    group = random_group(p, stimulus_rng(), size=p.max_group + 1)
    tb.queue([group])
    await tb.sinks["out"].wait_for(len(group.q), max_cycles=budget_cycles(group.rows, valid_prob=1,
                                                                           ready_prob=1, latency=p.latency))
    await tb.check_sticky("group_overflow", cause=f"{p.max_group + 1} K/V rows")


@cocotb.test(skip=not os.environ.get(EXPORT_VECTORS_ENV))
async def exported_vectors(dut: SimHandleBase) -> None:
    tb = AttentionBench(dut)
    await tb.reset()
    groups = exported_groups(os.environ[EXPORT_VECTORS_ENV])
    if len(groups[0].q) > tb.params.max_group:
        raise AssertionError(f"exported groups of {len(groups[0].q)} tokens exceed max_group "
                             f"{tb.params.max_group}")
    await tb.check(groups, valid_prob=0.9, ready_prob=0.9)
    dut._log.info("exported_vectors: %d groups match", len(groups))


@cocotb.test()
async def throughput(dut: SimHandleBase) -> None:
    tb = AttentionBench(dut)
    await tb.reset()
    p = tb.params
    rng = stimulus_rng()
    count, size = 6, p.max_group
    await tb.check([random_group(p, rng, size=size) for _ in range(count)])
    accepted = sorted(tb.sources["kv"].accepted + tb.sources["q"].accepted)
    per_group = p.cycles(size) - p.latency
    expected = count * per_group + p.latency
    measured = assert_cycles(accepted, tb.sinks["out"].cycles, latency=p.latency, expected=expected,
                             every_cycle=True)
    dut._log.info("throughput: %d groups of %d tokens in %d cycles (params.cycles %d per group), "
                  "%d ops/cycle", count, size, measured, p.cycles(size), p.ops_per_cycle)
