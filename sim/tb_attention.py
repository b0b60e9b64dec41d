# amaranth: UnusedElaboratable=no
"""cocotb testbench of the spike-attention PE (:class:`hw.attention_pe.SpikeAttention`).

One token group of ``G`` tokens is streamed as ``G`` K/V rows on ``kv`` and ``G``
query rows on ``q`` (both streams offered at once, as a sequencer would); every
query row yields an output row of ``d`` currents, compared with
:func:`contract.numerics.attention_current`. A "vector" is one input row (K/V or Q);
the vectors come from :mod:`sim.stimulus`, as for the Amaranth-simulator tests. The
tests:

* ``random_vectors``: random group sizes up to ``max_group`` and spike densities,
  under random idle and back-pressure; :data:`sim.bench.VECTORS_ENV` rows.
* ``groupings``: a token tensor ``[T, 1, N, heads * d]`` cut into groups by
  :func:`contract.intmodel.group_tokens` for ``joint``, ``temporal`` and ``spatial``
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

import os

import cocotb
import numpy as np
from cocotb.handle import SimHandleBase

from contract import numerics
from hw.attention_pe import SpikeAttention
from protocol.params import AttentionParams
from sim.bench import (
    EXPORT_VECTORS_ENV,
    StreamBench,
    assert_cycles,
    budget_cycles,
    load_params,
    stimulus_rng,
    vector_budget,
)
from sim.stimulus import (
    Group,
    attention_edge_vectors,
    attention_exported_vectors,
    attention_group,
    attention_grouped,
    attention_payloads,
    attention_vectors,
)

#: Token groupings of the hardware model (``divided`` = ``temporal`` then ``spatial``).
GROUPINGS = ("joint", "temporal", "spatial")


class AttentionBench(StreamBench):
    """Streams token groups into the attention PE and checks every output row."""

    def __init__(self, dut: SimHandleBase) -> None:
        self.params = load_params(AttentionParams)
        super().__init__(dut, component=SpikeAttention(self.params), inputs=["kv", "q"], outputs=["out"])

    def reference(self, group: Group) -> np.ndarray:
        """Expected currents ``[G, d]``."""
        p = self.params
        return numerics.attention_current(
            group.q, group.k, group.v, frac_bits=p.frac_bits, membrane_bits=p.membrane_bits
        )

    def queue(self, groups: list[Group]) -> None:
        """Queue the K/V and the query rows of ``groups`` on their streams."""
        kv, q = attention_payloads(groups)
        self.send("kv", kv)
        self.send("q", q)

    async def check(self, groups: list[Group], *, valid_prob: float = 1.0, ready_prob: float = 1.0) -> None:
        """Stream ``groups`` and compare every output row and its ``last`` flag."""
        p = self.params
        start = len(self.sinks["out"].words)
        self.set_traffic(valid_prob=valid_prob, ready_prob=ready_prob)
        self.queue(groups)
        rows = sum(len(g.q) for g in groups)
        budget = budget_cycles(
            sum(g.rows for g in groups), valid_prob=valid_prob, ready_prob=ready_prob, latency=p.latency
        )
        await self.sinks["out"].wait_for(start + rows, max_cycles=budget)
        received = self.received("out", start)
        if len(received) != rows:
            raise AssertionError(f"{len(received)} output rows for {rows} query rows")
        offset = 0
        for n, group in enumerate(groups):
            size = len(group.q)
            words = received[offset : offset + size]
            offset += size
            got = np.array([w["current"] for w in words], dtype=np.int64)
            last = [w["last"] for w in words]
            expected = self.reference(group)
            if not np.array_equal(got, expected):
                g, j = np.argwhere(got != expected)[0]
                raise AssertionError(
                    f"group {n} (G = {size}) differs from contract.numerics.attention_current ({p}): query "
                    f"row {g}, feature {j}: expected {expected[g, j]}, got {got[g, j]}; q[{g}] = "
                    f"{group.q[g].tolist()}, k column sums {group.k.sum(axis=0).tolist()}"
                )
            if last != [0] * (size - 1) + [1]:
                raise AssertionError(f"group {n}: output 'last' flags {last}, expected only on the final row")

    def group_overflow(self) -> int:
        return int(self.dut.group_overflow.value)


@cocotb.test()
async def random_vectors(dut: SimHandleBase) -> None:
    tb = AttentionBench(dut)
    await tb.reset()
    rng = stimulus_rng()
    budget = vector_budget(2000)
    groups_checked = rows = 0
    parts = [budget // 3, budget // 3, budget - 2 * (budget // 3)]
    for part, (valid_prob, ready_prob) in zip(parts, ((1.0, 1.0), (0.6, 1.0), (0.7, 0.4)), strict=True):
        groups = attention_vectors(tb.params, rng, part)
        if not groups:
            continue
        await tb.check(groups, valid_prob=valid_prob, ready_prob=ready_prob)
        groups_checked += len(groups)
        rows += sum(g.rows for g in groups)
    await tb.expect_quiet(8)
    assert tb.group_overflow() == 0, "group_overflow raised by groups within max_group"
    dut._log.info(
        "random_vectors: %d rows in %d groups match contract.numerics.attention_current", rows, groups_checked
    )


@cocotb.test()
async def groupings(dut: SimHandleBase) -> None:
    tb = AttentionBench(dut)
    await tb.reset()
    rng = stimulus_rng()
    for grouping in GROUPINGS:
        groups = attention_grouped(tb.params, rng, grouping)
        await tb.check(groups, valid_prob=0.8, ready_prob=0.8)
        dut._log.info("groupings: %s: %d groups of %d tokens match", grouping, len(groups), len(groups[0].q))
    assert tb.group_overflow() == 0


@cocotb.test()
async def edge_vectors(dut: SimHandleBase) -> None:
    tb = AttentionBench(dut)
    await tb.reset()
    groups = attention_edge_vectors(tb.params, stimulus_rng())
    await tb.check(groups, valid_prob=0.8, ready_prob=0.7)
    await tb.expect_quiet(8)
    assert tb.group_overflow() == 0
    dut._log.info("edge_vectors: %d groups match", len(groups))


@cocotb.test()
async def group_overflow(dut: SimHandleBase) -> None:
    tb = AttentionBench(dut)
    await tb.reset()
    p = tb.params
    group = attention_group(p, stimulus_rng(), size=p.max_group + 1)
    tb.queue([group])
    await tb.sinks["out"].wait_for(
        len(group.q), max_cycles=budget_cycles(group.rows, valid_prob=1, ready_prob=1, latency=p.latency)
    )
    await tb.check_sticky("group_overflow", cause=f"{p.max_group + 1} K/V rows")


@cocotb.test(skip=not os.environ.get(EXPORT_VECTORS_ENV))
async def exported_vectors(dut: SimHandleBase) -> None:
    tb = AttentionBench(dut)
    await tb.reset()
    groups = attention_exported_vectors(os.environ[EXPORT_VECTORS_ENV])
    if len(groups[0].q) > tb.params.max_group:
        raise AssertionError(
            f"exported groups of {len(groups[0].q)} tokens exceed max_group {tb.params.max_group}"
        )
    await tb.check(groups, valid_prob=0.9, ready_prob=0.9)
    dut._log.info("exported_vectors: %d groups match", len(groups))


@cocotb.test()
async def throughput(dut: SimHandleBase) -> None:
    tb = AttentionBench(dut)
    await tb.reset()
    p = tb.params
    rng = stimulus_rng()
    count, size = 6, p.max_group
    await tb.check([attention_group(p, rng, size=size) for _ in range(count)])
    accepted = sorted(tb.sources["kv"].accepted + tb.sources["q"].accepted)
    per_group = p.cycles(size) - p.latency
    expected = count * per_group + p.latency
    measured = assert_cycles(
        accepted, tb.sinks["out"].cycles, latency=p.latency, expected=expected, every_cycle=True
    )
    dut._log.info(
        "throughput: %d groups of %d tokens in %d cycles (params.cycles %d per group), %d ops/cycle",
        count,
        size,
        measured,
        p.cycles(size),
        p.ops_per_cycle,
    )
